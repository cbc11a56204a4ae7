//! Grouping, timing and delivery, with Alertmanager's semantics.
//!
//! [`Dispatcher`] is the synchronous core: it is fed alerts and ticked with
//! the current time (ms since epoch) and answers with the notifications due,
//! which makes its timing testable without sleeping. [`run`] wires it to the
//! bus, a one-second ticker and the notifiers, with retries.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tracing::debug;
use vigie_model::{Alert, AlertState, Labels};

use crate::config::AlertingConfig;
use crate::depends::Dependencies;
use crate::flap::Flaps;
use crate::history::{Record, RecordStatus};
use crate::notify::{GroupStatus, Notification, NotifiedAlert};
use crate::route::Routing;
use crate::silence::Silences;
use crate::state::{Ack, DispatchState, LoggedNotification};

pub use crate::runner::{
    Durable, ReceiverNotifier, Shared, build_notifiers, deliver, deliver_recorded, log_warnings,
    now_ms, receiver_names, run, run_shared, run_with_notifiers, targets_of,
};

/// How often [`run`] ticks the dispatcher.
pub const TICK: Duration = Duration::from_secs(1);
/// First retry delay after a failed notification.
pub const RETRY_INITIAL: Duration = Duration::from_secs(1);
/// Longest retry delay.
pub const RETRY_MAX: Duration = Duration::from_secs(60);
/// How long the final flush on shutdown may take.
pub const FINAL_FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// One integration of one receiver, as the dispatcher sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Receiver name.
    pub receiver: String,
    /// Integration name (`webhook`, `email`).
    pub integration: &'static str,
    /// Whether resolved alerts are sent to it.
    pub send_resolved: bool,
}

/// A notification due for one target.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Index of the target in the list given to [`Dispatcher::new`].
    pub target: usize,
    /// The notification to send.
    pub notification: Notification,
}

#[derive(Debug, Clone)]
struct Tracked {
    labels: Labels,
    annotations: Labels,
    starts_at_ms: i64,
    ends_at_ms: Option<i64>,
    generator_url: String,
    updated_ms: i64,
    /// When a firing alert resolves unless refreshed; `None` means
    /// `updated_ms + resolve_timeout`.
    deadline_ms: Option<i64>,
}

/// One alert held by the dispatcher, as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldAlert {
    /// Fingerprint (16 hex digits).
    pub fingerprint: String,
    /// Labels.
    pub labels: Labels,
    /// Annotations.
    pub annotations: Labels,
    /// When it started firing (ms since epoch).
    pub starts_at_ms: i64,
    /// When it resolved, or when it will resolve unless refreshed (ms).
    pub ends_at_ms: i64,
    /// Whether it has resolved.
    pub resolved: bool,
    /// When it was last received (ms).
    pub updated_ms: i64,
    /// Link to what produced it.
    pub generator_url: String,
    /// The key of its group.
    pub group_key: String,
    /// The labels of its group.
    pub group_labels: Labels,
    /// The receiver of its group's route; `None`: every receiver.
    pub receiver: Option<String>,
    /// Ids of the active silences that mute it.
    pub silenced_by: Vec<String>,
    /// Fingerprints of the firing alerts that inhibit it.
    pub inhibited_by: Vec<String>,
}

/// What was last notified to one target about one group.
#[derive(Debug, Clone)]
struct LogEntry {
    firing: BTreeSet<String>,
    resolved: BTreeSet<String>,
    at_ms: i64,
}

#[derive(Debug)]
struct Group {
    labels: Labels,
    alerts: BTreeMap<String, Tracked>,
    next_flush_ms: i64,
    failed: Vec<bool>,
    /// Per target, the firing alerts whose muting was last recorded in the
    /// history (each muting is recorded once, not at every flush).
    muted_seen: Vec<BTreeSet<String>>,
    /// An alert of the group started flapping: notify at the next flush.
    flap_news: bool,
}

/// A group is identified by its route (index in the [`Routing`]) and key.
type GroupId = (usize, String);

/// Alerts routed through the [`Routing`] tree, grouped per route by label
/// values, and when each group is due.
#[derive(Debug)]
pub struct Dispatcher {
    routing: Routing,
    resolve_timeout_ms: i64,
    external_url: String,
    targets: Vec<Target>,
    groups: BTreeMap<GroupId, Group>,
    silences: Silences,
    /// What each target (index) was last told about each group (key).
    nflog: BTreeMap<(usize, String), LogEntry>,
    /// Acknowledged groups, by group key.
    acks: BTreeMap<String, Ack>,
    /// History records of suppressions, for the run loop to write.
    records: Vec<Record>,
    /// Whether `nflog` or `acks` changed since the last [`Dispatcher::take_dirty`].
    dirty: bool,
    /// After a restore: when log entries and acks of groups not re-created
    /// by then are dropped.
    orphans_after_ms: Option<i64>,
    /// Recent state changes per alert.
    flaps: Flaps,
    /// Dependency-aware suppression.
    depends: Dependencies,
    /// Incidents: alerts and anomalies per host or service ([`crate::incident`]).
    incidents: crate::incident::IncidentTracker,
    /// A standby replica ([`crate::ha`]): groups and timers run, nothing
    /// is sent, and the log is what the leader reports.
    standby: bool,
}

/// `ms` since the epoch as a UTC time.
pub fn utc(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Dispatcher {
    /// A dispatcher that notifies every one of `targets` about every
    /// alert, with the grouping and timing of `config` (Vigie's TOML).
    pub fn new(config: &AlertingConfig, targets: Vec<Target>) -> Self {
        Self::with_routing(config, Routing::from_config(config), targets)
    }

    /// A dispatcher that routes alerts through `routing` (grouping and
    /// timing per route) to `targets`; `config` gives `resolve_timeout`
    /// and the external URL.
    pub fn with_routing(config: &AlertingConfig, routing: Routing, targets: Vec<Target>) -> Self {
        Self {
            routing,
            resolve_timeout_ms: ms(config.resolve_timeout),
            external_url: config.external_url.clone(),
            targets,
            groups: BTreeMap::new(),
            silences: Silences::in_memory(),
            nflog: BTreeMap::new(),
            acks: BTreeMap::new(),
            records: Vec::new(),
            dirty: false,
            orphans_after_ms: None,
            flaps: Flaps::new(config.flapping.clone()),
            depends: Dependencies::from_config(&config.dependencies),
            incidents: crate::incident::IncidentTracker::new(
                config.incidents.clone(),
                config.resolve_timeout,
            ),
            standby: false,
        }
    }

    /// Makes this dispatcher a standby (`true`: it sends nothing and takes
    /// its notification log from the leader through
    /// [`Dispatcher::note_peer`]) or the sender (`false`, the default).
    pub fn set_standby(&mut self, standby: bool) {
        self.standby = standby;
    }

    /// Whether this dispatcher stands by.
    pub fn is_standby(&self) -> bool {
        self.standby
    }

    /// Takes in what a peer (the leader) told one target about one group,
    /// as if this dispatcher had sent it. Returns false, changing nothing,
    /// when the entry's target is not the same receiver and integration
    /// here (peers run different configurations) or is older than what
    /// the log holds.
    pub fn note_peer(&mut self, e: &vigie_model::NotificationLogEntry, now_ms: i64) -> bool {
        let same = self
            .targets
            .get(e.target)
            .is_some_and(|t| t.receiver == e.receiver && t.integration == e.integration);
        if !same {
            return false;
        }
        let slot = (e.target, e.group_key.clone());
        if self.nflog.get(&slot).is_some_and(|old| old.at_ms > e.at_ms) {
            return true;
        }
        self.nflog.insert(
            slot,
            LogEntry {
                firing: e.firing.clone(),
                resolved: e.resolved.clone(),
                at_ms: e.at_ms,
            },
        );
        self.dirty = true;
        // A log entry for a group not held here (yet) is forgotten unless
        // the group shows up within `resolve_timeout`.
        if !self.groups.keys().any(|(_, k)| *k == e.group_key) && self.orphans_after_ms.is_none() {
            self.orphans_after_ms = Some(now_ms.saturating_add(self.resolve_timeout_ms));
        }
        true
    }

    /// What the log says `target` was told about `group_key`, as the
    /// entry `peer` publishes for its peers.
    pub fn log_entry(
        &self,
        target: usize,
        group_key: &str,
        peer: &str,
    ) -> Option<LoggedNotification> {
        let t = self.targets.get(target)?;
        let e = self.nflog.get(&(target, group_key.to_string()))?;
        Some(LoggedNotification {
            peer: peer.to_string(),
            target,
            receiver: t.receiver.clone(),
            integration: t.integration.to_string(),
            group_key: group_key.to_string(),
            firing: e.firing.clone(),
            resolved: e.resolved.clone(),
            at_ms: e.at_ms,
        })
    }

    /// Whether the log says `target` was told a notification about
    /// `group_key` at or after `at_ms` (a peer sent something newer than
    /// an outbox entry of this process).
    pub fn told_since(&self, target: usize, group_key: &str, at_ms: i64) -> bool {
        self.nflog
            .get(&(target, group_key.to_string()))
            .is_some_and(|e| e.at_ms >= at_ms)
    }

    /// Takes back the notification log and acknowledgements saved by a
    /// previous run ([`Dispatcher::snapshot`]). Log entries whose target
    /// index no longer names the same receiver and integration are
    /// dropped; entries and acks whose group is not re-created within
    /// `resolve_timeout` are dropped then.
    pub fn restore(&mut self, state: DispatchState, now_ms: i64) {
        for e in state.log {
            let same = self
                .targets
                .get(e.target)
                .is_some_and(|t| t.receiver == e.receiver && t.integration == e.integration);
            if same {
                self.nflog.insert(
                    (e.target, e.group_key),
                    LogEntry {
                        firing: e.firing,
                        resolved: e.resolved,
                        at_ms: e.at_ms,
                    },
                );
            }
        }
        for ack in state.acks {
            self.acks.insert(ack.group_key.clone(), ack);
        }
        self.orphans_after_ms = Some(now_ms.saturating_add(self.resolve_timeout_ms));
    }

    /// The notification log and acknowledgements, to persist.
    pub fn snapshot(&self) -> DispatchState {
        DispatchState {
            log: self
                .nflog
                .iter()
                .filter_map(|((target, key), _)| self.log_entry(*target, key, ""))
                .collect(),
            acks: self.acks.values().cloned().collect(),
        }
    }

    /// Whether the log or the acknowledgements changed since the last call.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// The history records of suppressions since the last call.
    pub fn take_records(&mut self) -> Vec<Record> {
        std::mem::take(&mut self.records)
    }

    /// Records that `n` (re-sent from the outbox at start-up) was notified
    /// to `target`, so the group it belongs to is not notified again for
    /// the same alerts.
    pub fn note_replayed(&mut self, target: usize, n: &Notification) {
        let slot = (target, n.group_key.clone());
        if self
            .nflog
            .get(&slot)
            .is_some_and(|e| e.at_ms > n.notified_at_ms)
        {
            return;
        }
        let with = |status: GroupStatus| -> BTreeSet<String> {
            n.alerts
                .iter()
                .filter(|a| a.status == status)
                .map(|a| a.fingerprint.clone())
                .collect()
        };
        self.nflog.insert(
            slot,
            LogEntry {
                firing: with(GroupStatus::Firing),
                resolved: with(GroupStatus::Resolved),
                at_ms: n.notified_at_ms,
            },
        );
        self.dirty = true;
    }

    /// Acknowledges the groups named by `id` (a group key, or the
    /// fingerprint of an alert, meaning every group it is in): their
    /// firing alerts are not notified until the group resolves, whatever
    /// `repeat_interval` says; the resolution is. Returns the group keys
    /// acknowledged, none when `id` names no group held.
    pub fn acknowledge(&mut self, id: &str, by: &str, comment: &str, now_ms: i64) -> Vec<String> {
        let keys: BTreeSet<String> = self
            .groups
            .iter()
            .filter(|((_, key), g)| key == id || g.alerts.contains_key(id))
            .map(|((_, key), _)| key.clone())
            .collect();
        for key in &keys {
            self.acks.insert(
                key.clone(),
                Ack {
                    group_key: key.clone(),
                    by: by.to_string(),
                    comment: comment.to_string(),
                    at_ms: now_ms,
                },
            );
            self.dirty = true;
        }
        keys.into_iter().collect()
    }

    /// The acknowledgement of group `key`, if any.
    pub fn ack(&self, key: &str) -> Option<&Ack> {
        self.acks.get(key)
    }

    /// Every acknowledgement held.
    pub fn acks(&self) -> Vec<Ack> {
        self.acks.values().cloned().collect()
    }

    /// This dispatcher, muting alerts with `silences`.
    pub fn with_silences(mut self, silences: Silences) -> Self {
        self.silences = silences;
        self
    }

    /// The silences.
    pub fn silences(&self) -> &Silences {
        &self.silences
    }

    /// The silences, to create or expire some.
    pub fn silences_mut(&mut self) -> &mut Silences {
        &mut self.silences
    }

    /// The routing tree.
    pub fn routing(&self) -> &Routing {
        &self.routing
    }

    /// The incident tracker.
    pub fn incidents(&self) -> &crate::incident::IncidentTracker {
        &self.incidents
    }

    /// The incident tracker, to feed it anomaly events or list incidents.
    pub fn incidents_mut(&mut self) -> &mut crate::incident::IncidentTracker {
        &mut self.incidents
    }

    /// Every alert held, firing or resolved but not yet notified, in
    /// group then fingerprint order (an alert on several routes appears
    /// once per group), with the silences muting it at `now_ms` and the
    /// alerts inhibiting it.
    pub fn alerts(&self, now_ms: i64) -> Vec<HeldAlert> {
        let now = utc(now_ms);
        let sources = self.firing();
        let mut out = Vec::new();
        for ((route, key), group) in &self.groups {
            for (fp, a) in &group.alerts {
                out.push(HeldAlert {
                    fingerprint: fp.clone(),
                    labels: a.labels.clone(),
                    annotations: a.annotations.clone(),
                    starts_at_ms: a.starts_at_ms,
                    ends_at_ms: a.ends_at_ms.unwrap_or_else(|| self.deadline(a)),
                    resolved: a.ends_at_ms.is_some(),
                    updated_ms: a.updated_ms,
                    generator_url: a.generator_url.clone(),
                    group_key: key.clone(),
                    group_labels: group.labels.clone(),
                    receiver: self.routing.routes[*route].receiver.clone(),
                    silenced_by: self.silences.muting(&a.labels, now),
                    inhibited_by: self.inhibited_by(&a.labels, &sources),
                });
            }
        }
        out
    }

    fn deadline(&self, a: &Tracked) -> i64 {
        a.deadline_ms
            .unwrap_or_else(|| a.updated_ms.saturating_add(self.resolve_timeout_ms))
    }

    /// The targets, in job index order.
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// Number of groups held.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Number of alerts held, over all groups.
    pub fn alert_count(&self) -> usize {
        self.groups.values().map(|g| g.alerts.len()).sum()
    }

    /// The group labels of an alert on the root route.
    pub fn group_labels(&self, labels: &Labels) -> Labels {
        self.routing.routes[0].group_labels(labels)
    }

    /// Every firing alert held, once each: (fingerprint, labels), the
    /// possible sources of inhibition.
    fn firing(&self) -> BTreeMap<String, Labels> {
        let mut out = BTreeMap::new();
        for group in self.groups.values() {
            for (fp, a) in &group.alerts {
                if a.ends_at_ms.is_none() {
                    out.entry(fp.clone()).or_insert_with(|| a.labels.clone());
                }
            }
        }
        out
    }

    /// The fingerprints of the `sources` that inhibit an alert with
    /// `labels`, over every inhibition rule.
    fn inhibited_by(&self, labels: &Labels, sources: &BTreeMap<String, Labels>) -> Vec<String> {
        let mut out: Vec<String> = self
            .routing
            .inhibit_rules
            .iter()
            .flat_map(|rule| {
                rule.inhibited_by(labels, sources.iter().map(|(fp, l)| (fp.as_str(), l)))
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Takes in one alert from the analyzer, received at `now_ms`.
    ///
    /// Pending alerts are ignored; a resolved alert whose group is not held
    /// is ignored too (nobody was told it fired).
    pub fn receive(&mut self, alert: &Alert, now_ms: i64) {
        self.insert(alert, None, now_ms);
    }

    /// Takes in one alert posted to the Alertmanager API: firing until
    /// `ends_at_ms` if given (else until `resolve_timeout` passes without
    /// a refresh), resolved if `ends_at_ms` is not after `now_ms`.
    pub fn receive_posted(&mut self, alert: &Alert, ends_at_ms: Option<i64>, now_ms: i64) {
        match ends_at_ms {
            Some(end) if end <= now_ms => {
                let mut resolved = alert.clone();
                resolved.state = AlertState::Resolved;
                resolved.resolved_at_ms = Some(end);
                self.insert(&resolved, None, now_ms);
            }
            deadline => {
                let mut firing = alert.clone();
                firing.state = AlertState::Firing;
                firing.resolved_at_ms = None;
                self.insert(&firing, deadline, now_ms);
            }
        }
    }

    fn insert(&mut self, alert: &Alert, deadline_ms: Option<i64>, now_ms: i64) {
        let fingerprint = alert.fingerprint();
        if alert.state == AlertState::Pending {
            return;
        }
        let flap = self
            .flaps
            .observe(&fingerprint, alert.state == AlertState::Firing, now_ms);
        let ends_at_ms = match alert.state {
            // A flapping alert is held firing instead of resolving.
            AlertState::Pending | AlertState::Firing => None,
            AlertState::Resolved if flap.flapping => None,
            AlertState::Resolved => Some(alert.resolved_at_ms.unwrap_or(now_ms)),
        };
        let tracked = Tracked {
            labels: alert.labels.clone(),
            annotations: alert.annotations.clone(),
            starts_at_ms: alert.fired_at_ms.unwrap_or(alert.active_at_ms),
            ends_at_ms,
            generator_url: alert.generator_url.clone(),
            updated_ms: now_ms,
            deadline_ms,
        };
        self.incidents.observe_alert(
            &fingerprint,
            &alert.labels,
            alert.active_at_ms,
            ends_at_ms,
            now_ms,
        );
        for route in self.routing.matching(&alert.labels) {
            let node = &self.routing.routes[route];
            let group_labels = node.group_labels(&alert.labels);
            let id = (route, format!("{}:{group_labels}", node.key));
            // A resolution is news only to targets told the alert fired:
            // its group is held, or was before a restart (the log says so).
            if ends_at_ms.is_some()
                && !self.groups.contains_key(&id)
                && !self.nflog.keys().any(|(_, key)| *key == id.1)
            {
                debug!(group = %id.1, %fingerprint, "resolved alert for an unknown group ignored");
                continue;
            }
            let targets = self.targets.len();
            let group_wait_ms = ms(node.group_wait);
            let group = self.groups.entry(id).or_insert_with(|| Group {
                labels: group_labels,
                alerts: BTreeMap::new(),
                next_flush_ms: now_ms.saturating_add(group_wait_ms),
                failed: vec![false; targets],
                muted_seen: vec![BTreeSet::new(); targets],
                flap_news: false,
            });
            group.flap_news |= flap.started;
            group.alerts.insert(fingerprint.clone(), tracked.clone());
        }
    }

    /// Applies `resolve_timeout` and flushes the groups that are due.
    pub fn tick(&mut self, now_ms: i64) -> Vec<Job> {
        self.silences.gc(utc(now_ms));
        self.settle_flaps(now_ms);
        self.expire(now_ms);
        self.drop_orphans(now_ms);
        self.observe_dependencies();
        let due: Vec<GroupId> = self
            .groups
            .iter()
            .filter(|(_, g)| g.next_flush_ms <= now_ms)
            .map(|(k, _)| k.clone())
            .collect();
        let mut jobs = Vec::new();
        for id in due {
            self.flush(&id, now_ms, &mut jobs);
        }
        jobs
    }

    /// Flushes every group now, whatever its timer (used on shutdown).
    pub fn flush_all(&mut self, now_ms: i64) -> Vec<Job> {
        self.expire(now_ms);
        self.observe_dependencies();
        let keys: Vec<GroupId> = self.groups.keys().cloned().collect();
        let mut jobs = Vec::new();
        for id in keys {
            self.flush(&id, now_ms, &mut jobs);
        }
        jobs
    }

    /// Works out which firing alerts depend on a down one
    /// ([`crate::depends`]).
    fn observe_dependencies(&mut self) {
        if !self.depends.is_active() {
            return;
        }
        let firing = self.firing();
        self.depends.observe(&firing);
        let groups = &self.groups;
        self.depends
            .forget(|fp| groups.values().any(|g| g.alerts.contains_key(fp)));
    }

    /// After a restore, once `resolve_timeout` has passed: forgets log
    /// entries and acks of groups that did not come back.
    fn drop_orphans(&mut self, now_ms: i64) {
        if self.orphans_after_ms.is_none_or(|t| now_ms < t) {
            return;
        }
        self.orphans_after_ms = None;
        let held: BTreeSet<&String> = self.groups.keys().map(|(_, k)| k).collect();
        let before = (self.nflog.len(), self.acks.len());
        self.nflog.retain(|(_, key), _| held.contains(key));
        self.acks.retain(|key, _| held.contains(key));
        if before != (self.nflog.len(), self.acks.len()) {
            self.dirty = true;
        }
    }

    /// Records that a job for `group_key` and `target` finally failed, so
    /// the group is notified again at its next flush (and, after a
    /// restart, as a new group: the log no longer says it was told).
    pub fn mark_failed(&mut self, group_key: &str, target: usize) {
        if self
            .nflog
            .remove(&(target, group_key.to_string()))
            .is_some()
        {
            self.dirty = true;
        }
        for ((_, key), group) in self.groups.iter_mut() {
            if key == group_key
                && let Some(flag) = group.failed.get_mut(target)
            {
                *flag = true;
            }
        }
    }

    /// Alerts that stopped flapping while resolved resolve now (as of
    /// their last resolution).
    fn settle_flaps(&mut self, now_ms: i64) {
        for (fp, at_ms) in self.flaps.settle(now_ms) {
            for group in self.groups.values_mut() {
                if let Some(alert) = group.alerts.get_mut(&fp)
                    && alert.ends_at_ms.is_none()
                {
                    alert.ends_at_ms = Some(at_ms);
                }
            }
        }
    }

    fn expire(&mut self, now_ms: i64) {
        let timeout = self.resolve_timeout_ms;
        let flaps = &self.flaps;
        for group in self.groups.values_mut() {
            for (fp, alert) in group.alerts.iter_mut() {
                if flaps.is_flapping(fp) {
                    continue;
                }
                let deadline = alert
                    .deadline_ms
                    .unwrap_or_else(|| alert.updated_ms.saturating_add(timeout));
                if alert.ends_at_ms.is_none() && deadline <= now_ms {
                    alert.ends_at_ms = Some(deadline);
                }
            }
        }
    }

    /// Why each alert of group `id` is left out of notifications, if it
    /// is: inhibited, silenced, or firing in an acknowledged group.
    fn muting(
        &self,
        id: &GroupId,
        now_ms: i64,
    ) -> Option<BTreeMap<String, (RecordStatus, String)>> {
        let group = self.groups.get(id)?;
        let sources = if self.routing.inhibit_rules.is_empty() {
            BTreeMap::new()
        } else {
            self.firing()
        };
        let now = utc(now_ms);
        let acked = self.acks.get(&id.1).map(|a| {
            format!(
                "acknowledged by {} at {}: {}",
                a.by,
                utc(a.at_ms).to_rfc3339(),
                a.comment
            )
        });
        let mut out = BTreeMap::new();
        for (fp, a) in &group.alerts {
            let inhibitors = self.inhibited_by(&a.labels, &sources);
            let silences = self.silences.muting(&a.labels, now);
            let reason = if !inhibitors.is_empty() {
                (
                    RecordStatus::Inhibited,
                    format!("inhibited by {}", inhibitors.join(",")),
                )
            } else if !silences.is_empty() {
                (
                    RecordStatus::Silenced,
                    format!("silenced by {}", silences.join(",")),
                )
            } else if let Some(why) = self.depends.suppressed(fp, a.ends_at_ms.is_some()) {
                (RecordStatus::Suppressed, why.to_string())
            } else if let (None, Some(ack)) = (a.ends_at_ms, &acked) {
                (RecordStatus::Acknowledged, ack.clone())
            } else {
                continue;
            };
            out.insert(fp.clone(), reason);
        }
        Some(out)
    }

    fn flush(&mut self, id: &GroupId, now_ms: i64, jobs: &mut Vec<Job>) {
        let Some(reasons) = self.muting(id, now_ms) else {
            return;
        };
        let route_idx = id.0;
        let key = id.1.as_str();
        let route = &self.routing.routes[route_idx];
        let repeat_interval_ms = ms(route.repeat_interval);
        // A muted route (time intervals) sends nothing and records nothing,
        // so what is due goes out at the first flush after the mute ends.
        let route_muted = self.routing.muted(route_idx, utc(now_ms));
        let Some(group) = self.groups.get_mut(id) else {
            return;
        };
        group.next_flush_ms = now_ms.saturating_add(ms(route.group_interval).max(1));
        for (i, target) in self.targets.iter().enumerate() {
            if route_muted
                || route
                    .receiver
                    .as_ref()
                    .is_some_and(|r| *r != target.receiver)
            {
                continue;
            }
            let slot = (i, key.to_string());
            let told = self.nflog.get(&slot);
            // Muted alerts are left out, as if absent; but a resolved alert
            // this target was told fired is always sent, so its resolution
            // closes what the firing opened (a PagerDuty incident), even
            // when it resolved while silenced, inhibited or acknowledged.
            let muted = |fp: &String, a: &Tracked| {
                reasons.contains_key(fp)
                    && !(a.ends_at_ms.is_some() && told.is_some_and(|t| t.firing.contains(fp)))
            };
            let pick = |want_firing: bool| -> BTreeSet<String> {
                group
                    .alerts
                    .iter()
                    .filter(|(fp, a)| a.ends_at_ms.is_none() == want_firing && !muted(fp, a))
                    .map(|(fp, _)| fp.clone())
                    .collect()
            };
            let firing = pick(true);
            let resolved = pick(false);
            let muted_firing: BTreeSet<String> = group
                .alerts
                .iter()
                .filter(|(fp, a)| a.ends_at_ms.is_none() && reasons.contains_key(*fp))
                .map(|(fp, _)| fp.clone())
                .collect();
            // Each muting is recorded once, when it starts.
            let mut fresh: BTreeMap<RecordStatus, (Vec<String>, BTreeSet<&str>)> = BTreeMap::new();
            for fp in muted_firing.difference(&group.muted_seen[i]) {
                if let Some((status, detail)) = reasons.get(fp) {
                    let entry = fresh.entry(*status).or_default();
                    entry.0.push(fp.clone());
                    entry.1.insert(detail);
                }
            }
            for (status, (alerts, details)) in fresh {
                let reason = match status {
                    RecordStatus::Suppressed => "dependency",
                    other => other.as_str(),
                };
                crate::metrics::NOTIFICATIONS_SUPPRESSED
                    .with_label_values(&[reason])
                    .inc_by(alerts.len() as u64);
                self.records.push(Record {
                    at_ms: now_ms,
                    status,
                    receiver: target.receiver.clone(),
                    integration: target.integration.to_string(),
                    group_key: key.to_string(),
                    group_status: GroupStatus::Firing,
                    alerts,
                    attempt: 0,
                    idempotency_key: String::new(),
                    detail: Some(details.into_iter().collect::<Vec<_>>().join("; ")),
                });
            }
            let needs = group.failed[i]
                || group.flap_news
                || needs_update(
                    told,
                    &firing,
                    &resolved,
                    target.send_resolved,
                    repeat_interval_ms,
                    now_ms,
                );
            let still_told: BTreeSet<String> = told
                .map(|t| t.firing.intersection(&muted_firing).cloned().collect())
                .unwrap_or_default();
            group.muted_seen[i] = muted_firing;
            if !needs || self.standby {
                continue;
            }
            let mut alerts: Vec<NotifiedAlert> = group
                .alerts
                .iter()
                .filter(|(fp, a)| !muted(fp, a) && (target.send_resolved || a.ends_at_ms.is_none()))
                .map(|(fp, a)| NotifiedAlert {
                    status: if a.ends_at_ms.is_some() {
                        GroupStatus::Resolved
                    } else {
                        GroupStatus::Firing
                    },
                    labels: a.labels.clone(),
                    annotations: self.depends.annotate(
                        fp,
                        a.ends_at_ms.is_none(),
                        match self.flaps.changes(fp) {
                            Some(n) => a
                                .annotations
                                .clone()
                                .with("flapping", "true")
                                .with("flap_changes", n.to_string()),
                            None => a.annotations.clone(),
                        },
                    ),
                    starts_at_ms: a.starts_at_ms,
                    ends_at_ms: a.ends_at_ms,
                    generator_url: a.generator_url.clone(),
                    fingerprint: fp.clone(),
                })
                .collect();
            if alerts.is_empty() {
                continue;
            }
            group.failed[i] = false;
            // Muted alerts the target was told fire stay in its log: their
            // resolution is still owed.
            let mut logged_firing = firing.clone();
            logged_firing.extend(still_told);
            self.nflog.insert(
                slot,
                LogEntry {
                    firing: logged_firing,
                    resolved: resolved.clone(),
                    at_ms: now_ms,
                },
            );
            self.dirty = true;
            alerts.sort_by_key(|a| a.status == GroupStatus::Resolved);
            let incident = self.incidents.hint_for(&alerts, now_ms);
            jobs.push(Job {
                target: i,
                notification: Notification {
                    receiver: target.receiver.clone(),
                    group_key: key.to_string(),
                    status: if firing.is_empty() {
                        GroupStatus::Resolved
                    } else {
                        GroupStatus::Firing
                    },
                    group_labels: group.labels.clone(),
                    alerts,
                    external_url: self.external_url.clone(),
                    notified_at_ms: now_ms,
                    incident,
                },
            });
        }
        group.flap_news = false;
        // Resolved alerts have now been notified (or skipped): forget them,
        // and the group once it is empty, with its log and acknowledgement.
        // A standby keeps, for a while, those whose resolution the leader
        // still owes a target (told firing, not yet told resolved), to send
        // it if it takes over.
        let keep_ms = self
            .resolve_timeout_ms
            .max(ms(route.group_interval).saturating_mul(2));
        let (standby, targets, nflog) = (self.standby, &self.targets, &self.nflog);
        let owed = |fp: &String| {
            targets.iter().enumerate().any(|(i, t)| {
                t.send_resolved
                    && nflog
                        .get(&(i, key.to_string()))
                        .is_some_and(|e| e.firing.contains(fp))
            })
        };
        group.alerts.retain(|fp, a| match a.ends_at_ms {
            None => true,
            Some(end) => standby && now_ms.saturating_sub(end) < keep_ms && owed(fp),
        });
        if group.alerts.is_empty() {
            self.groups.remove(id);
            self.nflog.retain(|(_, k), _| k != key);
            self.acks.remove(key);
            self.dirty = true;
        }
    }
}

/// Alertmanager's rule for whether a target must hear about a group again.
fn needs_update(
    entry: Option<&LogEntry>,
    firing: &BTreeSet<String>,
    resolved: &BTreeSet<String>,
    send_resolved: bool,
    repeat_ms: i64,
    now_ms: i64,
) -> bool {
    let Some(entry) = entry else {
        // Never notified: only if something fires.
        return !firing.is_empty();
    };
    if !firing.is_subset(&entry.firing) {
        return true;
    }
    if firing.is_empty() {
        // All resolved: tell the target if it was told something fired.
        return !entry.firing.is_empty();
    }
    if send_resolved && !resolved.is_subset(&entry.resolved) {
        return true;
    }
    now_ms.saturating_sub(entry.at_ms) >= repeat_ms
}

#[cfg(test)]
mod tests;
