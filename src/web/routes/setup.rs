//! `/setup/{token}`: the one-time link that creates the first administrator.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::core::password;
use crate::core::types::Password;
use crate::core::username::Username;
use crate::web::AppState;
use crate::web::error::AppError;
use crate::web::extract::client;
use crate::web::forms::Protected;
use crate::web::pages::{Nav, Page, SetupPage};
use crate::web::responses::{ok, redirect, render};
use crate::web::session::{Flash, SessionExt};

pub fn token_hash(token: &str) -> String {
    crate::core::keys::hex(&Sha256::digest(token.as_bytes()))
}

fn spent() -> AppError {
    AppError::Gone("This setup link has already been used or is no longer valid. Sign in, or ask your administrator for an account.".into())
}

pub async fn form(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let token = path.into_inner();
    if !state.auth.setup_link_valid(token_hash(&token)).await? {
        return Err(spent());
    }
    let page = Page::new(&req, &session, None, Nav::None, "Create the administrator");
    ok(&SetupPage {
        page,
        token,
        username: String::new(),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetupForm {
    username: String,
    password: String,
    password_confirm: String,
}

pub async fn submit(
    Protected(form): Protected<SetupForm>,
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let token = path.into_inner();
    let again = |message: String, username: &str| {
        let page =
            Page::new(&req, &session, None, Nav::None, "Create the administrator").with_flash(Flash::error(message));
        render(
            StatusCode::BAD_REQUEST,
            &SetupPage {
                page,
                token: token.clone(),
                username: username.to_string(),
            },
        )
    };
    if !state.auth.setup_link_valid(token_hash(&token)).await? {
        return Err(spent());
    }
    let name = match Username::parse(&form.username) {
        Ok(n) => n,
        Err(e) => return again(e.to_string(), ""),
    };
    if let Err(e) = password::check_policy(&form.password) {
        return again(e.to_string(), name.as_str());
    }
    if form.password != form.password_confirm {
        return again("The two passwords do not match.".into(), name.as_str());
    }
    let created = state
        .auth
        .complete_setup(token_hash(&token), &name, Password::new(form.password), &client(&req))
        .await?;
    match created {
        Some(user) => {
            tracing::info!(username = %user.username, "first administrator created; the setup link is spent");
            session.set_flash(Flash::success(format!(
                "Administrator “{}” created. Sign in with the password you just chose.",
                user.username
            )));
            Ok(redirect("/login"))
        }
        None => Err(spent()),
    }
}
