//! Incidents end to end on the in-process bus: anomaly onsets and alerts of
//! one host become one incident whose root cause is the earliest anomaly;
//! the webhook a real HTTP server receives carries it, email, Slack and
//! PagerDuty texts name it, and `GET /api/v1/incidents` lists it.

mod common;

use common::{eventually, quick_config, webhook_server};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use vigie_bus::memory::MemoryBus;
use vigie_bus::{Message, Publisher};
use vigie_model::{Alert, AlertState, AnomalyEvent, AnomalyPhase, Labels, codec, topics};

const MIN: i64 = 60_000;

fn onset(metric: &str, host: &str, at_ms: i64) -> Message {
    let e = AnomalyEvent {
        phase: AnomalyPhase::Onset,
        metric: metric.into(),
        labels: Labels::new().with("host", host).with("job", "node"),
        score: 1.0,
        at_ms,
    };
    Message::new(
        topics::ANOMALIES,
        e.key().into_bytes(),
        e.encode().expect("encode"),
    )
}

fn alert(name: &str, host: &str, active_at_ms: i64) -> Message {
    let a = Alert {
        labels: Labels::new()
            .with("alertname", name)
            .with("host", host)
            .with("severity", "critical"),
        annotations: Labels::new().with("summary", format!("{name} on {host}")),
        state: AlertState::Firing,
        active_at_ms,
        fired_at_ms: Some(active_at_ms + MIN),
        resolved_at_ms: None,
        value: 1.0,
        generator_url: String::new(),
    };
    Message::new(
        topics::ALERTS,
        a.fingerprint().into_bytes(),
        codec::encode_alert(&a).expect("encode"),
    )
}

async fn get(base: &str, path: &str) -> (u16, Value) {
    let r = reqwest::get(format!("{base}{path}")).await.expect("get");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn anomalies_then_alert_on_one_host_make_one_incident_with_its_root_cause() {
    let (url, rec) = webhook_server(0).await;
    let mut config = quick_config(&url);
    config.group_by = vec!["alertname".into(), "host".into()];
    let bus = MemoryBus::new(64);
    let subscriber = bus.subscribe(&[topics::ALERTS, topics::ANOMALIES]);
    let stop = CancellationToken::new();
    let (router, task) =
        vigie_alerting::start(config, None, Box::new(subscriber), stop.clone()).expect("start");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, router).await });

    let now = chrono::Utc::now().timestamp_millis();
    let t0 = now - 10 * MIN;
    // Host A: the temperature turns anomalous, then the load, then an alert.
    bus.publish(onset("node_hwmon_temp_celsius", "A", t0))
        .await
        .expect("publish");
    bus.publish(onset("node_load1", "A", t0 + 2 * MIN))
        .await
        .expect("publish");
    bus.publish(alert("HostOverheating", "A", t0 + 5 * MIN))
        .await
        .expect("publish");
    // Host B: an unrelated alert.
    bus.publish(alert("DiskFull", "B", t0 + 6 * MIN))
        .await
        .expect("publish");
    // Garbage on the anomalies topic is skipped and counted.
    let errors_before = vigie_alerting::metrics::INCIDENT_DECODE_ERRORS.get();
    bus.publish(Message::new(
        topics::ANOMALIES,
        vec![],
        b"{not json".to_vec(),
    ))
    .await
    .expect("publish");

    eventually("both groups notified", || {
        rec.accepted.lock().expect("lock").len() >= 2
    })
    .await;
    let bodies = rec.accepted.lock().expect("lock").clone();
    let of = |host: &str| -> Value {
        bodies
            .iter()
            .find(|b| b["groupLabels"]["host"] == host)
            .cloned()
            .unwrap_or_else(|| panic!("a webhook for host {host}: {bodies:#?}"))
    };
    let a = of("A");
    let incident = &a["incident"];
    assert_eq!(incident["scope"]["value"], "A", "{a:#}");
    assert_eq!(incident["scope"]["label"], "host");
    let root = &incident["rootCause"];
    assert_eq!(root["metric"], "node_hwmon_temp_celsius", "{incident:#}");
    assert_eq!(
        root["series"],
        "node_hwmon_temp_celsius{host=\"A\",job=\"node\"}"
    );
    let chain = incident["chain"].as_array().expect("chain");
    assert_eq!(chain.len(), 2, "{incident:#}");
    assert_eq!(chain[0]["kind"], "anomaly");
    assert_eq!(chain[0]["name"], "node_load1{host=\"A\",job=\"node\"}");
    assert_eq!(chain[0]["delaySeconds"], 120.0);
    assert_eq!(chain[1]["kind"], "alert");
    assert_eq!(chain[1]["name"], "HostOverheating");
    assert_eq!(chain[1]["delaySeconds"], 300.0);
    let summary = incident["summary"].as_str().expect("summary");
    assert!(
        summary.starts_with(
            "Probable root cause: node_hwmon_temp_celsius{host=\"A\",job=\"node\"} anomalous since "
        ),
        "{summary}"
    );
    assert!(
        summary.contains(", then alert HostOverheating (+5m)"),
        "{summary}"
    );
    // Alertmanager's fields are still there.
    assert_eq!(a["version"], "4");
    assert_eq!(a["alerts"][0]["labels"]["alertname"], "HostOverheating");

    let b = of("B");
    assert_ne!(b["incident"]["id"], incident["id"]);
    assert_eq!(b["incident"]["rootCause"], Value::Null);
    assert_eq!(b["incident"]["summary"], Value::Null);

    // The API lists both, newest first, with the same hint.
    let (status, listed) = get(&base, "/api/v1/incidents").await;
    assert_eq!(status, 200, "{listed}");
    let data = listed["data"].as_array().expect("data");
    assert_eq!(data.len(), 2, "{listed:#}");
    let listed_a = data
        .iter()
        .find(|i| i["scope"]["value"] == "A")
        .expect("A listed");
    assert_eq!(listed_a["id"], incident["id"]);
    assert_eq!(listed_a["state"], "open");
    assert_eq!(listed_a["rootCause"], incident["rootCause"]);
    assert_eq!(listed_a["members"].as_array().expect("members").len(), 3);
    let listed_b = data
        .iter()
        .find(|i| i["scope"]["value"] == "B")
        .expect("B listed");
    assert_eq!(listed_b["members"][0]["name"], "DiskFull");
    assert_eq!(listed_b["rootCause"], Value::Null);
    let (status, open) = get(&base, "/api/v1/incidents?state=open").await;
    assert_eq!(status, 200);
    assert_eq!(open["data"].as_array().expect("data").len(), 2);
    let (status, closed) = get(&base, "/api/v1/incidents?state=closed").await;
    assert_eq!(status, 200);
    assert!(closed["data"].as_array().expect("data").is_empty());
    let refused = vigie_alerting::metrics::INCIDENT_REQUESTS_REFUSED.get();
    let (status, err) = get(&base, "/api/v1/incidents?state=maybe").await;
    assert_eq!(status, 400);
    assert!(
        err["error"]
            .as_str()
            .expect("reason")
            .contains("state=open"),
        "{err}"
    );
    assert!(vigie_alerting::metrics::INCIDENT_REQUESTS_REFUSED.get() > refused);
    assert!(vigie_alerting::metrics::INCIDENT_DECODE_ERRORS.get() > errors_before);

    stop.cancel();
    task.await.expect("join").expect("run");
}

#[test]
fn email_slack_and_pagerduty_carry_the_root_cause() {
    use vigie_alerting::incident::{Cause, IncidentHint, Link, LinkKind};
    let mut n = common::notification(
        vigie_alerting::GroupStatus::Firing,
        vec![common::notified("a", vigie_alerting::GroupStatus::Firing)],
    );
    n.incident = Some(IncidentHint {
        id: "00000000000000aa".into(),
        scope_label: "host".into(),
        scope: "a".into(),
        opened_ms: 1_700_000_000_000,
        root_cause: Some(Cause {
            series: "node_hwmon_temp_celsius{host=\"a\"}".into(),
            metric: "node_hwmon_temp_celsius".into(),
            labels: Labels::new().with("host", "a"),
            at_ms: 1_700_000_000_000,
            score: 1.0,
        }),
        chain: vec![Link {
            kind: LinkKind::Alert,
            name: "HighLatency".into(),
            at_ms: 1_700_000_120_000,
            delay_ms: 120_000,
        }],
    });
    let line = "Probable root cause: node_hwmon_temp_celsius{host=\"a\"} anomalous since 2023-11-14T22:13:20Z, then alert HighLatency (+2m) (incident 00000000000000aa)";
    let text = vigie_alerting::notify::email::text_body(&n);
    assert!(text.contains(line), "{text}");
    let html = vigie_alerting::notify::email::html_body(&n);
    assert!(
        html.contains("Probable root cause: node_hwmon_temp_celsius{host=&quot;a&quot;}"),
        "{html}"
    );
    let slack = vigie_alerting::notify::slack::default_text(&n);
    assert!(slack.contains(line), "{slack}");
    let pd = vigie_alerting::notify::pagerduty::PagerdutyEvent::new("key", None, &n);
    let json = serde_json::to_value(&pd).expect("json");
    assert_eq!(
        json["payload"]["custom_details"]["incident"]["rootCause"]["metric"],
        "node_hwmon_temp_celsius",
        "{json:#}"
    );
    // Without an incident nothing is added.
    n.incident = None;
    assert!(!vigie_alerting::notify::email::text_body(&n).contains("Probable root cause"));
}
