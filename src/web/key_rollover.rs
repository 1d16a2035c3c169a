//! Session cookies across a server key rotation.
//!
//! The session cookie is encrypted with a key derived from the active
//! server key, and actix-session knows one key only. While a rotation rolls
//! out, instances on the old and the new active key serve the same people,
//! and after it, browsers still hold cookies made under the old key: each
//! would be signed out. So when the key file holds more than one key, this
//! middleware (before the session middleware) takes a session cookie that
//! does not open under the active key but opens under another key of the
//! file, hands the session middleware the same cookie encrypted under the
//! active key, and sends that to the browser too. The session itself (its
//! row, its key) is untouched.

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::cookie::{Cookie, CookieJar, Key, SameSite};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;

/// The session cookie's name and the keys to move it between.
#[derive(Clone)]
pub struct Rollover {
    pub cookie_name: String,
    pub secure: bool,
    pub active: Key,
    pub older: Vec<Key>,
}

impl Rollover {
    /// The cookie's value encrypted under the active key, if it opens under
    /// an older one (and not under the active one).
    fn moved(&self, value: &str) -> Option<String> {
        if open(&self.cookie_name, value, &self.active).is_some() {
            return None;
        }
        let plain = self.older.iter().find_map(|k| open(&self.cookie_name, value, k))?;
        let mut jar = CookieJar::new();
        jar.private_mut(&self.active)
            .add(Cookie::new(self.cookie_name.clone(), plain));
        jar.get(&self.cookie_name).map(|c| c.value().to_string())
    }

    /// The cookie as the session middleware sets it (HttpOnly, Lax, `/`,
    /// `Secure` over https, for the browser session).
    fn cookie(&self, value: String) -> Cookie<'static> {
        Cookie::build(self.cookie_name.clone(), value)
            .path("/")
            .http_only(true)
            .secure(self.secure)
            .same_site(SameSite::Lax)
            .finish()
    }
}

fn open(name: &str, value: &str, key: &Key) -> Option<String> {
    let mut jar = CookieJar::new();
    jar.add_original(Cookie::new(name.to_string(), value.to_string()));
    jar.private(key).get(name).map(|c| c.value().to_string())
}

pub async fn move_session_cookie(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let Some(rollover) = req.app_data::<actix_web::web::Data<Rollover>>().cloned() else {
        return next.call(req).await;
    };
    // The header is parsed here by hand: `req.cookie()` would cache the
    // parsed cookies in the request, and the session middleware would then
    // see the old value whatever the header says.
    let mut moved = None;
    let mut pairs = Vec::new();
    for value in req.headers().get_all(header::COOKIE) {
        let Ok(text) = value.to_str() else { continue };
        for pair in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            // Values are percent-encoded, as the session middleware writes them.
            let moved_here = Cookie::parse_encoded(pair)
                .ok()
                .filter(|c| c.name() == rollover.cookie_name)
                .and_then(|c| rollover.moved(c.value()));
            match moved_here {
                Some(new) => {
                    pairs.push(
                        Cookie::new(rollover.cookie_name.clone(), new.clone())
                            .encoded()
                            .to_string(),
                    );
                    moved = Some(new);
                }
                None => pairs.push(pair.to_string()),
            }
        }
    }
    if moved.is_some()
        && let Ok(v) = HeaderValue::from_str(&pairs.join("; "))
    {
        req.headers_mut().insert(header::COOKIE, v);
    }
    let mut res = next.call(req).await?;
    if let Some(value) = moved {
        let prefix = format!("{}=", rollover.cookie_name);
        let already_set = res
            .headers()
            .get_all(header::SET_COOKIE)
            .any(|v| v.as_bytes().starts_with(prefix.as_bytes()));
        if !already_set && let Ok(v) = HeaderValue::from_str(&rollover.cookie(value).encoded().to_string()) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> Key {
        Key::from(&[byte; 64])
    }

    #[test]
    fn a_cookie_under_an_older_key_moves_to_the_active_one() {
        let mut jar = CookieJar::new();
        jar.private_mut(&key(1))
            .add(Cookie::new("latchkey_session", "the-session-key"));
        let old_value = jar.get("latchkey_session").unwrap().value().to_string();
        let r = Rollover {
            cookie_name: "latchkey_session".into(),
            secure: false,
            active: key(2),
            older: vec![key(3), key(1)],
        };
        let moved = r.moved(&old_value).expect("opens under an older key");
        assert_eq!(
            open("latchkey_session", &moved, &key(2)).as_deref(),
            Some("the-session-key")
        );
        assert_eq!(r.moved(&moved), None, "already under the active key");
        assert_eq!(r.moved("garbage"), None);
        let stranger = Rollover {
            older: vec![key(3)],
            ..r
        };
        assert_eq!(stranger.moved(&old_value), None);
    }
}
