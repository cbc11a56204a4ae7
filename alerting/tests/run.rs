//! `run` end to end: memory bus in, a flaky webhook out.

mod common;

use std::time::Duration;

use common::webhook_server;
use tokio_util::sync::CancellationToken;
use vigie_alerting::metrics::{DECODE_ERRORS, NOTIFICATIONS, NOTIFICATIONS_FAILED};
use vigie_alerting::{AlertingConfig, ReceiverConfig, WebhookConfig};
use vigie_bus::memory::MemoryBus;
use vigie_bus::{Message, Publisher};
use vigie_model::{Alert, AlertState, Labels, topics};

#[tokio::test]
async fn flaky_webhook_gets_the_notification_once_after_retries() {
    let (url, rec) = webhook_server(2).await;
    let receiver = "flaky-ops";
    let config = AlertingConfig {
        group_wait: Duration::from_millis(100),
        group_interval: Duration::from_secs(60),
        receivers: vec![ReceiverConfig {
            name: receiver.into(),
            webhook_configs: vec![WebhookConfig {
                url,
                send_resolved: true,
                timeout: Duration::from_secs(5),
                max_alerts: 0,
                http_config: Default::default(),
            }],
            ..ReceiverConfig::default()
        }],
        ..AlertingConfig::default()
    };
    let bus = MemoryBus::new(16);
    let subscriber = bus.subscribe(&[topics::ALERTS]);
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(vigie_alerting::run(
        config,
        Box::new(subscriber),
        shutdown.clone(),
    ));

    let decode_before = DECODE_ERRORS.get();
    let now = chrono_now();
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
    bus.publish(Message::new(topics::ALERTS, vec![], b"{not json".to_vec()))
        .await
        .expect("publish garbage");
    bus.publish(Message::new(
        topics::ALERTS,
        alert.fingerprint().into_bytes(),
        vigie_model::codec::encode_alert(&alert).expect("encode"),
    ))
    .await
    .expect("publish");

    // group_wait 100ms, first tick within 1s, then retries after 1s and 2s.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while rec.accepted.lock().expect("lock").is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "notification never arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Nothing else is due (no change, repeat_interval 4h).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    shutdown.cancel();
    handle.await.expect("join").expect("run");

    let bodies = rec.accepted.lock().expect("lock").clone();
    assert_eq!(bodies.len(), 1, "delivered exactly once: {bodies:?}");
    assert_eq!(bodies[0]["receiver"], receiver);
    assert_eq!(bodies[0]["alerts"][0]["labels"]["alertname"], "DiskFull");
    assert_eq!(bodies[0]["alerts"][0]["fingerprint"], alert.fingerprint());
    assert_eq!(rec.rejected.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert_eq!(
        NOTIFICATIONS_FAILED
            .with_label_values(&[receiver, "webhook", "http_5xx"])
            .get(),
        2
    );
    assert_eq!(
        NOTIFICATIONS
            .with_label_values(&[receiver, "webhook"])
            .get(),
        1
    );
    assert!(DECODE_ERRORS.get() > decode_before, "garbage counted");
}

#[tokio::test]
async fn invalid_config_is_refused() {
    let config = AlertingConfig {
        external_url: "vigie".into(),
        ..AlertingConfig::default()
    };
    let bus = MemoryBus::new(1);
    let err = vigie_alerting::run(
        config,
        Box::new(bus.subscribe(&[topics::ALERTS])),
        CancellationToken::new(),
    )
    .await
    .expect_err("bad external_url");
    assert!(err.to_string().contains("alerting.external_url"), "{err}");
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
