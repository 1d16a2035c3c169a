//! The one error type of the web layer, rendered into a page in one place.
//!
//! Policy, in three tiers:
//! - the visitor's mistake or a refusal (4xx): a page that says what to do;
//! - storage busy or unreachable (503): "try again", logged as a warning;
//! - our fault (500): a page with an incident id that also appears in the
//!   log, and never a detail or stack trace.
//!
//! Form mistakes that keep the visitor on the same form (a wrong password, a
//! wrong code) are not errors here: the handler re-renders its form.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

use crate::core::throttle::describe_wait;
use crate::db::DbError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("not found")]
    NotFound,
    #[error("gone: {0}")]
    Gone(String),
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("throttled for {retry_after}s")]
    Throttled { retry_after: i64, message: String },
    #[error("sign-in required")]
    LoginRequired { next: Option<String> },
    /// Not an error for the visitor: they must go somewhere else first
    /// (change a temporary password, turn on 2FA).
    #[error("redirect to {0}")]
    Redirect(String),
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
}

impl From<DbError> for AppError {
    fn from(e: DbError) -> Self {
        if e.is_transient() {
            Self::Unavailable(e.to_string())
        } else {
            Self::Internal(e.into())
        }
    }
}

impl From<crate::auth::AuthError> for AppError {
    fn from(e: crate::auth::AuthError) -> Self {
        match e {
            crate::auth::AuthError::Db(d) => d.into(),
            crate::auth::AuthError::Internal(e) => Self::Internal(e),
        }
    }
}

impl From<askama::Error> for AppError {
    fn from(e: askama::Error) -> Self {
        Self::Internal(e.into())
    }
}

impl AppError {
    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        Self::Internal(e.into())
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
    incident: Option<&'a str>,
    css: &'a str,
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Gone(_) => StatusCode::GONE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::LoginRequired { .. } | Self::Redirect(_) => StatusCode::SEE_OTHER,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::LoginRequired { next } = self {
            let to = match next {
                Some(n) => format!(
                    "/login?next={}",
                    percent_encoding::utf8_percent_encode(n, percent_encoding::NON_ALPHANUMERIC)
                ),
                None => "/login".to_string(),
            };
            return HttpResponse::SeeOther().insert_header((header::LOCATION, to)).finish();
        }
        if let Self::Redirect(to) = self {
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, to.as_str()))
                .finish();
        }
        let incident = match self {
            Self::Internal(e) => {
                // The request's id (`X-Request-Id`, and on every log line of
                // the request), so the page, the header and the log agree.
                let id = super::observe::current()
                    .unwrap_or_else(|| crate::core::keys::hex(&crate::core::random_bytes::<6>()));
                tracing::error!(incident = %id, error = %format!("{e:#}"), "request failed");
                Some(id)
            }
            Self::Unavailable(e) => {
                tracing::warn!(error = %e, "storage unavailable");
                None
            }
            _ => None,
        };
        let retry;
        let (title, message): (&str, &str) = match self {
            Self::BadRequest(m) => ("That request could not be understood", m),
            Self::Forbidden(m) => ("Not allowed", m),
            Self::NotFound => (
                "Page not found",
                "There is nothing at this address. Check the link, or go back to the dashboard.",
            ),
            Self::Gone(m) => ("No longer available", m),
            Self::PayloadTooLarge => ("Too much data", "The form you sent was larger than Latchkey accepts."),
            Self::UnsupportedMediaType => ("Unsupported form", "Send the form from the page in your browser."),
            Self::Throttled { retry_after, message } => {
                retry = format!("{message} Try again in {}.", describe_wait(*retry_after));
                ("Too many attempts", retry.as_str())
            }
            Self::Unavailable(_) => (
                "Temporarily unavailable",
                "Latchkey cannot reach its database right now. Nothing was lost; try again in a moment.",
            ),
            Self::Internal(_) => (
                "Something went wrong",
                "An unexpected error occurred on our side. If it keeps happening, give your administrator the incident id below.",
            ),
            Self::LoginRequired { .. } | Self::Redirect(_) => unreachable!("handled above"),
        };
        let page = ErrorPage {
            title,
            message,
            incident: incident.as_deref(),
            css: super::assets::css_href(),
        };
        let body = page.render().unwrap_or_else(|_| message.to_string());
        let mut resp = HttpResponse::build(self.status_code());
        resp.insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        ));
        for (name, value) in super::headers::SECURITY_HEADERS {
            resp.insert_header((*name, *value));
        }
        if let Self::Throttled { retry_after, .. } = self {
            resp.insert_header((header::RETRY_AFTER, retry_after.max(&1).to_string()));
        }
        resp.body(body)
    }
}

pub async fn not_found() -> Result<HttpResponse, AppError> {
    Err(AppError::NotFound)
}
