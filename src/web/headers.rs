//! The security headers every response carries. A leaf: it imports
//! nothing from the rest of `web`.

use actix_web::http::header;
use actix_web::middleware::DefaultHeaders;

pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Headers on every response. `Cache-Control: no-store` is the default for
/// every page (signed-in pages and pages with secrets must never be cached);
/// static assets override it with their own long-lived value.
pub fn security_headers(https: bool) -> DefaultHeaders {
    let mut h = DefaultHeaders::new();
    for (name, value) in SECURITY_HEADERS {
        h = h.add((*name, *value));
    }
    if https {
        h = h.add((header::STRICT_TRANSPORT_SECURITY, "max-age=31536000"));
    }
    h
}

/// The headers every response carries (error responses add them themselves,
/// since an error that escapes the middleware stack never passes through
/// `DefaultHeaders`).
pub const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("content-security-policy", CSP),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
    ("x-frame-options", "DENY"),
    (
        "permissions-policy",
        "camera=(), microphone=(), geolocation=(), payment=()",
    ),
    ("cross-origin-opener-policy", "same-origin"),
    ("cache-control", "no-store"),
];
