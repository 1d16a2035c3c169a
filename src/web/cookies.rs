//! The known-browser and remembered-browser cookies. A leaf module.
//!
//! It carries a random token (256 bits) that the server stores only as a
//! keyed hash (`known_browsers`): a browser that has signed in to an
//! account gets password attempts of its own, which nobody else's failures
//! can lock out. It is per browser, revocable, and forgotten on password
//! change and 2FA reset.

use actix_web::cookie::{Cookie, SameSite, time::Duration};

use crate::core::limits::KNOWN_BROWSER_COOKIE_DAYS;

pub fn browser_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-latchkey_browser"
    } else {
        "latchkey_browser"
    }
}

pub fn browser_cookie(token: &str, secure: bool) -> Cookie<'static> {
    Cookie::build(browser_cookie_name(secure), token.to_string())
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Lax)
        .max_age(Duration::days(KNOWN_BROWSER_COOKIE_DAYS))
        .finish()
}

/// "Remember this browser": its own token, so forgetting it leaves the
/// browser known; `Max-Age` is the time left (using it does not extend it).
pub fn remember_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-latchkey_remember"
    } else {
        "latchkey_remember"
    }
}

pub fn remember_cookie(token: &str, max_age_seconds: i64, secure: bool) -> Cookie<'static> {
    Cookie::build(remember_cookie_name(secure), token.to_string())
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Lax)
        .max_age(Duration::seconds(max_age_seconds))
        .finish()
}
