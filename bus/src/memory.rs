//! The in-process bus: bounded channels inside one process.
//!
//! Each subscriber owns one bounded channel and names the topics it reads.
//! A message published to a topic that nobody reads yet is retained (up to
//! [`RETAINED_PER_TOPIC`] per topic, oldest dropped first) and handed to the
//! first subscriber of that topic; dead letters in the embedded mode stay
//! there for inspection ([`MemoryBus::retained`]).
//!
//! Backpressure: when a subscriber's channel is full, [`Publisher::publish`]
//! waits for room (at most the bus's publish timeout, when set with
//! [`MemoryBus::with_publish_timeout`], as the Kafka publisher does), and
//! [`Publisher::publish_within`] waits at most its deadline; then either
//! fails with [`BusError::Timeout`] (the message is not delivered), so
//! memory stays bounded by the channels' capacity and no publisher (an
//! analyzer publishing alerts, say) hangs behind a reader that stopped.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::metrics::{PUBLISH_ERRORS, PUBLISHED, RECEIVED};
use crate::{BusError, Delivery, Message, Position, Publisher, Subscriber};

/// Messages kept per topic while no subscriber reads it.
pub const RETAINED_PER_TOPIC: usize = 10_000;

#[derive(Default)]
struct Inner {
    routes: HashMap<String, Vec<mpsc::Sender<Delivery>>>,
    retained: HashMap<String, VecDeque<Message>>,
    offsets: HashMap<String, i64>,
}

/// An in-process bus. Cloning shares it.
#[derive(Clone)]
pub struct MemoryBus {
    inner: Arc<Mutex<Inner>>,
    capacity: usize,
    publish_timeout: Option<Duration>,
}

impl MemoryBus {
    /// A bus whose subscriber channels hold `capacity` messages.
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner::default())),
            capacity: capacity.max(1),
            publish_timeout: None,
        }
    }

    /// Makes [`Publisher::publish`] wait at most `timeout` for room
    /// (`bus.publish_timeout`); without it, it waits as long as it takes.
    pub fn with_publish_timeout(mut self, timeout: Duration) -> Self {
        self.publish_timeout = Some(timeout);
        self
    }

    /// A subscriber that receives every message of `topics`, starting with
    /// whatever was retained for them.
    pub fn subscribe(&self, topics: &[&str]) -> MemorySubscriber {
        let (tx, rx) = mpsc::channel(self.capacity);
        let mut backlog = Vec::new();
        {
            let mut inner = self.lock();
            for topic in topics {
                inner
                    .routes
                    .entry((*topic).to_string())
                    .or_default()
                    .push(tx.clone());
                if let Some(kept) = inner.retained.remove(*topic) {
                    backlog.extend(kept);
                }
            }
        }
        MemorySubscriber {
            rx,
            backlog: backlog.into(),
            next_offsets: HashMap::new(),
        }
    }

    /// Messages retained for `topic` because nobody subscribed to it.
    pub fn retained(&self, topic: &str) -> Vec<Message> {
        self.lock()
            .retained
            .get(topic)
            .map(|q| q.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Hands `message` to every subscriber of its topic (or retains it),
    /// waiting for room until `deadline` if one is given.
    async fn send(
        &self,
        message: Message,
        deadline: Option<(tokio::time::Instant, Duration)>,
    ) -> Result<(), BusError> {
        let (senders, offset) = {
            let mut inner = self.lock();
            let offset = {
                let o = inner.offsets.entry(message.topic.clone()).or_insert(0);
                *o += 1;
                *o - 1
            };
            let senders: Vec<_> = inner
                .routes
                .get(&message.topic)
                .map(|s| s.iter().filter(|s| !s.is_closed()).cloned().collect())
                .unwrap_or_default();
            if senders.is_empty() {
                let q = inner.retained.entry(message.topic.clone()).or_default();
                if q.len() >= RETAINED_PER_TOPIC {
                    q.pop_front();
                }
                PUBLISHED.with_label_values(&[&message.topic]).inc();
                q.push_back(message);
                return Ok(());
            }
            (senders, offset)
        };
        let position = Position {
            partition: 0,
            offset,
        };
        // Room in every channel first, so a message that times out reaches
        // no subscriber rather than some.
        let mut permits = Vec::with_capacity(senders.len());
        for tx in &senders {
            let permit = match deadline {
                None => tx.reserve().await,
                Some((until, waited)) => match tokio::time::timeout_at(until, tx.reserve()).await {
                    Ok(p) => p,
                    Err(_) => {
                        PUBLISH_ERRORS.with_label_values(&[&message.topic]).inc();
                        return Err(BusError::Timeout {
                            topic: message.topic,
                            waited,
                        });
                    }
                },
            };
            permits.push(permit.map_err(|_| BusError::Closed)?);
        }
        for permit in permits {
            permit.send(Delivery {
                message: message.clone(),
                position,
            });
        }
        PUBLISHED.with_label_values(&[&message.topic]).inc();
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the maps inconsistent
        // (every update is a single insert/push), so poisoning is ignored.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Publisher for MemoryBus {
    /// Waits as long as a subscriber's channel is full, or at most the
    /// bus's publish timeout when it has one.
    async fn publish(&self, message: Message) -> Result<(), BusError> {
        match self.publish_timeout {
            Some(deadline) => self.publish_within(message, deadline).await,
            None => self.send(message, None).await,
        }
    }

    /// Waits at most `deadline` for room in the subscribers' channels; a
    /// subscriber whose channel stayed full does not get the message.
    async fn publish_within(&self, message: Message, deadline: Duration) -> Result<(), BusError> {
        let until = tokio::time::Instant::now() + deadline;
        self.send(message, Some((until, deadline))).await
    }

    async fn flush(&self, _timeout: Duration) -> Result<(), BusError> {
        Ok(())
    }
}

/// Reads the topics a [`MemoryBus::subscribe`] call named.
pub struct MemorySubscriber {
    rx: mpsc::Receiver<Delivery>,
    backlog: VecDeque<Message>,
    next_offsets: HashMap<String, i64>,
}

#[async_trait]
impl Subscriber for MemorySubscriber {
    async fn recv(&mut self) -> Result<Option<Delivery>, BusError> {
        if let Some(message) = self.backlog.pop_front() {
            let o = self.next_offsets.entry(message.topic.clone()).or_insert(0);
            *o -= 1;
            RECEIVED.with_label_values(&[&message.topic]).inc();
            let position = Position {
                partition: -1,
                offset: *o,
            };
            return Ok(Some(Delivery { message, position }));
        }
        let delivery = self.rx.recv().await;
        if let Some(d) = &delivery {
            RECEIVED.with_label_values(&[&d.message.topic]).inc();
        }
        Ok(delivery)
    }

    async fn commit(&mut self, _topic: &str, _position: Position) -> Result<(), BusError> {
        // Nothing outlives the process on the memory bus.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn delivers_in_order_to_subscriber() {
        let bus = MemoryBus::new(8);
        let mut sub = bus.subscribe(&["a"]);
        for i in 0..5u8 {
            bus.publish(Message::new("a", vec![i], vec![i]))
                .await
                .expect("publish");
        }
        for i in 0..5u8 {
            let d = sub.recv().await.expect("recv").expect("message");
            assert_eq!(d.message.payload, vec![i]);
            assert_eq!(d.position.offset, i64::from(i));
        }
    }

    #[tokio::test]
    async fn retains_until_first_subscriber() {
        let bus = MemoryBus::new(8);
        bus.publish(Message::new("late", vec![], b"x".to_vec()))
            .await
            .expect("publish");
        assert_eq!(bus.retained("late").len(), 1);
        let mut sub = bus.subscribe(&["late"]);
        let d = sub.recv().await.expect("recv").expect("message");
        assert_eq!(d.message.payload, b"x");
        assert!(bus.retained("late").is_empty());
    }

    #[tokio::test]
    async fn a_full_channel_times_out_without_delivering() {
        let bus = MemoryBus::new(2);
        // Two subscribers of one topic; only the first one is ever read.
        let mut read = bus.subscribe(&["t"]);
        let _never_read = bus.subscribe(&["t"]);
        let deadline = Duration::from_millis(50);
        for i in 0..2u8 {
            bus.publish_within(Message::new("t", vec![], vec![i]), deadline)
                .await
                .expect("room for two");
        }
        for i in 0..2u8 {
            let d = read.recv().await.expect("recv").expect("message");
            assert_eq!(d.message.payload, vec![i]);
        }
        // The reader has room, the other channel is full: nobody gets it.
        let err = bus
            .publish_within(Message::new("t", vec![], vec![9]), deadline)
            .await
            .expect_err("the unread channel is full");
        assert!(err.is_backpressure(), "{err}");
        assert!(matches!(err, BusError::Timeout { ref topic, .. } if topic == "t"));
        let nothing = tokio::time::timeout(Duration::from_millis(50), read.recv()).await;
        assert!(
            nothing.is_err(),
            "a timed-out message reaches no subscriber"
        );
    }

    #[tokio::test]
    async fn publish_waits_at_most_the_bus_publish_timeout() {
        let bus = MemoryBus::new(1).with_publish_timeout(Duration::from_millis(50));
        let _never_read = bus.subscribe(&["t"]);
        bus.publish(Message::new("t", vec![], vec![1]))
            .await
            .expect("room for one");
        let err = tokio::time::timeout(
            Duration::from_secs(5),
            bus.publish(Message::new("t", vec![], vec![2])),
        )
        .await
        .expect("publish gives up by itself")
        .expect_err("the channel is full");
        assert!(err.is_backpressure(), "{err}");
    }

    #[test]
    fn dead_letter_carries_reason_and_source() {
        let m = Message::new("vigie.metrics", b"k".to_vec(), b"p".to_vec()).dead_letter("bad");
        assert_eq!(m.topic, vigie_model::topics::DEADLETTER);
        assert_eq!(m.header(vigie_model::topics::HEADER_ERROR), Some("bad"));
        assert_eq!(
            m.header(vigie_model::topics::HEADER_SOURCE_TOPIC),
            Some("vigie.metrics")
        );
    }
}
