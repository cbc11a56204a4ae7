//! The notification log entries alerting processes share on `vigie.nflog`.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// What one alerting process told one receiver integration about one
/// alert group: published by the leader after each delivered notification,
/// so that a standby taking over neither repeats nor forgets a page; also
/// the entries of alerting's saved notification log (`state.json`, which
/// older versions wrote in snake_case, hence the aliases).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationLogEntry {
    /// Name of the alerting process that sent it (`[alerting.ha] peer`;
    /// empty in a process's own saved log).
    #[serde(default)]
    pub peer: String,
    /// Index of the integration in configuration order.
    pub target: usize,
    /// The receiver's name (checked with `integration` against the
    /// reader's configuration; entries for other targets are ignored).
    pub receiver: String,
    /// The integration (`webhook`, `email`, `pagerduty`, `slack`).
    pub integration: String,
    /// The alert group key.
    #[serde(alias = "group_key")]
    pub group_key: String,
    /// Fingerprints notified as firing.
    pub firing: BTreeSet<String>,
    /// Fingerprints notified as resolved.
    pub resolved: BTreeSet<String>,
    /// When it was sent (ms since the epoch).
    #[serde(alias = "at_ms")]
    pub at_ms: i64,
}
