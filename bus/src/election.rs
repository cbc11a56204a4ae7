//! Leader election through a Kafka topic: a lease renewed by heartbeats.
//!
//! Some work must be done by one process of a cluster at a time: sending
//! notifications, for one. Every candidate publishes a heartbeat on an
//! election topic (one partition, key = candidate name) every quarter of
//! the lease, saying whether it leads, and reads everyone's heartbeats from
//! the end of that partition. A candidate leads when:
//!
//! - it has listened for a whole lease since it started (so it has heard
//!   every live candidate before claiming anything);
//! - no other live candidate (heard within the lease) claims the lead, and
//!   it has the smallest name among the live candidates; a leader keeps the
//!   lead while others join (the lead is sticky), and of two that claim it
//!   at once the smaller name keeps it;
//! - its own heartbeats are delivered and read back: a candidate cut off
//!   from the broker stops leading after half a lease, before the others
//!   (who stop hearing it after a whole lease) take over.
//!
//! So a leader killed with `kill -9` is replaced one lease after its last
//! heartbeat; one that stops cleanly ([`Leadership::resign`]) says so in a
//! last heartbeat and is replaced at once. Two leaders overlap only if a
//! candidate reads the topic more than half a lease late; callers that
//! must never act twice also keep their own idempotency (the alerting
//! notification log).
//!
//! Why not a consumer group's partition assignment: it would give the same
//! guarantee on Apache Kafka, but a group whose leader member dies without
//! leaving is never rebalanced by some Kafka-protocol brokers (tansu 0.6
//! keeps the dead member as group leader), which would leave no leader at
//! all. Produce and fetch on one partition work on every broker.
//!
//! Without Kafka (embedded mode), [`Leadership::always`] leads.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Message as _, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::{BusConfig, BusError};

/// Whether this process currently leads; cheap to clone and to read.
#[derive(Debug, Clone)]
pub struct Leadership {
    leader: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

/// One heartbeat on the election topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Heartbeat {
    /// The election (several can share a topic).
    #[serde(default)]
    election: String,
    /// The candidate's name.
    name: String,
    /// Whether it leads.
    leading: bool,
    /// False in the last heartbeat of a candidate that resigns.
    alive: bool,
}

/// What a candidate last heard from one other candidate.
#[derive(Debug, Clone, Copy)]
struct Heard {
    at: Instant,
    leading: bool,
}

/// The election rules, apart from any I/O (see the module doc).
#[derive(Debug)]
struct Lease {
    election: String,
    name: String,
    lease: Duration,
    started: Instant,
    peers: BTreeMap<String, Heard>,
    leading: bool,
    /// When a heartbeat of ours was last delivered and read back.
    own_seen: Option<Instant>,
}

impl Lease {
    fn new(election: &str, name: &str, lease: Duration, now: Instant) -> Self {
        Self {
            election: election.to_string(),
            name: name.to_string(),
            lease,
            started: now,
            peers: BTreeMap::new(),
            leading: false,
            own_seen: None,
        }
    }

    /// Takes in a heartbeat read from the topic at `now`.
    fn heard(&mut self, beat: &Heartbeat, now: Instant) {
        if beat.election != self.election {
            return;
        }
        if beat.name == self.name {
            self.own_seen = Some(now);
        } else if beat.alive {
            self.peers.insert(
                beat.name.clone(),
                Heard {
                    at: now,
                    leading: beat.leading,
                },
            );
        } else {
            self.peers.remove(&beat.name);
        }
    }

    /// Decides, at `now`, whether this candidate leads.
    fn decide(&mut self, now: Instant) -> bool {
        let lease = self.lease;
        self.peers.retain(|_, h| now.duration_since(h.at) < lease);
        let connected = self
            .own_seen
            .is_some_and(|t| now.duration_since(t) < lease / 2);
        let warmed = now.duration_since(self.started) >= lease;
        let rival_leads = self
            .peers
            .iter()
            .any(|(name, h)| h.leading && (!self.leading || *name < self.name));
        let smallest = self.peers.keys().all(|name| *name > self.name);
        self.leading = connected && warmed && !rival_leads && (self.leading || smallest);
        self.leading
    }
}

impl Leadership {
    /// A leadership that always leads (one process, no peers).
    pub fn always() -> Self {
        Self {
            leader: Arc::new(AtomicBool::new(true)),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Becomes candidate `name` (unique among the candidates of
    /// `election`; several elections may share `topic`) on `topic` (one
    /// partition; [`crate::kafka::ensure_topic`] creates it so), with a
    /// lease of `lease`: how long a dead leader goes unnoticed. The
    /// heartbeats run on a thread of their own until [`Leadership::resign`]
    /// or the last clone is dropped.
    pub fn kafka(
        config: &BusConfig,
        election: &str,
        name: &str,
        topic: &str,
        lease: Duration,
    ) -> Result<Self, BusError> {
        let leadership = Self {
            leader: Arc::new(AtomicBool::new(false)),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &config.brokers);
        for (k, v) in &config.properties {
            c.set(k, v);
        }
        let producer: BaseProducer = c
            .clone()
            .set("linger.ms", "0")
            .create()
            .map_err(|e| BusError::kafka("creating the election producer", e))?;
        let consumer: BaseConsumer = c
            .set("group.id", format!("{election}-{name}"))
            .set("enable.auto.commit", "false")
            .create()
            .map_err(|e| BusError::kafka("creating the election consumer", e))?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::End)
            .map_err(|e| BusError::kafka("building the election assignment", e))?;
        consumer
            .assign(&tpl)
            .map_err(|e| BusError::kafka(format!("reading the election topic {topic}"), e))?;
        let candidate = Candidate {
            lease: Lease::new(election, name, lease, Instant::now()),
            topic: topic.to_string(),
            producer,
            consumer,
            leader: Arc::clone(&leadership.leader),
            stop: Arc::clone(&leadership.stop),
        };
        std::thread::Builder::new()
            .name("vigie-election".into())
            .spawn(move || candidate.run())
            .map_err(|e| BusError::Config(format!("starting the election thread: {e}")))?;
        Ok(leadership)
    }

    /// Whether this process leads right now.
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Acquire)
    }

    /// Stops leading and says so on the topic (on shutdown), so a peer
    /// takes over without waiting for the lease to run out.
    pub fn resign(&self) {
        self.leader.store(false, Ordering::Release);
        self.stop.store(true, Ordering::Release);
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        // The thread holds its own clone of `stop`: the last handle going
        // away ends the candidacy.
        if Arc::strong_count(&self.stop) == 2 {
            self.stop.store(true, Ordering::Release);
        }
    }
}

/// The election thread's state.
struct Candidate {
    lease: Lease,
    topic: String,
    producer: BaseProducer,
    consumer: BaseConsumer,
    leader: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Candidate {
    fn run(mut self) {
        let beat_every = self.lease.lease / 4;
        let mut next_beat = Instant::now();
        while !self.stop.load(Ordering::Acquire) {
            let now = Instant::now();
            if now >= next_beat {
                next_beat = now + beat_every;
                self.beat(true);
            }
            match self.consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    if let Some(beat) = m
                        .payload()
                        .and_then(|p| serde_json::from_slice::<Heartbeat>(p).ok())
                    {
                        self.lease.heard(&beat, Instant::now());
                    }
                }
                Some(Err(e)) => warn!(topic = %self.topic, error = %e, "election: reading failed"),
                None => {}
            }
            let was = self.leader.load(Ordering::Acquire);
            let leads = self.lease.decide(Instant::now());
            if leads != was {
                // Checked again: `resign` may have cleared it meanwhile.
                if !self.stop.load(Ordering::Acquire) {
                    self.leader.store(leads, Ordering::Release);
                    info!(topic = %self.topic, candidate = %self.lease.name, leads, "election: {}", if leads { "leading" } else { "not leading" });
                }
            }
        }
        self.leader.store(false, Ordering::Release);
        self.lease.leading = false;
        self.beat(false);
        info!(topic = %self.topic, candidate = %self.lease.name, "election: resigned");
    }

    /// Publishes a heartbeat and waits (up to half a lease) for delivery.
    fn beat(&mut self, alive: bool) {
        let beat = Heartbeat {
            election: self.lease.election.clone(),
            name: self.lease.name.clone(),
            leading: self.lease.leading,
            alive,
        };
        let payload = match serde_json::to_vec(&beat) {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %e, "election: encoding a heartbeat failed");
                return;
            }
        };
        let record = BaseRecord::to(&self.topic)
            .key(self.lease.name.as_bytes())
            .payload(&payload)
            .partition(0);
        if let Err((e, _)) = self.producer.send(record) {
            warn!(topic = %self.topic, error = %e, "election: sending a heartbeat failed");
            return;
        }
        if let Err(e) = self.producer.flush(self.lease.lease / 2) {
            warn!(topic = %self.topic, error = %e, "election: a heartbeat was not delivered");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::mocking::MockCluster;

    const LEASE: Duration = Duration::from_secs(4);

    fn beat(name: &str, leading: bool) -> Heartbeat {
        Heartbeat {
            election: "e".into(),
            name: name.into(),
            leading,
            alive: true,
        }
    }

    /// A lease that has warmed up and hears itself at `t`.
    fn warm(name: &str, t0: Instant) -> (Lease, Instant) {
        let mut l = Lease::new("e", name, LEASE, t0);
        let t = t0 + LEASE;
        l.heard(&beat(name, false), t);
        (l, t)
    }

    #[test]
    fn no_one_leads_before_listening_for_a_whole_lease() {
        let t0 = Instant::now();
        let mut l = Lease::new("e", "a", LEASE, t0);
        l.heard(&beat("a", false), t0);
        assert!(!l.decide(t0 + LEASE / 2));
        l.heard(&beat("a", false), t0 + LEASE);
        assert!(l.decide(t0 + LEASE));
    }

    #[test]
    fn the_smallest_live_name_leads_and_the_lead_is_sticky() {
        let t0 = Instant::now();
        let (mut b, t) = warm("b", t0);
        b.heard(&beat("c", false), t);
        assert!(b.decide(t), "b is the smallest live candidate");
        // a joins later: b keeps the lead, a stands by while b claims it.
        let (mut a, t) = warm("a", t);
        b.heard(&beat("b", true), t);
        b.heard(&beat("a", false), t);
        a.heard(&beat("b", true), t);
        assert!(b.decide(t));
        assert!(!a.decide(t));
    }

    #[test]
    fn a_silent_leader_is_replaced_after_the_lease_and_a_resigned_one_at_once() {
        let t0 = Instant::now();
        let (mut b, t) = warm("b", t0);
        b.heard(&beat("a", true), t);
        assert!(!b.decide(t));
        let later = t + LEASE - Duration::from_millis(10);
        b.heard(&beat("b", false), later);
        assert!(!b.decide(later), "a is still within its lease");
        let after = t + LEASE + Duration::from_millis(10);
        b.heard(&beat("b", false), after);
        assert!(b.decide(after), "a's lease ran out");
        // Resignation: gone at once.
        let (mut c, t) = warm("c", after);
        c.heard(&beat("b", true), t);
        assert!(!c.decide(t));
        c.heard(
            &Heartbeat {
                election: "e".into(),
                name: "b".into(),
                leading: false,
                alive: false,
            },
            t,
        );
        assert!(c.decide(t));
    }

    #[test]
    fn of_two_claims_the_smaller_name_keeps_the_lead() {
        let t0 = Instant::now();
        let (mut a, t) = warm("a", t0);
        let (mut b, _) = warm("b", t0);
        a.leading = true;
        b.leading = true;
        a.heard(&beat("b", true), t);
        b.heard(&beat("a", true), t);
        assert!(a.decide(t));
        assert!(!b.decide(t));
    }

    #[test]
    fn a_candidate_that_cannot_hear_itself_does_not_lead() {
        let t0 = Instant::now();
        let (mut a, t) = warm("a", t0);
        assert!(a.decide(t));
        assert!(!a.decide(t + LEASE / 2 + Duration::from_millis(1)));
    }

    fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !f() {
            assert!(Instant::now() < deadline, "timed out: {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[test]
    fn over_kafka_one_leads_and_a_peer_takes_over_when_it_resigns() {
        let cluster = MockCluster::new(1).expect("mock cluster");
        cluster.create_topic("lead", 1, 1).expect("topic");
        let config = BusConfig {
            brokers: cluster.bootstrap_servers(),
            ..BusConfig::default()
        };
        let lease = Duration::from_secs(2);
        let a = Leadership::kafka(&config, "e", "a", "lead", lease).expect("a");
        let b = Leadership::kafka(&config, "e", "b", "lead", lease).expect("b");
        // Another election on the same topic changes nothing here.
        let other = Leadership::kafka(&config, "f", "0", "lead", lease).expect("other");
        wait_until("one leads", || a.is_leader() ^ b.is_leader());
        std::thread::sleep(lease);
        assert!(a.is_leader() ^ b.is_leader(), "still exactly one");
        let (leader, peer) = if a.is_leader() { (a, b) } else { (b, a) };
        leader.resign();
        wait_until("the peer leads", || peer.is_leader());
        assert!(!leader.is_leader());
        assert!(other.is_leader(), "the other election has its own leader");
    }
}
