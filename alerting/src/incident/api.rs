//! The run loop's entry for `vigie.anomalies`, and `GET /api/v1/incidents`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tracing::warn;
use vigie_model::AnomalyEvent;

use super::tracker::Incident;
use crate::dispatch::{Shared, now_ms};
use crate::metrics::{INCIDENT_DECODE_ERRORS, INCIDENT_REQUESTS_REFUSED};
use crate::notify::rfc3339;

/// Hands one `vigie.anomalies` payload to the dispatcher's incident
/// tracker; an undecodable one is logged and counted
/// (`vigie_incident_decode_errors_total`), never fatal.
pub fn receive(state: &Shared, payload: &[u8]) {
    match AnomalyEvent::decode(payload) {
        Ok(event) => state
            .lock()
            .incidents_mut()
            .observe_anomaly(&event, now_ms()),
        Err(error) => {
            INCIDENT_DECODE_ERRORS.inc();
            warn!(%error, bytes = payload.len(), topic = vigie_model::topics::ANOMALIES,
                  "undecodable anomaly event skipped");
        }
    }
}

/// `GET /api/v1/incidents[?state=open|closed]`: incidents newest first,
/// each with its root cause, chain and members.
pub fn router(state: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/v1/incidents", get(get_incidents))
        .with_state(state)
}

fn refuse(reason: String) -> Response {
    INCIDENT_REQUESTS_REFUSED.inc();
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": reason})),
    )
        .into_response()
}

async fn get_incidents(State(state): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    let pairs: Vec<(String, String)> = match serde_urlencoded::from_str(q.as_deref().unwrap_or(""))
    {
        Ok(p) => p,
        Err(e) => return refuse(format!("bad query string: {e}")),
    };
    let mut open = None;
    for (k, v) in pairs {
        match (k.as_str(), v.as_str()) {
            ("state", "open") => open = Some(true),
            ("state", "closed") => open = Some(false),
            ("state", "" | "all") => open = None,
            ("state", other) => {
                return refuse(format!(
                    "state={other:?}: use state=open, state=closed or leave it out for both"
                ));
            }
            (other, _) => {
                return refuse(format!(
                    "unknown parameter {other:?}: the only one is state (open|closed)"
                ));
            }
        }
    }
    let incidents = state.lock().incidents_mut().list(now_ms(), open);
    let data: Vec<Value> = incidents.iter().map(incident_json).collect();
    axum::Json(json!({"status": "success", "data": data})).into_response()
}

/// One incident as the API shows it: the hint's fields plus state, times
/// and members.
pub(super) fn incident_json(i: &Incident) -> Value {
    let mut v = i.hint().to_json();
    if let Some(obj) = v.as_object_mut() {
        obj.insert(
            "state".into(),
            json!(if i.is_open() { "open" } else { "closed" }),
        );
        obj.insert("lastActivityAt".into(), json!(rfc3339(i.last_ms)));
        obj.insert("closedAt".into(), json!(i.closed_ms.map(rfc3339)));
        obj.insert("droppedMembers".into(), json!(i.dropped_members));
        let members: Vec<Value> = i
            .members
            .iter()
            .map(|m| {
                json!({
                    "kind": m.kind,
                    "key": m.key,
                    "name": m.name,
                    "labels": m.labels,
                    "startsAt": rfc3339(m.at_ms),
                    "endsAt": m.ended_ms.map(rfc3339),
                    "score": m.score,
                })
            })
            .collect();
        obj.insert("members".into(), Value::Array(members));
    }
    v
}
