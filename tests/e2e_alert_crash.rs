//! Exactly once across a crash, on the real binary: a notification
//! pending when Vigie is killed with SIGKILL arrives once after the
//! restart (re-sent from the outbox, not notified again by the re-created
//! group), with the same idempotency key as the attempts before the crash.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use common::{Vigie, wait_for};
use serde_json::{Value, json};

/// A webhook receiver that answers 503 while down; records the
/// `Idempotency-Key` of every request and the bodies it accepted.
#[derive(Default)]
struct Receiver {
    down: AtomicBool,
    refused_keys: Mutex<Vec<String>>,
    accepted: Mutex<Vec<(String, Value)>>,
}

async fn receiver() -> (String, Arc<Receiver>) {
    let r = Arc::new(Receiver::default());
    r.down.store(true, Ordering::SeqCst);
    let state = Arc::clone(&r);
    let app = Router::new().fallback(
        move |headers: HeaderMap, axum::Json(body): axum::Json<Value>| {
            let r = Arc::clone(&state);
            async move {
                let key = headers
                    .get("idempotency-key")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                if r.down.load(Ordering::SeqCst) {
                    r.refused_keys.lock().expect("lock").push(key);
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                r.accepted.lock().expect("lock").push((key, body));
                StatusCode::OK
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), r)
}

/// Posts the alert as a Prometheus does (again and again while it fires).
async fn post_alert(vigie: &Vigie) {
    let r = reqwest::Client::new()
        .post(format!("http://{}/api/v2/alerts", vigie.addr))
        .json(&json!([{
            "labels": {"alertname": "DiskFull", "instance": "db1", "severity": "page"},
            "annotations": {"summary": "disk full on db1"},
            "startsAt": "2026-01-01T00:00:00Z",
        }]))
        .send()
        .await
        .expect("post alert");
    assert!(r.status().is_success(), "{}", r.status());
}

fn outbox_files(vigie: &Vigie) -> usize {
    std::fs::read_dir(vigie.dir.path().join("vigie-data/alerting/outbox"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn kill_9_with_a_pending_notification_delivers_it_once() {
    let (url, hook) = receiver().await;
    let config = format!(
        "[alerting]\ngroup_wait = \"1s\"\ngroup_interval = \"3s\"\n\
         [[alerting.receivers]]\nname = \"ops\"\n\
         [[alerting.receivers.webhook_configs]]\nurl = \"{url}\"\ntimeout = \"2s\"\n"
    );
    let mut vigie = Vigie::start(&config, "groups: []\n").await;
    post_alert(&vigie).await;
    wait_for("a refused attempt", Duration::from_secs(30), || async {
        (!hook.refused_keys.lock().expect("lock").is_empty()).then_some(())
    })
    .await;
    assert_eq!(outbox_files(&vigie), 1, "{}", vigie.log());
    vigie.crash();

    // The receiver comes back; Vigie restarts on the same data and keeps
    // receiving the alert, as from a Prometheus.
    hook.down.store(false, Ordering::SeqCst);
    let dir = Arc::clone(&vigie.dir);
    drop(vigie);
    let vigie = Vigie::start_in(dir, &config, "groups: []\n", &[]).await;
    post_alert(&vigie).await;
    wait_for("the delivery", Duration::from_secs(30), || async {
        (!hook.accepted.lock().expect("lock").is_empty()).then_some(())
    })
    .await;
    // Several group_wait and group_interval periods, re-posting the alert.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        post_alert(&vigie).await;
    }
    let accepted = hook.accepted.lock().expect("lock").clone();
    assert_eq!(accepted.len(), 1, "once: {accepted:?}\n{}", vigie.log());
    let (key, body) = &accepted[0];
    assert_eq!(body["status"], "firing");
    assert_eq!(body["alerts"][0]["labels"]["instance"], "db1");
    assert_eq!(key.len(), 32);
    let refused = hook.refused_keys.lock().expect("lock").clone();
    assert!(
        refused.iter().all(|k| k == key),
        "a receiver can drop duplicates by key: {refused:?} vs {key}"
    );
    assert_eq!(outbox_files(&vigie), 0);
    // The history tells the same story: failures before the crash, then
    // one delivery, all under one key.
    let history: Vec<Value> = reqwest::get(format!(
        "http://{}/api/v1/notifications?status=sent",
        vigie.addr
    ))
    .await
    .expect("history")
    .json()
    .await
    .expect("json");
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0]["idempotency_key"], key.as_str());
}
