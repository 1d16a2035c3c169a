//! The `latchkey` command: `serve` and `user add|list|reset-mfa`.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use crate::config::{Cli, Command, Config, UserCommand};
use crate::core::password;
use crate::core::username::Username;
use crate::db::events::{self, Event, Kind};
use crate::db::{Db, mfa, sessions, users};
use crate::startup::Application;

pub fn run(cli: Cli) -> ExitCode {
    init_logging();
    let config = match Config::from_settings(&cli.settings) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("latchkey: {e:#}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config),
        Command::User(cmd) => user(config, cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("latchkey: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

fn serve(config: Config) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(config).await?;
        tracing::info!("Latchkey is listening on http://{}", app.address());
        app.run_until_stopped().await?;
        Ok(())
    })
}

fn user(config: Config, cmd: UserCommand) -> anyhow::Result<()> {
    let mut conn = Db::connect_one(&config.database_url)?;
    let c = &mut conn;
    let now = config.clock.now();
    match cmd {
        UserCommand::Add { name, admin } => {
            let name = Username::parse(&name).map_err(|e| anyhow::anyhow!("{e}"))?;
            let password = read_new_password(name.as_str())?;
            password::check_policy(&password).map_err(|e| anyhow::anyhow!("{e}"))?;
            let hash = password::hash(&password, config.bcrypt_cost)?;
            let user = users::create(c, name.as_str(), &hash, admin, now)?;
            events::record(c, &cli_event(Kind::UserCreated, &user), now)?;
            println!(
                "Created {} {}.",
                if admin { "administrator" } else { "user" },
                user.username
            );
        }
        UserCommand::List => {
            let rows = users::list(c)?;
            println!(
                "{:<24} {:<6} {:<9} {:>14}",
                "USERNAME", "ADMIN", "2FA", "RECOVERY CODES"
            );
            for u in rows {
                let mfa_state = if u.mfa_enabled_at.is_some() {
                    "enabled"
                } else {
                    "disabled"
                };
                let codes = if u.mfa_enabled_at.is_some() {
                    u.recovery_codes_left.to_string()
                } else {
                    "-".into()
                };
                println!(
                    "{:<24} {:<6} {:<9} {:>14}",
                    u.username,
                    if u.is_admin { "yes" } else { "no" },
                    mfa_state,
                    codes
                );
            }
        }
        UserCommand::ResetMfa { name } => {
            let name = Username::parse(&name).map_err(|e| anyhow::anyhow!("{e}"))?;
            let user =
                users::find_by_name(c, name.as_str())?.ok_or_else(|| anyhow::anyhow!("no user named `{name}`"))?;
            let was_on = mfa::disable(c, user.id, None)?;
            let ended = sessions::revoke_all(c, user.id, None)?.map_or(0, |(n, _)| n);
            if was_on {
                events::record(c, &cli_event(Kind::MfaResetByAdmin, &user), now)?;
                println!(
                    "Two-factor authentication is now off for {name}; {ended} session(s) ended. They can sign in with their password and turn it on again."
                );
            } else {
                println!("Two-factor authentication was already off for {name}; {ended} session(s) ended.");
            }
        }
    }
    Ok(())
}

fn cli_event(kind: Kind, user: &users::User) -> Event {
    Event {
        kind,
        user_id: Some(user.id),
        username: Some(user.username.clone()),
        client_address: None,
        user_agent: None,
        detail: Some("command line".into()),
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
