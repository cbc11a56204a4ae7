//! What a notification says about its incident: the probable root cause
//! and the chain after it.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use vigie_model::Labels;

use crate::notify::rfc3339;

/// The earliest anomaly onset of an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cause {
    /// The series, as `metric{labels}`.
    pub series: String,
    /// The metric name.
    pub metric: String,
    /// The series' labels.
    pub labels: Labels,
    /// When it turned anomalous (ms since epoch).
    pub at_ms: i64,
    /// Its anomaly score then.
    pub score: f64,
}

/// What a chain link is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkKind {
    /// An anomaly onset.
    Anomaly,
    /// An alert.
    Alert,
}

/// One member of an incident after its root, in time order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Link {
    /// Anomaly or alert.
    pub kind: LinkKind,
    /// The series (`metric{labels}`) or the alert name.
    pub name: String,
    /// When it started (ms since epoch).
    pub at_ms: i64,
    /// How long after the root (or the incident's start) it started; may
    /// be negative for an alert that began before the first anomaly.
    pub delay_ms: i64,
}

/// The incident a notification's alerts belong to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentHint {
    /// The incident id (16 hex digits), as `GET /api/v1/incidents` lists it.
    pub id: String,
    /// The label that gave the scope.
    pub scope_label: String,
    /// The scope: the host, instance or service.
    pub scope: String,
    /// When its earliest member started (ms since epoch).
    pub opened_ms: i64,
    /// The earliest anomaly onset, if any.
    pub root_cause: Option<Cause>,
    /// The other members, in time order.
    pub chain: Vec<Link>,
}

/// Links named in the one-line summary; the rest are counted.
const LINE_LINKS: usize = 5;

impl IncidentHint {
    /// The "Probable root cause: …" line of email and Slack texts; `None`
    /// without an anomaly in the incident.
    pub fn summary_line(&self) -> Option<String> {
        let root = self.root_cause.as_ref()?;
        let mut s = format!(
            "Probable root cause: {} anomalous since {}",
            root.series,
            rfc3339(root.at_ms)
        );
        for link in self.chain.iter().take(LINE_LINKS) {
            let what = match link.kind {
                LinkKind::Anomaly => format!("{} anomalous", link.name),
                LinkKind::Alert => format!("alert {}", link.name),
            };
            s.push_str(&format!(", then {what} ({})", format_delay(link.delay_ms)));
        }
        if self.chain.len() > LINE_LINKS {
            s.push_str(&format!(", and {} more", self.chain.len() - LINE_LINKS));
        }
        s.push_str(&format!(" (incident {})", self.id));
        Some(s)
    }

    /// The JSON of webhooks and the API: RFC 3339 times, delays in seconds.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "scope": {"label": self.scope_label, "value": self.scope},
            "openedAt": rfc3339(self.opened_ms),
            "rootCause": self.root_cause.as_ref().map(|c| json!({
                "series": c.series,
                "metric": c.metric,
                "labels": c.labels,
                "anomalousSince": rfc3339(c.at_ms),
                "score": c.score,
            })),
            "chain": self.chain.iter().map(|l| json!({
                "kind": l.kind,
                "name": l.name,
                "at": rfc3339(l.at_ms),
                "delaySeconds": l.delay_ms as f64 / 1000.0,
            })).collect::<Vec<_>>(),
            "summary": self.summary_line(),
        })
    }
}

/// A delay as `+2m30s`, `+45s`, `+1h5m`, `-3m`, `+0s`.
pub fn format_delay(ms: i64) -> String {
    let sign = if ms < 0 { '-' } else { '+' };
    let secs = ms.unsigned_abs() / 1000;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::from(sign);
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || (h == 0 && m == 0) {
        out.push_str(&format!("{s}s"));
    }
    out
}
