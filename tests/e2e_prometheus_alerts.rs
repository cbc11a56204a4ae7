//! A real Prometheus (Debian's `prometheus`) using Vigie as its
//! Alertmanager: its `alerting.alertmanagers` points at Vigie, it posts
//! its firing alerts to `POST /api/v2/alerts`, and Vigie groups them and
//! pages its webhook receiver; Prometheus counts them as sent, without
//! errors, and `GET /api/v2/alerts` (what `amtool alert query` reads)
//! lists the alert with Prometheus' generator URL.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Vigie, Webhook, free_port, metric_value, wait_for};
use serde_json::Value;

const PROMETHEUS: &str = "/usr/bin/prometheus";

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_sends_its_alerts_to_vigie_which_pages_once() {
    let hook = Webhook::start().await;
    let vigie = Vigie::start(
        &format!(
            "[alerting]\ngroup_wait = \"1s\"\ngroup_interval = \"2s\"\nrepeat_interval = \"1h\"\n\
             [[alerting.receivers]]\nname = \"oncall\"\n\
             [[alerting.receivers.webhook_configs]]\nurl = \"{}\"\n",
            hook.url()
        ),
        "groups: []\n",
    )
    .await;

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("rules.yml"),
        "groups:\n- name: demo\n  interval: 1s\n  rules:\n  - alert: DiskWillFill\n    expr: vector(1)\n    labels:\n      severity: warning\n      instance: db-1\n    annotations:\n      summary: disk on db-1 fills within 4h\n",
    )
    .expect("rules");
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global:\n  evaluation_interval: 1s\nrule_files: [rules.yml]\n\
             alerting:\n  alertmanagers:\n  - api_version: v2\n    static_configs:\n    - targets: ['{}']\n",
            vigie.addr
        ),
    )
    .expect("prometheus config");
    let prom_addr = format!("127.0.0.1:{}", free_port());
    let prometheus = Command::new(PROMETHEUS)
        .arg("--config.file=prometheus.yml")
        .arg("--storage.tsdb.path=data")
        .arg(format!("--web.listen-address={prom_addr}"))
        // Re-send every second rather than every minute: the first send
        // can precede the discovery of its Alertmanager and be dropped.
        .arg("--rules.alert.resend-delay=1s")
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run {PROMETHEUS} ({e}): `apt-get install prometheus` (.ci/run does)")
        });
    let _prometheus = Proc(prometheus);

    // Vigie pages its receiver with Prometheus' alert.
    let page = wait_for(
        "Prometheus' alert paged",
        Duration::from_secs(60),
        || async {
            hook.with_status("firing", "DiskWillFill")
                .into_iter()
                .next()
        },
    )
    .await;
    let alert = &page["alerts"][0];
    assert_eq!(alert["labels"]["severity"], "warning");
    assert_eq!(alert["labels"]["instance"], "db-1");
    assert_eq!(
        alert["annotations"]["summary"],
        "disk on db-1 fills within 4h"
    );
    assert!(
        alert["generatorURL"]
            .as_str()
            .is_some_and(|u| u.contains("/graph?g0.expr=")),
        "{alert}"
    );

    // Prometheus keeps re-sending (here every second): still one page,
    // and Prometheus saw no error.
    let sent = wait_for("Prometheus re-sends", Duration::from_secs(30), || async {
        metric_value(&prom_addr, "prometheus_notifications_sent_total")
            .await
            .filter(|n| *n >= 2.0)
    })
    .await;
    assert!(sent >= 2.0);
    assert_eq!(
        metric_value(&prom_addr, "prometheus_notifications_errors_total").await,
        Some(0.0)
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(hook.with_status("firing", "DiskWillFill").len(), 1);

    // What `amtool alert query` reads.
    let held: Vec<Value> = reqwest::get(format!("http://{}/api/v2/alerts", vigie.addr))
        .await
        .expect("GET /api/v2/alerts")
        .json()
        .await
        .expect("json");
    let ours: Vec<&Value> = held
        .iter()
        .filter(|a| a["labels"]["alertname"] == "DiskWillFill")
        .collect();
    assert_eq!(ours.len(), 1, "{held:#?}");
    assert_eq!(ours[0]["status"]["state"], "active");
}
