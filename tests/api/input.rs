//! Bad input gets a clear 4xx page and changes nothing stored.

use reqwest::StatusCode;

use crate::helpers::*;

#[tokio::test]
async fn malformed_login_posts_get_4xx_and_change_nothing() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let c = app.client();
    let token = c.csrf().await;
    let long_name = "a".repeat(10_000);
    let long_password = "p".repeat(2_000);

    let cases: Vec<(&str, &str, Vec<u8>, StatusCode)> = vec![
        (
            "over-long username",
            "application/x-www-form-urlencoded",
            format!("username={long_name}&password=x&csrf_token={token}").into_bytes(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "over-long password",
            "application/x-www-form-urlencoded",
            format!("username=alice&password={long_password}&csrf_token={token}").into_bytes(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "percent-encoded invalid UTF-8",
            "application/x-www-form-urlencoded",
            format!("username=alice&password=%FF%FE&csrf_token={token}").into_bytes(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "raw invalid UTF-8",
            "application/x-www-form-urlencoded",
            [
                b"username=alice&password=\xff\xfe&csrf_token=".as_slice(),
                token.as_bytes(),
            ]
            .concat(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "unknown field",
            "application/x-www-form-urlencoded",
            format!("username=alice&password=x&is_admin=1&csrf_token={token}").into_bytes(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "duplicated field",
            "application/x-www-form-urlencoded",
            format!("username=alice&username=bob&password=x&csrf_token={token}").into_bytes(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "missing field",
            "application/x-www-form-urlencoded",
            format!("username=alice&csrf_token={token}").into_bytes(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "huge body",
            "application/x-www-form-urlencoded",
            format!("username=alice&password={}&csrf_token={token}", "x".repeat(1 << 20)).into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "JSON instead of a form",
            "application/json",
            format!(r#"{{"username":"alice","password":"x","csrf_token":"{token}"}}"#).into_bytes(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "multipart",
            "multipart/form-data; boundary=x",
            b"--x\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nalice\r\n--x--\r\n".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "empty fields",
            "application/x-www-form-urlencoded",
            format!("username=&password=&csrf_token={token}").into_bytes(),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (name, ctype, body, expected) in cases {
        let p = c.post_body("/login", ctype, body).await;
        assert_eq!(p.status, expected, "{name}");
        assert!(
            p.body.contains("role=\"alert\""),
            "{name}: a page that says what went wrong"
        );
    }
    assert_eq!(app.count("users").await, 1);
    assert!(c.get("/").await.redirects_to("/login?next=%2F"), "not signed in");
    assert!(
        c.login("alice", PASSWORD).await.redirects_to("/"),
        "the account still works"
    );
}

#[tokio::test]
async fn sql_and_html_in_fields_are_just_text() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let c = app.client();
    let p = c.login("alice' OR '1'='1", "' OR 1=1 --").await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED);
    let p = c.login("<script>alert(1)</script>", "x").await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED);
    assert!(!p.body.contains("<script>alert(1)"), "echoed username is escaped");
    assert!(
        decode(&p.body).contains("value=\"<script>alert(1)</script>\""),
        "but kept as text"
    );
    assert_eq!(app.count("users").await, 1);
}

#[tokio::test]
async fn bad_query_strings_and_paths_are_4xx() {
    let app = TestApp::spawn().await;
    let c = app.client();
    let p = c.get("/login?next=/a&next=/b").await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.body.contains("role=\"alert\""));
    let p = c.get("/login?next=%FF").await;
    assert!(p.status.is_client_error() || p.status == StatusCode::OK, "{}", p.status);
    let p = c.get("/setup/%FF%FE").await;
    assert!(p.status.is_client_error(), "{}", p.status);
}
