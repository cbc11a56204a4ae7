//! The action engine: decides, under the guardrails, what to do with each
//! firing or resolved alert, calls the actions' URLs and records every
//! decision in the audit log.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use vigie_bus::{Message, Publisher};
use vigie_model::{Alert, AlertState};

use super::audit::{AuditLog, AuditRecord, Decision, reason};
use super::config::ActionConfig;
use crate::silence::{Matcher, all_match, new_uuid};

/// The signature header: `sha256=<hex of HMAC-SHA256(secret, body)>`.
pub const SIGNATURE_HEADER: &str = "X-Vigie-Signature";
/// Label added to the alert that pages a human about an action; alerts
/// carrying it are never acted on.
pub const ESCALATION_LABEL: &str = "vigie_action";
/// Label saying why the escalation alert was raised.
pub const ESCALATION_REASON_LABEL: &str = "vigie_escalation";

/// Errors of the action engine.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// A `[[action]]` block is invalid (key, fix).
    #[error("invalid [[action]] configuration: {0:?}")]
    Config(Vec<(String, String)>),
    /// No pending action has this id.
    #[error("no pending action {0}")]
    NotPending(String),
    /// The pending action's alert is not known yet (approved right after
    /// a restart, before the analyzer re-sent it): try again shortly.
    #[error(
        "the alert of pending action {0} has not been re-sent since the restart; try again in a minute"
    )]
    AlertUnknown(String),
    /// Building the HTTP client failed.
    #[error("http client: {0}")]
    Client(String),
}

/// `sha256=<hex>`: the HMAC-SHA256 of `body` under `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// Whether `header` (`sha256=<hex>`) is the signature of `body` under
/// `secret`, compared in constant time: what a controller checks.
pub fn verify_signature(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex) = header.strip_prefix("sha256=") else {
        return false;
    };
    if hex.len() != 64 || !hex.is_ascii() {
        return false;
    }
    let bytes: Option<Vec<u8>> = (0..32)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
        .collect();
    let Some(bytes) = bytes else {
        return false;
    };
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&bytes).is_ok()
}

/// An action waiting for approval.
#[derive(Debug, Clone, Serialize)]
pub struct PendingAction {
    /// The run id (approve or deny it with this).
    pub id: String,
    /// The action's name.
    pub action: String,
    /// The target.
    pub target: String,
    /// The alert's fingerprint.
    pub fingerprint: String,
    /// Since when it waits (ms since epoch).
    pub since_ms: i64,
    /// The alert (unknown right after a restart until it is re-sent).
    pub alert: Option<Alert>,
}

struct Action {
    config: ActionConfig,
    matchers: Vec<Matcher>,
    secret: Option<Vec<u8>>,
    /// HTTP(S) client with the action's `http_config` and `timeout`.
    client: crate::http::HttpClient,
}

/// One firing episode of one alert for one action.
struct Episode {
    id: String,
    target: String,
    alert: Option<Alert>,
    succeeded: bool,
    verify_by: Option<i64>,
    escalated: bool,
    /// Why it was escalated (the page's `vigie_escalation` label).
    why: String,
}

#[derive(Default)]
struct State {
    /// Per action: when it acted (ran or dry run).
    acted: HashMap<String, Vec<i64>>,
    /// Per action and target: when it last acted on the target.
    last_on_target: HashMap<(String, String), i64>,
    /// Per action: (time, target) acted on.
    targets: HashMap<String, Vec<(i64, String)>>,
    /// Per action: runs in flight.
    running: HashMap<String, usize>,
    /// Per (action, fingerprint): the current episode.
    episodes: HashMap<(String, String), Episode>,
    /// Pending approvals by id.
    pending: BTreeMap<String, PendingAction>,
}

/// Remediation actions with their guardrails (see the module docs).
pub struct ActionEngine {
    actions: Vec<Action>,
    audit: AuditLog,
    publisher: Option<Arc<dyn Publisher>>,
    state: Mutex<State>,
    in_flight: tokio::sync::watch::Sender<usize>,
}

impl std::fmt::Debug for ActionEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActionEngine")
            .field("actions", &self.actions.len())
            .field("audit", &self.audit.path())
            .finish()
    }
}

/// Ms since the epoch.
fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl ActionEngine {
    /// Checks `configs`, reads their secrets, and restores the guardrails'
    /// memory (recent runs, cooldowns, open episodes, pending approvals)
    /// from `audit`. Escalations are published as alerts on `vigie.alerts`
    /// through `publisher` (the dispatcher routes them like the alert they
    /// are about); without one they are only recorded and logged.
    pub fn new(
        configs: &[ActionConfig],
        audit: AuditLog,
        publisher: Option<Arc<dyn Publisher>>,
    ) -> Result<Arc<Self>, ActionError> {
        let problems = super::config::problems(configs);
        if !problems.is_empty() {
            return Err(ActionError::Config(problems));
        }
        let mut actions = Vec::new();
        for c in configs {
            let matchers = c
                .parsed_matchers()
                .map_err(|e| ActionError::Config(vec![("matchers".into(), e)]))?;
            let secret = c
                .read_secret()
                .map_err(|e| ActionError::Config(vec![("secret_file".into(), e)]))?;
            let client = crate::http::HttpClient::new(&c.http_config.tls_config, c.timeout)
                .map_err(|e| ActionError::Client(format!("http_config.{e}")))?;
            actions.push(Action {
                config: c.clone(),
                matchers,
                secret,
                client,
            });
        }
        let engine = Self {
            actions,
            audit,
            publisher,
            state: Mutex::new(State::default()),
            in_flight: tokio::sync::watch::channel(0).0,
        };
        engine.restore();
        Ok(Arc::new(engine))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The audit log.
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// Actions waiting for approval, oldest first.
    pub fn pending(&self) -> Vec<PendingAction> {
        let mut p: Vec<PendingAction> = self.lock().pending.values().cloned().collect();
        p.sort_by_key(|p| p.since_ms);
        p
    }

    fn restore(&self) {
        let verify: HashMap<&str, Option<Duration>> = self
            .actions
            .iter()
            .map(|a| (a.config.name.as_str(), a.config.verify_within))
            .collect();
        let mut s = self.lock();
        for r in self.audit.all() {
            let key = (r.action.clone(), r.fingerprint.clone());
            match r.decision {
                Decision::Ran | Decision::DryRun => {
                    note_acted(&mut s, &r.action, &r.target, r.time_ms);
                    s.pending.remove(&r.id);
                }
                Decision::PendingApproval => {
                    s.pending.insert(
                        r.id.clone(),
                        PendingAction {
                            id: r.id.clone(),
                            action: r.action.clone(),
                            target: r.target.clone(),
                            fingerprint: r.fingerprint.clone(),
                            since_ms: r.time_ms,
                            alert: None,
                        },
                    );
                }
                Decision::Approved | Decision::Denied => {
                    s.pending.remove(&r.id);
                }
                _ => {}
            }
            match r.decision {
                Decision::Resolved | Decision::Verified => {
                    s.episodes.remove(&key);
                    s.pending.remove(&r.id);
                }
                _ => {
                    let e = s.episodes.entry(key).or_insert_with(|| Episode {
                        id: r.id.clone(),
                        target: r.target.clone(),
                        alert: None,
                        succeeded: false,
                        verify_by: None,
                        escalated: false,
                        why: String::new(),
                    });
                    if r.decision == Decision::Succeeded {
                        e.succeeded = true;
                        e.verify_by = verify
                            .get(r.action.as_str())
                            .copied()
                            .flatten()
                            .map(|d| r.time_ms.saturating_add(ms(d)));
                    }
                    if r.decision == Decision::Escalated {
                        e.escalated = true;
                        e.why = r.reason.clone().unwrap_or_default();
                    }
                }
            }
        }
        if !s.episodes.is_empty() || !s.pending.is_empty() {
            info!(
                episodes = s.episodes.len(),
                pending = s.pending.len(),
                "actions: restored from the audit log"
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        id: &str,
        action: &str,
        target: &str,
        fingerprint: &str,
        decision: Decision,
        why: Option<&str>,
        detail: Option<String>,
    ) {
        info!(
            id,
            action,
            target,
            fingerprint,
            decision = decision.as_str(),
            reason = why,
            detail = detail.as_deref(),
            "action decision"
        );
        self.audit.append(AuditRecord {
            id: id.to_string(),
            time_ms: now_ms(),
            action: action.to_string(),
            target: target.to_string(),
            fingerprint: fingerprint.to_string(),
            decision,
            reason: why.map(str::to_string),
            detail,
        });
    }

    /// Handles one alert from `vigie.alerts`: a firing alert starts, at
    /// most once per firing episode and action, whatever the guardrails
    /// allow; a resolved one closes its episodes (verifying successful
    /// runs). Runs go on in the background ([`ActionEngine::wait_idle`]).
    pub async fn observe(self: &Arc<Self>, alert: &Alert) {
        if alert.labels.get(ESCALATION_LABEL).is_some() {
            return;
        }
        let fp = alert.fingerprint();
        let now = now_ms();
        let mut pages: Vec<(Alert, String, String, bool)> = Vec::new();
        let mut runs: Vec<(usize, String, String)> = Vec::new();
        {
            let mut s = self.lock();
            for (i, action) in self.actions.iter().enumerate() {
                if !all_match(&action.matchers, &alert.labels) {
                    continue;
                }
                let c = &action.config;
                let key = (c.name.clone(), fp.clone());
                match alert.state {
                    AlertState::Pending => {}
                    AlertState::Resolved => {
                        let Some(e) = s.episodes.remove(&key) else {
                            continue;
                        };
                        let record = |decision: Decision, detail: Option<String>| {
                            self.record(&e.id, &c.name, &e.target, &fp, decision, None, detail);
                        };
                        if s.pending.remove(&e.id).is_some() {
                            record(Decision::Resolved, Some("resolved before approval".into()));
                            continue;
                        }
                        if e.escalated {
                            pages.push((alert.clone(), c.name.clone(), e.why.clone(), false));
                        } else if e.succeeded {
                            record(Decision::Verified, None);
                        }
                        record(Decision::Resolved, None);
                    }
                    AlertState::Firing => {
                        if let Some(e) = s.episodes.get_mut(&key) {
                            e.alert = Some(alert.clone());
                            let escalated = e.escalated;
                            let why = e.why.clone();
                            let id = e.id.clone();
                            if let Some(p) = s.pending.get_mut(&id) {
                                p.alert = Some(alert.clone());
                            }
                            if escalated {
                                // Keep the page alive while the alert fires.
                                pages.push((alert.clone(), c.name.clone(), why, true));
                            }
                            continue;
                        }
                        let id = new_uuid();
                        let target = alert.labels.get(&c.target_label).unwrap_or("").to_string();
                        s.episodes.insert(
                            key,
                            Episode {
                                id: id.clone(),
                                target: target.clone(),
                                alert: Some(alert.clone()),
                                succeeded: false,
                                verify_by: None,
                                escalated: false,
                                why: String::new(),
                            },
                        );
                        let skip = |why: &str, detail: String| {
                            self.record(
                                &id,
                                &c.name,
                                &target,
                                &fp,
                                Decision::Skipped,
                                Some(why),
                                Some(detail),
                            );
                        };
                        // Forget what no guardrail looks at any more.
                        let per = c.rate_limit.as_ref().map_or(0, |r| ms(r.per));
                        if let Some(v) = s.acted.get_mut(&c.name) {
                            v.retain(|t| now - t < per);
                        }
                        let window = c.blast_radius.as_ref().map_or(0, |b| ms(b.window));
                        if let Some(v) = s.targets.get_mut(&c.name) {
                            v.retain(|(t, _)| now - t < window);
                        }
                        let cooldown = ms(c.cooldown);
                        let name = c.name.clone();
                        s.last_on_target
                            .retain(|(a, _), t| *a != name || now - *t < cooldown);
                        if target.is_empty() {
                            skip(
                                reason::NO_TARGET,
                                format!("the alert has no label {:?}", c.target_label),
                            );
                            continue;
                        }
                        if let Some(b) = &c.blast_radius {
                            let since = now - ms(b.window);
                            let mut distinct: Vec<&str> = s
                                .targets
                                .get(&c.name)
                                .into_iter()
                                .flatten()
                                .filter(|(t, _)| *t > since)
                                .map(|(_, target)| target.as_str())
                                .collect();
                            distinct.push(&target);
                            distinct.sort_unstable();
                            distinct.dedup();
                            if distinct.len() > b.max_targets {
                                let detail = format!(
                                    "{} distinct targets within {} (max {}): automation stopped, paging a human",
                                    distinct.len(),
                                    humantime_serde::re::humantime::format_duration(b.window),
                                    b.max_targets
                                );
                                skip(reason::BLAST_RADIUS, detail.clone());
                                self.escalate_locked(
                                    &mut s,
                                    &c.name,
                                    &fp,
                                    reason::BLAST_RADIUS,
                                    detail,
                                );
                                pages.push((
                                    alert.clone(),
                                    c.name.clone(),
                                    reason::BLAST_RADIUS.to_string(),
                                    true,
                                ));
                                continue;
                            }
                        }
                        if !c.cooldown.is_zero()
                            && let Some(last) =
                                s.last_on_target.get(&(c.name.clone(), target.clone()))
                            && now - last < ms(c.cooldown)
                        {
                            skip(
                                reason::COOLDOWN,
                                format!(
                                    "{target} acted on {} s ago (cooldown {})",
                                    (now - last) / 1000,
                                    humantime_serde::re::humantime::format_duration(c.cooldown)
                                ),
                            );
                            continue;
                        }
                        if let Some(r) = &c.rate_limit {
                            let since = now - ms(r.per);
                            let n = s
                                .acted
                                .get(&c.name)
                                .map_or(0, |v| v.iter().filter(|t| **t > since).count());
                            if n >= r.max {
                                skip(
                                    reason::RATE_LIMIT,
                                    format!(
                                        "{n} runs within {} (max {})",
                                        humantime_serde::re::humantime::format_duration(r.per),
                                        r.max
                                    ),
                                );
                                continue;
                            }
                        }
                        let running = s.running.get(&c.name).copied().unwrap_or(0);
                        if c.max_concurrent > 0 && running >= c.max_concurrent {
                            skip(
                                reason::MAX_CONCURRENT,
                                format!("{running} runs in flight (max {})", c.max_concurrent),
                            );
                            continue;
                        }
                        if c.require_approval {
                            s.pending.insert(
                                id.clone(),
                                PendingAction {
                                    id: id.clone(),
                                    action: c.name.clone(),
                                    target: target.clone(),
                                    fingerprint: fp.clone(),
                                    since_ms: now,
                                    alert: Some(alert.clone()),
                                },
                            );
                            self.record(
                                &id,
                                &c.name,
                                &target,
                                &fp,
                                Decision::PendingApproval,
                                None,
                                None,
                            );
                            continue;
                        }
                        if let Some(run) = self.start_locked(&mut s, i, &id, &target, &fp, now) {
                            runs.push(run);
                        }
                    }
                }
            }
        }
        for (alert, action, why, firing) in pages {
            self.page(&alert, &action, &why, firing).await;
        }
        for (i, id, target) in runs {
            self.spawn_run(i, id, target, alert.clone());
        }
    }

    /// Notes the run and records `ran` or `dry_run`; returns what to spawn
    /// (none for a dry run).
    fn start_locked(
        &self,
        s: &mut State,
        i: usize,
        id: &str,
        target: &str,
        fp: &str,
        now: i64,
    ) -> Option<(usize, String, String)> {
        let c = &self.actions.get(i)?.config;
        note_acted(s, &c.name, target, now);
        if c.dry_run {
            self.record(
                id,
                &c.name,
                target,
                fp,
                Decision::DryRun,
                None,
                Some(format!("would POST {}", c.url)),
            );
            return None;
        }
        *s.running.entry(c.name.clone()).or_insert(0) += 1;
        self.in_flight.send_modify(|n| *n += 1);
        self.record(
            id,
            &c.name,
            target,
            fp,
            Decision::Ran,
            None,
            Some(c.url.clone()),
        );
        Some((i, id.to_string(), target.to_string()))
    }

    fn escalate_locked(&self, s: &mut State, action: &str, fp: &str, why: &str, detail: String) {
        let key = (action.to_string(), fp.to_string());
        let Some(e) = s.episodes.get_mut(&key) else {
            return;
        };
        e.escalated = true;
        e.why = why.to_string();
        let (id, target) = (e.id.clone(), e.target.clone());
        error!(action, target = %target, fingerprint = fp, detail = %detail, "action escalated: paging a human");
        self.record(
            &id,
            action,
            &target,
            fp,
            Decision::Escalated,
            Some(why),
            Some(detail),
        );
    }

    /// Publishes (or resolves) the escalation alert about `alert`.
    async fn page(&self, alert: &Alert, action: &str, why: &str, firing: bool) {
        let Some(publisher) = &self.publisher else {
            return;
        };
        let mut page = alert.clone();
        page.labels.insert(ESCALATION_LABEL, action);
        if !why.is_empty() {
            page.labels.insert(ESCALATION_REASON_LABEL, why);
        }
        if firing {
            page.state = AlertState::Firing;
            page.resolved_at_ms = None;
            page.annotations.insert(
                "summary",
                format!("Action {action} needs a human: automation did not handle this alert"),
            );
        } else {
            page.state = AlertState::Resolved;
            page.resolved_at_ms = Some(now_ms());
        }
        match vigie_model::codec::encode_alert(&page) {
            Ok(payload) => {
                let msg = Message::new(
                    vigie_model::topics::ALERTS,
                    page.fingerprint().into_bytes(),
                    payload,
                );
                if let Err(e) = publisher.publish(msg).await {
                    error!(action, error = %e, "publishing the escalation alert failed");
                }
            }
            Err(e) => error!(action, error = %e, "encoding the escalation alert failed"),
        }
    }

    fn spawn_run(self: &Arc<Self>, i: usize, id: String, target: String, alert: Alert) {
        let engine = Arc::clone(self);
        tokio::spawn(async move {
            let Some(action) = engine.actions.get(i) else {
                return;
            };
            let c = &action.config;
            let fp = alert.fingerprint();
            let body = serde_json::json!({
                "id": id,
                "action": c.name,
                "target": target,
                "status": "firing",
                "alerts": [{
                    "fingerprint": fp,
                    "labels": alert.labels,
                    "annotations": alert.annotations,
                    "activeAt": alert.active_at_ms,
                    "firedAt": alert.fired_at_ms,
                    "value": alert.value,
                    "generatorURL": alert.generator_url,
                }],
            });
            let body = serde_json::to_vec(&body).unwrap_or_default();
            let result = engine.call(action, &id, body).await;
            let mut page = None;
            {
                let mut s = engine.lock();
                if let Some(n) = s.running.get_mut(&c.name) {
                    *n = n.saturating_sub(1);
                }
                let key = (c.name.clone(), fp.clone());
                match result {
                    Ok(detail) => {
                        engine.record(
                            &id,
                            &c.name,
                            &target,
                            &fp,
                            Decision::Succeeded,
                            None,
                            Some(detail),
                        );
                        match s.episodes.get_mut(&key) {
                            Some(e) if e.id == id => {
                                e.succeeded = true;
                                e.verify_by = c.verify_within.map(|d| now_ms() + ms(d));
                            }
                            // Resolved during the call.
                            _ => engine.record(
                                &id,
                                &c.name,
                                &target,
                                &fp,
                                Decision::Verified,
                                None,
                                Some("resolved while the action ran".into()),
                            ),
                        }
                    }
                    Err(detail) => {
                        engine.record(
                            &id,
                            &c.name,
                            &target,
                            &fp,
                            Decision::Failed,
                            None,
                            Some(detail.clone()),
                        );
                        if s.episodes.get(&key).is_some_and(|e| e.id == id) {
                            engine.escalate_locked(
                                &mut s,
                                &c.name,
                                &fp,
                                reason::FAILED,
                                format!("the action failed: {detail}"),
                            );
                            page = Some(alert.clone());
                        }
                    }
                }
            }
            if let Some(alert) = page {
                engine.page(&alert, &c.name, reason::FAILED, true).await;
            }
            engine.in_flight.send_modify(|n| *n = n.saturating_sub(1));
        });
    }

    /// One HTTP call with retries; `Ok(status)` on a 2xx.
    async fn call(&self, action: &Action, id: &str, body: Vec<u8>) -> Result<String, String> {
        let c = &action.config;
        let mut backoff = Duration::from_millis(500);
        let mut last = String::new();
        for attempt in 0..=c.retries {
            if attempt > 0 {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
            let signature = action.secret.as_ref().map(|s| sign(s, &body));
            let mut headers = vec![("Idempotency-Key", id)];
            if let Some(sig) = &signature {
                headers.push((SIGNATURE_HEADER, sig.as_str()));
            }
            match action
                .client
                .post(&c.url, "application/json", &headers, body.clone())
                .await
            {
                Ok(resp) if (200..300).contains(&resp.status) => {
                    return Ok(format!(
                        "HTTP {} after {} attempt(s)",
                        resp.status,
                        attempt + 1
                    ));
                }
                Ok(resp) => {
                    last = format!("HTTP {}", resp.status);
                    if !(resp.status >= 500 || resp.status == 429) {
                        return Err(last);
                    }
                }
                Err(
                    e @ crate::http::HttpError::Tls {
                        retriable: false, ..
                    },
                ) => {
                    // An untrusted certificate stays untrusted: no retries.
                    return Err(e.to_string());
                }
                Err(e) => last = e.to_string(),
            }
            warn!(action = %c.name, id, attempt = attempt + 1, error = %last, "action call failed");
        }
        Err(format!("{last} after {} attempt(s)", c.retries + 1))
    }

    /// Approves a pending action: records `approved` and runs it (or
    /// records `dry_run`). Approval overrides the rate limit, cooldown and
    /// concurrency guardrails: a human decided.
    pub async fn approve(self: &Arc<Self>, id: &str, by: &str) -> Result<(), ActionError> {
        let run = {
            let mut s = self.lock();
            let p = s
                .pending
                .get(id)
                .cloned()
                .ok_or_else(|| ActionError::NotPending(id.to_string()))?;
            let alert = p
                .alert
                .clone()
                .or_else(|| {
                    s.episodes
                        .get(&(p.action.clone(), p.fingerprint.clone()))
                        .and_then(|e| e.alert.clone())
                })
                .ok_or_else(|| ActionError::AlertUnknown(id.to_string()))?;
            s.pending.remove(id);
            self.record(
                id,
                &p.action,
                &p.target,
                &p.fingerprint,
                Decision::Approved,
                None,
                Some(format!("by {by}")),
            );
            let Some(i) = self.actions.iter().position(|a| a.config.name == p.action) else {
                return Ok(());
            };
            let started = self.start_locked(&mut s, i, id, &p.target, &p.fingerprint, now_ms());
            started.map(|run| (run, alert))
        };
        if let Some(((i, id, target), alert)) = run {
            self.spawn_run(i, id, target, alert);
        }
        Ok(())
    }

    /// Denies a pending action (recorded `denied`); the alert's episode
    /// ends without a run.
    pub fn deny(&self, id: &str, by: &str) -> Result<(), ActionError> {
        let mut s = self.lock();
        let p = s
            .pending
            .remove(id)
            .ok_or_else(|| ActionError::NotPending(id.to_string()))?;
        self.record(
            id,
            &p.action,
            &p.target,
            &p.fingerprint,
            Decision::Denied,
            None,
            Some(format!("by {by}")),
        );
        Ok(())
    }

    /// Escalates every successful run whose alert is still firing past
    /// `verify_within` (at `now_ms`): records `escalated` and pages the
    /// route's receiver. Returns how many were escalated.
    pub async fn check_verifications(&self, now_ms: i64) -> usize {
        let mut pages = Vec::new();
        {
            let mut s = self.lock();
            let due: Vec<(String, String)> = s
                .episodes
                .iter()
                .filter(|(_, e)| !e.escalated && e.verify_by.is_some_and(|t| t <= now_ms))
                .map(|(k, _)| k.clone())
                .collect();
            for (action, fp) in due {
                let within = self
                    .actions
                    .iter()
                    .find(|a| a.config.name == action)
                    .and_then(|a| a.config.verify_within)
                    .unwrap_or_default();
                let detail = format!(
                    "still firing {} after the action succeeded",
                    humantime_serde::re::humantime::format_duration(within)
                );
                self.escalate_locked(&mut s, &action, &fp, reason::NOT_RESOLVED, detail);
                if let Some(alert) = s
                    .episodes
                    .get(&(action.clone(), fp))
                    .and_then(|e| e.alert.clone())
                {
                    pages.push((alert, action));
                }
            }
        }
        let n = pages.len();
        for (alert, action) in pages {
            self.page(&alert, &action, reason::NOT_RESOLVED, true).await;
        }
        n
    }

    /// Waits until no action call is in flight.
    pub async fn wait_idle(&self) {
        let mut rx = self.in_flight.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// Consumes `vigie.alerts` from `subscriber` until `shutdown`, checking
    /// verifications every second; then waits (10 s at most) for calls in
    /// flight.
    pub async fn run(
        self: Arc<Self>,
        mut subscriber: Box<dyn vigie_bus::Subscriber>,
        shutdown: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut open = true;
        info!(actions = self.actions.len(), "actions started");
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {
                    self.check_verifications(now_ms()).await;
                }
                received = subscriber.recv(), if open => match received {
                    Ok(Some(delivery)) => {
                        let m = &delivery.message;
                        if m.topic == vigie_model::topics::ALERTS {
                            match vigie_model::codec::decode_alert(&m.payload) {
                                Ok(alert) => self.observe(&alert).await,
                                Err(e) => warn!(error = %e, "actions: undecodable alert skipped"),
                            }
                        }
                        if let Err(e) = subscriber.commit(&m.topic, delivery.position).await {
                            warn!(error = %e, "actions: commit failed");
                        }
                    }
                    Ok(None) => open = false,
                    Err(e) => {
                        warn!(error = %e, "actions: receiving alerts failed; retrying in 1s");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                },
            }
        }
        if tokio::time::timeout(Duration::from_secs(10), self.wait_idle())
            .await
            .is_err()
        {
            warn!("actions: calls still in flight at shutdown abandoned");
        }
    }
}

fn note_acted(s: &mut State, action: &str, target: &str, at: i64) {
    s.acted.entry(action.to_string()).or_default().push(at);
    s.last_on_target
        .insert((action.to_string(), target.to_string()), at);
    s.targets
        .entry(action.to_string())
        .or_default()
        .push((at, target.to_string()));
}
