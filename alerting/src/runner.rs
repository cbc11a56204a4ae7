//! The run loop: consumes `vigie.alerts`, ticks the [`Dispatcher`] and
//! delivers what is due, with retries, the durable outbox, the
//! notification history and the persisted dispatcher state.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::AlertingConfig;
use crate::dispatch::{
    Dispatcher, FINAL_FLUSH_TIMEOUT, Job, RETRY_INITIAL, RETRY_MAX, TICK, Target,
};
use crate::ha::Peers;
use crate::history::{History, Record, RecordStatus};
use crate::metrics::{
    ALERT_GROUPS, DECODE_ERRORS, LEADER, NFLOG_RECEIVED, NOTIFICATIONS, NOTIFICATIONS_FAILED,
};
use crate::notify::email::EmailNotifier;
use crate::notify::pagerduty::PagerdutyNotifier;
use crate::notify::slack::SlackNotifier;
use crate::notify::webhook::WebhookNotifier;
use crate::notify::{Notification, Notifier};
use crate::outbox::{Outbox, OutboxEntry};
use crate::state::StateFile;
use crate::{AlertingError, NotifyError};
use vigie_model::NotificationLogEntry;

/// A notifier with the name of the receiver it belongs to.
pub type ReceiverNotifier = (String, Arc<dyn Notifier>);

/// One notifier per integration of every receiver, in configuration order.
pub fn build_notifiers(config: &AlertingConfig) -> Result<Vec<ReceiverNotifier>, AlertingError> {
    let mut out: Vec<ReceiverNotifier> = Vec::new();
    // Alertmanager's default templates and the `templates` files.
    let templates = crate::templates::load(std::path::Path::new(""), &config.templates)
        .map_err(crate::alertmanager::AlertmanagerError::from)?;
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
            let n = EmailNotifier::new(mail)
                .map_err(|e| fail("email", e))?
                .with_templates(Arc::clone(&templates));
            out.push((receiver.name.clone(), Arc::new(n)));
        }
        for pd in &receiver.pagerduty_configs {
            let n = PagerdutyNotifier::new(pd)
                .map_err(|e| fail("pagerduty", e))?
                .with_templates(Arc::clone(&templates));
            out.push((receiver.name.clone(), Arc::new(n)));
        }
        for slack in &receiver.slack_configs {
            let n = SlackNotifier::new(slack)
                .map_err(|e| fail("slack", e))?
                .with_templates(Arc::clone(&templates));
            out.push((receiver.name.clone(), Arc::new(n)));
        }
    }
    Ok(out)
}

/// Now, in ms since the epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Where alerting keeps what must survive a restart or the loss of the
/// process (all optional: none keeps everything in memory, alone).
#[derive(Debug, Clone, Default)]
pub struct Durable {
    /// Notifications persisted before they are sent.
    pub outbox: Option<Outbox>,
    /// The notification history.
    pub history: Option<History>,
    /// The notification log and acknowledgements.
    pub state: Option<StateFile>,
    /// The other alerting replicas ([`crate::ha`]); `None`: this process
    /// alone sends.
    pub peers: Option<Peers>,
}

/// The alerting state shared by the run loop and the HTTP API: the
/// dispatcher (alerts, groups, silences) behind a mutex, held only for
/// short synchronous sections (never across an `.await`).
#[derive(Debug)]
pub struct Shared {
    dispatcher: Mutex<Dispatcher>,
    receivers: Vec<String>,
    started_ms: i64,
    durable: Durable,
    /// Serialises persisting the dispatcher state (and, in the run loop,
    /// the outbox writes that must precede it).
    writer: Mutex<()>,
}

impl Shared {
    /// Shares `dispatcher`; `receivers` are the receiver names (in
    /// configuration order) every alert goes to.
    pub fn new(dispatcher: Dispatcher, receivers: Vec<String>) -> Arc<Self> {
        Self::durable(dispatcher, receivers, Durable::default())
    }

    /// [`Shared::new`], persisting notifications in `outbox` (if any)
    /// before they are sent; the run loop re-sends its pending entries
    /// when it starts.
    pub fn with_outbox(
        dispatcher: Dispatcher,
        receivers: Vec<String>,
        outbox: Option<Outbox>,
    ) -> Arc<Self> {
        Self::durable(
            dispatcher,
            receivers,
            Durable {
                outbox,
                ..Durable::default()
            },
        )
    }

    /// [`Shared::new`] with everything `durable` names.
    pub fn durable(dispatcher: Dispatcher, receivers: Vec<String>, durable: Durable) -> Arc<Self> {
        Arc::new(Self {
            dispatcher: Mutex::new(dispatcher),
            receivers,
            started_ms: now_ms(),
            durable,
            writer: Mutex::new(()),
        })
    }

    /// The durable outbox, if notifications are persisted.
    pub fn outbox(&self) -> Option<&Outbox> {
        self.durable.outbox.as_ref()
    }

    /// The notification history, if kept.
    pub fn history(&self) -> Option<&History> {
        self.durable.history.as_ref()
    }

    /// The replicas this process stands among, in high availability.
    pub fn peers(&self) -> Option<&Peers> {
        self.durable.peers.as_ref()
    }

    /// Locks the dispatcher (a poisoned lock is taken over: the
    /// dispatcher's state stays consistent between calls).
    pub fn lock(&self) -> MutexGuard<'_, Dispatcher> {
        self.dispatcher
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_writer(&self) -> MutexGuard<'_, ()> {
        self.writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Writes the dispatcher's history records and, if its log or
    /// acknowledgements changed, its state file. The caller holds the
    /// writer lock, so snapshots are saved in the order they are taken.
    fn persist_locked(&self) -> std::io::Result<()> {
        let (records, snapshot) = {
            let mut d = self.lock();
            let dirty = d.take_dirty();
            (d.take_records(), dirty.then(|| d.snapshot()))
        };
        if let Some(history) = self.history() {
            for r in &records {
                history.record(r);
            }
        }
        match (snapshot, &self.durable.state) {
            (Some(snapshot), Some(file)) => file.save(&snapshot),
            _ => Ok(()),
        }
    }

    /// Persists what changed in the dispatcher (after an acknowledgement).
    pub fn persist(&self) -> std::io::Result<()> {
        let _writer = self.lock_writer();
        self.persist_locked()
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

/// What a delivery task reports: the group key, the target, whether it
/// was delivered, and the outbox entry the loop removes after a failure
/// (once the failure is recorded in the dispatcher state).
type Delivered = (String, usize, bool, Option<String>);

/// The run loop over a [`Shared`] state that the HTTP API also uses:
/// consumes `vigie.alerts`, ticks the dispatcher and sends what is due
/// with `notifiers` (whose order matches the dispatcher's targets).
///
/// Each tick persists, in this order: the notifications due (outbox),
/// then the notification log that says they were sent (state file), then
/// sends them. A crash before the outbox write loses nothing (the log was
/// not saved either, so the group is notified again); after it, the next
/// start re-sends the outbox entry and counts it as notified.
pub async fn run_shared(
    state: Arc<Shared>,
    config: &AlertingConfig,
    notifiers: Vec<ReceiverNotifier>,
    mut subscriber: Box<dyn vigie_bus::Subscriber>,
    shutdown: CancellationToken,
) -> Result<(), AlertingError> {
    let retry_window = config.group_interval;
    let mut tasks: JoinSet<Delivered> = JoinSet::new();
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut bus_open = true;
    let outbox = state.outbox().cloned();
    let history = state.history().cloned();
    let peers = state.peers().cloned();
    info!(
        receivers = config.receivers.len(),
        integrations = notifiers.len(),
        outbox = outbox.is_some(),
        history = history.is_some(),
        peer = peers.as_ref().map(|p| p.peer.as_str()),
        "alerting started"
    );
    let sender = Sender {
        notifiers: &notifiers,
        outbox: outbox.as_ref(),
        history: history.as_ref(),
        peers: peers.as_ref(),
    };
    // Whether this process sends: always alone; in high availability,
    // while it leads. The outbox of a previous run is re-sent once it does.
    let leads = || peers.as_ref().is_none_or(Peers::is_leader);
    let mut leading: Option<bool> = None;
    let mut replayed = false;

    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                match done {
                    Ok((key, target, false, entry)) => {
                        // Log first: once the outbox entry is gone, only
                        // the log can say the group is owed a notification.
                        let _writer = state.lock_writer();
                        state.lock().mark_failed(&key, target);
                        if let Err(error) = state.persist_locked() {
                            warn!(%error, "saving the alerting state failed");
                        }
                        if let (Some(outbox), Some(entry)) = (&outbox, entry)
                            && let Err(error) = outbox.remove(&entry)
                        {
                            warn!(dir = %outbox.dir().display(), %error, "removing a failed notification from the outbox failed");
                        }
                    }
                    Ok(_) => {}
                    Err(e) => warn!(error = %e, "notification task failed"),
                }
            }
            _ = ticker.tick() => {
                let leader = leads();
                if leading != Some(leader) {
                    leading = Some(leader);
                    LEADER.set(i64::from(leader));
                    if let Some(p) = &peers {
                        info!(peer = %p.peer, leader, "alerting {}", if leader { "leads: sending notifications" } else { "stands by" });
                    }
                }
                if leader && !replayed {
                    replayed = true;
                    replay_outbox(&state, &sender, &mut tasks, Instant::now() + retry_window, &shutdown);
                }
                let (jobs, groups) = {
                    let _writer = state.lock_writer();
                    let (jobs, groups) = {
                        let mut d = state.lock();
                        d.set_standby(!leader);
                        let jobs = d.tick(now_ms());
                        let jobs: Vec<(Job, Option<NotificationLogEntry>)> =
                            jobs.into_iter().map(|job| {
                                let entry = sender.log_entry(&d, &job);
                                (job, entry)
                            }).collect();
                        (jobs, d.group_count())
                    };
                    let jobs: Vec<(Job, Option<String>, Option<NotificationLogEntry>)> =
                        jobs.into_iter().map(|(job, entry)| {
                            let key = sender.persist(&job);
                            (job, key, entry)
                        }).collect();
                    if let Err(error) = state.persist_locked() {
                        warn!(%error, "saving the alerting state failed");
                    }
                    (jobs, groups)
                };
                for (job, key, entry) in jobs {
                    let deadline = Instant::now() + retry_window;
                    sender.spawn(&mut tasks, job, key, entry, deadline, shutdown.clone(), false);
                }
                ALERT_GROUPS.set(i64::try_from(groups).unwrap_or(i64::MAX));
            }
            received = subscriber.recv(), if bus_open => match received {
                Ok(Some(delivery)) => {
                    let message = &delivery.message;
                    if message.topic == vigie_model::topics::NFLOG {
                        take_peer_log(&state, peers.as_ref(), &message.payload);
                    } else if message.topic == vigie_model::topics::ALERTS {
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
                    } else if message.topic == vigie_model::topics::ANOMALIES {
                        crate::incident::receive(&state, &message.payload);
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
    let final_jobs = {
        let _writer = state.lock_writer();
        let jobs: Vec<(Job, Option<NotificationLogEntry>)> = {
            let mut d = state.lock();
            d.set_standby(!leads());
            let jobs = d.flush_all(now_ms());
            jobs.into_iter()
                .map(|job| {
                    let entry = sender.log_entry(&d, &job);
                    (job, entry)
                })
                .collect()
        };
        let jobs: Vec<(Job, Option<String>, Option<NotificationLogEntry>)> = jobs
            .into_iter()
            .map(|(job, entry)| {
                let key = sender.persist(&job);
                (job, key, entry)
            })
            .collect();
        if let Err(error) = state.persist_locked() {
            warn!(%error, "saving the alerting state failed");
        }
        jobs
    };
    info!(
        notifications = final_jobs.len(),
        "alerting stopping: final flush"
    );
    let now = Instant::now();
    for (job, key, entry) in final_jobs {
        sender.spawn(
            &mut tasks,
            job,
            key,
            entry,
            now,
            CancellationToken::new(),
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
    if let Some(p) = &peers {
        // Hand over at once rather than after the session timeout.
        p.leadership.resign();
        LEADER.set(0);
    }
    Ok(())
}

/// Takes a peer's notification log entry (`vigie.nflog`) into the
/// dispatcher's log; this process's own entries come back too and are
/// skipped.
fn take_peer_log(state: &Shared, peers: Option<&Peers>, payload: &[u8]) {
    let entry = match vigie_model::codec::decode_nflog(payload) {
        Ok(e) => e,
        Err(e) => {
            NFLOG_RECEIVED.with_label_values(&["undecodable"]).inc();
            warn!(topic = vigie_model::topics::NFLOG, error = %e, "undecodable notification log entry skipped");
            return;
        }
    };
    if peers.is_some_and(|p| p.peer == entry.peer) {
        NFLOG_RECEIVED.with_label_values(&["own"]).inc();
        return;
    }
    let _writer = state.lock_writer();
    let applied = state.lock().note_peer(&entry, now_ms());
    NFLOG_RECEIVED
        .with_label_values(&[if applied { "applied" } else { "ignored" }])
        .inc();
    if let Err(error) = state.persist_locked() {
        warn!(%error, "saving the alerting state failed");
    }
}

/// Re-sends what the outbox holds from a previous run: the newest entry
/// per target and group whose target still exists, each counted as
/// notified in the dispatcher's log (so the group is not notified again
/// for the same alerts). Entries that fail again stay for the next start.
fn replay_outbox(
    state: &Shared,
    sender: &Sender<'_>,
    tasks: &mut JoinSet<Delivered>,
    deadline: Instant,
    shutdown: &CancellationToken,
) {
    let Some(outbox) = sender.outbox else {
        return;
    };
    let valid = |e: &OutboxEntry| {
        sender
            .notifiers
            .get(e.target)
            .is_some_and(|(r, n)| *r == e.receiver && n.integration() == e.integration)
    };
    match outbox.replay(valid) {
        Ok(mut entries) => {
            // In high availability, a peer may have told the target
            // something newer since: that entry is stale, not owed.
            if sender.peers.is_some() {
                let d = state.lock();
                entries.retain(|(key, e)| {
                    let newer = d.told_since(
                        e.target,
                        &e.notification.group_key,
                        e.notification.notified_at_ms.saturating_add(1),
                    );
                    if newer && let Err(error) = outbox.remove(key) {
                        warn!(dir = %outbox.dir().display(), %error, %key, "removing a stale notification from the outbox failed");
                    }
                    !newer
                });
            }
            if !entries.is_empty() {
                info!(
                    notifications = entries.len(),
                    dir = %outbox.dir().display(),
                    "re-sending notifications pending in the outbox"
                );
            }
            let mut logged = Vec::with_capacity(entries.len());
            {
                let _writer = state.lock_writer();
                {
                    let mut d = state.lock();
                    for (_, entry) in &entries {
                        d.note_replayed(entry.target, &entry.notification);
                    }
                    for (_, entry) in &entries {
                        let job = Job {
                            target: entry.target,
                            notification: entry.notification.clone(),
                        };
                        logged.push(sender.log_entry(&d, &job));
                    }
                }
                if let Err(error) = state.persist_locked() {
                    warn!(%error, "saving the alerting state failed");
                }
            }
            for ((key, entry), log) in entries.into_iter().zip(logged) {
                let job = Job {
                    target: entry.target,
                    notification: entry.notification,
                };
                sender.spawn(tasks, job, Some(key), log, deadline, shutdown.clone(), true);
            }
        }
        Err(error) => warn!(dir = %outbox.dir().display(), %error,
                            "reading the outbox failed; pending notifications not re-sent"),
    }
}

/// What a job needs to be persisted and sent.
struct Sender<'a> {
    notifiers: &'a [ReceiverNotifier],
    outbox: Option<&'a Outbox>,
    history: Option<&'a History>,
    /// In high availability: where delivered notifications are logged.
    peers: Option<&'a Peers>,
}

impl Sender<'_> {
    /// What `d`'s log says `job`'s target was told about its group, to
    /// publish for the peers once it is delivered (`None` alone).
    fn log_entry(&self, d: &Dispatcher, job: &Job) -> Option<NotificationLogEntry> {
        let peers = self.peers?;
        d.log_entry(job.target, &job.notification.group_key, &peers.peer)
    }

    /// Persists `job` in the outbox (if any); returns its key.
    fn persist(&self, job: &Job) -> Option<String> {
        let outbox = self.outbox?;
        let (receiver, notifier) = self.notifiers.get(job.target)?;
        let entry = OutboxEntry {
            target: job.target,
            receiver: receiver.clone(),
            integration: notifier.integration().to_string(),
            created_ms: now_ms(),
            notification: job.notification.clone(),
        };
        match outbox.put(&entry) {
            Ok(key) => Some(key),
            Err(error) => {
                warn!(dir = %outbox.dir().display(), %error, group = %job.notification.group_key,
                      "persisting a notification failed; sending it anyway");
                None
            }
        }
    }

    /// Sends `job` (persisted under `key`) in a task. Once delivered, its
    /// outbox entry is removed and `log` (if any) published for the
    /// peers; after a failure the loop removes it (the
    /// dispatcher notifies the group again) unless `keep_on_failure` or
    /// the run is stopping, in which case the next start re-sends it.
    #[allow(clippy::too_many_arguments)]
    fn spawn(
        &self,
        tasks: &mut JoinSet<Delivered>,
        job: Job,
        key: Option<String>,
        log: Option<NotificationLogEntry>,
        deadline: Instant,
        cancel: CancellationToken,
        keep_on_failure: bool,
    ) {
        let Some((_, notifier)) = self.notifiers.get(job.target) else {
            return;
        };
        let notifier = Arc::clone(notifier);
        let outbox = self.outbox.cloned();
        let history = self.history.cloned();
        let peers = self.peers.cloned();
        tasks.spawn(async move {
            let ok = deliver_recorded(
                notifier.as_ref(),
                &job.notification,
                deadline,
                &cancel,
                history.as_ref(),
            )
            .await;
            if ok && let (Some(peers), Some(log)) = (peers, log) {
                peers.publish(&log).await;
            }
            let mut left = None;
            if let (Some(outbox), Some(key)) = (outbox, key) {
                if ok {
                    if let Err(error) = outbox.remove(&key) {
                        warn!(dir = %outbox.dir().display(), %error, %key, "removing a sent notification from the outbox failed");
                    }
                } else if !(keep_on_failure || cancel.is_cancelled()) {
                    left = Some(key);
                }
            }
            (job.notification.group_key, job.target, ok, left)
        });
    }
}

/// A back-off delay with jitter: uniformly between half of it and all of
/// it, so replicas and receivers recovering together do not retry in step.
fn jittered(backoff: Duration) -> Duration {
    backoff.mul_f64(0.5 + fastrand::f64() / 2.0)
}

/// Sends `n`, retrying retriable failures with exponential back-off
/// ([`RETRY_INITIAL`] doubling up to [`RETRY_MAX`], each delay jittered
/// between half and all of it) while the next attempt
/// would start before `deadline` and `cancel` is not cancelled.
/// Returns whether it was delivered.
pub async fn deliver(
    notifier: &dyn Notifier,
    n: &Notification,
    deadline: Instant,
    cancel: &CancellationToken,
) -> bool {
    deliver_recorded(notifier, n, deadline, cancel, None).await
}

/// [`deliver`], recording every attempt in `history`: `sent`, `retried`
/// (a failure followed by another attempt) or `failed` (the last one).
pub async fn deliver_recorded(
    notifier: &dyn Notifier,
    n: &Notification,
    deadline: Instant,
    cancel: &CancellationToken,
    history: Option<&History>,
) -> bool {
    let integration = notifier.integration();
    let record = |status: RecordStatus, attempt: u32, detail: Option<String>| {
        if let Some(h) = history {
            h.record(&Record::delivery(
                n,
                integration,
                status,
                attempt,
                detail,
                now_ms(),
            ));
        }
    };
    let mut backoff = RETRY_INITIAL;
    let mut attempt = 1u32;
    loop {
        match notifier.notify(n).await {
            Ok(()) => {
                NOTIFICATIONS
                    .with_label_values(&[n.receiver.as_str(), integration])
                    .inc();
                record(RecordStatus::Sent, attempt, None);
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
                let status = if retry {
                    RecordStatus::Retried
                } else {
                    RecordStatus::Failed
                };
                record(status, attempt, Some(error.to_string()));
                if !retry {
                    return false;
                }
                tokio::select! {
                    _ = tokio::time::sleep(jittered(backoff)) => {}
                    _ = cancel.cancelled() => {
                        return false;
                    }
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

    #[test]
    fn jitter_stays_between_half_and_all_of_the_backoff_and_varies() {
        let backoff = Duration::from_secs(8);
        let delays: Vec<Duration> = (0..200).map(|_| jittered(backoff)).collect();
        assert!(delays.iter().all(|d| *d >= backoff / 2 && *d <= backoff));
        let distinct: std::collections::BTreeSet<Duration> = delays.iter().copied().collect();
        assert!(distinct.len() > 100, "{} distinct delays", distinct.len());
    }
}
