//! The Slack/Mattermost incoming-webhook notifier against a real HTTP server.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::{json_server, notification, notified};
use serde_json::json;
use vigie_alerting::notify::slack::SlackNotifier;
use vigie_alerting::{GroupStatus, Notifier, SlackConfig};

fn config(api_url: String) -> SlackConfig {
    SlackConfig {
        api_url,
        channel: None,
        username: None,
        title: None,
        text: None,
        pretext: None,
        fallback: None,
        title_link: None,
        footer: None,
        send_resolved: false,
        timeout: Duration::from_secs(5),
        http_config: Default::default(),
    }
}

#[tokio::test]
async fn posts_one_attachment_with_defaults() {
    let (base, seen) = json_server(StatusCode::OK, json!("ok")).await;
    let slack = SlackNotifier::new(&config(format!("{base}/hooks/T0/B0/x"))).expect("notifier");
    let n = notification(
        GroupStatus::Firing,
        vec![
            notified("a", GroupStatus::Firing),
            notified("bb", GroupStatus::Firing),
        ],
    );
    slack.notify(&n).await.expect("notify");
    assert!(!slack.send_resolved());
    let requests = seen.requests.lock().expect("lock").clone();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].0, "/hooks/T0/B0/x");
    assert_eq!(
        requests[0].1,
        json!({"attachments": [{
            "color": "danger",
            "title": "[FIRING:2] HighLatency (page)",
            "text": "firing: Latency high on a\nfiring: Latency high on bb",
            "fallback": "[FIRING:2] HighLatency (page) | http://vigie.test:9464",
        }]})
    );
}

#[tokio::test]
async fn channel_username_title_text_and_resolved_colour() {
    let (base, seen) = json_server(StatusCode::OK, json!("ok")).await;
    let mut c = config(format!("{base}/hooks/abc"));
    c.channel = Some("#ops".into());
    c.username = Some("vigie".into());
    c.title = Some("Latency".into());
    c.text = Some("see the dashboard".into());
    c.send_resolved = true;
    let slack = SlackNotifier::new(&c).expect("notifier");
    let n = notification(
        GroupStatus::Resolved,
        vec![notified("a", GroupStatus::Resolved)],
    );
    slack.notify(&n).await.expect("notify");
    let body = seen.requests.lock().expect("lock")[0].1.clone();
    assert_eq!(
        body,
        json!({
            "channel": "#ops",
            "username": "vigie",
            "attachments": [{
                "color": "good",
                "title": "Latency",
                "text": "see the dashboard",
                "fallback": "Latency | http://vigie.test:9464",
            }],
        })
    );
}

#[tokio::test]
async fn server_error_is_retriable() {
    let (base, _seen) = json_server(StatusCode::SERVICE_UNAVAILABLE, json!("down")).await;
    let slack = SlackNotifier::new(&config(format!("{base}/hooks/x"))).expect("notifier");
    let n = notification(
        GroupStatus::Firing,
        vec![notified("a", GroupStatus::Firing)],
    );
    let err = slack.notify(&n).await.expect_err("503 must fail");
    assert!(err.retriable(), "{err:?}");
}
