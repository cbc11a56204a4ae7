//! An alert that resolves while silenced or inhibited still closes its
//! PagerDuty incident: a real HTTP server stands in for the Events API v2
//! and must see `trigger` then `resolve` with the same `dedup_key`.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::{Running, json_server};
use serde_json::{Value, json};
use vigie_alerting::AlertingConfig;

/// The events seen for the incident whose trigger names `alertname`.
fn incident(seen: &common::Seen, alertname: &str) -> Vec<(String, String)> {
    let events: Vec<Value> = seen
        .requests
        .lock()
        .expect("lock")
        .iter()
        .map(|(_, b)| b.clone())
        .collect();
    let Some(dedup) = events
        .iter()
        .find(|e| {
            e.to_string()
                .contains(&format!("\"alertname\":\"{alertname}\""))
        })
        .map(|e| e["dedup_key"].clone())
    else {
        return Vec::new();
    };
    events
        .iter()
        .filter(|e| e["dedup_key"] == dedup)
        .map(|e| {
            (
                e["event_action"].as_str().unwrap_or_default().to_string(),
                e["dedup_key"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

async fn wait_events(seen: &common::Seen, alertname: &str, n: usize) -> Vec<(String, String)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let events = incident(seen, alertname);
        if events.len() >= n {
            return events;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{alertname}: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn resolving_while_silenced_or_inhibited_still_resolves_the_incident() {
    let (base, seen) = json_server(
        StatusCode::ACCEPTED,
        json!({"status": "success", "message": "Event processed"}),
    )
    .await;
    let data = tempfile::tempdir().expect("tmp");
    let am = data.path().join("alertmanager.yml");
    std::fs::write(
        &am,
        format!(
            r#"
route:
  receiver: pd
  group_by: [alertname, instance]
  group_wait: 1s
  group_interval: 2s
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="warning"']
    equal: [instance]
receivers:
  - name: pd
    pagerduty_configs:
      - routing_key: R0UT1NGKEY
        url: {base}/v2/enqueue
"#
        ),
    )
    .expect("alertmanager.yml");
    let config = AlertingConfig {
        alertmanager_config: Some(am),
        ..AlertingConfig::default()
    };
    let mut alerting = Running::start(config, data.path()).await;
    let hour = Duration::from_secs(3600);

    // Silenced while firing, then resolved.
    let disk = json!({"alertname": "DiskFull", "instance": "db1", "severity": "warning"});
    alerting.post_alert(disk.clone(), hour).await;
    wait_events(&seen, "DiskFull", 1).await;
    alerting.silence("DiskFull").await;
    alerting.post_alert(disk.clone(), hour).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(incident(&seen, "DiskFull").len(), 1, "silenced: no repeat");
    alerting.post_alert(disk, Duration::ZERO).await;
    let events = wait_events(&seen, "DiskFull", 2).await;
    assert_eq!(events[0].0, "trigger");
    assert_eq!(events[1].0, "resolve");
    assert_eq!(events[0].1, events[1].1, "same dedup_key");

    // Inhibited while firing (its node went down), then resolved.
    let latency = json!({"alertname": "Latency", "instance": "web1", "severity": "warning"});
    alerting.post_alert(latency.clone(), hour).await;
    wait_events(&seen, "Latency", 1).await;
    alerting
        .post_alert(
            json!({"alertname": "NodeDown", "instance": "web1", "severity": "critical"}),
            hour,
        )
        .await;
    wait_events(&seen, "NodeDown", 1).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    alerting.post_alert(latency, Duration::ZERO).await;
    let events = wait_events(&seen, "Latency", 2).await;
    assert_eq!(
        events.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(),
        ["trigger", "resolve"]
    );
    assert_eq!(events[0].1, events[1].1, "same dedup_key");
    // The muting was recorded while it lasted.
    let inhibited = alerting.history("status=inhibited").await;
    assert_eq!(inhibited.len(), 1, "{inhibited:?}");
    assert_eq!(inhibited[0]["integration"], "pagerduty");
    assert_eq!(alerting.history("status=silenced").await.len(), 1);
    alerting.stop().await;
}
