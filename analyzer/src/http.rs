//! The analyzer's HTTP endpoints: `POST /api/v1/sql`, `GET /api/v1/alerts`,
//! and Prometheus' query API (see [`prom`]).

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

use crate::metrics::ERRORS;
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

/// Routes of the analyzer API.
pub fn router(storage: Arc<Storage>, rules: Arc<RuleManager>) -> Router {
    Router::new()
        .route("/api/v1/sql", post(sql))
        .route("/api/v1/alerts", get(alerts))
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

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
