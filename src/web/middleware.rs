//! Cross-cutting request handling: the cross-site POST guard, the CSRF
//! nonce cookie, and storage errors as pages. Kept here so no handler
//! repeats them. (The headers themselves are in `headers`.)

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, ResponseError, web};

use super::AppState;
use super::csrf;
use super::error::AppError;

fn is_safe_method(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Refuse a state-changing request that a browser says came from another
/// site: `Sec-Fetch-Site: cross-site`, or an `Origin` that is not ours.
/// A request without either header (curl, tests) still needs its CSRF token.
pub async fn cross_site_guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    if !is_safe_method(req.method()) && is_cross_site(&req) {
        // Answered here as a response (not an error) so that the outer
        // middleware still adds the security headers.
        let refusal = AppError::Forbidden("Requests from other sites are not accepted.".into()).error_response();
        return Ok(req.into_response(refusal).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

fn is_cross_site(req: &ServiceRequest) -> bool {
    let headers = req.headers();
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"))
    {
        return true;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    let state = req.app_data::<web::Data<AppState>>().expect("AppState is registered");
    let ours = match &state.public_origin {
        Some(o) => o.clone(),
        None => format!("http://{}", req.connection_info().host()),
    };
    !origin.as_bytes().eq_ignore_ascii_case(ours.as_bytes())
}

/// Give every visitor a CSRF nonce cookie (see `forms`).
pub async fn csrf_cookie(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let secure = req.app_data::<web::Data<AppState>>().is_some_and(|s| s.secure_cookies);
    let nonce = csrf::nonce_for(&req, secure);
    req.extensions_mut().insert(nonce.clone());
    let mut res = next.call(req).await?;
    if nonce.is_new {
        let cookie = csrf::nonce_cookie(&nonce, secure);
        if let Ok(v) = header::HeaderValue::from_str(&cookie.to_string()) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    Ok(res)
}

/// An error that escapes the session middleware (its store could not load
/// or save: the database is busy or gone) becomes our 503 page. It stays an
/// error — a response would need the request, and cloning it before routing
/// is not allowed — and `AppError::error_response` renders it, headers
/// included.
pub async fn storage_errors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    next.call(req)
        .await
        .map_err(|e| AppError::Unavailable(format!("session storage: {e:?}")).into())
}
