//! Static assets, embedded in the binary and served under a content-hashed
//! path so they can be cached for a year and still change on upgrade.

use std::sync::LazyLock;

use sha2::{Digest, Sha256};

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

/// The asset at `href`, if it is the current version of one.
pub fn find(href: &str) -> Option<(&'static str, &'static str)> {
    ASSETS.iter().find(|a| a.href == href).map(|a| (a.body, a.content_type))
}
