//! Alertmanager's HTTP API v2, on Vigie's main port, so that a Prometheus
//! can use Vigie as its Alertmanager and `amtool` works against it.
//!
//! Routes ([`router`]): `POST /api/v2/alerts` (postable alerts, fed into
//! the same [`Dispatcher`] as the analyzer's alerts),
//! `GET /api/v2/alerts`, `GET /api/v2/alerts/groups`,
//! `GET|POST /api/v2/silences`, `GET|DELETE /api/v2/silence/{id}`,
//! `GET /api/v2/status` and `GET /api/v2/receivers`. JSON field names are
//! Alertmanager's; malformed requests get a 400 whose body is a JSON string
//! saying why. Alerts show the receivers of the routes they took and the
//! alerts inhibiting them (`inhibitedBy`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, SecondsFormat, Utc};
use regex::Regex;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vigie_model::{Alert, AlertState, Labels};

use crate::AlertingError;
use crate::config::{AlertingConfig, Resolved};
use crate::dispatch::{
    Dispatcher, Durable, HeldAlert, ReceiverNotifier, Shared, build_notifiers, log_warnings,
    now_ms, receiver_names, run_shared, targets_of, utc,
};
use crate::history::History;
use crate::outbox::{Outbox, outbox_dir};
use crate::silence::{
    Matcher, PostableSilence, Silence, SilenceError, SilenceState, Silences, all_match,
    silences_path, valid_label_name,
};
use crate::state::{StateFile, state_path};

/// The running alerting task.
pub type AlertingTask = JoinHandle<Result<(), AlertingError>>;

/// Starts alerting: checks `config`, builds its notifiers, loads the
/// silences persisted under `data_dir` (`<data_dir>/alerting/silences.json`;
/// `None` keeps everything in memory), the notification log and
/// acknowledgements (`state.json`), opens the durable outbox there
/// (`<data_dir>/alerting/outbox/`, re-sending what it holds) and the
/// notification history (`notifications.jsonl`), spawns the run loop on
/// `subscriber` until `shutdown`, and returns the API router sharing its
/// state with the loop.
pub fn start(
    config: AlertingConfig,
    data_dir: Option<&Path>,
    subscriber: Box<dyn vigie_bus::Subscriber>,
    shutdown: CancellationToken,
) -> Result<(Router, AlertingTask), AlertingError> {
    start_with_peers(config, data_dir, subscriber, shutdown, None)
}

/// [`start`] as one of several replicas ([`crate::ha`]): `peers` says
/// whether this process leads and where its notification log goes;
/// `subscriber` must deliver `vigie.nflog` as well as `vigie.alerts`.
pub fn start_with_peers(
    config: AlertingConfig,
    data_dir: Option<&Path>,
    subscriber: Box<dyn vigie_bus::Subscriber>,
    shutdown: CancellationToken,
    peers: Option<crate::ha::Peers>,
) -> Result<(Router, AlertingTask), AlertingError> {
    let problems = config.problems();
    if !problems.is_empty() {
        return Err(AlertingError::Config(problems));
    }
    let resolved = config.resolve()?;
    log_warnings(&resolved.warnings);
    let notifiers = build_notifiers(&resolved.config)?;
    let silences = match data_dir {
        Some(dir) => {
            let path = silences_path(dir);
            Silences::load(path.clone(), Utc::now())
                .map_err(|e| AlertingError::Silences(format!("{}: {e}", path.display())))?
        }
        None => Silences::in_memory(),
    };
    let durable = match data_dir {
        Some(dir) => {
            let path = outbox_dir(dir);
            let outbox = Outbox::open(path.clone())
                .map_err(|e| AlertingError::Outbox(format!("{}: {e}", path.display())))?;
            Durable {
                outbox: Some(outbox),
                history: Some(History::open(dir)),
                state: Some(StateFile::new(state_path(dir))),
                peers,
            }
        }
        None => Durable {
            peers,
            ..Durable::default()
        },
    };
    let (state, task) = spawn_loop(resolved, notifiers, silences, durable, subscriber, shutdown)?;
    Ok((router(state), task))
}

/// [`start`] with notifiers and silences given by the caller (in the
/// order [`build_notifiers`] gives for the resolved configuration);
/// returns the shared state (for [`router`]) and the run loop's task.
pub fn start_with_notifiers(
    config: AlertingConfig,
    notifiers: Vec<ReceiverNotifier>,
    silences: Silences,
    subscriber: Box<dyn vigie_bus::Subscriber>,
    shutdown: CancellationToken,
) -> Result<(Arc<Shared>, AlertingTask), AlertingError> {
    let resolved = config.resolve()?;
    spawn_loop(
        resolved,
        notifiers,
        silences,
        Durable::default(),
        subscriber,
        shutdown,
    )
}

fn spawn_loop(
    resolved: Resolved,
    notifiers: Vec<ReceiverNotifier>,
    silences: Silences,
    durable: Durable,
    subscriber: Box<dyn vigie_bus::Subscriber>,
    shutdown: CancellationToken,
) -> Result<(Arc<Shared>, AlertingTask), AlertingError> {
    let config = resolved.config;
    let mut dispatcher =
        Dispatcher::with_routing(&config, resolved.routing, targets_of(&notifiers))
            .with_silences(silences);
    if let Some(file) = &durable.state {
        let saved = file
            .load()
            .map_err(|e| AlertingError::State(format!("{}: {e}", file.path().display())))?;
        dispatcher.restore(saved, now_ms());
    }
    let state = Shared::durable(dispatcher, receiver_names(&config, &notifiers), durable);
    let loop_state = Arc::clone(&state);
    let task = tokio::spawn(async move {
        run_shared(loop_state, &config, notifiers, subscriber, shutdown).await
    });
    Ok((state, task))
}

/// The Alertmanager API v2 routes over `state`, with Vigie's own:
/// `GET /api/v1/notifications` (the history, when kept) and
/// `POST /api/v1/alerts/groups/{id}/ack`.
pub fn router(state: Arc<Shared>) -> Router {
    let mut extra = crate::ack::router(Arc::clone(&state));
    extra = extra.merge(crate::incident::router(Arc::clone(&state)));
    if let Some(history) = state.history() {
        extra = extra.merge(crate::history::router(history.clone()));
    }
    Router::new()
        .route("/api/v2/alerts", get(get_alerts).post(post_alerts))
        .route("/api/v2/alerts/groups", get(get_groups))
        .route("/api/v2/silences", get(get_silences).post(post_silence))
        .route(
            "/api/v2/silence/{id}",
            get(get_silence).delete(delete_silence),
        )
        .route("/api/v2/status", get(get_status))
        .route("/api/v2/receivers", get(get_receivers))
        .with_state(state)
        .merge(extra)
}

fn bad_request(reason: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, axum::Json(reason.into())).into_response()
}

fn not_found(reason: impl Into<String>) -> Response {
    (StatusCode::NOT_FOUND, axum::Json(reason.into())).into_response()
}

fn time(ms: i64) -> String {
    utc(ms).to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn time_of(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn label_map(labels: &Labels) -> Value {
    Value::Object(
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect(),
    )
}

/// The query parameters of the alert listings.
struct AlertFilter {
    matchers: Vec<Matcher>,
    active: bool,
    silenced: bool,
    inhibited: bool,
    unprocessed: bool,
    receiver: Option<Regex>,
}

fn params(query: Option<&str>) -> Result<Vec<(String, String)>, String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query.unwrap_or(""))
        .map_err(|e| format!("bad query string: {e}"))
}

fn parse_bool(name: &str, v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "y" | "on" => Ok(true),
        "false" | "0" | "no" | "n" | "off" => Ok(false),
        _ => Err(format!("{name}: {v:?} is not a boolean (true or false)")),
    }
}

fn matchers_of(params: &[(String, String)]) -> Result<Vec<Matcher>, String> {
    params
        .iter()
        .filter(|(k, _)| k == "filter")
        .map(|(_, v)| Matcher::parse(v).map_err(|e| e.to_string()))
        .collect()
}

impl AlertFilter {
    fn parse(query: Option<&str>) -> Result<Self, String> {
        let params = params(query)?;
        let mut f = AlertFilter {
            matchers: matchers_of(&params)?,
            active: true,
            silenced: true,
            inhibited: true,
            unprocessed: true,
            receiver: None,
        };
        for (k, v) in &params {
            match k.as_str() {
                "active" => f.active = parse_bool(k, v)?,
                "silenced" => f.silenced = parse_bool(k, v)?,
                "inhibited" => f.inhibited = parse_bool(k, v)?,
                "unprocessed" => f.unprocessed = parse_bool(k, v)?,
                "receiver" if !v.is_empty() => {
                    let re = Regex::new(&format!("^(?:{v})$"))
                        .map_err(|e| format!("receiver: bad regular expression {v:?}: {e}"))?;
                    f.receiver = Some(re);
                }
                _ => {}
            }
        }
        Ok(f)
    }

    /// Whether an alert shown with `receivers` passes.
    fn accepts(&self, a: &HeldAlert, receivers: &[String]) -> bool {
        if a.resolved || !all_match(&self.matchers, &a.labels) {
            return false;
        }
        if let Some(re) = &self.receiver
            && !receivers.iter().any(|r| re.is_match(r))
        {
            return false;
        }
        let silenced = !a.silenced_by.is_empty();
        let inhibited = !a.inhibited_by.is_empty();
        let suppressed = silenced || inhibited;
        // Vigie processes alerts as they arrive: never `unprocessed`.
        (self.active || suppressed)
            && (self.silenced || !silenced)
            && (self.inhibited || !inhibited)
    }
}

/// The receivers an alert's group notifies.
fn receivers_of(a: &HeldAlert, all: &[String]) -> Vec<String> {
    match &a.receiver {
        Some(r) => vec![r.clone()],
        None => all.to_vec(),
    }
}

fn gettable_alert(a: &HeldAlert, receivers: &[String]) -> Value {
    let state = if a.silenced_by.is_empty() && a.inhibited_by.is_empty() {
        "active"
    } else {
        "suppressed"
    };
    json!({
        "annotations": label_map(&a.annotations),
        "endsAt": time(a.ends_at_ms),
        "fingerprint": a.fingerprint,
        "receivers": receivers.iter().map(|r| json!({"name": r})).collect::<Vec<_>>(),
        "startsAt": time(a.starts_at_ms),
        "status": {
            "inhibitedBy": a.inhibited_by,
            "silencedBy": a.silenced_by,
            "state": state,
        },
        "updatedAt": time(a.updated_ms),
        "generatorURL": a.generator_url,
        "labels": label_map(&a.labels),
    })
}

/// The alerts held, one entry per group they are in, that pass the filter.
fn listed_alerts(state: &Shared, query: Option<&str>) -> Result<Vec<HeldAlert>, String> {
    let filter = AlertFilter::parse(query)?;
    let mut alerts = state.lock().alerts(now_ms());
    alerts.retain(|a| filter.accepts(a, &receivers_of(a, state.receivers())));
    alerts.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
    Ok(alerts)
}

async fn get_alerts(State(state): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    match listed_alerts(&state, q.as_deref()) {
        Ok(alerts) => {
            // One entry per alert, with the receivers of all its groups.
            let mut by_fp: BTreeMap<&str, (&HeldAlert, Vec<String>)> = BTreeMap::new();
            for a in &alerts {
                let entry = by_fp
                    .entry(a.fingerprint.as_str())
                    .or_insert_with(|| (a, Vec::new()));
                for r in receivers_of(a, state.receivers()) {
                    if !entry.1.contains(&r) {
                        entry.1.push(r);
                    }
                }
            }
            let body: Vec<Value> = by_fp
                .values()
                .map(|(a, receivers)| gettable_alert(a, receivers))
                .collect();
            axum::Json(body).into_response()
        }
        Err(reason) => bad_request(reason),
    }
}

async fn get_groups(State(state): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    let alerts = match listed_alerts(&state, q.as_deref()) {
        Ok(a) => a,
        Err(reason) => return bad_request(reason),
    };
    let filter_receiver = match AlertFilter::parse(q.as_deref()) {
        Ok(f) => f.receiver,
        Err(reason) => return bad_request(reason),
    };
    // Groups by receiver and key (a route key is part of the group key).
    let mut by_group: BTreeMap<(String, &str), (&Labels, Vec<&HeldAlert>)> = BTreeMap::new();
    for a in &alerts {
        for receiver in receivers_of(a, state.receivers()) {
            by_group
                .entry((receiver, a.group_key.as_str()))
                .or_insert_with(|| (&a.group_labels, Vec::new()))
                .1
                .push(a);
        }
    }
    let mut out = Vec::new();
    for ((receiver, _), (labels, group)) in &by_group {
        if filter_receiver
            .as_ref()
            .is_some_and(|re| !re.is_match(receiver))
        {
            continue;
        }
        out.push(json!({
            "labels": label_map(labels),
            "receiver": {"name": receiver},
            "alerts": group.iter().map(|a| gettable_alert(a, std::slice::from_ref(receiver))).collect::<Vec<_>>(),
        }));
    }
    axum::Json(out).into_response()
}

/// Alertmanager's `postableAlert`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostableAlert {
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    starts_at: Option<DateTime<Utc>>,
    #[serde(default)]
    ends_at: Option<DateTime<Utc>>,
    #[serde(default, rename = "generatorURL")]
    generator_url: String,
}

/// Go's zero time (`0001-01-01T00:00:00Z`) and earlier mean "not set".
fn set_time(t: Option<DateTime<Utc>>) -> Option<i64> {
    t.map(|t| t.timestamp_millis()).filter(|ms| *ms > 0)
}

fn to_alert(p: PostableAlert, now: i64) -> Result<(Alert, Option<i64>), String> {
    let labels: Labels = p.labels.iter().collect();
    if labels.is_empty() {
        return Err("at least one label pair required".into());
    }
    if let Some((bad, _)) = labels.iter().find(|(k, _)| !valid_label_name(k)) {
        return Err(format!("invalid label name {bad:?}"));
    }
    let ends = set_time(p.ends_at);
    let starts = set_time(p.starts_at).or(ends).unwrap_or(now);
    if let Some(end) = ends
        && end < starts
    {
        return Err(format!(
            "start time must be before end time (alert {labels})"
        ));
    }
    let alert = Alert {
        labels,
        annotations: p.annotations.iter().collect(),
        state: AlertState::Firing,
        active_at_ms: starts,
        fired_at_ms: Some(starts),
        resolved_at_ms: None,
        value: 0.0,
        generator_url: p.generator_url,
    };
    Ok((alert, ends))
}

async fn post_alerts(State(state): State<Arc<Shared>>, body: Bytes) -> Response {
    let posted: Vec<PostableAlert> = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return bad_request(format!("body is not a list of postable alerts: {e}")),
    };
    let now = now_ms();
    let mut errors = Vec::new();
    let mut valid = Vec::new();
    for p in posted {
        match to_alert(p, now) {
            Ok(a) => valid.push(a),
            Err(e) => errors.push(e),
        }
    }
    {
        let mut d = state.lock();
        for (alert, ends) in &valid {
            d.receive_posted(alert, *ends, now);
        }
    }
    if errors.is_empty() {
        StatusCode::OK.into_response()
    } else {
        bad_request(errors.join("; "))
    }
}

fn gettable_silence(s: &Silence, now: DateTime<Utc>) -> Value {
    json!({
        "id": s.id,
        "status": {"state": s.state(now).as_str()},
        "updatedAt": time_of(s.updated_at),
        "matchers": s.matchers.iter().map(|m| json!({
            "name": m.name, "value": m.value, "isRegex": m.is_regex, "isEqual": m.is_equal,
        })).collect::<Vec<_>>(),
        "startsAt": time_of(s.starts_at),
        "endsAt": time_of(s.ends_at),
        "createdBy": s.created_by,
        "comment": s.comment,
    })
}

async fn get_silences(State(state): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    let filter = match params(q.as_deref()).and_then(|p| matchers_of(&p)) {
        Ok(f) => f,
        Err(reason) => return bad_request(reason),
    };
    let now = Utc::now();
    let d = state.lock();
    let mut silences: Vec<&Silence> = d
        .silences()
        .iter()
        .filter(|s| {
            // As Alertmanager: the filter applies to the silence's own
            // matchers, read as a label set.
            let as_labels: Labels = s
                .matchers
                .iter()
                .map(|m| (m.name.as_str(), m.value.as_str()))
                .collect();
            all_match(&filter, &as_labels)
        })
        .collect();
    // Active by end, then pending by start, then expired, latest first.
    silences.sort_by(|a, b| {
        let rank = |s: &Silence| match s.state(now) {
            SilenceState::Active => 0,
            SilenceState::Pending => 1,
            SilenceState::Expired => 2,
        };
        rank(a).cmp(&rank(b)).then_with(|| match a.state(now) {
            SilenceState::Active => a.ends_at.cmp(&b.ends_at),
            SilenceState::Pending => a.starts_at.cmp(&b.starts_at),
            SilenceState::Expired => b.ends_at.cmp(&a.ends_at),
        })
    });
    let body: Vec<Value> = silences.iter().map(|s| gettable_silence(s, now)).collect();
    drop(d);
    axum::Json(body).into_response()
}

async fn post_silence(State(state): State<Arc<Shared>>, body: Bytes) -> Response {
    let posted: PostableSilence = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return bad_request(format!("body is not a postable silence: {e}")),
    };
    let result = state.lock().silences_mut().set(posted, Utc::now());
    match result {
        Ok(id) => axum::Json(json!({ "silenceID": id })).into_response(),
        Err(e @ SilenceError::NotFound(_)) => not_found(e.to_string()),
        Err(e) => bad_request(e.to_string()),
    }
}

async fn get_silence(State(state): State<Arc<Shared>>, UrlPath(id): UrlPath<String>) -> Response {
    let d = state.lock();
    match d.silences().get(&id) {
        Some(s) => axum::Json(gettable_silence(s, Utc::now())).into_response(),
        None => not_found(format!("silence {id} not found")),
    }
}

async fn delete_silence(
    State(state): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let result = state.lock().silences_mut().expire(&id, Utc::now());
    match result {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e @ SilenceError::NotFound(_)) => not_found(e.to_string()),
        Err(e) => bad_request(e.to_string()),
    }
}

async fn get_status(State(state): State<Arc<Shared>>) -> Response {
    axum::Json(json!({
        "cluster": {"name": "", "status": "disabled", "peers": []},
        "versionInfo": {
            "branch": "",
            "buildDate": "",
            "buildUser": "",
            "goVersion": "",
            "revision": "",
            "version": concat!("vigie-", env!("CARGO_PKG_VERSION")),
        },
        "config": {"original": ""},
        "uptime": time(state.started_ms()),
    }))
    .into_response()
}

async fn get_receivers(State(state): State<Arc<Shared>>) -> Response {
    let body: Vec<Value> = state
        .receivers()
        .iter()
        .map(|r| json!({ "name": r }))
        .collect();
    axum::Json(body).into_response()
}
