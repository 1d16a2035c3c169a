//! The `latchkey` command, run as a separate process.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use reqwest::StatusCode;

use crate::helpers::*;

fn latchkey(db_url: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(args)
        .env("DATABASE_URL", db_url)
        .env("LATCHKEY_BCRYPT_COST", "4")
        .env_remove("LATCHKEY_KEY_FILE")
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

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

#[tokio::test]
async fn user_add_and_list() {
    let app = TestApp::spawn().await;
    let url = app.database_url.clone();
    let out = latchkey(&url, &["user", "add", "Bob", "--admin"], Some(&format!("{PASSWORD}\n")));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = latchkey(&url, &["user", "add", "carol"], Some(&format!("{PASSWORD}\r\n")));
    assert!(out.status.success());
    let dup = latchkey(&url, &["user", "add", "bob"], Some("another password\n"));
    assert!(!dup.status.success());
    assert!(String::from_utf8_lossy(&dup.stderr).contains("already exists"));
    let short = latchkey(&url, &["user", "add", "dave"], Some("short\n"));
    assert!(!short.status.success());
    let none = latchkey(&url, &["user", "add", "erin"], Some(""));
    assert!(!none.status.success());

    let list = stdout(&latchkey(&url, &["user", "list"], None));
    let bob = list.lines().find(|l| l.starts_with("bob")).expect("bob listed");
    assert!(bob.contains("yes") && bob.contains("disabled"), "{bob}");
    assert!(list.lines().any(|l| l.starts_with("carol") && l.contains("no")));
    assert!(!list.contains("dave") && !list.contains("erin"));

    // The users can sign in to the running server.
    assert!(app.user("bob").await.is_admin);
    assert!(app.client().login("bob", PASSWORD).await.redirects_to("/"));
    assert!(
        app.client().login("carol", PASSWORD).await.redirects_to("/"),
        "CRLF stripped"
    );
}

#[tokio::test]
async fn reset_mfa_turns_2fa_off_and_ends_sessions() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let e = enrol(&app, signed_in(&app, "alice").await).await;
    let url = app.database_url.clone();
    let out = latchkey(&url, &["user", "list"], None);
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l.starts_with("alice") && l.contains("enabled") && l.contains("10"))
    );

    let out = latchkey(&url, &["user", "reset-mfa", "alice"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout(&out).contains("now off"));
    assert!(!app.mfa_on("alice").await);
    assert_eq!(app.count("recovery_codes").await, 0);
    assert_eq!(e.client.get("/").await.status, StatusCode::SEE_OTHER, "session ended");
    assert!(
        app.client().login("alice", PASSWORD).await.redirects_to("/"),
        "password alone works"
    );
    let uid = app.user("alice").await.id;
    assert!(app.events(uid).await.contains(&"mfa_reset".to_string()));

    let missing = latchkey(&url, &["user", "reset-mfa", "nobody"], None);
    assert!(!missing.status.success());
}

#[test]
fn bad_database_urls_are_refused_without_creating_files() {
    let dir = tempfile::tempdir().unwrap();
    for url in [
        "latchkey.db",
        "sqlite:latchkey.db",
        "mysql://root@localhost/x",
        "sqlite://",
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_latchkey"))
            .args(["user", "list", "--database-url", url])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{url}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("database"), "{url}");
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no stray files");

    // A well-formed URL of a server that is not there: a clear error, no file.
    let out = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args([
            "user",
            "list",
            "--database-url",
            "postgres://nobody@127.0.0.1:1/latchkey",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open the postgres database"));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no stray files");
}

#[test]
fn help_documents_settings_and_hides_env_values() {
    let out = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .arg("--help")
        .env("DATABASE_URL", "sqlite://super-secret-name.db")
        .env("LATCHKEY_PUBLIC_URL", "https://hidden.example")
        .output()
        .unwrap();
    let help = stdout(&out);
    for flag in [
        "--bind",
        "--database-url",
        "--public-url",
        "--issuer",
        "--key-file",
        "--bcrypt-cost",
        "LATCHKEY_BIND",
        "DATABASE_URL",
        "LATCHKEY_PUBLIC_URL",
        "LATCHKEY_ISSUER",
        "LATCHKEY_KEY_FILE",
        "LATCHKEY_BCRYPT_COST",
    ] {
        assert!(help.contains(flag), "--help mentions {flag}");
    }
    assert!(
        !help.contains("super-secret-name") && !help.contains("hidden.example"),
        "{help}"
    );
}

/// Every command exits 0 after doing its work, fifty times each (on
/// PostgreSQL a pool thread still connecting at exit used to crash the
/// process in OpenSSL's clean-up, after the work was done).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_exits_cleanly_fifty_times() {
    let app = TestApp::spawn().await;
    let url = app.database_url.clone();
    let workers: Vec<_> = (0..5)
        .map(|w| {
            let url = url.clone();
            std::thread::spawn(move || {
                for i in 0..10 {
                    let name = format!("user{w}x{i}");
                    let runs = [
                        latchkey(&url, &["user", "add", &name], Some(&format!("{PASSWORD}\n"))),
                        latchkey(&url, &["user", "list"], None),
                        latchkey(&url, &["user", "reset-mfa", &name], None),
                    ];
                    for (what, out) in ["user add", "user list", "user reset-mfa"].iter().zip(&runs) {
                        assert_eq!(
                            out.status.code(),
                            Some(0),
                            "{what} {name}: {:?}\n{}",
                            out.status,
                            String::from_utf8_lossy(&out.stderr)
                        );
                    }
                    assert!(stdout(&runs[1]).contains(&name));
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("every run exits 0");
    }
    assert_eq!(app.count("users").await, 50);
}

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(args)
        .arg("--help")
        .env("DATABASE_URL", "sqlite://super-secret-name.db")
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?} --help");
    let text = stdout(&out);
    assert!(!text.contains("super-secret-name"), "{text}");
    text
}

/// Each command's help lists only the options it takes, and every argument
/// has a description; `--database-url` names both backends.
#[test]
fn each_command_shows_only_what_it_uses() {
    const SERVER_ONLY: [&str; 7] = [
        "--bind",
        "--public-url",
        "--issuer",
        "--trusted-proxies",
        "--totp-skew",
        "--metrics-bind",
        "--smtp-url",
    ];
    let top = help(&[]);
    assert!(top.contains("postgres://"), "--database-url names PostgreSQL: {top}");
    for flag in SERVER_ONLY {
        assert!(top.contains(flag), "latchkey --help: {flag}");
    }
    let serve = help(&["serve"]);
    for flag in SERVER_ONLY
        .iter()
        .chain(&["--database-url", "--key-file", "--bcrypt-cost", "--mail-from"])
    {
        assert!(serve.contains(flag), "serve --help: {flag}");
    }
    // (command, what it takes, what it must not show)
    let cases: [(&[&str], &[&str], &[&str]); 7] = [
        (
            &["user", "add"],
            &[
                "--database-url",
                "--key-file",
                "--bcrypt-cost",
                "--admin",
                "--email",
                "<NAME>",
            ],
            &SERVER_ONLY,
        ),
        (&["user", "list"], &["--database-url", "--key-file"], &SERVER_ONLY),
        (
            &["user", "reset-mfa"],
            &["--database-url", "--key-file", "<NAME>"],
            &SERVER_ONLY,
        ),
        (
            &["healthcheck"],
            &["--bind"],
            &["--database-url", "--public-url", "--bcrypt-cost", "--smtp-url"],
        ),
        (&["backup"], &["--database-url", "--key-file", "<PATH>"], &SERVER_ONLY),
        (
            &["key", "rotate"],
            &["--database-url", "--key-file", "--step", "--all"],
            &SERVER_ONLY,
        ),
        (
            &["mail", "test"],
            &["--smtp-url", "--mail-from", "--public-url", "--issuer", "<ADDRESS>"],
            &["--bind", "--database-url", "--bcrypt-cost", "--totp-skew"],
        ),
    ];
    for (command, takes, not) in cases {
        let text = help(command);
        for flag in takes {
            assert!(text.contains(flag), "{command:?} --help shows {flag}:\n{text}");
        }
        for flag in not {
            assert!(!text.contains(flag), "{command:?} --help does not show {flag}:\n{text}");
        }
        // Every positional argument and option has a description: clap
        // prints an undescribed one as the bare name at the line's end.
        // (In the long layout the description is on the next line.)
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        for (i, line) in lines.iter().enumerate() {
            let bare = (line.starts_with('<') && line.ends_with('>') && !line.contains(' '))
                || (line.starts_with("--") && !line.contains("  "));
            let next = lines.get(i + 1).copied().unwrap_or("");
            let described_below = !next.is_empty() && !next.starts_with('-') && !next.starts_with('<');
            assert!(
                !bare || described_below,
                "{command:?}: `{line}` has no description:\n{text}"
            );
        }
    }
    // A server option before a command is refused, not silently ignored.
    let out = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(["--database-url", "sqlite://elsewhere.db", "user", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be used with"));
}

/// Start-up says, one line each, which database (no password), which key
/// file and whether it was created or loaded, and where it listens.
#[tokio::test]
async fn start_up_says_database_key_file_and_address() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let pg = testing_postgres().then(PgTestDatabase::create);
    // A password in the URL (trust authentication ignores it) must not be logged.
    let url = match &pg {
        Some(db) => db.url.replacen("://postgres@", "://postgres:hunter2-secret@", 1),
        None => format!("sqlite://{}", dir.path().join("data.db").display()),
    };
    let key = dir.path().join("server.key");
    let start = || {
        let mut server = Command::new(env!("CARGO_BIN_EXE_latchkey"))
            .args(["--bind", "127.0.0.1:0", "--bcrypt-cost", "4"])
            .env("DATABASE_URL", &url)
            .env("LATCHKEY_KEY_FILE", &key)
            .env("RUST_LOG", "info")
            .current_dir(dir.path())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = Vec::new();
        for line in std::io::BufReader::new(server.stderr.take().unwrap()).lines() {
            let line = line.unwrap();
            let done = line.contains("Latchkey is listening on http://127.0.0.1:");
            lines.push(line);
            if done {
                break;
            }
        }
        server.kill().unwrap();
        server.wait().unwrap();
        lines
    };
    let count = |lines: &[String], s: &str| lines.iter().filter(|l| l.contains(s)).count();
    let first = start();
    let log = first.join("\n");
    assert!(!log.contains("hunter2"), "{log}");
    let database = match &pg {
        Some(db) => format!("Database: PostgreSQL {}", db.url),
        None => format!("Database: SQLite file {}", dir.path().join("data.db").display()),
    };
    assert_eq!(count(&first, &database), 1, "{log}");
    let created = format!("Server key: generated a new server key file at {}", key.display());
    assert_eq!(count(&first, &created), 1, "{log}");
    assert_eq!(count(&first, "Latchkey is listening on http://127.0.0.1:"), 1, "{log}");
    let second = start();
    let loaded = format!("Server key: loaded from {}", key.display());
    assert_eq!(count(&second, &loaded), 1, "{}", second.join("\n"));
    assert_eq!(count(&second, "generated"), 0);
}
