//! One typed view per screen; each renders one template under `templates/`.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;

use super::error::AppError;
use super::session::{Flash, SessionExt};
use crate::db::users::User;

/// Which item of the left-hand navigation is current.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nav {
    None,
    Dashboard,
    Settings,
    AccountSettings,
    AdminUsers,
    AdminLog,
}

pub struct NavUser {
    pub username: String,
    pub is_admin: bool,
}

/// What every page needs: the CSRF token, the flash message, who is signed
/// in, and the asset paths.
pub struct Page {
    pub title: String,
    /// A banner on every page (the 2FA policy's deadline).
    pub notice: Option<String>,
    pub csrf: String,
    pub flash: Option<Flash>,
    pub user: Option<NavUser>,
    pub nav: Nav,
    pub css: &'static str,
    pub js: &'static str,
}

impl Page {
    pub fn new(req: &HttpRequest, session: &Session, user: Option<&User>, nav: Nav, title: &str) -> Self {
        Self {
            title: title.to_string(),
            notice: None,
            csrf: super::forms::token(req),
            flash: session.take_flash(),
            user: user.map(|u| NavUser {
                username: u.username.clone(),
                is_admin: u.is_admin,
            }),
            nav,
            css: super::assets::css_href(),
            js: super::assets::js_href(),
        }
    }

    /// A page for a signed-in user.
    pub fn signed_in(req: &HttpRequest, me: &super::auth::SignedIn, nav: Nav, title: &str) -> Self {
        let mut page = Self::new(req, &me.session, Some(&me.user), nav, title);
        page.notice = me.notice.clone();
        page
    }

    pub fn with_flash(mut self, flash: Flash) -> Self {
        self.flash = Some(flash);
        self
    }

    pub fn nav_is(&self, nav: Nav) -> bool {
        self.nav == nav
    }

    pub fn in_settings(&self) -> bool {
        matches!(self.nav, Nav::Settings | Nav::AccountSettings)
    }
}

/// Render `tpl` with `status`. A render failure becomes the error page with
/// an incident id (never a silent, empty 500).
pub fn render(status: StatusCode, tpl: &impl Template) -> Result<HttpResponse, AppError> {
    let body = tpl.render()?;
    Ok(HttpResponse::build(status)
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        ))
        .body(body))
}

pub fn ok(tpl: &impl Template) -> Result<HttpResponse, AppError> {
    render(StatusCode::OK, tpl)
}

/// 303 See Other to `to`.
pub fn redirect(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to.to_string()))
        .finish()
}

/// `2026-11-29 08:33 UTC`. Hand-written (Howard Hinnant's civil-from-days)
/// because the only date crate in the tree is built without formatting.
pub fn format_time(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02} UTC", secs / 3600, secs % 3600 / 60)
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub page: Page,
    pub username: String,
    pub next: Option<String>,
}

#[derive(Template)]
#[template(path = "two_factor.html")]
pub struct TwoFactorPage {
    pub page: Page,
}

#[derive(Template)]
#[template(path = "setup.html")]
pub struct SetupPage {
    pub page: Page,
    pub token: String,
    pub username: String,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
pub struct DashboardPage {
    pub page: Page,
    pub mfa_enabled: bool,
    pub recovery_codes_left: i64,
    pub last_login: Option<String>,
}

#[derive(Template)]
#[template(path = "settings.html")]
pub struct SettingsPage {
    pub page: Page,
}

/// The tabs of "My account settings".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tab {
    Profile,
    Password,
    Mfa,
    Sessions,
    SecurityLog,
}

#[derive(Template)]
#[template(path = "account_profile.html")]
pub struct ProfilePage {
    pub page: Page,
    pub tab: Tab,
    pub username: String,
    pub role: &'static str,
    pub created: String,
    pub last_login: Option<String>,
}

#[derive(Template)]
#[template(path = "account_password.html")]
pub struct PasswordPage {
    pub page: Page,
    pub tab: Tab,
}

#[derive(Template)]
#[template(path = "account_mfa.html")]
pub struct MfaTabPage {
    pub page: Page,
    pub tab: Tab,
    pub enabled: bool,
    pub enabled_since: Option<String>,
    pub recovery_codes_left: i64,
    /// Sent back with "Generate new recovery codes".
    pub generation: i64,
}

#[derive(Template)]
#[template(path = "mfa_setup.html")]
pub struct MfaSetupPage {
    pub page: Page,
    pub tab: Tab,
    /// Generated by `core::qr::svg` from our own URI: safe to embed.
    pub qr_svg: String,
    pub secret_grouped: String,
    pub uri: String,
    pub expires: String,
}

#[derive(Template)]
#[template(path = "recovery_codes.html")]
pub struct RecoveryCodesPage {
    pub page: Page,
    pub tab: Tab,
    pub codes: Vec<String>,
    pub download_href: String,
    pub first_time: bool,
}

#[derive(Template)]
#[template(path = "mfa_disable.html")]
pub struct MfaDisablePage {
    pub page: Page,
    pub tab: Tab,
}

#[derive(Template)]
#[template(path = "sudo.html")]
pub struct SudoPage {
    pub page: Page,
    pub tab: Tab,
    /// Inside My account settings (with its tabs), or on its own.
    pub show_tabs: bool,
    pub action: String,
    pub purpose: &'static str,
    /// Fields the form carries through to the action.
    pub hidden: Vec<(&'static str, String)>,
}

/// One account on the admin Users page.
pub struct AdminUserRow {
    pub id: i64,
    pub username: String,
    pub is_admin: bool,
    pub is_self: bool,
    pub must_change_password: bool,
    pub mfa_since: Option<String>,
    pub recovery_codes_left: i64,
    pub last_login: Option<String>,
    pub locked_until: Option<String>,
}

#[derive(Template)]
#[template(path = "admin_users.html")]
pub struct AdminUsersPage {
    pub page: Page,
    pub users: Vec<AdminUserRow>,
    pub policy_required: bool,
    pub policy_deadline: Option<String>,
    pub grace_days: i64,
    pub new_username: String,
}

#[derive(Template)]
#[template(path = "admin_user_created.html")]
pub struct AdminUserCreatedPage {
    pub page: Page,
    pub username: String,
    pub is_admin: bool,
    pub temporary_password: String,
}

#[derive(Template)]
#[template(path = "admin_reset.html")]
pub struct AdminResetPage {
    pub page: Page,
    pub id: i64,
    pub username: String,
}

/// One security-log entry, for display.
pub struct LogRow {
    pub time: String,
    pub username: String,
    pub event: String,
    pub address: String,
    pub browser: String,
    pub detail: String,
}

impl From<crate::db::events::Row> for LogRow {
    fn from(r: crate::db::events::Row) -> Self {
        Self {
            time: format_time(r.created_at),
            username: r.username.unwrap_or_default(),
            event: crate::db::events::Kind::parse(&r.kind).map_or(r.kind.clone(), |k| k.describe().to_string()),
            address: r.client_address.unwrap_or_else(|| "—".into()),
            browser: r
                .user_agent
                .as_deref()
                .map(super::session::describe_user_agent)
                .unwrap_or_else(|| "—".into()),
            detail: r.detail.unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "admin_security_log.html")]
pub struct SecurityLogPage {
    pub page: Page,
    pub admin_view: bool,
    pub rows: Vec<LogRow>,
    pub kinds: Vec<(&'static str, &'static str)>,
    pub user_filter: String,
    pub kind_filter: String,
    pub page_no: i64,
    pub pages: i64,
    pub prev: Option<String>,
    pub next: Option<String>,
    pub total: i64,
}

#[derive(Template)]
#[template(path = "account_security_log.html")]
pub struct AccountLogPage {
    pub page: Page,
    pub tab: Tab,
    pub rows: Vec<LogRow>,
}

pub struct SessionRow {
    pub browser: String,
    pub address: String,
    pub signed_in: String,
    pub last_active: String,
    pub current: bool,
}

#[derive(Template)]
#[template(path = "account_sessions.html")]
pub struct SessionsPage {
    pub page: Page,
    pub tab: Tab,
    pub sessions: Vec<SessionRow>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_times() {
        assert_eq!(format_time(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_time(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(format_time(1_795_941_180), "2026-11-29 08:33 UTC");
    }
}
