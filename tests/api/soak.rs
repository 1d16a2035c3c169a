//! Soak: a mixed workload at 32 connections — sign-ins with and without
//! 2FA, enrolments, recovery-code sign-ins, regenerations, disables and page
//! views — then the invariants: no 5xx (so no "database is locked"), every
//! confirmed enrolment enabled, every used recovery code still used.
//!
//! 30 seconds in the normal suite; `LATCHKEY_SOAK_SECONDS=600` (see
//! scripts/soak) runs the ten-minute version.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use reqwest::StatusCode;

use crate::helpers::*;

const VIRTUAL_USERS: usize = 32;
/// Rounds every virtual user runs, whatever the time it takes.
const MIN_ROUNDS: usize = 5;

/// RFC 6238 (SHA-1, 6 digits, 30 s) written out here, independent of the
/// server's totp-lite, for computing codes in a tight loop (oathtool would
/// fork a process per code).
fn totp(secret_base32: &str, unix: i64) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut bits, mut n, mut key) = (0u64, 0, Vec::new());
    for ch in secret_base32.bytes() {
        bits = (bits << 5) | A.iter().position(|a| *a == ch).unwrap() as u64;
        n += 5;
        if n >= 8 {
            key.push((bits >> (n - 8)) as u8);
            n -= 8;
        }
    }
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(&key).unwrap();
    mac.update(&((unix / 30) as u64).to_be_bytes());
    let h = mac.finalize().into_bytes();
    let o = usize::from(h[19] & 0x0f);
    let v = u32::from_be_bytes([h[o] & 0x7f, h[o + 1], h[o + 2], h[o + 3]]);
    format!("{:06}", v % 1_000_000)
}

#[test]
fn independent_totp_matches_rfc_6238() {
    // RFC 6238 appendix B, SHA-1, last six digits.
    let secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    assert_eq!(totp(secret, 59), "287082");
    assert_eq!(totp(secret, 1_111_111_109), "081804");
    assert_eq!(totp(secret, 2_000_000_000), "279037");
}

#[derive(Default)]
pub struct Tally {
    pub requests: AtomicUsize,
    pub server_errors: AtomicUsize,
}

/// What one virtual user believes about its own account, and its browser
/// (cookies kept between rounds, as a person's browser keeps them).
pub struct Account {
    pub name: String,
    pub browser: Arc<reqwest::cookie::Jar>,
    pub secret: Option<String>,
    pub codes: Vec<String>,
    pub used_codes: Vec<String>,
    pub last_step: i64,
}

impl Account {
    pub fn new(name: String) -> Self {
        Self {
            name,
            browser: Arc::default(),
            secret: None,
            codes: vec![],
            used_codes: vec![],
            last_step: 0,
        }
    }
}

/// Resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mixed_workload_keeps_every_invariant() {
    let seconds: u64 = std::env::var("LATCHKEY_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let app = Arc::new(TestApp::spawn_with(|c| c.clock = latchkey::core::clock::Clock::system()).await);
    for i in 0..VIRTUAL_USERS {
        app.create_user(&format!("soak{i}"), false).await;
    }
    let tally = Arc::new(Tally::default());
    let deadline = Instant::now() + Duration::from_secs(seconds);
    // Memory at minute 1 and at the end (server and clients share this
    // process, so this bounds the server's growth from above).
    let minute_one = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(60.min(seconds / 2))).await;
        rss_kib()
    });
    let mut tasks = Vec::new();
    for i in 0..VIRTUAL_USERS {
        let (app, tally) = (app.clone(), tally.clone());
        tasks.push(tokio::spawn(async move {
            let mut acct = Account::new(format!("soak{i}"));
            let mut round = 0usize;
            // At least MIN_ROUNDS each, however slow the machine, and on
            // until the deadline.
            while round < MIN_ROUNDS || Instant::now() < deadline {
                round += 1;
                virtual_user_round(&app.base, &tally, &mut acct, round + i).await;
            }
            acct
        }));
    }
    let mut accounts = Vec::new();
    for t in tasks {
        accounts.push(t.await.expect("a virtual user panicked"));
    }
    let requests = tally.requests.load(Ordering::SeqCst);
    let (early, late) = (minute_one.await.unwrap(), rss_kib());
    eprintln!("soak: resident memory {early} KiB early, {late} KiB at the end");
    if seconds >= 300 {
        assert!(late * 10 <= early * 11, "memory grew from {early} KiB to {late} KiB");
    }
    assert_eq!(
        tally.server_errors.load(Ordering::SeqCst),
        0,
        "5xx answers in {requests} requests"
    );
    assert!(requests > VIRTUAL_USERS * 10, "the workload ran ({requests} requests)");

    // The database agrees with what every virtual user was told.
    let by_name: HashMap<String, bool> = app
        .db
        .run(|c| {
            let mut out = HashMap::new();
            for u in latchkey::db::users::all(c)? {
                out.insert(u.username.clone(), latchkey::db::credentials::has_confirmed(c, u.id)?);
            }
            Ok(out)
        })
        .await
        .unwrap();
    for acct in &accounts {
        assert_eq!(by_name[&acct.name], acct.secret.is_some(), "{}: 2FA state", acct.name);
        if acct.secret.is_some() {
            let uid = app.user(&acct.name).await.id;
            let left = app
                .db
                .run(move |c| latchkey::db::recovery::remaining(c, uid))
                .await
                .unwrap();
            assert_eq!(left as usize, acct.codes.len(), "{}: unused recovery codes", acct.name);
            // A used code stays used.
            if let Some(used) = acct.used_codes.last() {
                let (_, p) = login_with_code(&app, &acct.name, used).await;
                assert_eq!(
                    p.status,
                    StatusCode::UNAUTHORIZED,
                    "{}: a used code worked again",
                    acct.name
                );
            }
        }
    }
    eprintln!("soak: {requests} requests in {seconds} s, no 5xx, invariants hold");
}

pub async fn checked(tally: &Tally, page: Page) -> Page {
    tally.requests.fetch_add(1, Ordering::Relaxed);
    if page.status.is_server_error() {
        tally.server_errors.fetch_add(1, Ordering::Relaxed);
        eprintln!(
            "5xx: {} {}",
            page.status,
            page.body.chars().take(300).collect::<String>()
        );
    }
    page
}

/// One round of one virtual user against the server at `base`.
pub async fn virtual_user_round(base: &str, tally: &Tally, acct: &mut Account, dice: usize) {
    let c = TestClient::with_jar(base, acct.browser.clone());
    // Sign in: with a fresh TOTP step when there is one, else a recovery code.
    let p = checked(tally, c.login(&acct.name, PASSWORD).await).await;
    if let Some(secret) = acct.secret.clone() {
        assert!(p.redirects_to("/login/two-factor"), "{}: {}", acct.name, p.status);
        let now = latchkey::core::clock::system_now();
        let step = now / 30;
        let code = if step > acct.last_step {
            acct.last_step = step;
            totp(&secret, now)
        } else if acct.codes.len() > 2 {
            let code = acct.codes.remove(0);
            acct.used_codes.push(code.clone());
            code
        } else {
            return; // nothing usable this step; try again later
        };
        let p = checked(tally, c.post("/login/two-factor", &[("code", &code)]).await).await;
        assert!(
            p.redirects_to("/"),
            "{}: second factor refused ({}) {:?}",
            acct.name,
            p.status,
            p.flash()
        );
    } else {
        assert!(p.redirects_to("/"), "{}: {}", acct.name, p.status);
    }
    for path in [
        "/",
        "/settings/account",
        "/settings/account/mfa",
        "/settings/account/sessions",
    ] {
        let p = checked(tally, c.get(path).await).await;
        assert_eq!(p.status, StatusCode::OK, "{}: GET {path}", acct.name);
    }
    match (acct.secret.is_some(), dice % 4) {
        (false, _) => {
            // Enrol.
            let setup = checked(tally, c.post_follow("/settings/account/mfa/enable", &[]).await).await;
            let secret = setup.text_of("mfa-secret").expect("setup page").replace(' ', "");
            let now = latchkey::core::clock::system_now();
            let shown = checked(
                tally,
                c.post_follow("/settings/account/mfa/confirm", &[("code", &totp(&secret, now))])
                    .await,
            )
            .await;
            assert_eq!(
                shown.status,
                StatusCode::OK,
                "{}: confirm {:?}",
                acct.name,
                shown.flash()
            );
            acct.last_step = now / 30;
            acct.codes = list_items(&shown.body, "recovery-codes");
            acct.secret = Some(secret);
            checked(tally, c.post("/settings/account/mfa/recovery-codes/copied", &[]).await).await;
        }
        (true, 0) => {
            // Regenerate.
            let p = checked(tally, c.post_follow("/settings/account/mfa/recovery-codes", &[]).await).await;
            let codes = list_items(&p.body, "recovery-codes");
            assert_eq!(codes.len(), 10, "{}: regenerate", acct.name);
            acct.codes = codes;
        }
        (true, 1) if acct.codes.len() > 1 => {
            // Disable, confirming with a recovery code.
            let code = acct.codes.remove(0);
            let p = checked(tally, c.post("/settings/account/mfa/disable", &[("code", &code)]).await).await;
            assert!(
                p.redirects_to("/settings/account/mfa"),
                "{}: disable {:?}",
                acct.name,
                p.flash()
            );
            acct.secret = None;
            acct.codes.clear();
            acct.used_codes.clear();
        }
        _ => {}
    }
    checked(tally, c.post("/logout", &[]).await).await;
}
