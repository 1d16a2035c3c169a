//! Helpers for the operations tests (`deploy`, `observability`, `backup`,
//! `rotation`): server processes with any arguments and environment, the
//! command line, and the journeys on the real clock (the processes' own).

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::*;

/// The `latchkey` binary as a server process, started with `args` and
/// `env`, its log collected. Killed when dropped.
pub struct Proc {
    pub child: std::process::Child,
    pub base: String,
    log: Arc<Mutex<Vec<String>>>,
    lines: mpsc::Receiver<String>,
}

/// Start `latchkey serve` in `dir` on a free port, on `database_url`, with
/// the key file `key_file`, and wait until it listens.
pub fn serve(dir: &Path, database_url: &str, key_file: &Path, args: &[&str], env: &[(&str, &str)]) -> Proc {
    let mut p = spawn_serve(dir, database_url, key_file, args, env);
    let line = p.wait_for("listening on http://");
    let start = line.find("listening on http://").unwrap() + "listening on ".len();
    let rest = &line[start..];
    let end = rest.find(|c: char| c == '"' || c.is_whitespace()).unwrap_or(rest.len());
    p.base = rest[..end].to_string();
    p
}

/// Start `latchkey serve` without waiting for it.
pub fn spawn_serve(dir: &Path, database_url: &str, key_file: &Path, args: &[&str], env: &[(&str, &str)]) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_latchkey"));
    cmd.args(["serve", "--bind", "127.0.0.1:0", "--bcrypt-cost", "4"])
        .args(args)
        .env("RUST_LOG", "info")
        .env("DATABASE_URL", database_url)
        .env("LATCHKEY_KEY_FILE", key_file)
        .env_remove("LATCHKEY_LOG_FORMAT")
        .env_remove("LATCHKEY_METRICS_BIND")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, lines) = mpsc::channel();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line.clone());
            let _ = tx.send(line);
        }
    });
    Proc {
        child,
        base: String::new(),
        log,
        lines,
    }
}

impl Proc {
    /// The next log line containing `needle` (guard against a hang: 60 s).
    pub fn wait_for(&mut self, needle: &str) -> String {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(60)) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(e) => panic!("no log line with {needle:?} ({e}); log:\n{}", self.log().join("\n")),
            }
        }
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Wait for the process to exit (guard: 60 s).
    pub fn exit(&mut self) -> std::process::ExitStatus {
        for _ in 0..6000 {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("still running after 60 s; log:\n{}", self.log().join("\n"));
    }

    /// Stop it gracefully and wait.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.exit();
    }

    pub fn client(&self) -> TestClient {
        TestClient::new(&self.base)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Run the `latchkey` command with `args` on `database_url` and `key_file`.
pub fn latchkey(dir: &Path, database_url: &str, key_file: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("LATCHKEY_KEY_FILE", key_file)
        .env("LATCHKEY_BCRYPT_COST", "4")
        .env_remove("LATCHKEY_LOG_FORMAT")
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("latchkey runs")
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `latchkey user add NAME` (password on stdin).
pub fn add_user(dir: &Path, database_url: &str, key_file: &Path, name: &str) {
    use std::io::Write;
    let mut add = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(["user", "add", name, "--bcrypt-cost", "4"])
        .env("DATABASE_URL", database_url)
        .env("LATCHKEY_KEY_FILE", key_file)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    add.stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .unwrap();
    assert!(add.wait().unwrap().success());
}

/// Now, as the server processes see it.
pub fn now() -> i64 {
    latchkey::core::clock::system_now()
}

/// A code for a later time step than any accepted so far by a user who
/// enrolled or signed in with a code just now (the servers accept T±1).
pub fn next_code(secret: &str) -> String {
    oathtool(secret, now() + 30)
}

/// Sign in with the password (2FA off) at `base`.
pub async fn sign_in(base: &str, user: &str) -> TestClient {
    let c = TestClient::new(base);
    let p = c.login(user, PASSWORD).await;
    assert!(p.redirects_to("/"), "sign-in of {user}: {} {:?}", p.status, p.flash());
    c
}

/// Turn 2FA on for a signed-in client as a person would, on the real
/// clock: the secret and the recovery codes.
pub async fn enrol_now(client: &TestClient) -> (String, Vec<String>) {
    let setup = client.post_follow("/settings/account/mfa/enable", &[]).await;
    assert_eq!(setup.status, StatusCode::OK, "setup page: {}", setup.body);
    let secret = setup.text_of("mfa-secret").expect("secret shown").replace(' ', "");
    let shown = client
        .post_follow("/settings/account/mfa/confirm", &[("code", &oathtool(&secret, now()))])
        .await;
    assert_eq!(shown.status, StatusCode::OK, "confirm: {:?}", shown.flash());
    let codes = list_items(&shown.body, "recovery-codes");
    assert_eq!(codes.len(), 10);
    let done = client.post("/settings/account/mfa/recovery-codes/copied", &[]).await;
    assert!(done.redirects_to("/settings/account/mfa"));
    (secret, codes)
}

/// Password, then `code`, on a fresh client at `base`.
pub async fn sign_in_with_code(base: &str, user: &str, code: &str) -> (TestClient, Page) {
    let c = TestClient::new(base);
    let p = c.login(user, PASSWORD).await;
    assert!(
        p.redirects_to("/login/two-factor"),
        "password step of {user}: {} {:?}",
        p.status,
        p.location
    );
    let p = c.post("/login/two-factor", &[("code", code)]).await;
    (c, p)
}

/// A folder inside `root`.
pub fn subdir(root: &Path, name: &str) -> PathBuf {
    let d = root.join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A free TCP port on 127.0.0.1 (for programs that need a number up front).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
