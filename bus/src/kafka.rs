//! Kafka through librdkafka (`rdkafka`).
//!
//! Producers wait for the brokers' acknowledgement (`acks=all`, idempotent)
//! before [`Publisher::publish`] returns; when librdkafka's queue is full
//! they wait at most `bus.publish_timeout` for room. Consumers join the configured
//! group with auto-commit off; the caller commits positions with
//! [`Subscriber::commit`] once the data is stored, so a crash replays
//! rather than loses.

use std::time::Duration;

use async_trait::async_trait;
use rdkafka::ClientConfig;
use rdkafka::Message as _;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use tracing::{debug, info};

use crate::metrics::{PUBLISH_ERRORS, PUBLISHED, RECEIVED};
use crate::{BusConfig, BusError, Delivery, Message, Position, Publisher, Subscriber};

fn client_config(config: &BusConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.brokers);
    for (k, v) in &config.properties {
        c.set(k, v);
    }
    c
}

/// Creates `topics` that do not exist yet (`partitions`, `replication`
/// from the config); existing topics are left alone.
pub async fn ensure_topics(config: &BusConfig, topics: &[&str]) -> Result<(), BusError> {
    let partitions = i32::try_from(config.partitions).unwrap_or(i32::MAX);
    let with: Vec<(&str, i32)> = topics.iter().map(|t| (*t, partitions)).collect();
    ensure_topics_with(config, &with).await
}

/// Creates `topic` with exactly one partition if it does not exist yet (an
/// election topic, see [`crate::election`]).
pub async fn ensure_topic(config: &BusConfig, topic: &str) -> Result<(), BusError> {
    ensure_topics_with(config, &[(topic, 1)]).await
}

/// [`ensure_topics`] with a partition count per topic.
async fn ensure_topics_with(config: &BusConfig, topics: &[(&str, i32)]) -> Result<(), BusError> {
    let admin: AdminClient<DefaultClientContext> = client_config(config)
        .create()
        .map_err(|e| BusError::kafka("creating admin client", e))?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(t, partitions)| {
            NewTopic::new(t, *partitions, TopicReplication::Fixed(config.replication))
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(&new, &opts)
        .await
        .map_err(|e| BusError::kafka("creating topics", e))?;
    for r in results {
        match r {
            Ok(t) => info!(topic = %t, "created topic"),
            Err((t, RDKafkaErrorCode::TopicAlreadyExists)) => debug!(topic = %t, "topic exists"),
            Err((t, code)) => {
                return Err(BusError::kafka(
                    format!("creating topic {t}"),
                    rdkafka::error::KafkaError::AdminOp(code),
                ));
            }
        }
    }
    Ok(())
}

/// Publishes to Kafka.
pub struct KafkaPublisher {
    producer: FutureProducer,
    /// How long [`Publisher::publish`] waits for room in librdkafka's
    /// queue (`bus.publish_timeout`).
    queue_timeout: Duration,
}

impl KafkaPublisher {
    /// Connects a producer (idempotent, `acks=all`, lz4 unless overridden).
    pub fn new(config: &BusConfig) -> Result<Self, BusError> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &config.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "60000");
        for (k, v) in &config.properties {
            c.set(k, v);
        }
        let producer = c
            .create()
            .map_err(|e| BusError::kafka("creating producer", e))?;
        Ok(Self {
            producer,
            queue_timeout: config.publish_timeout,
        })
    }
}

#[async_trait]
impl Publisher for KafkaPublisher {
    async fn publish(&self, message: Message) -> Result<(), BusError> {
        self.publish_within(message, self.queue_timeout).await
    }

    /// `deadline` bounds the wait for room in librdkafka's queue
    /// (`queue.buffering.max.messages` / `.kbytes`, which bound the
    /// producer's memory); a queued message is then waited for until the
    /// brokers acknowledge it or `message.timeout.ms` expires, so the
    /// outcome is known: an error means not published.
    async fn publish_within(&self, message: Message, deadline: Duration) -> Result<(), BusError> {
        let mut headers = OwnedHeaders::new_with_capacity(message.headers.len());
        for (k, v) in &message.headers {
            headers = headers.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            });
        }
        let record = FutureRecord::to(&message.topic)
            .key(&message.key)
            .payload(&message.payload)
            .headers(headers);
        match self.producer.send(record, deadline).await {
            Ok(_) => {
                PUBLISHED.with_label_values(&[&message.topic]).inc();
                Ok(())
            }
            Err((e, _)) => {
                PUBLISH_ERRORS.with_label_values(&[&message.topic]).inc();
                Err(BusError::kafka(
                    format!("producing to {}", message.topic),
                    e,
                ))
            }
        }
    }

    async fn flush(&self, timeout: Duration) -> Result<(), BusError> {
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || producer.flush(timeout))
            .await
            .map_err(|e| BusError::Config(format!("flush task failed: {e}")))?
            .map_err(|e| BusError::kafka("flushing producer", e))
    }
}

/// Consumes from Kafka as a member of the configured consumer group.
pub struct KafkaSubscriber {
    consumer: std::sync::Arc<StreamConsumer>,
}

impl KafkaSubscriber {
    /// Joins `group_id` (or the config's group) and subscribes to `topics`.
    pub fn new(
        config: &BusConfig,
        group_id: Option<&str>,
        topics: &[&str],
    ) -> Result<Self, BusError> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &config.brokers)
            .set("group.id", group_id.unwrap_or(&config.group_id))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "10000");
        for (k, v) in &config.properties {
            c.set(k, v);
        }
        let consumer: StreamConsumer = c
            .create()
            .map_err(|e| BusError::kafka("creating consumer", e))?;
        consumer
            .subscribe(topics)
            .map_err(|e| BusError::kafka(format!("subscribing to {topics:?}"), e))?;
        Ok(Self {
            consumer: std::sync::Arc::new(consumer),
        })
    }
}

#[async_trait]
impl Subscriber for KafkaSubscriber {
    async fn recv(&mut self) -> Result<Option<Delivery>, BusError> {
        let m = self
            .consumer
            .recv()
            .await
            .map_err(|e| BusError::kafka("receiving", e))?;
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        (
                            h.key.to_string(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let message = Message {
            topic: m.topic().to_string(),
            key: m.key().map(<[u8]>::to_vec).unwrap_or_default(),
            payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
            headers,
        };
        RECEIVED.with_label_values(&[&message.topic]).inc();
        Ok(Some(Delivery {
            message,
            position: Position {
                partition: m.partition(),
                offset: m.offset(),
            },
        }))
    }

    async fn commit(&mut self, topic: &str, position: Position) -> Result<(), BusError> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(
            topic,
            position.partition,
            Offset::Offset(position.offset + 1),
        )
        .map_err(|e| BusError::kafka("building commit list", e))?;
        // A synchronous commit, off the async threads: when this returns
        // the broker has the offset, so a crash right after loses nothing
        // and replays nothing that was committed.
        let consumer = self.consumer.clone();
        let topic = topic.to_string();
        tokio::task::spawn_blocking(move || {
            consumer
                .commit(&tpl, CommitMode::Sync)
                .map_err(|e| BusError::kafka(format!("committing {topic}"), e))
        })
        .await
        .map_err(|e| BusError::Config(format!("commit task failed: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::mocking::MockCluster;

    #[tokio::test]
    async fn a_full_producer_queue_is_backpressure_not_a_hang() {
        let cluster = MockCluster::new(1).expect("mock cluster");
        cluster.create_topic("t", 1, 1).expect("topic");
        let mut config = BusConfig {
            brokers: cluster.bootstrap_servers(),
            ..BusConfig::default()
        };
        // Room for one message, which lingers in the queue for 5 s.
        for (k, v) in [("queue.buffering.max.messages", "1"), ("linger.ms", "5000")] {
            config.properties.insert(k.into(), v.into());
        }
        let publisher = KafkaPublisher::new(&config).expect("producer");
        // The first message enters the queue at once; its acknowledgement
        // is not awaited here (it lingers), but it keeps the queue full.
        let first = tokio::time::timeout(
            Duration::from_millis(200),
            publisher.publish(Message::new("t", vec![], b"1".to_vec())),
        )
        .await;
        assert!(first.is_err(), "the first message lingers: {first:?}");
        let err = publisher
            .publish_within(
                Message::new("t", vec![], b"2".to_vec()),
                Duration::from_millis(100),
            )
            .await
            .expect_err("no room in the queue");
        assert!(err.is_backpressure(), "{err}");
    }
}
