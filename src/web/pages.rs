//! One typed view per screen; each renders one template under `templates/`.

use actix_session::Session;
use actix_web::HttpRequest;
use askama::Template;

use super::extract::SignedIn;
use super::format::{describe_user_agent, format_time};
use super::session::{Flash, SessionExt};
use crate::db::users::User;

/// Which item of the left-hand navigation is current.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nav {
    None,
    Dashboard,
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
            csrf: super::csrf::token(req),
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
    pub fn signed_in(req: &HttpRequest, me: &SignedIn, nav: Nav, title: &str) -> Self {
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
        self.nav == Nav::AccountSettings
    }
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub page: Page,
    /// Offer "Sign in with a passkey".
    pub passkeys: bool,
    pub username: String,
    pub next: Option<String>,
}

#[derive(Template)]
#[template(path = "two_factor.html")]
pub struct TwoFactorPage {
    pub page: Page,
    /// Offer "Use your security key or passkey".
    pub keys: bool,
    /// Start the key at once (the user has keys and no authenticator app).
    pub keys_first: bool,
    /// A protected sign-in: the account is under attack, so the prompt
    /// explains why a password alone is not enough now.
    pub protected: bool,
    /// "Remember this browser for N days" (0: no checkbox).
    pub remember_days: i64,
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
    pub previous: PreviousSignIn,
}

/// The account's sign-in before this session's, as the dashboard and the
/// Profile tab show it: the one that would reveal someone else.
pub enum PreviousSignIn {
    /// This session's sign-in was the account's first.
    None,
    Known {
        time: String,
        browser: String,
        address: String,
    },
    /// A session from before sign-ins noted it, or a pruned log.
    Unknown,
}

impl PreviousSignIn {
    pub fn is_first(&self) -> bool {
        matches!(self, Self::None)
    }

    /// "2026-12-03 13:25 UTC · Firefox on Linux · 203.0.113.5".
    pub fn summary(&self) -> Option<String> {
        match self {
            Self::Known { time, browser, address } => Some(format!("{time} · {browser} · {address}")),
            _ => None,
        }
    }
}

/// "Page not found" inside the app's layout (signed-in visitors).
#[derive(Template)]
#[template(path = "not_found.html")]
pub struct NotFoundPage {
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
    pub previous: PreviousSignIn,
    /// Email notifications are on (`--smtp-url`): offer an address.
    pub mail_enabled: bool,
    pub email: String,
    pub email_verified: bool,
    pub notify_new_browser: bool,
}

/// A link from an email: its confirmation page, its result, or why it
/// does nothing.
#[derive(Template)]
#[template(path = "email_link.html")]
pub struct EmailLinkPage {
    pub page: Page,
    pub heading: String,
    pub lines: Vec<String>,
    /// What the button will do, as a list.
    pub items: Vec<String>,
    /// The form's action, when there is a button.
    pub action: Option<String>,
    pub button_id: &'static str,
    pub button_label: &'static str,
    pub danger: bool,
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
    /// The authenticator app, if one is set up: since when.
    pub totp_since: Option<String>,
    pub totp_id: Option<i64>,
    pub keys: Vec<KeyRow>,
    /// Keys can be added (a public URL with a domain name).
    pub keys_available: bool,
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
#[template(path = "webauthn_add.html")]
pub struct WebauthnAddPage {
    pub page: Page,
    pub tab: Tab,
    pub name: String,
}

/// One security key or passkey on the MFA tab.
pub struct KeyRow {
    pub id: i64,
    pub name: String,
    pub added: String,
    pub last_used: Option<String>,
    /// A synced passkey (backup-eligible) rather than one bound to a device.
    pub synced: bool,
}

#[derive(Template)]
#[template(path = "mfa_disable.html")]
pub struct MfaDisablePage {
    pub page: Page,
    pub tab: Tab,
    /// The user has a key to confirm with.
    pub has_keys: bool,
    /// The field is set up for a recovery code (letters): `?use=recovery-code`
    /// without JavaScript, or after a recovery code was refused.
    pub recovery: bool,
}

#[derive(Template)]
#[template(path = "sudo.html")]
pub struct SudoPage {
    pub page: Page,
    /// Offer a key instead of the password.
    pub keys: bool,
    pub tab: Tab,
    /// Inside My account settings (with its tabs), or on its own.
    pub show_tabs: bool,
    pub action: String,
    pub purpose: &'static str,
    /// Fields the form carries through to the action.
    pub hidden: Vec<(&'static str, String)>,
    /// After a key, go to `action` instead of posting the form.
    pub then_get: bool,
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
    /// The factors set up, in words ("authenticator app, 2 security keys").
    pub factors: String,
    /// Every lock that applies, in words (empty: none).
    pub locks: Vec<String>,
    pub locked: bool,
    /// "Remove admin" is not offered to the last administrator.
    pub last_admin: bool,
    /// Browsers that skip the second factor now.
    pub remembered_browsers: usize,
}

#[derive(Template)]
#[template(path = "admin_users.html")]
pub struct AdminUsersPage {
    pub page: Page,
    pub users: Vec<AdminUserRow>,
    pub policy_required: bool,
    pub policy_keys_only: bool,
    pub remember_days: i64,
    /// Email is on: the create form offers an address.
    pub mail_enabled: bool,
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
                .map(describe_user_agent)
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

/// A browser known to the account, as the Sessions tab lists it.
pub struct BrowserRow {
    pub id: i64,
    pub browser: String,
    pub address: String,
    pub first_seen: String,
    pub last_used: String,
    pub current: bool,
}

/// A remembered browser, as the Sessions tab lists it.
pub struct RememberedRow {
    pub id: i64,
    pub browser: String,
    pub address: String,
    pub remembered: String,
    pub until: String,
    pub last_used: String,
    pub current: bool,
}

#[derive(Template)]
#[template(path = "account_sessions.html")]
pub struct SessionsPage {
    pub page: Page,
    pub tab: Tab,
    pub sessions: Vec<SessionRow>,
    pub browsers: Vec<BrowserRow>,
    pub remembered: Vec<RememberedRow>,
}
