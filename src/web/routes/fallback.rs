//! "Page not found" for a path no route answers: in the app's layout, with
//! its navigation, for a signed-in visitor; the plain public page otherwise.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};

use crate::web::error::AppError;
use crate::web::extract::SignedIn;
use crate::web::pages::{Nav, NotFoundPage, Page};
use crate::web::responses::render;
use crate::web::session::Flash;

pub async fn not_found(req: HttpRequest, me: Option<SignedIn>) -> Result<HttpResponse, AppError> {
    let Some(me) = me else {
        return Err(AppError::NotFound);
    };
    render(
        StatusCode::NOT_FOUND,
        &NotFoundPage {
            page: Page::signed_in(&req, &me, Nav::None, "Page not found").with_flash(Flash::error(
                "There is nothing at this address. Check the link, or go back to the dashboard.",
            )),
        },
    )
}
