//! Acknowledgements: `POST /api/v1/alerts/groups/{id}/ack` mutes an alert
//! group until it resolves, with no expiry to guess.
//!
//! `id` is a group key (as in notifications and
//! `GET /api/v1/notifications`, percent-encoded in the path) or the
//! fingerprint of an alert, meaning every group it is in. The optional
//! JSON body `{"by": "...", "comment": "..."}` says who and why. While
//! acknowledged, the group's firing alerts are not notified (neither new
//! ones nor repeats); its resolution is, and clears the acknowledgement.
//! Acknowledgements are kept with the notification log
//! ([`crate::state`]), so they survive a restart. The endpoint changes
//! state, so it needs the API token when one is set ([`crate::auth`]).
//! `GET /api/v1/alerts/groups/acks` lists them.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use tracing::{info, warn};

use crate::dispatch::{Shared, now_ms};

/// The optional body of an acknowledgement.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    #[serde(default)]
    by: Option<String>,
    #[serde(default)]
    comment: Option<String>,
}

/// The acknowledgement routes over `state`.
pub fn router(state: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/v1/alerts/groups/acks", get(list))
        .route("/api/v1/alerts/groups/{id}/ack", post(acknowledge))
        .with_state(state)
}

async fn acknowledge(
    State(state): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let body: AckBody = if body.iter().all(u8::is_ascii_whitespace) {
        AckBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => {
                return (
                    StatusCode::BAD_REQUEST,
                    axum::Json(format!(
                        "body is not {{\"by\": \"...\", \"comment\": \"...\"}}: {e}"
                    )),
                )
                    .into_response();
            }
        }
    };
    let by = body.by.unwrap_or_else(|| "api".to_string());
    let comment = body.comment.unwrap_or_default();
    let keys = state.lock().acknowledge(&id, &by, &comment, now_ms());
    if keys.is_empty() {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(format!(
                "no alert group with key or alert fingerprint {id:?}; see GET /api/v2/alerts/groups"
            )),
        )
            .into_response();
    }
    if let Err(error) = state.persist() {
        warn!(%error, "saving an acknowledgement failed; it holds until Vigie stops");
    }
    info!(groups = ?keys, %by, "alert group acknowledged");
    axum::Json(json!({ "acknowledged": keys, "by": by, "comment": comment })).into_response()
}

async fn list(State(state): State<Arc<Shared>>) -> Response {
    axum::Json(state.lock().acks()).into_response()
}
