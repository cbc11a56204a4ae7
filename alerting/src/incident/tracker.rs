//! The incident tracker: a synchronous core fed events with their times,
//! so its grouping and expiry are testable without sleeping.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use vigie_model::{AnomalyEvent, AnomalyPhase, Labels, SeriesKey};

use super::config::IncidentConfig;
use super::hint::{Cause, IncidentHint, Link, LinkKind};
use crate::metrics::{INCIDENT_EVENTS, INCIDENTS_CAPPED, INCIDENTS_OPEN};
use crate::notify::{GroupStatus, NotifiedAlert};

/// One alert or anomaly in an incident.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Member {
    /// Anomaly or alert.
    pub kind: LinkKind,
    /// Series id (16 hex digits) or alert fingerprint.
    pub key: String,
    /// The series (`metric{labels}`) or the alert name.
    pub name: String,
    /// Its labels.
    pub labels: Labels,
    /// The scored metric (anomalies only).
    pub metric: Option<String>,
    /// Anomaly onset, or when the alert's condition started (ms).
    pub at_ms: i64,
    /// Anomaly end or alert resolution (ms), once known.
    pub ended_ms: Option<i64>,
    /// The anomaly score at the onset.
    pub score: Option<f64>,
    /// When the alert was last reported (ms); 0 for anomalies.
    #[serde(skip)]
    last_seen_ms: i64,
}

impl Member {
    fn firing_alert(&self) -> bool {
        self.kind == LinkKind::Alert && self.ended_ms.is_none()
    }
}

/// Alerts and anomalies of one scope, close in time.
#[derive(Debug, Clone, Serialize)]
pub struct Incident {
    /// 16 hex digits.
    pub id: String,
    /// The label that gave the scope.
    pub scope_label: String,
    /// The scope value.
    pub scope: String,
    /// Earliest member start (ms).
    pub opened_ms: i64,
    /// Latest news: a member starting, ending or resolving (ms).
    pub last_ms: i64,
    /// When it closed (ms), if it has.
    pub closed_ms: Option<i64>,
    /// Members in time order.
    pub members: Vec<Member>,
    /// Members left out because of `max_members`.
    pub dropped_members: u64,
}

impl Incident {
    /// Whether it is still open.
    pub fn is_open(&self) -> bool {
        self.closed_ms.is_none()
    }

    /// Whether any member alert fires.
    pub fn firing(&self) -> bool {
        self.members.iter().any(Member::firing_alert)
    }

    /// The root cause and chain.
    pub fn hint(&self) -> IncidentHint {
        let root = self
            .members
            .iter()
            .filter(|m| m.kind == LinkKind::Anomaly)
            .min_by_key(|m| m.at_ms);
        let base = root.map_or(self.opened_ms, |r| r.at_ms);
        IncidentHint {
            id: self.id.clone(),
            scope_label: self.scope_label.clone(),
            scope: self.scope.clone(),
            opened_ms: self.opened_ms,
            root_cause: root.map(|r| Cause {
                series: r.name.clone(),
                metric: r.metric.clone().unwrap_or_default(),
                labels: r.labels.clone(),
                at_ms: r.at_ms,
                score: r.score.unwrap_or(f64::NAN),
            }),
            chain: self
                .members
                .iter()
                .filter(|m| root.is_none_or(|r| r.key != m.key || r.kind != m.kind))
                .map(|m| Link {
                    kind: m.kind,
                    name: m.name.clone(),
                    at_ms: m.at_ms,
                    delay_ms: m.at_ms.saturating_sub(base),
                })
                .collect(),
        }
    }

    fn member_mut(&mut self, kind: LinkKind, key: &str) -> Option<&mut Member> {
        self.members
            .iter_mut()
            .find(|m| m.kind == kind && m.key == key)
    }

    /// Adds `m` in time order, unless the incident is full.
    fn add(&mut self, m: Member, max: usize) -> bool {
        self.opened_ms = self.opened_ms.min(m.at_ms);
        self.last_ms = self.last_ms.max(m.at_ms);
        if self.members.len() >= max {
            self.dropped_members += 1;
            INCIDENTS_CAPPED.with_label_values(&["members"]).inc();
            return false;
        }
        let at = self.members.partition_point(|x| x.at_ms <= m.at_ms);
        self.members.insert(at, m);
        true
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Every incident, open and recently closed.
#[derive(Debug)]
pub struct IncidentTracker {
    config: IncidentConfig,
    /// An alert not reported for this long counts as resolved.
    stale_ms: i64,
    /// By id.
    incidents: BTreeMap<String, Incident>,
}

impl IncidentTracker {
    /// A tracker with `config`; alerts not re-sent for `resolve_timeout`
    /// count as resolved.
    pub fn new(config: IncidentConfig, resolve_timeout: Duration) -> Self {
        Self {
            config,
            stale_ms: ms(resolve_timeout),
            incidents: BTreeMap::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &IncidentConfig {
        &self.config
    }

    /// The scope of an event with `labels`: (label, value).
    pub fn scope_of(&self, labels: &Labels) -> Option<(String, String)> {
        self.config.scope_labels.iter().find_map(|l| {
            let v = labels.get(l).filter(|v| !v.is_empty())?;
            let v = if l == "instance" { strip_port(v) } else { v };
            Some((l.clone(), v.to_string()))
        })
    }

    /// Every scope value of an event with `labels`, in `scope_labels`
    /// order: a VM's alert naming its `hypervisor` joins the hypervisor's
    /// incident too.
    fn scope_values(&self, labels: &Labels) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for l in &self.config.scope_labels {
            if let Some(v) = labels.get(l).filter(|v| !v.is_empty()) {
                let v = if l == "instance" { strip_port(v) } else { v };
                if !out.iter().any(|o| o == v) {
                    out.push(v.to_string());
                }
            }
        }
        out
    }

    /// The open incident that an event with scope `values` at `at_ms`
    /// joins: one whose scope is among them (the earlier in `values`
    /// the better), within `window`.
    fn find_open(&self, values: &[String], at_ms: i64) -> Option<String> {
        let window = ms(self.config.window);
        let rank = |scope: &str| values.iter().position(|v| v == scope);
        self.incidents
            .values()
            .filter(|i| i.is_open() && rank(&i.scope).is_some())
            .filter(|i| {
                let until = if i.firing() {
                    i64::MAX
                } else {
                    i.last_ms.saturating_add(window)
                };
                at_ms >= i.opened_ms.saturating_sub(window) && at_ms <= until
            })
            .max_by_key(|i| (std::cmp::Reverse(rank(&i.scope)), i.opened_ms))
            .map(|i| i.id.clone())
    }

    /// The open incident holding member `key`.
    fn holding(&self, kind: LinkKind, key: &str) -> Option<String> {
        self.incidents
            .values()
            .filter(|i| i.is_open())
            .find(|i| i.members.iter().any(|m| m.kind == kind && m.key == key))
            .map(|i| i.id.clone())
    }

    /// Opens an incident for `member`, unless `max_open` are open.
    fn open(&mut self, scope: (String, String), member: Member, source: &str) -> Option<String> {
        let open = self.incidents.values().filter(|i| i.is_open()).count();
        if open >= self.config.max_open {
            INCIDENTS_CAPPED.with_label_values(&["open"]).inc();
            INCIDENT_EVENTS.with_label_values(&[source, "capped"]).inc();
            return None;
        }
        let id = incident_id(&scope.0, &scope.1, member.at_ms, &member.key);
        let mut incident = Incident {
            id: id.clone(),
            scope_label: scope.0,
            scope: scope.1,
            opened_ms: member.at_ms,
            last_ms: member.at_ms,
            closed_ms: None,
            members: Vec::new(),
            dropped_members: 0,
        };
        incident.add(member, self.config.max_members);
        self.incidents.insert(id.clone(), incident);
        INCIDENT_EVENTS.with_label_values(&[source, "opened"]).inc();
        self.update_gauge();
        Some(id)
    }

    /// Adds `member` to the open incident of its scope, or opens one.
    fn join(&mut self, scope: (String, String), member: Member, source: &str) -> Option<String> {
        let values = self.scope_values(&member.labels);
        match self.find_open(&values, member.at_ms) {
            Some(id) => {
                let max = self.config.max_members;
                let incident = self.incidents.get_mut(&id)?;
                incident.add(member, max);
                INCIDENT_EVENTS.with_label_values(&[source, "joined"]).inc();
                Some(id)
            }
            None => self.open(scope, member, source),
        }
    }

    /// Whether an event at `at_ms` is too old to matter at `now_ms`.
    fn stale(&self, at_ms: i64, now_ms: i64) -> bool {
        at_ms < now_ms.saturating_sub(ms(self.config.keep_closed))
    }

    /// Takes in one anomaly event received at `now_ms`.
    pub fn observe_anomaly(&mut self, event: &AnomalyEvent, now_ms: i64) {
        if !self.config.enabled {
            return;
        }
        self.housekeep(now_ms);
        let Some(scope) = self.scope_of(&event.labels) else {
            INCIDENT_EVENTS
                .with_label_values(&["anomaly", "unscoped"])
                .inc();
            return;
        };
        if self.stale(event.at_ms, now_ms) {
            INCIDENT_EVENTS
                .with_label_values(&["anomaly", "stale"])
                .inc();
            return;
        }
        let key = event.key();
        let series = event.series();
        match event.phase {
            AnomalyPhase::Onset => {
                if let Some(id) = self.holding(LinkKind::Anomaly, &key)
                    && let Some(incident) = self.incidents.get_mut(&id)
                {
                    // A new episode of a member series: it is news, the
                    // first onset stays its place in the chain.
                    incident.last_ms = incident.last_ms.max(event.at_ms);
                    if let Some(m) = incident.member_mut(LinkKind::Anomaly, &key) {
                        m.ended_ms = None;
                    }
                    INCIDENT_EVENTS
                        .with_label_values(&["anomaly", "updated"])
                        .inc();
                    return;
                }
                let member = Member {
                    kind: LinkKind::Anomaly,
                    key,
                    name: series.to_string(),
                    labels: series.labels.clone(),
                    metric: Some(series.metric.clone()),
                    at_ms: event.at_ms,
                    ended_ms: None,
                    score: Some(event.score),
                    last_seen_ms: now_ms,
                };
                self.join(scope, member, "anomaly");
            }
            AnomalyPhase::End => {
                let Some(id) = self.holding(LinkKind::Anomaly, &key) else {
                    INCIDENT_EVENTS
                        .with_label_values(&["anomaly", "unmatched"])
                        .inc();
                    return;
                };
                if let Some(incident) = self.incidents.get_mut(&id) {
                    incident.last_ms = incident.last_ms.max(event.at_ms);
                    if let Some(m) = incident.member_mut(LinkKind::Anomaly, &key) {
                        m.ended_ms = Some(event.at_ms);
                    }
                    INCIDENT_EVENTS
                        .with_label_values(&["anomaly", "updated"])
                        .inc();
                }
            }
        }
    }

    /// Takes in one alert report received at `now_ms`: `fingerprint`,
    /// `labels`, when its condition started, and when it resolved (`None`
    /// while firing). A resolved alert no incident holds is ignored.
    pub fn observe_alert(
        &mut self,
        fingerprint: &str,
        labels: &Labels,
        started_ms: i64,
        ended_ms: Option<i64>,
        now_ms: i64,
    ) {
        if !self.config.enabled {
            return;
        }
        self.housekeep(now_ms);
        if let Some(id) = self.holding(LinkKind::Alert, fingerprint)
            && let Some(incident) = self.incidents.get_mut(&id)
        {
            if let Some(end) = ended_ms {
                incident.last_ms = incident.last_ms.max(end);
            }
            if let Some(m) = incident.member_mut(LinkKind::Alert, fingerprint) {
                m.last_seen_ms = now_ms;
                m.ended_ms = ended_ms;
            }
            return;
        }
        if ended_ms.is_some() {
            return;
        }
        let Some(scope) = self.scope_of(labels) else {
            INCIDENT_EVENTS
                .with_label_values(&["alert", "unscoped"])
                .inc();
            return;
        };
        if self.stale(started_ms, now_ms) {
            INCIDENT_EVENTS.with_label_values(&["alert", "stale"]).inc();
            return;
        }
        let member = Member {
            kind: LinkKind::Alert,
            key: fingerprint.to_string(),
            name: labels
                .get("alertname")
                .unwrap_or("(no alertname)")
                .to_string(),
            labels: labels.clone(),
            metric: None,
            at_ms: started_ms,
            ended_ms: None,
            score: None,
            last_seen_ms: now_ms,
        };
        self.join(scope, member, "alert");
    }

    /// The hint for a notification of `alerts` at `now_ms` (taking them in
    /// first, so a notification never misses its own alerts): the incident
    /// holding most of them, preferring one with a root cause, then the
    /// earliest. `None` when no incident holds any.
    pub fn hint_for(&mut self, alerts: &[NotifiedAlert], now_ms: i64) -> Option<IncidentHint> {
        if !self.config.enabled {
            return None;
        }
        for a in alerts {
            let ended = match a.status {
                GroupStatus::Firing => None,
                GroupStatus::Resolved => Some(a.ends_at_ms.unwrap_or(now_ms)),
            };
            self.observe_alert(&a.fingerprint, &a.labels, a.starts_at_ms, ended, now_ms);
        }
        self.incidents
            .values()
            .filter_map(|i| {
                let held = alerts
                    .iter()
                    .filter(|a| {
                        i.members
                            .iter()
                            .any(|m| m.kind == LinkKind::Alert && m.key == a.fingerprint)
                    })
                    .count();
                (held > 0).then_some((i, held))
            })
            .max_by_key(|(i, held)| {
                let rooted = i.members.iter().any(|m| m.kind == LinkKind::Anomaly);
                (*held, rooted, std::cmp::Reverse(i.opened_ms))
            })
            .map(|(i, _)| i.hint())
    }

    /// Resolves alerts not reported for `resolve_timeout`, closes quiet
    /// incidents and forgets closed ones past `keep_closed`/`max_closed`.
    pub fn housekeep(&mut self, now_ms: i64) {
        let quiet = ms(self.config.quiet);
        let stale = self.stale_ms;
        let mut changed = false;
        for incident in self.incidents.values_mut().filter(|i| i.is_open()) {
            for m in incident.members.iter_mut() {
                if m.firing_alert() && now_ms.saturating_sub(m.last_seen_ms) >= stale {
                    let end = m.last_seen_ms.saturating_add(stale);
                    m.ended_ms = Some(end);
                    incident.last_ms = incident.last_ms.max(end);
                }
            }
            if !incident.firing() && now_ms.saturating_sub(incident.last_ms) >= quiet {
                incident.closed_ms = Some(now_ms);
                changed = true;
            }
        }
        let keep = ms(self.config.keep_closed);
        self.incidents
            .retain(|_, i| i.closed_ms.is_none_or(|c| now_ms.saturating_sub(c) < keep));
        let mut closed: Vec<(i64, String)> = self
            .incidents
            .values()
            .filter_map(|i| i.closed_ms.map(|c| (c, i.id.clone())))
            .collect();
        if closed.len() > self.config.max_closed {
            closed.sort();
            let excess = closed.len() - self.config.max_closed;
            for (_, id) in closed.into_iter().take(excess) {
                self.incidents.remove(&id);
                INCIDENTS_CAPPED.with_label_values(&["closed"]).inc();
            }
        }
        if changed {
            self.update_gauge();
        }
    }

    /// Incidents after housekeeping at `now_ms`, newest first; only open
    /// or only closed ones with `open = Some(..)`.
    pub fn list(&mut self, now_ms: i64, open: Option<bool>) -> Vec<Incident> {
        self.housekeep(now_ms);
        let mut out: Vec<Incident> = self
            .incidents
            .values()
            .filter(|i| open.is_none_or(|o| i.is_open() == o))
            .cloned()
            .collect();
        out.sort_by_key(|i| std::cmp::Reverse((i.opened_ms, i.id.clone())));
        out
    }

    fn update_gauge(&self) {
        let open = self.incidents.values().filter(|i| i.is_open()).count();
        INCIDENTS_OPEN.set(i64::try_from(open).unwrap_or(i64::MAX));
    }
}

/// `host:port` → `host`; `[v6]:port` → `v6`; anything else unchanged.
fn strip_port(v: &str) -> &str {
    if let Some(rest) = v.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match v.rsplit_once(':') {
        Some((host, port))
            if !host.contains(':')
                && !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            host
        }
        _ => v,
    }
}

/// A stable id from the scope, the first member and its start.
fn incident_id(label: &str, scope: &str, at_ms: i64, key: &str) -> String {
    let labels = Labels::new()
        .with("label", label)
        .with("scope", scope)
        .with("at", at_ms.to_string())
        .with("first", key);
    format!("{:016x}", SeriesKey::new("INCIDENT", labels).id())
}

#[cfg(test)]
pub(super) fn strip_port_for_tests(v: &str) -> &str {
    strip_port(v)
}
