//! Settings: every one a flag with an environment fallback (SPEC §5.1).

use std::net::IpAddr;
use std::path::PathBuf;

use crate::core::clock::Clock;
use crate::db::DatabaseUrl;

/// The defaults, shared by the command line (`crate::cli`) and `Settings::default`.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://latchkey.db";
pub const DEFAULT_ISSUER: &str = "Latchkey";
pub const DEFAULT_BCRYPT_COST: u32 = 12;
pub const DEFAULT_TOTP_SKEW: u8 = 1;

/// Every setting as given (SPEC §5.1), before validation. The command line
/// (`crate::cli`) fills in what a command takes; the rest keep their
/// defaults, so a command never fails on a setting it does not use.
#[derive(Debug, Clone)]
pub struct Settings {
    pub bind: String,
    pub database_url: String,
    pub public_url: Option<String>,
    pub issuer: String,
    pub key_file: Option<PathBuf>,
    pub bcrypt_cost: u32,
    pub trusted_proxies: Vec<IpAddr>,
    pub totp_skew: u8,
    pub metrics_bind: Option<String>,
    pub smtp_url: Option<String>,
    pub mail_from: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            bind: DEFAULT_BIND.into(),
            database_url: DEFAULT_DATABASE_URL.into(),
            public_url: None,
            issuer: DEFAULT_ISSUER.into(),
            key_file: None,
            bcrypt_cost: DEFAULT_BCRYPT_COST,
            trusted_proxies: Vec::new(),
            totp_skew: DEFAULT_TOTP_SKEW,
            metrics_bind: None,
            smtp_url: None,
            mail_from: None,
        }
    }
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
        let settings = |args: &[&str]| {
            let cli = Cli::try_parse_from(args).unwrap();
            cli.command.map_or_else(|| cli.serve.settings(), |c| c.settings())
        };
        assert!(Config::from_settings(&settings(&["latchkey", "--issuer", "Acme:Corp"])).is_err());
        assert!(Config::from_settings(&settings(&["latchkey", "--database-url", "latchkey.db"])).is_err());
        assert!(
            Config::from_settings(&settings(&[
                "latchkey",
                "user",
                "list",
                "--database-url",
                "latchkey.db"
            ]))
            .is_err()
        );
        assert!(Cli::try_parse_from(["latchkey", "--totp-skew", "3"]).is_err());
        assert!(Cli::try_parse_from(["latchkey", "--bcrypt-cost", "3"]).is_err());
        let s = settings(&["latchkey", "user", "add", "bob", "--admin", "--bcrypt-cost", "4"]);
        assert_eq!(s.bcrypt_cost, 4);
        let cli = Cli::try_parse_from(["latchkey", "user", "add", "bob", "--admin"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::User(UserCommand::Add { admin: true, .. }))
        ));
        // A command takes only its own options, after its name: a server
        // option before a command is refused rather than silently ignored.
        assert!(Cli::try_parse_from(["latchkey", "--database-url", "sqlite://x.db", "user", "list"]).is_err());
        assert!(Cli::try_parse_from(["latchkey", "user", "list", "--bind", "0.0.0.0:1"]).is_err());
        assert!(Cli::try_parse_from(["latchkey", "healthcheck", "--database-url", "sqlite://x.db"]).is_err());
        // What a command does not take keeps its default, whatever it is set to elsewhere.
        let s = settings(&["latchkey", "healthcheck", "--bind", "127.0.0.1:9"]);
        assert_eq!(
            (s.bind.as_str(), s.database_url.as_str()),
            ("127.0.0.1:9", DEFAULT_DATABASE_URL)
        );
        let s = settings(&["latchkey", "serve", "--bind", "127.0.0.1:9", "--totp-skew", "2"]);
        assert_eq!((s.bind.as_str(), s.totp_skew), ("127.0.0.1:9", 2));
    }
}
