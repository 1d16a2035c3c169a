use reqwest::StatusCode;

use crate::helpers::*;

fn path_of(url: &str) -> String {
    let after_scheme = &url[url.find("://").unwrap() + 3..];
    after_scheme[after_scheme.find('/').unwrap()..].to_string()
}

#[tokio::test]
async fn setup_link_creates_the_first_admin_once() {
    let app = TestApp::spawn().await;
    let url = app.setup_url.clone().expect("an empty database arms a setup link");
    let path = path_of(&url);
    let c = app.client();

    let form = c.get(&path).await;
    assert_eq!(form.status, StatusCode::OK);
    let created = c
        .post(
            &path,
            &[
                ("username", "Root"),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
            ],
        )
        .await;
    assert!(
        created.redirects_to("/login"),
        "{} {:?}",
        created.status,
        created.flash()
    );
    let admin = app.user("root").await;
    assert!(admin.is_admin);
    assert!(app.events(admin.id).await.contains(&"setup_completed".to_string()));

    // The link is spent: neither the form nor a second post works.
    assert_eq!(c.get(&path).await.status, StatusCode::GONE);
    let again = app.client();
    let _ = again.get("/login").await;
    let second = again
        .post(
            &path,
            &[
                ("username", "mallory"),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
            ],
        )
        .await;
    assert_eq!(second.status, StatusCode::GONE);
    assert_eq!(app.count("users").await, 1);

    // And the administrator can sign in.
    let p = c.login("root", PASSWORD).await;
    assert!(p.redirects_to("/"));
}

#[tokio::test]
async fn setup_validates_and_changes_nothing_on_mistakes() {
    let app = TestApp::spawn().await;
    let path = path_of(app.setup_url.as_deref().unwrap());
    let c = app.client();
    let _ = c.get(&path).await;
    for (user, pw, confirm) in [
        ("root", PASSWORD, "something else entirely"),
        ("root", "short", "short"),
        ("bad name", PASSWORD, PASSWORD),
        ("", PASSWORD, PASSWORD),
    ] {
        let p = c
            .post(
                &path,
                &[("username", user), ("password", pw), ("password_confirm", confirm)],
            )
            .await;
        assert_eq!(p.status, StatusCode::BAD_REQUEST, "{user:?}");
        assert!(p.flash().is_some());
    }
    assert_eq!(app.count("users").await, 0);
    // Still usable after the mistakes.
    assert_eq!(c.get(&path).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_wrong_token_or_concurrent_use_wins_nothing() {
    let app = TestApp::spawn().await;
    let path = path_of(app.setup_url.as_deref().unwrap());
    let c = app.client();
    assert_eq!(c.get("/setup/not-the-token").await.status, StatusCode::GONE);

    // Ten browsers race to use the same link: exactly one administrator.
    let mut tasks = Vec::new();
    for i in 0..10 {
        let client = app.client();
        let path = path.clone();
        tasks.push(tokio::spawn(async move {
            let _ = client.get(&path).await;
            let name = format!("admin{i}");
            client
                .post(
                    &path,
                    &[
                        ("username", &name),
                        ("password", PASSWORD),
                        ("password_confirm", PASSWORD),
                    ],
                )
                .await
                .status
        }));
    }
    let mut won = 0;
    for t in tasks {
        let status = t.await.unwrap();
        assert!(
            status == StatusCode::SEE_OTHER || status == StatusCode::GONE,
            "{status}"
        );
        won += usize::from(status == StatusCode::SEE_OTHER);
    }
    assert_eq!(won, 1);
    assert_eq!(app.count("users").await, 1);
}

#[tokio::test]
async fn no_setup_link_once_users_exist() {
    let app = TestApp::spawn().await;
    let path = path_of(app.setup_url.as_deref().unwrap());
    app.create_user("alice", false).await;
    // The link armed at start stops working as soon as a user exists.
    assert_eq!(app.client().get(&path).await.status, StatusCode::GONE);
}
