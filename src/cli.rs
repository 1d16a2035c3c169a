//! The `latchkey` command: its arguments, `serve`, `user add|list|reset-mfa`,
//! and the operations commands (`healthcheck`, `backup`, `key rotate`:
//! `crate::ops`).
//!
//! The user commands go through the same service as the web pages
//! (`crate::auth`), over one database connection used on this thread.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::auth::admin::{Created, Reset};
use crate::auth::email::EmailChange;
use crate::auth::{Actor, Auth, AuthSettings};
use crate::config::{self, Config, LogFormat, Settings};
use crate::core::keys::Keyring;
use crate::core::password;
use crate::core::totp::MAX_SKEW;
use crate::core::types::Password;
use crate::core::username::Username;
use crate::db::Db;
use crate::startup::Application;

#[derive(Parser, Debug)]
#[command(
    name = "latchkey",
    version,
    about = "Latchkey: a self-hosted sign-in dashboard with passwords and two-factor authentication \
             (authenticator-app codes, security keys and passkeys).",
    after_help = "Without a command, `serve` runs, with the options above. Each command's --help lists the options \
                  it takes (e.g. `latchkey user add --help`); give them after the command. Every option can also be \
                  set by the environment variable shown; environment values are never printed here.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// `latchkey` without a command is `latchkey serve`.
    #[command(flatten)]
    pub serve: ServeArgs,
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
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the web server (the default)
    Serve(ServeArgs),
    /// Manage users
    #[command(subcommand)]
    User(UserCommand),
    /// Exit 0 when the server at --bind answers /healthz (for container health checks)
    Healthcheck(BindArgs),
    /// Write a consistent copy of the SQLite database to PATH while servers run
    /// (back up the key file separately; PostgreSQL: use pg_dump)
    Backup {
        /// Where to write the copy (a new file; an existing one is not overwritten)
        path: std::path::PathBuf,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Manage the server key
    #[command(subcommand)]
    Key(KeyCommand),
    /// Email notifications
    #[command(subcommand)]
    Mail(MailCommand),
}

#[derive(Subcommand, Debug)]
pub enum MailCommand {
    /// Send a test message to ADDRESS through --smtp-url, now, and say what failed if it did
    Test {
        /// Where to send it
        address: String,
        #[command(flatten)]
        mail: MailArgs,
        #[command(flatten)]
        public: PublicArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Rotate the server key online, in three steps (add a key, make it current, re-seal everything and retire the
    /// old key), each followed by copying the key file to every instance and restarting them one at a time; each run
    /// does the next step and says what to do after it (README, "Rotating the server key")
    Rotate {
        /// Run this step rather than the next one
        #[arg(long, value_enum)]
        step: Option<crate::ops::rotation::Step>,
        /// Run all three steps at once: only while no server runs
        #[arg(long, conflicts_with = "step")]
        all: bool,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user; the password is read from the first line of standard
    /// input (prompted for, twice, when standard input is a terminal)
    Add {
        /// The new user's username: 1–64 of the letters a–z, digits, `.`, `_` and `-`, starting with a letter or digit
        /// (capitals are stored as lower case)
        name: String,
        /// Make the user an administrator
        #[arg(long)]
        admin: bool,
        /// Their email address for security notifications (counts as verified)
        #[arg(long)]
        email: Option<String>,
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        cost: CostArgs,
    },
    /// List users: administrator or not, two-factor authentication enabled or disabled, recovery codes left
    List {
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Turn a user's two-factor authentication off (lost phone) and end their sessions
    ResetMfa {
        /// The username of the account to reset
        name: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

/// Where the data is: every command that opens the database takes these.
#[derive(Args, Debug, Clone)]
pub struct DatabaseArgs {
    /// Database: sqlite://PATH (relative to the working directory, or sqlite:///absolute/path), or
    /// postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require] for several instances
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = config::DEFAULT_DATABASE_URL,
        hide_env_values = true
    )]
    pub database_url: String,

    /// Server key file; the server creates it (mode 0600) if missing [default: latchkey.key beside the database]
    #[arg(long, env = "LATCHKEY_KEY_FILE", hide_env_values = true)]
    pub key_file: Option<PathBuf>,
}

/// Address and port of the server (`serve` listens there; `healthcheck` asks there).
#[derive(Args, Debug, Clone)]
pub struct BindArgs {
    /// Address and port the server listens on
    #[arg(long, env = "LATCHKEY_BIND", default_value = config::DEFAULT_BIND, hide_env_values = true)]
    pub bind: String,
}

#[derive(Args, Debug, Clone)]
pub struct CostArgs {
    /// bcrypt cost for password hashes (4–31; each step doubles the work)
    #[arg(
        long,
        env = "LATCHKEY_BCRYPT_COST",
        default_value_t = config::DEFAULT_BCRYPT_COST,
        value_parser = clap::value_parser!(u32).range(4..=31),
        hide_env_values = true
    )]
    pub bcrypt_cost: u32,
}

/// How the server names itself: links, cookies, WebAuthn, authenticator apps.
#[derive(Args, Debug, Clone)]
pub struct PublicArgs {
    /// Public URL people use, e.g. https://login.example.com; with https, cookies get `Secure` and the `__Host-` prefix
    #[arg(long, env = "LATCHKEY_PUBLIC_URL", hide_env_values = true)]
    pub public_url: Option<String>,

    /// Issuer name shown in authenticator apps and as the sender's name of emails
    #[arg(long, env = "LATCHKEY_ISSUER", default_value = config::DEFAULT_ISSUER, hide_env_values = true)]
    pub issuer: String,
}

#[derive(Args, Debug, Clone)]
pub struct MailArgs {
    /// SMTP server for security emails: smtps://[USER:PASS@]HOST[:465] (TLS), smtp://…HOST[:587]?tls=required
    /// (STARTTLS), or plain smtp://localhost[:25] (a local relay only) [default: off: no email]
    #[arg(long, env = "LATCHKEY_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,

    /// Sender of security emails, e.g. "Acme Login <login@acme.example>" [default: ISSUER <latchkey@PUBLIC-HOST>]
    #[arg(long, env = "LATCHKEY_MAIL_FROM", hide_env_values = true)]
    pub mail_from: Option<String>,
}

/// Everything the server takes.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub bind: BindArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub public: PublicArgs,
    #[command(flatten)]
    pub cost: CostArgs,

    /// Reverse proxies whose X-Forwarded-For is believed (comma-separated IP addresses); without it, the
    /// client address is the TCP peer
    #[arg(
        long,
        env = "LATCHKEY_TRUSTED_PROXIES",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub trusted_proxies: Vec<IpAddr>,

    /// TOTP time steps accepted either side of now (0–2)
    #[arg(
        long,
        env = "LATCHKEY_TOTP_SKEW",
        default_value_t = config::DEFAULT_TOTP_SKEW,
        value_parser = clap::value_parser!(u8).range(0..=(MAX_SKEW as i64)),
        hide_env_values = true
    )]
    pub totp_skew: u8,

    /// Serve Prometheus metrics on this address and port (e.g. 127.0.0.1:9464), apart from the pages [default: off]
    #[arg(long, env = "LATCHKEY_METRICS_BIND", hide_env_values = true)]
    pub metrics_bind: Option<String>,

    #[command(flatten)]
    pub mail: MailArgs,
}

impl DatabaseArgs {
    fn apply(&self, s: &mut Settings) {
        s.database_url.clone_from(&self.database_url);
        s.key_file.clone_from(&self.key_file);
    }
}

impl PublicArgs {
    fn apply(&self, s: &mut Settings) {
        s.public_url.clone_from(&self.public_url);
        s.issuer.clone_from(&self.issuer);
    }
}

impl MailArgs {
    fn apply(&self, s: &mut Settings) {
        s.smtp_url.clone_from(&self.smtp_url);
        s.mail_from.clone_from(&self.mail_from);
    }
}

impl ServeArgs {
    pub fn settings(&self) -> Settings {
        let mut s = Settings {
            bind: self.bind.bind.clone(),
            bcrypt_cost: self.cost.bcrypt_cost,
            trusted_proxies: self.trusted_proxies.clone(),
            totp_skew: self.totp_skew,
            metrics_bind: self.metrics_bind.clone(),
            ..Settings::default()
        };
        self.database.apply(&mut s);
        self.public.apply(&mut s);
        self.mail.apply(&mut s);
        s
    }
}

impl Command {
    /// The settings this command takes; the others keep their defaults.
    pub fn settings(&self) -> Settings {
        let mut s = Settings::default();
        match self {
            Command::Serve(args) => return args.settings(),
            Command::Healthcheck(b) => s.bind.clone_from(&b.bind),
            Command::Backup { database, .. } | Command::Key(KeyCommand::Rotate { database, .. }) => {
                database.apply(&mut s)
            }
            Command::User(UserCommand::Add { database, cost, .. }) => {
                database.apply(&mut s);
                s.bcrypt_cost = cost.bcrypt_cost;
            }
            Command::User(UserCommand::List { database } | UserCommand::ResetMfa { database, .. }) => {
                database.apply(&mut s)
            }
            Command::Mail(MailCommand::Test { mail, public, .. }) => {
                mail.apply(&mut s);
                public.apply(&mut s);
            }
        }
        s
    }
}

/// Parse the command line and run it.
pub fn main() -> ExitCode {
    run(Cli::parse())
}

pub fn run(cli: Cli) -> ExitCode {
    init_logging(cli.log_format);
    let command = cli.command.unwrap_or(Command::Serve(cli.serve));
    let config = match Config::from_settings(&command.settings()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("latchkey: {e:#}");
            return ExitCode::from(2);
        }
    };
    let result = match command {
        Command::Serve(_) => serve(config),
        Command::User(cmd) => user(config, cmd),
        Command::Healthcheck(_) => {
            crate::ops::healthcheck::target(&config.bind).and_then(crate::ops::healthcheck::check)
        }
        Command::Backup { path, .. } => crate::ops::backup::backup(&config.database_url, &path).map(|b| {
            println!(
                "Backed up the database to {} ({} bytes). Back up the key file {} too: without it the copy's \
                 two-factor secrets cannot be read.",
                path.display(),
                b.bytes,
                config.key_file.display()
            );
        }),
        Command::Mail(MailCommand::Test { address, .. }) => mail_test(&config, &address),
        Command::Key(KeyCommand::Rotate { step, all, .. }) => {
            actix_web::rt::System::new().block_on(async { crate::ops::rotation::rotate(&config, step, all).await })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("latchkey: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs on standard error, as text or as one JSON object per line. In
/// both, a line written while a request runs carries the request's span
/// (`web::observe`): its `request_id`, method and route.
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).try_init(),
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(false).try_init(),
    };
}

fn serve(config: Config) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(config).await?;
        app.run_until_stopped().await?;
        Ok(())
    })
}

fn user(config: Config, cmd: UserCommand) -> anyhow::Result<()> {
    // Read the password first: nothing is opened while a person types.
    let password = match &cmd {
        UserCommand::Add { name, email, .. } => {
            let name = Username::parse(name).map_err(|e| anyhow::anyhow!("{e}"))?;
            if let Some(e) = email
                && !crate::core::notice::plausible_address(e.trim())
            {
                anyhow::bail!("`{e}` is not an email address");
            }
            let password = read_new_password(name.as_str())?;
            password::check_policy(&password).map_err(|e| anyhow::anyhow!("{e}"))?;
            Some(Password::new(password))
        }
        _ => None,
    };
    let db = Db::open_single(&config.database_url)?;
    // The server key names throttling counters (the Users page's locks); a
    // missing key file is left for the server to create.
    let keys = Arc::new(Keyring::load_existing(&config.key_file)?.unwrap_or_else(Keyring::ephemeral));
    let settings = AuthSettings {
        issuer: config.issuer.clone(),
        totp_skew: config.totp_skew,
        public_origin: None,
    };
    actix_web::rt::System::new().block_on(async move {
        let auth = Auth::new(db, keys, config.clock.clone(), settings, config.bcrypt_cost).await?;
        match cmd {
            UserCommand::Add { name, admin, email, .. } => {
                let name = Username::parse(&name).map_err(|e| anyhow::anyhow!("{e}"))?;
                let password = password.ok_or_else(|| anyhow::anyhow!("no password"))?;
                match auth.create_user(Actor::CommandLine, &name, password, admin).await? {
                    Created::Done(user) => {
                        println!(
                            "Created {} {}.",
                            if admin { "administrator" } else { "user" },
                            user.username
                        );
                        if let Some(email) = email {
                            match auth.set_email_as_admin(&user, &email, Actor::CommandLine).await? {
                                EmailChange::Verified => {
                                    println!("Security emails for {} go to {}.", user.username, email.trim())
                                }
                                _ => anyhow::bail!("`{email}` is not an email address (the user was created without one)"),
                            }
                        }
                    }
                    Created::Exists => anyhow::bail!("a user named `{name}` already exists"),
                }
            }
            UserCommand::List { .. } => {
                println!(
                    "{:<24} {:<6} {:<10} {:>14}",
                    "USERNAME", "ADMIN", "TWO-FACTOR", "RECOVERY CODES"
                );
                for u in auth.users_overview().await? {
                    let mfa_state = if u.mfa_on() { "enabled" } else { "disabled" };
                    let codes = if u.mfa_on() {
                        u.recovery_codes_left.to_string()
                    } else {
                        "-".into()
                    };
                    println!(
                        "{:<24} {:<6} {:<10} {:>14}",
                        u.user.username,
                        if u.user.is_admin { "yes" } else { "no" },
                        mfa_state,
                        codes
                    );
                }
            }
            UserCommand::ResetMfa { name, .. } => {
                let name = Username::parse(&name).map_err(|e| anyhow::anyhow!("{e}"))?;
                let user = auth
                    .find_user_by_name(name.as_str())
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("no user named `{name}`"))?;
                match auth.reset_mfa(Actor::CommandLine, user.id).await? {
                    Some(Reset::Done { sessions_ended }) => println!(
                        "Two-factor authentication is now off for {name}; {sessions_ended} session(s) ended. They can sign in with their password and turn it on again."
                    ),
                    Some(Reset::WasOff { sessions_ended }) => println!(
                        "Two-factor authentication was already off for {name}; {sessions_ended} session(s) ended."
                    ),
                    None => anyhow::bail!("no user named `{name}`"),
                }
            }
        }
        Ok::<(), anyhow::Error>(())
    })
}

/// `latchkey mail test ADDRESS`: one message, straight through SMTP (not
/// the outbox), and a clear word on what failed.
fn mail_test(config: &Config, address: &str) -> anyhow::Result<()> {
    let Some(settings) = config.mail.clone() else {
        anyhow::bail!("email is off: give --smtp-url (and --public-url) as the server has them");
    };
    let server = settings.smtp.server();
    let shown = settings.smtp.shown().to_string();
    let mailer = crate::mail::Mailer::new(settings).map_err(|e| anyhow::anyhow!(e))?;
    let outcome = actix_web::rt::System::new().block_on(async move { mailer.send_test(address).await });
    match outcome {
        Ok(()) => {
            println!("Sent a test message to {address} through {server}.");
            Ok(())
        }
        Err(e) => anyhow::bail!("could not send a test message to {address} through {shown}: {e}"),
    }
}

/// On a terminal: prompt twice without echo. Otherwise: the first line of stdin.
fn read_new_password(name: &str) -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("Password for {name}: "))?;
        let second = rpassword::prompt_password("Same password again: ")?;
        if first != second {
            anyhow::bail!("the two passwords do not match");
        }
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password).to_string();
    if password.is_empty() {
        anyhow::bail!("no password on standard input (give it as the first line)");
    }
    std::io::stdout().flush().ok();
    Ok(password)
}
