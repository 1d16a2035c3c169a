//! What an operator watches: HEAD on every GET route, request ids in the
//! header, the logs and the 500 page, JSON logs, and Prometheus metrics —
//! read by promtool and scraped by a real Prometheus server.

use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::*;
use crate::ops_support::*;

/// Every GET route of the contract (SPEC §5.2) and the others, signed out
/// and signed in as an administrator: HEAD answers what GET answers,
/// without a body.
#[tokio::test]
async fn head_answers_every_get_route() {
    let app = TestApp::spawn().await;
    let admin_id = app.create_user("root", true).await;
    let admin = signed_in(&app, "root").await;
    let anonymous = app.client();
    let paths = [
        "/healthz".to_string(),
        "/login".into(),
        "/login/two-factor".into(),
        "/".into(),
        "/settings".into(),
        "/settings/account".into(),
        "/settings/account/password".into(),
        "/settings/account/mfa".into(),
        "/settings/account/mfa/disable".into(),
        "/settings/account/sudo".into(),
        "/settings/account/sessions".into(),
        "/settings/account/security-log".into(),
        "/admin/users".into(),
        format!("/admin/users/{}/reset-mfa", admin_id.0),
        "/admin/security-log".into(),
        latchkey::web::assets::css_href().to_string(),
        "/setup/not-a-token".into(),
        "/no/such/page".into(),
    ];
    for client in [&anonymous, &admin] {
        for path in &paths {
            let get = client.http.get(client.url(path)).send().await.unwrap();
            let head = client.http.head(client.url(path)).send().await.unwrap();
            assert_eq!(head.status(), get.status(), "HEAD {path}");
            assert_ne!(head.status(), StatusCode::METHOD_NOT_ALLOWED, "HEAD {path}");
            let (gl, hl) = (
                get.headers().get("location").cloned(),
                head.headers().get("location").cloned(),
            );
            assert_eq!(hl, gl, "HEAD {path} redirects where GET does");
            assert!(head.headers().contains_key("x-request-id"));
            assert!(head.headers().contains_key("content-security-policy"));
            assert!(head.bytes().await.unwrap().is_empty(), "HEAD {path} has no body");
        }
    }
    // The contract's pages really answer (not a 404 for both).
    let h = admin
        .http
        .head(admin.url("/settings/account/mfa"))
        .send()
        .await
        .unwrap();
    assert_eq!(h.status(), StatusCode::OK);
    let h = anonymous.http.head(anonymous.url("/healthz")).send().await.unwrap();
    assert_eq!(h.status(), StatusCode::OK);
    // HEAD changes nothing: a POST-only route is not run by it.
    let h = admin.http.head(admin.url("/logout")).send().await.unwrap();
    assert_eq!(h.status(), StatusCode::NOT_FOUND);
    assert_eq!(admin.get("/").await.status, StatusCode::OK, "still signed in");
}

/// `--log-format json`: one JSON object per line; every line written while
/// a request runs carries its id, which is also the `X-Request-Id` header
/// and the 500 page's incident id.
#[tokio::test]
async fn json_logs_carry_the_request_id_of_the_500_page() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let (url, _pg) = binary_database(root);
    let key = root.join("latchkey.key");
    let mut s = serve(
        root,
        &url,
        &key,
        &["--log-format", "json"],
        &[("RUST_LOG", "info,latchkey::access=debug")],
    );
    add_user(root, &url, &key, "alice");
    let alice = sign_in(&s.base, "alice").await;
    enrol_now(&alice).await;
    // A secret sealed under a key the server does not have: our fault, a 500.
    {
        use diesel::prelude::*;
        use latchkey::schema::credentials as t;
        let mut c = latchkey::db::Db::connect(&latchkey::db::DatabaseUrl::parse(&url).unwrap()).unwrap();
        diesel::update(t::table)
            .set(t::secret_sealed.eq("v1.k9.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"))
            .execute(&mut c)
            .unwrap();
    }
    let c = TestClient::new(&s.base);
    assert!(c.login("alice", PASSWORD).await.redirects_to("/login/two-factor"));
    let token = c.csrf().await;
    let resp = c
        .http
        .post(c.url("/login/two-factor"))
        .form(&[("code", "123456"), ("csrf_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    let page = TestClient::page(resp).await;
    assert_eq!(
        page.text_of("incident-id").as_deref(),
        Some(id.as_str()),
        "incident id = request id"
    );
    assert!(!page.body.contains("k9"), "no detail on the page");

    // The error line, then the access line (written when the response is
    // done), both in the request's span.
    let error = s.wait_for(&format!("\"incident\":\"{id}\""));
    s.wait_for(&format!("\"request_id\":\"{id}\""));
    let mut request_lines = 0;
    for line in s.log() {
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line}"));
        assert!(v["timestamp"].is_string() && v["level"].is_string(), "{line}");
        if let Some(span) = v.get("span") {
            assert!(
                span["request_id"].is_string(),
                "a line in a request without its id: {line}"
            );
            assert_eq!(span["name"], "request");
            if span["request_id"] == id.as_str() {
                request_lines += 1;
                assert_eq!(span["route"], "/login/two-factor");
            }
        }
    }
    let v: serde_json::Value = serde_json::from_str(&error).unwrap();
    assert_eq!(v["level"], "ERROR");
    assert_eq!(v["span"]["request_id"], id.as_str());
    assert!(request_lines >= 2, "the error line and the access line");
    // Every response carries an id of its own.
    let a = c.http.get(c.url("/login")).send().await.unwrap();
    let b = c.http.get(c.url("/login")).send().await.unwrap();
    assert_ne!(a.headers()["x-request-id"], b.headers()["x-request-id"]);
    s.stop();
}

/// Parse the OpenMetrics text: the value of `name{labels}` (labels as
/// written, in order), or 0 when absent.
fn value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// The metrics as Prometheus asks for them (OpenMetrics).
async fn scrape(address: &str) -> String {
    let resp = reqwest::Client::new()
        .get(format!("http://{address}/metrics"))
        .header("accept", "application/openmetrics-text; version=1.0.0,text/plain;q=0.5")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = resp.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"));
    text
}

/// The metrics as `curl` gets them (the classic text format), checked by promtool.
async fn scrape_classic(address: &str) -> String {
    let resp = reqwest::get(format!("http://{address}/metrics")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = resp.text().await.unwrap();
    promtool_accepts(&text);
    text
}

/// Prometheus' own linter accepts the output.
fn promtool_accepts(metrics: &str) {
    use std::io::Write;
    let mut p = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is installed (apt-get install prometheus)");
    p.stdin.take().unwrap().write_all(metrics.as_bytes()).unwrap();
    let out = p.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A real Prometheus server scraping the metrics listener. Killed on drop.
struct Prometheus {
    child: std::process::Child,
    api: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: latchkey\n    \
                 static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let child = std::process::Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("prometheus is installed (apt-get install prometheus)");
        Self {
            child,
            api: format!("http://127.0.0.1:{port}/api/v1/query"),
            _dir: dir,
        }
    }

    /// The value of an instant query, once Prometheus has one (guard: 60 s).
    async fn wait_for(&self, query: &str, wanted: impl Fn(f64) -> bool) -> f64 {
        let mut last = None;
        for _ in 0..600 {
            if let Ok(resp) = reqwest::Client::new()
                .get(&self.api)
                .query(&[("query", query)])
                .send()
                .await
                && let Ok(body) = resp.text().await
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(&body)
                && let Some(s) = v["data"]["result"][0]["value"][1].as_str()
            {
                let x: f64 = s.parse().unwrap();
                if wanted(x) {
                    return x;
                }
                last = Some(x);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("Prometheus never had the wanted value of {query} (last: {last:?})");
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The counters move as a journey runs, on a metrics listener of its own;
/// promtool accepts the output, and a real Prometheus scrapes it.
#[tokio::test]
async fn metrics_follow_a_journey_and_prometheus_scrapes_them() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let (url, _pg) = binary_database(root);
    let key = root.join("latchkey.key");
    let mut s = serve(root, &url, &key, &["--metrics-bind", "127.0.0.1:0"], &[]);
    let line = s.wait_for("Metrics are served on http://");
    let at = line.find("http://").unwrap() + "http://".len();
    let metrics_addr = line[at..].trim_end_matches("/metrics").trim().to_string();
    let metrics_addr = metrics_addr.split('/').next().unwrap().to_string();

    // Not on the pages' listener, and the pages are not on this one.
    assert_eq!(s.client().get("/metrics").await.status, StatusCode::NOT_FOUND);
    let login = reqwest::get(format!("http://{metrics_addr}/login")).await.unwrap();
    assert_eq!(login.status(), StatusCode::NOT_FOUND);

    let before = scrape(&metrics_addr).await;
    scrape_classic(&metrics_addr).await;
    for series in [
        "latchkey_sign_ins_total{outcome=\"success\"}",
        "latchkey_second_factor_checks_total{kind=\"totp\",outcome=\"accepted\"}",
        "latchkey_lockouts_total{step=\"second_factor\"}",
    ] {
        assert!(before.contains(series), "{series} is there from the start:\n{before}");
    }

    // The journey: a wrong password, a sign-in, 2FA on, a wrong code, a
    // code, a recovery code, then five wrong codes in a row (a lockout, and
    // the end of that sign-in).
    add_user(root, &url, &key, "alice");
    let c = s.client();
    assert_eq!(
        c.login("alice", "wrong password").await.status,
        StatusCode::UNAUTHORIZED
    );
    let alice = sign_in(&s.base, "alice").await;
    let (secret, codes) = enrol_now(&alice).await;
    let wrong = wrong_code(&secret, now());
    let c = TestClient::new(&s.base);
    assert!(c.login("alice", PASSWORD).await.redirects_to("/login/two-factor"));
    assert_eq!(
        c.post("/login/two-factor", &[("code", &wrong)]).await.status,
        StatusCode::UNAUTHORIZED
    );
    let p = c.post("/login/two-factor", &[("code", &next_code(&secret))]).await;
    assert!(p.redirects_to("/"), "{:?}", p.flash());
    let (_, p) = sign_in_with_code(&s.base, "alice", &codes[0]).await;
    assert!(p.redirects_to("/"));
    let c = TestClient::new(&s.base);
    assert!(c.login("alice", PASSWORD).await.redirects_to("/login/two-factor"));
    for _ in 0..5 {
        c.post("/login/two-factor", &[("code", &wrong)]).await;
    }

    let after = scrape(&metrics_addr).await;
    let classic = scrape_classic(&metrics_addr).await;
    assert!(classic.contains("# TYPE latchkey_sign_ins_total counter"));
    let moved = |series: &str| value(&after, series) - value(&before, series);
    assert_eq!(moved("latchkey_sign_ins_total{outcome=\"wrong_password\"}"), 1.0);
    // Alice's password sign-in, the code, the recovery code (Enable's
    // sign-in is the first).
    assert_eq!(moved("latchkey_sign_ins_total{outcome=\"success\"}"), 3.0);
    assert_eq!(
        moved("latchkey_second_factor_checks_total{kind=\"totp\",outcome=\"wrong\"}"),
        6.0
    );
    assert_eq!(
        moved("latchkey_second_factor_checks_total{kind=\"totp\",outcome=\"accepted\"}"),
        1.0
    );
    assert_eq!(
        moved("latchkey_second_factor_checks_total{kind=\"recovery_code\",outcome=\"accepted\"}"),
        1.0
    );
    // The fifth wrong code in a row locks the account's second factor.
    assert_eq!(moved("latchkey_lockouts_total{step=\"second_factor\"}"), 1.0);
    assert_eq!(moved("latchkey_sign_ins_total{outcome=\"too_many_codes\"}"), 1.0);
    assert_eq!(value(&after, "latchkey_users_with_two_factor"), 1.0);
    assert!(value(&after, "latchkey_active_sessions") >= 3.0, "{after}");
    assert!(
        value(
            &after,
            "latchkey_http_request_duration_seconds_count{route=\"/login/two-factor\",method=\"POST\"}"
        ) >= 7.0
    );
    assert!(!after.contains("route=\"/setup/"), "route patterns only");
    assert!(after.contains("latchkey_password_hash_queue_depth 0"));
    let lane = if testing_postgres() { "pool" } else { "writer" };
    assert!(value(&after, &format!("latchkey_db_wait_seconds_count{{lane=\"{lane}\"}}")) > 0.0);

    // A real Prometheus server scrapes the listener and sees the same.
    let prometheus = Prometheus::start(&metrics_addr);
    let up = prometheus.wait_for("up{job=\"latchkey\"}", |v| v == 1.0).await;
    assert_eq!(up, 1.0);
    let success = value(&after, "latchkey_sign_ins_total{outcome=\"success\"}");
    prometheus
        .wait_for("latchkey_sign_ins_total{outcome=\"success\"}", |v| v >= success)
        .await;
    // One more sign-in: Prometheus sees the counter move.
    add_user(root, &url, &key, "bob");
    sign_in(&s.base, "bob").await;
    prometheus
        .wait_for("latchkey_sign_ins_total{outcome=\"success\"}", |v| v >= success + 1.0)
        .await;
    prometheus
        .wait_for(
            "sum(latchkey_http_request_duration_seconds_count{route=\"/login\"})",
            |v| v > 0.0,
        )
        .await;
    // HEAD on the metrics listener too.
    let head = reqwest::Client::new()
        .head(format!("http://{metrics_addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    drop(prometheus);
    s.stop();
}
