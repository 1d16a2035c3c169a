//! `GET/POST /login` and `POST /logout`.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use crate::core::password;
use crate::core::username::{self, Username};
use crate::db::events::{self, Kind};
use crate::db::users;
use crate::web::AppState;
use crate::web::auth::{Client, PasswordCheck, check_password, complete_sign_in, hash_password};
use crate::web::error::AppError;
use crate::web::forms::Protected;
use crate::web::pages::{LoginPage, Nav, Page, ok, redirect, render};
use crate::web::session::{Flash, SessionExt, Stage, safe_next};

const GENERIC_FAILURE: &str = "Incorrect username or password.";

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
    signed_out: Option<String>,
}

pub async fn form(req: HttpRequest, session: Session, query: web::Query<NextQuery>) -> Result<HttpResponse, AppError> {
    if session.stage() == Some(Stage::SignedIn) {
        return Ok(redirect(
            &safe_next(query.next.as_deref()).unwrap_or_else(|| "/".into()),
        ));
    }
    let mut page = Page::new(&req, &session, None, Nav::None, "Sign in");
    if query.signed_out.is_some() && page.flash.is_none() {
        page = page.with_flash(Flash::success("You have been signed out."));
    }
    ok(&LoginPage {
        page,
        username: String::new(),
        next: safe_next(query.next.as_deref()),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginForm {
    username: String,
    password: String,
    next: Option<String>,
}

pub async fn submit(
    Protected(form): Protected<LoginForm>,
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let next = safe_next(form.next.as_deref());
    let again = |status: StatusCode, message: &str, username: &str| {
        let page = Page::new(&req, &session, None, Nav::None, "Sign in").with_flash(Flash::error(message));
        render(
            status,
            &LoginPage {
                page,
                username: username.to_string(),
                next: next.clone(),
            },
        )
    };
    if form.username.len() > username::MAX_LEN * 4 || form.password.len() > password::MAX_LEN {
        return again(StatusCode::BAD_REQUEST, "That username or password is too long.", "");
    }
    if form.username.trim().is_empty() || form.password.is_empty() {
        return again(
            StatusCode::BAD_REQUEST,
            "Enter your username and password.",
            form.username.trim(),
        );
    }
    let client = Client::of(&req);
    // The throttling key is the name as typed (normalised), whether or not
    // such a user exists: unknown names are throttled exactly like real ones.
    let account = form.username.trim().to_lowercase();
    let user = match Username::parse(&form.username) {
        Ok(name) => state.db.read(move |c| users::find_by_name(c, name.as_str())).await?,
        Err(_) => None,
    };
    // A hash made at another bcrypt cost than the configured one is redone
    // at sign-in (so raising the cost takes effect, and every user's check
    // takes as long as the dummy hash's).
    let rehash_with = user
        .as_ref()
        .filter(|u| password::cost_of(&u.password_hash) != Some(state.bcrypt_cost))
        .map(|_| form.password.clone());
    match check_password(
        &state,
        &account,
        user.as_ref(),
        form.password,
        &client,
        Kind::LoginFailed,
    )
    .await?
    {
        PasswordCheck::Throttled(wait) => Err(AppError::Throttled {
            retry_after: wait,
            message: "Too many sign-in attempts for this account or from your network.".into(),
        }),
        PasswordCheck::Wrong => again(StatusCode::UNAUTHORIZED, GENERIC_FAILURE, form.username.trim()),
        PasswordCheck::Correct => {
            let user = user.ok_or_else(|| AppError::internal(anyhow::anyhow!("correct password without a user")))?;
            if let Some(pw) = rehash_with {
                let (id, old) = (user.id, user.password_hash.clone());
                let new = hash_password(&state, pw).await?;
                state.db.run(move |c| users::rehash_password(c, id, &old, &new)).await?;
            }
            let now = state.clock.now();
            if user.mfa_enabled() {
                session.begin_second_factor(&(&user).into(), now, next.as_deref());
                return Ok(redirect("/login/two-factor"));
            }
            complete_sign_in(&state, &session, &user, &client, now, next.as_deref()).await
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogoutForm {}

pub async fn logout(
    Protected(_form): Protected<LogoutForm>,
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    if let Some(uid) = session.user_id() {
        let mut event = Client::of(&req).event(Kind::LoggedOut, None);
        event.user_id = Some(uid);
        let now = state.clock.now();
        state.db.run(move |c| events::record(c, &event, now)).await?;
    }
    // Deletes the server-side row: a copy of the cookie is worthless now.
    session.purge();
    Ok(redirect("/login?signed_out=1"))
}
