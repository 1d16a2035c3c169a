//! `Application::build(config)` binds, and `run_until_stopped` serves.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_session::SessionMiddleware;
use actix_session::config::{BrowserSession, TtlExtensionPolicy};
use actix_web::cookie::{Key, SameSite, time::Duration};
use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::auth::{Auth, AuthSettings};
use crate::config::Config;
use crate::core::keys::Keyring;
use crate::core::limits::SESSION_IDLE_SECONDS;
use crate::db::{Db, server_keys};
use crate::web::error::{AppError, not_found};
use crate::web::key_rollover::{self, Rollover};
use crate::web::metrics::MetricsState;
use crate::web::session::DbSessionStore;
use crate::web::{AppState, head, headers, middleware, observe, routes};

pub struct Application {
    server: Server,
    address: SocketAddr,
    setup_url: Option<String>,
    state: web::Data<AppState>,
    /// The metrics listener (`--metrics-bind`) and its address.
    metrics: Option<(Server, SocketAddr)>,
    /// The SMTP side of email notifications (`--smtp-url`).
    mailer: Option<crate::mail::Mailer>,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(&config.bind).with_context(|| format!("cannot listen on {}", config.bind))?;
        Self::build_on(config, listener).await
    }

    /// Like `build`, on a listener bound already (so a test can know the
    /// port before it sets the public URL that names it).
    pub async fn build_on(config: Config, listener: TcpListener) -> anyhow::Result<Self> {
        let db = Db::open(&config.database_url)?;
        tracing::info!("Database: {}", config.database_url.shown());
        let keys = Arc::new(Keyring::load_or_create(&config.key_file).context("cannot load the server key")?);
        let fingerprints = keys.fingerprints();
        let now = config.clock.time();
        let mismatch = db
            .run(move |c| server_keys::check_and_record(c, &fingerprints, now))
            .await?;
        if let Some(m) = mismatch {
            anyhow::bail!(
                "the key file {} holds a key `{}` that differs from the key of that id which wrote this database; \
                 every instance must use the same key file (see README, \"Running several instances\")",
                config.key_file.display(),
                m.key_id
            );
        }
        // After a key rotation: refuse a key file without the current key,
        // or whose active key was retired.
        let records = db.run(server_keys::all).await?;
        crate::ops::rotation::check_on_start(&records, &keys, &config.key_file)?;
        let auth = Arc::new(
            Auth::new(
                db.clone(),
                keys.clone(),
                config.clock.clone(),
                AuthSettings {
                    issuer: config.issuer.clone(),
                    totp_skew: config.totp_skew,
                    public_origin: config.public_url.as_ref().map(|u| u.origin.clone()),
                },
                config.bcrypt_cost,
            )
            .await?,
        );
        auth.warm_up().await?;
        let address = listener.local_addr()?;
        let https = config.public_url.as_ref().is_some_and(|u| u.https);

        let state = web::Data::new(AppState {
            auth: auth.clone(),
            db: db.clone(),
            keys: keys.clone(),
            clock: config.clock.clone(),
            public_origin: config.public_url.as_ref().map(|u| u.origin.clone()),
            secure_cookies: https,
            trusted_proxies: config.trusted_proxies.clone(),
            mail_enabled: config.mail.is_some(),
        });
        let mailer = config
            .mail
            .clone()
            .map(crate::mail::Mailer::new)
            .transpose()
            .map_err(|e| anyhow::anyhow!(e))?;

        let setup_url = arm_setup_link(&state, &config, address).await?;
        if let Some(url) = &setup_url {
            tracing::warn!("No users yet. Open this one-time link to create the first administrator: {url}");
        }

        // Database calls run on each worker's blocking pool (`Db::run`). At
        // actix's default (512 threads shared by the workers) a burst of
        // requests made a thread per call, most of them only waiting for one
        // of the pool's few connections: ~150 threads under load, their
        // memory, and a context switch per wait. As many blocking threads
        // as connections is enough; further calls wait in the queue, which
        // costs nothing. (Password hashing has its own threads: `hashing`.)
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let blocking_threads = (db.max_connections() as usize).div_ceil(workers).max(2);
        let store = DbSessionStore {
            db,
            clock: config.clock.clone(),
        };
        let cookie_key = Key::from(&keys.cookie_key_material());
        let cookie_name = if https {
            "__Host-latchkey_session"
        } else {
            "latchkey_session"
        };
        // Session cookies made under another key of the file (a rotation):
        // accepted and moved to the active key.
        let older_cookie_keys = keys.older_cookie_key_materials();
        let rollover = (!older_cookie_keys.is_empty()).then(|| {
            web::Data::new(Rollover {
                cookie_name: cookie_name.to_string(),
                secure: https,
                active: cookie_key.clone(),
                older: older_cookie_keys.iter().map(|k| Key::from(k)).collect(),
            })
        });
        let app_state = state.clone();
        let server = HttpServer::new(move || {
            let sessions = SessionMiddleware::builder(store.clone(), cookie_key.clone())
                .cookie_name(cookie_name.to_string())
                .cookie_secure(https)
                .cookie_http_only(true)
                .cookie_same_site(SameSite::Lax)
                .cookie_path("/".to_string())
                .session_lifecycle(
                    BrowserSession::default()
                        .state_ttl(Duration::seconds(SESSION_IDLE_SECONDS))
                        .state_ttl_extension_policy(TtlExtensionPolicy::OnEveryRequest),
                )
                .build();
            let mut app = App::new().app_data(app_state.clone());
            if let Some(r) = &rollover {
                app = app.app_data(r.clone());
            }
            app.app_data(web::QueryConfig::default().error_handler(|_, _| {
                AppError::BadRequest("The address contained parameters this page does not accept.".into()).into()
            }))
            .app_data(web::PathConfig::default().error_handler(|_, _| AppError::NotFound.into()))
            .wrap(from_fn(middleware::cross_site_guard))
            .wrap(sessions)
            .wrap(from_fn(middleware::storage_errors))
            .wrap(from_fn(middleware::csrf_cookie))
            // Outside everything that reads cookies: actix keeps the
            // cookies it parsed first for the rest of the request.
            .wrap(from_fn(key_rollover::move_session_cookie))
            .wrap(headers::security_headers(https))
            .wrap(from_fn(head::as_get))
            .wrap(from_fn(observe::request))
            .configure(routes::configure)
            .default_service(web::to(not_found))
        })
        .workers(workers)
        .worker_max_blocking_threads(blocking_threads)
        .listen(listener)?
        .run();

        let metrics = match &config.metrics_bind {
            Some(bind) => Some(metrics_server(bind, &state)?),
            None => None,
        };

        Ok(Self {
            server,
            address,
            setup_url,
            state,
            metrics,
            mailer,
        })
    }

    /// The metrics listener's address, when `--metrics-bind` is set.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(_, a)| *a)
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// The one-time link that creates the first administrator, if no user exists.
    pub fn setup_url(&self) -> Option<&str> {
        self.setup_url.as_deref()
    }

    pub fn db(&self) -> Db {
        self.state.db.clone()
    }

    pub fn keys(&self) -> Arc<Keyring> {
        self.state.keys.clone()
    }

    /// The service, for tools and tests that seed or inspect a running server.
    pub fn auth(&self) -> Arc<Auth> {
        self.state.auth.clone()
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let state = self.state.clone();
        let mut server = self.server;
        // The server starts (workers, accept thread, and its SIGTERM/SIGINT
        // handlers) on its first poll. Poll once before saying we listen: a
        // supervisor that signals the moment it reads that line then gets a
        // graceful shutdown, not the default action of an unhandled signal.
        let first =
            futures_util::future::poll_fn(|cx| std::task::Poll::Ready(std::pin::Pin::new(&mut server).poll(cx))).await;
        if let std::task::Poll::Ready(result) = first {
            return result;
        }
        tracing::info!("Latchkey is listening on http://{}", self.address);
        // The metrics listener runs beside the pages (joined, not spawned,
        // like the sweeper) and is stopped once they have stopped.
        let mut metrics = self.metrics.map(|(metrics, address)| {
            tracing::info!("Metrics are served on http://{address}/metrics");
            metrics
        });
        let metrics_handle = metrics.as_ref().map(Server::handle);
        // Expired rows are unreachable already; this only tidies up.
        // Joined with the server future rather than spawned, so it runs on
        // any Tokio runtime and stops with the server.
        let sweeper = Box::pin(async move {
            let mut tick = actix_web::rt::time::interval(std::time::Duration::from_secs(600));
            loop {
                tick.tick().await;
                if let Err(e) = state.auth.sweep().await {
                    tracing::warn!(error = %e, "could not delete expired rows");
                }
            }
        });
        let metrics_running = Box::pin(async {
            match metrics.as_mut() {
                Some(m) => m.await.map(|_| ()),
                None => std::future::pending().await,
            }
        });
        // The mail worker: alerts and the outbox (`crate::mail::worker`).
        let auth = self.state.auth.clone();
        let mail_worker = Box::pin(async move {
            match self.mailer {
                Some(mailer) => crate::mail::worker::run(auth, mailer).await,
                None => std::future::pending().await,
            }
        });
        let background =
            futures_util::future::select(futures_util::future::select(sweeper, metrics_running), mail_worker);
        match futures_util::future::select(server, background).await {
            futures_util::future::Either::Left((result, background)) => {
                drop(background);
                if let (Some(handle), Some(m)) = (metrics_handle, metrics.as_mut()) {
                    let _ = futures_util::future::join(handle.stop(true), m).await;
                }
                result
            }
            futures_util::future::Either::Right(_) => Ok(()),
        }
    }
}

/// The metrics listener: one worker, `GET /metrics` only.
fn metrics_server(bind: &str, state: &web::Data<AppState>) -> anyhow::Result<(Server, SocketAddr)> {
    let listener =
        TcpListener::bind(bind).with_context(|| format!("cannot listen for metrics on {bind} (--metrics-bind)"))?;
    let address = listener.local_addr()?;
    let data = web::Data::new(MetricsState {
        db: state.db.clone(),
        clock: state.clock.clone(),
    });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .wrap(from_fn(head::as_get))
            .configure(crate::web::metrics::configure)
            .default_service(web::to(not_found))
    })
    .workers(1)
    // Its own signal handling would stop it at once on SIGTERM; it stops
    // when the pages have finished instead (`run_until_stopped`).
    .disable_signals()
    .listen(listener)?
    .run();
    Ok((server, address))
}

async fn arm_setup_link(state: &AppState, config: &Config, address: SocketAddr) -> anyhow::Result<Option<String>> {
    let token = URL_SAFE_NO_PAD.encode(crate::core::random_bytes::<32>());
    let armed = state
        .auth
        .arm_setup(crate::web::routes::setup_token_hash(&token))
        .await?;
    let base = match &config.public_url {
        Some(u) => u.origin.clone(),
        None => format!("http://{address}"),
    };
    Ok(armed.then(|| format!("{base}/setup/{token}")))
}
