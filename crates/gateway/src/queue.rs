//! Publishing conversion requests to RabbitMQ with publisher confirms.
//!
//! The AMQP connection is opened lazily and re-opened whenever it or its channel is found closed,
//! so the gateway starts while the broker is down and recovers by itself after a broker restart.

use std::time::Duration;

use common::{
    amqp::{declare_durable_queue, PERSISTENT},
    message::VideoMessage,
    retry::Classify,
    trace_context::{TraceContext, REQUEST_ID_HEADER, TRACEPARENT_HEADER},
};
use lapin::{
    options::{BasicPublishOptions, ConfirmSelectOptions},
    publisher_confirm::Confirmation,
    types::{AMQPValue, FieldTable},
    BasicProperties, Channel, Connection, ConnectionProperties,
};
use tokio::sync::Mutex;

/// Longest wait for the broker to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for the broker to confirm a publish.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a message is not on the queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The broker cannot be reached, or the connection dropped.
    #[error("RabbitMQ unreachable: {0}")]
    Unreachable(String),
    /// The broker refused the message (nack) or could not route it.
    #[error("RabbitMQ did not accept the message: {0}")]
    Refused(String),
    /// No confirm arrived in time.
    #[error("RabbitMQ did not confirm the message within {0:?}")]
    Timeout(Duration),
}

/// The conversion queue: a durable queue with no arguments, published to on the default exchange.
#[derive(Debug)]
pub struct VideoQueue {
    url: String,
    name: String,
    connection_name: String,
    open: Mutex<Option<(Connection, Channel)>>,
}

impl VideoQueue {
    /// A queue handle; nothing is connected until the first use.
    pub fn new(url: &str, name: &str) -> Self {
        Self {
            url: url.to_owned(),
            name: name.to_owned(),
            connection_name: format!("gateway:{name}"),
            open: Mutex::new(None),
        }
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Publishes `message` as persistent JSON and waits until the broker confirms it.
    ///
    /// A connection that turns out to be dead (the broker restarted since its last use) is
    /// replaced and the publish tried once more; a duplicate this may cause is harmless, since
    /// the converter makes exactly one MP3 per upload.
    /// The request id and `traceparent` of `trace` travel in the message's headers, so the
    /// converter logs the job under the same ids.
    pub async fn publish(
        &self,
        message: &VideoMessage,
        trace: &TraceContext,
    ) -> Result<(), QueueError> {
        let payload = serde_json::to_vec(message)
            .map_err(|e| QueueError::Refused(format!("cannot encode message: {e}")))?;
        match self.publish_once(&payload, trace).await {
            Err(e @ QueueError::Unreachable(_)) => {
                tracing::info!(error = %e, queue = %self.name,
                    "publish failed on a dead connection, retrying");
                self.open.lock().await.take();
                self.publish_once(&payload, trace).await
            }
            other => other,
        }
    }

    async fn publish_once(&self, payload: &[u8], trace: &TraceContext) -> Result<(), QueueError> {
        let channel = self.channel().await?;
        // The publish time (AMQP timestamp, seconds): RabbitMQ exports the queue head's as
        // rabbitmq_queue_head_message_timestamp, the age of the oldest waiting job.
        let published = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let properties = BasicProperties::default()
            .with_delivery_mode(PERSISTENT)
            .with_content_type("application/json".into())
            .with_timestamp(published)
            .with_headers(trace_headers(trace));
        let confirm = channel
            .basic_publish(
                "",
                &self.name,
                // Mandatory: a message the broker cannot route comes back instead of vanishing.
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                payload,
                properties,
            )
            .await
            .map_err(|e| self.dropped(e))?;
        let confirmation = tokio::time::timeout(CONFIRM_TIMEOUT, confirm)
            .await
            .map_err(|_| QueueError::Timeout(CONFIRM_TIMEOUT))?
            .map_err(|e| self.dropped(e))?;
        match confirmation {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(returned)) => Err(QueueError::Refused(format!(
                "message returned: {}",
                returned.reply_text
            ))),
            Confirmation::Nack(_) => Err(QueueError::Refused("publish nacked".to_owned())),
            // Cannot happen on a channel in confirm mode; treat it as unconfirmed.
            Confirmation::NotRequested => {
                Err(QueueError::Refused("publish not confirmed".to_owned()))
            }
        }
    }

    /// Whether the broker can be reached (opens the connection if needed).
    pub async fn check(&self) -> Result<(), QueueError> {
        self.channel().await.map(drop)
    }

    /// Closes the connection, if open (on shutdown).
    pub async fn close(&self) {
        if let Some((connection, _)) = self.open.lock().await.take() {
            if let Err(e) = connection.close(200, "gateway shutting down").await {
                tracing::debug!(error = %e, "closing the AMQP connection");
            }
        }
    }

    /// A broker error as a [`QueueError`]: unreachable when a new connection may fix it,
    /// refused when the broker will say the same again.
    fn dropped(&self, e: lapin::Error) -> QueueError {
        if e.is_retryable() {
            QueueError::Unreachable(e.to_string())
        } else {
            QueueError::Refused(e.to_string())
        }
    }

    /// The open confirm-mode channel, re-opening connection and channel when closed.
    async fn channel(&self) -> Result<Channel, QueueError> {
        let mut open = self.open.lock().await;
        if let Some((connection, channel)) = open.as_ref() {
            if connection.status().connected() && channel.status().connected() {
                return Ok(channel.clone());
            }
            tracing::info!(queue = %self.name, "AMQP connection closed, reconnecting");
        }
        *open = None;
        let properties = ConnectionProperties::default()
            .with_connection_name(self.connection_name.clone().into());
        let connection =
            tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(&self.url, properties))
                .await
                .map_err(|_| {
                    QueueError::Unreachable(format!("no connection within {CONNECT_TIMEOUT:?}"))
                })?
                .map_err(|e| self.dropped(e))?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| self.dropped(e))?;
        // As the original declares it, so that redeclaring against an existing deployment never
        // fails.
        declare_durable_queue(&channel, &self.name)
            .await
            .map_err(|e| match self.dropped(e) {
                QueueError::Refused(e) => {
                    QueueError::Refused(format!("cannot declare queue {}: {e}", self.name))
                }
                QueueError::Unreachable(e) => {
                    QueueError::Unreachable(format!("cannot declare queue {}: {e}", self.name))
                }
                other => other,
            })?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| self.dropped(e))?;
        tracing::info!(queue = %self.name, "connected to RabbitMQ");
        *open = Some((connection, channel.clone()));
        Ok(channel)
    }
}

/// The AMQP headers carrying `trace` (long strings, as any AMQP client reads them).
fn trace_headers(trace: &TraceContext) -> FieldTable {
    let mut headers = FieldTable::default();
    headers.insert(
        REQUEST_ID_HEADER.into(),
        AMQPValue::LongString(trace.request_id.clone().into()),
    );
    headers.insert(
        TRACEPARENT_HEADER.into(),
        AMQPValue::LongString(trace.traceparent.clone().into()),
    );
    headers
}
