//! Every request's id, tracing span and measurements, in the outermost
//! middleware.
//!
//! Each request gets a random id (or, from a trusted reverse proxy, the
//! `X-Request-Id` it sent). It is a field of the request's tracing span, so
//! every log line written while the request runs carries it (text and JSON
//! logs alike); it is sent back in `X-Request-Id`; and a 500 page shows it
//! as the incident id (`error.rs` reads it through [`current`]). The route
//! *pattern* (`/admin/users/{id}/unlock`), never the raw path, names the
//! request in the span and the latency histogram: a path can hold a setup
//! token, and raw paths would make a label per URL.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::InternalError;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, web};
use tracing::Instrument;

use super::AppState;

pub const HEADER: &str = "x-request-id";
/// The route label of a request that matched no route.
pub const UNMATCHED: &str = "unmatched";

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled on this task, if any.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

fn new_id() -> String {
    crate::core::keys::hex(&crate::core::random_bytes::<8>())
}

/// The id a trusted reverse proxy gave the request (nginx's `$request_id`),
/// if it is short and plain; anyone else's is ignored.
fn forwarded_id(req: &ServiceRequest) -> Option<String> {
    let state = req.app_data::<web::Data<AppState>>()?;
    let peer = req.peer_addr()?.ip();
    if !state.trusted_proxies.contains(&peer) {
        return None;
    }
    let id = req.headers().get(HEADER)?.to_str().ok()?;
    let plain =
        !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    plain.then(|| id.to_string())
}

pub async fn request(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let id = forwarded_id(&req).unwrap_or_else(new_id);
    let route = req.match_pattern().unwrap_or_else(|| UNMATCHED.to_string());
    let method = req.method().clone();
    let span = tracing::info_span!("request", request_id = %id, method = %method, route = %route);
    let header = HeaderValue::from_str(&id).ok();
    let handled = async move {
        let result: Result<_, Error> = match next.call(req).await {
            Ok(mut res) => {
                if let Some(v) = header {
                    res.headers_mut().insert(HeaderName::from_static(HEADER), v);
                }
                Ok(res)
            }
            // An error that escaped the other middleware is rendered here,
            // inside the request's span and with its id, rather than by the
            // server after the span has closed. (Without the request, which
            // a clone held here would keep from being routed, it stays an
            // error that carries its finished response.)
            Err(e) => {
                let mut response = e.as_response_error().error_response();
                if let Some(v) = header {
                    response.headers_mut().insert(HeaderName::from_static(HEADER), v);
                }
                Err(InternalError::from_response(e, response).into())
            }
        };
        let elapsed = started.elapsed();
        let status = match &result {
            Ok(res) => res.status().as_u16(),
            Err(e) => e.as_response_error().status_code().as_u16(),
        };
        crate::metrics::observe_request(route, method.as_str(), elapsed);
        tracing::debug!(
            target: "latchkey::access",
            status,
            micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            "request"
        );
        result
    };
    REQUEST_ID.scope(id, handled.instrument(span)).await
}
