//! Static assets, embedded in the binary and served under a content-hashed
//! path so they can be cached for a year and still change on upgrade.

use std::sync::LazyLock;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use sha2::{Digest, Sha256};

use super::error::AppError;

const CSS: &str = include_str!("../../static/style.css");
const JS: &str = include_str!("../../static/app.js");

struct Asset {
    body: &'static str,
    content_type: &'static str,
    href: String,
}

fn asset(name: &'static str, body: &'static str, content_type: &'static str) -> Asset {
    let digest = Sha256::digest(body.as_bytes());
    let version = crate::core::keys::hex(&digest[..6]);
    Asset {
        body,
        content_type,
        href: format!("/static/{version}/{name}"),
    }
}

static ASSETS: LazyLock<[Asset; 2]> = LazyLock::new(|| {
    [
        asset("style.css", CSS, "text/css; charset=utf-8"),
        asset("app.js", JS, "text/javascript; charset=utf-8"),
    ]
});

pub fn css_href() -> &'static str {
    &ASSETS[0].href
}

pub fn js_href() -> &'static str {
    &ASSETS[1].href
}

/// Only the current version of each asset exists; an old or made-up
/// version is a 404, so a cached page never gets mismatched assets.
pub async fn serve(path: web::Path<(String, String)>) -> Result<HttpResponse, AppError> {
    let (version, name) = path.into_inner();
    let wanted = format!("/static/{version}/{name}");
    let a = ASSETS.iter().find(|a| a.href == wanted).ok_or(AppError::NotFound)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, a.content_type))
        .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
        .body(a.body))
}
