//! `latchkey key rotate` online, with two instances (separate processes,
//! each with its own copy of the key file, restarted one at a time after
//! each step, as README "Rotating the server key" says): codes, recovery
//! codes, sessions and CSRF tokens keep working throughout, and an
//! instance left with an outdated key file refuses to start.

use std::path::Path;

use reqwest::StatusCode;

use crate::helpers::*;
use crate::ops_support::*;

/// Run the next rotation step on instance A's key file, and hand the file
/// to B (as an operator copies it to every machine).
fn rotate_step(root: &Path, url: &str, a_key: &Path, b_key: &Path, expect: &str) -> String {
    let out = latchkey(root, url, a_key, &["key", "rotate"]);
    let said = text(&out);
    assert!(out.status.success(), "key rotate: {said}");
    assert!(said.contains(expect), "expected {expect:?}: {said}");
    std::fs::copy(a_key, b_key).unwrap();
    said
}

/// The session is alive and signed in at `base`.
async fn signed_in_at(c: &TestClient, base: &str) {
    let p = c.on(base).get("/").await;
    assert_eq!(p.status, StatusCode::OK, "session at {base}: {:?}", p.location);
}

/// A CSRF-protected POST with the token `token`, from the same browser at `base`.
async fn post_with_token(c: &TestClient, base: &str, token: &str) -> Page {
    c.on(base)
        .post_raw("/settings/account/sessions/revoke-others", &[("csrf_token", token)])
        .await
}

/// The server refuses to start on this key file, saying `why`.
fn refuses_to_start(root: &Path, url: &str, key: &Path, why: &str) {
    let mut p = spawn_serve(root, url, key, &[], &[]);
    p.wait_for(why);
    let status = p.exit();
    assert!(
        !status.success(),
        "started on an outdated key file:\n{}",
        p.log().join("\n")
    );
}

async fn sealed_values(url: &str) -> Vec<String> {
    use diesel::prelude::*;
    use latchkey::schema::credentials as t;
    let mut c = latchkey::db::Db::connect(&latchkey::db::DatabaseUrl::parse(url).unwrap()).unwrap();
    t::table
        .filter(t::secret_sealed.is_not_null())
        .select(t::secret_sealed.assume_not_null())
        .load::<String>(&mut c)
        .unwrap()
}

#[tokio::test]
async fn rotation_online_with_two_instances() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let (url, _pg) = binary_database(root);
    let (a_dir, b_dir) = (subdir(root, "a"), subdir(root, "b"));
    let (a_key, b_key) = (a_dir.join("latchkey.key"), b_dir.join("latchkey.key"));

    // Two instances on one database and one key (k1).
    let mut a = serve(&a_dir, &url, &a_key, &[], &[]);
    std::fs::copy(&a_key, &b_key).unwrap();
    let old_key_file = root.join("k1-only.key");
    std::fs::copy(&a_key, &old_key_file).unwrap();
    let mut b = serve(&b_dir, &url, &b_key, &[], &[]);
    for name in ["alice", "bob", "carol", "dave", "erin"] {
        add_user(root, &url, &a_key, name);
    }
    // Carol stays signed in through the whole rotation; her form token is
    // from a page served under k1.
    let carol = sign_in(&a.base, "carol").await;
    let carol_token = carol
        .on(&a.base)
        .get("/settings/account/sessions")
        .await
        .csrf()
        .unwrap();
    // Alice, Bob and Dave turn 2FA on under k1.
    let mut factors = std::collections::HashMap::new();
    for name in ["alice", "bob", "dave"] {
        let c = sign_in(&a.base, name).await;
        factors.insert(name, enrol_now(&c).await);
    }

    // Step 1: add k2; restart B, then A, with the new file.
    let said = rotate_step(root, &url, &a_key, &b_key, "Step 1 of 3: added key `k2`");
    assert!(said.contains("run `latchkey key rotate` again"), "{said}");
    b.stop();
    b = serve(&b_dir, &url, &b_key, &[], &[]);
    signed_in_at(&carol, &b.base).await;
    a.stop();
    a = serve(&a_dir, &url, &a_key, &[], &[]);
    signed_in_at(&carol, &a.base).await;

    // Step 2: k2 becomes current. Restart B only: A still makes everything
    // with k1, B with k2, and each accepts the other's.
    rotate_step(root, &url, &a_key, &b_key, "Step 2 of 3: `k2` is now the active key");
    b.stop();
    b = serve(&b_dir, &url, &b_key, &[], &[]);
    signed_in_at(&carol, &b.base).await;
    let p = post_with_token(&carol, &b.base, &carol_token).await;
    assert_eq!(
        p.status,
        StatusCode::SEE_OTHER,
        "a k1 form token on a k2 instance: {}",
        p.body
    );
    signed_in_at(&carol, &a.base).await;
    let k2_token = carol
        .on(&b.base)
        .get("/settings/account/sessions")
        .await
        .csrf()
        .unwrap();
    assert_ne!(k2_token, carol_token);
    let p = post_with_token(&carol, &a.base, &k2_token).await;
    assert_eq!(
        p.status,
        StatusCode::SEE_OTHER,
        "a k2 form token on a k1 instance: {}",
        p.body
    );
    // A secret sealed under k1, checked on the k2 instance; a session made
    // by the k2 instance, used on the k1 instance.
    let (dave_secret, _) = &factors["dave"];
    let (dave, p) = sign_in_with_code(&b.base, "dave", &next_code(dave_secret)).await;
    assert!(p.redirects_to("/"), "dave's code on the k2 instance: {:?}", p.flash());
    signed_in_at(&dave, &a.base).await;
    // A recovery code hashed under k1, on the k2 instance.
    let (_, bob_codes) = &factors["bob"];
    let (_, p) = sign_in_with_code(&b.base, "bob", &bob_codes[0]).await;
    assert!(
        p.redirects_to("/"),
        "bob's k1 recovery code on the k2 instance: {:?}",
        p.flash()
    );
    // Erin turns 2FA on at the k2 instance: her secret is sealed under k2,
    // and the k1 instance (which holds k2) checks it.
    let erin = sign_in(&b.base, "erin").await;
    let (erin_secret, _) = enrol_now(&erin).await;
    let (_, p) = sign_in_with_code(&a.base, "erin", &next_code(&erin_secret)).await;
    assert!(
        p.redirects_to("/"),
        "erin's k2 secret on the k1 instance: {:?}",
        p.flash()
    );
    // An instance with only the old key refuses to start now.
    refuses_to_start(root, &url, &old_key_file, "current server key is `k2`");
    a.stop();
    a = serve(&a_dir, &url, &a_key, &[], &[]);

    // Step 3: re-seal everything under k2, retire k1.
    let said = rotate_step(root, &url, &a_key, &b_key, "Step 3 of 3");
    assert!(said.contains("retired `k1`"), "{said}");
    assert!(
        sealed_values(&url).await.iter().all(|s| s.starts_with("v1.k2.")),
        "every secret is sealed under k2"
    );
    let file = std::fs::read_to_string(&a_key).unwrap();
    let old = std::fs::read_to_string(&old_key_file).unwrap();
    let old_master = old
        .lines()
        .find(|l| l.starts_with("k1 "))
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap();
    assert!(file.contains("k1 retired "), "{file}");
    assert!(!file.contains(old_master), "the retired key's master key left the file");
    // The file from step 2 still has k1's master key: allowed, with a warning.
    // A file whose active key is retired is refused.
    let stale = root.join("stale.key");
    latchkey::core::keys::replace_private_file(
        &stale,
        format!(
            "{}\n{}",
            old.trim(),
            file.lines().find(|l| l.starts_with("k2 ")).unwrap()
        )
        .as_bytes(),
    )
    .unwrap();
    refuses_to_start(root, &url, &stale, "was retired");
    b.stop();
    b = serve(&b_dir, &url, &b_key, &[], &[]);
    a.stop();
    a = serve(&a_dir, &url, &a_key, &[], &[]);

    // After the rotation, on instances without k1's master key: codes
    // (re-sealed), recovery codes (hashed under retired k1), Carol's
    // session from before the rotation, and fresh form tokens.
    let (alice_secret, _) = &factors["alice"];
    let (_, p) = sign_in_with_code(&a.base, "alice", &next_code(alice_secret)).await;
    assert!(p.redirects_to("/"), "alice's code after the rotation: {:?}", p.flash());
    let (_, p) = sign_in_with_code(&b.base, "bob", &bob_codes[1]).await;
    assert!(
        p.redirects_to("/"),
        "bob's k1 recovery code after k1 retired: {:?}",
        p.flash()
    );
    signed_in_at(&carol, &a.base).await;
    signed_in_at(&carol, &b.base).await;
    let fresh = carol
        .on(&b.base)
        .get("/settings/account/sessions")
        .await
        .csrf()
        .unwrap();
    assert_eq!(
        post_with_token(&carol, &a.base, &fresh).await.status,
        StatusCode::SEE_OTHER
    );
    signed_in_at(&carol, &a.base).await;

    // The next run finds k1 still needed (Bob has unused recovery codes
    // hashed under it) and keeps it, and starts a new rotation.
    let out = latchkey(root, &url, &a_key, &["key", "rotate"]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    // (Alice's and Dave's ten and Bob's eight left; Erin's are under k2.)
    assert!(
        said.contains("Retired key `k1` is still needed: 28 unused recovery code(s)"),
        "{said}"
    );
    assert!(said.contains("added key `k3`"), "{said}");
    a.stop();
    b.stop();
}

/// `--all` rotates a stopped deployment in one go; bad requests are refused
/// with a clear message.
#[tokio::test]
async fn rotation_all_at_once_and_refusals() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let (url, _pg) = binary_database(root);
    let key = root.join("latchkey.key");
    // No key file yet.
    let out = latchkey(root, &url, &key, &["key", "rotate"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("no key file"), "{}", text(&out));

    let s = serve(root, &url, &key, &[], &[]);
    add_user(root, &url, &key, "alice");
    let alice = sign_in(&s.base, "alice").await;
    let (secret, codes) = enrol_now(&alice).await;
    s.stop();

    let out = latchkey(root, &url, &key, &["key", "rotate", "--step", "finish"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("no older key to retire"), "{}", text(&out));
    let out = latchkey(root, &url, &key, &["key", "rotate", "--step", "activate"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("no added key"), "{}", text(&out));

    let out = latchkey(root, &url, &key, &["key", "rotate", "--all"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(sealed_values(&url).await.iter().all(|v| v.starts_with("v1.k2.")));

    let s = serve(root, &url, &key, &[], &[]);
    let (_, p) = sign_in_with_code(&s.base, "alice", &next_code(&secret)).await;
    assert!(p.redirects_to("/"), "code after --all: {:?}", p.flash());
    let (_, p) = sign_in_with_code(&s.base, "alice", &codes[0]).await;
    assert!(p.redirects_to("/"), "recovery code after --all: {:?}", p.flash());
    s.stop();
}
