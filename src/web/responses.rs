//! Building responses: a rendered template, a redirect. A leaf module.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use askama::Template;

use super::error::AppError;

/// Render `tpl` with `status`. A render failure becomes the error page with
/// an incident id (never a silent, empty 500).
pub fn render(status: StatusCode, tpl: &impl Template) -> Result<HttpResponse, AppError> {
    let body = tpl.render()?;
    Ok(HttpResponse::build(status)
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        ))
        .body(body))
}

pub fn ok(tpl: &impl Template) -> Result<HttpResponse, AppError> {
    render(StatusCode::OK, tpl)
}

/// 303 See Other to `to`.
pub fn redirect(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to.to_string()))
        .finish()
}

/// A JSON answer (the key ceremonies' requests).
pub fn json(status: StatusCode, value: &impl serde::Serialize) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static("application/json")))
        .body(serde_json::to_string(value).unwrap_or_else(|_| "{}".into()))
}
