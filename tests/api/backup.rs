//! `latchkey backup PATH`: a consistent copy of the SQLite database taken
//! while the server is busy, restored, and signed in to with a code.

use crate::helpers::*;
use crate::ops_support::*;

#[tokio::test]
async fn backup_under_load_restores_and_signs_in_with_a_code() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let (url, _pg) = binary_database(root);
    let key = root.join("latchkey.key");
    if testing_postgres() {
        // PostgreSQL has its own tools; the command says so.
        let _s = serve(root, &url, &key, &[], &[]);
        let out = latchkey(root, &url, &key, &["backup", "x.db"]);
        assert!(!out.status.success());
        assert!(text(&out).contains("pg_dump"), "{}", text(&out));
        return;
    }
    let server = serve(root, &url, &key, &[], &[]);
    add_user(root, &url, &key, "alice");
    let alice = sign_in(&server.base, "alice").await;
    let (secret, codes) = enrol_now(&alice).await;
    for i in 0..5 {
        add_user(root, &url, &key, &format!("user{i}"));
    }

    // Load: sign-ins and page views from several clients while the backup runs.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for i in 0..4 {
        let (base, stop) = (server.base.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let mut done = 0u32;
            // Bounded: at most 200 rounds per client.
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && done < 200 {
                let c = TestClient::new(&base);
                let p = c.login(&format!("user{i}"), PASSWORD).await;
                assert!(p.redirects_to("/"), "sign-in under load: {}", p.status);
                assert_eq!(c.get("/settings/account/sessions").await.status, 200);
                done += 1;
            }
            done
        }));
    }
    // Let the load get going: the first sign-ins are in.
    let mut seen = 0;
    for _ in 0..600 {
        seen = count_sessions(&url);
        if seen >= 5 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(seen >= 5, "the load started (Alice and four clients signed in)");
    let copy = root.join("backup.db");
    let out = latchkey(root, &url, &key, &["backup", copy.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("Back up the key file"), "{}", text(&out));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for l in load {
        assert!(l.await.unwrap() > 0);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the copy holds password hashes");
    }
    // A second backup to the same name is refused rather than overwritten.
    let again = latchkey(root, &url, &key, &["backup", copy.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(text(&again).contains("already exists"));
    server.stop();

    // Restore on another machine: the copy and the key file, nothing else.
    let restored = subdir(root, "restored");
    std::fs::copy(&copy, restored.join("latchkey.db")).unwrap();
    std::fs::copy(&key, restored.join("latchkey.key")).unwrap();
    let restored_url = format!("sqlite://{}", restored.join("latchkey.db").display());
    let s = serve(&restored, &restored_url, &restored.join("latchkey.key"), &[], &[]);
    let (_, p) = sign_in_with_code(&s.base, "alice", &next_code(&secret)).await;
    assert!(p.redirects_to("/"), "code on the restored copy: {:?}", p.flash());
    let (_, p) = sign_in_with_code(&s.base, "alice", &codes[0]).await;
    assert!(
        p.redirects_to("/"),
        "recovery code on the restored copy: {:?}",
        p.flash()
    );
    s.stop();
}

fn count_sessions(url: &str) -> i64 {
    use diesel::prelude::*;
    let mut c = diesel::SqliteConnection::establish(url.trim_start_matches("sqlite://")).unwrap();
    latchkey::schema::sessions::table
        .filter(latchkey::schema::sessions::user_id.is_not_null())
        .count()
        .get_result(&mut c)
        .unwrap_or(0)
}
