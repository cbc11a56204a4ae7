//! Shared test helpers: a recording webhook server and notification
//! builders; a real SMTP server ([`smtp`]), a real HTTPS server ([`https`])
//! and throwaway certificates ([`pki`]).

#![allow(dead_code)]

pub mod https;
pub mod pki;
pub mod smtp;

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
        notified_at_ms: 1_700_000_100_000,
        incident: None,
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

/// A receiver that can be taken down and brought back: answers 503 while
/// down, else 200, recording the `Idempotency-Key` header and the body of
/// every accepted request.
#[derive(Default)]
pub struct Toggle {
    /// Whether it answers 503.
    pub down: std::sync::atomic::AtomicBool,
    /// Requests refused while down.
    pub refused: AtomicUsize,
    /// Accepted requests: idempotency key (empty if none) and body.
    pub accepted: Mutex<Vec<(String, serde_json::Value)>>,
}

impl Toggle {
    /// The accepted bodies.
    pub fn bodies(&self) -> Vec<serde_json::Value> {
        self.accepted
            .lock()
            .expect("lock")
            .iter()
            .map(|(_, b)| b.clone())
            .collect()
    }
}

/// Starts a [`Toggle`] receiver on 127.0.0.1:0; returns its URL.
pub async fn toggle_server(down: bool) -> (String, Arc<Toggle>) {
    let t = Arc::new(Toggle::default());
    t.down.store(down, Ordering::SeqCst);
    let state = Arc::clone(&t);
    let app = Router::new().fallback(
        move |headers: axum::http::HeaderMap, axum::Json(body): axum::Json<serde_json::Value>| {
            let t = Arc::clone(&state);
            async move {
                if t.down.load(Ordering::SeqCst) {
                    t.refused.fetch_add(1, Ordering::SeqCst);
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                let key = headers
                    .get("idempotency-key")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                t.accepted.lock().expect("lock").push((key, body));
                StatusCode::OK
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
    (format!("http://{addr}/hook"), t)
}

/// Alerting started with `vigie_alerting::start` (data under a directory),
/// its API served on 127.0.0.1:0.
pub struct Running {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The HTTP client.
    pub client: reqwest::Client,
    shutdown: tokio_util::sync::CancellationToken,
    task: Option<vigie_alerting::AlertingTask>,
    _bus: vigie_bus::memory::MemoryBus,
}

impl Running {
    /// Starts alerting with `config` and data under `data_dir`.
    pub async fn start(
        config: vigie_alerting::AlertingConfig,
        data_dir: &std::path::Path,
    ) -> Running {
        let bus = vigie_bus::memory::MemoryBus::new(16);
        let subscriber = bus.subscribe(&[vigie_model::topics::ALERTS]);
        let shutdown = tokio_util::sync::CancellationToken::new();
        let (router, task) = vigie_alerting::start(
            config,
            Some(data_dir),
            Box::new(subscriber),
            shutdown.clone(),
        )
        .expect("start");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, router).await });
        Running {
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            shutdown,
            task: Some(task),
            _bus: bus,
        }
    }

    /// Stops the run loop (final flush included).
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.task.take() {
            t.await.expect("join").expect("run");
        }
    }

    /// GET `path`: status and JSON body.
    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("get");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// POST `body` as JSON to `path`: status and JSON body.
    pub async fn post(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .expect("post");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// Posts one alert (Alertmanager API v2) with `labels`, firing until
    /// `ends_in` from now, or resolved now when `ends_in` is zero.
    pub async fn post_alert(&self, labels: serde_json::Value, ends_in: std::time::Duration) {
        let now = chrono::Utc::now();
        let ends = now + chrono::Duration::from_std(ends_in).expect("duration");
        let starts = now - chrono::Duration::minutes(1);
        let (status, body) = self
            .post(
                "/api/v2/alerts",
                &serde_json::json!([{
                    "labels": labels,
                    "annotations": {"summary": "test"},
                    "startsAt": starts.to_rfc3339(),
                    "endsAt": ends.to_rfc3339(),
                }]),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    /// Silences alerts named `name` for an hour; returns the silence id.
    pub async fn silence(&self, name: &str) -> String {
        let now = chrono::Utc::now();
        let (status, body) = self
            .post(
                "/api/v2/silences",
                &serde_json::json!({
                    "matchers": [{"name": "alertname", "value": name, "isRegex": false, "isEqual": true}],
                    "startsAt": now.to_rfc3339(),
                    "endsAt": (now + chrono::Duration::hours(1)).to_rfc3339(),
                    "createdBy": "tester",
                    "comment": "maintenance",
                }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["silenceID"].as_str().expect("silenceID").to_string()
    }

    /// The history, as `GET /api/v1/notifications?<query>` returns it.
    pub async fn history(&self, query: &str) -> Vec<serde_json::Value> {
        let (status, body) = self.get(&format!("/api/v1/notifications?{query}")).await;
        assert_eq!(status, 200, "{body}");
        body.as_array().expect("array").clone()
    }
}

/// Polls `done` every 50 ms; panics with `what` after 20 s.
pub async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// An [`vigie_alerting::AlertingConfig`] with short timings and one
/// receiver `ops` with one webhook to `url`.
pub fn quick_config(url: &str) -> vigie_alerting::AlertingConfig {
    vigie_alerting::AlertingConfig {
        group_wait: std::time::Duration::from_millis(100),
        group_interval: std::time::Duration::from_secs(2),
        receivers: vec![vigie_alerting::ReceiverConfig {
            name: "ops".into(),
            webhook_configs: vec![vigie_alerting::WebhookConfig {
                url: url.into(),
                send_resolved: true,
                timeout: std::time::Duration::from_secs(2),
                max_alerts: 0,
                http_config: Default::default(),
            }],
            ..vigie_alerting::ReceiverConfig::default()
        }],
        ..vigie_alerting::AlertingConfig::default()
    }
}

/// Asserts that `err` is a TLS failure: reason label `tls`, not retried,
/// and its message names `what` (e.g. rustls' `UnknownIssuer`).
pub fn assert_tls_failure(err: &vigie_alerting::NotifyError, what: &str) {
    assert!(
        matches!(err, vigie_alerting::NotifyError::Tls { .. }),
        "{err:?}"
    );
    assert_eq!(err.reason(), "tls");
    assert!(!err.retriable(), "{err:?}");
    assert!(err.to_string().contains(what), "{err}");
}
