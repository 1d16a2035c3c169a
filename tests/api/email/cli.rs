//! Email from the command line and the server binary: `mail test`, `user
//! add --email`, what the command line writes reaching the server's
//! worker, the refused plain SMTP URL, hidden credentials — and kill -9
//! between the commit and the send.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use super::sink::Sink;
use crate::helpers::*;

fn latchkey(
    db_url: &str,
    key_file: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&str>,
) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(args)
        .env("DATABASE_URL", db_url)
        .env("LATCHKEY_BCRYPT_COST", "4")
        .env("LATCHKEY_KEY_FILE", key_file)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("latchkey binary runs");
    if let Some(input) = stdin {
        child.stdin.as_mut().unwrap().write_all(input.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test]
async fn mail_test_says_what_happened() {
    let mut sink = Sink::start();
    let dir = tempfile::tempdir().unwrap();
    let (url, _pg) = binary_database(dir.path());
    let key = dir.path().join("latchkey.key");
    let smtp = sink.url();
    let env = [
        ("LATCHKEY_SMTP_URL", smtp.as_str()),
        ("LATCHKEY_PUBLIC_URL", "http://localhost:8080"),
    ];
    let ok = latchkey(&url, &key, &["mail", "test", "admin@example.com"], &env, None);
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(text(&ok).contains("Sent a test message to admin@example.com"));
    let m = sink
        .wait_for_subject("admin@example.com", "Test message from Latchkey")
        .await;
    assert!(m.text.contains("http://localhost:8080"));
    // Refused by the server: said, with its words.
    let refused = latchkey(&url, &key, &["mail", "test", "reject@example.com"], &env, None);
    assert!(!refused.status.success());
    assert!(text(&refused).contains("550"), "{}", text(&refused));
    // Nobody listening: said too.
    sink.stop();
    let down = latchkey(&url, &key, &["mail", "test", "admin@example.com"], &env, None);
    assert!(!down.status.success());
    assert!(text(&down).contains("onnection refused"), "{}", text(&down));
    // Email off: said what to give.
    let off = latchkey(&url, &key, &["mail", "test", "admin@example.com"], &[], None);
    assert!(!off.status.success());
    assert!(text(&off).contains("--smtp-url"), "{}", text(&off));
}

#[tokio::test]
async fn plain_smtp_to_another_host_is_refused_and_passwords_never_show() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _pg) = binary_database(dir.path());
    let key = dir.path().join("latchkey.key");
    let secret = "hunter2-very-secret";
    let plain = format!("smtp://me:{secret}@mail.example.com:25");
    let env = [
        ("LATCHKEY_SMTP_URL", plain.as_str()),
        ("LATCHKEY_PUBLIC_URL", "http://localhost:8080"),
    ];
    let out = latchkey(&url, &key, &["serve", "--bind", "127.0.0.1:0"], &env, None);
    assert_eq!(out.status.code(), Some(2), "refused at start: {}", text(&out));
    assert!(text(&out).contains("unencrypted"), "{}", text(&out));
    assert!(!text(&out).contains(secret));
    // Without --public-url the links could not be made: refused too.
    let tls = format!("smtps://me:{secret}@mail.example.com");
    let out = latchkey(&url, &key, &["serve"], &[("LATCHKEY_SMTP_URL", tls.as_str())], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("--public-url"), "{}", text(&out));
    assert!(!text(&out).contains(secret));
    // --help shows no environment value.
    let help = latchkey(&url, &key, &["--help"], &[("LATCHKEY_SMTP_URL", tls.as_str())], None);
    assert!(help.status.success());
    assert!(text(&help).contains("--smtp-url") && !text(&help).contains(secret));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_add_with_an_address_and_the_command_lines_events_reach_the_worker() {
    let sink = Sink::start();
    let app = TestApp::spawn_with_mail(&sink.url()).await;
    let key = app.config.key_file.clone();
    let url = app.database_url.clone();
    let pw = format!("{PASSWORD}\n");
    let bad = latchkey(&url, &key, &["user", "add", "bob", "--email", "bob@"], &[], Some(&pw));
    assert!(!bad.status.success());
    assert!(text(&bad).contains("not an email address"), "{}", text(&bad));
    assert_eq!(app.count("users").await, 0, "nothing created");
    let out = latchkey(
        &url,
        &key,
        &["user", "add", "bob", "--email", "bob@example.com"],
        &[],
        Some(&pw),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(app.user("bob").await.verified_email(), Some("bob@example.com"));
    // Bob turns 2FA on; the command line resets it: the server's worker
    // sends what the command line wrote.
    enrol(&app, signed_in(&app, "bob").await).await;
    let out = latchkey(&url, &key, &["user", "reset-mfa", "bob"], &[], None);
    assert!(out.status.success(), "{}", text(&out));
    // (The command line wrote it at the system's time; the server's clock
    // is the tests' manual one: it catches up.)
    app.clock.advance(60);
    sink.wait_for_subject(
        "bob@example.com",
        "An administrator reset your two-factor authentication",
    )
    .await;
}

/// kill -9 after the commit that wrote the message and before it could be
/// sent (the SMTP server is down): after a restart, it arrives, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_between_commit_and_send_loses_nothing() {
    let mut sink = Sink::stopped();
    let dir = tempfile::tempdir().unwrap();
    let (url, _pg) = binary_database(dir.path());
    let key = dir.path().join("latchkey.key");
    let pw = format!("{PASSWORD}\n");
    let out = latchkey(
        &url,
        &key,
        &["user", "add", "alice", "--email", "alice@example.com"],
        &[],
        Some(&pw),
    );
    assert!(out.status.success(), "{}", text(&out));
    let args = ["--smtp-url", &sink.url(), "--public-url", "http://localhost:8080"];
    let mut server = ServerProcess::start(dir.path(), &url, &args);
    let first = TestClient::new(&server.base);
    assert!(first.login("alice", PASSWORD).await.redirects_to("/"));
    // A new browser: the message is committed with the sign-in.
    let second = TestClient::new(&server.base);
    assert!(second.login("alice", PASSWORD).await.redirects_to("/"));
    server.wait_for_line("email not sent; will try again");
    server.signal("KILL");
    server.exit_status().await;
    sink.restart();
    let _server = ServerProcess::start(dir.path(), &url, &args);
    let m = sink
        .wait_for_subject(
            "alice@example.com",
            "New sign-in to your Latchkey account from a new browser",
        )
        .await;
    assert!(m.link("not-me").unwrap().starts_with("/email/not-me/"));
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(sink.to("alice@example.com").len(), 1, "once");
}
