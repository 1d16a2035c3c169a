//! The test harness: a real server per test, cookie-keeping clients, and
//! independent implementations (oathtool, zbarimg) to check our output.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use latchkey::auth::Auth;
use latchkey::config::Config;
use latchkey::core::clock::Clock;
pub use latchkey::core::types::UserId;
use latchkey::db::{DatabaseUrl, Db, users};
use latchkey::startup::Application;
use reqwest::StatusCode;
use reqwest::cookie::{CookieStore, Jar};
use tempfile::TempDir;

pub const PASSWORD: &str = "correct horse battery staple";

pub struct TestApp {
    pub base: String,
    pub db: Db,
    /// The service of the first instance (for checks and set-up that go
    /// through the same rules as the web pages).
    pub auth: Arc<Auth>,
    pub clock: Clock,
    pub setup_url: Option<String>,
    /// The SQLite file, on the SQLite pass.
    pub db_path: Option<PathBuf>,
    /// The database URL, as `DATABASE_URL` would give it.
    pub database_url: String,
    pub config: Config,
    pub dir: TempDir,
    pub pg: Option<PgTestDatabase>,
}

/// Which backend this run of the suite tests: SQLite unless
/// `LATCHKEY_TEST_BACKEND=postgres` (scripts/test runs both).
pub fn testing_postgres() -> bool {
    std::env::var("LATCHKEY_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

/// A fresh PostgreSQL database for one test, dropped afterwards.
pub struct PgTestDatabase {
    pub admin_url: String,
    pub name: String,
    pub url: String,
}

impl PgTestDatabase {
    pub fn create() -> Self {
        use diesel::{Connection, RunQueryDsl};
        let admin_url = std::env::var("LATCHKEY_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!(
            "latchkey_test_{}",
            latchkey::core::keys::hex(&latchkey::core::random_bytes::<8>())
        );
        latchkey::db::prepare_postgres_client();
        let mut admin = diesel::PgConnection::establish(&admin_url)
            .unwrap_or_else(|e| panic!("PostgreSQL at LATCHKEY_TEST_POSTGRES_URL is unreachable: {e}"));
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .unwrap();
        let base = &admin_url[..admin_url.rfind('/').expect("URL with a database")];
        let url = format!("{base}/{name}");
        Self { admin_url, name, url }
    }
}

impl Drop for PgTestDatabase {
    fn drop(&mut self) {
        use diesel::{Connection, RunQueryDsl};
        if let Ok(mut admin) = diesel::PgConnection::establish(&self.admin_url) {
            let _ =
                diesel::sql_query(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).execute(&mut admin);
        }
    }
}

/// A PostgreSQL connection of the test's own, made as the server makes its
/// (OpenSSL prepared first: `latchkey::db::prepare_postgres_client`).
pub fn pg_connect(url: &str) -> diesel::PgConnection {
    use diesel::Connection;
    latchkey::db::prepare_postgres_client();
    diesel::PgConnection::establish(url).unwrap_or_else(|e| panic!("cannot connect to PostgreSQL: {e}"))
}

/// A test configuration on a fresh, empty database of the backend under test.
pub fn fresh_config() -> (Config, TempDir, Option<PgTestDatabase>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let pg = testing_postgres().then(PgTestDatabase::create);
    let database_url = match &pg {
        Some(db) => DatabaseUrl::Postgres(db.url.clone()),
        None => DatabaseUrl::Sqlite(dir.path().join("latchkey.db")),
    };
    let config = Config {
        bind: "127.0.0.1:0".into(),
        database_url,
        public_url: None,
        issuer: "Latchkey Test".into(),
        key_file: dir.path().join("latchkey.key"),
        bcrypt_cost: 4,
        totp_skew: 1,
        trusted_proxies: vec![],
        metrics_bind: None,
        mail: None,
        // Real time to start with (so oathtool agrees), then moved by tests.
        clock: Clock::manual(latchkey::core::clock::system_now()),
    };
    (config, dir, pg)
}

/// Start a server; returns its base URL, database handle and setup link.
pub async fn start(config: Config) -> (String, Db, Option<String>, Arc<Auth>) {
    start_at(config, None).await
}

/// Start a server on `listener` (bound already, and named by the public
/// URL: the base URL is then the public URL), or on `config.bind`.
pub async fn start_at(
    config: Config,
    listener: Option<std::net::TcpListener>,
) -> (String, Db, Option<String>, Arc<Auth>) {
    let public = listener
        .as_ref()
        .and(config.public_url.as_ref())
        .map(|u| u.origin.clone());
    let app = match listener {
        Some(l) => Application::build_on(config, l).await,
        None => Application::build(config).await,
    }
    .expect("server builds");
    let base = public.unwrap_or_else(|| format!("http://{}", app.address()));
    let db = app.db();
    let auth = app.auth();
    let setup_url = app.setup_url().map(str::to_string);
    tokio::spawn(app.run_until_stopped());
    (base, db, setup_url, auth)
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> Self {
        Self::spawn_on(tweak, None).await
    }

    /// A server whose public URL is `http://localhost:PORT` — a domain name,
    /// so security keys and passkeys work (browsers refuse them on IP
    /// addresses, and a `localhost` origin is a secure context).
    pub async fn spawn_with_keys() -> Self {
        Self::spawn_public(|_| {}).await
    }

    /// A server on `http://localhost:PORT` (its public URL), configured
    /// further by `tweak` (which sees the public URL set).
    pub async fn spawn_public(tweak: impl FnOnce(&mut Config)) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        Self::spawn_on(
            |c| {
                c.public_url = Some(latchkey::config::PublicUrl::parse(&format!("http://localhost:{port}")).unwrap());
                tweak(c);
            },
            Some(listener),
        )
        .await
    }

    /// A server with email notifications through `smtp_url` (and keys).
    pub async fn spawn_with_mail(smtp_url: &str) -> Self {
        let smtp = latchkey::mail::SmtpUrl::parse(smtp_url).unwrap();
        Self::spawn_public(|c| {
            let base = c.public_url.as_ref().unwrap().origin.clone();
            c.mail = Some(latchkey::mail::MailSettings::new(smtp, None, &c.issuer, &base).unwrap());
        })
        .await
    }

    async fn spawn_on(tweak: impl FnOnce(&mut Config), listener: Option<std::net::TcpListener>) -> Self {
        let (mut config, dir, pg) = fresh_config();
        tweak(&mut config);
        let (base, db, setup_url, auth) = start_at(config.clone(), listener).await;
        let (db_path, database_url) = match &config.database_url {
            DatabaseUrl::Sqlite(p) => (Some(p.clone()), format!("sqlite://{}", p.display())),
            DatabaseUrl::Postgres(u) => (None, u.clone()),
        };
        Self {
            base,
            db,
            auth,
            clock: config.clock.clone(),
            setup_url,
            db_path,
            database_url,
            config,
            dir,
            pg,
        }
    }

    /// Start one more server on the same database, key and clock (another
    /// instance of a multi-instance deployment). Returns its base URL.
    pub async fn another_instance(&self) -> String {
        let base = start(self.config.clone()).await.0;
        // On the same host name as the first, so the browser's cookies go along.
        if self.base.starts_with("http://localhost:") {
            base.replace("http://127.0.0.1:", "http://localhost:")
        } else {
            base
        }
    }

    pub fn client(&self) -> TestClient {
        TestClient::new(&self.base)
    }

    /// Create a user directly in the database (as `latchkey user add` does).
    pub async fn create_user(&self, name: &str, admin: bool) -> UserId {
        let hash = latchkey::core::password::hash(PASSWORD, 4).unwrap();
        let now = self.clock.time();
        let name = name.to_string();
        self.db
            .run(move |c| {
                let account = users::NewAccount {
                    username: &name,
                    password_hash: &hash,
                    is_admin: admin,
                    must_change_password: false,
                };
                users::create(c, account, now).map_err(|e| match e {
                    users::CreateError::Db(d) => d,
                    other => panic!("{other}"),
                })
            })
            .await
            .expect("user created")
            .id
    }

    /// Whether the user has 2FA on (at least one confirmed credential).
    pub async fn mfa_on(&self, name: &str) -> bool {
        let id = self.user(name).await.id;
        self.db
            .run(move |c| latchkey::db::credentials::has_confirmed(c, id))
            .await
            .unwrap()
    }

    /// Every credential row of the user, confirmed or pending, oldest first.
    pub async fn credentials(&self, id: UserId) -> Vec<latchkey::db::credentials::Credential> {
        use diesel::prelude::*;
        use latchkey::schema::credentials as t;
        self.db
            .run(move |c| {
                Ok(t::table
                    .filter(t::user_id.eq(id.0))
                    .order(t::id.asc())
                    .select(latchkey::db::credentials::Credential::as_select())
                    .load(c)?)
            })
            .await
            .unwrap()
    }

    /// The last accepted TOTP step of the user's authenticator app, if any.
    pub async fn totp_last_step(&self, name: &str) -> Option<i64> {
        let id = self.user(name).await.id;
        self.credentials(id)
            .await
            .into_iter()
            .find(|c| c.kind == "totp" && c.confirmed_at.is_some())
            .and_then(|c| c.last_step)
    }

    pub async fn user(&self, name: &str) -> users::User {
        let name = name.to_string();
        self.db
            .run(move |c| users::find_by_name(c, &name))
            .await
            .unwrap()
            .expect("user exists")
    }

    pub async fn count(&self, sql_table: &'static str) -> i64 {
        use diesel::prelude::*;
        #[derive(QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        self.db
            .run(move |c| {
                let q = diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {sql_table}"));
                Ok(latchkey::on_backend!(c, |c| q.get_result::<N>(c))?.n)
            })
            .await
            .unwrap()
    }

    /// Everything the database holds, as text: the SQLite files byte for
    /// byte, or pg_dump's output.
    pub fn raw_contents(&self) -> Vec<u8> {
        match &self.db_path {
            Some(path) => {
                let mut all = Vec::new();
                for suffix in ["", "-wal", "-shm"] {
                    let p = path.with_file_name(format!("latchkey.db{suffix}"));
                    if let Ok(bytes) = std::fs::read(&p) {
                        all.extend(bytes);
                    }
                }
                all
            }
            None => {
                let out = Command::new("pg_dump")
                    .args(["--data-only", "--dbname", &self.database_url])
                    .output()
                    .expect("pg_dump is installed (postgresql-client)");
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                out.stdout
            }
        }
    }

    pub async fn events(&self, user_id: UserId) -> Vec<String> {
        self.db
            .run(move |c| latchkey::db::events::kinds_for_user(c, user_id))
            .await
            .unwrap()
    }
}

pub struct Page {
    pub status: StatusCode,
    pub body: String,
    pub location: Option<String>,
}

impl Page {
    pub fn csrf(&self) -> Option<String> {
        attr_after(&self.body, "name=\"csrf_token\" value=\"")
    }
    pub fn text_of(&self, id: &str) -> Option<String> {
        text_of_id(&self.body, id)
    }
    pub fn flash(&self) -> Option<String> {
        self.text_of("flash")
    }
    pub fn redirects_to(&self, path: &str) -> bool {
        self.status == StatusCode::SEE_OTHER && self.location.as_deref() == Some(path)
    }
}

/// A browser-like client: keeps cookies, does not follow redirects.
pub struct TestClient {
    pub http: reqwest::Client,
    pub jar: Arc<Jar>,
    pub base: String,
    csrf: std::sync::Mutex<Option<String>>,
}

/// Every request on a connection of its own (`pool_max_idle_per_host(0)`):
/// a kept-alive connection that the server closes after its idle timeout
/// just as the next request goes out fails that request with no answer
/// (hyper's `IncompleteMessage`), which browsers retry and a test must not
/// mistake for the server's. Seen under load, where waits between requests
/// on one connection grow past the timeout.
fn http_client(jar: &Arc<Jar>, headers: reqwest::header::HeaderMap) -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .default_headers(headers)
        .build()
        .unwrap()
}

impl TestClient {
    pub fn new(base: &str) -> Self {
        Self::with_jar(base, Arc::new(Jar::default()))
    }

    /// A fresh browser whose requests say (in `X-Forwarded-For`) that they
    /// come from `address`: for a server started with `--trusted-proxies
    /// 127.0.0.1`, as if through a reverse proxy.
    pub fn forwarded_for(base: &str, address: &str) -> Self {
        Self::with_headers(base, &[("x-forwarded-for", address)])
    }

    /// A fresh browser that sends these headers on every request (say, a
    /// `User-Agent`, and `X-Forwarded-For` for a server that trusts
    /// 127.0.0.1 as its proxy).
    pub fn with_headers(base: &str, headers: &[(&'static str, &str)]) -> Self {
        let jar = Arc::new(Jar::default());
        let mut map = reqwest::header::HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, value.parse().unwrap());
        }
        Self {
            http: http_client(&jar, map),
            jar,
            base: base.to_string(),
            csrf: Default::default(),
        }
    }

    /// A client with these cookies (a browser that comes back).
    pub fn with_jar(base: &str, jar: Arc<Jar>) -> Self {
        Self {
            http: http_client(&jar, Default::default()),
            jar,
            base: base.to_string(),
            csrf: Default::default(),
        }
    }

    /// The same browser (cookies, CSRF token) talking to another instance.
    pub fn on(&self, base: &str) -> TestClient {
        let csrf = std::sync::Mutex::new(self.csrf.lock().unwrap().clone());
        Self {
            http: http_client(&self.jar, Default::default()),
            jar: self.jar.clone(),
            base: base.to_string(),
            csrf,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn page(resp: reqwest::Response) -> Page {
        let status = resp.status();
        let location = resp.headers().get("location").map(|v| v.to_str().unwrap().to_string());
        let body = resp.text().await.unwrap();
        Page { status, body, location }
    }

    pub async fn get(&self, path: &str) -> Page {
        let p = Self::page(self.http.get(self.url(path)).send().await.unwrap()).await;
        if let Some(t) = p.csrf() {
            *self.csrf.lock().unwrap() = Some(t);
        }
        p
    }

    /// The CSRF token for this client's cookie (fetched once).
    pub async fn csrf(&self) -> String {
        if let Some(t) = self.csrf.lock().unwrap().clone() {
            return t;
        }
        let p = self.get("/login").await;
        p.csrf().expect("login page has a CSRF token")
    }

    /// POST a form with the client's CSRF token added.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let token = self.csrf().await;
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        all.push(("csrf_token", &token));
        self.post_raw(path, &all).await
    }

    /// POST as a browser does: when the answer redirects (Post/Redirect/Get),
    /// GET the page it names, and return that page.
    pub async fn post_follow(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let p = self.post(path, fields).await;
        match (&p.status, &p.location) {
            (&StatusCode::SEE_OTHER, Some(to)) => self.get(to).await,
            _ => p,
        }
    }

    /// POST exactly these fields (no token added).
    pub async fn post_raw(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body = serde_urlencoded::to_string(fields).unwrap();
        self.post_body(path, "application/x-www-form-urlencoded", body.into_bytes())
            .await
    }

    pub async fn post_body(&self, path: &str, content_type: &str, body: Vec<u8>) -> Page {
        let resp = self
            .http
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        Self::page(resp).await
    }

    /// POST a JSON body with the CSRF token in its header, as the page's
    /// script does. Returns the status, the JSON answer (or `Null`), and
    /// the `Set-Cookie` headers' presence.
    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> (StatusCode, serde_json::Value) {
        let token = self.csrf().await;
        let resp = self
            .http
            .post(self.url(path))
            .header("content-type", "application/json")
            .header("x-csrf-token", token)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
    }

    pub async fn login(&self, username: &str, password: &str) -> Page {
        self.post("/login", &[("username", username), ("password", password)])
            .await
    }

    /// The raw `Cookie` header this client would send.
    pub fn cookie_header(&self) -> String {
        let url = reqwest::Url::parse(&self.base).unwrap();
        self.jar
            .cookies(&url)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }
}

/// A session that has completed login for `user` (2FA off).
pub async fn signed_in(app: &TestApp, user: &str) -> TestClient {
    let c = app.client();
    let p = c.login(user, PASSWORD).await;
    assert!(
        p.redirects_to("/"),
        "login should succeed: {} {:?}",
        p.status,
        p.flash()
    );
    c
}

pub fn attr_after(html: &str, marker: &str) -> Option<String> {
    let start = html.find(marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_string())
}

/// Inner text of the element with `id` (tags stripped, entities for & < > " ' decoded).
pub fn text_of_id(html: &str, id: &str) -> Option<String> {
    let marker = format!("id=\"{id}\"");
    let at = html.find(&marker)?;
    let open_end = html[at..].find('>')? + at + 1;
    let tag_start = html[..at].rfind('<')?;
    let tag: String = html[tag_start + 1..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    // Find the matching close tag, counting nested tags of the same name.
    let (open, close) = (format!("<{tag}"), format!("</{tag}>"));
    let mut depth = 1;
    let mut i = open_end;
    while depth > 0 {
        let next_close = html[i..].find(&close)? + i;
        match html[i..].find(&open).map(|o| o + i) {
            Some(o) if o < next_close => {
                depth += 1;
                i = o + open.len();
            }
            _ => {
                depth -= 1;
                if depth == 0 {
                    return Some(decode(&strip_tags(&html[open_end..next_close])).trim().to_string());
                }
                i = next_close + close.len();
            }
        }
    }
    None
}

/// The `<li>` texts inside the element with `id` (list items may carry
/// attributes).
pub fn list_items(html: &str, id: &str) -> Vec<String> {
    let marker = format!("id=\"{id}\"");
    let Some(at) = html.find(&marker) else { return vec![] };
    let end = html[at..].find("</ul>").map(|e| e + at).unwrap_or(html.len());
    html[at..end]
        .split("<li")
        .skip(1)
        .filter(|s| s.starts_with('>') || s.starts_with(' '))
        .map(|s| {
            let body = &s[s.find('>').map_or(0, |i| i + 1)..];
            decode(&strip_tags(body.split("</li>").next().unwrap_or("")))
                .trim()
                .to_string()
        })
        .collect()
}

/// The raw markup of the element with `id`, up to its closing `</svg>`.
pub fn svg_with_id(html: &str, id: &str) -> Option<String> {
    let at = html.find(&format!("<svg id=\"{id}\""))?;
    let end = html[at..].find("</svg>")? + at + "</svg>".len();
    Some(html[at..end].to_string())
}

fn strip_tags(s: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for ch in s.chars() {
        match ch {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

pub fn decode(s: &str) -> String {
    s.replace("&#60;", "<")
        .replace("&#62;", ">")
        .replace("&#34;", "\"")
        .replace("&#38;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&amp;", "&")
}

/// A TOTP code computed by oathtool (an independent RFC 6238 implementation).
pub fn oathtool(secret_base32: &str, unix_time: i64) -> String {
    let out = Command::new("oathtool")
        .args(["--totp", "-b", "--now", &format!("@{unix_time}"), secret_base32])
        .output()
        .expect("oathtool is installed (apt-get install oathtool)");
    assert!(
        out.status.success(),
        "oathtool failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Rasterise an SVG with rsvg-convert and decode it with zbarimg.
pub fn decode_qr(svg: &str, dir: &std::path::Path) -> String {
    let svg_path = dir.join("qr.svg");
    let png_path = dir.join("qr.png");
    std::fs::write(&svg_path, svg).unwrap();
    let status = Command::new("rsvg-convert")
        .args(["--width", "400", "--output"])
        .arg(&png_path)
        .arg(&svg_path)
        .status()
        .expect("rsvg-convert is installed (apt-get install librsvg2-bin)");
    assert!(status.success());
    let out = Command::new("zbarimg")
        .args(["--raw", "-q"])
        .arg(&png_path)
        .output()
        .expect("zbarimg is installed (apt-get install zbar-tools)");
    assert!(out.status.success(), "zbarimg found no QR code");
    String::from_utf8(out.stdout)
        .unwrap()
        .trim_end_matches('\n')
        .to_string()
}

/// Signed in with 2FA enabled, ready to use: the client, the Base32 secret,
/// the recovery codes, and the time step used to confirm.
pub struct Enrolled {
    pub client: TestClient,
    pub secret: String,
    pub codes: Vec<String>,
}

/// Walk MFA setup over HTTP as a person would: Enable → read the secret →
/// confirm with oathtool's code → recovery codes → Copied.
pub async fn enrol(app: &TestApp, client: TestClient) -> Enrolled {
    let setup = client.post_follow("/settings/account/mfa/enable", &[]).await;
    assert_eq!(setup.status, StatusCode::OK, "setup page: {}", setup.body);
    let secret = setup.text_of("mfa-secret").expect("secret shown").replace(' ', "");
    let code = oathtool(&secret, app.clock.now());
    let shown = client
        .post_follow("/settings/account/mfa/confirm", &[("code", &code)])
        .await;
    assert_eq!(shown.status, StatusCode::OK, "confirm: {:?}", shown.flash());
    let codes = list_items(&shown.body, "recovery-codes");
    assert_eq!(codes.len(), 10);
    let done = client.post("/settings/account/mfa/recovery-codes/copied", &[]).await;
    assert!(done.redirects_to("/settings/account/mfa"));
    Enrolled { client, secret, codes }
}

/// Log in with the password, then with `code`, on a fresh client.
pub async fn login_with_code(app: &TestApp, user: &str, code: &str) -> (TestClient, Page) {
    let c = app.client();
    let p = c.login(user, PASSWORD).await;
    assert!(
        p.redirects_to("/login/two-factor"),
        "password step: {} {:?}",
        p.status,
        p.location
    );
    let p = c.post("/login/two-factor", &[("code", code)]).await;
    (c, p)
}

/// A well-formed code that is wrong for every step the server accepts now.
pub fn wrong_code(secret_base32: &str, now: i64) -> String {
    let valid: Vec<String> = (-2..=2).map(|k| oathtool(secret_base32, now + k * 30)).collect();
    (0..)
        .map(|n: u32| format!("{:06}", (n * 7919) % 1_000_000))
        .find(|c| !valid.contains(c))
        .unwrap()
}

/// A database for server processes started from the binary: an SQLite file
/// in `dir` on the SQLite pass, a fresh PostgreSQL database on the other
/// (dropped with the returned guard). Returns the URL as `DATABASE_URL`
/// takes it.
pub fn binary_database(dir: &std::path::Path) -> (String, Option<PgTestDatabase>) {
    if testing_postgres() {
        let pg = PgTestDatabase::create();
        (pg.url.clone(), Some(pg))
    } else {
        (format!("sqlite://{}", dir.join("latchkey.db").display()), None)
    }
}

/// The `latchkey` binary running as a server process in `dir` (its key file
/// there), on a free port, its log collected line by line. Dropping it kills
/// the process if it still runs.
pub struct ServerProcess {
    pub child: std::process::Child,
    pub base: String,
    log: Arc<std::sync::Mutex<Vec<String>>>,
    lines: std::sync::mpsc::Receiver<String>,
}

impl ServerProcess {
    pub fn start(dir: &std::path::Path, database_url: &str, extra: &[&str]) -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
            .args(["serve", "--bind", "127.0.0.1:0", "--bcrypt-cost", "4"])
            .args(extra)
            .env("RUST_LOG", "info")
            .env("DATABASE_URL", database_url)
            .env("LATCHKEY_KEY_FILE", dir.join("latchkey.key"))
            .current_dir(dir)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, lines) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let mut server = Self {
            child,
            base: String::new(),
            log,
            lines,
        };
        let line = server.wait_for_line("listening on ");
        let i = line.find("listening on ").unwrap();
        server.base = line[i + "listening on ".len()..].trim().to_string();
        server
    }

    /// The next log line containing `needle` (a generous guard against a
    /// hang, not a measure: 60 s).
    pub fn wait_for_line(&mut self, needle: &str) -> String {
        loop {
            match self.lines.recv_timeout(std::time::Duration::from_secs(60)) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(e) => panic!("no log line with {needle:?} ({e}); log:\n{}", self.log().join("\n")),
            }
        }
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    pub fn signal(&self, signal: &str) {
        let ok = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{signal}");
    }

    /// Wait for the process to exit (guard: 60 s).
    pub async fn exit_status(&mut self) -> std::process::ExitStatus {
        for _ in 0..6000 {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("still running after 60 s; log:\n{}", self.log().join("\n"));
    }

    pub fn address(&self) -> std::net::SocketAddr {
        self.base.trim_start_matches("http://").parse().unwrap()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Start the `latchkey` binary in `dir` (its SQLite file and key there) on a
/// free port; returns the process and its base URL, read from its log. The
/// caller kills and waits for the child it gets back.
#[allow(clippy::zombie_processes)]
pub fn start_server_binary(dir: &std::path::Path) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(["serve", "--bind", "127.0.0.1:0", "--bcrypt-cost", "4"])
        .env("RUST_LOG", "info")
        .current_dir(dir)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = server.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    loop {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("server starts");
        if let Some(i) = line.find("listening on ") {
            return (server, line[i + "listening on ".len()..].trim().to_string());
        }
    }
}

/// `latchkey user add NAME --bcrypt-cost COST` in `dir`, password on stdin.
pub fn cli_add_user(dir: &std::path::Path, name: &str, cost: u32) {
    cli_add_user_to(
        dir,
        &format!("sqlite://{}", dir.join("latchkey.db").display()),
        name,
        cost,
    );
}

/// `latchkey user add NAME` against `database_url`, the key file in `dir`.
pub fn cli_add_user_to(dir: &std::path::Path, database_url: &str, name: &str, cost: u32) {
    use std::io::Write;
    let mut add = std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(["user", "add", name, "--bcrypt-cost", &cost.to_string()])
        .env("DATABASE_URL", database_url)
        .env("LATCHKEY_KEY_FILE", dir.join("latchkey.key"))
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    add.stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .unwrap();
    assert!(add.wait().unwrap().success());
}
