//! `GET /api/v1/actions` and `POST /api/v1/actions/{id}/approve|deny`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use super::engine::{ActionEngine, ActionError};

/// `?limit=` of `GET /api/v1/actions`.
#[derive(Debug, Deserialize)]
struct ListQuery {
    limit: Option<usize>,
}

/// Optional body of approve/deny: `{"by": "alice"}`.
#[derive(Debug, Default, Deserialize)]
struct Decided {
    #[serde(default)]
    by: Option<String>,
}

/// The routes: `GET /api/v1/actions` (`{"pending": [...], "recent":
/// [...]}`: actions waiting for approval, then the newest audit records,
/// `?limit=` of them, 100 by default) and `POST
/// /api/v1/actions/{id}/approve` or `/deny` (optional JSON body
/// `{"by": "name"}`; 404 if nothing with that id is pending). POSTs need
/// the API token when one is configured ([`crate::protect`]).
pub fn router(engine: Arc<ActionEngine>) -> Router {
    Router::new()
        .route("/api/v1/actions", get(list))
        .route("/api/v1/actions/{id}/approve", post(approve))
        .route("/api/v1/actions/{id}/deny", post(deny))
        .with_state(engine)
}

async fn list(State(engine): State<Arc<ActionEngine>>, Query(q): Query<ListQuery>) -> Response {
    let recent = engine.audit().recent(q.limit.unwrap_or(100));
    axum::Json(json!({"pending": engine.pending(), "recent": recent})).into_response()
}

fn by(body: &Bytes) -> Result<String, String> {
    if body.is_empty() {
        return Ok("api".into());
    }
    serde_json::from_slice::<Decided>(body)
        .map(|d| d.by.unwrap_or_else(|| "api".into()))
        .map_err(|e| e.to_string())
}

fn answer(id: &str, decision: &str, result: Result<(), ActionError>) -> Response {
    match result {
        Ok(()) => axum::Json(json!({"id": id, "decision": decision})).into_response(),
        Err(e @ ActionError::NotPending(_)) => {
            (StatusCode::NOT_FOUND, axum::Json(json!(e.to_string()))).into_response()
        }
        Err(e) => (StatusCode::CONFLICT, axum::Json(json!(e.to_string()))).into_response(),
    }
}

async fn approve(
    State(engine): State<Arc<ActionEngine>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    match by(&body) {
        Ok(who) => answer(&id, "approved", engine.approve(&id, &who).await),
        Err(e) => (StatusCode::BAD_REQUEST, axum::Json(json!(e))).into_response(),
    }
}

async fn deny(
    State(engine): State<Arc<ActionEngine>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    match by(&body) {
        Ok(who) => answer(&id, "denied", engine.deny(&id, &who)),
        Err(e) => (StatusCode::BAD_REQUEST, axum::Json(json!(e))).into_response(),
    }
}
