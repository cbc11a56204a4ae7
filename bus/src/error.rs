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
    /// The configuration is not usable.
    #[error("bus configuration: {0}")]
    Config(String),
}

impl BusError {
    pub(crate) fn kafka(context: impl Into<String>, source: rdkafka::error::KafkaError) -> Self {
        BusError::Kafka {
            context: context.into(),
            source,
        }
    }
}
