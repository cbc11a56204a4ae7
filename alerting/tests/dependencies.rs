//! Dependency-aware suppression end to end: alerts posted to the API, a
//! real webhook receiver, the notification history.

mod common;

use std::time::Duration;

use common::{Recorded, Running, eventually, quick_config, webhook_server};
use serde_json::{Value, json};
use vigie_alerting::AlertingConfig;
use vigie_alerting::depends::{DependencyConfig, LevelConfig};

/// VM alerts name their hypervisor in `hypervisor`, the hypervisor's node
/// exporter alerts carry `instance="hv:9100"`; service alerts'
/// `instance="vm:port"` names the VM, whose alerts carry `instance_name`.
fn openstack() -> DependencyConfig {
    let level = |child: &str, parent: &str| LevelConfig {
        child_label: child.into(),
        child_regex: None,
        parent_label: parent.into(),
        parent_regex: None,
        strip_port: true,
        child_matchers: Vec::new(),
        parent_matchers: None,
    };
    DependencyConfig {
        levels: vec![
            level("hypervisor", "instance"),
            level("instance", "instance_name"),
        ],
        ..DependencyConfig::default()
    }
}

/// One group per alert name and VM (or service instance).
fn config(url: &str, dependencies: DependencyConfig) -> AlertingConfig {
    AlertingConfig {
        group_by: vec![
            "alertname".into(),
            "instance_name".into(),
            "instance".into(),
        ],
        dependencies,
        ..quick_config(url)
    }
}

/// Posts alerts in one request, firing for an hour, or resolved now.
async fn post(alerting: &Running, alerts: &[Value], firing: bool) {
    let now = chrono::Utc::now();
    let ends = if firing {
        now + chrono::Duration::hours(1)
    } else {
        now
    };
    let body: Vec<Value> = alerts
        .iter()
        .map(|labels| {
            json!({
                "labels": labels,
                "annotations": {"summary": "test"},
                "startsAt": (now - chrono::Duration::minutes(1)).to_rfc3339(),
                "endsAt": ends.to_rfc3339(),
            })
        })
        .collect();
    let (status, answer) = alerting.post("/api/v2/alerts", &json!(body)).await;
    assert_eq!(status, 200, "{answer}");
}

fn hypervisor(name: &str) -> Value {
    json!({"alertname": "HostDown", "instance": format!("{name}:9100"), "severity": "critical"})
}

fn vm(name: &str, hypervisor: &str) -> Value {
    json!({"alertname": "InstanceDown", "instance_name": name, "hypervisor": hypervisor, "severity": "critical"})
}

fn bodies(rec: &Recorded) -> Vec<Value> {
    rec.accepted.lock().expect("lock").clone()
}

/// `(alertname/instance_name-or-instance, status)` of every alert of
/// every notification received, sorted.
fn seen(rec: &Recorded) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = bodies(rec)
        .iter()
        .flat_map(|b| b["alerts"].as_array().cloned().unwrap_or_default())
        .map(|a| {
            let l = &a["labels"];
            let who = l["instance_name"].as_str().or(l["instance"].as_str());
            (
                format!(
                    "{}/{}",
                    l["alertname"].as_str().unwrap_or(""),
                    who.unwrap_or("")
                ),
                a["status"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Longer than a group interval (2 s) and a tick: time for anything owed
/// or stale to be sent.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(2500)).await;
}

#[tokio::test]
async fn one_hypervisor_pages_once_for_twenty_vms_then_the_vms_left() {
    let data = tempfile::tempdir().expect("tmp");
    let (url, rec) = webhook_server(0).await;
    let mut alerting = Running::start(config(&url, openstack()), data.path()).await;

    let vms: Vec<Value> = (0..20).map(|i| vm(&format!("vm-{i:02}"), "hv-3")).collect();
    let mut all = vec![hypervisor("hv-3")];
    all.extend(vms.iter().cloned());
    post(&alerting, &all, true).await;

    eventually("the hypervisor's notification", || !bodies(&rec).is_empty()).await;
    let mut suppressed = Vec::new();
    for _ in 0..100 {
        suppressed = alerting.history("status=suppressed").await;
        if suppressed.len() >= 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        suppressed.len(),
        20,
        "one record per VM group: {suppressed:?}"
    );
    let hv_fp = bodies(&rec)[0]["alerts"][0]["fingerprint"]
        .as_str()
        .expect("fingerprint")
        .to_string();
    for r in &suppressed {
        assert_eq!(r["alerts"].as_array().map(Vec::len), Some(1), "{r}");
        let detail = r["detail"].as_str().unwrap_or("");
        assert!(detail.contains("HostDown"), "{r}");
        assert!(detail.contains(&hv_fp), "names the parent alert: {r}");
    }
    settle().await;
    let got = bodies(&rec);
    assert_eq!(got.len(), 1, "only the hypervisor pages: {got:?}");
    let b = &got[0];
    assert_eq!(b["alerts"].as_array().map(Vec::len), Some(1));
    assert_eq!(b["alerts"][0]["labels"]["alertname"], "HostDown");
    assert_eq!(b["dependentsSuppressed"], 20);
    assert_eq!(b["alerts"][0]["annotations"]["dependents_suppressed"], "20");
    assert_eq!(b["version"], "4", "still Alertmanager's payload");

    // The hypervisor comes back; 18 VMs with it, 2 stay down.
    let mut resolved = vec![hypervisor("hv-3")];
    resolved.extend(vms[..18].iter().cloned());
    post(&alerting, &resolved, false).await;
    eventually("the resolution and the two VMs", || bodies(&rec).len() >= 4).await;
    settle().await;
    assert_eq!(
        seen(&rec),
        [
            ("HostDown/hv-3:9100".to_string(), "firing".to_string()),
            ("HostDown/hv-3:9100".to_string(), "resolved".to_string()),
            ("InstanceDown/vm-18".to_string(), "firing".to_string()),
            ("InstanceDown/vm-19".to_string(), "firing".to_string()),
        ],
        "the two VMs still down, once each; no resolution of VMs never notified"
    );
    assert_eq!(bodies(&rec).len(), 4);
    assert_eq!(alerting.history("status=suppressed").await.len(), 20);
    alerting.stop().await;
}

#[tokio::test]
async fn static_map_names_what_labels_do_not() {
    let data = tempfile::tempdir().expect("tmp");
    let map = data.path().join("dependencies.yaml");
    std::fs::write(&map, "hv-3: [vm-1, vm-2]\n").expect("write map");
    let (url, rec) = webhook_server(0).await;
    let deps = DependencyConfig {
        map_file: Some(map),
        ..DependencyConfig::default()
    };
    let mut alerting = Running::start(config(&url, deps), data.path()).await;
    let node = |name: &str| json!({"alertname": "NodeDown", "instance": format!("{name}:9100")});
    post(
        &alerting,
        &[
            json!({"alertname": "HostDown", "host": "hv-3", "severity": "critical"}),
            node("vm-1"),
            node("vm-2"),
            node("vm-9"),
        ],
        true,
    )
    .await;
    eventually("two notifications", || bodies(&rec).len() >= 2).await;
    settle().await;
    let got = bodies(&rec);
    assert_eq!(got.len(), 2, "{got:?}");
    let host = got
        .iter()
        .find(|b| b["alerts"][0]["labels"]["alertname"] == "HostDown")
        .expect("the hypervisor paged");
    assert_eq!(host["dependentsSuppressed"], 2);
    let other = got
        .iter()
        .find(|b| b["alerts"][0]["labels"]["alertname"] == "NodeDown")
        .expect("vm-9 paged");
    assert_eq!(other["alerts"][0]["labels"]["instance"], "vm-9:9100");
    assert!(other.get("dependentsSuppressed").is_none(), "{other}");
    assert_eq!(alerting.history("status=suppressed").await.len(), 2);
    alerting.stop().await;
}

#[tokio::test]
async fn three_level_chain_pages_the_top_only() {
    let data = tempfile::tempdir().expect("tmp");
    let (url, rec) = webhook_server(0).await;
    let mut alerting = Running::start(config(&url, openstack()), data.path()).await;
    let service = |vm: &str| json!({"alertname": "HttpDown", "instance": format!("{vm}:8080"), "severity": "critical"});
    post(
        &alerting,
        &[
            hypervisor("hv-3"),
            vm("vm-1", "hv-3"),
            service("vm-1"),
            vm("vm-2", "hv-3"),
            service("vm-2"),
        ],
        true,
    )
    .await;
    eventually("the hypervisor's notification", || !bodies(&rec).is_empty()).await;
    settle().await;
    let got = bodies(&rec);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["alerts"][0]["labels"]["alertname"], "HostDown");
    assert_eq!(
        got[0]["dependentsSuppressed"], 4,
        "two VMs and their services"
    );
    let records = alerting.history("status=suppressed").await;
    assert_eq!(records.len(), 4, "{records:?}");
    for r in &records {
        let detail = r["detail"].as_str().unwrap_or("");
        assert!(detail.contains("HostDown"), "the top of the chain: {r}");
    }
    alerting.stop().await;
}
