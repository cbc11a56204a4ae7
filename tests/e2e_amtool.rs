//! The real `amtool` (Debian's `prometheus-alertmanager`) against the real
//! `vigie` binary: alerts posted like a Prometheus would, queried, silenced,
//! expired; a real webhook receiver checks that the silence holds.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{GAUGE_RULES, Vigie, Webhook, wait_for};
use serde_json::{Value, json};

const AMTOOL: &str = "amtool";
/// Long enough for the alert query and `silence add` to run before the
/// silenced alert's group is first flushed.
const GROUP_WAIT_SECS: u64 = 8;

fn amtool(vigie: &Vigie, args: &[&str]) -> String {
    let out = Command::new(AMTOOL)
        .arg(format!("--alertmanager.url=http://{}", vigie.addr))
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `{AMTOOL}` ({e}): install it with `apt-get install prometheus-alertmanager` (.ci/run and scripts/test do)"
            )
        });
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "amtool {args:?} failed ({}):\nstdout: {stdout}\nstderr: {}\nvigie log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        vigie.log()
    );
    stdout
}

async fn post_alert(vigie: &Vigie, name: &str) {
    let r = reqwest::Client::new()
        .post(format!("http://{}/api/v2/alerts", vigie.addr))
        .json(&json!([{
            "labels": {"alertname": name, "instance": "hv1", "severity": "page"},
            "annotations": {"summary": format!("{name} on hv1")},
            "generatorURL": "http://prometheus.test/graph",
        }]))
        .send()
        .await
        .expect("post alert");
    let status = r.status();
    let body = r.text().await.unwrap_or_default();
    assert!(status.is_success(), "POST /api/v2/alerts: {status} {body}");
}

/// The payloads that notify alert `name` (among their `alerts`; an
/// incident chain may still name it as context for another alert).
fn payloads_naming(hook: &Webhook, name: &str) -> Vec<Value> {
    hook.received
        .lock()
        .expect("lock")
        .iter()
        .filter(|p| {
            p["alerts"]
                .as_array()
                .is_some_and(|alerts| alerts.iter().any(|a| a["labels"]["alertname"] == name))
        })
        .cloned()
        .collect()
}

#[tokio::test]
async fn amtool_queries_silences_and_expires_against_vigie() {
    let found = Command::new(AMTOOL).arg("--version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "`{AMTOOL}` is missing: install it with `apt-get install prometheus-alertmanager` (.ci/run and scripts/test do)"
    );
    let hook = Webhook::start().await;
    let config = format!(
        "[alerting]\ngroup_wait = \"{GROUP_WAIT_SECS}s\"\ngroup_interval = \"1s\"\n\
         [[alerting.receivers]]\nname = \"oncall\"\n\
         [[alerting.receivers.webhook_configs]]\nurl = \"{}\"\n",
        hook.url()
    );
    let vigie = Vigie::start(&config, GAUGE_RULES).await;

    // A Prometheus-style alert, visible to `amtool alert query`.
    let muted = "HypervisorHot";
    let posted_at = Instant::now();
    post_alert(&vigie, muted).await;
    let listed = amtool(&vigie, &["alert", "query"]);
    assert!(listed.contains(muted), "alert query:\n{listed}");

    // Silence it.
    let id = amtool(
        &vigie,
        &[
            "silence",
            "add",
            &format!("alertname={muted}"),
            "--comment=planned maintenance",
            "--author=e2e",
            "--duration=1h",
        ],
    )
    .trim()
    .to_string();
    assert_eq!(id.len(), 36, "silence add printed {id:?}");
    assert!(
        posted_at.elapsed() < Duration::from_secs(GROUP_WAIT_SECS),
        "the machine is too slow: the silence came after group_wait"
    );
    let silences = amtool(&vigie, &["silence", "query"]);
    assert!(silences.contains(&id), "silence query:\n{silences}");
    assert!(silences.contains("e2e"), "silence query:\n{silences}");
    let quiet = amtool(&vigie, &["silence", "query", "-q"]);
    assert_eq!(quiet.trim(), id, "silence query -q");

    // Muted: gone from the default query, shown with --silenced.
    let active = amtool(&vigie, &["alert", "query"]);
    assert!(
        !active.contains(muted),
        "silenced alert listed as active:\n{active}"
    );
    let silenced = amtool(&vigie, &["alert", "query", "--silenced"]);
    assert!(
        silenced.contains(muted),
        "alert query --silenced:\n{silenced}"
    );

    // A control alert reaches the webhook; the silenced one never does.
    let loud = "DiskFilling";
    post_alert(&vigie, loud).await;
    wait_for(
        "the control alert at the webhook",
        Duration::from_secs(40),
        || async { (!payloads_naming(&hook, loud).is_empty()).then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        payloads_naming(&hook, muted),
        Vec::<Value>::new(),
        "a silenced alert was notified"
    );

    // Expire: no longer an active silence; the alert is paged.
    let expired = amtool(&vigie, &["silence", "expire", &id]);
    assert!(expired.trim().is_empty(), "silence expire: {expired}");
    let after = amtool(&vigie, &["silence", "query"]);
    assert!(
        !after.contains(&id),
        "expired silence still listed:\n{after}"
    );
    let with_expired = amtool(&vigie, &["silence", "query", "--expired"]);
    assert!(
        with_expired.contains(&id),
        "silence query --expired:\n{with_expired}"
    );
    let active = amtool(&vigie, &["alert", "query"]);
    assert!(
        active.contains(muted),
        "alert query after expiry:\n{active}"
    );
    wait_for(
        "the unsilenced alert at the webhook",
        Duration::from_secs(30),
        || async { (!payloads_naming(&hook, muted).is_empty()).then_some(()) },
    )
    .await;

    // The silence is persisted under the data directory (default
    // `vigie-data`, relative to the working directory).
    let path = vigie.dir.path().join("vigie-data/alerting/silences.json");
    let stored = std::fs::read_to_string(&path).expect("silences.json");
    assert!(stored.contains(&id), "{stored}");
}
