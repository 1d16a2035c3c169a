//! A virtual user's HTTP: one keep-alive connection, cookies kept by hand
//! (a browser's cookie jar, minus what the server never sends), redirects not
//! followed so every step is timed on its own.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, COOKIE, HeaderMap, HeaderValue, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;

pub const SESSION_COOKIE: &str = "latchkey_session";

/// The header through which a client's address reaches the server, which
/// is started with `--trusted-proxies 127.0.0.1` (the tool is its proxy).
pub const FORWARDED_FOR: &str = "x-forwarded-for";

/// Answers 429 Too Many Requests seen anywhere in this run. The server's
/// per-address and per-account limits should never refuse the tool (each
/// account comes from its own address, and no wrong password is sent); a
/// 429 means the numbers measure refusals, so the run fails.
pub static TOO_MANY_REQUESTS: AtomicU64 = AtomicU64::new(0);

fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .pool_max_idle_per_host(1)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
}

pub fn client() -> reqwest::Client {
    builder().build().expect("HTTP client")
}

/// A client whose every request comes from `from` (one person's browser
/// behind the proxy).
pub fn client_from(from: IpAddr) -> reqwest::Client {
    let mut headers = HeaderMap::new();
    headers.insert(FORWARDED_FOR, forwarded_for(from));
    builder().default_headers(headers).build().expect("HTTP client")
}

fn forwarded_for(from: IpAddr) -> HeaderValue {
    HeaderValue::from_str(&from.to_string()).expect("an address is a header value")
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
    post_from(client, url, cookies, form, None).await
}

/// `post`, from the client address `from` if given (else the client's own).
pub async fn post_from(
    client: &reqwest::Client,
    url: &str,
    cookies: &mut Cookies,
    form: &[(&str, &str)],
    from: Option<IpAddr>,
) -> anyhow::Result<Reply> {
    let t = Instant::now();
    let body = serde_urlencoded::to_string(form)?;
    let mut req = client
        .post(url)
        .header(COOKIE, cookies.header())
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(from) = from {
        req = req.header(FORWARDED_FOR, forwarded_for(from));
    }
    finish(req.body(body).send().await?, cookies, t).await
}

async fn finish(resp: reqwest::Response, cookies: &mut Cookies, t: Instant) -> anyhow::Result<Reply> {
    cookies.absorb(&resp);
    let status = resp.status().as_u16();
    if status == 429 {
        TOO_MANY_REQUESTS.fetch_add(1, Ordering::Relaxed);
    }
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

/// Password step for `username` from the client address `from`; returns the
/// new session cookie and where the server sent us.
pub async fn password_step(
    client: &reqwest::Client,
    base: &str,
    cookies: &mut Cookies,
    token: &str,
    username: &str,
    password: &str,
    from: IpAddr,
) -> anyhow::Result<Reply> {
    post_from(
        client,
        &format!("{base}/login"),
        cookies,
        &[("username", username), ("password", password), ("csrf_token", token)],
        Some(from),
    )
    .await
}
