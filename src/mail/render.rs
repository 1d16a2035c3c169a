//! A message from its outbox row: subject, plain-text and HTML bodies
//! (askama templates in templates/email/), headers.

use askama::Template;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};

use super::MailSettings;
use crate::core::notice::Notice;
use crate::db::outbox::Message;
use crate::web::format::{describe_user_agent, format_time};

#[derive(Template)]
#[template(path = "email/notice.txt")]
struct Text<'a> {
    username: &'a str,
    issuer: &'a str,
    headline: &'a str,
    details: &'a [(&'static str, String)],
    advice: &'a str,
    not_me_url: Option<&'a str>,
    verify_url: Option<&'a str>,
    settings_url: &'a str,
}

#[derive(Template)]
#[template(path = "email/notice.html")]
struct Html<'a> {
    subject: &'a str,
    username: &'a str,
    issuer: &'a str,
    headline: &'a str,
    details: &'a [(&'static str, String)],
    advice: &'a str,
    not_me_url: Option<&'a str>,
    verify_url: Option<&'a str>,
    settings_url: &'a str,
}

/// What a message says.
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The facts of the message, as label/value lines.
fn details(notice: Notice, m: &Message) -> Vec<(&'static str, String)> {
    let mut out = vec![("When", format_time(m.created_at))];
    if notice == Notice::Verify {
        out.push(("Address", m.to_address.clone()));
        return out;
    }
    if let Some(ua) = m.user_agent.as_deref().filter(|s| !s.is_empty()) {
        out.push(("Browser", describe_user_agent(ua)));
    }
    if let Some(address) = m.client_address.as_deref().filter(|s| !s.is_empty()) {
        out.push(("From address", address.to_string()));
    }
    if let Some(detail) = m.detail.as_deref().filter(|s| !s.is_empty()) {
        match notice {
            Notice::RecoveryCodeUsed => {
                let left = detail.trim_end_matches(" left");
                out.push(("Recovery codes left", left.to_string()));
            }
            _ => out.push(("Details", detail.to_string())),
        }
    }
    out
}

/// Render `m` for `username`. `link` is the message's single-use link
/// token ("This wasn't me", or the verification).
pub fn render(settings: &MailSettings, m: &Message, username: &str, link: &str) -> Result<Rendered, String> {
    let notice = m.notice().ok_or_else(|| format!("unknown message kind `{}`", m.kind))?;
    let subject = notice.subject(&settings.issuer);
    let details = details(notice, m);
    let base = &settings.base_url;
    let not_me = notice.has_not_me_link().then(|| format!("{base}/email/not-me/{link}"));
    let verify = (notice == Notice::Verify).then(|| format!("{base}/email/verify/{link}"));
    let settings_url = format!("{base}/settings/account");
    let text = Text {
        username,
        issuer: &settings.issuer,
        headline: notice.headline(),
        details: &details,
        advice: notice.advice(),
        not_me_url: not_me.as_deref(),
        verify_url: verify.as_deref(),
        settings_url: &settings_url,
    }
    .render()
    .map_err(|e| e.to_string())?;
    let html = Html {
        subject: &subject,
        username,
        issuer: &settings.issuer,
        headline: notice.headline(),
        details: &details,
        advice: notice.advice(),
        not_me_url: not_me.as_deref(),
        verify_url: verify.as_deref(),
        settings_url: &settings_url,
    }
    .render()
    .map_err(|e| e.to_string())?;
    Ok(Rendered { subject, text, html })
}

/// The message to send: From, To, Subject, a Message-ID made of the outbox
/// reference (a resent duplicate has the same one), Date, and both bodies.
pub fn build(settings: &MailSettings, m: &Message, r: Rendered) -> Result<lettre::Message, String> {
    let to: Mailbox = m
        .to_address
        .parse()
        .map_err(|e| format!("the address `{}` cannot take mail: {e}", m.to_address))?;
    lettre::Message::builder()
        .from(settings.from.clone())
        .to(to)
        .subject(r.subject)
        .message_id(Some(format!("<{}@{}>", m.reference, settings.id_domain())))
        .date_now()
        // RFC 3834: an automatic message (autoresponders stay quiet).
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-generated".into(),
        ))
        .multipart(MultiPart::alternative_plain_html(r.text, r.html))
        .map_err(|e| e.to_string())
}
