//! Rule groups, alert state and the evaluation loop.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};
use vigie_bus::{Message, Publisher};
use vigie_model::schema::samples_to_batch;
use vigie_model::{Alert, AlertState, Labels, METRIC_NAME_LABEL, Sample, codec, topics};

use crate::AnalyzerError;
use crate::metrics::{ALERTS, ERRORS, RULE_EVALS};
use crate::promql::{Engine, LabelSet, Value};
use crate::storage::Storage;

/// An alerting rule and the alerts it currently holds.
#[derive(Debug)]
pub struct AlertingRule {
    name: String,
    expr_text: String,
    for_: Duration,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    active: HashMap<String, (Alert, Option<i64>)>,
}

/// Expands `{{ $labels.x }}` and `{{ $value }}`; other actions are kept verbatim.
fn expand(template: &str, labels: &Labels, value: f64) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let inner = rest[start + 2..start + end].trim();
        if inner == "$value" {
            out.push_str(&value.to_string());
        } else if let Some(name) = inner.strip_prefix("$labels.") {
            out.push_str(labels.get(name).unwrap_or(""));
        } else {
            out.push_str(&rest[start..start + end + 2]);
        }
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    out
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
            labels,
            annotations,
            active: HashMap::new(),
        }
    }

    /// The alert name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The PromQL expression.
    pub fn expr(&self) -> &str {
        &self.expr_text
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

    /// Alerts currently pending or firing.
    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.active.values().map(|(a, _)| a)
    }

    /// Applies the result of the rule's expression at `now_ms` (each
    /// element: labels without `__name__`, value); returns the alerts to
    /// send to alerting (newly firing, resolved, and firing ones due for a
    /// resend).
    pub fn eval(
        &mut self,
        now_ms: i64,
        result: &[(Labels, f64)],
        resend: Duration,
        generator_url: &str,
    ) -> Vec<Alert> {
        let mut seen = std::collections::HashSet::new();
        for (series_labels, value) in result {
            let value = *value;
            let mut labels = series_labels.clone();
            for (k, v) in &self.labels {
                labels.insert(k.clone(), expand(v, series_labels, value));
            }
            labels.insert("alertname", self.name.clone());
            let annotations: Labels = self
                .annotations
                .iter()
                .map(|(k, v)| (k.clone(), expand(v, series_labels, value)))
                .collect();
            let mut alert = Alert {
                labels,
                annotations,
                state: AlertState::Pending,
                active_at_ms: now_ms,
                fired_at_ms: None,
                resolved_at_ms: None,
                value,
                generator_url: generator_url.to_string(),
            };
            let fp = alert.fingerprint();
            seen.insert(fp.clone());
            match self.active.get_mut(&fp) {
                Some((existing, _)) => {
                    existing.value = alert.value;
                    existing.annotations = alert.annotations;
                }
                None => {
                    alert.generator_url = format!(
                        "{generator_url}/graph?g0.expr={}",
                        self.expr_text.replace(' ', "%20")
                    );
                    self.active.insert(fp, (alert, None));
                }
            }
        }
        let mut out = Vec::new();
        let resend_ms = resend.as_millis() as i64;
        let for_ms = self.for_.as_millis() as i64;
        self.active.retain(|fp, (alert, last_sent)| {
            if !seen.contains(fp) {
                if alert.state == AlertState::Firing {
                    alert.state = AlertState::Resolved;
                    alert.resolved_at_ms = Some(now_ms);
                    out.push(alert.clone());
                }
                return false;
            }
            if alert.state == AlertState::Pending && now_ms - alert.active_at_ms >= for_ms {
                alert.state = AlertState::Firing;
                alert.fired_at_ms = Some(now_ms);
            }
            if alert.state == AlertState::Firing
                && last_sent.is_none_or(|t| now_ms - t >= resend_ms)
            {
                *last_sent = Some(now_ms);
                out.push(alert.clone());
            }
            true
        });
        out
    }
}

/// A recording rule: stores the result of its expression as a new series.
#[derive(Debug)]
pub struct RecordingRule {
    record: String,
    expr_text: String,
    labels: BTreeMap<String, String>,
}

impl RecordingRule {
    /// A rule storing `expr` as the series `record` with extra `labels`.
    pub fn new(record: String, expr_text: String, labels: BTreeMap<String, String>) -> Self {
        Self {
            record,
            expr_text,
            labels,
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
}

/// A group of rules evaluated together on one interval: recording rules
/// first (so alerts can use what they record), then alerting rules.
#[derive(Debug)]
pub struct RuleGroup {
    name: String,
    file: PathBuf,
    interval: Duration,
    rules: Vec<AlertingRule>,
    recording: Vec<RecordingRule>,
}

impl RuleGroup {
    /// A group.
    pub fn new(
        name: String,
        file: PathBuf,
        interval: Duration,
        rules: Vec<AlertingRule>,
        recording: Vec<RecordingRule>,
    ) -> Self {
        Self {
            name,
            file,
            interval,
            rules,
            recording,
        }
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

    /// The alerting rules.
    pub fn rules(&self) -> &[AlertingRule] {
        &self.rules
    }

    /// The recording rules.
    pub fn recording_rules(&self) -> &[RecordingRule] {
        &self.recording
    }
}

/// Runs rule groups and publishes their alerts.
pub struct RuleManager {
    groups: Vec<Arc<tokio::sync::Mutex<RuleGroup>>>,
    storage: Arc<Storage>,
    engine: Engine,
    publisher: Arc<dyn Publisher>,
    resend: Duration,
    external_url: String,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// An instant vector as `(labels without __name__, value)` pairs.
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

fn without_name(mut labels: LabelSet) -> Labels {
    labels.remove(METRIC_NAME_LABEL);
    labels.into_iter().collect()
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
            groups: groups
                .into_iter()
                .map(|g| Arc::new(tokio::sync::Mutex::new(g)))
                .collect(),
            storage,
            engine: Engine {
                lookback_ms: lookback.as_millis() as i64,
                ..Engine::default()
            },
            publisher,
            resend,
            external_url,
        }
    }

    /// Alerts currently pending or firing, over all groups.
    pub async fn alerts(&self) -> Vec<Alert> {
        let mut out = Vec::new();
        for g in &self.groups {
            let g = g.lock().await;
            for r in &g.rules {
                out.extend(r.alerts().cloned());
            }
        }
        out
    }

    /// Number of groups.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    async fn query(&self, expr: &str, now: i64) -> Result<Vec<(LabelSet, f64)>, AnalyzerError> {
        let result = self
            .engine
            .instant(self.storage.as_ref(), expr, now)
            .await?;
        vector(result.value)
    }

    /// Evaluates one group now: records, then alerts (published).
    async fn eval_group(&self, group: &tokio::sync::Mutex<RuleGroup>) {
        let mut g = group.lock().await;
        let now = now_ms();
        let mut recorded = Vec::new();
        for r in &g.recording {
            match self.query(&r.expr_text, now).await {
                Ok(rows) => {
                    for (labels, v) in rows {
                        let mut labels = without_name(labels);
                        for (k, val) in &r.labels {
                            labels.insert(k.clone(), val.clone());
                        }
                        recorded.push(Sample::new(r.record.clone(), labels, now, v));
                    }
                }
                Err(e) => {
                    ERRORS.with_label_values(&["rules", "eval"]).inc();
                    warn!(error = %e, rule = %r.record, group = %g.name, "recording rule failed");
                }
            }
        }
        if !recorded.is_empty() {
            match samples_to_batch(&recorded) {
                Ok(batch) => self.storage.append(batch),
                Err(e) => warn!(error = %e, group = %g.name, "cannot store recorded series"),
            }
        }
        let mut to_send = Vec::new();
        let group_name = g.name.clone();
        for r in &mut g.rules {
            match self.query(&r.expr_text, now).await {
                Ok(rows) => {
                    let rows: Vec<(Labels, f64)> = rows
                        .into_iter()
                        .map(|(l, v)| (without_name(l), v))
                        .collect();
                    to_send.extend(r.eval(now, &rows, self.resend, &self.external_url));
                }
                Err(e) => {
                    // Like Prometheus: a failing rule keeps its alerts as they are.
                    ERRORS.with_label_values(&["rules", "eval"]).inc();
                    warn!(error = %e, rule = %r.name, group = %group_name, "alerting rule failed");
                }
            }
        }
        RULE_EVALS.inc();
        drop(g);
        self.update_gauges().await;
        for alert in to_send {
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

    /// Evaluates every group on its interval until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tasks = Vec::new();
        for group in self.groups.clone() {
            let this = self.clone();
            let shutdown = shutdown.clone();
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
                            _ = shutdown.cancelled() => break,
                            _ = tick.tick() => this.eval_group(&group).await,
                        }
                    }
                }
                .instrument(span),
            ));
        }
        for t in tasks {
            let _ = t.await;
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

    fn eval(r: &mut AlertingRule, rows: &[(Labels, f64)], now: i64) -> Vec<Alert> {
        r.eval(now, rows, Duration::from_secs(60), "http://v")
    }

    #[test]
    fn pending_then_firing_then_resolved() {
        let labels = Labels::new().with("instance", "a");
        let high = [(labels.clone(), 50.0)];
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
        assert!(eval(&mut r, &[(Labels::new(), 50.0)], 1_000).is_empty());
        assert!(eval(&mut r, &[], 2_000).is_empty());
        assert_eq!(r.alerts().count(), 0);
    }

    #[test]
    fn template_expansion() {
        let l = Labels::new().with("x", "1");
        assert_eq!(
            expand("a {{$labels.x}} {{ $value }} {{ .Other }}", &l, 2.5),
            "a 1 2.5 {{ .Other }}"
        );
        assert_eq!(
            expand("open {{ never closed", &l, 0.0),
            "open {{ never closed"
        );
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
        let g = manager.groups[0].clone();
        manager.eval_group(&g).await;
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
