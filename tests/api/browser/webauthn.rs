//! Security keys and passkeys in real Chromium, with a virtual
//! authenticator (the W3C WebDriver extension commands, which thirtyfour
//! sends as extension commands): add a key, sign in with it, add a second,
//! remove one, sign in with a passkey alone, sudo with a key, a cloned key
//! refused, key-only 2FA with a recovery code; and ceremonies begun on one
//! instance and finished on another (through a test load balancer). The server is on
//! `http://localhost:PORT`: browsers refuse WebAuthn on IP addresses.

use std::sync::Arc;

use serde_json::{Value, json};
use thirtyfour::common::command::{Command as WdCommand, ExtensionCommand};
use thirtyfour::prelude::*;

use super::{Mode, Ui, with_browser};
use crate::helpers::{PASSWORD, TestApp};

/// A `/session/{id}/…` command that thirtyfour has no helper for.
#[derive(Debug)]
struct Raw {
    method: http::Method,
    endpoint: String,
    body: Option<Value>,
}

impl ExtensionCommand for Raw {
    fn parameters_json(&self) -> Option<Value> {
        self.body.clone()
    }
    fn method(&self) -> http::Method {
        self.method.clone()
    }
    fn endpoint(&self) -> Arc<str> {
        self.endpoint.as_str().into()
    }
}

pub(super) async fn raw(
    driver: &WebDriver,
    method: http::Method,
    endpoint: String,
    body: Option<Value>,
) -> WebDriverResult<Value> {
    let cmd = WdCommand::ExtensionCommand(Box::new(Raw { method, endpoint, body }));
    driver.handle().cmd(cmd).await?.value_json()
}

/// One virtual authenticator (WebAuthn Level 2, §11).
struct Authenticator<'a> {
    driver: &'a WebDriver,
    id: String,
}

impl<'a> Authenticator<'a> {
    /// A CTAP2 authenticator with user verification: "internal" with
    /// resident keys is a platform passkey; "usb" without them is a plain
    /// security key (whose credentials the passkey autofill cannot offer).
    /// Chromium allows one internal authenticator at a time.
    async fn add(driver: &'a WebDriver, transport: &str) -> WebDriverResult<Self> {
        let options = json!({
            "protocol": "ctap2", "transport": transport, "hasResidentKey": transport == "internal",
            "hasUserVerification": true, "isUserVerified": true, "isUserConsenting": true,
        });
        let v = raw(
            driver,
            http::Method::POST,
            "/webauthn/authenticator".into(),
            Some(options),
        )
        .await?;
        Ok(Self {
            driver,
            id: v.as_str().expect("an authenticator id").to_string(),
        })
    }

    fn path(&self, rest: &str) -> String {
        format!("/webauthn/authenticator/{}{rest}", self.id)
    }

    async fn credentials(&self) -> WebDriverResult<Vec<Value>> {
        let v = raw(self.driver, http::Method::GET, self.path("/credentials"), None).await?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// A cloned key: the same key pair, its signature counter set back.
    async fn rewind_sign_count(&self, count: u32) -> WebDriverResult<()> {
        let mut cred = self.credentials().await?.into_iter().next().expect("one credential");
        let id = cred["credentialId"].as_str().expect("credentialId").to_string();
        raw(
            self.driver,
            http::Method::DELETE,
            self.path(&format!("/credentials/{id}")),
            None,
        )
        .await?;
        cred["signCount"] = json!(count);
        raw(self.driver, http::Method::POST, self.path("/credential"), Some(cred)).await?;
        Ok(())
    }

    async fn remove(self) -> WebDriverResult<()> {
        raw(self.driver, http::Method::DELETE, self.path(""), None).await?;
        Ok(())
    }
}

#[tokio::test]
async fn browser_security_keys_and_passkeys() {
    let app = Arc::new(TestApp::spawn_with_keys().await);
    app.create_user("alice", false).await;
    let base = app.base.clone();
    with_browser("webauthn", &base, Mode::Default, move |ui| async move {
        walk(&app, &ui).await
    })
    .await;
}

async fn sign_in(ui: &Ui, user: &str) -> WebDriverResult<()> {
    ui.goto("/login").await?;
    ui.type_into("username", user).await?;
    ui.type_into("password", PASSWORD).await?;
    click_away(ui, "login-submit").await
}

async fn sign_out(ui: &Ui) -> WebDriverResult<()> {
    click_away(ui, "logout").await?;
    ui.el("login-submit").await?;
    Ok(())
}

/// Mark the page now shown as left, so that `arrive` waits for the next
/// one even where it has the same path (a form that comes back to its own
/// page, or a ceremony that has not navigated yet).
async fn leave(ui: &Ui) -> WebDriverResult<()> {
    ui.driver.execute("window.latchkeyLeft = true;", Vec::new()).await?;
    Ok(())
}

/// Click something that goes to another page (see `leave`).
async fn click_away(ui: &Ui, id: &str) -> WebDriverResult<()> {
    leave(ui).await?;
    ui.click(id).await
}

/// Whether the browser shows a page at `path` that is not one it left, and
/// has loaded it. (While a page is being replaced a script may not run:
/// that is "not yet".)
async fn at(ui: &Ui, path: &str) -> WebDriverResult<bool> {
    if ui.path().await? != path {
        return Ok(false);
    }
    let fresh = ui
        .driver
        .execute(
            "return !window.latchkeyLeft && document.readyState === 'complete';",
            Vec::new(),
        )
        .await;
    Ok(fresh.is_ok_and(|r| r.json().as_bool() == Some(true)))
}

/// Wait until the browser is at a new page at `path` (a ceremony navigates
/// on its own); if it never gets there, say what the page said.
async fn arrive(ui: &Ui, path: &str) -> WebDriverResult<()> {
    for _ in 0..600 {
        if at(ui, path).await? {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let mut said = String::new();
    for id in ["webauthn-status", "flash"] {
        if ui.exists(id).await? {
            said.push_str(&format!(" #{id}: {:?}", ui.text(id).await?));
        }
    }
    panic!("never reached {path}; at {}{said}", ui.path().await?);
}

async fn add_key(ui: &Ui, name: &str) -> WebDriverResult<()> {
    ui.goto("/settings/account/mfa").await?;
    ui.type_into("webauthn-name", name).await?;
    click_away(ui, "webauthn-add").await
}

async fn walk(app: &TestApp, ui: &Ui) -> WebDriverResult<()> {
    let passkey = Authenticator::add(&ui.driver, "internal").await?;
    ui.goto("/login").await?;
    ui.el("login-passkey").await?;
    ui.check_page("login-with-passkey").await?;

    // Add a passkey from the MFA tab: the first factor shows recovery codes.
    sign_in(ui, "alice").await?;
    ui.el("logout").await?;
    add_key(ui, "Laptop passkey").await?;
    arrive(ui, "/settings/account/mfa/recovery-codes/new").await?;
    assert_eq!(shown_codes(ui).await?.len(), 10);
    ui.click("recovery-codes-copied").await?;
    ui.el("webauthn-list").await?;
    assert_eq!(ui.text("mfa-status").await?, "Enabled");
    assert!(ui.text("webauthn-list").await?.contains("Laptop passkey"));
    ui.check_page("webauthn-keys").await?;

    // A passkey alone signs in from the sign-in page: offered in the
    // username field's suggestions (conditional UI, which the virtual
    // authenticator accepts at once), or with the button.
    click_away(ui, "logout").await?;
    for _ in 0..50 {
        if at(ui, "/").await? {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    if !at(ui, "/").await? {
        click_away(ui, "login-passkey").await?;
        arrive(ui, "/").await?;
    }

    // Sudo with the key: ten minutes later, new recovery codes.
    app.clock.advance(11 * 60);
    ui.goto("/settings/account/mfa").await?;
    ui.click("recovery-codes-regenerate").await?;
    ui.el("sudo-webauthn").await?;
    ui.check_page("sudo-with-key").await?;
    ui.click("sudo-webauthn").await?;
    ui.el("recovery-codes-copied").await?;
    let codes = shown_codes(ui).await?;
    assert_eq!(codes.len(), 10, "the new set, after the key stood in for the password");
    ui.click("recovery-codes-copied").await?;

    // A second key, on another authenticator (a USB key).
    passkey.remove().await?;
    let usb = Authenticator::add(&ui.driver, "usb").await?;
    add_key(ui, "USB key").await?;
    arrive(ui, "/settings/account/mfa").await?;
    let items = ui.el("webauthn-list").await?.find_all(By::Tag("li")).await?;
    assert_eq!(items.len(), 2);
    // Remove the first (the passkey whose authenticator is gone).
    let first = &items[0];
    assert!(first.text().await?.contains("Laptop passkey"));
    leave(ui).await?;
    first.find(By::ClassName("webauthn-remove")).await?.click().await?;
    arrive(ui, "/settings/account/mfa").await?;
    assert_eq!(ui.el("webauthn-list").await?.find_all(By::Tag("li")).await?.len(), 1);
    sign_out(ui).await?;

    // Password, then the key (it starts at once: keys only).
    sign_in(ui, "alice").await?;
    arrive(ui, "/").await?;
    sign_out(ui).await?;

    // A clone of the key (its counter set back) is refused, and says why.
    usb.rewind_sign_count(0).await?;
    sign_in(ui, "alice").await?;
    arrive(ui, "/login/two-factor").await?;
    let status = ui.el("webauthn-status").await?;
    for _ in 0..600 {
        if status.text().await?.contains("counter") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(status.text().await?.contains("counter"), "{}", status.text().await?);
    assert_eq!(status.attr("role").await?.as_deref(), Some("alert"));
    ui.check_page("key-refused").await?;

    // Key-only 2FA, key lost: a recovery code from the set shown last.
    usb.remove().await?;
    ui.type_into("code", &codes[0]).await?;
    click_away(ui, "two-factor-submit").await?;
    arrive(ui, "/").await?;
    Ok(())
}

/// The recovery codes on the page.
async fn shown_codes(ui: &Ui) -> WebDriverResult<Vec<String>> {
    let mut out = vec![];
    for li in ui.el("recovery-codes").await?.find_all(By::Tag("li")).await? {
        out.push(li.text().await?.trim().to_string());
    }
    Ok(out)
}

/// A load balancer for the test: every request goes to instance A except
/// a ceremony's `…/finish`, which goes to B — so each ceremony started in
/// the browser is begun on one instance and finished on the other.
struct Balancer {
    a: String,
    b: String,
    http: reqwest::Client,
    finished_on_b: std::sync::atomic::AtomicUsize,
}

async fn balance(
    req: actix_web::HttpRequest,
    body: actix_web::web::Bytes,
    lb: actix_web::web::Data<Balancer>,
) -> actix_web::HttpResponse {
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_string();
    let to_b = req.path().ends_with("/finish");
    if to_b {
        lb.finished_on_b.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    let base = if to_b { &lb.b } else { &lb.a };
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes()).unwrap();
    let mut out = lb.http.request(method, format!("{base}{target}"));
    for (name, value) in req.headers() {
        if !matches!(name.as_str(), "host" | "content-length" | "connection") {
            out = out.header(name.as_str(), value.as_bytes());
        }
    }
    let resp = out.body(body.to_vec()).send().await.expect("the instance answers");
    let mut back =
        actix_web::HttpResponse::build(actix_web::http::StatusCode::from_u16(resp.status().as_u16()).unwrap());
    for (name, value) in resp.headers() {
        if !matches!(name.as_str(), "content-length" | "transfer-encoding" | "connection") {
            back.append_header((name.as_str(), value.as_bytes()));
        }
    }
    back.body(resp.bytes().await.unwrap().to_vec())
}

/// A ceremony begun on instance A finishes on instance B, in Chromium: a
/// key added, then the second step with it (on PostgreSQL in its pass).
#[tokio::test]
async fn browser_ceremonies_finish_on_another_instance() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let public = format!("http://localhost:{port}");
    let app = Arc::new(
        TestApp::spawn_with(|c| c.public_url = Some(latchkey::config::PublicUrl::parse(&public).unwrap())).await,
    );
    let b = app.another_instance().await;
    let lb = actix_web::web::Data::new(Balancer {
        a: app.base.clone(),
        b,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        finished_on_b: Default::default(),
    });
    let data = lb.clone();
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(data.clone())
            .default_service(actix_web::web::to(balance))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    app.create_user("alice", false).await;
    let counter = lb.clone();
    with_browser("webauthn-instances", &public, Mode::Default, move |ui| async move {
        let _key = Authenticator::add(&ui.driver, "usb").await?;
        sign_in(&ui, "alice").await?;
        ui.el("logout").await?;
        add_key(&ui, "Desk key").await?;
        arrive(&ui, "/settings/account/mfa/recovery-codes/new").await?;
        ui.click("recovery-codes-copied").await?;
        assert!(ui.text("webauthn-list").await?.contains("Desk key"));
        sign_out(&ui).await?;
        // Keys only: the second step starts at once, and finishes on B.
        sign_in(&ui, "alice").await?;
        arrive(&ui, "/").await?;
        Ok(())
    })
    .await;
    if super::find_tools().is_ok() {
        assert!(
            counter.finished_on_b.load(std::sync::atomic::Ordering::SeqCst) >= 2,
            "registration and sign-in each finished on B"
        );
    }
}
