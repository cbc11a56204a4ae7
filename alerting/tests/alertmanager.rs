//! An existing `alertmanager.yml`: loaded unchanged, routed like the real
//! `amtool` routes it, inhibition end to end against a real webhook, and
//! unknown keys reported with their position.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::webhook_server;
use tokio_util::sync::CancellationToken;
use vigie_alerting::AlertingConfig;
use vigie_bus::memory::MemoryBus;
use vigie_bus::{Message, Publisher};
use vigie_model::{Alert, AlertState, Labels, topics};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/alertmanager.yml")
}

fn with_file(path: &Path) -> AlertingConfig {
    AlertingConfig {
        alertmanager_config: Some(path.to_path_buf()),
        ..AlertingConfig::default()
    }
}

#[test]
fn fixture_loads_with_every_part() {
    let config = with_file(&fixture());
    assert_eq!(config.problems(), Vec::<(String, String)>::new());
    let resolved = config.resolve().expect("resolve");
    let names: Vec<&str> = resolved
        .config
        .receivers
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "default-webhook",
            "blackhole",
            "pager",
            "db-team",
            "db-oncall",
            "web-team",
            "critical-mail"
        ]
    );
    let routing = &resolved.routing;
    assert_eq!(routing.routes.len(), 7);
    assert_eq!(routing.inhibit_rules.len(), 2);
    assert_eq!(
        routing.time_intervals.keys().collect::<Vec<_>>(),
        ["business-hours", "weekends"]
    );
    let db_oncall = routing
        .routes
        .iter()
        .find(|r| r.receiver.as_deref() == Some("db-oncall"))
        .expect("db-oncall route");
    // Inherited from its parent (team=database) and the root.
    assert_eq!(db_oncall.group_by, ["alertname", "instance"]);
    assert_eq!(db_oncall.group_interval, Duration::from_secs(300));
    assert_eq!(db_oncall.mute_time_intervals, ["weekends"]);
    let mail = &resolved.config.receivers[3].email_configs[0];
    assert_eq!(mail.to, ["dba@example.com", "db-lead@example.com"]);
    assert_eq!(mail.smarthost, "127.0.0.1:2525");
    assert_eq!(
        resolved.config.receivers[4].webhook_configs[0].max_alerts,
        10
    );
    // Templated fields are kept, to be rendered at notification time.
    assert_eq!(
        resolved.config.receivers[5].slack_configs[0]
            .title
            .as_deref(),
        Some(r#"{{ template "slack.default.title" . }}"#)
    );
    assert!(
        !resolved.warnings.iter().any(|w| w.contains("template")),
        "{:?}",
        resolved.warnings
    );
}

/// Label sets covering every route, `continue`, legacy `match_re`,
/// negative matchers and the default route.
const LABEL_SETS: &[&[(&str, &str)]] = &[
    &[("alertname", "Watchdog"), ("severity", "critical")],
    &[("alertname", "Watchdog")],
    &[("alertname", "X"), ("severity", "critical")],
    &[
        ("alertname", "X"),
        ("severity", "critical"),
        ("team", "database"),
    ],
    &[
        ("alertname", "X"),
        ("severity", "critical"),
        ("team", "database"),
        ("service", "postgres"),
    ],
    &[("team", "database"), ("service", "mysql")],
    &[("team", "database"), ("service", "mysql-proxy")],
    &[("team", "web"), ("env", "prod")],
    &[("team", "frontend")],
    &[("team", "web"), ("env", "staging")],
    &[
        ("team", "web"),
        ("env", "staging"),
        ("severity", "critical"),
    ],
    &[("team", "webby"), ("severity", "warning")],
    &[("alertname", "Anything")],
];

fn amtool_routes(file: &Path, labels: &[(&str, &str)]) -> String {
    let out = Command::new("amtool")
        .args(["config", "routes", "test"])
        .arg(format!("--config.file={}", file.display()))
        .args(labels.iter().map(|(k, v)| format!("{k}={v}")))
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run amtool ({e}): apt-get install prometheus-alertmanager")
        });
    assert!(
        out.status.success(),
        "amtool failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn routing_agrees_with_amtool() {
    let file = fixture();
    let routing = with_file(&file).resolve().expect("resolve").routing;
    for labels in LABEL_SETS {
        let ours = routing
            .receivers_for(&labels.iter().copied().collect::<Labels>())
            .join(",");
        let theirs = amtool_routes(&file, labels);
        assert_eq!(ours, theirs, "labels {labels:?}");
    }
    // The differential test has teeth: several label sets take two routes.
    let two = LABEL_SETS
        .iter()
        .filter(|l| amtool_routes(&file, l).contains(','))
        .count();
    assert!(two >= 2, "{two}");
}

fn alert(labels: &[(&str, &str)]) -> Alert {
    let now = chrono::Utc::now().timestamp_millis();
    Alert {
        labels: labels.iter().copied().collect(),
        annotations: Labels::new().with("summary", "test"),
        state: AlertState::Firing,
        active_at_ms: now - 60_000,
        fired_at_ms: Some(now),
        resolved_at_ms: None,
        value: 1.0,
        generator_url: "http://vigie.test/graph".into(),
    }
}

#[tokio::test]
async fn inhibited_warning_is_not_notified() {
    let (url, rec) = webhook_server(0).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("alertmanager.yml");
    std::fs::write(
        &file,
        format!(
            r#"
route:
  receiver: hook
  group_by: ['...']
  group_wait: 200ms
  group_interval: 1s
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="warning"']
    equal: [instance]
receivers:
  - name: hook
    webhook_configs:
      - url: {url}
"#
        ),
    )
    .expect("write");
    let bus = MemoryBus::new(16);
    let shutdown = CancellationToken::new();
    let (router, task) = vigie_alerting::start(
        with_file(&file),
        None,
        Box::new(bus.subscribe(&[topics::ALERTS])),
        shutdown.clone(),
    )
    .expect("start");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let api = format!("http://{}/api/v2", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, router).await });

    let critical = alert(&[
        ("alertname", "NodeDown"),
        ("severity", "critical"),
        ("instance", "db1"),
    ]);
    let inhibited = alert(&[
        ("alertname", "HighLatency"),
        ("severity", "warning"),
        ("instance", "db1"),
    ]);
    // Same alert on another instance: not inhibited, proves delivery works.
    let control = alert(&[
        ("alertname", "HighLatency"),
        ("severity", "warning"),
        ("instance", "db2"),
    ]);
    for a in [&critical, &inhibited, &control] {
        bus.publish(Message::new(
            topics::ALERTS,
            a.fingerprint().into_bytes(),
            vigie_model::codec::encode_alert(a).expect("encode"),
        ))
        .await
        .expect("publish");
    }
    let instances_notified = || {
        rec.accepted
            .lock()
            .expect("lock")
            .iter()
            .flat_map(|b| {
                b["alerts"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|a| {
                        format!(
                            "{}/{}",
                            a["labels"]["alertname"].as_str().unwrap_or(""),
                            a["labels"]["instance"].as_str().unwrap_or("")
                        )
                    })
            })
            .collect::<Vec<String>>()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while instances_notified().len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "notifications never arrived: {:?}",
            instances_notified()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Two more flushes (group_interval 1s) to give a wrong notification time.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut seen = instances_notified();
    seen.sort();
    seen.dedup();
    assert_eq!(seen, ["HighLatency/db2", "NodeDown/db1"]);

    // The API shows why: inhibitedBy names the critical alert.
    let body: serde_json::Value = reqwest::get(format!("{api}/alerts?inhibited=true"))
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let entry = body
        .as_array()
        .expect("list")
        .iter()
        .find(|a| a["labels"]["instance"] == "db1" && a["labels"]["severity"] == "warning")
        .expect("inhibited alert listed");
    assert_eq!(entry["status"]["state"], "suppressed");
    assert_eq!(
        entry["status"]["inhibitedBy"],
        serde_json::json!([critical.fingerprint()])
    );
    shutdown.cancel();
    task.await.expect("join").expect("run");
}

#[test]
fn unknown_key_is_reported_with_key_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("alertmanager.yml");
    let text = std::fs::read_to_string(fixture())
        .expect("fixture")
        .replace("      group_wait: 10s\n", "      group_wiat: 10s\n");
    std::fs::write(&file, &text).expect("write");
    let line = text
        .lines()
        .position(|l| l.contains("group_wiat"))
        .expect("typo line")
        + 1;
    let problems = with_file(&file).problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    let (key, message) = &problems[0];
    assert_eq!(key, "alerting.alertmanager_config");
    let at = format!(
        "{}:{line}:7: route.routes[1]: unknown field `group_wiat`",
        file.display()
    );
    assert!(
        message.starts_with(&at),
        "{message}\nexpected it to start with {at}"
    );
    // amtool rejects the same file.
    let out = Command::new("amtool")
        .args(["check-config"])
        .arg(&file)
        .output()
        .expect("amtool");
    assert!(!out.status.success());
}
