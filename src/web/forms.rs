//! Form posts: strict parsing and the CSRF check (`csrf`), in one extractor.
//!
//! Bodies are read by hand rather than through `web::Form`, because
//! serde_urlencoded decodes invalid UTF-8 lossily — a password with a stray
//! byte would silently become a different password. Here it is refused.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest};
use serde::de::DeserializeOwned;

use super::csrf;
use super::error::AppError;

/// Largest form body accepted. The longest legitimate form (password change)
/// is three 1024-character passwords, well under this.
pub const MAX_BODY: usize = 16 * 1024;

/// A parsed form whose CSRF token has been checked. The token is checked
/// first (a missing or wrong token is a 403 whatever else is wrong), then
/// removed, and the remaining fields are parsed strictly into `T`.
pub struct Protected<T>(pub T);

impl<T> FromRequest for Protected<T>
where
    T: DeserializeOwned + 'static,
{
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let payload = payload.take();
        Box::pin(async move { read_protected(&req, payload).await.map(Protected) })
    }
}

/// Who is posting (`A`, e.g. `SignedIn`) and their checked form (`T`).
///
/// The body is read *before* `A` is extracted. actix polls a handler's
/// extractors together, so with separate arguments a refusal by `A` ("not
/// signed in") would answer while the body is still unread, and the
/// keep-alive connection would be dropped under the client.
pub struct Posted<A, T> {
    pub who: A,
    pub form: T,
}

impl<A, T> FromRequest for Posted<A, T>
where
    A: FromRequest<Error = AppError> + 'static,
    T: DeserializeOwned + 'static,
{
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let payload = payload.take();
        Box::pin(async move {
            let form = read_protected(&req, payload).await?;
            let who = A::from_request(&req, &mut Payload::None).await?;
            Ok(Posted { who, form })
        })
    }
}

async fn read_protected<T: DeserializeOwned>(req: &HttpRequest, payload: Payload) -> Result<T, AppError> {
    let body = read_form_body(req, payload).await?;
    let pairs = parse_pairs(&body)?;
    let mut tokens = pairs.iter().filter(|(k, _)| k == csrf::FIELD);
    let ok = match (tokens.next(), tokens.next()) {
        (Some((_, token)), None) => csrf::token_matches(req, token),
        _ => false,
    };
    if !ok {
        return Err(AppError::Forbidden(
            "This form has expired or did not come from this site. Go back, reload the page and try again.".into(),
        ));
    }
    let rest: Vec<&(String, String)> = pairs.iter().filter(|(k, _)| k != csrf::FIELD).collect();
    let reencoded = serde_urlencoded::to_string(rest).map_err(AppError::internal)?;
    parse_form(reencoded.as_bytes())
}

/// Split a body into decoded (name, value) pairs, refusing invalid UTF-8.
fn parse_pairs(body: &[u8]) -> Result<Vec<(String, String)>, AppError> {
    let invalid = || AppError::BadRequest("The form contained text that is not valid UTF-8.".into());
    let mut out = Vec::new();
    for part in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let plus_as_space: Vec<u8> = part.iter().map(|b| if *b == b'+' { b' ' } else { *b }).collect();
        let mut halves = plus_as_space.splitn(2, |b| *b == b'=');
        let name = halves.next().unwrap_or_default();
        let value = halves.next().unwrap_or_default();
        let decode = |raw: &[u8]| {
            percent_encoding::percent_decode(raw)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| invalid())
        };
        out.push((decode(name)?, decode(value)?));
    }
    Ok(out)
}

async fn read_form_body(req: &HttpRequest, payload: Payload) -> Result<Vec<u8>, AppError> {
    read_body(req, payload, "application/x-www-form-urlencoded", MAX_BODY).await
}

/// Read a body of content type `mime`, at most `max` bytes.
async fn read_body(
    req: &HttpRequest,
    mut payload: Payload,
    mime_wanted: &str,
    max: usize,
) -> Result<Vec<u8>, AppError> {
    use futures_util::StreamExt;

    let ctype = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ctype.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case(mime_wanted) {
        return Err(AppError::UnsupportedMediaType);
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_DRAIN) {
        return Err(AppError::PayloadTooLarge);
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(1024).min(max));
    let mut seen = 0usize;
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| AppError::BadRequest("The form could not be read completely.".into()))?;
        seen += chunk.len();
        if seen > MAX_DRAIN {
            break;
        }
        // Past the limit, read on (up to MAX_DRAIN) without keeping, so the
        // client finishes sending and sees our 413 page, not a reset.
        if seen <= max {
            body.extend_from_slice(&chunk);
        }
    }
    if seen > max {
        return Err(AppError::PayloadTooLarge);
    }
    Ok(body)
}

/// The largest JSON body accepted: a key's registration answer is a few
/// kilobytes (an attestation certificate chain at most).
pub const MAX_JSON_BODY: usize = 64 * 1024;

/// The header that carries the CSRF token of a JSON request (the page's
/// token, read by the script from the form on the page).
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Who is posting and their JSON body, for the key ceremonies' requests
/// from the page's script: the CSRF token in `X-CSRF-Token`, the body
/// `application/json` (which no cross-site form can send), parsed into `T`.
pub struct JsonPosted<A, T> {
    pub who: A,
    pub body: T,
}

impl<A, T> FromRequest for JsonPosted<A, T>
where
    A: FromRequest<Error = AppError> + 'static,
    T: DeserializeOwned + 'static,
{
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let payload = payload.take();
        Box::pin(async move {
            let body = read_body(&req, payload, "application/json", MAX_JSON_BODY).await?;
            let token = req
                .headers()
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !csrf::token_matches(&req, token) {
                return Err(AppError::Forbidden(
                    "This page has expired or the request did not come from this site. Reload the page and try again."
                        .into(),
                ));
            }
            let body = parse_json(&body)?;
            let who = A::from_request(&req, &mut Payload::None).await?;
            Ok(JsonPosted { who, body })
        })
    }
}

/// Parse a JSON body into `T`: any mistake is a 400, never a panic.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, AppError> {
    serde_json::from_slice(body).map_err(|_| {
        AppError::BadRequest("The request was not what this page sends. Reload the page and try again.".into())
    })
}

/// Oversized bodies up to this size are read and discarded before the 413.
const MAX_DRAIN: usize = 4 << 20;

/// Parse `application/x-www-form-urlencoded` into `T`, refusing invalid
/// UTF-8 (raw or percent-encoded), unknown fields and repeated fields.
pub fn parse_form<T: DeserializeOwned>(body: &[u8]) -> Result<T, AppError> {
    parse_pairs(body)?;
    serde_urlencoded::from_bytes(body).map_err(|e| {
        let detail = e.to_string();
        let message = if detail.contains("duplicate field") {
            "A field was sent more than once."
        } else if detail.contains("unknown field") {
            "The form contained a field this page does not accept."
        } else if detail.contains("missing field") {
            "The form is missing a field; send it from the page in your browser."
        } else {
            "The form could not be understood."
        };
        AppError::BadRequest(message.into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct F {
        code: String,
        #[allow(dead_code)]
        csrf_token: String,
    }

    #[test]
    fn pairs_decode_strictly() {
        let p = parse_pairs(b"a=1+2&b=%C3%A9&&c").unwrap();
        assert_eq!(
            p,
            vec![
                ("a".into(), "1 2".into()),
                ("b".into(), "é".into()),
                ("c".into(), "".into())
            ]
        );
        assert!(parse_pairs(b"a=%C3").is_err());
    }

    #[test]
    fn parses_and_refuses() {
        let f: F = parse_form(b"code=123+456&csrf_token=x").unwrap();
        assert_eq!(f.code, "123 456");
        let f: F = parse_form("code=%EF%BC%91&csrf_token=x".as_bytes()).unwrap();
        assert_eq!(f.code, "１");
        for bad in [
            &b"code=%FF&csrf_token=x"[..],
            b"code=\xff&csrf_token=x",
            b"code=1&code=2&csrf_token=x",
            b"code=1&csrf_token=x&admin=1",
            b"csrf_token=x",
        ] {
            assert!(matches!(parse_form::<F>(bad), Err(AppError::BadRequest(_))), "{bad:?}");
        }
    }
}

#[cfg(test)]
mod properties {
    use std::collections::HashMap;

    use proptest::prelude::*;
    use serde::Deserialize;

    use super::*;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Login {
        username: String,
        password: String,
        next: Option<String>,
    }

    proptest! {
        /// Any bytes at all: a parsed form or a 400, never a panic; and
        /// every value that comes out is valid UTF-8 taken from the body.
        #[test]
        fn any_body_parses_or_is_refused(body in proptest::collection::vec(any::<u8>(), 0..300)) {
            match parse_form::<Login>(&body) {
                Ok(_) => {}
                Err(AppError::BadRequest(_)) => {}
                Err(other) => prop_assert!(false, "unexpected {other:?}"),
            }
            let _ = parse_form::<HashMap<String, String>>(&body);
        }

        /// What serde_urlencoded writes, we read back exactly.
        #[test]
        fn round_trip(username in "\\PC{0,30}", password in "\\PC{0,30}") {
            let body = serde_urlencoded::to_string([("username", &username), ("password", &password)]).unwrap();
            let form: Login = parse_form(body.as_bytes()).unwrap();
            prop_assert_eq!(form.username, username);
            prop_assert_eq!(form.password, password);
        }
    }
}
