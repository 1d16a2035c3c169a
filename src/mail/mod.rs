//! Email: the SMTP settings (`--smtp-url`, `--mail-from`), the messages
//! (rendered from askama templates, plain text and HTML), and sending them
//! with lettre. The outbox and its worker make delivery reliable
//! (`worker`); nothing here is ever called inside a page request.

pub mod render;
pub mod worker;

use std::net::IpAddr;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

/// How long one SMTP conversation may take, all of it (DNS, connecting,
/// TLS, every command), before it counts as a temporary failure. lettre's
/// own timeout covers only the connection, so `Mailer::send` bounds the
/// whole. Well inside the worker's claim (`worker::LEASE`).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// An `--smtp-url` that passed our rules (SPEC §8): `smtps://HOST[:PORT]`
/// (TLS from the start), `smtp://HOST[:PORT]?tls=required` (STARTTLS, never
/// falling back), or plain `smtp://HOST[:PORT]` only to a loopback host (a
/// local relay). The URL may carry credentials: `Debug` and `shown` hide
/// them.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpUrl {
    url: String,
    shown: String,
    host: String,
    port: u16,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SmtpUrlError {
    #[error("the SMTP URL `{0}` is not a URL; use smtps://HOST:465 or smtp://HOST:587?tls=required")]
    Malformed(String),
    #[error(
        "the SMTP URL `{0}` has an unsupported scheme; use smtps://HOST:465 (TLS) or smtp://HOST:587?tls=required (STARTTLS)"
    )]
    Scheme(String),
    #[error("the SMTP URL `{0}` names no host")]
    NoHost(String),
    #[error(
        "the SMTP URL `{0}` would send mail unencrypted to another machine; use smtps://{1}:465 or smtp://{1}:587?tls=required (plain smtp:// is only for a relay on localhost)"
    )]
    Plain(String, String),
    #[error("the SMTP URL `{0}`: the only `tls` setting accepted is `tls=required` (with smtp://)")]
    TlsSetting(String),
}

impl SmtpUrl {
    pub fn parse(raw: &str) -> Result<Self, SmtpUrlError> {
        let raw = raw.trim();
        let url = url::Url::parse(raw).map_err(|_| SmtpUrlError::Malformed(redact_raw(raw)))?;
        let shown = redact(&url);
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| SmtpUrlError::NoHost(shown.clone()))?
            .to_string();
        let tls: Vec<String> = url
            .query_pairs()
            .filter(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned())
            .collect();
        let port = match (url.scheme(), tls.as_slice()) {
            ("smtps", []) => url.port().unwrap_or(465),
            ("smtp", [t]) if t == "required" => url.port().unwrap_or(587),
            ("smtp", []) => {
                if !is_loopback(&host) {
                    return Err(SmtpUrlError::Plain(shown, host));
                }
                url.port().unwrap_or(25)
            }
            ("smtp" | "smtps", _) => return Err(SmtpUrlError::TlsSetting(shown)),
            _ => return Err(SmtpUrlError::Scheme(shown)),
        };
        Ok(Self {
            url: raw.to_string(),
            shown,
            host,
            port,
        })
    }

    /// The URL with its password replaced, for logs and messages.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// "HOST:PORT", for messages.
    pub fn server(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

impl std::fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SmtpUrl({})", self.shown)
    }
}

/// `localhost`, 127.0.0.0/8 or `::1` (the URL crate gives IPv6 in brackets).
fn is_loopback(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

fn redact(url: &url::Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("***"));
    }
    shown.to_string()
}

/// A string that is not even a URL may still hold a password: show only
/// its scheme.
fn redact_raw(raw: &str) -> String {
    match raw.split_once("://") {
        Some((scheme, _)) if raw.contains('@') => format!("{scheme}://<redacted>"),
        _ => raw.to_string(),
    }
}

/// Everything the mail worker and the command line need to send.
#[derive(Clone, Debug)]
pub struct MailSettings {
    pub smtp: SmtpUrl,
    pub from: Mailbox,
    /// `--issuer`: the product's name in subjects and bodies.
    pub issuer: String,
    /// `--public-url`'s origin: the links point there.
    pub base_url: String,
}

impl MailSettings {
    /// `from`: `--mail-from`, or "ISSUER <latchkey@HOST>" of the public URL.
    pub fn new(smtp: SmtpUrl, from: Option<&str>, issuer: &str, base_url: &str) -> Result<Self, String> {
        let from = match from {
            Some(f) => f
                .parse::<Mailbox>()
                .map_err(|e| format!("--mail-from `{f}` is not an address: {e}"))?,
            None => {
                let host = url::Url::parse(base_url)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_string))
                    .unwrap_or_else(|| "localhost".into());
                format!("{issuer} <latchkey@{host}>")
                    .parse::<Mailbox>()
                    .map_err(|e| format!("no --mail-from given, and latchkey@{host} is not an address: {e}"))?
            }
        };
        Ok(Self {
            smtp,
            from,
            issuer: issuer.to_string(),
            base_url: base_url.trim_end_matches('/').to_string(),
        })
    }

    /// The domain of Message-IDs: the sender's.
    pub fn id_domain(&self) -> String {
        self.from.email.domain().to_string()
    }
}

/// What became of one attempt to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    Sent,
    /// Try again later: a 4xx reply, a refused or broken connection, a
    /// timeout, a TLS failure.
    Temporary(String),
    /// Never try again: a 5xx reply, or a message the server can never take.
    Permanent(String),
}

/// The SMTP side: one transport (it opens a connection per message).
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    pub settings: std::sync::Arc<MailSettings>,
}

impl Mailer {
    pub fn new(settings: MailSettings) -> Result<Self, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&settings.smtp.url)
            .map_err(|e| format!("SMTP URL {}: {e}", settings.smtp.shown()))?
            .timeout(Some(Duration::from_secs(10)))
            .build();
        Ok(Self {
            transport,
            settings: std::sync::Arc::new(settings),
        })
    }

    pub async fn send(&self, message: lettre::Message) -> Delivery {
        match actix_web::rt::time::timeout(SEND_TIMEOUT, self.transport.send(message)).await {
            Ok(Ok(_)) => Delivery::Sent,
            Ok(Err(e)) if e.is_permanent() => Delivery::Permanent(describe(&e)),
            Ok(Err(e)) => Delivery::Temporary(describe(&e)),
            Err(_) => Delivery::Temporary(format!(
                "the SMTP server did not finish within {} s",
                SEND_TIMEOUT.as_secs()
            )),
        }
    }
}

impl Mailer {
    /// A test message to `to`, now: `Err` says what went wrong, in words.
    pub async fn send_test(&self, to: &str) -> Result<(), String> {
        let to: Mailbox = to
            .trim()
            .parse()
            .map_err(|e| format!("`{to}` is not an email address ({e})"))?;
        let s = &self.settings;
        let text = format!(
            "This is a test message from {issuer} at {base}.\n\nIf you can read it, security emails \
             (new sign-ins, changes to two-factor authentication, lockouts) will reach their users.\n\n— {issuer}\n",
            issuer = s.issuer,
            base = s.base_url
        );
        let message = lettre::Message::builder()
            .from(s.from.clone())
            .to(to)
            .subject(format!("Test message from {}", s.issuer))
            .message_id(Some(format!(
                "<{}@{}>",
                crate::db::outbox::new_reference(),
                s.id_domain()
            )))
            .date_now()
            .header(lettre::message::header::ContentType::TEXT_PLAIN)
            .body(text)
            .map_err(|e| e.to_string())?;
        match self.send(message).await {
            Delivery::Sent => Ok(()),
            Delivery::Temporary(e) => Err(format!(
                "{e} (a temporary failure: is the SMTP server running and reachable, and the URL right?)"
            )),
            Delivery::Permanent(e) => Err(format!("the SMTP server refused it: {e}")),
        }
    }
}

/// lettre's error with its sources: "Connection error: Connection refused".
fn describe(e: &lettre::transport::smtp::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_follow_the_rules() {
        for ok in [
            "smtps://mail.example.com",
            "smtps://user:secret@mail.example.com:465",
            "smtp://mail.example.com:587?tls=required",
            "smtp://localhost:2525",
            "smtp://127.0.0.1:25",
            "smtp://127.8.9.10",
            "smtp://[::1]:2525",
        ] {
            assert!(SmtpUrl::parse(ok).is_ok(), "{ok}");
        }
        assert!(matches!(
            SmtpUrl::parse("smtp://mail.example.com:25"),
            Err(SmtpUrlError::Plain(..))
        ));
        assert!(matches!(
            SmtpUrl::parse("smtp://10.0.0.5"),
            Err(SmtpUrlError::Plain(..))
        ));
        assert!(matches!(
            SmtpUrl::parse("smtp://mail.example.com?tls=opportunistic"),
            Err(SmtpUrlError::TlsSetting(_))
        ));
        assert!(matches!(
            SmtpUrl::parse("smtps://mail.example.com?tls=required"),
            Err(SmtpUrlError::TlsSetting(_))
        ));
        assert!(matches!(
            SmtpUrl::parse("http://mail.example.com"),
            Err(SmtpUrlError::Scheme(_))
        ));
        assert!(matches!(
            SmtpUrl::parse("mail.example.com"),
            Err(SmtpUrlError::Malformed(_))
        ));
        assert_eq!(
            SmtpUrl::parse("smtps://mail.example.com").unwrap().server(),
            "mail.example.com:465"
        );
        assert_eq!(
            SmtpUrl::parse("smtp://m.example.com?tls=required").unwrap().server(),
            "m.example.com:587"
        );
    }

    #[test]
    fn passwords_never_show() {
        let u = SmtpUrl::parse("smtps://me:hunter2@mail.example.com").unwrap();
        assert!(!u.shown().contains("hunter2") && !format!("{u:?}").contains("hunter2"));
        let e = SmtpUrl::parse("smtp://me:hunter2@mail.example.com").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let e = SmtpUrl::parse("smtq://me:hunter2@@@").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn the_sender_defaults_to_the_public_host() {
        let s = MailSettings::new(
            SmtpUrl::parse("smtp://localhost").unwrap(),
            None,
            "Acme",
            "https://login.acme.test/",
        )
        .unwrap();
        assert_eq!(s.from.to_string(), "Acme <latchkey@login.acme.test>");
        assert_eq!(s.base_url, "https://login.acme.test");
        assert!(
            MailSettings::new(
                SmtpUrl::parse("smtp://localhost").unwrap(),
                Some("not an address"),
                "A",
                "http://x"
            )
            .is_err()
        );
    }
}
