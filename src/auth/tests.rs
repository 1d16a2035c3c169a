//! The service's rules, without HTTP, against a real SQLite file: the same
//! calls the web handlers and the CLI make.

use std::future::Future;
use std::sync::Arc;

use super::account::Disable;
use super::admin::Reset;
use super::factors::{Refusal, Rejected};
use super::password::ThrottleReason;
use super::sign_in::{CodeStep, PasswordStep};
use super::totp::ConfirmOutcome;
use super::{Actor, Auth, AuthSettings, Client};
use crate::core::address::ClientAddress;
use crate::core::clock::Clock;
use crate::core::keys::Keyring;
use crate::core::totp::TotpSecret;
use crate::core::types::Password;
use crate::core::username::Username;
use crate::db::users::User;
use crate::db::{DatabaseUrl, Db};

const PW: &str = "correct horse battery staple";

struct World {
    auth: Auth,
    clock: Clock,
    _dir: tempfile::TempDir,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&DatabaseUrl::Sqlite(dir.path().join("t.db"))).unwrap();
    let clock = Clock::manual(1_800_000_000);
    let settings = AuthSettings {
        issuer: "Test".into(),
        totp_skew: 1,
        public_origin: None,
    };
    let auth = block_on(Auth::new(
        db,
        Arc::new(Keyring::ephemeral()),
        clock.clone(),
        settings,
        4,
    ))
    .unwrap();
    World { auth, clock, _dir: dir }
}

fn block_on<F: Future>(f: F) -> F::Output {
    actix_web::rt::System::new().block_on(f)
}

/// A well-formed code that no step of the window accepts.
fn wrong(secret: &TotpSecret, now: i64) -> String {
    let step = crate::core::totp::step_of(now);
    let valid: Vec<String> = (step - 2..=step + 2).map(|s| secret.code_at_step(s)).collect();
    (0..)
        .map(|n: u32| format!("{:06}", (n * 7919) % 1_000_000))
        .find(|c| !valid.contains(c))
        .unwrap()
}

fn client(address: &str) -> Client {
    Client {
        address: ClientAddress::of(address.parse().unwrap()),
        user_agent: Some("test".into()),
        browser_token: None,
        remember_token: None,
    }
}

impl World {
    async fn user(&self, name: &str) -> User {
        let name = Username::parse(name).unwrap();
        match self
            .auth
            .create_user(Actor::CommandLine, &name, Password::new(PW.into()), false)
            .await
            .unwrap()
        {
            super::admin::Created::Done(u) => u,
            super::admin::Created::Exists => panic!("exists"),
        }
    }

    async fn sign_in(&self, name: &str, password: &str, c: &Client) -> PasswordStep {
        self.auth
            .sign_in_with_password(name, Password::new(password.into()), c)
            .await
            .unwrap()
    }

    /// Turn on TOTP for `user`; returns the secret.
    async fn enrol(&self, user: &User) -> TotpSecret {
        let setup = self.auth.start_totp(user, "sid").await.unwrap().unwrap();
        let code = setup.secret.code_at_step(crate::core::totp::step_of(self.clock.now()));
        let out = self
            .auth
            .confirm_totp(user, "sid", &code, &client("127.0.0.1"))
            .await
            .unwrap();
        assert!(matches!(out, ConfirmOutcome::Confirmed { codes: Some(_) }), "{out:?}");
        setup.secret
    }
}

#[test]
fn a_known_browser_is_not_locked_out_by_anyone_else() {
    let w = world();
    block_on(async {
        w.user("alice").await;
        let PasswordStep::SignedIn(done) = w.sign_in("alice", PW, &client("192.0.2.1")).await else {
            panic!("signs in")
        };
        let mut mine = client("192.0.2.1");
        mine.browser_token = Some(done.browser_token.clone());
        // Guesses from 60 addresses: the daily budget is spent…
        for i in 0..60 {
            w.sign_in("alice", "guess", &client(&format!("10.0.0.{i}"))).await;
        }
        let stranger = w.sign_in("alice", PW, &client("10.0.1.1")).await;
        assert!(
            matches!(stranger, PasswordStep::SecondStep { protected: true, .. }),
            "{stranger:?}"
        );
        // …and the same network as the guesser, with the known browser, is fine.
        mine.address = ClientAddress::of("10.0.0.1".parse().unwrap());
        assert!(matches!(w.sign_in("alice", PW, &mine).await, PasswordStep::SignedIn(_)));
    });
}

#[test]
fn a_network_that_failed_is_refused_when_the_account_is_protected() {
    let w = world();
    block_on(async {
        w.user("alice").await;
        let net = client("198.51.100.1");
        assert!(matches!(w.sign_in("alice", "guess", &net).await, PasswordStep::Wrong));
        for i in 0..60 {
            w.sign_in("alice", "guess", &client(&format!("10.0.0.{i}"))).await;
        }
        assert!(matches!(
            w.sign_in("alice", PW, &net).await,
            PasswordStep::Throttled {
                reason: ThrottleReason::AccountProtected,
                ..
            }
        ));
    });
}

#[test]
fn a_protected_sign_in_needs_the_password_and_the_code() {
    let w = world();
    block_on(async {
        let alice = w.user("alice").await;
        let secret = w.enrol(&alice).await;
        for i in 0..60 {
            w.sign_in("alice", "guess", &client(&format!("10.0.0.{i}"))).await;
        }
        w.clock.advance(30);
        let code = secret.code_at_step(crate::core::totp::step_of(w.clock.now()));
        // A wrong password gets the prompt too, and no code helps it.
        let c = client("192.0.2.9");
        let PasswordStep::SecondStep {
            pending,
            protected: true,
        } = w.sign_in("alice", "guess", &c).await
        else {
            panic!()
        };
        let step = w.auth.submit_code(&pending, &code, &c, false).await.unwrap();
        assert!(matches!(step, CodeStep::Refused { .. }), "{step:?}");
        // The right password and the code sign in.
        let c = client("192.0.2.10");
        let PasswordStep::SecondStep {
            pending,
            protected: true,
        } = w.sign_in("alice", PW, &c).await
        else {
            panic!()
        };
        assert!(matches!(
            w.auth.submit_code(&pending, &code, &c, false).await.unwrap(),
            CodeStep::SignedIn(_)
        ));
    });
}

#[test]
fn a_pending_sign_in_takes_five_wrong_codes_and_completes_once() {
    let w = world();
    block_on(async {
        let alice = w.user("alice").await;
        let secret = w.enrol(&alice).await;
        w.clock.advance(30);
        let c = client("192.0.2.1");
        let PasswordStep::SecondStep {
            pending,
            protected: false,
        } = w.sign_in("alice", PW, &c).await
        else {
            panic!()
        };
        let bad = wrong(&secret, w.clock.now());
        for left in (1..5).rev() {
            let step = w.auth.submit_code(&pending, &bad, &c, false).await.unwrap();
            match step {
                CodeStep::Refused { attempts_left, .. } => assert_eq!(attempts_left, left),
                CodeStep::Throttled(_) => {}
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(
            w.auth.submit_code(&pending, &bad, &c, false).await.unwrap(),
            CodeStep::Ended
        ));
        let code = secret.code_at_step(crate::core::totp::step_of(w.clock.now()));
        assert!(matches!(
            w.auth.submit_code(&pending, &code, &c, false).await.unwrap(),
            CodeStep::Gone
        ));
        // Past the account's lock (five wrong codes: 30 s).
        w.clock.advance(31);
        // A fresh one completes, once.
        let PasswordStep::SecondStep { pending, .. } = w.sign_in("alice", PW, &c).await else {
            panic!()
        };
        assert!(matches!(
            w.auth.submit_code(&pending, &code, &c, false).await.unwrap(),
            CodeStep::SignedIn(_)
        ));
        assert!(matches!(
            w.auth.submit_code(&pending, &code, &c, false).await.unwrap(),
            CodeStep::Gone
        ));
    });
}

#[test]
fn a_code_is_accepted_once_and_a_recovery_code_once() {
    let w = world();
    block_on(async {
        let alice = w.user("alice").await;
        let secret = w.enrol(&alice).await;
        w.clock.advance(30);
        let code = secret.code_at_step(crate::core::totp::step_of(w.clock.now()));
        let c = client("192.0.2.1");
        let PasswordStep::SecondStep { pending: first, .. } = w.sign_in("alice", PW, &c).await else {
            panic!()
        };
        let PasswordStep::SecondStep { pending: second, .. } = w.sign_in("alice", PW, &c).await else {
            panic!()
        };
        assert!(matches!(
            w.auth.submit_code(&first, &code, &c, false).await.unwrap(),
            CodeStep::SignedIn(_)
        ));
        assert!(matches!(
            w.auth.submit_code(&second, &code, &c, false).await.unwrap(),
            CodeStep::Refused {
                refusal: Refusal::Replayed,
                ..
            }
        ));
    });
}

#[test]
fn enrolment_belongs_to_its_session_and_dies_after_five_wrong_codes() {
    let w = world();
    block_on(async {
        let alice = w.user("alice").await;
        let c = client("192.0.2.1");
        let setup = w.auth.start_totp(&alice, "mine").await.unwrap().unwrap();
        let code = setup.secret.code_at_step(crate::core::totp::step_of(w.clock.now()));
        let bad = wrong(&setup.secret, w.clock.now());
        assert!(matches!(
            w.auth.confirm_totp(&alice, "theirs", &code, &c).await.unwrap(),
            ConfirmOutcome::NotPending
        ));
        for left in (1..5).rev() {
            match w.auth.confirm_totp(&alice, "mine", &bad, &c).await.unwrap() {
                ConfirmOutcome::Wrong(s) => assert_eq!(s.attempts_left, left),
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(
            w.auth.confirm_totp(&alice, "mine", &bad, &c).await.unwrap(),
            ConfirmOutcome::Ended
        ));
        assert!(matches!(
            w.auth.confirm_totp(&alice, "mine", &code, &c).await.unwrap(),
            ConfirmOutcome::NotPending
        ));
    });
}

#[test]
fn disable_needs_a_current_code_and_ends_everything_in_one_go() {
    let w = world();
    block_on(async {
        let alice = w.user("alice").await;
        let secret = w.enrol(&alice).await;
        let c = client("192.0.2.1");
        match w
            .auth
            .disable_mfa(&alice, &wrong(&secret, w.clock.now()), &c)
            .await
            .unwrap()
        {
            Disable::Refused(Rejected::Refused(Refusal::Wrong(_))) => {}
            other => panic!("{other:?}"),
        }
        w.clock.advance(30);
        let code = secret.code_at_step(crate::core::totp::step_of(w.clock.now()));
        assert!(matches!(
            w.auth.disable_mfa(&alice, &code, &c).await.unwrap(),
            Disable::Done { .. }
        ));
        let overview = w.auth.mfa_overview(&alice).await.unwrap();
        assert!(!overview.enabled() && overview.recovery_codes_left == 0);
        assert!(matches!(
            w.auth.disable_mfa(&alice, &code, &c).await.unwrap(),
            Disable::AlreadyOff
        ));
    });
}

#[test]
fn an_admin_reset_removes_factors_codes_browsers_and_sessions_with_its_log_row() {
    let w = world();
    block_on(async {
        let alice = w.user("alice").await;
        w.enrol(&alice).await;
        let reset = w.auth.reset_mfa(Actor::CommandLine, alice.id).await.unwrap();
        assert_eq!(reset, Some(Reset::Done { sessions_ended: 0 }));
        assert!(!w.auth.mfa_overview(&alice).await.unwrap().enabled());
        let (log, _) = w.auth.security_log(Some(alice.id), None, 0, 10).await.unwrap();
        assert_eq!(log[0].kind, "mfa_reset");
        assert_eq!(log[0].detail.as_deref(), Some("command line"));
        let again = w.auth.reset_mfa(Actor::CommandLine, alice.id).await.unwrap();
        assert_eq!(again, Some(Reset::WasOff { sessions_ended: 0 }));
    });
}

#[test]
fn unlock_clears_every_counter_of_the_account() {
    let w = world();
    block_on(async {
        let alice = w.user("alice").await;
        let net = client("198.51.100.1");
        for _ in 0..5 {
            w.sign_in("alice", "guess", &net).await;
        }
        assert!(matches!(
            w.sign_in("alice", PW, &net).await,
            PasswordStep::Throttled { .. }
        ));
        let overview = w.auth.users_overview().await.unwrap();
        assert_eq!(overview[0].locks.networks, 1);
        let cleared = w.auth.unlock(Actor::CommandLine, &alice).await.unwrap();
        assert!(cleared >= 2, "the network's counter and the daily budget: {cleared}");
        assert!(matches!(w.sign_in("alice", PW, &net).await, PasswordStep::SignedIn(_)));
    });
}

#[test]
fn the_second_factor_lock_is_counted_shown_and_cleared_and_right_codes_write_no_counter() {
    let w = world();
    block_on(async {
        let alice = w.user("alice").await;
        let secret = w.enrol(&alice).await;
        w.clock.advance(30);
        let c = client("192.0.2.1");
        let counters = |name: String| {
            let db = w.auth.db.clone();
            let account = w.auth.account_key(&name);
            async move {
                db.read(move |c| crate::db::throttles::for_account(c, &account))
                    .await
                    .unwrap()
                    .0
                    .len()
            }
        };
        // Right codes only: no counter row is written for the account.
        let PasswordStep::SecondStep { pending, .. } = w.sign_in("alice", PW, &c).await else {
            panic!()
        };
        let code = secret.code_at_step(crate::core::totp::step_of(w.clock.now()));
        let step = w.auth.submit_code(&pending, &code, &c, false).await.unwrap();
        assert!(matches!(step, CodeStep::SignedIn(_)), "{step:?}");
        assert_eq!(counters("alice".into()).await, 0);
        // Five wrong codes: the account's counter is created and locks it.
        w.clock.advance(30);
        let PasswordStep::SecondStep { pending, .. } = w.sign_in("alice", PW, &c).await else {
            panic!()
        };
        let bad = wrong(&secret, w.clock.now());
        for _ in 0..5 {
            w.auth.submit_code(&pending, &bad, &c, false).await.unwrap();
        }
        assert_eq!(counters("alice".into()).await, 1);
        let overview = w.auth.users_overview().await.unwrap();
        assert!(
            overview[0].locks.second_factor_until.is_some(),
            "{:?}",
            overview[0].locks
        );
        let PasswordStep::SecondStep { pending, .. } = w.sign_in("alice", PW, &c).await else {
            panic!()
        };
        let code = secret.code_at_step(crate::core::totp::step_of(w.clock.now()));
        let step = w.auth.submit_code(&pending, &code, &c, false).await.unwrap();
        assert!(matches!(step, CodeStep::Throttled(_)), "locked: {step:?}");
        // Unlock clears it: the right code is taken at once.
        assert!(w.auth.unlock(Actor::CommandLine, &alice).await.unwrap() >= 1);
        let step = w.auth.submit_code(&pending, &code, &c, false).await.unwrap();
        assert!(matches!(step, CodeStep::SignedIn(_)), "{step:?}");
        assert_eq!(counters("alice".into()).await, 0);
    });
}
