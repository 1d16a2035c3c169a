//! Hostile input: malformed or malicious requests of every kind. Each gets a
//! clear 4xx (or the normal page) — never a 5xx — and nothing stored changes.

use reqwest::StatusCode;

use crate::helpers::*;

/// What must not change: accounts, their 2FA state and recovery codes.
async fn stored_state(app: &TestApp) -> String {
    app.db
        .run(|c| {
            let mut out = String::new();
            for u in latchkey::db::users::all(c)? {
                let left = latchkey::db::recovery::remaining(c, u.id)?;
                let creds: Vec<_> = {
                    use diesel::prelude::*;
                    use latchkey::schema::credentials as t;
                    t::table
                        .filter(t::user_id.eq(u.id.0))
                        .order(t::id.asc())
                        .select((t::kind, t::secret_sealed, t::confirmed_at, t::last_step, t::attempts))
                        .load::<(String, Option<String>, Option<i64>, Option<i64>, i32)>(c)?
                };
                out.push_str(&format!(
                    "{} {} {} {:?} {} {}\n",
                    u.username, u.password_hash, u.is_admin, creds, left, u.must_change_password
                ));
            }
            Ok(out)
        })
        .await
        .unwrap()
}

struct Case {
    name: String,
    path: String,
    content_type: &'static str,
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
    /// Send as the signed-in user (else anonymous).
    signed_in: bool,
}

fn form(name: impl Into<String>, path: &str, body: impl Into<Vec<u8>>, signed_in: bool) -> Case {
    Case {
        name: name.into(),
        path: path.into(),
        content_type: "application/x-www-form-urlencoded",
        body: body.into(),
        headers: vec![],
        signed_in,
    }
}

#[tokio::test]
async fn sixty_plus_hostile_requests_change_nothing() {
    let app = TestApp::spawn().await;
    app.create_user("root", true).await;
    app.create_user("alice", false).await;
    let e = enrol(&app, signed_in(&app, "alice").await).await;
    let root = signed_in(&app, "root").await;
    let root_token = root.csrf().await;
    let anon = app.client();
    let anon_token = anon.csrf().await;
    let before = stored_state(&app).await;
    let t = anon_token.as_str();
    let rt = root_token.as_str();
    let alice_id = app.user("alice").await.id;

    let mut cases: Vec<Case> = Vec::new();
    // Login form: lengths, encodings, control characters, injection.
    let long = "x".repeat(5_000);
    for (name, user, pass) in [
        ("empty username", "", "pw"),
        ("empty password", "alice", ""),
        ("long username", long.as_str(), "pw"),
        ("long password", "alice", &"p".repeat(1_025)),
        ("NUL in username", "ali%00ce", "pw"),
        ("NUL in password", "alice", "correct%00horse"),
        ("control chars", "ali%07%1bce", "pw%0d%0a"),
        ("SQL in username", "alice'%20OR%20'1'='1", "x"),
        ("SQL in password", "alice", "'%20OR%20'1'='1'%20--"),
        ("SQL comment user", "alice'--", "x"),
        ("SQL union", "x'%20UNION%20SELECT%20password_hash%20FROM%20users--", "x"),
        ("HTML in username", "%3Cscript%3Ealert(1)%3C%2Fscript%3E", "x"),
        (
            "HTML attribute break",
            "%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E",
            "x",
        ),
        ("unicode confusable", "%D0%B0lice", PASSWORD),
        ("right-to-left override", "%E2%80%AEalice", "x"),
        ("overlong UTF-8 slash", "%C0%AF", "x"),
        ("invalid UTF-8", "%FF%FE", "x"),
        ("lone surrogate encoding", "%ED%A0%80", "x"),
        ("percent garbage", "%zz%", "x"),
        ("plus signs", "alice+++", "+++"),
    ] {
        cases.push(form(
            format!("login: {name}"),
            "/login",
            format!("username={user}&password={pass}&csrf_token={t}"),
            false,
        ));
    }
    for (name, body) in [
        (
            "duplicate username",
            format!("username=alice&username=root&password=x&csrf_token={t}"),
        ),
        (
            "duplicate token",
            format!("username=alice&password=x&csrf_token={t}&csrf_token={t}"),
        ),
        (
            "unknown field",
            format!("username=alice&password=x&role=admin&csrf_token={t}"),
        ),
        ("missing password", format!("username=alice&csrf_token={t}")),
        ("no fields", String::new()),
        ("only ampersands", "&&&&".into()),
        ("key without value", format!("username&password&csrf_token={t}")),
        ("array syntax", format!("username[]=alice&password=x&csrf_token={t}")),
        (
            "next off-site",
            format!("username=alice&password=x&next=https%3A%2F%2Fevil.example&csrf_token={t}"),
        ),
        (
            "next protocol-relative",
            format!("username=alice&password=x&next=%2F%2Fevil.example&csrf_token={t}"),
        ),
        (
            "next javascript",
            format!("username=alice&password=x&next=javascript%3Aalert(1)&csrf_token={t}"),
        ),
        (
            "next with CRLF",
            format!("username=alice&password=x&next=%2F%0d%0aSet-Cookie%3Ax%3D1&csrf_token={t}"),
        ),
        ("forged token", "username=alice&password=x&csrf_token=AAAAAAAA".into()),
    ] {
        cases.push(form(format!("login: {name}"), "/login", body, false));
    }
    // Wrong content types and huge bodies.
    for (name, ctype) in [
        ("JSON", "application/json"),
        ("XML", "text/xml"),
        ("plain text", "text/plain"),
        ("multipart", "multipart/form-data; boundary=zz"),
        ("no type", ""),
        ("garbage type", "ünïcode/wat"),
    ] {
        let mut c = form(
            format!("content type: {name}"),
            "/login",
            format!("username=alice&password=x&csrf_token={t}"),
            false,
        );
        c.content_type = ctype;
        cases.push(c);
    }
    cases.push(form(
        "huge body (1 MiB)",
        "/login",
        format!("username=alice&password={}&csrf_token={t}", "a".repeat(1 << 20)),
        false,
    ));
    cases.push(form("body of many fields", "/login", "a=1&".repeat(5_000), false));
    // Header injection and forged or tampered cookies.
    for (name, header, value) in [
        ("forged session cookie", "cookie", "latchkey_session=forged".to_string()),
        (
            "tampered session cookie",
            "cookie",
            format!("{}x", e.client.cookie_header()),
        ),
        (
            "huge cookie",
            "cookie",
            format!("latchkey_session={}", "A".repeat(3_000)),
        ),
        (
            "two session cookies",
            "cookie",
            "latchkey_session=a; latchkey_session=b".into(),
        ),
        (
            "cookie with NUL-like junk",
            "cookie",
            "latchkey_csrf=%00%00; latchkey_session=%FF".into(),
        ),
        ("X-Forwarded-For spoof", "x-forwarded-for", "10.0.0.1, 127.0.0.1".into()),
        ("Host header junk", "host", "evil.example".into()),
        ("cross-site fetch", "sec-fetch-site", "cross-site".into()),
        ("foreign origin", "origin", "https://evil.example".into()),
        ("null origin", "origin", "null".into()),
    ] {
        let mut c = form(
            format!("header: {name}"),
            "/login",
            format!("username=alice&password=x&csrf_token={t}"),
            false,
        );
        c.headers.push((header, value));
        cases.push(c);
    }
    // The second factor and the settings flows, out of order and malformed.
    for (name, path, body) in [
        (
            "code without a pending login",
            "/login/two-factor",
            format!("code=123456&csrf_token={t}"),
        ),
        (
            "confirm without enable",
            "/settings/account/mfa/confirm",
            format!("code=123456&csrf_token={t}"),
        ),
        (
            "copied without a session",
            "/settings/account/mfa/recovery-codes/copied",
            format!("csrf_token={t}"),
        ),
        (
            "disable without a session",
            "/settings/account/mfa/disable",
            format!("code={}&csrf_token={t}", e.codes[0]),
        ),
        (
            "regenerate without a session",
            "/settings/account/mfa/recovery-codes",
            format!("csrf_token={t}"),
        ),
        (
            "password change without a session",
            "/settings/account/password",
            format!("current_password=x&new_password=yyyyyyyy&new_password_confirm=yyyyyyyy&csrf_token={t}"),
        ),
        (
            "admin create without a session",
            "/admin/users",
            format!("username=mallory&admin=1&csrf_token={t}"),
        ),
        (
            "setup with a made-up token",
            "/setup/AAAA",
            format!("username=mallory&password=yyyyyyyy&password_confirm=yyyyyyyy&csrf_token={t}"),
        ),
    ] {
        cases.push(form(format!("out of order: {name}"), path, body, false));
    }
    let at = e.client.csrf().await;
    for (name, path, body) in [
        (
            "disable: code twice",
            "/settings/account/mfa/disable",
            format!("code=1&code=2&csrf_token={at}"),
        ),
        (
            "disable: full-width digits",
            "/settings/account/mfa/disable",
            format!("code=%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%95%EF%BC%96&csrf_token={at}"),
        ),
        (
            "disable: SQL as code",
            "/settings/account/mfa/disable",
            format!("code=1'%20OR%20'1'%3D'1&csrf_token={at}"),
        ),
        (
            "disable: HTML as code",
            "/settings/account/mfa/disable",
            format!("code=%3Cb%3E&csrf_token={at}"),
        ),
        (
            "disable: long code",
            "/settings/account/mfa/disable",
            format!("code={}&csrf_token={at}", "9".repeat(500)),
        ),
        (
            "disable: unknown field",
            "/settings/account/mfa/disable",
            format!("code=123456&user_id=1&csrf_token={at}"),
        ),
        (
            "confirm while enabled",
            "/settings/account/mfa/confirm",
            format!("code=123456&csrf_token={at}"),
        ),
        (
            "enable while enabled",
            "/settings/account/mfa/enable",
            format!("csrf_token={at}"),
        ),
        (
            "password: new too short",
            "/settings/account/password",
            format!("current_password=x&new_password=a&new_password_confirm=a&csrf_token={at}"),
        ),
        (
            "password: control chars",
            "/settings/account/password",
            format!(
                "current_password={PASSWORD}&new_password=abc%00defgh&new_password_confirm=abc%00defgh&csrf_token={at}"
            ),
        ),
        (
            "admin route as non-admin",
            "/admin/users",
            format!("username=mallory&csrf_token={at}"),
        ),
        (
            "reset another user as non-admin",
            &format!("/admin/users/{alice_id}/reset-mfa"),
            format!("csrf_token={at}"),
        ),
        ("logout with a foreign token", "/logout", "csrf_token=forged".into()),
    ] {
        let mut c = form(format!("signed in: {name}"), path, body, true);
        c.path = path.to_string();
        cases.push(c);
    }
    for (name, path, body) in [
        (
            "admin: bad user id",
            "/admin/users/not-a-number/admin",
            format!("admin=1&csrf_token={rt}"),
        ),
        (
            "admin: missing user",
            "/admin/users/999999/reset-mfa",
            format!("csrf_token={rt}"),
        ),
        (
            "admin: admin=maybe",
            &format!("/admin/users/{alice_id}/admin"),
            format!("admin=maybe&csrf_token={rt}"),
        ),
        (
            "admin: grace of a year and a day",
            "/admin/policy",
            format!("required=1&grace_days=366&csrf_token={rt}"),
        ),
        (
            "admin: grace not a number",
            "/admin/policy",
            format!("required=1&grace_days=seven&csrf_token={rt}"),
        ),
        (
            "admin: username with HTML",
            "/admin/users",
            format!("username=%3Cscript%3E&csrf_token={rt}"),
        ),
    ] {
        cases.push(Case {
            headers: vec![("cookie", root.cookie_header())],
            ..form(format!("admin: {name}"), path, body, false)
        });
    }

    assert!(cases.len() >= 60, "only {} cases", cases.len());
    let raw = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for case in &cases {
        let client = if case.signed_in { &e.client.http } else { &anon.http };
        let client = if case.headers.iter().any(|(h, _)| *h == "cookie") {
            &raw
        } else {
            client
        };
        let mut req = client
            .post(format!("{}{}", app.base, case.path))
            .body(case.body.clone());
        if !case.content_type.is_empty() {
            req = req.header("content-type", case.content_type);
        }
        for (h, v) in &case.headers {
            req = req.header(*h, v.as_str());
        }
        let resp = req.send().await.unwrap_or_else(|err| panic!("{}: {err}", case.name));
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        assert!(status.as_u16() < 500, "{}: {status}\n{body}", case.name);
        assert!(
            !body.contains("panicked") && !body.contains("stack backtrace"),
            "{}",
            case.name
        );
        if status.is_client_error() && status != StatusCode::NOT_FOUND {
            assert!(
                body.contains("role=\"alert\""),
                "{}: a page that says what went wrong ({status})",
                case.name
            );
        }
    }
    assert_eq!(stored_state(&app).await, before, "nothing stored changed");
    // And everyone can still get in.
    assert!(app.client().login("root", PASSWORD).await.redirects_to("/"));
    assert_eq!(e.client.get("/").await.status, StatusCode::OK);
}

#[tokio::test]
async fn hostile_gets_are_4xx_pages_too() {
    let app = TestApp::spawn().await;
    let c = app.client();
    for path in [
        "/login?next=%2F%2Fevil.example",
        "/login?next=%0d%0aLocation:%20https://evil.example",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/static/../Cargo.toml",
        "/static/%2e%2e/%2e%2e/Cargo.toml",
        "/setup/' OR 1=1 --",
        "/admin/security-log?page=-1",
        "/admin/users/1e999/reset-mfa",
        "/login?signed_out=%FF",
        &format!("/{}", "a".repeat(4_000)),
    ] {
        let resp = c.http.get(c.url(path)).send().await;
        let Ok(resp) = resp else { continue }; // an invalid URI may be refused by the client itself
        assert!(resp.status().as_u16() < 500, "{path}: {}", resp.status());
        let body = resp.text().await.unwrap();
        assert!(!body.contains("evil.example\""), "{path}");
        assert!(!body.contains("[package]"), "{path} leaked a file");
    }
}
