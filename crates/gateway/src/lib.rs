//! The gateway: the only service users reach. Proxies login/register to auth, streams uploads into
//! GridFS and queues them for conversion, reports job status and streams MP3s back.

pub mod claims;
pub mod config;
pub mod error;
pub mod openapi;
pub mod queue;
pub mod routes;
pub mod storage;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::Router;
use common::jwt::JwtKeys;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;
use queue::VideoQueue;
use storage::Storage;

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// What [`AppState`] holds.
pub struct Inner {
    /// The configuration the gateway started with.
    pub config: Config,
    /// HS256 keys to verify tokens.
    pub keys: JwtKeys,
    /// MongoDB: uploads, MP3s, jobs.
    pub storage: Storage,
    /// The conversion queue.
    pub queue: VideoQueue,
    /// HTTP client for the auth service.
    pub http: reqwest::Client,
    /// Cancelled on SIGTERM, so that long-lived responses (event streams) end and graceful
    /// shutdown does not wait for them.
    pub shutdown: CancellationToken,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// The gateway, bound to its port and ready to serve.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
}

impl Application {
    /// Connects (lazily) to MongoDB and RabbitMQ and binds `GATEWAY_ADDR`. Starts even when
    /// MongoDB or RabbitMQ are down; `/readyz` tells which.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let storage = Storage::connect(&config.mongo).await?;
        let queue = VideoQueue::new(&config.rabbitmq_url, &config.video_queue);
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()?;
        let listener = TcpListener::bind(config.addr).await?;
        let state = AppState(Arc::new(Inner {
            keys: JwtKeys::new(config.jwt_secret.as_bytes()),
            config,
            storage,
            queue,
            http,
            shutdown: CancellationToken::new(),
        }));
        let router = common::http::instrument(routes::router(state.clone()));
        Ok(Application {
            listener,
            router,
            state,
        })
    }

    /// The port the gateway listens on (useful with `GATEWAY_ADDR=127.0.0.1:0`).
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Serves until SIGTERM / Ctrl-C, then drains in-flight requests.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Application {
            listener,
            router,
            state,
        } = self;
        tokio::spawn(ensure_indexes(state.storage.clone()));
        // Connect to the broker in the background so the first upload does not pay for it.
        let warm = state.clone();
        tokio::spawn(async move {
            if let Err(e) = warm.queue.check().await {
                tracing::warn!(error = %e, "RabbitMQ not reachable yet; will retry on demand");
            }
        });
        tracing::info!(addr = %listener.local_addr()?, "gateway listening");
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown({
            let token = state.shutdown.clone();
            async move {
                common::shutdown::signal().await;
                token.cancel();
            }
        })
        .await?;
        state.queue.close().await;
        Ok(())
    }
}

/// Creates the indexes, retrying while MongoDB is unreachable.
async fn ensure_indexes(storage: Storage) {
    let mut delay = Duration::from_millis(500);
    loop {
        match storage.ensure_indexes().await {
            Ok(()) => {
                tracing::info!("MongoDB indexes in place");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?delay, "cannot create MongoDB indexes yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
}
