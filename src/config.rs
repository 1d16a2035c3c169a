//! Settings: every one a flag with an environment fallback (SPEC §5.1).

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Args;

use crate::core::clock::Clock;
use crate::core::totp::MAX_SKEW;
use crate::db::DatabaseUrl;

#[derive(Args, Debug, Clone)]
pub struct Settings {
    /// Address and port to listen on
    #[arg(
        long,
        env = "LATCHKEY_BIND",
        default_value = "127.0.0.1:8080",
        hide_env_values = true,
        global = true
    )]
    pub bind: String,

    /// Database: sqlite://PATH (relative to the working directory, or sqlite:///absolute/path)
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://latchkey.db",
        hide_env_values = true,
        global = true
    )]
    pub database_url: String,

    /// Public URL people use, e.g. https://login.example.com; with https, cookies get `Secure` and the `__Host-` prefix
    #[arg(long, env = "LATCHKEY_PUBLIC_URL", hide_env_values = true, global = true)]
    pub public_url: Option<String>,

    /// Issuer name shown in authenticator apps
    #[arg(
        long,
        env = "LATCHKEY_ISSUER",
        default_value = "Latchkey",
        hide_env_values = true,
        global = true
    )]
    pub issuer: String,

    /// Server key file (created with mode 0600 if missing) [default: latchkey.key beside the database]
    #[arg(long, env = "LATCHKEY_KEY_FILE", hide_env_values = true, global = true)]
    pub key_file: Option<PathBuf>,

    /// bcrypt cost for password hashes (4–31; each step doubles the work)
    #[arg(
        long,
        env = "LATCHKEY_BCRYPT_COST",
        default_value_t = 12,
        value_parser = clap::value_parser!(u32).range(4..=31),
        hide_env_values = true,
        global = true
    )]
    pub bcrypt_cost: u32,

    /// Reverse proxies whose X-Forwarded-For is believed (comma-separated IP addresses); without it, the
    /// client address is the TCP peer
    #[arg(
        long,
        env = "LATCHKEY_TRUSTED_PROXIES",
        value_delimiter = ',',
        hide_env_values = true,
        global = true
    )]
    pub trusted_proxies: Vec<IpAddr>,

    /// TOTP time steps accepted either side of now (0–2)
    #[arg(
        long,
        env = "LATCHKEY_TOTP_SKEW",
        default_value_t = 1,
        value_parser = clap::value_parser!(u8).range(0..=(MAX_SKEW as i64)),
        hide_env_values = true,
        global = true
    )]
    pub totp_skew: u8,

    /// Serve Prometheus metrics on this address and port (e.g. 127.0.0.1:9464), apart from the pages [default: off]
    #[arg(long, env = "LATCHKEY_METRICS_BIND", hide_env_values = true, global = true)]
    pub metrics_bind: Option<String>,

    /// SMTP server for security emails: smtps://[USER:PASS@]HOST[:465] (TLS), smtp://…HOST[:587]?tls=required
    /// (STARTTLS), or plain smtp://localhost[:25] (a local relay only) [default: off: no email]
    #[arg(long, env = "LATCHKEY_SMTP_URL", hide_env_values = true, global = true)]
    pub smtp_url: Option<String>,

    /// Sender of security emails, e.g. "Acme Login <login@acme.example>" [default: ISSUER <latchkey@PUBLIC-HOST>]
    #[arg(long, env = "LATCHKEY_MAIL_FROM", hide_env_values = true, global = true)]
    pub mail_from: Option<String>,

    /// Log format on standard error: `text` for people, `json` (one object per line) for log collectors
    #[arg(
        long,
        env = "LATCHKEY_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text,
        hide_env_values = true,
        global = true
    )]
    pub log_format: LogFormat,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The public URL, reduced to what we use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicUrl {
    /// `scheme://host[:port]`, lower-case, as browsers send it in `Origin`.
    pub origin: String,
    pub https: bool,
}

impl PublicUrl {
    /// Hand-written on purpose: we need only scheme and authority, and accept
    /// nothing else (no path prefix, no credentials), which a general URL
    /// parser would let through.
    pub fn parse(input: &str) -> anyhow::Result<Self> {
        let s = input.trim();
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| anyhow::anyhow!("public URL `{s}` must start with https:// or http://"))?;
        let https = match scheme.to_ascii_lowercase().as_str() {
            "https" => true,
            "http" => false,
            _ => anyhow::bail!("public URL `{s}` must start with https:// or http://"),
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let authority_ok = !authority.is_empty()
            && authority
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
        if !authority_ok {
            anyhow::bail!("public URL `{s}` has no valid host");
        }
        if !path.is_empty() {
            anyhow::bail!("public URL `{s}`: Latchkey must be served at the root of its host, without a path");
        }
        Ok(Self {
            origin: format!("{}://{}", scheme.to_ascii_lowercase(), authority.to_ascii_lowercase()),
            https,
        })
    }
}

/// Everything the server needs, validated.
#[derive(Clone, Debug)]
pub struct Config {
    pub bind: String,
    pub database_url: DatabaseUrl,
    pub public_url: Option<PublicUrl>,
    pub issuer: String,
    pub key_file: PathBuf,
    pub bcrypt_cost: u32,
    pub totp_skew: u8,
    pub trusted_proxies: Vec<IpAddr>,
    /// Where to serve Prometheus metrics, if anywhere.
    pub metrics_bind: Option<String>,
    /// Email notifications, when `--smtp-url` is set.
    pub mail: Option<crate::mail::MailSettings>,
    /// The system clock in production; a manual one in tests.
    pub clock: Clock,
}

impl Config {
    pub fn from_settings(s: &Settings) -> anyhow::Result<Self> {
        let database_url = DatabaseUrl::parse(&s.database_url).map_err(|e| anyhow::anyhow!("--database-url: {e}"))?;
        let public_url = s
            .public_url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
            .map(PublicUrl::parse)
            .transpose()?;
        let issuer = s.issuer.trim().to_string();
        if issuer.is_empty()
            || issuer.chars().count() > 64
            || issuer.contains(':')
            || issuer.chars().any(char::is_control)
        {
            anyhow::bail!("--issuer must be 1–64 characters without ':' or control characters");
        }
        let key_file = s
            .key_file
            .clone()
            .unwrap_or_else(|| database_url.directory().join("latchkey.key"));
        let mail = match s.smtp_url.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
            None => None,
            Some(raw) => {
                let smtp = crate::mail::SmtpUrl::parse(raw).map_err(|e| anyhow::anyhow!("--smtp-url: {e}"))?;
                let Some(public) = &public_url else {
                    anyhow::bail!(
                        "--smtp-url needs --public-url: the links in the messages (\"This wasn't me\", verification) point there"
                    );
                };
                let from = s.mail_from.as_deref().map(str::trim).filter(|f| !f.is_empty());
                Some(
                    crate::mail::MailSettings::new(smtp, from, &issuer, &public.origin)
                        .map_err(|e| anyhow::anyhow!(e))?,
                )
            }
        };
        Ok(Self {
            mail,
            bind: s.bind.clone(),
            database_url,
            public_url,
            issuer,
            key_file,
            bcrypt_cost: s.bcrypt_cost,
            totp_skew: s.totp_skew,
            trusted_proxies: s.trusted_proxies.clone(),
            metrics_bind: s.metrics_bind.clone().filter(|b| !b.trim().is_empty()),
            clock: Clock::system(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_url() {
        let u = PublicUrl::parse("https://Login.Example.com/").unwrap();
        assert_eq!(
            u,
            PublicUrl {
                origin: "https://login.example.com".into(),
                https: true
            }
        );
        assert!(!PublicUrl::parse("http://127.0.0.1:8080").unwrap().https);
        for bad in [
            "login.example.com",
            "ftp://x",
            "https://",
            "https://a/b",
            "https://u:p@h",
            "https://a b",
        ] {
            assert!(PublicUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn settings_validate() {
        use crate::cli::{Cli, Command, UserCommand};
        use clap::Parser;
        let cli = Cli::try_parse_from(["latchkey", "--issuer", "Acme:Corp"]).unwrap();
        assert!(Config::from_settings(&cli.settings).is_err());
        let cli = Cli::try_parse_from(["latchkey", "--database-url", "latchkey.db"]).unwrap();
        assert!(Config::from_settings(&cli.settings).is_err());
        assert!(Cli::try_parse_from(["latchkey", "--totp-skew", "3"]).is_err());
        assert!(Cli::try_parse_from(["latchkey", "--bcrypt-cost", "3"]).is_err());
        let cli = Cli::try_parse_from(["latchkey", "user", "add", "bob", "--admin", "--bcrypt-cost", "4"]).unwrap();
        assert_eq!(cli.settings.bcrypt_cost, 4);
        assert!(matches!(
            cli.command,
            Some(Command::User(UserCommand::Add { admin: true, .. }))
        ));
    }
}
