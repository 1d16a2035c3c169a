//! HEAD on every GET route (SPEC §5.1): uptime monitors, load balancers and
//! `curl -I` use it. A leaf module.
//!
//! actix routes by method, and `web::get()` matches GET only, so every HEAD
//! answered 404. Rather than a second route per page, a HEAD request is
//! routed as the GET it asks about, so every GET route — today's and those
//! added later — answers it with the same status and headers. actix-http
//! noted that the request was HEAD when it parsed the request line, and
//! sends the response without its body.

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;

pub async fn as_get(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    if req.method() == Method::HEAD {
        req.head_mut().method = Method::GET;
    }
    next.call(req).await
}
