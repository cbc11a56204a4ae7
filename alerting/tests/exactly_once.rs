//! Exactly once while a receiver is down: the SMTP server (real aiosmtpd)
//! is down for a while, then up; the page arrives once, carrying the
//! notification's idempotency key as its Message-ID.

mod common;

use std::time::{Duration, Instant};

use common::Running;
use common::smtp::{Smtp, SmtpOptions, free_port};
use serde_json::json;
use vigie_alerting::{AlertingConfig, EmailConfig, ReceiverConfig};

#[tokio::test]
async fn smtp_down_for_a_while_then_up_pages_once() {
    let data = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let config = AlertingConfig {
        group_wait: Duration::from_millis(100),
        group_interval: Duration::from_secs(2),
        receivers: vec![ReceiverConfig {
            name: "mail".into(),
            email_configs: vec![EmailConfig {
                to: vec!["oncall@example.com".into()],
                from: "vigie@example.com".into(),
                smarthost: format!("127.0.0.1:{port}"),
                // aiosmtpd here speaks plain SMTP only.
                require_tls: false,
                send_resolved: true,
                ..EmailConfig::default()
            }],
            ..ReceiverConfig::default()
        }],
        ..AlertingConfig::default()
    };
    let mut alerting = Running::start(config, data.path()).await;
    alerting
        .post_alert(
            json!({"alertname": "DiskFull", "instance": "db1"}),
            Duration::from_secs(3600),
        )
        .await;

    // Down long enough for retries to give up and the group to be
    // notified again at a later flush.
    let deadline = Instant::now() + Duration::from_secs(30);
    while alerting.history("status=failed").await.len() < 2 {
        assert!(Instant::now() < deadline, "no failed attempts recorded");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let smtp = Smtp::start_on(port, data.path(), &SmtpOptions::default());
    let deadline = Instant::now() + Duration::from_secs(30);
    while smtp.messages().is_empty() {
        assert!(Instant::now() < deadline, "the page never arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Two more group intervals: nothing else is due.
    tokio::time::sleep(Duration::from_secs(5)).await;
    alerting.stop().await;

    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "exactly one page");
    assert!(
        messages[0].contains("[FIRING:1] DiskFull"),
        "{}",
        messages[0]
    );
    let sent = Running::start(AlertingConfig::default(), data.path())
        .await
        .history("status=sent")
        .await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    let key = sent[0]["idempotency_key"].as_str().expect("key");
    assert!(
        messages[0].contains(&format!("Message-ID: <{key}@vigie>")),
        "{}",
        messages[0]
    );
}
