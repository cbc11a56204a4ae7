//! Leader election through a Kafka consumer group.
//!
//! Some work must be done by one process of a cluster at a time: sending
//! notifications, for one. Kafka already runs the consensus Vigie needs:
//! a consumer group assigns each partition to exactly one live member, and
//! hands it to another member when the holder leaves or stops
//! heartbeating. A [`Leadership`] joins group `group` on a topic with one
//! partition; the member holding partition 0 leads. Nothing is ever
//! written to that topic: the group membership is the whole protocol.
//!
//! Hand-over: a member that leaves cleanly or is told of a rebalance stops
//! leading before its partition is revoked ([`rdkafka`]'s pre-rebalance
//! callback); a member that dies (`kill -9`) is replaced once the group
//! coordinator's session timeout passes. A member cut off from the broker
//! keeps believing it leads until librdkafka notices the lost session, so
//! two leaders can overlap for at most about one session timeout in a
//! network partition; callers that must never act twice check the leader
//! flag right before acting and keep their own idempotency (the alerting
//! notification log).
//!
//! Without Kafka (embedded mode), [`Leadership::always`] leads.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, TopicPartitionList};
use tracing::{info, warn};

use crate::{BusConfig, BusError};

/// Whether this process currently leads; cheap to clone and to read.
#[derive(Debug, Clone)]
pub struct Leadership {
    leader: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Leadership {
    /// A leadership that always leads (one process, no peers).
    pub fn always() -> Self {
        Self {
            leader: Arc::new(AtomicBool::new(true)),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Joins consumer group `group` on `topic` (which must have exactly one
    /// partition; [`crate::kafka::ensure_topic`] creates it so) and leads
    /// while this member holds partition 0. `session_timeout` is how long
    /// the group waits for a dead member before handing leadership over.
    /// The membership is kept by a thread of its own until
    /// [`Leadership::resign`] or the last clone is dropped.
    pub fn kafka(
        config: &BusConfig,
        group: &str,
        topic: &str,
        session_timeout: Duration,
    ) -> Result<Self, BusError> {
        let leadership = Self {
            leader: Arc::new(AtomicBool::new(false)),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let context = ElectionContext {
            leader: Arc::clone(&leadership.leader),
            topic: topic.to_string(),
        };
        let session_ms = session_timeout.as_millis().clamp(1_000, 3_600_000);
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &config.brokers);
        for (k, v) in &config.properties {
            c.set(k, v);
        }
        c.set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("session.timeout.ms", session_ms.to_string())
            .set(
                "heartbeat.interval.ms",
                (session_ms / 4).max(250).to_string(),
            )
            // Eager assignment: a member gives up partition 0 (and with it
            // the lead) before anyone else is given it.
            .set("partition.assignment.strategy", "range");
        let consumer: BaseConsumer<ElectionContext> = c
            .create_with_context(context)
            .map_err(|e| BusError::kafka("creating the election consumer", e))?;
        consumer
            .subscribe(&[topic])
            .map_err(|e| BusError::kafka(format!("joining the election on {topic}"), e))?;
        let stop = Arc::clone(&leadership.stop);
        let leader = Arc::clone(&leadership.leader);
        let group = group.to_string();
        std::thread::Builder::new()
            .name("vigie-election".into())
            .spawn(move || {
                // Polling serves the group protocol and the rebalance
                // callbacks; the topic carries no messages.
                while !stop.load(Ordering::Acquire) {
                    if let Some(Err(e)) = consumer.poll(Duration::from_millis(200)) {
                        warn!(%group, error = %e, "election consumer error");
                    }
                }
                leader.store(false, Ordering::Release);
                // Leave the group now, so a peer takes over at once rather
                // than after the session timeout.
                consumer.unsubscribe();
                drop(consumer);
                info!(%group, "left the election");
            })
            .map_err(|e| BusError::Config(format!("starting the election thread: {e}")))?;
        Ok(leadership)
    }

    /// Whether this process leads right now.
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Acquire)
    }

    /// Stops leading and leaves the group (on shutdown), so a peer takes
    /// over without waiting for the session timeout.
    pub fn resign(&self) {
        self.leader.store(false, Ordering::Release);
        self.stop.store(true, Ordering::Release);
    }
}

/// Follows the assignment of partition 0 of `topic`.
struct ElectionContext {
    leader: Arc<AtomicBool>,
    topic: String,
}

impl ElectionContext {
    fn holds_partition_zero(&self, tpl: &TopicPartitionList) -> bool {
        tpl.elements()
            .iter()
            .any(|e| e.topic() == self.topic && e.partition() == 0)
    }
}

impl ClientContext for ElectionContext {}

impl ConsumerContext for ElectionContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                if self.holds_partition_zero(tpl) && self.leader.swap(false, Ordering::AcqRel) {
                    info!(topic = %self.topic, "leadership revoked");
                }
            }
            Rebalance::Error(e) => {
                if self.leader.swap(false, Ordering::AcqRel) {
                    warn!(topic = %self.topic, error = %e, "rebalance error: leadership given up");
                }
            }
            Rebalance::Assign(_) => {}
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance
            && self.holds_partition_zero(tpl)
            && !self.leader.swap(true, Ordering::AcqRel)
        {
            info!(topic = %self.topic, "leadership acquired");
        }
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        // The thread holds its own clones of the flags; the last handle
        // going away ends the membership.
        if Arc::strong_count(&self.stop) == 2 {
            self.stop.store(true, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::mocking::MockCluster;

    fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !f() {
            assert!(std::time::Instant::now() < deadline, "timed out: {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[test]
    fn always_leads() {
        assert!(Leadership::always().is_leader());
    }

    #[test]
    fn one_member_leads_and_a_peer_takes_over_when_it_resigns() {
        let cluster = MockCluster::new(1).expect("mock cluster");
        cluster.create_topic("lead", 1, 1).expect("topic");
        let config = BusConfig {
            brokers: cluster.bootstrap_servers(),
            ..BusConfig::default()
        };
        let timeout = Duration::from_secs(3);
        let a = Leadership::kafka(&config, "g", "lead", timeout).expect("a");
        wait_until("a leads", || a.is_leader());
        let b = Leadership::kafka(&config, "g", "lead", timeout).expect("b");
        // b joins, a rebalance happens, and exactly one of them leads.
        std::thread::sleep(Duration::from_secs(4));
        wait_until("one leader", || a.is_leader() ^ b.is_leader());
        let (leader, peer) = if a.is_leader() { (a, b) } else { (b, a) };
        leader.resign();
        wait_until("the peer leads", || peer.is_leader());
        assert!(!leader.is_leader());
    }
}
