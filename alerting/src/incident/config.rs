//! `[alerting.incidents]`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How alerts and anomalies are grouped into incidents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IncidentConfig {
    /// Track incidents at all.
    pub enabled: bool,
    /// Labels naming what an event is about, in order of preference: the
    /// first one present gives its scope (`instance` without its port).
    pub scope_labels: Vec<String>,
    /// Events of one scope this close in time join one incident.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// An incident with no firing alert and no news for this long closes.
    #[serde(with = "humantime_serde")]
    pub quiet: Duration,
    /// Closed incidents stay listed this long.
    #[serde(with = "humantime_serde")]
    pub keep_closed: Duration,
    /// Open incidents at most; events that would open more are dropped
    /// (and counted).
    pub max_open: usize,
    /// Members per incident at most; further ones are counted, not kept.
    pub max_members: usize,
    /// Closed incidents kept at most (the oldest go first).
    pub max_closed: usize,
    /// With Kafka: the consumer group this process reads `vigie.anomalies`
    /// in. Every alerting process needs every anomaly event, so each needs
    /// its own group; by default `<bus.group_id>-incidents-<process>`, the
    /// process named by `alerting.ha.peer` (default `<host name>-<http port>`).
    pub consumer_group: Option<String>,
}

impl Default for IncidentConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            scope_labels: ["host", "instance", "hypervisor", "service"]
                .map(String::from)
                .to_vec(),
            window: Duration::from_secs(30 * 60),
            quiet: Duration::from_secs(30 * 60),
            keep_closed: Duration::from_secs(24 * 3600),
            max_open: 1_000,
            max_members: 100,
            max_closed: 500,
            consumer_group: None,
        }
    }
}

impl IncidentConfig {
    /// Problems with this section, as `(key, message)` pairs.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let key = |k: &str| format!("alerting.incidents.{k}");
        if !self.enabled {
            return out;
        }
        if self.scope_labels.is_empty() {
            out.push((
                key("scope_labels"),
                "needs at least one label, e.g. [\"host\", \"instance\"] (or set enabled = false)"
                    .into(),
            ));
        }
        for (i, l) in self.scope_labels.iter().enumerate() {
            if l.is_empty() {
                out.push((
                    format!("alerting.incidents.scope_labels[{i}]"),
                    "empty label name; remove it".into(),
                ));
            }
        }
        for (k, d) in [("window", self.window), ("quiet", self.quiet)] {
            if d.is_zero() {
                out.push((key(k), "must be greater than zero, e.g. \"30m\"".into()));
            }
        }
        for (k, n) in [
            ("max_open", self.max_open),
            ("max_members", self.max_members),
        ] {
            if n == 0 {
                out.push((key(k), "must be at least 1 (or set enabled = false)".into()));
            }
        }
        if self.consumer_group.as_deref() == Some("") {
            out.push((
                key("consumer_group"),
                "empty; remove it to use <bus.group_id>-incidents-<host name>".into(),
            ));
        }
        out
    }
}

/// The default Kafka consumer group of `vigie.anomalies` for the alerting
/// process named `process` (unique per process, e.g. its
/// `alerting.ha.peer`): `<group_id>-incidents-<process>`.
pub fn default_consumer_group(group_id: &str, process: &str) -> String {
    format!("{group_id}-incidents-{process}")
}
