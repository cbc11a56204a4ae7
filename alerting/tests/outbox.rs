//! The durable outbox: a notification that could not be delivered before
//! alerting stopped is delivered once by the next start from the same
//! data directory.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use tokio_util::sync::CancellationToken;
use vigie_alerting::outbox::outbox_dir;
use vigie_alerting::{AlertingConfig, ReceiverConfig, WebhookConfig};
use vigie_bus::memory::MemoryBus;
use vigie_bus::{Message, Publisher};
use vigie_model::{Alert, AlertState, Labels, topics};

#[derive(Default)]
struct Hook {
    down: AtomicBool,
    refused: Mutex<usize>,
    accepted: Mutex<Vec<serde_json::Value>>,
}

async fn hook_server(hook: Arc<Hook>) -> String {
    let app = Router::new().fallback(move |axum::Json(body): axum::Json<serde_json::Value>| {
        let hook = Arc::clone(&hook);
        async move {
            if hook.down.load(Ordering::SeqCst) {
                *hook.refused.lock().expect("lock") += 1;
                return StatusCode::SERVICE_UNAVAILABLE;
            }
            hook.accepted.lock().expect("lock").push(body);
            StatusCode::OK
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    format!("http://{addr}/hook")
}

fn config(url: String) -> AlertingConfig {
    AlertingConfig {
        group_wait: Duration::from_millis(100),
        group_interval: Duration::from_secs(2),
        receivers: vec![ReceiverConfig {
            name: "ops".into(),
            webhook_configs: vec![WebhookConfig {
                url,
                send_resolved: true,
                timeout: Duration::from_secs(2),
                max_alerts: 0,
                http_config: Default::default(),
            }],
            ..ReceiverConfig::default()
        }],
        ..AlertingConfig::default()
    }
}

fn pending(dir: &std::path::Path) -> usize {
    std::fs::read_dir(outbox_dir(dir))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                .count()
        })
        .unwrap_or(0)
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn pending_notification_survives_a_restart_and_is_delivered_once() {
    let data = tempfile::tempdir().expect("tmp");
    let hook = Arc::new(Hook::default());
    hook.down.store(true, Ordering::SeqCst);
    let url = hook_server(Arc::clone(&hook)).await;

    // First run: the webhook is down; the notification stays in the outbox.
    let bus = MemoryBus::new(16);
    let stop = CancellationToken::new();
    let (_api, task) = vigie_alerting::start(
        config(url.clone()),
        Some(data.path()),
        Box::new(bus.subscribe(&[topics::ALERTS])),
        stop.clone(),
    )
    .expect("start");
    let now = chrono::Utc::now().timestamp_millis();
    let alert = Alert {
        labels: Labels::new()
            .with("alertname", "DiskFull")
            .with("instance", "db1"),
        annotations: Labels::new().with("summary", "disk full"),
        state: AlertState::Firing,
        active_at_ms: now - 60_000,
        fired_at_ms: Some(now),
        resolved_at_ms: None,
        value: 99.0,
        generator_url: "http://vigie.test/graph".into(),
    };
    bus.publish(Message::new(
        topics::ALERTS,
        alert.fingerprint().into_bytes(),
        vigie_model::codec::encode_alert(&alert).expect("encode"),
    ))
    .await
    .expect("publish");
    wait_for("a refused attempt", || {
        *hook.refused.lock().expect("lock") > 0
    })
    .await;
    assert_eq!(pending(data.path()), 1);
    stop.cancel();
    task.await.expect("join").expect("run");
    assert!(hook.accepted.lock().expect("lock").is_empty());
    assert_eq!(pending(data.path()), 1, "undelivered notification kept");

    // Second run from the same directory, webhook up, no new alerts.
    hook.down.store(false, Ordering::SeqCst);
    let bus = MemoryBus::new(16);
    let stop = CancellationToken::new();
    let (_api, task) = vigie_alerting::start(
        config(url),
        Some(data.path()),
        Box::new(bus.subscribe(&[topics::ALERTS])),
        stop.clone(),
    )
    .expect("restart");
    wait_for("the re-sent notification", || {
        !hook.accepted.lock().expect("lock").is_empty()
    })
    .await;
    wait_for("the outbox to empty", || pending(data.path()) == 0).await;
    // Nothing else is due: a second tick and a final flush send nothing.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.cancel();
    task.await.expect("join").expect("run");

    let accepted = hook.accepted.lock().expect("lock").clone();
    assert_eq!(accepted.len(), 1, "delivered exactly once: {accepted:?}");
    assert_eq!(accepted[0]["status"], "firing");
    assert_eq!(accepted[0]["alerts"][0]["labels"]["instance"], "db1");
    assert_eq!(pending(data.path()), 0);
}
