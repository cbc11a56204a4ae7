//! Rule groups, alert state and the evaluation loop.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};
use vigie_bus::{Message, Publisher};
use vigie_model::{Alert, AlertState, Labels, codec, topics};

use super::expr::ThresholdExpr;
use crate::latest::LatestIndex;
use crate::metrics::{ALERTS, ERRORS, RULE_EVALS};

/// An alerting rule and the alerts it currently holds.
#[derive(Debug)]
pub struct AlertingRule {
    name: String,
    expr_text: String,
    expr: ThresholdExpr,
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
        expr: ThresholdExpr,
        for_: Duration,
        labels: BTreeMap<String, String>,
        annotations: BTreeMap<String, String>,
    ) -> Self {
        Self {
            name,
            expr_text,
            expr,
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

    /// Evaluates at `now_ms`; returns the alerts to send to alerting
    /// (newly firing, resolved, and firing ones due for a resend).
    pub fn eval(
        &mut self,
        now_ms: i64,
        latest: &LatestIndex,
        lookback: Duration,
        resend: Duration,
        generator_url: &str,
    ) -> Vec<Alert> {
        let since = now_ms - lookback.as_millis() as i64;
        let mut seen = std::collections::HashSet::new();
        for p in latest.select(since, |k| self.expr.selects(k)) {
            if !self.expr.op.holds(p.value, self.expr.threshold) {
                continue;
            }
            let mut labels = p.series.labels.clone();
            for (k, v) in &self.labels {
                labels.insert(k.clone(), expand(v, &p.series.labels, p.value));
            }
            labels.insert("alertname", self.name.clone());
            let annotations: Labels = self
                .annotations
                .iter()
                .map(|(k, v)| (k.clone(), expand(v, &p.series.labels, p.value)))
                .collect();
            let mut alert = Alert {
                labels,
                annotations,
                state: AlertState::Pending,
                active_at_ms: now_ms,
                fired_at_ms: None,
                resolved_at_ms: None,
                value: p.value,
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

/// A group of rules evaluated together on one interval.
#[derive(Debug)]
pub struct RuleGroup {
    name: String,
    file: PathBuf,
    interval: Duration,
    rules: Vec<AlertingRule>,
}

impl RuleGroup {
    /// A group.
    pub fn new(name: String, file: PathBuf, interval: Duration, rules: Vec<AlertingRule>) -> Self {
        Self {
            name,
            file,
            interval,
            rules,
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

    /// The rules.
    pub fn rules(&self) -> &[AlertingRule] {
        &self.rules
    }
}

/// Runs rule groups and publishes their alerts.
pub struct RuleManager {
    groups: Vec<Arc<Mutex<RuleGroup>>>,
    latest: Arc<LatestIndex>,
    publisher: Arc<dyn Publisher>,
    lookback: Duration,
    resend: Duration,
    external_url: String,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl RuleManager {
    /// A manager for `groups` reading `latest` and publishing to `publisher`.
    pub fn new(
        groups: Vec<RuleGroup>,
        latest: Arc<LatestIndex>,
        publisher: Arc<dyn Publisher>,
        lookback: Duration,
        resend: Duration,
        external_url: String,
    ) -> Self {
        Self {
            groups: groups
                .into_iter()
                .map(|g| Arc::new(Mutex::new(g)))
                .collect(),
            latest,
            publisher,
            lookback,
            resend,
            external_url,
        }
    }

    /// Alerts currently pending or firing, over all groups.
    pub fn alerts(&self) -> Vec<Alert> {
        let mut out = Vec::new();
        for g in &self.groups {
            let g = g.lock().unwrap_or_else(|e| e.into_inner());
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

    /// Evaluates one group now and publishes its alerts.
    async fn eval_group(&self, group: &Mutex<RuleGroup>) {
        let to_send = {
            let mut g = group.lock().unwrap_or_else(|e| e.into_inner());
            let now = now_ms();
            let mut out = Vec::new();
            for r in &mut g.rules {
                out.extend(r.eval(
                    now,
                    &self.latest,
                    self.lookback,
                    self.resend,
                    &self.external_url,
                ));
            }
            RULE_EVALS.inc();
            out
        };
        self.update_gauges();
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

    fn update_gauges(&self) {
        let alerts = self.alerts();
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
                let g = group.lock().unwrap_or_else(|e| e.into_inner());
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
    use vigie_model::Sample;

    fn rule(for_secs: u64) -> AlertingRule {
        AlertingRule::new(
            "High".into(),
            "g > 10".into(),
            ThresholdExpr::parse("g > 10").expect("expr"),
            Duration::from_secs(for_secs),
            BTreeMap::from([("severity".to_string(), "page".to_string())]),
            BTreeMap::from([(
                "summary".to_string(),
                "{{ $labels.instance }} is at {{ $value }}".to_string(),
            )]),
        )
    }

    fn eval(r: &mut AlertingRule, idx: &LatestIndex, now: i64) -> Vec<Alert> {
        r.eval(
            now,
            idx,
            Duration::from_secs(300),
            Duration::from_secs(60),
            "http://v",
        )
    }

    #[test]
    fn pending_then_firing_then_resolved() {
        let idx = LatestIndex::new();
        let labels = Labels::new().with("instance", "a");
        let mut r = rule(30);
        idx.update(&[Sample::new("g", labels.clone(), 1_000, 50.0)]);
        assert!(eval(&mut r, &idx, 1_000).is_empty(), "pending is not sent");
        assert_eq!(r.alerts().next().expect("alert").state, AlertState::Pending);
        let fired = eval(&mut r, &idx, 31_000);
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].state, AlertState::Firing);
        assert_eq!(fired[0].labels.get("alertname"), Some("High"));
        assert_eq!(fired[0].labels.get("severity"), Some("page"));
        assert_eq!(fired[0].annotations.get("summary"), Some("a is at 50"));
        assert!(
            eval(&mut r, &idx, 41_000).is_empty(),
            "no resend before resend_delay"
        );
        assert_eq!(
            eval(&mut r, &idx, 91_000).len(),
            1,
            "resend after resend_delay"
        );
        idx.update(&[Sample::new("g", labels, 95_000, 1.0)]);
        let resolved = eval(&mut r, &idx, 96_000);
        assert_eq!(resolved.len(), 1);
        assert_eq!(resolved[0].state, AlertState::Resolved);
        assert_eq!(r.alerts().count(), 0);
    }

    #[test]
    fn pending_that_clears_is_never_sent() {
        let idx = LatestIndex::new();
        let mut r = rule(60);
        idx.update(&[Sample::new("g", Labels::new(), 1_000, 50.0)]);
        assert!(eval(&mut r, &idx, 1_000).is_empty());
        idx.update(&[Sample::new("g", Labels::new(), 2_000, 5.0)]);
        assert!(eval(&mut r, &idx, 2_000).is_empty());
        assert_eq!(r.alerts().count(), 0);
    }

    #[test]
    fn stale_points_outside_lookback_do_not_alert() {
        let idx = LatestIndex::new();
        let mut r = rule(0);
        idx.update(&[Sample::new("g", Labels::new(), 0, 50.0)]);
        assert!(eval(&mut r, &idx, 400_000).is_empty());
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
}
