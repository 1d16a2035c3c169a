//! CSRF tokens: a signed double-submit cookie. A random nonce lives in an
//! HttpOnly cookie, and each form carries `HMAC(server key, nonce)`. A
//! cross-site page can neither read the cookie nor compute the token. (The
//! Origin and Sec-Fetch-Site check in `middleware` is a second, independent
//! layer.)

use actix_web::cookie::{Cookie, SameSite};
use actix_web::{HttpMessage, HttpRequest, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

use super::AppState;

/// The form field that carries the token.
pub const FIELD: &str = "csrf_token";
const NONCE_BYTES: usize = 32;

/// The CSRF nonce of this request (from its cookie, or freshly made).
#[derive(Clone, Debug)]
pub struct CsrfNonce {
    pub value: String,
    pub is_new: bool,
}

pub fn cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-latchkey_csrf"
    } else {
        "latchkey_csrf"
    }
}

/// Find or make the nonce; called by the middleware for every request.
pub fn nonce_for(req: &actix_web::dev::ServiceRequest, secure: bool) -> CsrfNonce {
    let existing = req
        .cookie(cookie_name(secure))
        .map(|c| c.value().to_string())
        .filter(|v| URL_SAFE_NO_PAD.decode(v).is_ok_and(|b| b.len() == NONCE_BYTES));
    match existing {
        Some(value) => CsrfNonce { value, is_new: false },
        None => CsrfNonce {
            value: URL_SAFE_NO_PAD.encode(crate::core::random_bytes::<NONCE_BYTES>()),
            is_new: true,
        },
    }
}

pub fn nonce_cookie(nonce: &CsrfNonce, secure: bool) -> Cookie<'static> {
    Cookie::build(cookie_name(secure), nonce.value.clone())
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Lax)
        .finish()
}

/// The token to put in forms for this request.
pub fn token(req: &HttpRequest) -> String {
    let state = req.app_data::<web::Data<AppState>>().expect("AppState is registered");
    let nonce = req
        .extensions()
        .get::<CsrfNonce>()
        .map(|n| n.value.clone())
        .unwrap_or_default();
    URL_SAFE_NO_PAD.encode(state.keys.mac("csrf", nonce.as_bytes()))
}

pub fn token_matches(req: &HttpRequest, submitted: &str) -> bool {
    let fresh = req.extensions().get::<CsrfNonce>().is_none_or(|n| n.is_new);
    if fresh {
        // No cookie came with the request, so no token can be right.
        return false;
    }
    // Made under the active key; one made under another key in the file
    // (a page served just before a key rotation) is accepted too.
    let state = req.app_data::<web::Data<AppState>>().expect("AppState is registered");
    let nonce = req
        .extensions()
        .get::<CsrfNonce>()
        .map(|n| n.value.clone())
        .unwrap_or_default();
    let mut matched = subtle::Choice::from(0);
    for mac in state.keys.mac_candidates("csrf", nonce.as_bytes()) {
        matched |= URL_SAFE_NO_PAD.encode(mac).as_bytes().ct_eq(submitted.as_bytes());
    }
    matched.into()
}
