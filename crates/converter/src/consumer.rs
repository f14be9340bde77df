//! The RabbitMQ side: consume the video queue, run each job, then ack, dead-letter or requeue.
//!
//! Reconnects with back-off whenever the broker goes away. Prefetch equals the concurrency, so
//! the broker never hands us more messages than we run at once.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use futures::StreamExt;
use lapin::{
    message::Delivery,
    options::{
        BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
        BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    },
    types::{AMQPValue, FieldTable, LongString, ShortString},
    BasicProperties, Channel, Connection, ConnectionProperties,
};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use common::{
    amqp::{declare_durable_queue, PERSISTENT},
    retry::{Backoff, Classify},
    trace_context::{parse_traceparent, REQUEST_ID_HEADER, TRACEPARENT_HEADER},
};

use crate::{
    storage::StorageError,
    worker::{Outcome, Worker},
};

/// Header of a dead letter giving the reason, in words for a person.
pub const REASON_HEADER: &str = "x-converter-reason";
/// Header of a dead letter naming the queue it came from.
pub const ORIGINAL_QUEUE_HEADER: &str = "x-original-queue";
/// First pause before reconnecting, doubled (with jitter) after each failed attempt.
const INITIAL_RECONNECT_DELAY: Duration = Duration::from_millis(250);
/// Longest pause between reconnection attempts.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(30);
/// Longest wait for the MongoDB check before consuming.
const MONGO_CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a MongoDB server found too old is looked at again.
pub const TOO_OLD_RECHECK: Duration = Duration::from_secs(30);

/// Settings of the consumer.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    /// Broker URL.
    pub url: String,
    /// Queue to consume.
    pub queue: String,
    /// Dead-letter queue.
    pub dead_letter_queue: String,
    /// Prefetch count = conversions at once.
    pub concurrency: u16,
    /// How long in-flight jobs may run on after shutdown begins.
    pub shutdown_grace: Duration,
}

/// Consumes until `stop` is cancelled, then drains in-flight jobs.
pub struct Consumer {
    /// Settings.
    pub settings: ConsumerSettings,
    /// The job runner.
    pub worker: Arc<Worker>,
    /// True while a consumer is registered with the broker (readiness).
    pub consuming: Arc<AtomicBool>,
}

impl Consumer {
    /// Runs until `stop` fires: consume, reconnect on failures, then let in-flight jobs finish
    /// within the grace period and requeue those that would not.
    pub async fn run(self, stop: CancellationToken) {
        self.wait_while_mongo_too_old(&stop).await;
        let abort_jobs = CancellationToken::new();
        let mut jobs = JoinSet::new();
        let mut backoff = Backoff::new(INITIAL_RECONNECT_DELAY, MAX_RECONNECT_DELAY);
        let mut connection: Option<Connection> = None;
        let mut channel: Option<Channel> = None;
        while !stop.is_cancelled() {
            match self
                .session(&stop, &abort_jobs, &mut jobs, &mut connection, &mut channel)
                .await
            {
                Ok(()) => break,
                Err(e) => {
                    self.worker.slots.set_probe(None);
                    // A connection that worked starts the back-off over.
                    if self.consuming.swap(false, Ordering::Relaxed) {
                        backoff.reset();
                    }
                    let delay = backoff.next_delay();
                    if e.is_retryable() {
                        tracing::warn!(error = %e, ?delay, "RabbitMQ unavailable, reconnecting");
                    } else {
                        // Still retried: an operator may fix the broker's side meanwhile.
                        tracing::error!(error = %e, ?delay, "RabbitMQ refused the consumer, \
                            retrying until it is fixed");
                    }
                    channel = None;
                    if let Some(conn) = connection.take() {
                        let _ = conn.close(0, "reconnecting").await;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = stop.cancelled() => {}
                    }
                }
            }
        }
        self.consuming.store(false, Ordering::Relaxed);
        if !jobs.is_empty() {
            tracing::info!(in_flight = jobs.len(), grace = ?self.settings.shutdown_grace,
                "waiting for in-flight conversions");
            let drained = tokio::time::timeout(self.settings.shutdown_grace, async {
                while jobs.join_next().await.is_some() {}
            })
            .await;
            if drained.is_err() {
                tracing::warn!(in_flight = jobs.len(), "grace period over, requeueing");
                abort_jobs.cancel();
                while jobs.join_next().await.is_some() {}
            }
        }
        // The connection closes its channels (the consumer's and the queue-depth probe's) while we
        // still hold them, and only then are they dropped. Inside lapin 2.5 both other orders
        // race the connection close and get logged as a connection ERROR ("invalid channel"):
        // dropping a last handle queues a channel close, and closing a channel first queues its
        // removal, which the connection close then queues a second time.
        let channels: Vec<Channel> = channel
            .into_iter()
            .chain(self.worker.slots.take_probe())
            .collect();
        if let Some(conn) = connection {
            let _ = conn.close(200, "shutting down").await;
        }
        drop(channels);
        tracing::info!("consumer stopped");
    }

    /// Takes no message while the MongoDB server is older than the driver supports: they stay
    /// queued instead of failing one by one. Logs the server's version once it is usable; any
    /// other Mongo problem is left to the jobs' retries.
    async fn wait_while_mongo_too_old(&self, stop: &CancellationToken) {
        let mut said: Option<String> = None;
        loop {
            let check =
                tokio::time::timeout(MONGO_CHECK_TIMEOUT, self.worker.storage.check_server()).await;
            match check {
                Ok(Ok(version)) => {
                    tracing::info!(%version, "MongoDB server");
                    return;
                }
                Ok(Err(StorageError::TooOld(sentence))) => {
                    if said.as_ref() != Some(&sentence) {
                        tracing::error!("{sentence}; messages stay queued until it is replaced");
                        said = Some(sentence);
                    }
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "MongoDB not usable yet; jobs will retry");
                    return;
                }
                Err(_) => {
                    tracing::warn!("MongoDB did not answer in time; jobs will retry");
                    return;
                }
            }
            tokio::select! {
                () = tokio::time::sleep(TOO_OLD_RECHECK) => {}
                () = stop.cancelled() => return,
            }
        }
    }

    /// One connection's life: returns Ok when asked to stop, Err when the connection failed.
    async fn session(
        &self,
        stop: &CancellationToken,
        abort_jobs: &CancellationToken,
        jobs: &mut JoinSet<()>,
        connection: &mut Option<Connection>,
        open_channel: &mut Option<Channel>,
    ) -> Result<(), lapin::Error> {
        // Named so operators (and tests) can tell our connection apart in `rabbitmqctl`.
        let properties = ConnectionProperties::default().with_connection_name(LongString::from(
            format!("converter:{}", self.settings.queue),
        ));
        let conn = Connection::connect(&self.settings.url, properties).await?;
        let channel = conn.create_channel().await?;
        // A channel of its own for queue-depth probes: a failing probe cannot close ours.
        self.worker
            .slots
            .set_probe(Some(conn.create_channel().await?));
        *connection = Some(conn);
        channel
            .basic_qos(self.settings.concurrency, BasicQosOptions::default())
            .await?;
        for queue in [&self.settings.queue, &self.settings.dead_letter_queue] {
            declare_durable_queue(&channel, queue).await?;
        }
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let mut deliveries = channel
            .basic_consume(
                &self.settings.queue,
                "",
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let tag = deliveries.tag();
        self.consuming.store(true, Ordering::Relaxed);
        tracing::info!(queue = %self.settings.queue, prefetch = self.settings.concurrency,
            "consuming");
        loop {
            tokio::select! {
                delivery = deliveries.next() => match delivery {
                    Some(Ok(delivery)) => self.spawn_job(jobs, &channel, delivery, abort_jobs),
                    Some(Err(e)) => return Err(e),
                    None => return Err(lapin::Error::InvalidChannelState(channel.status().state())),
                },
                Some(_) = jobs.join_next(), if !jobs.is_empty() => {}
                () = stop.cancelled() => {
                    // Stop taking messages; the channel stays open to settle in-flight ones.
                    if let Err(e) = channel.basic_cancel(tag.as_str(), BasicCancelOptions::default()).await {
                        tracing::warn!(error = %e, "could not cancel the consumer");
                    }
                    *open_channel = Some(channel);
                    return Ok(());
                }
            }
        }
    }

    fn spawn_job(
        &self,
        jobs: &mut JoinSet<()>,
        channel: &Channel,
        delivery: Delivery,
        abort: &CancellationToken,
    ) {
        // The gateway's request id and trace id go on every log line of the job, so one search
        // finds an upload's whole story; messages from the original gateway carry none.
        let request_id = header_string(&delivery, REQUEST_ID_HEADER).unwrap_or_default();
        let trace_id = header_string(&delivery, TRACEPARENT_HEADER)
            .as_deref()
            .and_then(parse_traceparent)
            .map(|(trace_id, _)| trace_id.to_owned())
            .unwrap_or_default();
        let span = tracing::info_span!(
            "job",
            delivery_tag = delivery.delivery_tag,
            redelivered = delivery.redelivered,
            request_id = %request_id,
            trace_id = %trace_id,
            video_fid = tracing::field::Empty,
        );
        let worker = self.worker.clone();
        let channel = channel.clone();
        let abort = abort.clone();
        let settings = self.settings.clone();
        jobs.spawn(
            async move {
                // Wait for a free slot (a split job may hold several); shutdown requeues.
                let outcome = tokio::select! {
                    slot = worker.slots.acquire() => {
                        let outcome = worker.process(&delivery.data, &abort).await;
                        drop(slot);
                        outcome
                    }
                    () = abort.cancelled() => Outcome::Requeue,
                };
                metrics::counter!("converter_jobs_total", "outcome" => outcome.label())
                    .increment(1);
                settle(&channel, &settings, &delivery, &outcome).await;
            }
            .instrument(span),
        );
    }
}

/// A string header of the delivery (AMQP long or short string), if present.
fn header_string(delivery: &Delivery, name: &str) -> Option<String> {
    let value = delivery.properties.headers().as_ref()?.inner().get(name)?;
    match value {
        AMQPValue::LongString(s) => Some(s.to_string()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// Acks, dead-letters (publish to the DLQ, await the confirm, then ack) or requeues a delivery.
async fn settle(
    channel: &Channel,
    settings: &ConsumerSettings,
    delivery: &Delivery,
    outcome: &Outcome,
) {
    let result = match outcome {
        Outcome::Completed { .. } | Outcome::Discarded => {
            delivery.ack(BasicAckOptions::default()).await
        }
        Outcome::Requeue => {
            delivery
                .nack(BasicNackOptions {
                    requeue: true,
                    ..BasicNackOptions::default()
                })
                .await
        }
        Outcome::Failed { reason } => {
            match dead_letter(channel, settings, delivery, reason).await {
                Ok(()) => {
                    tracing::warn!(%reason, queue = %settings.dead_letter_queue, "dead-lettered");
                    delivery.ack(BasicAckOptions::default()).await
                }
                // Not stored in the DLQ: leave it to the broker; the job already says failed,
                // so the redelivery only dead-letters it again.
                Err(e) => {
                    tracing::error!(error = %e, "could not dead-letter, requeueing");
                    delivery
                        .nack(BasicNackOptions {
                            requeue: true,
                            ..BasicNackOptions::default()
                        })
                        .await
                }
            }
        }
    };
    if let Err(e) = result {
        // The channel is gone: the broker redelivers the message, and the job is idempotent.
        tracing::warn!(error = %e, "could not settle the delivery; it will be redelivered");
    }
}

async fn dead_letter(
    channel: &Channel,
    settings: &ConsumerSettings,
    delivery: &Delivery,
    reason: &str,
) -> Result<(), lapin::Error> {
    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
    headers.insert(
        ShortString::from(REASON_HEADER),
        AMQPValue::LongString(LongString::from(reason)),
    );
    headers.insert(
        ShortString::from(ORIGINAL_QUEUE_HEADER),
        AMQPValue::LongString(LongString::from(settings.queue.as_str())),
    );
    let properties = BasicProperties::default()
        .with_delivery_mode(PERSISTENT)
        .with_content_type(ShortString::from("application/json"))
        .with_headers(headers);
    let confirm = channel
        .basic_publish(
            "",
            &settings.dead_letter_queue,
            BasicPublishOptions::default(),
            &delivery.data,
            properties,
        )
        .await?
        .await?;
    if confirm.is_nack() {
        return Err(lapin::Error::InvalidChannelState(channel.status().state()));
    }
    Ok(())
}
