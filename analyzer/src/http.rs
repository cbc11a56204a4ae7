//! The analyzer's HTTP endpoints: `POST /api/v1/sql`, `GET /api/v1/alerts`,
//! `GET /api/v1/rules`, and Prometheus' query API (see [`prom`]).

pub mod prom;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use vigie_model::AlertState;

use crate::feedback::Feedback;
use crate::metrics::ERRORS;
use crate::pipeline::Analyzer;
use crate::rules::RuleManager;
use crate::sql_json::to_json;
use crate::storage::Storage;

#[derive(Clone)]
struct ApiState {
    storage: Arc<Storage>,
    rules: Arc<RuleManager>,
}

/// Body of `POST /api/v1/sql`.
#[derive(Debug, Deserialize)]
pub struct SqlRequest {
    /// The SQL text.
    pub query: String,
}

fn error(status: StatusCode, error_type: &str, message: String) -> Response {
    (
        status,
        Json(json!({"status": "error", "errorType": error_type, "error": message})),
    )
        .into_response()
}

/// Reads the query from a JSON body `{"query": "..."}`, whatever the
/// content type says (so a plain `curl -d` works), or from a form/query
/// parameter `query=...` as Prometheus' API takes it.
fn read_query(content_type: Option<&str>, body: &[u8]) -> Result<String, String> {
    let is_form = content_type.is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if let Ok(req) = serde_json::from_slice::<SqlRequest>(body) {
        return Ok(req.query);
    }
    if (is_form || body.starts_with(b"query="))
        && let Some((_, q)) = url_form(body).into_iter().find(|(k, _)| k == "query")
    {
        return Ok(q);
    }
    Err("expected a JSON body {\"query\": \"SELECT ...\"} (or a form field query=...)".into())
}

fn url_form(body: &[u8]) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body).unwrap_or_default()
}

async fn sql(State(s): State<ApiState>, headers: HeaderMap, body: Bytes) -> Response {
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let req = match read_query(content_type, &body) {
        Ok(query) => SqlRequest { query },
        Err(message) => {
            ERRORS.with_label_values(&["http", "bad_request"]).inc();
            return error(StatusCode::BAD_REQUEST, "bad_data", message);
        }
    };
    match s.storage.sql(&req.query).await.and_then(|b| to_json(&b)) {
        Ok(v) => Json(v).into_response(),
        Err(e) if e.is_user_error() => {
            ERRORS.with_label_values(&["http", "bad_query"]).inc();
            error(StatusCode::BAD_REQUEST, "bad_data", e.to_string())
        }
        Err(e) => {
            ERRORS.with_label_values(&["http", "query"]).inc();
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "execution",
                e.to_string(),
            )
        }
    }
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

async fn alerts(State(s): State<ApiState>) -> Response {
    let alerts: Vec<_> = s
        .rules
        .alerts()
        .await
        .into_iter()
        .map(|a| {
            json!({
                "labels": a.labels,
                "annotations": a.annotations,
                "state": match a.state { AlertState::Pending => "pending", AlertState::Firing => "firing", AlertState::Resolved => "inactive" },
                "activeAt": rfc3339(a.active_at_ms),
                "value": a.value.to_string(),
            })
        })
        .collect();
    Json(json!({"status": "success", "data": {"alerts": alerts}})).into_response()
}

fn alert_json(a: &vigie_model::Alert) -> serde_json::Value {
    json!({
        "labels": a.labels,
        "annotations": a.annotations,
        "state": match a.state { AlertState::Pending => "pending", AlertState::Firing => "firing", AlertState::Resolved => "inactive" },
        "activeAt": rfc3339(a.active_at_ms),
        "value": crate::rules::template::go_float(a.value, 'e', None),
    })
}

fn health_json(h: &crate::rules::RuleHealth) -> serde_json::Value {
    json!({
        "health": match (h.last_eval_ms, &h.last_error) {
            (0, _) => "unknown",
            (_, Some(_)) => "err",
            _ => "ok",
        },
        "lastError": h.last_error.clone().unwrap_or_default(),
        "evaluationTime": h.eval_duration.as_secs_f64(),
        "lastEvaluation": rfc3339(h.last_eval_ms),
    })
}

fn merge(mut a: serde_json::Value, b: serde_json::Value) -> serde_json::Value {
    if let (Some(a), serde_json::Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

/// `GET /api/v1/rules`: groups and rules in Prometheus' shape.
async fn rules_api(State(s): State<ApiState>) -> Response {
    use crate::rules::RuleRef;
    let mut groups = Vec::new();
    s.rules
        .for_each_group(|g| {
            let rules: Vec<serde_json::Value> = g
                .order()
                .iter()
                .map(|r| match *r {
                    RuleRef::Alert(i) => {
                        let r = &g.rules()[i];
                        let alerts: Vec<_> = r.alerts().collect();
                        let state = if alerts.iter().any(|a| a.state == AlertState::Firing) {
                            "firing"
                        } else if alerts.is_empty() {
                            "inactive"
                        } else {
                            "pending"
                        };
                        merge(
                            json!({
                                "type": "alerting",
                                "name": r.name(),
                                "query": r.expr(),
                                "duration": r.for_duration().as_secs_f64(),
                                "keepFiringFor": r.keep_firing_for().as_secs_f64(),
                                "labels": r.labels(),
                                "annotations": r.annotations(),
                                "alerts": alerts.iter().map(|a| alert_json(a)).collect::<Vec<_>>(),
                                "state": state,
                            }),
                            health_json(r.health()),
                        )
                    }
                    RuleRef::Record(i) => {
                        let r = &g.recording_rules()[i];
                        merge(
                            json!({
                                "type": "recording",
                                "name": r.record(),
                                "query": r.expr(),
                                "labels": r.labels(),
                            }),
                            health_json(r.health()),
                        )
                    }
                })
                .collect();
            groups.push(json!({
                "name": g.name(),
                "file": g.file().display().to_string(),
                "interval": g.interval().as_secs_f64(),
                "limit": g.limit(),
                "rules": rules,
                "evaluationTime": g.eval_duration().as_secs_f64(),
                "lastEvaluation": rfc3339(g.last_eval_ms()),
            }));
        })
        .await;
    Json(json!({"status": "success", "data": {"groups": groups}})).into_response()
}

/// `POST /-/reload`: re-reads the rule files, as Prometheus does.
async fn reload(State(s): State<ApiState>) -> Response {
    match s.rules.reload().await {
        Ok(n) => (StatusCode::OK, format!("reloaded {n} rules\n")).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload rules: {e}\n"),
        )
            .into_response(),
    }
}

/// `POST /api/v1/feedback`: applies operator feedback (see
/// [`crate::feedback`]); 400 `bad_data` with the reason when the body, the
/// selector or the window is unusable or matches no scored series; 503
/// when it could not be shared on `vigie.feedback`.
async fn post_feedback(State(a): State<Arc<Analyzer>>, body: Bytes) -> Response {
    let fb: Feedback = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => {
            ERRORS.with_label_values(&["feedback", "bad_body"]).inc();
            return error(
                StatusCode::BAD_REQUEST,
                "bad_data",
                format!(
                    "expected {{\"series\": SELECTOR, \"start\": UNIX_S, \"end\": UNIX_S, \"kind\": \"false_alarm\"|\"missed_anomaly\"}}: {e}"
                ),
            );
        }
    };
    match a.feedback(fb).await {
        Ok(record) => Json(json!({"status": "success", "data": record})).into_response(),
        Err(e @ crate::AnalyzerError::Bus(_)) => {
            ERRORS.with_label_values(&["feedback", "share"]).inc();
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!("feedback could not be shared with the other analyzers: {e}"),
            )
        }
        Err(e) => {
            ERRORS.with_label_values(&["feedback", "rejected"]).inc();
            error(StatusCode::BAD_REQUEST, "bad_data", e.to_string())
        }
    }
}

/// `GET /api/v1/feedback`: every feedback record, oldest first.
async fn get_feedback(State(a): State<Arc<Analyzer>>) -> Response {
    Json(json!({"status": "success", "data": a.feedback_records()})).into_response()
}

/// Routes that need the running analyzer: `GET`/`POST /api/v1/feedback`.
pub fn analyzer_router(analyzer: Arc<Analyzer>) -> Router {
    Router::new()
        .route("/api/v1/feedback", get(get_feedback).post(post_feedback))
        .with_state(analyzer)
}

/// Routes of the analyzer API.
pub fn router(storage: Arc<Storage>, rules: Arc<RuleManager>) -> Router {
    Router::new()
        .route("/api/v1/sql", post(sql))
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/rules", get(rules_api))
        .route("/-/reload", post(reload))
        .merge(prom::routes())
        .with_state(ApiState { storage, rules })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_query_from_json_or_form() {
        assert_eq!(
            read_query(None, br#"{"query":"SELECT 1"}"#).expect("json"),
            "SELECT 1"
        );
        assert_eq!(
            read_query(Some("application/x-www-form-urlencoded"), b"query=SELECT+1").expect("form"),
            "SELECT 1"
        );
        assert!(read_query(None, b"nonsense").is_err());
    }

    #[tokio::test]
    async fn serves_rules_and_alerts() {
        use std::collections::BTreeMap;
        use std::time::Duration;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Arc::new(Storage::open(dir.path(), 1).expect("open"));
        let groups = crate::rules::parse_rule_file(
            std::path::Path::new("r.yml"),
            "groups:\n  - name: g\n    rules:\n      - record: one\n        expr: vector(1)\n      - alert: Always\n        expr: vector(1)\n        for: 1h\n        labels: {severity: page}\n",
            Duration::from_secs(15),
        )
        .expect("rules");
        let rules = Arc::new(RuleManager::new(
            groups,
            storage.clone(),
            Arc::new(vigie_bus::memory::MemoryBus::new(16)),
            Duration::from_secs(300),
            Duration::from_secs(60),
            String::new(),
        ));
        let app = router(storage, rules);
        let get = |path: &'static str| {
            let app = app.clone();
            async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                let addr = listener.local_addr().expect("addr");
                let server = tokio::spawn(async move { axum::serve(listener, app).await });
                let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
                conn.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
                    .await
                    .expect("write");
                let mut resp = Vec::new();
                conn.read_to_end(&mut resp).await.expect("read");
                server.abort();
                let text = String::from_utf8_lossy(&resp).into_owned();
                let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
                serde_json::from_str::<serde_json::Value>(&body).expect("json")
            }
        };
        let v = get("/api/v1/rules").await;
        assert_eq!(v["status"], "success");
        let g = &v["data"]["groups"][0];
        assert_eq!(g["name"], "g");
        assert_eq!(g["file"], "r.yml");
        assert_eq!(g["rules"][0]["type"], "recording");
        assert_eq!(g["rules"][0]["name"], "one");
        assert_eq!(g["rules"][1]["type"], "alerting");
        assert_eq!(g["rules"][1]["duration"], 3600.0);
        assert_eq!(g["rules"][1]["state"], "inactive");
        assert_eq!(g["rules"][1]["health"], "unknown");
        assert_eq!(
            g["rules"][1]["labels"],
            serde_json::to_value(BTreeMap::from([("severity", "page")])).expect("json")
        );
        let v = get("/api/v1/alerts").await;
        assert_eq!(v["data"]["alerts"], serde_json::json!([]));
    }

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
