//! Vigie's message bus: the one seam between stages.
//!
//! Collectors publish, the analyzer and alerting subscribe; neither knows
//! which bus carries the messages. Two implementations sit behind the
//! [`Publisher`] and [`Subscriber`] traits:
//!
//! - [`memory::MemoryBus`]: bounded in-process channels, for the embedded
//!   single-process default. Nothing survives a restart.
//! - [`kafka`]: librdkafka through `rdkafka`, for the scaled deployment.
//!   Subscribers join a consumer group, so analyzers scale out by adding
//!   processes; offsets are committed only when the caller says the data is
//!   stored ([`Subscriber::commit`]), which gives at-least-once delivery.
//!
//! [`Leadership`] elects one process of a group to do what must happen
//! once (notifications), through a Kafka consumer group ([`election`]).
//!
//! The bus moves opaque bytes: encoding is `vigie-model`'s job.

pub mod config;
pub mod election;
pub mod error;
pub mod kafka;
pub mod memory;
mod metrics;

use async_trait::async_trait;
use std::time::Duration;

pub use config::{BusConfig, BusKind};
pub use election::Leadership;
pub use error::BusError;

/// A message on the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Topic name (see `vigie_model::topics`).
    pub topic: String,
    /// Partitioning key: messages with the same key keep their order.
    pub key: Vec<u8>,
    /// Encoded payload.
    pub payload: Vec<u8>,
    /// Headers as name/value pairs.
    pub headers: Vec<(String, String)>,
}

impl Message {
    /// A message without headers.
    pub fn new(topic: impl Into<String>, key: Vec<u8>, payload: Vec<u8>) -> Self {
        Self {
            topic: topic.into(),
            key,
            payload,
            headers: Vec::new(),
        }
    }

    /// The value of a header, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The dead-letter copy of this message: same key and payload on
    /// `vigie.deadletter`, with the reason and source topic in headers.
    pub fn dead_letter(&self, reason: &str) -> Message {
        let mut headers = self.headers.clone();
        headers.push((
            vigie_model::topics::HEADER_ERROR.to_string(),
            reason.to_string(),
        ));
        headers.push((
            vigie_model::topics::HEADER_SOURCE_TOPIC.to_string(),
            self.topic.clone(),
        ));
        Message {
            topic: vigie_model::topics::DEADLETTER.to_string(),
            key: self.key.clone(),
            payload: self.payload.clone(),
            headers,
        }
    }
}

/// Where a delivered message sits in its topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    /// Partition number (0 on the memory bus).
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
}

/// A message received from the bus, with its position for committing.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The message.
    pub message: Message,
    /// Its position.
    pub position: Position,
}

/// Sends messages to the bus.
#[async_trait]
pub trait Publisher: Send + Sync {
    /// Sends one message; returns once the bus has accepted it (for Kafka:
    /// acknowledged by the brokers).
    async fn publish(&self, message: Message) -> Result<(), BusError>;

    /// Like [`Publisher::publish`], but gives up with
    /// [`BusError::Timeout`] when the bus has not accepted the message
    /// within `deadline` (its readers are behind and its queue is full),
    /// so a collector never waits forever and memory stays bounded. On
    /// an error the message was not published. With Kafka, `deadline`
    /// bounds the wait for room in librdkafka's queue; a queued message
    /// is then waited for until acknowledged or `message.timeout.ms`
    /// expires, so its outcome is known.
    async fn publish_within(&self, message: Message, deadline: Duration) -> Result<(), BusError> {
        let topic = message.topic.clone();
        match tokio::time::timeout(deadline, self.publish(message)).await {
            Ok(r) => r,
            Err(_) => Err(BusError::Timeout {
                topic,
                waited: deadline,
            }),
        }
    }

    /// Waits until everything published so far is delivered.
    async fn flush(&self, timeout: Duration) -> Result<(), BusError>;
}

/// Receives messages from the bus.
#[async_trait]
pub trait Subscriber: Send {
    /// The next message; `Ok(None)` once the bus is closed.
    async fn recv(&mut self) -> Result<Option<Delivery>, BusError>;

    /// Marks every message of `topic` up to and including `position` as
    /// processed, so it is not delivered again after a restart.
    async fn commit(&mut self, topic: &str, position: Position) -> Result<(), BusError>;
}
