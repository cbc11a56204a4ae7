//! Bus errors.

use thiserror::Error;

/// An error on the bus.
#[derive(Debug, Error)]
pub enum BusError {
    /// Kafka reported an error; `retriable` tells whether trying again may help.
    #[error("kafka ({context}): {source}")]
    Kafka {
        /// What was being done.
        context: String,
        /// librdkafka's error.
        source: rdkafka::error::KafkaError,
    },
    /// The in-process bus was shut down.
    #[error("bus closed")]
    Closed,
    /// The bus did not accept the message within the publish deadline
    /// (`bus.publish_timeout`): its readers are behind and its queue is
    /// full. The message was not published.
    #[error(
        "the bus did not accept a message for {topic} within {waited:?} (readers behind, queue full)"
    )]
    Timeout {
        /// The message's topic.
        topic: String,
        /// How long the publish waited.
        waited: std::time::Duration,
    },
    /// The configuration is not usable.
    #[error("bus configuration: {0}")]
    Config(String),
}

impl BusError {
    /// Whether the bus refused the message because it is full or slow
    /// (not accepted within the deadline, librdkafka's queue full, or the
    /// brokers not acknowledging within `message.timeout.ms`) rather than
    /// because something is broken. Trying again later may succeed.
    pub fn is_backpressure(&self) -> bool {
        use rdkafka::error::RDKafkaErrorCode;
        match self {
            BusError::Timeout { .. } => true,
            BusError::Kafka { source, .. } => matches!(
                source.rdkafka_error_code(),
                Some(RDKafkaErrorCode::QueueFull | RDKafkaErrorCode::MessageTimedOut)
            ),
            _ => false,
        }
    }

    pub(crate) fn kafka(context: impl Into<String>, source: rdkafka::error::KafkaError) -> Self {
        BusError::Kafka {
            context: context.into(),
            source,
        }
    }
}
