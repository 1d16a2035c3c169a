//! A virtual user's HTTP: one keep-alive connection, cookies kept by hand
//! (a browser's cookie jar, minus what the server never sends), redirects not
//! followed so every step is timed on its own.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;

pub const SESSION_COOKIE: &str = "latchkey_session";

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .pool_max_idle_per_host(1)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client")
}

#[derive(Clone, Default, Debug)]
pub struct Cookies(BTreeMap<String, String>);

impl Cookies {
    pub fn absorb(&mut self, resp: &reqwest::Response) {
        for v in resp.headers().get_all(SET_COOKIE) {
            let Ok(v) = v.to_str() else { continue };
            let pair = v.split(';').next().unwrap_or("");
            if let Some((name, value)) = pair.split_once('=') {
                let removal = value.is_empty() || v.contains("Max-Age=0") || v.contains("max-age=0");
                if removal {
                    self.0.remove(name.trim());
                } else {
                    self.0.insert(name.trim().to_string(), value.to_string());
                }
            }
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The outcome of one request: status, Location, body, time taken.
pub struct Reply {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
    pub took: Duration,
}

pub async fn get(client: &reqwest::Client, url: &str, cookies: &mut Cookies) -> anyhow::Result<Reply> {
    let t = Instant::now();
    let mut req = client.get(url);
    if !cookies.0.is_empty() {
        req = req.header(COOKIE, cookies.header());
    }
    finish(req.send().await?, cookies, t).await
}

pub async fn post(
    client: &reqwest::Client,
    url: &str,
    cookies: &mut Cookies,
    form: &[(&str, &str)],
) -> anyhow::Result<Reply> {
    let t = Instant::now();
    let body = serde_urlencoded::to_string(form)?;
    let req = client
        .post(url)
        .header(COOKIE, cookies.header())
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body);
    finish(req.send().await?, cookies, t).await
}

async fn finish(resp: reqwest::Response, cookies: &mut Cookies, t: Instant) -> anyhow::Result<Reply> {
    cookies.absorb(&resp);
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = resp.text().await?;
    Ok(Reply {
        status,
        location,
        body,
        took: t.elapsed(),
    })
}

/// The value of the hidden `csrf_token` input of a page.
pub fn csrf_token(html: &str) -> Option<String> {
    let at = html.find("name=\"csrf_token\" value=\"")? + "name=\"csrf_token\" value=\"".len();
    let end = html[at..].find('"')?;
    Some(html[at..at + end].to_string())
}

/// A visitor that has loaded the login page: its CSRF cookie and token.
pub async fn visit_login(client: &reqwest::Client, base: &str) -> anyhow::Result<(Cookies, String)> {
    let mut cookies = Cookies::default();
    let r = get(client, &format!("{base}/login"), &mut cookies).await?;
    anyhow::ensure!(r.status == 200, "GET /login answered {}", r.status);
    let token = csrf_token(&r.body).ok_or_else(|| anyhow::anyhow!("no csrf_token on /login"))?;
    Ok((cookies, token))
}

/// Password step for `username`; returns the new session cookie and where
/// the server sent us.
pub async fn password_step(
    client: &reqwest::Client,
    base: &str,
    cookies: &mut Cookies,
    token: &str,
    username: &str,
    password: &str,
) -> anyhow::Result<Reply> {
    post(
        client,
        &format!("{base}/login"),
        cookies,
        &[("username", username), ("password", password), ("csrf_token", token)],
    )
    .await
}
