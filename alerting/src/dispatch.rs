//! Grouping, timing and delivery, with Alertmanager's semantics.
//!
//! [`Dispatcher`] is the synchronous core: it is fed alerts and ticked with
//! the current time (ms since epoch) and answers with the notifications due,
//! which makes its timing testable without sleeping. [`run`] wires it to the
//! bus, a one-second ticker and the notifiers, with retries.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use vigie_model::{Alert, AlertState, Labels};

use crate::config::AlertingConfig;
use crate::metrics::{ALERT_GROUPS, DECODE_ERRORS, NOTIFICATIONS, NOTIFICATIONS_FAILED};
use crate::notify::email::EmailNotifier;
use crate::notify::pagerduty::PagerdutyNotifier;
use crate::notify::slack::SlackNotifier;
use crate::notify::webhook::WebhookNotifier;
use crate::notify::{GroupStatus, Notification, NotifiedAlert, Notifier};
use crate::outbox::{Outbox, OutboxEntry};
use crate::route::Routing;
use crate::silence::Silences;
use crate::{AlertingError, NotifyError};

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
    log: Vec<Option<LogEntry>>,
    failed: Vec<bool>,
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
        }
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
        let ends_at_ms = match alert.state {
            AlertState::Pending => return,
            AlertState::Firing => None,
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
        for route in self.routing.matching(&alert.labels) {
            let node = &self.routing.routes[route];
            let group_labels = node.group_labels(&alert.labels);
            let id = (route, format!("{}:{group_labels}", node.key));
            if ends_at_ms.is_some() && !self.groups.contains_key(&id) {
                debug!(group = %id.1, %fingerprint, "resolved alert for an unknown group ignored");
                continue;
            }
            let targets = self.targets.len();
            let group_wait_ms = ms(node.group_wait);
            let group = self.groups.entry(id).or_insert_with(|| Group {
                labels: group_labels,
                alerts: BTreeMap::new(),
                next_flush_ms: now_ms.saturating_add(group_wait_ms),
                log: vec![None; targets],
                failed: vec![false; targets],
            });
            group.alerts.insert(fingerprint.clone(), tracked.clone());
        }
    }

    /// Applies `resolve_timeout` and flushes the groups that are due.
    pub fn tick(&mut self, now_ms: i64) -> Vec<Job> {
        self.silences.gc(utc(now_ms));
        self.expire(now_ms);
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
        let keys: Vec<GroupId> = self.groups.keys().cloned().collect();
        let mut jobs = Vec::new();
        for id in keys {
            self.flush(&id, now_ms, &mut jobs);
        }
        jobs
    }

    /// Records that a job for `group_key` and `target` finally failed, so
    /// the group is notified again at its next flush.
    pub fn mark_failed(&mut self, group_key: &str, target: usize) {
        for ((_, key), group) in self.groups.iter_mut() {
            if key == group_key
                && let Some(flag) = group.failed.get_mut(target)
            {
                *flag = true;
            }
        }
    }

    fn expire(&mut self, now_ms: i64) {
        let timeout = self.resolve_timeout_ms;
        for group in self.groups.values_mut() {
            for alert in group.alerts.values_mut() {
                let deadline = alert
                    .deadline_ms
                    .unwrap_or_else(|| alert.updated_ms.saturating_add(timeout));
                if alert.ends_at_ms.is_none() && deadline <= now_ms {
                    alert.ends_at_ms = Some(deadline);
                }
            }
        }
    }

    fn flush(&mut self, id: &GroupId, now_ms: i64, jobs: &mut Vec<Job>) {
        let sources = if self.routing.inhibit_rules.is_empty() {
            BTreeMap::new()
        } else {
            self.firing()
        };
        let now = utc(now_ms);
        // Silenced and inhibited alerts are left out of notifications, as
        // if absent.
        let muted: BTreeSet<String> = match self.groups.get(id) {
            Some(group) => group
                .alerts
                .iter()
                .filter(|(_, a)| {
                    !self.silences.muting(&a.labels, now).is_empty()
                        || !self.inhibited_by(&a.labels, &sources).is_empty()
                })
                .map(|(fp, _)| fp.clone())
                .collect(),
            None => return,
        };
        let route_idx = id.0;
        let key = id.1.as_str();
        let route = &self.routing.routes[route_idx];
        let repeat_interval_ms = ms(route.repeat_interval);
        // A muted route (time intervals) sends nothing and records nothing,
        // so what is due goes out at the first flush after the mute ends.
        let route_muted = self.routing.muted(route_idx, now);
        let Some(group) = self.groups.get_mut(id) else {
            return;
        };
        group.next_flush_ms = now_ms.saturating_add(ms(route.group_interval).max(1));
        let firing: BTreeSet<String> = group
            .alerts
            .iter()
            .filter(|(fp, a)| a.ends_at_ms.is_none() && !muted.contains(*fp))
            .map(|(fp, _)| fp.clone())
            .collect();
        let resolved: BTreeSet<String> = group
            .alerts
            .iter()
            .filter(|(fp, a)| a.ends_at_ms.is_some() && !muted.contains(*fp))
            .map(|(fp, _)| fp.clone())
            .collect();
        for (i, target) in self.targets.iter().enumerate() {
            if route_muted
                || route
                    .receiver
                    .as_ref()
                    .is_some_and(|r| *r != target.receiver)
            {
                continue;
            }
            let needs = group.failed[i]
                || needs_update(
                    group.log[i].as_ref(),
                    &firing,
                    &resolved,
                    target.send_resolved,
                    repeat_interval_ms,
                    now_ms,
                );
            if !needs {
                continue;
            }
            group.failed[i] = false;
            group.log[i] = Some(LogEntry {
                firing: firing.clone(),
                resolved: resolved.clone(),
                at_ms: now_ms,
            });
            let mut alerts: Vec<NotifiedAlert> = group
                .alerts
                .iter()
                .filter(|(fp, a)| {
                    !muted.contains(*fp) && (target.send_resolved || a.ends_at_ms.is_none())
                })
                .map(|(fp, a)| NotifiedAlert {
                    status: if a.ends_at_ms.is_some() {
                        GroupStatus::Resolved
                    } else {
                        GroupStatus::Firing
                    },
                    labels: a.labels.clone(),
                    annotations: a.annotations.clone(),
                    starts_at_ms: a.starts_at_ms,
                    ends_at_ms: a.ends_at_ms,
                    generator_url: a.generator_url.clone(),
                    fingerprint: fp.clone(),
                })
                .collect();
            if alerts.is_empty() {
                continue;
            }
            alerts.sort_by_key(|a| a.status == GroupStatus::Resolved);
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
                },
            });
        }
        // Resolved alerts have now been notified (or skipped): forget them,
        // and the group once it is empty.
        group.alerts.retain(|_, a| a.ends_at_ms.is_none());
        if group.alerts.is_empty() {
            self.groups.remove(id);
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

/// A notifier with the name of the receiver it belongs to.
pub type ReceiverNotifier = (String, Arc<dyn Notifier>);

/// One notifier per integration of every receiver, in configuration order.
pub fn build_notifiers(config: &AlertingConfig) -> Result<Vec<ReceiverNotifier>, AlertingError> {
    let mut out: Vec<ReceiverNotifier> = Vec::new();
    for receiver in &config.receivers {
        let fail = |integration: &'static str, e: NotifyError| AlertingError::Notifier {
            receiver: receiver.name.clone(),
            integration,
            message: e.to_string(),
        };
        for hook in &receiver.webhook_configs {
            let n = WebhookNotifier::new(hook).map_err(|e| fail("webhook", e))?;
            out.push((receiver.name.clone(), Arc::new(n)));
        }
        for mail in &receiver.email_configs {
            let n = EmailNotifier::new(mail).map_err(|e| fail("email", e))?;
            out.push((receiver.name.clone(), Arc::new(n)));
        }
        for pd in &receiver.pagerduty_configs {
            let n = PagerdutyNotifier::new(pd).map_err(|e| fail("pagerduty", e))?;
            out.push((receiver.name.clone(), Arc::new(n)));
        }
        for slack in &receiver.slack_configs {
            let n = SlackNotifier::new(slack).map_err(|e| fail("slack", e))?;
            out.push((receiver.name.clone(), Arc::new(n)));
        }
    }
    Ok(out)
}

/// Now, in ms since the epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The alerting state shared by the run loop and the HTTP API: the
/// dispatcher (alerts, groups, silences) behind a mutex, held only for
/// short synchronous sections (never across an `.await`).
#[derive(Debug)]
pub struct Shared {
    dispatcher: Mutex<Dispatcher>,
    receivers: Vec<String>,
    started_ms: i64,
    outbox: Option<Outbox>,
}

impl Shared {
    /// Shares `dispatcher`; `receivers` are the receiver names (in
    /// configuration order) every alert goes to.
    pub fn new(dispatcher: Dispatcher, receivers: Vec<String>) -> Arc<Self> {
        Self::with_outbox(dispatcher, receivers, None)
    }

    /// [`Shared::new`], persisting notifications in `outbox` (if any)
    /// before they are sent; the run loop re-sends its pending entries
    /// when it starts.
    pub fn with_outbox(
        dispatcher: Dispatcher,
        receivers: Vec<String>,
        outbox: Option<Outbox>,
    ) -> Arc<Self> {
        Arc::new(Self {
            dispatcher: Mutex::new(dispatcher),
            receivers,
            started_ms: now_ms(),
            outbox,
        })
    }

    /// The durable outbox, if notifications are persisted.
    pub fn outbox(&self) -> Option<&Outbox> {
        self.outbox.as_ref()
    }

    /// Locks the dispatcher (a poisoned lock is taken over: the
    /// dispatcher's state stays consistent between calls).
    pub fn lock(&self) -> MutexGuard<'_, Dispatcher> {
        self.dispatcher
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The receiver names.
    pub fn receivers(&self) -> &[String] {
        &self.receivers
    }

    /// When this state was created (ms since epoch).
    pub fn started_ms(&self) -> i64 {
        self.started_ms
    }
}

/// Receiver names: those of `config`, then any other named by `notifiers`.
pub fn receiver_names(config: &AlertingConfig, notifiers: &[ReceiverNotifier]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let all = config
        .receivers
        .iter()
        .map(|r| &r.name)
        .chain(notifiers.iter().map(|(n, _)| n));
    for name in all {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
}

/// The targets of `notifiers`, in order.
pub fn targets_of(notifiers: &[ReceiverNotifier]) -> Vec<Target> {
    notifiers
        .iter()
        .map(|(receiver, n)| Target {
            receiver: receiver.clone(),
            integration: n.integration(),
            send_resolved: n.send_resolved(),
        })
        .collect()
}

/// Consumes `vigie.alerts` from `subscriber` and notifies every receiver
/// of `config` until `shutdown` is cancelled, then flushes once more.
pub async fn run(
    config: AlertingConfig,
    subscriber: Box<dyn vigie_bus::Subscriber>,
    shutdown: CancellationToken,
) -> Result<(), AlertingError> {
    let problems = config.problems();
    if !problems.is_empty() {
        return Err(AlertingError::Config(problems));
    }
    let resolved = config.resolve()?;
    let notifiers = build_notifiers(&resolved.config)?;
    run_with_notifiers(config, notifiers, subscriber, shutdown).await
}

/// [`run`] with notifiers built by the caller (custom or test notifiers),
/// in the order [`build_notifiers`] gives for the resolved configuration.
pub async fn run_with_notifiers(
    config: AlertingConfig,
    notifiers: Vec<ReceiverNotifier>,
    subscriber: Box<dyn vigie_bus::Subscriber>,
    shutdown: CancellationToken,
) -> Result<(), AlertingError> {
    let resolved = config.resolve()?;
    log_warnings(&resolved.warnings);
    let config = resolved.config;
    let dispatcher = Dispatcher::with_routing(&config, resolved.routing, targets_of(&notifiers));
    let state = Shared::new(dispatcher, receiver_names(&config, &notifiers));
    run_shared(state, &config, notifiers, subscriber, shutdown).await
}

/// Logs what an `alertmanager.yml` sets that Vigie does not honour exactly.
pub fn log_warnings(warnings: &[String]) {
    for w in warnings {
        warn!(warning = %w, "alertmanager_config");
    }
}

/// The run loop over a [`Shared`] state that the HTTP API also uses:
/// consumes `vigie.alerts`, ticks the dispatcher and sends what is due
/// with `notifiers` (whose order matches the dispatcher's targets).
pub async fn run_shared(
    state: Arc<Shared>,
    config: &AlertingConfig,
    notifiers: Vec<ReceiverNotifier>,
    mut subscriber: Box<dyn vigie_bus::Subscriber>,
    shutdown: CancellationToken,
) -> Result<(), AlertingError> {
    let retry_window = config.group_interval;
    let mut tasks: JoinSet<(String, usize, bool)> = JoinSet::new();
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut bus_open = true;
    let outbox = state.outbox().cloned();
    info!(
        receivers = config.receivers.len(),
        integrations = notifiers.len(),
        outbox = outbox.is_some(),
        "alerting started"
    );
    if let Some(outbox) = &outbox {
        replay_outbox(
            outbox,
            &mut tasks,
            &notifiers,
            Instant::now() + retry_window,
            &shutdown,
        );
    }

    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                match done {
                    Ok((key, target, false)) => {
                        state.lock().mark_failed(&key, target);
                    }
                    Ok(_) => {}
                    Err(e) => warn!(error = %e, "notification task failed"),
                }
            }
            _ = ticker.tick() => {
                let (jobs, groups) = {
                    let mut d = state.lock();
                    (d.tick(now_ms()), d.group_count())
                };
                for job in jobs {
                    let deadline = Instant::now() + retry_window;
                    spawn_job(&mut tasks, &notifiers, job, deadline, shutdown.clone(), outbox.as_ref(), false);
                }
                ALERT_GROUPS.set(i64::try_from(groups).unwrap_or(i64::MAX));
            }
            received = subscriber.recv(), if bus_open => match received {
                Ok(Some(delivery)) => {
                    let message = &delivery.message;
                    if message.topic == vigie_model::topics::ALERTS {
                        match vigie_model::codec::decode_alert(&message.payload) {
                            Ok(alert) => {
                                state.lock().receive(&alert, now_ms());
                            }
                            Err(e) => {
                                DECODE_ERRORS.inc();
                                warn!(topic = %message.topic, partition = delivery.position.partition,
                                      offset = delivery.position.offset, error = %e,
                                      "undecodable alert skipped");
                            }
                        }
                    } else {
                        debug!(topic = %message.topic, "message on an unexpected topic skipped");
                    }
                    if let Err(e) = subscriber.commit(&message.topic, delivery.position).await {
                        warn!(topic = %message.topic, error = %e, "commit failed");
                    }
                }
                Ok(None) => {
                    info!("bus closed; alerting keeps flushing until shutdown");
                    bus_open = false;
                }
                Err(e) => {
                    warn!(error = %e, "receiving alerts failed; retrying in 1s");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = shutdown.cancelled() => {}
                    }
                }
            },
        }
    }

    // Final flush: one attempt per notification, bounded in time. Retries
    // still running stop at their next back-off (the token is cancelled).
    let final_jobs = state.lock().flush_all(now_ms());
    info!(
        notifications = final_jobs.len(),
        "alerting stopping: final flush"
    );
    let now = Instant::now();
    for job in final_jobs {
        spawn_job(
            &mut tasks,
            &notifiers,
            job,
            now,
            CancellationToken::new(),
            outbox.as_ref(),
            true,
        );
    }
    let drained = tokio::time::timeout(FINAL_FLUSH_TIMEOUT, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            left = tasks.len(),
            "final flush timed out; abandoning notifications"
        );
        tasks.abort_all();
    }
    ALERT_GROUPS.set(0);
    Ok(())
}

/// Re-sends what the outbox holds from a previous run: the newest entry
/// per target and group whose target still exists. Entries that fail again
/// stay for the next start.
fn replay_outbox(
    outbox: &Outbox,
    tasks: &mut JoinSet<(String, usize, bool)>,
    notifiers: &[ReceiverNotifier],
    deadline: Instant,
    shutdown: &CancellationToken,
) {
    let valid = |e: &OutboxEntry| {
        notifiers
            .get(e.target)
            .is_some_and(|(r, n)| *r == e.receiver && n.integration() == e.integration)
    };
    match outbox.replay(valid) {
        Ok(entries) => {
            if !entries.is_empty() {
                info!(
                    notifications = entries.len(),
                    dir = %outbox.dir().display(),
                    "re-sending notifications pending in the outbox"
                );
            }
            for (_, entry) in entries {
                let job = Job {
                    target: entry.target,
                    notification: entry.notification,
                };
                spawn_job(
                    tasks,
                    notifiers,
                    job,
                    deadline,
                    shutdown.clone(),
                    Some(outbox),
                    true,
                );
            }
        }
        Err(error) => warn!(dir = %outbox.dir().display(), %error,
                            "reading the outbox failed; pending notifications not re-sent"),
    }
}

/// Sends `job` in a task. With an outbox, the notification is persisted
/// first and removed once delivered; after a failure it is removed too
/// (the dispatcher notifies the group again) unless `keep_on_failure`
/// or the run is stopping, in which case the next start re-sends it.
fn spawn_job(
    tasks: &mut JoinSet<(String, usize, bool)>,
    notifiers: &[ReceiverNotifier],
    job: Job,
    deadline: Instant,
    cancel: CancellationToken,
    outbox: Option<&Outbox>,
    keep_on_failure: bool,
) {
    let Some((receiver, notifier)) = notifiers.get(job.target) else {
        return;
    };
    let notifier = Arc::clone(notifier);
    let persisted = outbox.and_then(|outbox| {
        let entry = OutboxEntry {
            target: job.target,
            receiver: receiver.clone(),
            integration: notifier.integration().to_string(),
            created_ms: now_ms(),
            notification: job.notification.clone(),
        };
        match outbox.put(&entry) {
            Ok(key) => Some((outbox.clone(), key)),
            Err(error) => {
                warn!(dir = %outbox.dir().display(), %error, group = %job.notification.group_key,
                      "persisting a notification failed; sending it anyway");
                None
            }
        }
    });
    tasks.spawn(async move {
        let ok = deliver(notifier.as_ref(), &job.notification, deadline, &cancel).await;
        if let Some((outbox, key)) = persisted
            && (ok || !(keep_on_failure || cancel.is_cancelled()))
            && let Err(error) = outbox.remove(&key)
        {
            warn!(dir = %outbox.dir().display(), %error, %key, "removing a sent notification from the outbox failed");
        }
        (job.notification.group_key, job.target, ok)
    });
}

/// Sends `n`, retrying retriable failures with exponential back-off
/// ([`RETRY_INITIAL`] doubling up to [`RETRY_MAX`]) while the next attempt
/// would start before `deadline` and `cancel` is not cancelled.
/// Returns whether it was delivered.
pub async fn deliver(
    notifier: &dyn Notifier,
    n: &Notification,
    deadline: Instant,
    cancel: &CancellationToken,
) -> bool {
    let integration = notifier.integration();
    let mut backoff = RETRY_INITIAL;
    let mut attempt = 1u32;
    loop {
        match notifier.notify(n).await {
            Ok(()) => {
                NOTIFICATIONS
                    .with_label_values(&[n.receiver.as_str(), integration])
                    .inc();
                debug!(receiver = %n.receiver, integration, group = %n.group_key,
                       status = n.status.as_str(), alerts = n.alerts.len(), attempt, "notified");
                return true;
            }
            Err(error) => {
                NOTIFICATIONS_FAILED
                    .with_label_values(&[n.receiver.as_str(), integration, error.reason()])
                    .inc();
                let retry = error.retriable()
                    && Instant::now() + backoff < deadline
                    && !cancel.is_cancelled();
                warn!(receiver = %n.receiver, integration, %error, group = %n.group_key,
                      attempt, retry, "notification failed");
                if !retry {
                    return false;
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = cancel.cancelled() => return false,
                }
                backoff = (backoff * 2).min(RETRY_MAX);
                attempt += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1000;
    const M: i64 = 60 * S;
    const T0: i64 = 1_700_000_000_000;

    fn config() -> AlertingConfig {
        AlertingConfig {
            group_wait: Duration::from_secs(30),
            group_interval: Duration::from_secs(300),
            repeat_interval: Duration::from_secs(3600),
            resolve_timeout: Duration::from_secs(300),
            ..AlertingConfig::default()
        }
    }

    fn targets(send_resolved: bool) -> Vec<Target> {
        vec![Target {
            receiver: "ops".into(),
            integration: "test",
            send_resolved,
        }]
    }

    fn alert(name: &str, instance: &str, state: AlertState, at: i64) -> Alert {
        Alert {
            labels: Labels::new()
                .with("alertname", name)
                .with("instance", instance),
            annotations: Labels::new().with("summary", format!("{name} on {instance}")),
            state,
            active_at_ms: at - M,
            fired_at_ms: Some(at),
            resolved_at_ms: (state == AlertState::Resolved).then_some(at),
            value: 1.0,
            generator_url: "http://vigie/graph".into(),
        }
    }

    fn fingerprints(job: &Job) -> Vec<(String, GroupStatus)> {
        job.notification
            .alerts
            .iter()
            .map(|a| (a.labels.get("instance").unwrap_or("").to_string(), a.status))
            .collect()
    }

    #[test]
    fn group_wait_is_respected_and_same_group_alerts_arrive_together() {
        let mut d = Dispatcher::new(&config(), targets(true));
        d.receive(&alert("HighLatency", "a", AlertState::Firing, T0), T0);
        d.receive(
            &alert("HighLatency", "b", AlertState::Firing, T0),
            T0 + 10 * S,
        );
        assert!(d.tick(T0 + 29 * S).is_empty(), "before group_wait");
        let jobs = d.tick(T0 + 30 * S);
        assert_eq!(jobs.len(), 1);
        let n = &jobs[0].notification;
        assert_eq!(n.group_key, "{}:{alertname=\"HighLatency\"}");
        assert_eq!(
            n.group_labels,
            Labels::new().with("alertname", "HighLatency")
        );
        assert_eq!(n.status, GroupStatus::Firing);
        assert_eq!(n.receiver, "ops");
        assert_eq!(
            fingerprints(&jobs[0]),
            vec![
                ("a".into(), GroupStatus::Firing),
                ("b".into(), GroupStatus::Firing)
            ]
        );
        assert_eq!(n.alerts[0].starts_at_ms, T0);
        assert_eq!(n.alerts[0].ends_at_ms, None);
    }

    #[test]
    fn different_groups_are_notified_separately() {
        let mut d = Dispatcher::new(&config(), targets(true));
        d.receive(&alert("A", "x", AlertState::Firing, T0), T0);
        d.receive(&alert("B", "x", AlertState::Firing, T0), T0);
        assert_eq!(d.group_count(), 2);
        assert_eq!(d.tick(T0 + 30 * S).len(), 2);
    }

    #[test]
    fn group_by_all_labels() {
        let mut c = config();
        c.group_by = vec!["...".into()];
        let mut d = Dispatcher::new(&c, targets(true));
        d.receive(&alert("A", "x", AlertState::Firing, T0), T0);
        d.receive(&alert("A", "y", AlertState::Firing, T0), T0);
        assert_eq!(d.group_count(), 2);
    }

    #[test]
    fn new_alert_in_group_waits_for_group_interval() {
        let mut d = Dispatcher::new(&config(), targets(true));
        d.receive(&alert("A", "a", AlertState::Firing, T0), T0);
        assert_eq!(d.tick(T0 + 30 * S).len(), 1);
        d.receive(&alert("A", "b", AlertState::Firing, T0 + M), T0 + M);
        assert!(
            d.tick(T0 + 30 * S + 4 * M).is_empty(),
            "before group_interval"
        );
        let jobs = d.tick(T0 + 30 * S + 5 * M);
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].notification.alerts.len(), 2);
    }

    #[test]
    fn resolved_notification_then_group_dropped() {
        let mut d = Dispatcher::new(&config(), targets(true));
        d.receive(&alert("A", "a", AlertState::Firing, T0), T0);
        assert_eq!(d.tick(T0 + 30 * S).len(), 1);
        d.receive(
            &alert("A", "a", AlertState::Resolved, T0 + 2 * M),
            T0 + 2 * M,
        );
        assert!(d.tick(T0 + 3 * M).is_empty(), "waits for group_interval");
        let jobs = d.tick(T0 + 30 * S + 5 * M);
        assert_eq!(jobs.len(), 1);
        let n = &jobs[0].notification;
        assert_eq!(n.status, GroupStatus::Resolved);
        assert_eq!(n.alerts[0].status, GroupStatus::Resolved);
        assert_eq!(n.alerts[0].ends_at_ms, Some(T0 + 2 * M));
        assert_eq!(d.group_count(), 0);
        assert!(d.tick(T0 + 2 * 3600 * S).is_empty());
    }

    #[test]
    fn partial_resolution_is_sent_when_send_resolved() {
        let mut d = Dispatcher::new(&config(), targets(true));
        d.receive(&alert("A", "a", AlertState::Firing, T0), T0);
        d.receive(&alert("A", "b", AlertState::Firing, T0), T0);
        assert_eq!(d.tick(T0 + 30 * S).len(), 1);
        d.receive(&alert("A", "b", AlertState::Resolved, T0 + M), T0 + M);
        d.receive(&alert("A", "a", AlertState::Firing, T0), T0 + 4 * M);
        let jobs = d.tick(T0 + 30 * S + 5 * M);
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].notification.status, GroupStatus::Firing);
        assert_eq!(
            fingerprints(&jobs[0]),
            vec![
                ("a".into(), GroupStatus::Firing),
                ("b".into(), GroupStatus::Resolved)
            ]
        );
        assert_eq!(
            d.alert_count(),
            1,
            "resolved alert forgotten after the flush"
        );
    }

    #[test]
    fn send_resolved_false_skips_resolved_and_still_drops_group() {
        let mut d = Dispatcher::new(&config(), targets(false));
        d.receive(&alert("A", "a", AlertState::Firing, T0), T0);
        assert_eq!(d.tick(T0 + 30 * S).len(), 1);
        d.receive(&alert("A", "a", AlertState::Resolved, T0 + M), T0 + M);
        assert!(d.tick(T0 + 30 * S + 5 * M).is_empty());
        assert_eq!(d.group_count(), 0);
    }

    #[test]
    fn repeat_after_repeat_interval_not_before() {
        let mut d = Dispatcher::new(&config(), targets(true));
        d.receive(&alert("A", "a", AlertState::Firing, T0), T0);
        let first = T0 + 30 * S;
        assert_eq!(d.tick(first).len(), 1);
        // The analyzer re-sends every minute; each group_interval tick
        // before repeat_interval stays quiet.
        let mut t = first;
        let mut sent = 0;
        while t < first + 3600 * S - 5 * M {
            t += M;
            d.receive(&alert("A", "a", AlertState::Firing, T0), t);
            sent += d.tick(t).len();
        }
        assert_eq!(sent, 0, "no repeat before repeat_interval");
        let mut repeat_at = None;
        while repeat_at.is_none() && t < first + 2 * 3600 * S {
            t += M;
            d.receive(&alert("A", "a", AlertState::Firing, T0), t);
            if !d.tick(t).is_empty() {
                repeat_at = Some(t);
            }
        }
        let repeat_at = repeat_at.expect("repeated");
        assert!(repeat_at >= first + 3600 * S, "{}", repeat_at - first);
        assert!(
            repeat_at <= first + 3600 * S + 5 * M,
            "{}",
            repeat_at - first
        );
    }

    #[test]
    fn resolve_timeout_resolves_stale_alerts() {
        let mut d = Dispatcher::new(&config(), targets(true));
        d.receive(&alert("A", "a", AlertState::Firing, T0), T0);
        assert_eq!(d.tick(T0 + 30 * S).len(), 1);
        // Not re-sent: at T0 + 5m it times out; the next flush is at 5m30s.
        assert!(d.tick(T0 + 5 * M).is_empty());
        let jobs = d.tick(T0 + 30 * S + 5 * M);
        assert_eq!(jobs.len(), 1);
        let n = &jobs[0].notification;
        assert_eq!(n.status, GroupStatus::Resolved);
        assert_eq!(n.alerts[0].ends_at_ms, Some(T0 + 5 * M));
        assert_eq!(d.group_count(), 0);
    }

    #[test]
    fn refreshed_alert_does_not_time_out() {
        let mut d = Dispatcher::new(&config(), targets(true));
        d.receive(&alert("A", "a", AlertState::Firing, T0), T0);
        assert_eq!(d.tick(T0 + 30 * S).len(), 1);
        d.receive(&alert("A", "a", AlertState::Firing, T0), T0 + 4 * M);
        assert!(d.tick(T0 + 30 * S + 5 * M).is_empty());
        assert_eq!(d.group_count(), 1);
    }

    #[test]
    fn failed_delivery_is_resent_at_next_flush() {
        let mut d = Dispatcher::new(&config(), targets(true));
        d.receive(&alert("A", "a", AlertState::Firing, T0), T0);
        let jobs = d.tick(T0 + 30 * S);
        d.mark_failed(&jobs[0].notification.group_key, jobs[0].target);
        assert_eq!(d.tick(T0 + 30 * S + 5 * M).len(), 1);
        assert!(d.tick(T0 + 30 * S + 10 * M).is_empty());
    }

    #[test]
    fn pending_and_unknown_resolved_alerts_are_ignored() {
        let mut d = Dispatcher::new(&config(), targets(true));
        d.receive(&alert("A", "a", AlertState::Pending, T0), T0);
        d.receive(&alert("A", "b", AlertState::Resolved, T0), T0);
        assert_eq!(d.group_count(), 0);
    }

    #[test]
    fn fired_and_resolved_within_group_wait_is_not_notified() {
        let mut d = Dispatcher::new(&config(), targets(true));
        d.receive(&alert("A", "a", AlertState::Firing, T0), T0);
        d.receive(
            &alert("A", "a", AlertState::Resolved, T0 + 5 * S),
            T0 + 5 * S,
        );
        assert!(d.tick(T0 + 30 * S).is_empty());
        assert_eq!(d.group_count(), 0);
    }

    fn silence(d: &mut Dispatcher, name: &str, from: i64, to: i64) -> String {
        use crate::silence::{Matcher, PostableSilence};
        let p = PostableSilence {
            id: None,
            matchers: vec![Matcher::new("alertname", name, false, true).expect("matcher")],
            starts_at: utc(from),
            ends_at: utc(to),
            created_by: "t".into(),
            comment: "c".into(),
        };
        d.silences_mut().set(p, utc(from)).expect("silence")
    }

    #[test]
    fn silenced_alerts_are_not_notified_until_the_silence_ends() {
        let mut d = Dispatcher::new(&config(), targets(true));
        let id = silence(&mut d, "A", T0, T0 + 10 * M);
        d.receive(&alert("A", "a", AlertState::Firing, T0), T0);
        d.receive(&alert("B", "a", AlertState::Firing, T0), T0);
        let jobs = d.tick(T0 + 30 * S);
        assert_eq!(jobs.len(), 1, "only the unsilenced group");
        assert_eq!(
            jobs[0].notification.group_labels.get("alertname"),
            Some("B")
        );
        let held = d.alerts(T0 + 30 * S);
        let a = held
            .iter()
            .find(|h| h.labels.get("alertname") == Some("A"))
            .expect("A held");
        assert_eq!(a.silenced_by, vec![id]);
        // Keep A fresh; its group flushes every 5 minutes, muted until 10m.
        d.receive(&alert("A", "a", AlertState::Firing, T0), T0 + 4 * M);
        d.receive(&alert("B", "a", AlertState::Firing, T0), T0 + 4 * M);
        assert!(d.tick(T0 + 30 * S + 5 * M).is_empty());
        d.receive(&alert("A", "a", AlertState::Firing, T0), T0 + 9 * M);
        d.receive(&alert("B", "a", AlertState::Firing, T0), T0 + 9 * M);
        let jobs = d.tick(T0 + 30 * S + 10 * M);
        assert_eq!(jobs.len(), 1, "notified once the silence expired");
        assert_eq!(
            jobs[0].notification.group_labels.get("alertname"),
            Some("A")
        );
    }

    #[test]
    fn posted_alert_resolves_at_its_end_or_when_already_ended() {
        let mut d = Dispatcher::new(&config(), targets(true));
        let a = alert("A", "a", AlertState::Firing, T0);
        d.receive_posted(&a, Some(T0 + 2 * M), T0);
        assert_eq!(d.tick(T0 + 30 * S).len(), 1);
        assert_eq!(d.alerts(T0 + M)[0].ends_at_ms, T0 + 2 * M);
        assert!(!d.alerts(T0 + M)[0].resolved);
        let jobs = d.tick(T0 + 30 * S + 5 * M);
        assert_eq!(jobs[0].notification.status, GroupStatus::Resolved);
        assert_eq!(jobs[0].notification.alerts[0].ends_at_ms, Some(T0 + 2 * M));
        // A past end on a new alert of an unknown group: nothing to tell.
        d.receive_posted(&a, Some(T0), T0 + 6 * M);
        assert_eq!(d.group_count(), 0);
    }

    fn routed(yaml: &str, receivers: &[&str]) -> Dispatcher {
        let loaded = crate::alertmanager::parse(yaml, "am.yml").expect("alertmanager.yml");
        let targets = receivers
            .iter()
            .map(|r| Target {
                receiver: (*r).into(),
                integration: "test",
                send_resolved: true,
            })
            .collect();
        Dispatcher::with_routing(&config(), loaded.routing, targets)
    }

    fn labelled(pairs: &[(&str, &str)]) -> Alert {
        let mut a = alert("A", "a", AlertState::Firing, T0);
        a.labels = pairs.iter().copied().collect();
        a
    }

    const TREE: &str = r#"
route:
  receiver: default
  group_by: [alertname]
  group_wait: 10s
  routes:
    - matchers: ['severity="critical"']
      receiver: pager
      group_wait: 1s
      continue: true
    - matchers: ['team="db"']
      receiver: db
      group_by: ['...']
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="warning"']
    equal: [instance]
receivers: [{name: default}, {name: pager}, {name: db}]
"#;

    #[test]
    fn routes_pick_receivers_timing_and_group_keys() {
        let mut d = routed(TREE, &["default", "pager", "db"]);
        d.receive(
            &labelled(&[
                ("alertname", "Down"),
                ("severity", "critical"),
                ("team", "db"),
            ]),
            T0,
        );
        d.receive(&labelled(&[("alertname", "Other")]), T0);
        assert_eq!(
            d.group_count(),
            3,
            "pager and db for the first, default for the second"
        );
        let early = d.tick(T0 + S);
        assert_eq!(early.len(), 1, "pager's group_wait is 1s");
        assert_eq!(early[0].notification.receiver, "pager");
        assert_eq!(
            early[0].notification.group_key,
            r#"{}/{severity="critical"}:{alertname="Down"}"#
        );
        let later = d.tick(T0 + 10 * S);
        let mut got: Vec<(String, String)> = later
            .iter()
            .map(|j| {
                (
                    j.notification.receiver.clone(),
                    j.notification.group_key.clone(),
                )
            })
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                (
                    "db".to_string(),
                    r#"{}/{team="db"}:{alertname="Down",severity="critical",team="db"}"#
                        .to_string()
                ),
                (
                    "default".to_string(),
                    r#"{}:{alertname="Other"}"#.to_string()
                ),
            ]
        );
    }

    #[test]
    fn inhibited_alerts_are_left_out_and_shown() {
        let mut d = routed(TREE, &["default", "pager", "db"]);
        let crit = labelled(&[
            ("alertname", "Down"),
            ("severity", "critical"),
            ("instance", "x"),
        ]);
        let warn_x = labelled(&[
            ("alertname", "Slow"),
            ("severity", "warning"),
            ("instance", "x"),
        ]);
        let warn_y = labelled(&[
            ("alertname", "Slow"),
            ("severity", "warning"),
            ("instance", "y"),
        ]);
        for a in [&crit, &warn_x, &warn_y] {
            d.receive(a, T0);
        }
        let jobs = d.tick(T0 + 10 * S);
        let slow: Vec<&Job> = jobs
            .iter()
            .filter(|j| j.notification.group_labels.get("alertname") == Some("Slow"))
            .collect();
        assert_eq!(slow.len(), 1);
        let instances: Vec<&str> = slow[0]
            .notification
            .alerts
            .iter()
            .filter_map(|a| a.labels.get("instance"))
            .collect();
        assert_eq!(instances, ["y"], "the warning on x is inhibited");
        let held = d.alerts(T0 + 10 * S);
        let x = held
            .iter()
            .find(|h| h.labels == warn_x.labels)
            .expect("held");
        assert_eq!(x.inhibited_by, [crit.fingerprint()]);
        // The critical one resolves: the warning on x is notified next.
        let mut resolved = crit.clone();
        resolved.state = AlertState::Resolved;
        resolved.resolved_at_ms = Some(T0 + M);
        d.receive(&resolved, T0 + M);
        let jobs = d.tick(T0 + 10 * S + 5 * M);
        let slow = jobs
            .iter()
            .find(|j| j.notification.group_labels.get("alertname") == Some("Slow"))
            .expect("Slow notified again");
        assert_eq!(slow.notification.alerts.len(), 2);
    }

    #[test]
    fn mute_and_active_time_intervals_hold_notifications() {
        let yaml = r#"
route:
  receiver: default
  routes:
    - matchers: ['team="a"']
      receiver: default
      mute_time_intervals: [always]
    - matchers: ['team="b"']
      receiver: default
      active_time_intervals: [long-ago]
time_intervals:
  - name: always
    time_intervals: [{years: ['2000:2999']}]
  - name: long-ago
    time_intervals: [{years: ['1999']}]
receivers: [{name: default}]
"#;
        let mut d = routed(yaml, &["default"]);
        d.receive(&labelled(&[("alertname", "A"), ("team", "a")]), T0);
        d.receive(&labelled(&[("alertname", "B"), ("team", "b")]), T0);
        d.receive(&labelled(&[("alertname", "C"), ("team", "c")]), T0);
        let jobs = d.tick(T0 + 30 * S);
        assert_eq!(jobs.len(), 1, "only the unmuted route");
        assert_eq!(jobs[0].notification.alerts[0].labels.get("team"), Some("c"));
        assert_eq!(d.group_count(), 3, "muted groups are kept for later");
    }

    #[test]
    fn every_target_gets_a_job() {
        let mut t = targets(true);
        t.push(Target {
            receiver: "mail".into(),
            integration: "email",
            send_resolved: false,
        });
        let mut d = Dispatcher::new(&config(), t);
        d.receive(&alert("A", "a", AlertState::Firing, T0), T0);
        let jobs = d.tick(T0 + 30 * S);
        let receivers: Vec<_> = jobs
            .iter()
            .map(|j| j.notification.receiver.as_str())
            .collect();
        assert_eq!(receivers, vec!["ops", "mail"]);
    }
}
