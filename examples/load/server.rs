//! The server under test: `target/release/latchkey serve` as a child process
//! on 127.0.0.1 with a port of its own, and its memory from /proc.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

pub struct Server {
    child: Child,
    pub base: String,
    /// Warnings and errors the server logged (first few kept).
    pub log_problems: Arc<Mutex<Vec<String>>>,
}

impl Server {
    pub fn start(binary: &Path, database_url: &str, key_file: &Path, bcrypt_cost: u32) -> anyhow::Result<Self> {
        let mut child = Command::new(binary)
            .args(["serve", "--bind", "127.0.0.1:0", "--database-url", database_url])
            .arg("--key-file")
            .arg(key_file)
            .args(["--bcrypt-cost", &bcrypt_cost.to_string()])
            // The tool is the clients' proxy: each account's requests carry
            // its own address in X-Forwarded-For (seed.rs), as a reverse
            // proxy would send them in production, so the per-address limits
            // see many people rather than one address signing in thousands.
            .args(["--trusted-proxies", "127.0.0.1"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot start {}: {e} (run `cargo build --release` first)",
                    binary.display()
                )
            })?;
        let mut lines = BufReader::new(child.stderr.take().expect("piped")).lines();
        let mut base = None;
        for line in lines.by_ref() {
            let line = line?;
            if let Some(at) = line.find("listening on http://") {
                base = Some(line[at + "listening on ".len()..].trim().to_string());
                break;
            }
        }
        let Some(base) = base else {
            let _ = child.kill();
            anyhow::bail!("the server exited before it listened");
        };
        anyhow::ensure!(
            base.starts_with("http://127.0.0.1:"),
            "the server must listen on loopback, not {base}"
        );
        // Keep draining the log so the server never blocks on a full pipe.
        let log_problems = Arc::new(Mutex::new(Vec::new()));
        let sink = log_problems.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if line.contains("WARN") || line.contains("ERROR") {
                    sink.lock().unwrap().push(line);
                }
            }
        });
        Ok(Self {
            child,
            base,
            log_problems,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// (peak resident set since start, resident set now), in KiB.
    pub fn memory_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmHWM:"), field("VmRSS:"))
    }

    pub fn threads(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("Threads:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

/// CPU time (user + system) of a process so far, in seconds.
pub fn cpu_seconds_of(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses: utime and
    // stime are fields 14 and 15 of the line, so 12 and 13 of the rest.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest.split_whitespace().map(|v| v.parse().unwrap_or(0)).collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    // USER_HZ is 100 on Linux.
    ticks as f64 / 100.0
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
