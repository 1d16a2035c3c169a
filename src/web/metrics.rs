//! The metrics listener (`--metrics-bind`): `GET /metrics` in the
//! OpenMetrics text format, on an address of its own, apart from the pages.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::core::clock::Clock;
use crate::db::{Db, stats};

/// What the metrics handler reads from.
#[derive(Clone)]
pub struct MetricsState {
    pub db: Db,
    pub clock: Clock,
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(scrape));
}

async fn scrape(req: HttpRequest, state: web::Data<MetricsState>) -> HttpResponse {
    let now = state.clock.time();
    let counts = state
        .db
        .read(move |c| Ok((stats::users_with_two_factor(c)?, stats::active_sessions(c, now)?)))
        .await;
    match counts {
        Ok((mfa, sessions)) => crate::metrics::set_database_gauges(mfa, sessions),
        // The counters are still worth having; the gauges keep their last values.
        Err(e) => tracing::warn!(error = %e, "metrics: cannot read the database counts"),
    }
    // Prometheus asks for OpenMetrics; anyone else gets the classic format.
    let openmetrics = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    if openmetrics {
        HttpResponse::Ok()
            .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
            .body(crate::metrics::encode())
    } else {
        HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(crate::metrics::encode_classic())
    }
}
