//! Building the service from its configuration and running it.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use anyhow::Context as _;
use axum::Router;
use common::{jwt::JwtKeys, retry::Backoff};
use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    ConnectOptions as _, Connection as _,
};
use tokio::{net::TcpListener, task::JoinHandle};

use crate::{
    config::Config,
    password::Hasher,
    rate_limit::{LoginLimiter, RedisLink, RegisterLimiter},
    state::AppState,
    store::UserStore,
};

/// How long a request waits for a database connection before answering 503.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest pause between attempts to set up the users table while Postgres is away.
const MAX_SETUP_RETRY: Duration = Duration::from_secs(5);

/// The auth service, bound to its address and ready to run.
pub struct Application {
    listener: TcpListener,
    port: u16,
    router: Router,
    state: AppState,
    setup_task: Option<AbortOnDrop>,
}

/// Stops the background table set-up when the application goes away unrun (tests).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Application {
    /// Connects to Postgres, sets up the users table and binds `config.addr`.
    ///
    /// When Postgres cannot be reached the service starts anyway, answers `/readyz` with 503 and
    /// sets the table up as soon as Postgres answers. A database that answers but refuses the
    /// set-up (no permission, a table without the expected columns) is an error.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        // Bind first: a taken port should fail at once, not after waiting for Postgres.
        let listener = TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("cannot listen on AUTH_ADDR {}", config.addr))?;
        let port = listener.local_addr()?.port();
        // The dummy hash for unknown emails, made now so the first such login costs no more
        // than the others.
        tokio::task::spawn_blocking(crate::password::warm_up).await?;

        let pool = PgPoolOptions::new()
            .max_connections(config.database_max_connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(config.database.clone());
        let store = UserStore::new(pool, config.table.clone());
        let schema_ready = Arc::new(AtomicBool::new(false));

        let setup_task = match probe(&config.database).await {
            Ok(()) => {
                let report = store
                    .ensure_schema()
                    .await
                    .with_context(|| format!("setting up the users table {}", config.table))?;
                tracing::info!(
                    table = %config.table,
                    unique_email_index = report.unique_email_index,
                    "users table ready"
                );
                schema_ready.store(true, Ordering::Release);
                None
            }
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "postgres is unreachable; starting anyway, not ready until it answers"
                );
                Some(AbortOnDrop(tokio::spawn(set_up_when_reachable(
                    config.database.clone(),
                    store.clone(),
                    schema_ready.clone(),
                ))))
            }
        };

        let redis = match &config.redis {
            Some(url) => Some(Arc::new(connect_redis(url, &config).await?)),
            None => {
                tracing::info!(
                    "REDIS_URL is not set: login and registration limits are counted in each \
                     replica's memory"
                );
                None
            }
        };

        let state = AppState {
            store,
            hasher: Hasher::new(config.password_hash_concurrency),
            keys: JwtKeys::new(config.jwt_secret.as_bytes()),
            login_limiter: Arc::new(LoginLimiter::new(config.login_limits, redis.as_ref())),
            register_limiter: Arc::new(RegisterLimiter::new(
                config.register_max_per_ip,
                config.register_window,
                redis.as_ref(),
            )),
            redis,
            trusted_proxy_hops: config.trusted_proxy_hops,
            upgrade_legacy_passwords: config.upgrade_legacy_passwords,
            schema_ready,
        };

        if !config.upgrade_legacy_passwords {
            tracing::info!(
                "AUTH_UPGRADE_LEGACY_PASSWORDS is off: plaintext passwords stay as they are, \
                 so the original auth can still log those users in"
            );
        }
        tracing::info!(addr = %config.addr, port, "auth listening");
        Ok(Application {
            listener,
            port,
            router: crate::routes::router(state.clone()),
            state,
            setup_task,
        })
    }

    /// The port actually bound (useful with `AUTH_ADDR=...:0`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGTERM or Ctrl-C, then finishes the requests in flight.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Application {
            listener,
            router,
            state,
            setup_task,
            ..
        } = self;
        let served = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(common::shutdown::signal())
        .await;
        drop(setup_task);
        state.store.pool().close().await;
        tracing::info!("auth stopped");
        served.context("serving HTTP")
    }
}

/// The link to `REDIS_URL`. Redis not answering is no reason to stay down: the limits count in
/// memory until it does (see `rate_limit::redis_log`).
async fn connect_redis(
    url: &crate::config::RedisUrl,
    config: &Config,
) -> anyhow::Result<RedisLink> {
    let link = RedisLink::new(
        url.connection_info().clone(),
        &config.redis_key_prefix,
        config.jwt_secret.as_bytes(),
    )
    .context("REDIS_URL")?;
    // On failure `ping` has logged the warning.
    if link.ping().await.is_ok() {
        tracing::info!(
            redis = ?url,
            prefix = %config.redis_key_prefix,
            "redis answers: login and registration limits are shared by the replicas"
        );
    }
    Ok(link)
}

/// Opens (and closes) one connection, for an error that says why Postgres cannot be reached;
/// the pool would only say that it timed out.
async fn probe(options: &PgConnectOptions) -> anyhow::Result<()> {
    let connection = tokio::time::timeout(ACQUIRE_TIMEOUT, options.connect())
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {ACQUIRE_TIMEOUT:?}"))??;
    connection.close().await?;
    Ok(())
}

/// Retries the table set-up with growing pauses until it succeeds.
async fn set_up_when_reachable(
    options: PgConnectOptions,
    store: UserStore,
    ready: Arc<AtomicBool>,
) {
    let mut backoff = Backoff::new(Duration::from_millis(500), MAX_SETUP_RETRY);
    loop {
        tokio::time::sleep(backoff.next_delay()).await;
        if let Err(e) = probe(&options).await {
            tracing::warn!(error = %e, "postgres still unreachable; will retry");
            continue;
        }
        match store.ensure_schema().await {
            Ok(report) => {
                tracing::info!(
                    unique_email_index = report.unique_email_index,
                    "postgres answers; users table ready"
                );
                ready.store(true, Ordering::Release);
                return;
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "users table set-up failed; will retry")
            }
        }
    }
}
