//! The webhook notifier against a real HTTP server.

mod common;

use std::time::Duration;

use common::{notification, notified, webhook_server};
use vigie_alerting::notify::webhook::WebhookNotifier;
use vigie_alerting::{GroupStatus, Notifier, NotifyError, WebhookConfig};

fn notifier(url: &str) -> WebhookNotifier {
    WebhookNotifier::new(&WebhookConfig {
        url: url.to_string(),
        send_resolved: true,
        timeout: Duration::from_secs(5),
        max_alerts: 0,
        http_config: Default::default(),
    })
    .expect("notifier")
}

#[tokio::test]
async fn posts_alertmanager_v4_json_for_firing_group() {
    let (url, rec) = webhook_server(0).await;
    let n = notification(
        GroupStatus::Firing,
        vec![
            notified("a", GroupStatus::Firing),
            notified("bb", GroupStatus::Firing),
        ],
    );
    notifier(&url).notify(&n).await.expect("notify");

    let bodies = rec.accepted.lock().expect("lock").clone();
    assert_eq!(bodies.len(), 1);
    let b = &bodies[0];
    assert_eq!(b["version"], "4");
    assert_eq!(b["groupKey"], "{}:{alertname=\"HighLatency\"}");
    assert_eq!(b["truncatedAlerts"], 0);
    assert_eq!(b["status"], "firing");
    assert_eq!(b["receiver"], "ops");
    assert_eq!(b["externalURL"], "http://vigie.test:9464");
    assert_eq!(
        b["groupLabels"],
        serde_json::json!({"alertname": "HighLatency"})
    );
    assert_eq!(
        b["commonLabels"],
        serde_json::json!({"alertname": "HighLatency", "severity": "page"})
    );
    assert_eq!(
        b["commonAnnotations"],
        serde_json::json!({"description": "p99 above 500ms for 5 minutes"})
    );
    let alerts = b["alerts"].as_array().expect("alerts");
    assert_eq!(alerts.len(), 2);
    assert_eq!(alerts[0]["status"], "firing");
    assert_eq!(alerts[0]["labels"]["alertname"], "HighLatency");
    assert_eq!(alerts[0]["labels"]["instance"], "a");
    assert_eq!(alerts[0]["annotations"]["summary"], "Latency high on a");
    assert_eq!(alerts[0]["fingerprint"], "0000000000000001");
    assert_eq!(alerts[0]["startsAt"], "2023-11-14T22:13:20Z");
    assert_eq!(alerts[0]["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(
        alerts[0]["generatorURL"],
        "http://vigie.test/graph?g0.expr=latency"
    );
}

#[tokio::test]
async fn resolved_alerts_carry_their_end_time() {
    let (url, rec) = webhook_server(0).await;
    let n = notification(
        GroupStatus::Resolved,
        vec![notified("a", GroupStatus::Resolved)],
    );
    notifier(&url).notify(&n).await.expect("notify");
    let b = rec.accepted.lock().expect("lock")[0].clone();
    assert_eq!(b["status"], "resolved");
    assert_eq!(b["alerts"][0]["status"], "resolved");
    assert_eq!(b["alerts"][0]["endsAt"], "2023-11-14T22:23:20Z");
}

#[tokio::test]
async fn non_2xx_is_a_retriable_error_with_status_and_body() {
    let (url, _rec) = webhook_server(1).await;
    let n = notification(
        GroupStatus::Firing,
        vec![notified("a", GroupStatus::Firing)],
    );
    let err = notifier(&url).notify(&n).await.expect_err("500 must fail");
    match &err {
        NotifyError::Http { status, body } => {
            assert_eq!(*status, 500);
            assert!(body.contains("receiver is down"), "{body}");
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(err.retriable());
}

#[tokio::test]
async fn connection_refused_is_a_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    drop(listener);
    let n = notification(
        GroupStatus::Firing,
        vec![notified("a", GroupStatus::Firing)],
    );
    let err = notifier(&url).notify(&n).await.expect_err("nobody listens");
    assert!(matches!(err, NotifyError::Transport(_)), "{err:?}");
}
