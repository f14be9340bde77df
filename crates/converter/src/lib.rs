//! The converter service: consumes the video queue and converts each upload to MP3 in-process.

pub mod config;
pub mod consumer;
pub mod gridfs_input;
pub mod mp3_frame;
pub mod scratch;
pub mod seam_quality;
pub mod segmented;
pub mod slots;
pub mod storage;
pub mod transcode;
pub mod worker;

use std::{
    future::Future,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
};

use axum::{extract::State, http::StatusCode, response::IntoResponse, routing::get, Json, Router};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;

use crate::{
    consumer::{Consumer, ConsumerSettings},
    scratch::Scratch,
    slots::Slots,
    storage::Storage,
    worker::Worker,
};

/// The running service: ops HTTP endpoints plus the queue consumer.
pub struct Application {
    listener: TcpListener,
    port: u16,
    config: Config,
    storage: Storage,
    scratch: Scratch,
}

/// What `/readyz` looks at.
#[derive(Clone)]
struct Readiness {
    storage: Storage,
    consuming: Arc<AtomicBool>,
}

impl Application {
    /// Connects the Mongo clients (lazily) and binds the ops listener.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        transcode::init();
        let scratch = Scratch::create(&config.tmp_dir)?;
        let storage = Storage::connect(&config.mongo).await?;
        let listener = TcpListener::bind(config.addr).await?;
        let port = listener.local_addr()?.port();
        Ok(Application {
            listener,
            port,
            config,
            storage,
            scratch,
        })
    }

    /// Port of the ops listener (useful with `CONVERTER_ADDR=127.0.0.1:0`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs until SIGTERM or Ctrl-C, then drains.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(common::shutdown::signal()).await
    }

    /// Runs until `shutdown` completes: stop consuming, finish or requeue in-flight jobs, exit.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        let consuming = Arc::new(AtomicBool::new(false));
        let readiness = Readiness {
            storage: self.storage.clone(),
            consuming: consuming.clone(),
        };
        let app = common::http::instrument(
            Router::new()
                .route("/readyz", get(readyz))
                .with_state(readiness)
                .merge(common::http::ops_router()),
        );
        let stop = CancellationToken::new();
        let server_stop = stop.clone();
        let server = tokio::spawn(async move {
            axum::serve(self.listener, app)
                .with_graceful_shutdown(async move { server_stop.cancelled().await })
                .await
        });
        let events = match &self.config.job_events {
            Some(events) => common::job_events::Publisher::start(events),
            None => common::job_events::Publisher::disabled(),
        };
        let worker = Arc::new(Worker {
            storage: self.storage,
            events,
            // Removed when the last job lets go of the worker, once the consumer has stopped.
            scratch: Arc::new(self.scratch),
            max_attempts: self.config.max_attempts,
            retry_base: self.config.retry_base,
            job_timeout: self.config.job_timeout,
            limits: self.config.limits,
            slots: Slots::new(
                self.config.concurrency,
                &self.config.queue,
                self.config.split_min_segment,
            ),
        });
        let consumer = Consumer {
            settings: ConsumerSettings {
                url: self.config.rabbitmq_url.clone(),
                queue: self.config.queue.clone(),
                dead_letter_queue: self.config.dead_letter_queue(),
                concurrency: self.config.concurrency,
                shutdown_grace: self.config.shutdown_grace,
            },
            worker,
            consuming,
        };
        let consumer_stop = stop.clone();
        let consumer = tokio::spawn(consumer.run(consumer_stop));
        shutdown.await;
        stop.cancel();
        consumer.await?;
        server.await??;
        Ok(())
    }
}

async fn readyz(State(ready): State<Readiness>) -> impl IntoResponse {
    // Bounded, so a probe gets an answer before its own timeout while Mongo is unreachable.
    let mongo = match tokio::time::timeout(
        std::time::Duration::from_secs(2),
        ready.storage.check_server(),
    )
    .await
    {
        Ok(Ok(_)) => "ok".to_owned(),
        // Says which version runs and what to do, not a bare "unavailable".
        Ok(Err(common::mongo::StorageError::TooOld(sentence))) => sentence,
        Ok(Err(_)) | Err(_) => "unavailable".to_owned(),
    };
    let consuming = ready.consuming.load(Ordering::Relaxed);
    let ok = mongo == "ok";
    let body = Json(serde_json::json!({
        "mongodb": mongo,
        "rabbitmq": if consuming { "consuming" } else { "not consuming" },
    }));
    if ok && consuming {
        (StatusCode::OK, body)
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, body)
    }
}

/// Adds converted audio to `converter_media_seconds_total`. The metrics crate's counters are
/// integers, so the running total is kept here in microseconds and exported with its fraction.
pub fn record_media_seconds(secs: f64) {
    static TOTAL_MICROS: AtomicU64 = AtomicU64::new(0);
    if !secs.is_finite() || secs <= 0.0 {
        return;
    }
    let total =
        TOTAL_MICROS.fetch_add((secs * 1e6) as u64, Ordering::Relaxed) + (secs * 1e6) as u64;
    metrics::gauge!("converter_media_seconds_total").set(total as f64 / 1e6);
}
