//! Latchkey's load-test tool (docs/PERFORMANCE.md; `scripts/loadtest`).
//!
//! It seeds a fresh database through the library, starts the release server
//! (`target/release/latchkey`) on 127.0.0.1 with a temporary SQLite file and
//! key file, drives it with virtual users, and reports requests/s, p50/p99
//! latency per step, errors and the server's peak RSS (VmHWM). Scenarios:
//!
//! - a: `GET /login`, closed loop, `--connections` users;
//! - b: `POST /login/two-factor` alone, for many users with 2FA enrolled
//!   (their pending sessions are made first, with a cheap cost-4 password);
//! - c: the full sign-in (GET /login, POST /login, POST /login/two-factor,
//!   GET /) with cost-`--bcrypt-cost` passwords, against the bcrypt bound;
//! - d: page GETs and the second-factor step, paced, while (c) runs.
//!
//! Every loop is bounded in time and count; only loopback is contacted.

#[path = "load/http.rs"]
mod http;
#[path = "load/seed.rs"]
mod seed;
#[path = "load/server.rs"]
mod server;
#[path = "load/stats.rs"]
mod stats;
#[path = "load/totp.rs"]
mod totp;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use latchkey::core::keys::Keyring;
use latchkey::core::password;
use latchkey::db::{DatabaseUrl, Db};

use crate::http::{Cookies, SESSION_COOKIE};
use crate::seed::{Account, Group, PASSWORD};
use crate::server::Server;
use crate::stats::Step;

#[derive(Parser, Debug)]
#[command(about = "Load-test a release build of Latchkey on 127.0.0.1 (see docs/PERFORMANCE.md)")]
struct Args {
    /// Scenarios to run, in order: any of a, b, c, d
    #[arg(long, value_delimiter = ',', default_value = "a,b,c,d")]
    scenarios: Vec<char>,
    /// Concurrent virtual users (keep-alive connections) for (a) and (b)
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds measured in (a) and at most in (b)
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Second-factor verifications prepared for (b) (3 per seeded user)
    #[arg(long, default_value_t = 24_000)]
    codes: usize,
    /// Concurrent sign-ins in (c) and (d)
    #[arg(long, default_value_t = 8)]
    flow_users: usize,
    /// Seconds measured in (c) and in (d)
    #[arg(long, default_value_t = 20)]
    flow_duration: u64,
    /// Requests per second of each paced probe in (d)
    #[arg(long, default_value_t = 100)]
    probe_rate: u64,
    /// bcrypt cost of the server and of the (c) users' passwords
    #[arg(long, default_value_t = 12)]
    bcrypt_cost: u32,
    /// The server binary
    #[arg(long, default_value = "target/release/latchkey")]
    server: PathBuf,
    /// An empty PostgreSQL database to use instead of a temporary SQLite file
    /// (postgres://…@127.0.0.1/…); it is seeded, not cleaned
    #[arg(long)]
    database_url: Option<String>,
    /// Servers to start on that database (PostgreSQL only); users are spread over them
    #[arg(long, default_value_t = 1)]
    instances: usize,
    /// Only seed a database in this folder, print how to start the server, and exit
    #[arg(long)]
    seed_only: Option<PathBuf>,
}

/// What the run found, for the summary.
#[derive(Default)]
struct Summary {
    lines: Vec<String>,
    /// Requests that did not get the expected answer, over all scenarios.
    errors: u64,
}

impl Summary {
    fn add(&mut self, s: String) {
        println!("  => {s}");
        self.lines.push(s);
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    totp::self_check();
    println!("RFC 6238 self-check of the tool's own TOTP: ok");
    if args.instances > 1 && args.database_url.is_none() {
        anyhow::bail!("--instances needs --database-url postgres://… (SQLite is one file on one machine)");
    }

    let dir = match &args.seed_only {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            tempfile::Builder::new().tempdir_in(d)?.keep()
        }
        None => tempfile::tempdir()?.keep(),
    };
    let _cleanup = Cleanup(dir.clone(), args.seed_only.is_none());
    let key_file = dir.join("latchkey.key");
    let database_url = args
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", dir.join("latchkey.db").display()));
    if let Some(u) = &args.database_url {
        anyhow::ensure!(
            u.contains("@127.0.0.1") || u.contains("@localhost") || u.contains("@[::1]"),
            "the database must be on loopback"
        );
    }

    // One cheap hash for the (b)/(d) users (their password step only opens
    // the pending session) and one at the server's cost for (c).
    let cheap_hash = password::hash(PASSWORD, 4)?;
    let t = Instant::now();
    let costly_hash = password::hash(PASSWORD, args.bcrypt_cost)?;
    println!(
        "hashed one password at cost {} in {:.0} ms",
        args.bcrypt_cost,
        t.elapsed().as_secs_f64() * 1e3
    );

    let b_users = args.codes.div_ceil(3);
    let d_codes = (args.probe_rate * (args.flow_duration + 5)) as usize;
    let d_users = d_codes.div_ceil(3);
    let c_users = (args.flow_users * 4).max(args.flow_duration as usize * 20);
    let page_users = 8;

    let mut conn = Db::connect(&DatabaseUrl::parse(&database_url).map_err(|e| anyhow::anyhow!("{e}"))?)?;
    let keys = Keyring::load_or_create(&key_file)?;
    let t = Instant::now();
    let groups = seed::seed(
        &mut conn,
        &keys,
        &[
            Group {
                prefix: "b",
                count: b_users,
                password_hash: &cheap_hash,
                two_factor: true,
            },
            Group {
                prefix: "c",
                count: c_users,
                password_hash: &costly_hash,
                two_factor: true,
            },
            Group {
                prefix: "d",
                count: d_users,
                password_hash: &cheap_hash,
                two_factor: true,
            },
            Group {
                prefix: "p",
                count: page_users,
                password_hash: &cheap_hash,
                two_factor: false,
            },
        ],
    )?;
    drop(conn);
    println!(
        "seeded {} users ({} with 2FA) in {:.1} s",
        groups.iter().map(Vec::len).sum::<usize>(),
        b_users + c_users + d_users,
        t.elapsed().as_secs_f64()
    );
    let mut groups = groups.into_iter();
    let (b, c, d, p) = (
        groups.next().unwrap(),
        groups.next().unwrap(),
        groups.next().unwrap(),
        groups.next().unwrap(),
    );

    if args.seed_only.is_some() {
        println!("seeded {}; start the server with:", dir.display());
        println!(
            "  {} serve --bind 127.0.0.1:8080 --database-url {database_url} --key-file {} --bcrypt-cost {} --trusted-proxies 127.0.0.1",
            args.server.display(),
            key_file.display(),
            args.bcrypt_cost
        );
        println!("users b0…, c0…, d0… (2FA on) and p0… (2FA off); password `{PASSWORD}`");
        println!(
            "send each user's requests with its own X-Forwarded-For address, or the per-address limits refuse them"
        );
        return Ok(());
    }

    let servers: Vec<Server> = (0..args.instances)
        .map(|_| Server::start(&args.server, &database_url, &key_file, args.bcrypt_cost))
        .collect::<anyhow::Result<_>>()?;
    let bases: Vec<String> = servers.iter().map(|s| s.base.clone()).collect();
    set_pids(&servers);
    println!(
        "server{} at {} (pid {}), {} cores, load average {}",
        if servers.len() > 1 { "s" } else { "" },
        bases.join(", "),
        servers
            .iter()
            .map(|s| s.pid().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        cores(),
        loadavg()
    );

    // (c) and (d) share the accounts, and so what each has used of its steps.
    let flow_pool = Arc::new(FlowPool {
        ready: Mutex::new(c.into_iter().collect()),
    });
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut summary = Summary::default();
    let report_memory = |summary: &mut Summary, after: &str| {
        for s in &servers {
            let (hwm, rss) = s.memory_kib();
            summary.add(format!(
                "server pid {} after {after}: peak RSS {:.1} MiB, RSS {:.1} MiB, {} threads",
                s.pid(),
                hwm as f64 / 1024.0,
                rss as f64 / 1024.0,
                s.threads()
            ));
        }
    };

    for scenario in &args.scenarios {
        println!("\nload average before ({scenario}): {}", loadavg());
        let cpu_before = server_cpu();
        let wall = Instant::now();
        match scenario {
            'a' => rt.block_on(scenario_a(&bases, &args, &mut summary))?,
            'b' | 'd' => {
                // (b) measures the second-factor step, which hashes no
                // password, and (d) sends it as one of its probes. The
                // unmeasured password step that opens those pending logins
                // runs on servers of its own, started with --bcrypt-cost 4
                // on the same database: a server that upgrades weaker hashes
                // at sign-in would otherwise spend a cost-12 hash on each.
                let cheap: Vec<Server> = (0..args.instances)
                    .map(|_| Server::start(&args.server, &database_url, &key_file, 4))
                    .collect::<anyhow::Result<_>>()?;
                let cheap_bases: Vec<String> = cheap.iter().map(|s| s.base.clone()).collect();
                if *scenario == 'd' {
                    rt.block_on(scenario_cd(
                        &bases,
                        &args,
                        &flow_pool,
                        Some((&d, &p, &cheap_bases)),
                        &mut summary,
                    ))?;
                } else {
                    set_pids(&cheap);
                    rt.block_on(scenario_b(&cheap_bases, &args, &b, &mut summary))?;
                    for s in &cheap {
                        let (hwm, rss) = s.memory_kib();
                        summary.add(format!(
                            "server pid {} (--bcrypt-cost 4, for (b)): peak RSS {:.1} MiB, RSS {:.1} MiB, {} threads",
                            s.pid(),
                            hwm as f64 / 1024.0,
                            rss as f64 / 1024.0,
                            s.threads()
                        ));
                    }
                    set_pids(&servers);
                }
            }
            'c' => rt.block_on(scenario_cd(&bases, &args, &flow_pool, None, &mut summary))?,
            other => anyhow::bail!("unknown scenario {other}"),
        }
        let cpu = server_cpu() - cpu_before;
        if *scenario != 'b' {
            summary.add(format!(
                "({scenario}) server CPU {cpu:.1} s in {:.1} s wall (with its unmeasured set-up)",
                wall.elapsed().as_secs_f64()
            ));
        }
        report_memory(&mut summary, &format!("({scenario})"));
    }

    println!("\nSummary ({} cores, load average now {}):", cores(), loadavg());
    for l in &summary.lines {
        println!("  {l}");
    }
    for s in &servers {
        let problems = s.log_problems.lock().unwrap();
        println!("server {} logged {} warnings/errors", s.base, problems.len());
        for l in problems.iter().take(5) {
            println!("    {l}");
        }
    }
    let refused = http::TOO_MANY_REQUESTS.load(Ordering::Relaxed);
    if summary.errors > 0 || refused > 0 {
        anyhow::bail!(
            "FAILED: {} requests did not get the expected answer, {refused} of all answers were 429 Too Many Requests; \
             the numbers above count failures and are not a measurement{}",
            summary.errors,
            if refused > 0 {
                " (a 429 is the server's per-address or per-account limits: every account must send its own \
                 X-Forwarded-For and the server must trust 127.0.0.1 as its proxy)"
            } else {
                ""
            }
        );
    }
    Ok(())
}

struct Cleanup(PathBuf, bool);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.1 {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Run `per_vu` for `n` virtual users at once and collect their results.
async fn run_vus<T, F, Fut>(n: usize, per_vu: F) -> anyhow::Result<Vec<T>>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = (0..n).map(|i| tokio::spawn(per_vu(i))).collect();
    let mut out = Vec::with_capacity(n);
    for h in handles {
        out.push(h.await??);
    }
    Ok(out)
}

fn merged(name: &str, parts: impl IntoIterator<Item = Step>) -> Step {
    let mut all = Step::new(name);
    for p in parts {
        all.merge(&p);
    }
    all
}

// ---------------------------------------------------------------- (a)

async fn scenario_a(bases: &[String], args: &Args, summary: &mut Summary) -> anyhow::Result<()> {
    println!(
        "(a) GET /login: {} connections, 1 s warm-up, {} s measured",
        args.connections, args.duration
    );
    let warm = Duration::from_secs(1);
    let measured = Duration::from_secs(args.duration);
    let start = Instant::now() + Duration::from_millis(50);
    let cpu_at = Arc::new(Mutex::new((0.0, 0.0)));
    {
        // Server CPU over exactly the measured window.
        let cpu_at = cpu_at.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until((start + warm).into()).await;
            let a = server_cpu();
            tokio::time::sleep(measured).await;
            *cpu_at.lock().unwrap() = (a, server_cpu());
        });
    }
    let parts = run_vus(args.connections, |i| {
        let base = bases[i % bases.len()].clone();
        async move {
            let client = http::client();
            let url = format!("{base}/login");
            // A returning visitor: the CSRF cookie from the first visit.
            let (mut cookies, _) = http::visit_login(&client, &base).await?;
            let mut step = Step::new("GET /login");
            tokio::time::sleep_until((start).into()).await;
            let (from, to) = (start + warm, start + warm + measured);
            loop {
                let t = Instant::now();
                if t >= to {
                    break;
                }
                let r = http::get(&client, &url, &mut cookies).await;
                if t >= from {
                    match r {
                        Ok(r) if r.status == 200 => step.record(r.took),
                        _ => step.errors += 1,
                    }
                }
            }
            Ok(step)
        }
    })
    .await?;
    let all = merged("GET /login", parts);
    stats::header();
    stats::line(&all, measured);
    let h = &all.hist;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (c0, c1) = *cpu_at.lock().unwrap();
    summary.add(format!("(a) {}", cpu_note(c1 - c0, measured, all.count())));
    summary.errors += all.errors;
    summary.add(format!(
        "(a) GET /login, {} connections: {:.0} req/s, p50 {} ms, p99 {} ms, {} errors",
        args.connections,
        h.len() as f64 / measured.as_secs_f64(),
        stats::ms(h.value_at_quantile(0.5)),
        stats::ms(h.value_at_quantile(0.99)),
        all.errors
    ));
    Ok(())
}

// ---------------------------------------------------------------- (b)

/// A login waiting for its second factor: the session cookie of one password step.
struct Pending {
    cookies: Cookies,
    /// The address its password step came from; its code comes from there too.
    from: std::net::IpAddr,
}

/// Pending logins opened at once (unmeasured set-up of (b) and (d)). Since
/// issue 13 every password check takes as long as one at the highest cost
/// of any stored hash (so the time tells nothing about the account): the
/// cost-4 servers on a database that also holds the cost-12 hashes of (c)
/// answer each password step after about a cost-12 check's time, most of it
/// asleep. Opened 16 at a time, as before, the 24,000 of (b) took over six
/// minutes and the first had expired (5 minutes) before they were used.
/// 64 at once, as many as (b) then measures, keep it under two minutes;
/// 256 at once took half a minute but left the server's peak memory set by
/// the set-up's connections rather than by the scenario's (2–3 MiB more).
/// The places per address are no limit here, every account comes from its
/// own.
const OPEN_AT_ONCE: usize = 64;

/// Open `per_user` pending sessions for each account, with `vus` users at
/// once; returns, per VU, its accounts with their sessions.
async fn open_pending(
    bases: &[String],
    accounts: &[Account],
    per_user: usize,
    vus: usize,
) -> anyhow::Result<Vec<PendingWork>> {
    let accounts = Arc::new(accounts.to_vec());
    run_vus(vus, |i| {
        let base = bases[i % bases.len()].clone();
        let accounts = accounts.clone();
        async move {
            let client = http::client();
            let (csrf, token) = http::visit_login(&client, &base).await?;
            let mut mine = Vec::new();
            for a in accounts.iter().skip(i).step_by(vus) {
                let mut sessions = Vec::with_capacity(per_user);
                for _ in 0..per_user {
                    let mut cookies = csrf.clone();
                    let r = http::password_step(&client, &base, &mut cookies, &token, &a.username, PASSWORD, a.address)
                        .await?;
                    anyhow::ensure!(
                        r.status == 303 && r.location.as_deref() == Some("/login/two-factor"),
                        "password step for {} from {} answered {} {:?}{}",
                        a.username,
                        a.address,
                        r.status,
                        r.location,
                        if r.status == 429 {
                            " (refused by the server's limits)"
                        } else {
                            ""
                        }
                    );
                    anyhow::ensure!(cookies.get(SESSION_COOKIE).is_some(), "no session cookie");
                    sessions.push(Pending {
                        cookies,
                        from: a.address,
                    });
                }
                mine.push((a.clone(), sessions, token.clone()));
            }
            Ok(mine)
        }
    })
    .await
}

#[derive(Default)]
struct CodeTally {
    ok: u64,
    /// Refused as a replay: our bug if it ever happens.
    replays: u64,
    /// Sessions left unused because the user had no fresh step in the window.
    skipped: u64,
}

/// Send one code on a pending session; Ok(true) when signed in.
async fn second_factor(
    client: &reqwest::Client,
    base: &str,
    pending: &mut Pending,
    token: &str,
    code: &str,
    step: &mut Step,
    tally: &mut CodeTally,
) -> anyhow::Result<()> {
    let r = http::post_from(
        client,
        &format!("{base}/login/two-factor"),
        &mut pending.cookies,
        &[("code", code), ("csrf_token", token)],
        Some(pending.from),
    )
    .await;
    match r {
        Ok(r) if r.status == 303 && r.location.as_deref() == Some("/") => {
            step.record(r.took);
            tally.ok += 1;
        }
        Ok(r) => {
            step.record(r.took);
            step.errors += 1;
            if r.body.contains("already used") {
                tally.replays += 1;
            }
            if step.errors <= 3 {
                eprintln!("second factor answered {} {:?}", r.status, r.location);
            }
        }
        Err(e) => {
            step.errors += 1;
            eprintln!("second factor failed: {e}");
        }
    }
    Ok(())
}

async fn scenario_b(bases: &[String], args: &Args, accounts: &[Account], summary: &mut Summary) -> anyhow::Result<()> {
    println!(
        "(b) POST /login/two-factor: {} users × 3 pending sessions, {} connections, at most {} s",
        accounts.len(),
        args.connections,
        args.duration
    );
    let t = Instant::now();
    // Open the pending logins, each account from its own address (the
    // per-address limits would refuse thousands from one), many at once
    // (`OPEN_AT_ONCE`), then spread them over the connections.
    let opened = open_pending(bases, accounts, 3, OPEN_AT_ONCE).await?;
    let mut work: Vec<PendingWork> = (0..args.connections).map(|_| Vec::new()).collect();
    for (i, item) in opened.into_iter().flatten().enumerate() {
        work[i % args.connections].push(item);
    }
    println!(
        "    opened {} pending sessions in {:.1} s (cost-4 password step, not measured)",
        accounts.len() * 3,
        t.elapsed().as_secs_f64()
    );
    let limit = Duration::from_secs(args.duration);
    let cpu0 = server_cpu();
    let start = Instant::now();
    let work: Vec<Mutex<_>> = work.into_iter().map(Mutex::new).collect();
    let parts = run_vus(work.len(), |i| {
        let base = bases[i % bases.len()].clone();
        let mine = std::mem::take(&mut *work[i].lock().unwrap());
        async move {
            let client = http::client();
            let mut step = Step::new("POST /login/two-factor");
            let mut tally = CodeTally::default();
            for (account, sessions, token) in mine {
                let mut totp = account.totp.clone().expect("2FA user");
                for mut pending in sessions {
                    if start.elapsed() >= limit {
                        return Ok((step, tally));
                    }
                    let Some(s) = totp.next_step(totp::now_unix()) else {
                        tally.skipped += 1;
                        continue;
                    };
                    totp.last_step = s;
                    let code = totp::code(&totp.key, s);
                    second_factor(&client, &base, &mut pending, &token, &code, &mut step, &mut tally).await?;
                }
            }
            Ok((step, tally))
        }
    })
    .await?;
    let elapsed = start.elapsed().min(limit);
    let cpu = server_cpu() - cpu0;
    let mut tally = CodeTally::default();
    let all = merged(
        "POST /login/two-factor",
        parts.into_iter().map(|(s, t)| {
            tally.ok += t.ok;
            tally.replays += t.replays;
            tally.skipped += t.skipped;
            s
        }),
    );
    stats::header();
    stats::line(&all, elapsed);
    summary.add(format!("(b) {}", cpu_note(cpu, start.elapsed(), all.count())));
    let h = &all.hist;
    summary.errors += all.errors;
    summary.add(format!(
        "(b) second factor, {} connections: {:.0} verified codes/s ({} in {:.1} s), p50 {} ms, p99 {} ms, {} errors ({} replay refusals), {} sessions skipped",
        args.connections,
        tally.ok as f64 / elapsed.as_secs_f64(),
        tally.ok,
        elapsed.as_secs_f64(),
        stats::ms(h.value_at_quantile(0.5)),
        stats::ms(h.value_at_quantile(0.99)),
        all.errors,
        tally.replays,
        tally.skipped
    ));
    Ok(())
}

// ---------------------------------------------------------------- (c), (d)

/// Accounts for full sign-ins, each used by one sign-in at a time.
struct FlowPool {
    ready: Mutex<VecDeque<Account>>,
}

impl FlowPool {
    /// An account with a fresh step now, and that step.
    async fn take(&self, until: Instant) -> Option<(Account, u64)> {
        while Instant::now() < until {
            {
                let mut q = self.ready.lock().unwrap();
                let now = totp::now_unix();
                for _ in 0..q.len() {
                    let a = q.pop_front().unwrap();
                    if let Some(s) = a.totp.as_ref().unwrap().next_step(now) {
                        return Some((a, s));
                    }
                    q.push_back(a);
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    fn give_back(&self, a: Account) {
        self.ready.lock().unwrap().push_back(a);
    }
}

struct FlowSteps {
    steps: [Step; 5],
    flows: u64,
}

impl FlowSteps {
    fn new() -> Self {
        Self {
            steps: [
                Step::new("flow: GET /login"),
                Step::new("flow: POST /login (bcrypt)"),
                Step::new("flow: POST /login/two-factor"),
                Step::new("flow: GET /"),
                Step::new("flow: whole sign-in"),
            ],
            flows: 0,
        }
    }
}

/// One full sign-in as a new browser; per-step times into `fs`.
async fn sign_in(base: &str, account: &Account, step: u64, fs: &mut FlowSteps, record: bool) -> anyhow::Result<()> {
    // A new browser of this person's, all of its requests from their address.
    let client = http::client_from(account.address);
    let t0 = Instant::now();
    let mut cookies = Cookies::default();
    let r = http::get(&client, &format!("{base}/login"), &mut cookies).await?;
    anyhow::ensure!(r.status == 200, "GET /login: {}", r.status);
    let token = http::csrf_token(&r.body).ok_or_else(|| anyhow::anyhow!("no csrf_token"))?;
    let t1 = r.took;
    let r = http::password_step(
        &client,
        base,
        &mut cookies,
        &token,
        &account.username,
        PASSWORD,
        account.address,
    )
    .await?;
    anyhow::ensure!(
        r.status == 303 && r.location.as_deref() == Some("/login/two-factor"),
        "POST /login: {} {:?}",
        r.status,
        r.location
    );
    let t2 = r.took;
    let code = totp::code(&account.totp.as_ref().unwrap().key, step);
    let r = http::post(
        &client,
        &format!("{base}/login/two-factor"),
        &mut cookies,
        &[("code", &code), ("csrf_token", &token)],
    )
    .await?;
    anyhow::ensure!(
        r.status == 303 && r.location.as_deref() == Some("/"),
        "POST /login/two-factor: {} {:?}",
        r.status,
        r.location
    );
    let t3 = r.took;
    let r = http::get(&client, &format!("{base}/"), &mut cookies).await?;
    anyhow::ensure!(r.status == 200, "GET /: {}", r.status);
    if record {
        for (i, t) in [t1, t2, t3, r.took, t0.elapsed()].into_iter().enumerate() {
            fs.steps[i].record(t);
        }
        fs.flows += 1;
    }
    Ok(())
}

/// A VU's prepared logins: each account with its pending sessions and CSRF token.
type PendingWork = Vec<(Account, Vec<Pending>, String)>;

/// One probe of (d): kind, server, cookies, CSRF token, pending logins.
type ProbeWork = (Probe, String, Cookies, String, PendingWork);

/// Paced probes of (d): one request every `1/rate` s, each VU.
#[derive(Clone, Copy)]
enum Probe {
    LoginPage,
    Dashboard,
    SecondFactor,
}

async fn scenario_cd(
    bases: &[String],
    args: &Args,
    pool: &Arc<FlowPool>,
    probes: Option<(&[Account], &[Account], &[String])>,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let name = if probes.is_some() { "d" } else { "c" };
    let cost = args.bcrypt_cost;
    // The bound: this machine's cores over one verify at this cost, measured
    // now, with the server idle.
    let hash = password::hash(PASSWORD, cost)?;
    let mut times: Vec<f64> = (0..3)
        .map(|_| {
            let t = Instant::now();
            assert!(password::verify(PASSWORD, &hash));
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let t_verify = times[1];
    let bound = cores() as f64 / t_verify;
    println!(
        "({name}) full sign-in, {} at once, {} s measured after 3 s warm-up; one cost-{cost} verify takes {:.0} ms here, bound {} cores / that = {:.2} sign-ins/s",
        args.flow_users,
        args.flow_duration,
        t_verify * 1e3,
        cores(),
        bound
    );

    // (d): probes prepared before the load starts.
    let mut probe_work: Vec<ProbeWork> = Vec::new();
    if let Some((d_accounts, p_accounts, cheap_bases)) = probes {
        let base = &bases[0];
        let client = http::client();
        for (i, kind) in [Probe::LoginPage, Probe::LoginPage, Probe::Dashboard, Probe::Dashboard]
            .into_iter()
            .enumerate()
        {
            let (mut cookies, token) = http::visit_login(&client, base).await?;
            if matches!(kind, Probe::Dashboard) {
                let p = &p_accounts[i];
                let r =
                    http::password_step(&client, base, &mut cookies, &token, &p.username, PASSWORD, p.address).await?;
                anyhow::ensure!(r.status == 303, "sign-in of a page user: {}", r.status);
            }
            probe_work.push((kind, bases[i % bases.len()].clone(), cookies, token, Vec::new()));
        }
        // Opened on the cost-4 servers, for the reason given at (b).
        // Many at once (`OPEN_AT_ONCE`), then dealt to the two probes.
        let opened = open_pending(cheap_bases, d_accounts, 3, OPEN_AT_ONCE).await?;
        let mut pending: Vec<PendingWork> = vec![Vec::new(), Vec::new()];
        for (i, item) in opened.into_iter().flatten().enumerate() {
            pending[i % 2].push(item);
        }
        for (i, mine) in pending.into_iter().enumerate() {
            probe_work.push((
                Probe::SecondFactor,
                bases[i % bases.len()].clone(),
                Cookies::default(),
                String::new(),
                mine,
            ));
        }
        println!(
            "    probes: 2 × GET /login, 2 × GET / (signed in), 2 × POST /login/two-factor, each {} req/s",
            args.probe_rate
        );
    }

    let warm = Duration::from_secs(3);
    let measured = Duration::from_secs(args.flow_duration);
    let start = Instant::now();
    let (from, to) = (start + warm, start + warm + measured);
    let failed = Arc::new(AtomicBool::new(false));

    let flows = {
        let pool = pool.clone();
        let bases = bases.to_vec();
        let n = args.flow_users;
        tokio::spawn(async move {
            run_vus(n, move |i| {
                let pool = pool.clone();
                let base = bases[i % bases.len()].clone();
                async move {
                    let mut fs = FlowSteps::new();
                    let mut errors = 0u64;
                    while let Some((mut account, s)) = pool.take(to).await {
                        let began = Instant::now();
                        if began >= to {
                            pool.give_back(account);
                            break;
                        }
                        account.totp.as_mut().unwrap().last_step = s;
                        let record = began >= from;
                        if let Err(e) = sign_in(&base, &account, s, &mut fs, record).await {
                            errors += 1;
                            if errors <= 3 {
                                eprintln!("sign-in of {} failed: {e:#}", account.username);
                            }
                        }
                        pool.give_back(account);
                    }
                    fs.steps[4].errors = errors;
                    Ok(fs)
                }
            })
            .await
        })
    };

    let rate = args.probe_rate.max(1);
    let probe_handles: Vec<_> = probe_work
        .into_iter()
        .map(|(kind, base, mut cookies, _token, work)| {
            let failed = failed.clone();
            tokio::spawn(async move {
                let client = http::client();
                let mut step = Step::new(match kind {
                    Probe::LoginPage => "probe: GET /login",
                    Probe::Dashboard => "probe: GET / (signed in)",
                    Probe::SecondFactor => "probe: POST /login/two-factor",
                });
                let mut tally = CodeTally::default();
                let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tokio::time::sleep_until(from.into()).await;
                match kind {
                    Probe::LoginPage | Probe::Dashboard => {
                        let url = format!(
                            "{base}{}",
                            if matches!(kind, Probe::LoginPage) {
                                "/login"
                            } else {
                                "/"
                            }
                        );
                        while Instant::now() < to {
                            tick.tick().await;
                            match http::get(&client, &url, &mut cookies).await {
                                Ok(r) if r.status == 200 => step.record(r.took),
                                _ => step.errors += 1,
                            }
                        }
                    }
                    Probe::SecondFactor => {
                        'all: for (account, sessions, token) in work {
                            let mut totp = account.totp.clone().unwrap();
                            for mut pending in sessions {
                                if Instant::now() >= to {
                                    break 'all;
                                }
                                let Some(s) = totp.next_step(totp::now_unix()) else {
                                    tally.skipped += 1;
                                    continue;
                                };
                                tick.tick().await;
                                totp.last_step = s;
                                let code = totp::code(&totp.key, s);
                                second_factor(&client, &base, &mut pending, &token, &code, &mut step, &mut tally)
                                    .await?;
                            }
                        }
                    }
                }
                if step.errors > 0 {
                    failed.store(true, Ordering::SeqCst);
                }
                anyhow::Ok(step)
            })
        })
        .collect();

    let flow_parts = flows.await??;
    let mut probe_steps = Vec::new();
    for h in probe_handles {
        probe_steps.push(h.await??);
    }

    let mut fs = FlowSteps::new();
    for p in &flow_parts {
        for (a, b) in fs.steps.iter_mut().zip(&p.steps) {
            a.merge(b);
        }
        fs.flows += p.flows;
    }
    stats::header();
    for s in &fs.steps {
        stats::line(s, measured);
    }
    let rate = fs.flows as f64 / measured.as_secs_f64();
    let whole = &fs.steps[4];
    summary.errors += whole.errors;
    summary.add(format!(
        "({name}) full sign-in, {} at once: {:.2} sign-ins/s = {:.1}% of the bcrypt bound {:.2}/s ({} cores / {:.0} ms), sign-in p50 {} ms, p99 {} ms, POST /login p99 {} ms, {} errors",
        args.flow_users,
        rate,
        100.0 * rate / bound,
        bound,
        cores(),
        t_verify * 1e3,
        stats::ms(whole.hist.value_at_quantile(0.5)),
        stats::ms(whole.hist.value_at_quantile(0.99)),
        stats::ms(fs.steps[1].hist.value_at_quantile(0.99)),
        whole.errors
    ));
    if !probe_steps.is_empty() {
        let mut merged_probes: Vec<Step> = Vec::new();
        for s in probe_steps {
            match merged_probes.iter_mut().find(|m| m.name == s.name) {
                Some(m) => m.merge(&s),
                None => merged_probes.push(s),
            }
        }
        for s in &merged_probes {
            stats::line(s, measured);
            summary.errors += s.errors;
            summary.add(format!(
                "(d) {} during sign-ins: {} requests, p50 {} ms, p99 {} ms, max {} ms, {} errors",
                s.name.trim_start_matches("probe: "),
                s.count(),
                stats::ms(s.hist.value_at_quantile(0.5)),
                stats::ms(s.hist.value_at_quantile(0.99)),
                stats::ms(s.hist.max()),
                s.errors
            ));
        }
    }
    Ok(())
}

/// The servers' process ids, to read their CPU time around a measurement.
static PIDS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

fn set_pids(servers: &[Server]) {
    *PIDS.lock().unwrap() = servers.iter().map(Server::pid).collect();
}

fn server_cpu() -> f64 {
    PIDS.lock()
        .unwrap()
        .iter()
        .map(|&pid| server::cpu_seconds_of(pid))
        .sum()
}

/// "server CPU x s in y s = z cores, w µs a request"
fn cpu_note(cpu: f64, wall: Duration, requests: u64) -> String {
    format!(
        "server CPU {cpu:.2} s in {:.2} s = {:.2} cores, {:.0} µs per request (this tool so far: {:.1} s)",
        wall.as_secs_f64(),
        cpu / wall.as_secs_f64(),
        cpu * 1e6 / requests.max(1) as f64,
        server::cpu_seconds_of(std::process::id())
    )
}
