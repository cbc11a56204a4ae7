//! The notification history (`GET /api/v1/notifications`, and the Arrow
//! batch behind SQL table `notifications`) against a real webhook that is
//! down, then up, across a restart.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Running, eventually, quick_config, toggle_server};
use serde_json::json;
use vigie_alerting::history::History;

#[tokio::test]
async fn attempts_and_silences_are_recorded_and_survive_a_restart() {
    let data = tempfile::tempdir().expect("tmp");
    let (url, hook) = toggle_server(true).await;
    let mut alerting = Running::start(quick_config(&url), data.path()).await;

    alerting
        .post_alert(
            json!({"alertname": "DiskFull", "instance": "db1"}),
            Duration::from_secs(3600),
        )
        .await;
    eventually("a refused attempt", || {
        hook.refused.load(Ordering::SeqCst) > 0
    })
    .await;
    hook.down.store(false, Ordering::SeqCst);
    eventually("the delivery", || {
        !hook.accepted.lock().expect("lock").is_empty()
    })
    .await;

    // A silenced alert is recorded as such, once, with the silence.
    let silence = alerting.silence("Muted").await;
    alerting
        .post_alert(
            json!({"alertname": "Muted", "instance": "db2"}),
            Duration::from_secs(3600),
        )
        .await;
    let mut silenced = Vec::new();
    for _ in 0..100 {
        silenced = alerting.history("status=silenced").await;
        if !silenced.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(silenced.len(), 1, "{silenced:?}");
    assert_eq!(silenced[0]["receiver"], "ops");
    assert_eq!(silenced[0]["integration"], "webhook");
    assert!(
        silenced[0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains(&silence)),
        "{}",
        silenced[0]
    );

    let disk = r#"group_key=%7B%7D%3A%7Balertname%3D%22DiskFull%22%7D"#;
    let records = alerting.history(disk).await;
    assert!(records.len() >= 2, "{records:?}");
    assert_eq!(records[0]["status"], "sent", "newest first: {records:?}");
    assert!(records[0]["attempt"].as_u64() >= Some(2), "{}", records[0]);
    for r in &records[1..] {
        assert!(
            r["status"] == "retried" || r["status"] == "failed",
            "before the delivery only failures: {r}"
        );
        assert!(
            r["detail"].as_str().is_some_and(|d| d.contains("503")),
            "{r}"
        );
    }
    assert_eq!(records[0]["group_status"], "firing");
    // The key the receiver saw is the one recorded, on every attempt.
    let (seen_key, _) = hook.accepted.lock().expect("lock")[0].clone();
    assert_eq!(seen_key.len(), 32);
    assert!(
        records
            .iter()
            .all(|r| r["idempotency_key"] == seen_key.as_str())
    );
    assert_eq!(alerting.history("status=sent&limit=5").await.len(), 1);
    assert!(alerting.history("receiver=dev").await.is_empty());
    let (status, body) = alerting.get("/api/v1/notifications?status=lost").await;
    assert_eq!(status, 400, "{body}");
    let all = alerting.history("limit=1000").await;
    alerting.stop().await;

    // Restarted from the same directory, the history is still there.
    let alerting = Running::start(quick_config(&url), data.path()).await;
    let again = alerting.history("limit=1000").await;
    assert_eq!(again, all);
    // The Arrow batch behind SQL table `notifications` holds the same.
    let batch = History::open(data.path()).record_batch().expect("batch");
    assert_eq!(batch.num_rows(), all.len());
    assert_eq!(batch.schema(), vigie_alerting::history::schema());
    assert_eq!(hook.accepted.lock().expect("lock").len(), 1);
}
