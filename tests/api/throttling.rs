use reqwest::StatusCode;

use crate::helpers::*;

#[tokio::test]
async fn wrong_passwords_throttle_across_sessions() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let a = app.client();
    for _ in 0..5 {
        assert_eq!(
            a.login("alice", "wrong password").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    // A second, separate session from the same address is throttled too —
    // even with the right password. The count lives in the database.
    let b = app.client();
    let resp = {
        let token = b.csrf().await;
        b.http
            .post(b.url("/login"))
            .form(&[("username", "alice"), ("password", PASSWORD), ("csrf_token", &token)])
            .send()
            .await
            .unwrap()
    };
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: i64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    let body = resp.text().await.unwrap();
    assert!(body.contains("Try again in"), "says when");

    // After the wait, the real user gets in.
    app.clock.advance(retry + 1);
    assert!(b.login("alice", PASSWORD).await.redirects_to("/"));
    let uid = app.user("alice").await.id;
    let events = app.events(uid).await;
    assert_eq!(events.iter().filter(|e| *e == "login_failed").count(), 5);
    assert!(events.contains(&"login_throttled".to_string()));
}

#[tokio::test]
async fn unknown_usernames_are_throttled_the_same_way() {
    let app = TestApp::spawn().await;
    let c = app.client();
    for _ in 0..5 {
        assert_eq!(c.login("ghost", "guess").await.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(c.login("ghost", "guess").await.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn lockout_backs_off_but_stays_short_for_the_real_user() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let c = app.client();
    let mut waits = vec![];
    for _ in 0..8 {
        let mut p = c.login("alice", "wrong password").await;
        while p.status == StatusCode::TOO_MANY_REQUESTS {
            app.clock.advance(10);
            p = c.login("alice", "wrong password").await;
        }
        waits.push(app.clock.now());
    }
    let gaps: Vec<i64> = waits.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.last() > gaps.first(), "backoff grows: {gaps:?}");
    // A lockout from these failures never lasts beyond 15 minutes.
    app.clock.advance(15 * 60 + 1);
    assert!(c.login("alice", PASSWORD).await.redirects_to("/"));
}
