//! Upgrade: a database written by the previous release — its schema (the
//! migrations up to 2026-11-29-000003) and its data as that release stored
//! it (the TOTP secret sealed on the user's row, the last accepted step,
//! recovery codes, some used) — is migrated by this binary, and nobody has
//! to enrol again: the same codes work, a replayed step is still refused,
//! used recovery codes stay used.

use diesel::connection::SimpleConnection;
use diesel::{Connection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use latchkey::auth::factors::secret_context;
use latchkey::core::keys::Keyring;
use latchkey::core::recovery::RecoveryCode;
use latchkey::core::totp::TotpSecret;
use latchkey::db::DatabaseUrl;
use reqwest::StatusCode;

use crate::helpers::*;

const SQLITE: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/postgresql");
/// The previous release's migrations: 2026-11-29-000000 … 000003.
const PREVIOUS_RELEASE: usize = 4;

/// What the previous release stored for a user with 2FA on.
struct Old {
    secret: TotpSecret,
    codes: Vec<RecoveryCode>,
    used: usize,
    last_step: i64,
}

fn write_previous_release(url: &DatabaseUrl, keys: &Keyring, now: i64, users: &[(&str, Option<&Old>)]) {
    let hash = latchkey::core::password::hash(PASSWORD, 4).unwrap();
    let mut sql = String::new();
    for (i, (name, old)) in users.iter().enumerate() {
        let id = i + 1;
        let (sealed, enabled, step) = match old {
            Some(o) => (
                format!(
                    "'{}'",
                    keys.seal(o.secret.as_bytes(), &secret_context(UserId(id as i64)))
                ),
                now.to_string(),
                o.last_step.to_string(),
            ),
            None => ("NULL".into(), "NULL".into(), "NULL".into()),
        };
        sql.push_str(&format!(
            "INSERT INTO users (id, username, password_hash, is_admin, created_at, totp_secret_sealed, \
             totp_enabled_at, totp_last_step) VALUES ({id}, '{name}', '{hash}', FALSE, {now}, {sealed}, {enabled}, {step});\n"
        ));
        if let Some(o) = old {
            for (j, code) in o.codes.iter().enumerate() {
                let used = if j < o.used { now.to_string() } else { "NULL".into() };
                sql.push_str(&format!(
                    "INSERT INTO recovery_codes (user_id, code_hash, created_at, used_at) VALUES ({id}, '{}', {now}, {used});\n",
                    keys.recovery_hash(code.canonical())
                ));
            }
        }
    }
    match url {
        DatabaseUrl::Sqlite(path) => {
            let mut c = diesel::SqliteConnection::establish(&path.to_string_lossy()).unwrap();
            for _ in 0..PREVIOUS_RELEASE {
                c.run_next_migration(SQLITE).unwrap();
            }
            c.batch_execute(&sql).unwrap();
        }
        DatabaseUrl::Postgres(u) => {
            let mut c = pg_connect(u);
            for _ in 0..PREVIOUS_RELEASE {
                c.run_next_migration(POSTGRES).unwrap();
            }
            c.batch_execute(&sql).unwrap();
            // The previous release's sequences, as its inserts left them.
            diesel::sql_query("SELECT setval('users_id_seq', (SELECT MAX(id) FROM users))")
                .execute(&mut c)
                .unwrap();
        }
    }
}

#[tokio::test]
async fn a_database_of_the_previous_release_keeps_every_enrolment() {
    let (config, dir, pg) = fresh_config();
    let keys = Keyring::load_or_create(&config.key_file).unwrap();
    let now = config.clock.now();
    let step = now / 30;
    let alice = Old {
        secret: TotpSecret::generate(),
        codes: RecoveryCode::generate_set(),
        used: 3,
        // The current step was used (a sign-in a moment ago).
        last_step: step,
    };
    write_previous_release(
        &config.database_url,
        &keys,
        now,
        &[("alice", Some(&alice)), ("bob", None)],
    );

    // This release starts on it and migrates.
    let (base, db, _, auth) = start(config.clone()).await;
    let app = TestApp {
        base,
        db,
        auth,
        clock: config.clock.clone(),
        setup_url: None,
        db_path: match &config.database_url {
            DatabaseUrl::Sqlite(p) => Some(p.clone()),
            DatabaseUrl::Postgres(_) => None,
        },
        database_url: String::new(),
        config,
        dir,
        pg,
    };
    assert!(app.mfa_on("alice").await, "alice's 2FA came over");
    assert!(!app.mfa_on("bob").await);
    let base32 = alice.secret.to_base32();
    // The step used before the upgrade is still used…
    let (_, p) = login_with_code(&app, "alice", &oathtool(&base32, now)).await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED);
    assert!(p.flash().unwrap().contains("already used"), "{:?}", p.flash());
    // …the next one works…
    app.clock.advance(30);
    let (c, p) = login_with_code(&app, "alice", &oathtool(&base32, app.clock.now())).await;
    assert!(p.redirects_to("/"), "{} {:?}", p.status, p.flash());
    // …and the recovery codes are as they were: 7 unused of 10.
    let tab = c.get("/settings/account/mfa").await;
    assert_eq!(tab.text_of("recovery-codes-remaining").unwrap(), "7");
    app.clock.advance(31);
    let used = alice.codes[0].display();
    let (_, p) = login_with_code(&app, "alice", &used).await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED, "a used recovery code stays used");
    let unused = alice.codes[5].display();
    let (_, p) = login_with_code(&app, "alice", &unused).await;
    assert!(p.redirects_to("/"), "an unused one works");
    // Bob signs in with his password alone, as before.
    assert!(app.client().login("bob", PASSWORD).await.redirects_to("/"));
}
