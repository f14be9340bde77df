//! The gateway: the only service users reach. Proxies login/register to auth, streams uploads into
//! GridFS and queues them for conversion, reports job status and streams MP3s back.

pub mod claims;
pub mod config;
pub mod error;
pub mod eta;
pub mod job_feed;
pub mod job_status;
pub mod limits;
pub mod openapi;
pub mod queue;
pub mod repeats;
pub mod retention;
pub mod routes;
pub mod server;
pub mod shared_reads;
pub mod sniff;
pub mod storage;
pub mod sweeper;
pub mod tokens;
pub mod webhooks;

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use axum::{routing::get, Router};
use common::{job_events::Publisher, retry::Backoff};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;
use job_feed::JobFeed;
use queue::VideoQueue;
use storage::Storage;
use tokens::TokenChecker;

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// What [`AppState`] holds.
pub struct Inner {
    /// The configuration the gateway started with.
    pub config: Config,
    /// Checks Bearer tokens: locally (`JWT_SECRET`) or through auth's `/validate`.
    pub tokens: TokenChecker,
    /// MongoDB: uploads, MP3s, jobs.
    pub storage: Storage,
    /// The conversion queue.
    pub queue: VideoQueue,
    /// HTTP client for the auth service.
    pub http: reqwest::Client,
    /// Open `/events` streams per user.
    pub event_streams: Arc<limits::PerUser>,
    /// Uploads in progress per user.
    pub uploads: Arc<limits::PerUser>,
    /// Estimates the seconds a conversion has left.
    pub eta: eta::Estimator,
    /// Concurrent `/status` and `/events` reads of one upload, made once for all of them.
    pub status_reads: shared_reads::SharedReads<
        mongodb::bson::oid::ObjectId,
        storage::StorageResult<routes::status::Stored>,
    >,
    /// Job events pushed over Redis (one subscription for the whole process), for `/events`.
    pub job_feed: JobFeed,
    /// Publishes the job changes the gateway makes itself (deletion, the sweeper's).
    pub job_events: Publisher,
    /// Cancelled on SIGTERM, so that long-lived responses (event streams) end and graceful
    /// shutdown does not wait for them.
    pub shutdown: CancellationToken,
    /// `true` once the MongoDB server was found usable and the indexes are in place: until
    /// then `/readyz` answers 503, so no traffic arrives while they are being built.
    pub mongo_prepared: tokio::sync::watch::Sender<bool>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// The gateway, bound to its ports and ready to serve.
pub struct Application {
    listener: TcpListener,
    router: Router,
    admin_listener: TcpListener,
    admin_router: Router,
    state: AppState,
}

impl Application {
    /// Connects (lazily) to MongoDB and RabbitMQ and binds `GATEWAY_ADDR` and
    /// `GATEWAY_ADMIN_ADDR`. Starts even when
    /// MongoDB or RabbitMQ are down; `/readyz` tells which.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let storage = Storage::connect(&config.mongo).await?;
        let queue = VideoQueue::new(&config.rabbitmq_url, &config.video_queue);
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()?;
        let listener = TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("cannot listen on GATEWAY_ADDR {}", config.addr))?;
        let admin_listener = TcpListener::bind(config.admin_addr)
            .await
            .with_context(|| {
                format!("cannot listen on GATEWAY_ADMIN_ADDR {}", config.admin_addr)
            })?;
        let tokens = TokenChecker::new(
            config.jwt_secret.as_deref(),
            &config.auth_base_url,
            http.clone(),
        );
        tracing::info!("{}", tokens.describe());
        let shutdown = CancellationToken::new();
        let (job_feed, job_events) = match &config.job_events {
            Some(events) => (
                JobFeed::start(events, shutdown.clone()),
                Publisher::start(events),
            ),
            None => {
                tracing::info!("REDIS_URL unset: event streams poll MongoDB");
                (JobFeed::disabled(), Publisher::disabled())
            }
        };
        let state = AppState(Arc::new(Inner {
            tokens,
            event_streams: limits::PerUser::new(config.max_event_streams_per_user),
            uploads: limits::PerUser::new(config.max_uploads_per_user),
            eta: eta::Estimator::default(),
            status_reads: shared_reads::SharedReads::default(),
            config,
            storage,
            queue,
            http,
            job_feed,
            job_events,
            shutdown,
            mongo_prepared: tokio::sync::watch::Sender::new(false),
        }));
        let router = common::http::instrument(public_router(state.clone()));
        // Not instrumented: probes and scrapes would otherwise fill the request metrics and logs
        // that describe the API's traffic.
        let admin_router = routes::admin_router(state.clone());
        Ok(Application {
            listener,
            router,
            admin_listener,
            admin_router,
            state,
        })
    }

    /// The port the gateway listens on (useful with `GATEWAY_ADDR=127.0.0.1:0`).
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The port of `/metrics`, `/readyz` and `/healthz` (useful with
    /// `GATEWAY_ADMIN_ADDR=127.0.0.1:0`).
    pub fn admin_port(&self) -> u16 {
        self.admin_listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or(0)
    }

    /// Turns `true` once MongoDB is usable and the indexes are in place (see `/readyz`).
    pub fn mongo_prepared(&self) -> tokio::sync::watch::Receiver<bool> {
        self.state.mongo_prepared.subscribe()
    }

    /// Serves until SIGTERM / Ctrl-C, then drains in-flight requests.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Application {
            listener,
            router,
            admin_listener,
            admin_router,
            state,
        } = self;
        tokio::spawn(prepare_mongo(state.clone()));
        // Connect to the broker in the background so the first upload does not pay for it.
        let warm = state.clone();
        tokio::spawn(async move {
            if let Err(e) = warm.queue.check().await {
                tracing::warn!(error = %e, "RabbitMQ not reachable yet; will retry on demand");
            }
        });
        // Dropping this future (a test aborting it) stops the background tasks too.
        let _stop_tasks = state.shutdown.clone().drop_guard();
        tokio::spawn(sweeper::run(state.clone()));
        tokio::spawn(retention::run(state.clone()));
        tokio::spawn(webhooks::run(state.clone()));
        let token = state.shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = common::shutdown::signal() => token.cancel(),
                () = token.cancelled() => {}
            }
        });
        tracing::info!(
            addr = %listener.local_addr()?,
            admin_addr = %admin_listener.local_addr()?,
            "gateway listening"
        );
        let timeouts = server::Timeouts {
            header_read: state.config.header_read_timeout,
            idle: state.config.idle_timeout,
        };
        // Only probes and Prometheus reach the admin port: the plain server is enough there.
        let admin = axum::serve(admin_listener, admin_router)
            .with_graceful_shutdown(state.shutdown.clone().cancelled_owned());
        let public = server::serve(listener, router, timeouts, state.shutdown.clone());
        // Either listener failing stops the whole gateway (and, through the drop guard, the
        // other one), rather than leaving it half reachable.
        let served = tokio::try_join!(async { public.await.context("public listener") }, async {
            admin.await.context("admin listener")
        },);
        state.queue.close().await;
        served.map(|_| ())
    }
}

/// Every route of the public port, with `state` applied: the documented API, its document at
/// `/openapi.json`, `/healthz`, and JSON answers for unknown paths and methods.
fn public_router(state: AppState) -> Router {
    let (api, document) = openapi::split(routes::api(state.config.max_upload_bytes));
    api.merge(openapi::router(document))
        // Liveness only (no state, no detail), kept here for the Docker HEALTHCHECK and anything
        // that already polls it; `/metrics` and `/readyz` are on the admin listener only.
        .route("/healthz", get(common::http::healthz))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        // Last, so it also covers refusals by extractors and fallbacks.
        .layer(axum::middleware::from_fn_with_state(
            routes::drain::Bound::for_uploads(state.config.max_upload_bytes),
            routes::drain::drain_refused,
        ))
        .with_state(state)
}

/// Logs the MongoDB server's version, or why it cannot be used, and creates the indexes;
/// retries while MongoDB is unreachable or too old.
async fn prepare_mongo(state: AppState) {
    let storage = &state.storage;
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    let mut last_sentence = None;
    loop {
        let result = async {
            let version = storage.check_server().await?;
            storage.ensure_indexes().await?;
            Ok::<_, storage::StorageError>(version)
        }
        .await;
        let delay = backoff.next_delay();
        match result {
            Ok(version) => {
                tracing::info!(%version, "MongoDB server ready, indexes in place");
                state.mongo_prepared.send_replace(true);
                return;
            }
            Err(storage::StorageError::TooOld(sentence)) => {
                // Said once (and again if it changes), not at every retry.
                if last_sentence.as_ref() != Some(&sentence) {
                    tracing::error!("{sentence}");
                    last_sentence = Some(sentence);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?delay, "cannot use MongoDB yet");
            }
        }
        tokio::time::sleep(delay).await;
    }
}
