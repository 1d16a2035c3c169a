//! Micro-benchmarks of the per-request cryptography (docs/PERFORMANCE.md).
//!
//! `cargo bench --bench crypto` (or `scripts/bench`). Each benchmark runs on
//! one thread, so "per second on one core" is 1 / the reported time.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use latchkey::core::keys::Keyring;
use latchkey::core::password;
use latchkey::core::recovery::RecoveryCode;
use latchkey::core::totp::{TotpCode, TotpSecret, step_of};

/// Fixed "now" so every run checks the same steps.
const NOW: i64 = 1_700_000_000;

fn totp(c: &mut Criterion) {
    let secret = TotpSecret::from_bytes(b"12345678901234567890").unwrap();
    let right = TotpCode::parse(&secret.code_at_step(step_of(NOW))).unwrap();
    // A code that matches none of the three steps: every step is computed and
    // compared anyway (constant time), so this is the worst case.
    let wrong = (0..1_000_000u32)
        .map(|n| format!("{n:06}"))
        .find(|s| (step_of(NOW) - 1..=step_of(NOW) + 1).all(|t| secret.code_at_step(t) != *s))
        .and_then(|s| TotpCode::parse(&s))
        .unwrap();
    let mut g = c.benchmark_group("totp");
    g.bench_function("verify (right code, 3 steps)", |b| {
        b.iter(|| black_box(&secret).verify(black_box(&right), black_box(NOW), 1))
    });
    g.bench_function("verify (wrong code, 3 steps)", |b| {
        b.iter(|| black_box(&secret).verify(black_box(&wrong), black_box(NOW), 1))
    });
    g.bench_function("parse + verify (wrong code)", |b| {
        b.iter(|| {
            let code = TotpCode::parse(black_box("123 456")).unwrap();
            black_box(&secret).verify(&code, black_box(NOW), 1)
        })
    });
    g.finish();
}

fn recovery(c: &mut Criterion) {
    let keys = Keyring::ephemeral();
    let mut g = c.benchmark_group("recovery code");
    // What the server does per attempt before its one conditional UPDATE:
    // parse what was typed, then the keyed hash under every key.
    g.bench_function("parse + keyed hash", |b| {
        b.iter(|| {
            let code = RecoveryCode::parse(black_box("abcde-fghjk-lmnpq")).unwrap();
            keys.recovery_hash_candidates(code.canonical())
        })
    });
    g.finish();
}

fn sealing(c: &mut Criterion) {
    let keys = Keyring::ephemeral();
    let secret = TotpSecret::generate();
    let context = latchkey::auth::factors::secret_context(latchkey::core::types::UserId(42));
    let sealed = keys.seal(secret.as_bytes(), &context);
    let mut g = c.benchmark_group("secret");
    g.bench_function("seal", |b| b.iter(|| keys.seal(black_box(secret.as_bytes()), &context)));
    g.bench_function("open", |b| b.iter(|| keys.open(black_box(&sealed), &context).unwrap()));
    g.finish();
}

fn bcrypt(c: &mut Criterion) {
    // The cost that bounds sign-ins: one verify at the default cost 12
    // (and at 4, which the load test uses for its second-factor users).
    let h12 = password::hash("correct horse battery staple", 12).unwrap();
    let h4 = password::hash("correct horse battery staple", 4).unwrap();
    let mut g = c.benchmark_group("password");
    g.sample_size(10);
    g.bench_function("verify bcrypt cost 12", |b| {
        b.iter(|| password::verify(black_box("correct horse battery staple"), &h12))
    });
    g.bench_function("verify bcrypt cost 4", |b| {
        b.iter(|| password::verify(black_box("correct horse battery staple"), &h4))
    });
    g.finish();
}

criterion_group!(benches, totp, recovery, sealing, bcrypt);
criterion_main!(benches);
