//! Bus configuration (`[bus]` in Vigie's config file).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which bus carries messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BusKind {
    /// In-process channels (single process, the default).
    #[default]
    Memory,
    /// A Kafka cluster.
    Kafka,
}

/// `[bus]`: where stages exchange messages.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BusConfig {
    /// `memory` (default) or `kafka`.
    pub kind: BusKind,
    /// Kafka bootstrap servers, e.g. `127.0.0.1:9092`.
    pub brokers: String,
    /// Consumer group of the analyzers; one group shares the partitions.
    pub group_id: String,
    /// Partitions of `vigie.metrics` when Vigie creates it; also the number
    /// of shards a scraped batch is split into (one shard per key).
    pub partitions: u32,
    /// Replication factor of topics Vigie creates.
    pub replication: i32,
    /// Create missing topics at start-up.
    pub create_topics: bool,
    /// Any other librdkafka property, passed through unchanged
    /// (e.g. `"security.protocol" = "SASL_SSL"`).
    pub properties: BTreeMap<String, String>,
    /// Capacity of each in-process channel (memory bus only).
    pub channel_capacity: usize,
    /// Longest a collector waits for the bus to accept a batch (a full
    /// in-process channel, a full librdkafka queue) before giving up on
    /// it: scrapes, the host collector and syslog drop it and count it in
    /// `vigie_ingest_dropped_samples_total` /
    /// `vigie_ingest_dropped_log_records_total`; remote write answers 503
    /// so the sender retries; the file tail and interop consumers keep it
    /// and retry (the file or the topic is the buffer). The analyzer's and
    /// alerting's own messages (anomaly events, alerts, the notification
    /// log) wait as long and are then counted as publish errors. Default
    /// `30s`.
    #[serde(with = "humantime_serde")]
    pub publish_timeout: Duration,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            kind: BusKind::Memory,
            brokers: String::new(),
            group_id: "vigie-analyzer".into(),
            partitions: 6,
            replication: 1,
            create_topics: true,
            properties: BTreeMap::new(),
            channel_capacity: 1024,
            publish_timeout: Duration::from_secs(30),
        }
    }
}

impl BusConfig {
    /// Problems with this section, as `(key, message)` pairs.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.kind == BusKind::Kafka && self.brokers.trim().is_empty() {
            out.push((
                "bus.brokers".into(),
                "kind = \"kafka\" needs brokers, e.g. brokers = \"127.0.0.1:9092\"".into(),
            ));
        }
        if self.partitions == 0 {
            out.push(("bus.partitions".into(), "must be at least 1".into()));
        }
        if self.replication < 1 {
            out.push(("bus.replication".into(), "must be at least 1".into()));
        }
        if self.channel_capacity == 0 {
            out.push(("bus.channel_capacity".into(), "must be at least 1".into()));
        }
        if self.publish_timeout.is_zero() {
            out.push((
                "bus.publish_timeout".into(),
                "must be positive, e.g. publish_timeout = \"30s\"".into(),
            ));
        }
        if self.group_id.trim().is_empty() {
            out.push((
                "bus.group_id".into(),
                "must not be empty, e.g. group_id = \"vigie-analyzer\"".into(),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_publish_timeout_is_a_problem_named_by_its_key() {
        assert!(BusConfig::default().problems().is_empty());
        let c = BusConfig {
            publish_timeout: Duration::ZERO,
            ..BusConfig::default()
        };
        let keys: Vec<String> = c.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["bus.publish_timeout"]);
    }
}
