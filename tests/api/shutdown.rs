//! Graceful shutdown: SIGTERM lets requests in flight finish, then the
//! process exits cleanly within a few seconds.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_requests_in_flight_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_latchkey");
    // A user whose password takes a while to check (bcrypt cost 13), so a
    // sign-in is still running when the signal arrives.
    let mut add = Command::new(bin)
        .args(["user", "add", "alice", "--bcrypt-cost", "13"])
        .current_dir(dir.path())
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

    let mut server = Command::new(bin)
        .args(["serve", "--bind", "127.0.0.1:0", "--bcrypt-cost", "4"])
        .env("RUST_LOG", "info")
        .current_dir(dir.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = server.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let base = loop {
        let line = rx.recv_timeout(Duration::from_secs(20)).expect("server starts");
        if let Some(i) = line.find("listening on ") {
            break line[i + "listening on ".len()..].trim().to_string();
        }
    };

    let c = TestClient::new(&base);
    let _ = c.csrf().await;
    let in_flight = tokio::spawn(async move { c.login("alice", PASSWORD).await.status });
    // Let the request reach the server and start hashing (it takes ~0.7 s).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let signalled = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &server.id().to_string()])
            .status()
            .unwrap()
            .success()
    );

    let status = in_flight.await.unwrap();
    assert_eq!(status.as_u16(), 303, "the sign-in in flight completed");
    let exit = loop {
        if let Some(s) = server.try_wait().unwrap() {
            break s;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(10),
            "still running 10 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "clean exit: {exit:?}");
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "took {:?}",
        signalled.elapsed()
    );
    // Nothing listens any more.
    assert!(reqwest::get(format!("{base}/healthz")).await.is_err());
}
