//! Rule groups, alert state and the evaluation loop.
//!
//! [`evaluate_group`] is the one evaluation step, run against any
//! [`RuleStore`] at any time: the live [`RuleManager`] calls it on each
//! group's interval over [`Storage`], and the rule unit tester
//! ([`super::unittest`]) steps it from time 0 over an in-memory store.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};
use vigie_bus::{Message, Publisher};
use vigie_model::schema::samples_to_batch;
use vigie_model::{Alert, AlertState, Labels, METRIC_NAME_LABEL, Sample, codec, topics};

use super::template::{TemplateData, expand_or_error};
use crate::AnalyzerError;
use crate::metrics::{ALERTS, ERRORS, RULE_EVALS};
use crate::promql::value::stale_nan;
use crate::promql::{Engine, LabelSet, MemoryStore, Queryable, Value};
use crate::storage::Storage;

/// Where a group reads series from and writes what its rules produce
/// (recorded series, `ALERTS`, `ALERTS_FOR_STATE`, staleness markers).
#[async_trait]
pub trait RuleStore: Queryable {
    /// Stores `samples` (labels with `__name__`, value) at `t_ms`; later
    /// queries (even by the next rule of the same evaluation) see them.
    async fn write(&self, samples: &[(LabelSet, f64)], t_ms: i64) -> Result<(), AnalyzerError>;
}

#[async_trait]
impl RuleStore for Storage {
    async fn write(&self, samples: &[(LabelSet, f64)], t_ms: i64) -> Result<(), AnalyzerError> {
        if samples.is_empty() {
            return Ok(());
        }
        let rows: Vec<Sample> = samples
            .iter()
            .map(|(labels, v)| {
                let mut labels = labels.clone();
                let name = labels.remove(METRIC_NAME_LABEL).unwrap_or_default();
                Sample::new(name, labels.into_iter().collect(), t_ms, *v)
            })
            .collect();
        let batch = samples_to_batch(&rows)
            .map_err(|e| crate::promql::value::exec(format!("cannot store rule output: {e}")))?;
        self.append(batch);
        Ok(())
    }
}

/// A [`MemoryStore`] that rules can write to (the unit tester's store).
#[derive(Debug, Default)]
pub struct SharedMemoryStore {
    inner: tokio::sync::RwLock<MemoryStore>,
}

impl SharedMemoryStore {
    /// Wraps `store`.
    pub fn new(store: MemoryStore) -> Self {
        Self {
            inner: tokio::sync::RwLock::new(store),
        }
    }

    /// Adds a point (labels include `__name__`).
    pub async fn add(&self, labels: LabelSet, t_ms: i64, v: f64) {
        self.inner.write().await.add(labels, t_ms, v);
    }
}

#[async_trait]
impl Queryable for SharedMemoryStore {
    async fn select(
        &self,
        matchers: &promql_parser::label::Matchers,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<crate::promql::Selected, AnalyzerError> {
        self.inner
            .read()
            .await
            .select(matchers, start_ms, end_ms)
            .await
    }
}

#[async_trait]
impl RuleStore for SharedMemoryStore {
    async fn write(&self, samples: &[(LabelSet, f64)], t_ms: i64) -> Result<(), AnalyzerError> {
        let mut s = self.inner.write().await;
        for (labels, v) in samples {
            s.add(labels.clone(), t_ms, *v);
        }
        Ok(())
    }
}

/// Series a rule writes: labels (with `__name__`) and value.
pub type RuleSeries = Vec<(LabelSet, f64)>;

/// What an evaluation needs besides the data.
#[derive(Debug, Clone)]
pub struct EvalContext {
    /// The PromQL engine settings (lookback, subquery step).
    pub engine: Engine,
    /// Labels available to templates as `$externalLabels`.
    pub external_labels: BTreeMap<String, String>,
    /// `$externalURL` in templates, and the base of `generatorURL`.
    pub external_url: String,
    /// How often a still-firing alert is sent again.
    pub resend: Duration,
}

impl Default for EvalContext {
    fn default() -> Self {
        Self {
            engine: Engine::default(),
            external_labels: BTreeMap::new(),
            external_url: String::new(),
            resend: Duration::from_secs(60),
        }
    }
}

/// Health of a rule after its last evaluation (the rules API shows it).
#[derive(Debug, Clone, Default)]
pub struct RuleHealth {
    /// Time of the last evaluation (ms), 0 before the first.
    pub last_eval_ms: i64,
    /// How long the last evaluation took.
    pub eval_duration: Duration,
    /// The last evaluation's error, if it failed.
    pub last_error: Option<String>,
}

/// One alert held by a rule, with what its state machine needs.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Active {
    alert: Alert,
    /// Labels of the series that produced it (no `__name__`), matched
    /// against `resolve_expr`.
    source: Labels,
    last_sent: Option<i64>,
    keep_firing_since: Option<i64>,
}

/// An alerting rule and the alerts it currently holds.
#[derive(Debug)]
pub struct AlertingRule {
    name: String,
    expr_text: String,
    for_: Duration,
    keep_firing_for: Duration,
    resolve_expr: Option<String>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    active: HashMap<String, Active>,
    health: RuleHealth,
}

impl AlertingRule {
    /// A rule named `name` firing when `expr` holds for `for_`.
    pub fn new(
        name: String,
        expr_text: String,
        for_: Duration,
        labels: BTreeMap<String, String>,
        annotations: BTreeMap<String, String>,
    ) -> Self {
        Self {
            name,
            expr_text,
            for_,
            keep_firing_for: Duration::ZERO,
            resolve_expr: None,
            labels,
            annotations,
            active: HashMap::new(),
            health: RuleHealth::default(),
        }
    }

    /// Keeps a firing alert firing for `d` after its condition cleared
    /// (Prometheus' `keep_firing_for`).
    pub fn with_keep_firing_for(mut self, d: Duration) -> Self {
        self.keep_firing_for = d;
        self
    }

    /// Hysteresis (Vigie extension): a firing alert whose series left
    /// `expr`'s result resolves only once `resolve_expr` returns a sample
    /// with the same labels (see docs/rules.md).
    pub fn with_resolve_expr(mut self, expr: Option<String>) -> Self {
        self.resolve_expr = expr;
        self
    }

    /// The alert name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The PromQL expression.
    pub fn expr(&self) -> &str {
        &self.expr_text
    }

    /// The `for` duration.
    pub fn for_duration(&self) -> Duration {
        self.for_
    }

    /// The `keep_firing_for` duration (zero when unset).
    pub fn keep_firing_for(&self) -> Duration {
        self.keep_firing_for
    }

    /// The hysteresis expression, if any.
    pub fn resolve_expr(&self) -> Option<&str> {
        self.resolve_expr.as_deref()
    }

    /// The rule's static labels (e.g. `severity`), as written in the rule
    /// file; templates in them are expanded per alert.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }

    /// The rule's annotations (e.g. `summary`, `description`,
    /// `runbook_url`), as written in the rule file, templates unexpanded.
    pub fn annotations(&self) -> &BTreeMap<String, String> {
        &self.annotations
    }

    fn export_state(&self) -> Vec<(String, Active)> {
        self.active
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn import_state(&mut self, state: Vec<(String, Active)>) {
        self.active = state.into_iter().collect();
    }

    /// Alerts currently pending or firing.
    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.active.values().map(|a| &a.alert)
    }

    /// Health after the last evaluation.
    pub fn health(&self) -> &RuleHealth {
        &self.health
    }

    /// Applies the rule's expression result at `now_ms` (each element:
    /// the series labels with `__name__` if the expression kept it, and
    /// the value); `resolved_by` is `resolve_expr`'s result (labels without
    /// `__name__`), when the rule has one. Returns the alerts to send
    /// (newly firing, resolved, and firing ones due for a resend) and the
    /// `ALERTS`/`ALERTS_FOR_STATE` samples, or an error (duplicate label
    /// sets, `limit` exceeded) that leaves no alerts behind for a limit.
    pub fn eval(
        &mut self,
        now_ms: i64,
        result: &[(LabelSet, f64)],
        resolved_by: Option<&HashSet<Labels>>,
        limit: usize,
        ctx: &EvalContext,
    ) -> Result<(Vec<Alert>, RuleSeries), String> {
        let mut fresh: HashMap<String, Active> = HashMap::new();
        for (series_labels, value) in result {
            let value = *value;
            let data = TemplateData {
                labels: series_labels,
                external_labels: &ctx.external_labels,
                external_url: &ctx.external_url,
                value,
            };
            let mut source = series_labels.clone();
            source.remove(METRIC_NAME_LABEL);
            let source: Labels = source.into_iter().collect();
            let mut labels = source.clone();
            for (k, v) in &self.labels {
                let x = expand_or_error(v, &data);
                if x.is_empty() {
                    labels.remove(k);
                } else {
                    labels.insert(k.clone(), x);
                }
            }
            labels.insert("alertname", self.name.clone());
            let annotations: Labels = self
                .annotations
                .iter()
                .map(|(k, v)| (k.clone(), expand_or_error(v, &data)))
                .collect();
            let alert = Alert {
                labels,
                annotations,
                state: AlertState::Pending,
                active_at_ms: now_ms,
                fired_at_ms: None,
                resolved_at_ms: None,
                value,
                generator_url: format!(
                    "{}/graph?g0.expr={}",
                    ctx.external_url,
                    self.expr_text.replace(' ', "%20")
                ),
            };
            let fp = alert.fingerprint();
            if fresh.contains_key(&fp) {
                return Err(
                    "vector contains metrics with the same labelset after applying alert labels"
                        .into(),
                );
            }
            fresh.insert(
                fp,
                Active {
                    alert,
                    source,
                    last_sent: None,
                    keep_firing_since: None,
                },
            );
        }
        let seen: HashSet<String> = fresh.keys().cloned().collect();
        for (fp, a) in fresh {
            match self.active.get_mut(&fp) {
                Some(existing) => {
                    existing.alert.value = a.alert.value;
                    existing.alert.annotations = a.alert.annotations;
                    existing.source = a.source;
                }
                None => {
                    self.active.insert(fp, a);
                }
            }
        }
        let mut out = Vec::new();
        let mut series = Vec::new();
        let resend_ms = ctx.resend.as_millis() as i64;
        let for_ms = self.for_.as_millis() as i64;
        let keep_ms = self.keep_firing_for.as_millis() as i64;
        let hysteresis = self.resolve_expr.is_some();
        self.active.retain(|fp, a| {
            if seen.contains(fp) {
                a.keep_firing_since = None;
            } else {
                let firing = a.alert.state == AlertState::Firing;
                // Hysteresis: a firing alert stays until resolve_expr says otherwise.
                let held =
                    firing && hysteresis && !resolved_by.is_some_and(|r| r.contains(&a.source));
                if held {
                    a.keep_firing_since = None;
                } else {
                    let mut keep = false;
                    if firing && keep_ms > 0 {
                        let since = *a.keep_firing_since.get_or_insert(now_ms);
                        keep = now_ms - since < keep_ms;
                    }
                    if !keep {
                        if firing {
                            a.alert.state = AlertState::Resolved;
                            a.alert.resolved_at_ms = Some(now_ms);
                            out.push(a.alert.clone());
                        }
                        return false;
                    }
                }
            }
            if a.alert.state == AlertState::Pending && now_ms - a.alert.active_at_ms >= for_ms {
                a.alert.state = AlertState::Firing;
                a.alert.fired_at_ms = Some(now_ms);
            }
            if a.alert.state == AlertState::Firing
                && a.last_sent.is_none_or(|t| now_ms - t >= resend_ms)
            {
                a.last_sent = Some(now_ms);
                out.push(a.alert.clone());
            }
            true
        });
        if limit > 0 && self.active.len() > limit {
            let n = self.active.len();
            self.active.clear();
            return Err(format!("exceeded limit of {limit} with {n} alerts"));
        }
        for a in self.active.values() {
            // Like Prometheus: the rule's raw labels, overlaid by the alert's.
            let mut l: LabelSet = self.labels.clone();
            for (k, v) in a.alert.labels.iter() {
                l.insert(k.to_string(), v.to_string());
            }
            l.insert("alertname".into(), self.name.clone());
            let mut for_state = l.clone();
            for_state.insert(METRIC_NAME_LABEL.into(), "ALERTS_FOR_STATE".into());
            l.insert(METRIC_NAME_LABEL.into(), "ALERTS".into());
            let state = match a.alert.state {
                AlertState::Firing => "firing",
                _ => "pending",
            };
            l.insert("alertstate".into(), state.into());
            series.push((l, 1.0));
            series.push((for_state, a.alert.active_at_ms.div_euclid(1000) as f64));
        }
        Ok((out, series))
    }
}

/// A recording rule: stores the result of its expression as a new series.
#[derive(Debug)]
pub struct RecordingRule {
    record: String,
    expr_text: String,
    labels: BTreeMap<String, String>,
    health: RuleHealth,
}

impl RecordingRule {
    /// A rule storing `expr` as the series `record` with extra `labels`.
    pub fn new(record: String, expr_text: String, labels: BTreeMap<String, String>) -> Self {
        Self {
            record,
            expr_text,
            labels,
            health: RuleHealth::default(),
        }
    }

    /// The recorded metric name.
    pub fn record(&self) -> &str {
        &self.record
    }

    /// The PromQL expression.
    pub fn expr(&self) -> &str {
        &self.expr_text
    }

    /// The labels added to (or replaced in) every recorded series.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }

    /// Health after the last evaluation.
    pub fn health(&self) -> &RuleHealth {
        &self.health
    }

    /// The series to record from the expression's result.
    fn output(
        &self,
        result: Vec<(LabelSet, f64)>,
        limit: usize,
    ) -> Result<Vec<(LabelSet, f64)>, String> {
        let mut out = Vec::with_capacity(result.len());
        let mut seen = HashSet::new();
        for (mut labels, v) in result {
            labels.insert(METRIC_NAME_LABEL.into(), self.record.clone());
            for (k, val) in &self.labels {
                if val.is_empty() {
                    labels.remove(k);
                } else {
                    labels.insert(k.clone(), val.clone());
                }
            }
            if !seen.insert(labels.clone()) {
                return Err(
                    "vector contains metrics with the same labelset after applying rule labels"
                        .into(),
                );
            }
            out.push((labels, v));
        }
        if limit > 0 && out.len() > limit {
            return Err(format!(
                "exceeded limit of {limit} with {} series",
                out.len()
            ));
        }
        Ok(out)
    }
}

/// A rule of a group, by position in its kind's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleRef {
    /// An alerting rule (index into [`RuleGroup::rules`]).
    Alert(usize),
    /// A recording rule (index into [`RuleGroup::recording_rules`]).
    Record(usize),
}

/// A group of rules evaluated together on one interval, in file order
/// (a rule sees what the rules before it recorded at the same time).
#[derive(Debug)]
pub struct RuleGroup {
    name: String,
    file: PathBuf,
    interval: Duration,
    rules: Vec<AlertingRule>,
    recording: Vec<RecordingRule>,
    order: Vec<RuleRef>,
    limit: usize,
    query_offset: Duration,
    /// Series each rule (by position in `order`) wrote at the last
    /// evaluation: those missing now get a staleness marker.
    written: Vec<HashSet<LabelSet>>,
    last_eval_ms: i64,
    eval_duration: Duration,
}

impl RuleGroup {
    /// A group evaluating its recording rules, then its alerting rules.
    pub fn new(
        name: String,
        file: PathBuf,
        interval: Duration,
        rules: Vec<AlertingRule>,
        recording: Vec<RecordingRule>,
    ) -> Self {
        let order = (0..recording.len())
            .map(RuleRef::Record)
            .chain((0..rules.len()).map(RuleRef::Alert))
            .collect();
        Self {
            name,
            file,
            interval,
            rules,
            recording,
            order,
            limit: 0,
            query_offset: Duration::ZERO,
            written: Vec::new(),
            last_eval_ms: 0,
            eval_duration: Duration::ZERO,
        }
    }

    /// Sets the evaluation order (every rule exactly once).
    pub fn with_order(mut self, order: Vec<RuleRef>) -> Self {
        if order.len() == self.rules.len() + self.recording.len() {
            self.order = order;
        }
        self
    }

    /// Sets `limit` (0 = none): an alerting rule with more alerts, or a
    /// recording rule with more series, fails (Prometheus' group `limit`).
    pub fn with_limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Sets `query_offset`: queries run that far in the past.
    pub fn with_query_offset(mut self, offset: Duration) -> Self {
        self.query_offset = offset;
        self
    }

    /// Group name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// File the group came from.
    pub fn file(&self) -> &std::path::Path {
        &self.file
    }

    /// Evaluation interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The group's `limit` (0 = none).
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The group's `query_offset`.
    pub fn query_offset(&self) -> Duration {
        self.query_offset
    }

    /// Number of rules, alerting and recording.
    pub fn rule_count(&self) -> usize {
        self.rules.len() + self.recording.len()
    }

    /// The alerting rules.
    pub fn rules(&self) -> &[AlertingRule] {
        &self.rules
    }

    /// The recording rules.
    pub fn recording_rules(&self) -> &[RecordingRule] {
        &self.recording
    }

    /// The evaluation order.
    pub fn order(&self) -> &[RuleRef] {
        &self.order
    }

    /// Time of the last evaluation (ms), 0 before the first.
    pub fn last_eval_ms(&self) -> i64 {
        self.last_eval_ms
    }

    /// How long the last evaluation took.
    pub fn eval_duration(&self) -> Duration {
        self.eval_duration
    }
}

/// What one evaluation of a group produced.
#[derive(Debug, Default)]
pub struct GroupEval {
    /// Alerts to send: newly firing, resolved, and firing ones due again.
    pub alerts: Vec<Alert>,
    /// Number of series written (recorded, `ALERTS`, staleness markers).
    pub written: usize,
    /// Rules that failed: (rule name, error).
    pub errors: Vec<(String, String)>,
}

/// An instant vector as `(labels, value)` pairs; a scalar is one sample
/// without labels.
fn vector(value: Value) -> Result<Vec<(LabelSet, f64)>, AnalyzerError> {
    match value {
        Value::Vector(samples) => Ok(samples.into_iter().map(|s| (s.metric, s.v)).collect()),
        Value::Scalar(v) => Ok(vec![(LabelSet::new(), v)]),
        other => Err(crate::promql::value::bad(format!(
            "rule expressions must return an instant vector, not {}",
            other.type_name()
        ))),
    }
}

async fn query(
    ctx: &EvalContext,
    store: &dyn RuleStore,
    expr: &str,
    t_ms: i64,
) -> Result<Vec<(LabelSet, f64)>, String> {
    let q: &dyn Queryable = store;
    match ctx.engine.instant(q, expr, t_ms).await {
        Ok(r) => vector(r.value).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// Evaluates every rule of `group` once at `now_ms`, in order, over
/// `store`: recorded series, `ALERTS` and `ALERTS_FOR_STATE` are written
/// at `now_ms` (and staleness markers for series a rule no longer
/// produces), so later rules and later evaluations see them. A failing
/// rule keeps its alerts as they were (like Prometheus) and is reported
/// in [`GroupEval::errors`].
pub async fn evaluate_group(
    group: &mut RuleGroup,
    store: &dyn RuleStore,
    now_ms: i64,
    ctx: &EvalContext,
) -> GroupEval {
    let started = Instant::now();
    let mut result = GroupEval::default();
    let query_t = now_ms - group.query_offset.as_millis() as i64;
    if group.written.len() != group.order.len() {
        group.written = vec![HashSet::new(); group.order.len()];
    }
    for pos in 0..group.order.len() {
        let rule_started = Instant::now();
        let (name, outcome) = match group.order[pos] {
            RuleRef::Record(i) => {
                let r = &group.recording[i];
                let out = match query(ctx, store, &r.expr_text, query_t).await {
                    Ok(rows) => r.output(rows, group.limit),
                    Err(e) => Err(e),
                };
                (r.record.clone(), out)
            }
            RuleRef::Alert(i) => {
                let r = &group.rules[i];
                let rows = query(ctx, store, &r.expr_text, query_t).await;
                let resolved = match (&rows, &r.resolve_expr) {
                    (Ok(_), Some(e)) => match query(ctx, store, e, query_t).await {
                        Ok(rows) => Ok(Some(
                            rows.into_iter()
                                .map(|(mut l, _)| {
                                    l.remove(METRIC_NAME_LABEL);
                                    l.into_iter().collect::<Labels>()
                                })
                                .collect::<HashSet<Labels>>(),
                        )),
                        Err(e) => Err(format!("resolve_expr: {e}")),
                    },
                    _ => Ok(None),
                };
                let limit = group.limit;
                let r = &mut group.rules[i];
                let out = match (rows, resolved) {
                    (Ok(rows), Ok(resolved)) => r
                        .eval(now_ms, &rows, resolved.as_ref(), limit, ctx)
                        .map(|(alerts, series)| {
                            result.alerts.extend(alerts);
                            series
                        }),
                    (Err(e), _) | (_, Err(e)) => Err(e),
                };
                (r.name.clone(), out)
            }
        };
        let health = RuleHealth {
            last_eval_ms: now_ms,
            eval_duration: rule_started.elapsed(),
            last_error: outcome.as_ref().err().cloned(),
        };
        match group.order[pos] {
            RuleRef::Record(i) => group.recording[i].health = health,
            RuleRef::Alert(i) => group.rules[i].health = health,
        }
        match outcome {
            Ok(mut series) => {
                let now_set: HashSet<LabelSet> = series.iter().map(|(l, _)| l.clone()).collect();
                for gone in group.written[pos].difference(&now_set) {
                    series.push((gone.clone(), stale_nan()));
                }
                if let Err(e) = store.write(&series, now_ms).await {
                    result.errors.push((name.clone(), e.to_string()));
                }
                result.written += series.len();
                group.written[pos] = now_set;
            }
            Err(e) => result.errors.push((name, e)),
        }
    }
    group.last_eval_ms = now_ms;
    group.eval_duration = started.elapsed();
    result
}

/// Runs rule groups and publishes their alerts.
pub struct RuleManager {
    groups: std::sync::RwLock<Vec<Arc<tokio::sync::Mutex<RuleGroup>>>>,
    sources: Option<(Vec<std::path::PathBuf>, Duration)>,
    reloaded: tokio::sync::Notify,
    storage: Arc<Storage>,
    ctx: EvalContext,
    publisher: Arc<dyn Publisher>,
    state_file: Option<std::path::PathBuf>,
}

/// Saved alert state: `file\0group\0rule` → the rule's alerts.
type SavedState = BTreeMap<String, Vec<(String, Active)>>;

fn rule_key(group: &RuleGroup, rule: &AlertingRule) -> String {
    format!("{}\0{}\0{}", group.file.display(), group.name, rule.name)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl RuleManager {
    /// A manager for `groups` querying and recording into `storage` and
    /// publishing alerts to `publisher`.
    pub fn new(
        groups: Vec<RuleGroup>,
        storage: Arc<Storage>,
        publisher: Arc<dyn Publisher>,
        lookback: Duration,
        resend: Duration,
        external_url: String,
    ) -> Self {
        Self {
            groups: std::sync::RwLock::new(
                groups
                    .into_iter()
                    .map(|g| Arc::new(tokio::sync::Mutex::new(g)))
                    .collect(),
            ),
            sources: None,
            reloaded: tokio::sync::Notify::new(),
            storage,
            ctx: EvalContext {
                engine: Engine {
                    lookback_ms: lookback.as_millis() as i64,
                    ..Engine::default()
                },
                external_labels: BTreeMap::new(),
                external_url,
                resend,
            },
            publisher,
            state_file: None,
        }
    }

    /// Keeps pending and firing alerts (with their `for` clocks) in
    /// `path`, written after every group evaluation and read by
    /// [`RuleManager::restore_state`], so a restart neither forgets an
    /// alert that was about to fire nor re-pages one that fired.
    pub fn with_state_file(mut self, path: std::path::PathBuf) -> Self {
        self.state_file = Some(path);
        self
    }

    /// Loads the alert state saved by a previous run, matching rules by
    /// file, group and name; returns the number of alerts restored.
    pub async fn restore_state(&self) -> Result<usize, AnalyzerError> {
        let Some(path) = &self.state_file else {
            return Ok(0);
        };
        let io = |source| AnalyzerError::Io {
            path: path.clone(),
            source,
        };
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io(e)),
        };
        let mut saved: SavedState =
            ciborium::from_reader(std::io::BufReader::new(file)).map_err(|e| {
                io(std::io::Error::other(format!(
                    "unreadable alert state: {e}"
                )))
            })?;
        let mut restored = 0;
        for g in &self.groups() {
            let mut g = g.lock().await;
            let keys: Vec<String> = g.rules.iter().map(|r| rule_key(&g, r)).collect();
            for (rule, key) in g.rules.iter_mut().zip(keys) {
                if let Some(state) = saved.remove(&key) {
                    restored += state.len();
                    rule.import_state(state);
                }
            }
        }
        Ok(restored)
    }

    async fn save_state(&self) -> Result<(), AnalyzerError> {
        let Some(path) = &self.state_file else {
            return Ok(());
        };
        let mut saved = SavedState::new();
        for g in &self.groups() {
            let g = g.lock().await;
            for r in &g.rules {
                if !r.active.is_empty() {
                    saved.insert(rule_key(&g, r), r.export_state());
                }
            }
        }
        let io = |source| AnalyzerError::Io {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        // Groups evaluate concurrently and each saves the whole state: one
        // temporary file per save, so two saves never rename the same one.
        static SAVES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = SAVES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = path.with_extension(format!("{n}.tmp"));
        let mut buf = Vec::new();
        ciborium::into_writer(&saved, &mut buf)
            .map_err(|e| io(std::io::Error::other(e.to_string())))?;
        std::fs::write(&tmp, buf).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// The current groups (a snapshot of the list; a reload swaps it).
    fn groups(&self) -> Vec<Arc<tokio::sync::Mutex<RuleGroup>>> {
        self.groups
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The rule files (and default interval) [`RuleManager::reload`] reads.
    pub fn with_sources(mut self, files: Vec<std::path::PathBuf>, interval: Duration) -> Self {
        self.sources = Some((files, interval));
        self
    }

    /// Re-reads the rule files. A file with any error leaves the running
    /// rules untouched and returns the error; otherwise the new groups
    /// replace the old ones, rules that still exist (same file, group and
    /// name) keep their pending and firing alerts, and evaluation restarts
    /// on the new intervals. Returns the number of rules loaded.
    pub async fn reload(&self) -> Result<usize, AnalyzerError> {
        let Some((files, interval)) = &self.sources else {
            return Ok(0);
        };
        let mut new = match super::load_paths(files, *interval) {
            Ok(g) => g,
            Err(e) => {
                ERRORS.with_label_values(&["rules", "reload"]).inc();
                warn!(error = %e, "rule reload failed; the previous rules keep running");
                return Err(e);
            }
        };
        let mut saved = SavedState::new();
        for g in &self.groups() {
            let g = g.lock().await;
            for r in &g.rules {
                saved.insert(rule_key(&g, r), r.export_state());
            }
        }
        let mut count = 0;
        for g in &mut new {
            let keys: Vec<String> = g.rules.iter().map(|r| rule_key(g, r)).collect();
            count += g.rule_count();
            for (rule, key) in g.rules.iter_mut().zip(keys) {
                if let Some(state) = saved.remove(&key) {
                    rule.import_state(state);
                }
            }
        }
        *self.groups.write().unwrap_or_else(|e| e.into_inner()) = new
            .into_iter()
            .map(|g| Arc::new(tokio::sync::Mutex::new(g)))
            .collect();
        self.reloaded.notify_one();
        info!(rules = count, "rules reloaded");
        Ok(count)
    }

    /// Sets the labels templates see as `$externalLabels`.
    pub fn with_external_labels(mut self, labels: BTreeMap<String, String>) -> Self {
        self.ctx.external_labels = labels;
        self
    }

    /// Alerts currently pending or firing, over all groups.
    pub async fn alerts(&self) -> Vec<Alert> {
        let mut out = Vec::new();
        for g in &self.groups() {
            let g = g.lock().await;
            for r in &g.rules {
                out.extend(r.alerts().cloned());
            }
        }
        out
    }

    /// Calls `f` with each group in turn (for the rules API).
    pub async fn for_each_group(&self, mut f: impl FnMut(&RuleGroup)) {
        for g in &self.groups() {
            f(&*g.lock().await);
        }
    }

    /// Number of groups.
    pub fn group_count(&self) -> usize {
        self.groups().len()
    }

    /// Evaluates one group now and publishes its alerts.
    async fn eval_group(&self, group: &tokio::sync::Mutex<RuleGroup>) {
        self.eval_group_at(group, now_ms()).await;
    }

    /// Evaluates one group at `now` and publishes its alerts.
    async fn eval_group_at(&self, group: &tokio::sync::Mutex<RuleGroup>, now: i64) {
        let mut g = group.lock().await;
        let res = evaluate_group(&mut g, self.storage.as_ref(), now, &self.ctx).await;
        for (rule, e) in &res.errors {
            // Like Prometheus: a failing rule keeps its alerts as they are.
            ERRORS.with_label_values(&["rules", "eval"]).inc();
            warn!(error = %e, rule = %rule, group = %g.name, "rule evaluation failed");
        }
        RULE_EVALS.inc();
        drop(g);
        if let Err(e) = self.save_state().await {
            ERRORS.with_label_values(&["rules", "state"]).inc();
            warn!(error = %e, "cannot save alert state");
        }
        self.update_gauges().await;
        for alert in res.alerts {
            info!(alert = alert.name(), state = ?alert.state, labels = %alert.labels, "alert");
            let payload = match codec::encode_alert(&alert) {
                Ok(p) => p,
                Err(e) => {
                    ERRORS.with_label_values(&["rules", "encode"]).inc();
                    warn!(error = %e, "cannot encode alert");
                    continue;
                }
            };
            let msg = Message::new(topics::ALERTS, alert.fingerprint().into_bytes(), payload);
            if let Err(e) = self.publisher.publish(msg).await {
                ERRORS.with_label_values(&["rules", "publish"]).inc();
                warn!(error = %e, alert = alert.name(), "cannot publish alert");
            }
        }
    }

    async fn update_gauges(&self) {
        let alerts = self.alerts().await;
        let firing = alerts
            .iter()
            .filter(|a| a.state == AlertState::Firing)
            .count();
        ALERTS.with_label_values(&["firing"]).set(firing as i64);
        ALERTS
            .with_label_values(&["pending"])
            .set((alerts.len() - firing) as i64);
    }

    /// Evaluates every group on its interval until `shutdown`; after a
    /// [`RuleManager::reload`] the tasks restart with the new groups.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let generation = shutdown.child_token();
            let mut tasks = Vec::new();
            for group in self.groups() {
                let this = self.clone();
                let stop = generation.clone();
                let (name, interval) = {
                    let g = group.lock().await;
                    (g.name.clone(), g.interval)
                };
                let span = info_span!("rules", group = %name);
                tasks.push(tokio::spawn(
                    async move {
                        let mut tick = tokio::time::interval(interval);
                        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                        loop {
                            tokio::select! {
                                _ = stop.cancelled() => break,
                                _ = tick.tick() => this.eval_group(&group).await,
                            }
                        }
                    }
                    .instrument(span),
                ));
            }
            let reload = tokio::select! {
                _ = shutdown.cancelled() => false,
                _ = self.reloaded.notified() => true,
            };
            generation.cancel();
            for t in tasks {
                let _ = t.await;
            }
            if !reload {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(for_secs: u64) -> AlertingRule {
        AlertingRule::new(
            "High".into(),
            "g > 10".into(),
            Duration::from_secs(for_secs),
            BTreeMap::from([("severity".to_string(), "page".to_string())]),
            BTreeMap::from([(
                "summary".to_string(),
                "{{ $labels.instance }} is at {{ $value }}".to_string(),
            )]),
        )
    }

    fn ls(pairs: &[(&str, &str)]) -> LabelSet {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn eval(r: &mut AlertingRule, rows: &[(LabelSet, f64)], now: i64) -> Vec<Alert> {
        r.eval(now, rows, None, 0, &EvalContext::default())
            .expect("eval")
            .0
    }

    #[test]
    fn pending_then_firing_then_resolved() {
        let high = [(ls(&[("instance", "a")]), 50.0)];
        let mut r = rule(30);
        assert!(eval(&mut r, &high, 1_000).is_empty(), "pending is not sent");
        assert_eq!(r.alerts().next().expect("alert").state, AlertState::Pending);
        let fired = eval(&mut r, &high, 31_000);
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].state, AlertState::Firing);
        assert_eq!(fired[0].labels.get("alertname"), Some("High"));
        assert_eq!(fired[0].labels.get("severity"), Some("page"));
        assert_eq!(fired[0].annotations.get("summary"), Some("a is at 50"));
        assert!(
            eval(&mut r, &high, 41_000).is_empty(),
            "no resend before resend_delay"
        );
        assert_eq!(
            eval(&mut r, &high, 91_000).len(),
            1,
            "resend after resend_delay"
        );
        let resolved = eval(&mut r, &[], 96_000);
        assert_eq!(resolved.len(), 1);
        assert_eq!(resolved[0].state, AlertState::Resolved);
        assert_eq!(r.alerts().count(), 0);
    }

    #[test]
    fn pending_that_clears_is_never_sent() {
        let mut r = rule(60);
        assert!(eval(&mut r, &[(LabelSet::new(), 50.0)], 1_000).is_empty());
        assert!(eval(&mut r, &[], 2_000).is_empty());
        assert_eq!(r.alerts().count(), 0);
    }

    #[test]
    fn keep_firing_for_holds_a_cleared_alert() {
        let mut r = rule(0).with_keep_firing_for(Duration::from_secs(120));
        let high = [(ls(&[("instance", "a")]), 50.0)];
        eval(&mut r, &high, 0);
        assert_eq!(r.alerts().next().expect("firing").state, AlertState::Firing);
        eval(&mut r, &[], 60_000);
        eval(&mut r, &[], 120_000);
        assert_eq!(r.alerts().count(), 1, "kept for 2m after 60s");
        let out = eval(&mut r, &[], 180_000);
        assert_eq!(out[0].state, AlertState::Resolved);
        assert_eq!(r.alerts().count(), 0);
    }

    #[test]
    fn resolve_expr_gives_hysteresis() {
        let mut r = rule(0).with_resolve_expr(Some("g < 80".into()));
        let a = ls(&[("instance", "a")]);
        let resolved_a: HashSet<Labels> = HashSet::from([Labels::new().with("instance", "a")]);
        let ctx = EvalContext::default();
        r.eval(0, &[(a.clone(), 95.0)], Some(&HashSet::new()), 0, &ctx)
            .expect("eval");
        // 85: expr (> 90) is empty and resolve_expr (< 80) too: still firing.
        r.eval(60_000, &[], Some(&HashSet::new()), 0, &ctx)
            .expect("eval");
        assert_eq!(r.alerts().next().expect("held").state, AlertState::Firing);
        // 75: resolve_expr returns the series: resolved.
        let (out, _) = r
            .eval(120_000, &[], Some(&resolved_a), 0, &ctx)
            .expect("eval");
        assert_eq!(out[0].state, AlertState::Resolved);
        assert_eq!(r.alerts().count(), 0);
        // A pending alert is not held.
        let mut r = rule(300).with_resolve_expr(Some("g < 80".into()));
        r.eval(0, &[(a, 95.0)], Some(&HashSet::new()), 0, &ctx)
            .expect("eval");
        r.eval(60_000, &[], Some(&HashSet::new()), 0, &ctx)
            .expect("eval");
        assert_eq!(r.alerts().count(), 0);
    }

    #[test]
    fn limit_and_alerts_series() {
        let ctx = EvalContext::default();
        let rows = [(ls(&[("i", "1")]), 50.0), (ls(&[("i", "2")]), 60.0)];
        let mut r = rule(60);
        let (_, series) = r.eval(5_000, &rows, None, 0, &ctx).expect("eval");
        assert_eq!(series.len(), 4);
        assert!(
            series.iter().any(
                |(l, v)| l.get("__name__").map(String::as_str) == Some("ALERTS")
                    && l.get("alertstate").map(String::as_str) == Some("pending")
                    && *v == 1.0
            )
        );
        assert!(
            series
                .iter()
                .any(
                    |(l, v)| l.get("__name__").map(String::as_str) == Some("ALERTS_FOR_STATE")
                        && *v == 5.0
                )
        );
        let err = r.eval(6_000, &rows, None, 1, &ctx).expect_err("limit");
        assert_eq!(err, "exceeded limit of 1 with 2 alerts");
        assert_eq!(r.alerts().count(), 0);
        let dup = [
            (ls(&[("__name__", "a")]), 1.0),
            (ls(&[("__name__", "b")]), 1.0),
        ];
        assert!(r.eval(7_000, &dup, None, 0, &ctx).is_err());
    }

    #[tokio::test]
    async fn reload_swaps_rules_keeps_state_and_survives_a_broken_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Arc::new(Storage::open(dir.path(), 3).expect("storage"));
        let now = now_ms();
        storage.append(
            samples_to_batch(&[vigie_model::Sample::new("temp", Labels::new(), now, 90.0)])
                .expect("batch"),
        );
        let file = dir.path().join("r.yml");
        let one = "groups:\n  - name: g\n    rules:\n      - alert: Hot\n        expr: temp > 80\n        for: 1h\n";
        std::fs::write(&file, one).expect("write");
        let groups = crate::rules::load_paths(std::slice::from_ref(&file), Duration::from_secs(10))
            .expect("load");
        let manager = RuleManager::new(
            groups,
            storage,
            Arc::new(vigie_bus::memory::MemoryBus::new(16)),
            Duration::from_secs(300),
            Duration::from_secs(60),
            "http://v".into(),
        )
        .with_sources(vec![file.clone()], Duration::from_secs(10));
        let g = manager.groups()[0].clone();
        manager.eval_group_at(&g, now).await;
        assert_eq!(manager.alerts().await.len(), 1);

        let two = format!("{one}      - alert: Warm\n        expr: temp > 50\n");
        std::fs::write(&file, two).expect("write");
        assert_eq!(manager.reload().await.expect("reload"), 2);
        let alerts = manager.alerts().await;
        assert_eq!(alerts.len(), 1, "the pending Hot alert is kept");
        assert_eq!(alerts[0].active_at_ms, now);

        std::fs::write(&file, "groups: [ not yaml").expect("write");
        assert!(manager.reload().await.is_err());
        let mut names = Vec::new();
        manager
            .for_each_group(|g| names.extend(g.rules().iter().map(|r| r.name().to_string())))
            .await;
        assert_eq!(
            names,
            ["Hot", "Warm"],
            "a broken file keeps the previous rules"
        );
    }

    #[tokio::test]
    async fn for_state_survives_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Arc::new(Storage::open(dir.path(), 3).expect("storage"));
        let now = now_ms();
        let samples: Vec<vigie_model::Sample> = (0..30)
            .map(|i| {
                vigie_model::Sample::new(
                    "temp",
                    Labels::new().with("host", "a"),
                    now + i * 10_000,
                    90.0,
                )
            })
            .collect();
        storage.append(samples_to_batch(&samples).expect("batch"));
        let state = dir.path().join("state/alerts.cbor");
        let manager = |bus: vigie_bus::memory::MemoryBus| {
            let rule = AlertingRule::new(
                "Hot".into(),
                "temp > 80".into(),
                Duration::from_secs(120),
                BTreeMap::new(),
                BTreeMap::new(),
            );
            let group = RuleGroup::new(
                "g".into(),
                "r.yml".into(),
                Duration::from_secs(10),
                vec![rule],
                vec![],
            );
            RuleManager::new(
                vec![group],
                storage.clone(),
                Arc::new(bus),
                Duration::from_secs(300),
                Duration::from_secs(60),
                "http://v".into(),
            )
            .with_state_file(state.clone())
        };
        // First run: pending since `now`, then the process stops.
        let first = manager(vigie_bus::memory::MemoryBus::new(16));
        assert_eq!(first.restore_state().await.expect("no state yet"), 0);
        let g = first.groups()[0].clone();
        first.eval_group_at(&g, now).await;
        assert_eq!(first.alerts().await[0].state, AlertState::Pending);
        drop(first);
        // Second run: the `for` clock goes on from `now`, not from the restart.
        let bus = vigie_bus::memory::MemoryBus::new(16);
        let mut sub = bus.subscribe(&[topics::ALERTS]);
        let second = manager(bus);
        assert_eq!(second.restore_state().await.expect("restore"), 1);
        let g = second.groups()[0].clone();
        second.eval_group_at(&g, now + 130_000).await;
        let sent = vigie_bus::Subscriber::recv(&mut sub)
            .await
            .expect("recv")
            .expect("an alert");
        let alert = codec::decode_alert(&sent.message.payload).expect("alert");
        assert_eq!(alert.state, AlertState::Firing);
        assert_eq!(alert.active_at_ms, now);
    }

    #[tokio::test]
    async fn manager_alerts_and_records_through_promql_over_storage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Arc::new(Storage::open(dir.path(), 3).expect("storage"));
        let now = now_ms();
        let samples: Vec<vigie_model::Sample> = (0..5)
            .map(|i| {
                vigie_model::Sample::new(
                    "req_total",
                    Labels::new().with("job", "api"),
                    now - 40_000 + i * 10_000,
                    (i * 100) as f64,
                )
            })
            .collect();
        storage.append(samples_to_batch(&samples).expect("batch"));
        let alerting = AlertingRule::new(
            "FastRequests".into(),
            "sum by (job) (rate(req_total[1m])) > 5".into(),
            Duration::ZERO,
            BTreeMap::new(),
            BTreeMap::new(),
        );
        let recording = RecordingRule::new(
            "job:req:rate1m".into(),
            "sum by (job) (rate(req_total[1m]))".into(),
            BTreeMap::from([("recorded".to_string(), "yes".to_string())]),
        );
        let group = RuleGroup::new(
            "g".into(),
            "r.yml".into(),
            Duration::from_secs(1),
            vec![alerting],
            vec![recording],
        );
        let bus = vigie_bus::memory::MemoryBus::new(16);
        let mut sub = bus.subscribe(&[topics::ALERTS]);
        let manager = RuleManager::new(
            vec![group],
            storage.clone(),
            Arc::new(bus),
            Duration::from_secs(300),
            Duration::from_secs(60),
            "http://v".into(),
        );
        let g = manager.groups()[0].clone();
        manager.eval_group_at(&g, now).await;
        let sent = vigie_bus::Subscriber::recv(&mut sub)
            .await
            .expect("recv")
            .expect("an alert");
        let alert = codec::decode_alert(&sent.message.payload).expect("alert json");
        assert_eq!(alert.state, AlertState::Firing);
        assert_eq!(alert.labels.get("job"), Some("api"));
        // 0 → 400 over 40 s in a 1m window; the counter cannot extrapolate
        // below zero, so increase() is 400 and rate() 400/60 (Prometheus).
        assert!(
            (alert.value - 400.0 / 60.0).abs() < 1e-9,
            "rate is {}",
            alert.value
        );
        let recorded = storage
            .sql("SELECT value FROM samples WHERE metric = 'job:req:rate1m' AND labels['recorded'] = 'yes'")
            .await
            .expect("query");
        assert_eq!(recorded.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    }
}
