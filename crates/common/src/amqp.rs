//! The conversion queue on RabbitMQ, as both the gateway (publisher) and the converter (consumer)
//! see it: its declaration and what its errors mean.

use lapin::{
    options::QueueDeclareOptions,
    protocol::{AMQPErrorKind, AMQPHardError, AMQPSoftError},
    types::FieldTable,
    Channel, Queue,
};

use crate::retry::{Classify, Retry};

/// AMQP delivery mode of a persistent message (the original publishes its messages so).
pub const PERSISTENT: u8 = 2;

/// Declares queue `name` durable and without arguments, exactly as the original declares
/// `video`: any other declaration of an existing queue fails with PRECONDITION_FAILED.
pub async fn declare_durable_queue(channel: &Channel, name: &str) -> Result<Queue, lapin::Error> {
    channel
        .queue_declare(
            name,
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
}

impl Classify for lapin::Error {
    /// Connections and channels that drop come back; a broker that refuses what we ask (a
    /// queue declared otherwise, no permission) keeps refusing it.
    fn retry(&self) -> Retry {
        match self {
            lapin::Error::ProtocolError(e) => match e.kind() {
                AMQPErrorKind::Soft(
                    AMQPSoftError::ACCESSREFUSED
                    | AMQPSoftError::NOTFOUND
                    | AMQPSoftError::PRECONDITIONFAILED
                    | AMQPSoftError::CONTENTTOOLARGE,
                )
                | AMQPErrorKind::Hard(
                    AMQPHardError::NOTALLOWED
                    | AMQPHardError::NOTIMPLEMENTED
                    | AMQPHardError::COMMANDINVALID
                    | AMQPHardError::SYNTAXERROR,
                ) => Retry::Permanent,
                _ => Retry::Retryable,
            },
            lapin::Error::InvalidProtocolVersion(_) | lapin::Error::SerialisationError(_) => {
                Retry::Permanent
            }
            _ => Retry::Retryable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_connections_are_retryable() {
        let io = lapin::Error::IOError(std::sync::Arc::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )));
        assert_eq!(io.retry(), Retry::Retryable);
        assert_eq!(
            lapin::Error::MissingHeartbeatError.retry(),
            Retry::Retryable
        );
    }
}
