//! The targets view: what every scrape job discovered, kept and dropped,
//! and how each active target's last scrape went; served as
//! `GET /api/v1/targets` in Prometheus' shape.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::relabel::LabelSet;

/// Health of a target, as Prometheus reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HealthState {
    /// Not scraped yet.
    #[default]
    Unknown,
    /// The last scrape succeeded.
    Up,
    /// The last scrape failed.
    Down,
}

impl HealthState {
    /// `up`, `down` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Unknown => "unknown",
            HealthState::Up => "up",
            HealthState::Down => "down",
        }
    }
}

/// The outcome of a target's last scrape; written by its scrape loop.
#[derive(Debug, Clone, Default)]
pub struct Health {
    /// Up, down, or not scraped yet.
    pub state: HealthState,
    /// Why the last scrape failed; empty when it succeeded.
    pub last_error: String,
    /// When the last scrape started.
    pub last_scrape: Option<DateTime<Utc>>,
    /// How long the last scrape took, in seconds.
    pub last_duration: f64,
}

/// Shared handle to a target's [`Health`].
pub type SharedHealth = Arc<Mutex<Health>>;

/// One active target of a pool.
#[derive(Debug, Clone)]
pub struct ActiveTarget {
    /// Labels before relabelling (`__address__`, `__meta_*`, ...).
    pub discovered: LabelSet,
    /// Labels after relabelling, without `__` labels.
    pub labels: LabelSet,
    /// The URL scraped.
    pub url: String,
    /// Time between scrapes.
    pub interval: Duration,
    /// Time allowed for one scrape.
    pub timeout: Duration,
    /// The last scrape's outcome.
    pub health: SharedHealth,
}

/// What one scrape job (a scrape pool) currently has.
#[derive(Debug, Clone, Default)]
pub struct Pool {
    /// The job name (`scrapePool`).
    pub name: String,
    /// Targets being scraped.
    pub active: Vec<ActiveTarget>,
    /// Discovered label sets that relabelling dropped.
    pub dropped: Vec<LabelSet>,
}

/// Every scrape pool, keyed by the job's position in `[[scrape]]`; shared
/// by the job managers (writers) and the HTTP view (reader).
#[derive(Debug, Default)]
pub struct Targets {
    pools: RwLock<BTreeMap<usize, Pool>>,
}

impl Targets {
    /// An empty view.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the pool of job `index`.
    pub fn set_pool(&self, index: usize, pool: Pool) {
        self.pools
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(index, pool);
    }

    /// A copy of every pool, in job order.
    pub fn pools(&self) -> Vec<Pool> {
        self.pools
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// The view as Prometheus' `/api/v1/targets` answer; `state` is
    /// `active`, `dropped` or `any` (default), `pool` keeps one pool.
    pub fn to_json(&self, state: Option<&str>, pool: Option<&str>) -> Value {
        let state = state.unwrap_or("any");
        let pools: Vec<Pool> = self
            .pools()
            .into_iter()
            .filter(|p| pool.is_none_or(|name| p.name == name))
            .collect();
        let mut active = Vec::new();
        let mut dropped = Vec::new();
        for p in &pools {
            if state == "active" || state == "any" {
                active.extend(p.active.iter().map(|t| active_json(&p.name, t)));
            }
            if state == "dropped" || state == "any" {
                dropped.extend(
                    p.dropped
                        .iter()
                        .map(|d| json!({"discoveredLabels": d, "scrapePool": p.name})),
                );
            }
        }
        json!({
            "status": "success",
            "data": {"activeTargets": active, "droppedTargets": dropped},
        })
    }
}

fn active_json(pool: &str, t: &ActiveTarget) -> Value {
    let h = t
        .health
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let last_scrape = h.last_scrape.map_or_else(
        || "0001-01-01T00:00:00Z".to_string(),
        |ts| ts.to_rfc3339_opts(SecondsFormat::AutoSi, true),
    );
    json!({
        "discoveredLabels": t.discovered,
        "labels": t.labels,
        "scrapePool": pool,
        "scrapeUrl": t.url,
        "globalUrl": t.url,
        "lastError": h.last_error,
        "lastScrape": last_scrape,
        "lastScrapeDuration": h.last_duration,
        "health": h.state.as_str(),
        "scrapeInterval": prometheus_duration(t.interval),
        "scrapeTimeout": prometheus_duration(t.timeout),
    })
}

/// A duration as Prometheus prints one: `15s`, `1m30s`, `500ms`.
pub fn prometheus_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("w", 604_800_000u128),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

#[derive(Deserialize)]
struct TargetsQuery {
    state: Option<String>,
    #[serde(rename = "scrapePool")]
    scrape_pool: Option<String>,
}

async fn handler(
    State(targets): State<Arc<Targets>>,
    Query(q): Query<TargetsQuery>,
) -> Json<Value> {
    Json(targets.to_json(q.state.as_deref(), q.scrape_pool.as_deref()))
}

/// `GET /api/v1/targets` over `targets`.
pub fn router(targets: Arc<Targets>) -> Router {
    Router::new()
        .route("/api/v1/targets", get(handler))
        .with_state(targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_like_prometheus() {
        assert_eq!(prometheus_duration(Duration::from_secs(15)), "15s");
        assert_eq!(prometheus_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(prometheus_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(prometheus_duration(Duration::from_secs(3600)), "1h");
        assert_eq!(prometheus_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn json_shape_and_filters() {
        let targets = Targets::new();
        let health = Arc::new(Mutex::new(Health::default()));
        targets.set_pool(
            0,
            Pool {
                name: "a".into(),
                active: vec![ActiveTarget {
                    discovered: LabelSet::from([("__address__".into(), "h:1".into())]),
                    labels: LabelSet::from([("instance".into(), "h:1".into())]),
                    url: "http://h:1/metrics".into(),
                    interval: Duration::from_secs(10),
                    timeout: Duration::from_secs(5),
                    health,
                }],
                dropped: vec![LabelSet::from([("__address__".into(), "d:1".into())])],
            },
        );
        let v = targets.to_json(None, None);
        assert_eq!(v["status"], "success");
        let t = &v["data"]["activeTargets"][0];
        assert_eq!(t["health"], "unknown");
        assert_eq!(t["lastScrape"], "0001-01-01T00:00:00Z");
        assert_eq!(t["scrapeInterval"], "10s");
        assert_eq!(t["labels"]["instance"], "h:1");
        assert_eq!(
            v["data"]["droppedTargets"][0]["discoveredLabels"]["__address__"],
            "d:1"
        );
        let v = targets.to_json(Some("active"), None);
        assert_eq!(
            v["data"]["droppedTargets"].as_array().map(Vec::len),
            Some(0)
        );
        let v = targets.to_json(None, Some("b"));
        assert_eq!(v["data"]["activeTargets"].as_array().map(Vec::len), Some(0));
    }
}
