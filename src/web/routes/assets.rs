//! `GET /static/{version}/{name}`: the embedded assets (`web::assets`).

use actix_web::http::header;
use actix_web::{HttpResponse, web};

use crate::web::assets;
use crate::web::error::AppError;

/// Only the current version of each asset exists; an old or made-up
/// version is a 404, so a cached page never gets mismatched assets.
pub async fn serve(path: web::Path<(String, String)>) -> Result<HttpResponse, AppError> {
    let (version, name) = path.into_inner();
    let (body, content_type) = assets::find(&format!("/static/{version}/{name}")).ok_or(AppError::NotFound)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
        .body(body))
}
