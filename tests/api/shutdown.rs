//! Graceful shutdown: SIGTERM lets requests in flight finish, then the
//! process exits cleanly within a few seconds.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_requests_in_flight_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    // A user whose password takes a while to check (bcrypt cost 13), so a
    // sign-in is still running when the signal arrives.
    cli_add_user(dir.path(), "alice", 13);
    let (mut server, base) = start_server_binary(dir.path());

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
