//! Graceful shutdown: a request in flight when SIGTERM arrives gets its full
//! answer, new connections are refused from the signal on, and the process
//! exits 0.
//!
//! The verdict depends on the order of events only, never on how fast the
//! machine is. "In flight" is made certain rather than hoped for: the test
//! speaks HTTP over its own socket and sends the sign-in's head with
//! `Expect: 100-continue`; the server's `100 Continue` says the request has
//! been taken and handed to its handler. Then half the body, then the
//! signal; the rest of the body follows once new connections are refused.
//! (Bytes that reach a connection the server has not begun to read when the
//! signal arrives are not in flight: that connection is closed unanswered, as
//! an idle keep-alive connection may be at any time; and a connection still
//! in the kernel's accept queue is reset when the listener closes, as with
//! any server. docs/RELIABILITY.md says how to drain an instance.)

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

/// How many times each run goes through it (in parallel groups, so the suite
/// does not wait for each shutdown in turn).
const ROUNDS: usize = 50;
const GROUPS: usize = 5;

/// One HTTP/1.1 response read off a raw socket.
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

async fn read_response(stream: &mut TcpStream) -> RawResponse {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.expect("read the answer");
        assert!(n > 0, "the connection closed without an answer");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, v)| v.parse().unwrap());
    while buf.len() < head_end + length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.expect("read the body");
        assert!(n > 0, "the connection closed in the middle of the answer");
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).to_string();
    RawResponse { status, headers, body }
}

/// True once a new connection to `addr` is refused.
async fn refuses_connections(addr: SocketAddr) -> bool {
    // The accept thread stops right after the signal; until it has, a
    // connection may still be taken into the queue. Look again, briefly.
    for _ in 0..6000 {
        match TcpStream::connect(addr).await {
            // Refused outright, or reset from the accept queue as the
            // listener closed: either way the server did not take it.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                return true;
            }
            Err(e) => panic!("unexpected connect error: {e}"),
            Ok(s) => drop(s),
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    false
}

async fn one_round(dir: &std::path::Path, database_url: &str) {
    let mut server = ServerProcess::start(dir, database_url, &[]);
    let addr = server.address();
    let mut conn = TcpStream::connect(addr).await.unwrap();

    // A first request on this connection: answered, so a worker holds it.
    conn.write_all(format!("GET /login HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let page = read_response(&mut conn).await;
    assert_eq!(page.status, 200);
    let csrf_cookie = page
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.split(';').next().unwrap().to_string())
        .find(|c| c.starts_with("latchkey_csrf="))
        .expect("CSRF cookie");
    let token = attr_after(&page.body, "name=\"csrf_token\" value=\"").expect("CSRF token");

    // The sign-in: its head, until the server says it has taken it; half
    // its body; then the signal.
    let body = serde_urlencoded::to_string([
        ("username", "alice"),
        ("password", PASSWORD),
        ("csrf_token", token.as_str()),
    ])
    .unwrap();
    let (first, rest) = body.split_at(body.len() / 2);
    conn.write_all(
        format!(
            "POST /login HTTP/1.1\r\nHost: {addr}\r\nCookie: {csrf_cookie}\r\nExpect: 100-continue\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let taken = read_response(&mut conn).await;
    assert_eq!(taken.status, 100, "the server takes the request");
    conn.write_all(first.as_bytes()).await.unwrap();
    conn.flush().await.unwrap();
    server.signal("TERM");
    server.wait_for_line("starting graceful shutdown");

    // From the signal on, nobody new gets in…
    assert!(
        refuses_connections(addr).await,
        "new connections are refused after SIGTERM"
    );
    // …while the sign-in in flight is still answered, in full.
    conn.write_all(rest.as_bytes()).await.unwrap();
    let answer = read_response(&mut conn).await;
    assert_eq!(
        (answer.status, answer.header("location")),
        (303, Some("/")),
        "the sign-in in flight signed in; log:\n{}",
        server.log().join("\n")
    );
    drop(conn);

    let exit = server.exit_status().await;
    assert!(
        exit.success(),
        "clean exit: {exit:?}; log:\n{}",
        server.log().join("\n")
    );
    let log = server.log().join("\n");
    assert!(!log.contains("force shutdown"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_answers_the_request_in_flight_refuses_new_ones_and_exits_cleanly() {
    let groups: Vec<_> = (0..GROUPS)
        .map(|_| {
            tokio::spawn(async {
                let dir = tempfile::tempdir().unwrap();
                let (url, _pg) = binary_database(dir.path());
                cli_add_user_to(dir.path(), &url, "alice", 4);
                for _ in 0..ROUNDS / GROUPS {
                    one_round(dir.path(), &url).await;
                }
            })
        })
        .collect();
    for g in groups {
        g.await.expect("every round passes");
    }
}

/// The environment variable that makes the child below do its work (the
/// database's URL); without it the child returns at once.
const EXIT_CHILD_URL: &str = "LATCHKEY_TEST_EXIT_CHILD_URL";
const EXIT_ROUNDS: usize = 30;
const EXIT_THREADS: usize = 6;

/// Run as a child process by the test after it, never in the suite itself:
/// returns while its threads connect to PostgreSQL and disconnect, so the
/// harness exits the process with connections closing on other threads.
#[test]
#[ignore = "a child process of exiting_while_threads_close_postgres_connections_never_crashes"]
fn exit_child_returns_while_threads_open_and_close_connections() {
    let Ok(url) = std::env::var(EXIT_CHILD_URL) else {
        return;
    };
    let url = latchkey::db::DatabaseUrl::parse(&url).expect("a database URL");
    // Each thread says whether its first connection worked, then keeps
    // connecting (a channel, not a barrier: a thread that fails must not
    // leave the child waiting forever).
    let (connected, first) = std::sync::mpsc::channel();
    for _ in 0..EXIT_THREADS {
        let (url, connected) = (url.clone(), connected.clone());
        std::thread::spawn(move || {
            let _ = connected.send(latchkey::db::Db::connect(&url).map(drop).map_err(|e| e.to_string()));
            loop {
                // Errors are expected here once the process is exiting.
                drop(latchkey::db::Db::connect(&url));
            }
        });
    }
    for _ in 0..EXIT_THREADS {
        // A guard against a hang, not a measure of speed.
        let first = first.recv_timeout(std::time::Duration::from_secs(120));
        first
            .expect("each thread tried to connect")
            .expect("each thread connected");
    }
}

/// A process must not crash at exit because threads still close their
/// PostgreSQL connections then: OpenSSL (inside libpq) used to free its
/// state in an `atexit` handler under them, a double free or SIGSEGV. Seen
/// once at the end of a CI run of this suite's PostgreSQL pass, and in
/// about one exit in ten of a process like the child above. The server's
/// own exit is the same: its database threads end after `main` returns.
#[test]
fn exiting_while_threads_close_postgres_connections_never_crashes() {
    if !testing_postgres() {
        return;
    }
    let pg = PgTestDatabase::create();
    let url = latchkey::db::DatabaseUrl::parse(&pg.url).unwrap();
    // Migrated once here, so the child's connections only check.
    drop(latchkey::db::Db::connect(&url).unwrap());
    let module = module_path!().split_once("::").map_or(module_path!(), |(_, m)| m);
    let child = format!("{module}::exit_child_returns_while_threads_open_and_close_connections");
    for round in 0..EXIT_ROUNDS {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([child.as_str(), "--exact", "--ignored", "--test-threads=1"])
            .env(EXIT_CHILD_URL, &pg.url)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "round {round}: the child exited with {:?}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("1 passed"), "round {round}: the child ran: {stdout}");
    }
}
