//! Acknowledgements over the HTTP API with a real webhook receiver: an
//! acknowledged group stays quiet (new alerts, restarts included) until it
//! resolves; the resolution is sent and clears the acknowledgement.

mod common;

use std::time::Duration;

use common::{Running, eventually, quick_config, toggle_server};
use serde_json::json;

const KEY: &str = r#"{}:{alertname="DiskFull"}"#;

fn ack_path(id: &str) -> String {
    let encoded: String = id
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("/api/v1/alerts/groups/{encoded}/ack")
}

#[tokio::test]
async fn acknowledged_group_is_quiet_until_it_resolves_across_a_restart() {
    let data = tempfile::tempdir().expect("tmp");
    let (url, hook) = toggle_server(false).await;
    let mut alerting = Running::start(quick_config(&url), data.path()).await;
    let disk = |instance: &str| json!({"alertname": "DiskFull", "instance": instance});
    let hour = Duration::from_secs(3600);
    alerting.post_alert(disk("db1"), hour).await;
    eventually("the first page", || hook.bodies().len() == 1).await;

    let (status, body) = alerting.post(&ack_path("nothing"), &json!({})).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = alerting.post(&ack_path(KEY), &json!({"by": 3})).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = alerting
        .post(
            &ack_path(KEY),
            &json!({"by": "alice", "comment": "replacing the disk"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["acknowledged"], json!([KEY]));

    // A new alert joins the group: not notified.
    alerting.post_alert(disk("db2"), hour).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(hook.bodies().len(), 1, "muted: {:?}", hook.bodies());
    let muted = alerting.history("status=acknowledged").await;
    assert_eq!(muted.len(), 1, "{muted:?}");
    assert!(
        muted[0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("alice") && d.contains("replacing the disk")),
        "{}",
        muted[0]
    );
    alerting.stop().await;

    // Restarted: the acknowledgement holds for the re-created group.
    let mut alerting = Running::start(quick_config(&url), data.path()).await;
    let (_, acks) = alerting.get("/api/v1/alerts/groups/acks").await;
    assert_eq!(acks[0]["group_key"], KEY, "{acks}");
    assert_eq!(acks[0]["by"], "alice");
    alerting.post_alert(disk("db1"), hour).await;
    alerting.post_alert(disk("db2"), hour).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(hook.bodies().len(), 1, "still muted: {:?}", hook.bodies());

    // Both resolve: the resolution is sent and clears the acknowledgement.
    alerting.post_alert(disk("db1"), Duration::ZERO).await;
    alerting.post_alert(disk("db2"), Duration::ZERO).await;
    eventually("the resolution", || hook.bodies().len() == 2).await;
    let resolved = &hook.bodies()[1];
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["groupKey"], KEY);
    eventually("the acknowledgement to clear", || {
        std::fs::read_to_string(data.path().join("alerting/state.json"))
            .is_ok_and(|s| !s.contains("alice"))
    })
    .await;
    let (_, acks) = alerting.get("/api/v1/alerts/groups/acks").await;
    assert_eq!(acks, json!([]));
    alerting.stop().await;
}
