//! High availability: several alerting processes, one pager.
//!
//! With `[alerting.ha] enabled = true` (Kafka bus only) every alerting
//! process is a full replica: each reads all of `vigie.alerts` in a
//! consumer group of its own (`<group_id>-alerting-<peer>`), so each holds
//! every alert group and its timers. One of them, the leader, sends; the
//! others stand by ([`vigie_bus::Leadership`]: a lease renewed by
//! heartbeats on the one partition of `vigie.alerting.leader`; a leader
//! whose heartbeats stop for `session_timeout` is replaced).
//!
//! After each delivered notification the leader publishes what it told
//! whom on `vigie.nflog` ([`vigie_model::NotificationLogEntry`]); every
//! standby folds it into its own notification log
//! ([`crate::Dispatcher::note_peer`]). When the leader dies, Kafka hands
//! the lead to a standby after `session_timeout`; the new leader's
//! log already says which groups were paged, so it sends only what is
//! news: resolutions, new alerts, repeats due. Standbys keep resolved
//! alerts whose resolution the leader still owes (told firing, not told
//! resolved) so a leader dying between the two does not orphan a page.
//!
//! What this does not promise: a leader killed after a receiver accepted
//! a notification and before its log entry reached Kafka has the
//! notification repeated by the next leader, with the same idempotency
//! key (at least once, as Alertmanager's own gossip). Silences and
//! acknowledgements are per process: post them to every peer (as
//! Prometheus posts alerts to every Alertmanager).

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::warn;
use vigie_bus::{Leadership, Message, Publisher};
use vigie_model::NotificationLogEntry;
use vigie_model::topics;

use crate::metrics::NFLOG_PUBLISH_ERRORS;

/// `[alerting.ha]`: run several alerting processes, one of which pages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HaConfig {
    /// Whether this process is one of several alerting replicas.
    pub enabled: bool,
    /// This replica's name, unique among the replicas (it names its
    /// consumer group). Empty: `<hostname>-<http port>`.
    pub peer: String,
    /// How long a dead leader goes unnoticed before a standby takes over
    /// (the lease the leader renews with heartbeats every quarter of it).
    #[serde(with = "humantime_serde")]
    pub session_timeout: Duration,
}

impl Default for HaConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            peer: String::new(),
            session_timeout: Duration::from_secs(10),
        }
    }
}

impl HaConfig {
    /// Problems with these settings, as `(key, message with the fix)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if !self.peer.is_empty()
            && !self
                .peer
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            out.push((
                "alerting.ha.peer".into(),
                format!(
                    "{:?} is not a valid peer name: use letters, digits, '-', '_' and '.' (it becomes part of a Kafka consumer group id)",
                    self.peer
                ),
            ));
        }
        if self.session_timeout < Duration::from_secs(1)
            || self.session_timeout > Duration::from_secs(300)
        {
            out.push((
                "alerting.ha.session_timeout".into(),
                "must be between 1s and 5m (how long a dead leader goes unnoticed)".into(),
            ));
        }
        out
    }
}

/// This process's place among the alerting replicas.
#[derive(Clone)]
pub struct Peers {
    /// This replica's name.
    pub peer: String,
    /// Whether it leads (sends notifications).
    pub leadership: Leadership,
    /// Where the notification log goes (`vigie.nflog`).
    pub publisher: Arc<dyn Publisher>,
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peers")
            .field("peer", &self.peer)
            .field("leader", &self.leadership.is_leader())
            .finish_non_exhaustive()
    }
}

impl Peers {
    /// Whether this replica sends notifications now.
    pub fn is_leader(&self) -> bool {
        self.leadership.is_leader()
    }

    /// Publishes `entry` on `vigie.nflog` for the standbys; a failure is
    /// logged and counted (a standby taking over would then repeat that
    /// notification once).
    pub async fn publish(&self, entry: &NotificationLogEntry) {
        let payload = match vigie_model::codec::encode_nflog(entry) {
            Ok(p) => p,
            Err(e) => {
                NFLOG_PUBLISH_ERRORS.inc();
                warn!(error = %e, group = %entry.group_key, "encoding a notification log entry failed");
                return;
            }
        };
        let message = Message::new(topics::NFLOG, entry.group_key.as_bytes().to_vec(), payload);
        if let Err(e) = self.publisher.publish(message).await {
            NFLOG_PUBLISH_ERRORS.inc();
            warn!(error = %e, group = %entry.group_key,
                  "publishing the notification log failed; a standby taking over may repeat this notification");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_names_are_named() {
        assert!(HaConfig::default().problems().is_empty());
        let bad = HaConfig {
            peer: "a b".into(),
            session_timeout: Duration::from_millis(10),
            ..HaConfig::default()
        };
        let keys: Vec<String> = bad.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["alerting.ha.peer", "alerting.ha.session_timeout"]);
    }
}
