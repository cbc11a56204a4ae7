//! Alert instances produced by rule evaluation.

use serde::{Deserialize, Serialize};

use crate::Labels;

/// Where an alert is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// The condition holds but not yet for the rule's `for` duration.
    Pending,
    /// The condition has held for `for`: notify.
    Firing,
    /// The condition no longer holds.
    Resolved,
}

/// One alert: a rule's result for one label set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Labels, including `alertname` and the rule's extra labels.
    pub labels: Labels,
    /// Annotations (`summary`, `description`, `runbook_url`, ...).
    pub annotations: Labels,
    /// Current state.
    pub state: AlertState,
    /// When the condition started holding (ms since epoch).
    pub active_at_ms: i64,
    /// When the alert started firing (ms), if it has.
    pub fired_at_ms: Option<i64>,
    /// When the alert resolved (ms), if it has.
    pub resolved_at_ms: Option<i64>,
    /// The value of the expression at the last evaluation.
    pub value: f64,
    /// Link back to the rule or query that produced it.
    pub generator_url: String,
}

impl Alert {
    /// A stable fingerprint of the label set (16 hex digits).
    pub fn fingerprint(&self) -> String {
        format!(
            "{:016x}",
            crate::SeriesKey::new("ALERTS", self.labels.clone()).id()
        )
    }

    /// The rule name (`alertname` label).
    pub fn name(&self) -> &str {
        self.labels.get("alertname").unwrap_or("")
    }
}
