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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remember_cookie_attributes_follow_the_public_url() {
        let https = remember_cookie("t0ken", 7 * 86_400, true).to_string();
        for attr in [
            "__Host-latchkey_remember=t0ken",
            "HttpOnly",
            "SameSite=Lax",
            "Secure",
            "Path=/",
            "Max-Age=604800",
        ] {
            assert!(https.contains(attr), "{attr}: {https}");
        }
        assert!(!https.contains("Domain"), "__Host- cookies name no domain");
        let http = remember_cookie("t0ken", 60, false).to_string();
        assert!(
            http.starts_with("latchkey_remember=t0ken") && !http.contains("Secure"),
            "{http}"
        );
        assert!(http.contains("Max-Age=60"));
    }
}
