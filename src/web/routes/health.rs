use actix_web::{HttpResponse, web};

use crate::web::AppState;

/// `200 ok` when the database answers, `503` otherwise.
pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    if state.auth.healthy().await {
        HttpResponse::Ok().content_type("text/plain; charset=utf-8").body("ok")
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain; charset=utf-8")
            .body("database unavailable")
    }
}
