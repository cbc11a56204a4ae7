//! Shared test helpers: a recording webhook server and notification builders.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use vigie_alerting::{GroupStatus, Notification, NotifiedAlert};
use vigie_model::Labels;

/// What the webhook server saw.
#[derive(Default)]
pub struct Recorded {
    /// Bodies answered with 2xx.
    pub accepted: Mutex<Vec<serde_json::Value>>,
    /// Requests answered with 500.
    pub rejected: AtomicUsize,
    /// How many requests to reject first.
    pub fail_first: usize,
}

async fn hook(
    State(rec): State<Arc<Recorded>>,
    axum::Json(body): axum::Json<serde_json::Value>,
) -> (StatusCode, &'static str) {
    if rec.rejected.load(Ordering::SeqCst) < rec.fail_first {
        rec.rejected.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::INTERNAL_SERVER_ERROR, "receiver is down");
    }
    rec.accepted.lock().expect("lock").push(body);
    (StatusCode::OK, "ok")
}

/// Starts a webhook server on 127.0.0.1:0; returns its URL and records.
pub async fn webhook_server(fail_first: usize) -> (String, Arc<Recorded>) {
    let rec = Arc::new(Recorded {
        fail_first,
        ..Recorded::default()
    });
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(Arc::clone(&rec));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    (format!("http://{addr}/hook"), rec)
}

/// A firing or resolved alert of `HighLatency` on `instance`.
pub fn notified(instance: &str, status: GroupStatus) -> NotifiedAlert {
    NotifiedAlert {
        status,
        labels: Labels::new()
            .with("alertname", "HighLatency")
            .with("instance", instance)
            .with("severity", "page"),
        annotations: Labels::new()
            .with("summary", format!("Latency high on {instance}"))
            .with("description", "p99 above 500ms for 5 minutes"),
        starts_at_ms: 1_700_000_000_000,
        ends_at_ms: (status == GroupStatus::Resolved).then_some(1_700_000_600_000),
        generator_url: "http://vigie.test/graph?g0.expr=latency".into(),
        fingerprint: format!("{:016x}", instance.len()),
    }
}

/// A notification for group `alertname="HighLatency"`.
pub fn notification(status: GroupStatus, alerts: Vec<NotifiedAlert>) -> Notification {
    Notification {
        receiver: "ops".into(),
        group_key: "{}:{alertname=\"HighLatency\"}".into(),
        status,
        group_labels: Labels::new().with("alertname", "HighLatency"),
        alerts,
        external_url: "http://vigie.test:9464".into(),
    }
}

/// What a [`json_server`] saw.
#[derive(Default)]
pub struct Seen {
    /// Request paths and JSON bodies, in arrival order.
    pub requests: Mutex<Vec<(String, serde_json::Value)>>,
}

/// Starts an HTTP server on 127.0.0.1:0 that answers every POST with
/// `status` and `answer`, recording path and JSON body; returns its base URL.
pub async fn json_server(status: StatusCode, answer: serde_json::Value) -> (String, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let recorder = Arc::clone(&seen);
    let app = Router::new().fallback(
        move |uri: axum::http::Uri, axum::Json(body): axum::Json<serde_json::Value>| {
            let recorder = Arc::clone(&recorder);
            let answer = answer.clone();
            async move {
                recorder
                    .requests
                    .lock()
                    .expect("lock")
                    .push((uri.path().to_string(), body));
                (status, axum::Json(answer))
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    (format!("http://{addr}"), seen)
}
