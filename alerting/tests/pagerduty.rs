//! The PagerDuty Events API v2 notifier against a real HTTP server.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::{json_server, notification, notified};
use serde_json::json;
use vigie_alerting::notify::pagerduty::PagerdutyNotifier;
use vigie_alerting::{GroupStatus, Notifier, NotifyError, PagerdutyConfig};

fn notifier(url: String, severity: Option<&str>) -> PagerdutyNotifier {
    PagerdutyNotifier::new(&PagerdutyConfig {
        routing_key: "R0UT1NGKEY".into(),
        url,
        severity: severity.map(str::to_string),
        send_resolved: true,
        timeout: Duration::from_secs(5),
        http_config: Default::default(),
        description: None,
        client: None,
        client_url: None,
        source: None,
        class: None,
        component: None,
        group: None,
        details: Default::default(),
    })
    .expect("notifier")
}

async fn pagerduty() -> (String, std::sync::Arc<common::Seen>) {
    json_server(
        StatusCode::ACCEPTED,
        json!({"status": "success", "message": "Event processed"}),
    )
    .await
}

const DEDUP: &str = "c945db2b041ca14f4844351fac36b13a";

#[tokio::test]
async fn trigger_then_resolve_share_the_dedup_key() {
    let (base, seen) = pagerduty().await;
    let pd = notifier(format!("{base}/v2/enqueue"), None);
    let firing = notification(
        GroupStatus::Firing,
        vec![
            notified("a", GroupStatus::Firing),
            notified("bb", GroupStatus::Resolved),
        ],
    );
    pd.notify(&firing).await.expect("trigger");
    let resolved = notification(
        GroupStatus::Resolved,
        vec![
            notified("a", GroupStatus::Resolved),
            notified("bb", GroupStatus::Resolved),
        ],
    );
    pd.notify(&resolved).await.expect("resolve");

    let requests = seen.requests.lock().expect("lock").clone();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].0, "/v2/enqueue");
    let alert = |instance: &str, ends: Option<&str>| {
        let mut a = json!({
            "labels": {"alertname": "HighLatency", "instance": instance, "severity": "page"},
            "annotations": {
                "description": "p99 above 500ms for 5 minutes",
                "summary": format!("Latency high on {instance}"),
            },
            "starts_at": "2023-11-14T22:13:20Z",
            "generator_url": "http://vigie.test/graph?g0.expr=latency",
            "fingerprint": format!("{:016x}", instance.len()),
        });
        if let Some(ends) = ends {
            a["ends_at"] = json!(ends);
        }
        a
    };
    assert_eq!(
        requests[0].1,
        json!({
            "routing_key": "R0UT1NGKEY",
            "event_action": "trigger",
            "dedup_key": DEDUP,
            "payload": {
                "summary": "[FIRING:1] HighLatency (page)",
                "source": "Vigie",
                "severity": "critical",
                "custom_details": {
                    "num_firing": 1,
                    "num_resolved": 1,
                    "firing": [alert("a", None)],
                    "resolved": [alert("bb", Some("2023-11-14T22:23:20Z"))],
                },
            },
            "client": "Vigie",
            "client_url": "http://vigie.test:9464",
        })
    );
    let resolve = &requests[1].1;
    assert_eq!(resolve["event_action"], "resolve");
    assert_eq!(resolve["dedup_key"], requests[0].1["dedup_key"]);
    assert_eq!(resolve["routing_key"], "R0UT1NGKEY");
    assert_eq!(
        resolve["payload"]["summary"],
        "[RESOLVED] HighLatency (page)"
    );
    assert_eq!(resolve["payload"]["custom_details"]["num_resolved"], 2);
}

#[tokio::test]
async fn configured_severity_wins_and_single_instance_is_the_source() {
    let (base, seen) = pagerduty().await;
    let pd = notifier(format!("{base}/v2/enqueue"), Some("warning"));
    let n = notification(
        GroupStatus::Firing,
        vec![notified("a", GroupStatus::Firing)],
    );
    pd.notify(&n).await.expect("trigger");
    let body = seen.requests.lock().expect("lock")[0].1.clone();
    assert_eq!(body["payload"]["severity"], "warning");
    assert_eq!(body["payload"]["source"], "a");
    assert_eq!(body["dedup_key"], DEDUP);
}

#[tokio::test]
async fn invalid_event_is_a_permanent_error() {
    let (base, _seen) = json_server(
        StatusCode::BAD_REQUEST,
        json!({"status": "invalid event", "message": "Event object is invalid"}),
    )
    .await;
    let n = notification(
        GroupStatus::Firing,
        vec![notified("a", GroupStatus::Firing)],
    );
    let err = notifier(format!("{base}/v2/enqueue"), None)
        .notify(&n)
        .await
        .expect_err("400 must fail");
    assert!(
        matches!(&err, NotifyError::Http { status: 400, body } if body.contains("invalid")),
        "{err:?}"
    );
    assert!(!err.retriable());
}
