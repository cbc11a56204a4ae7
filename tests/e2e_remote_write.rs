//! A real Prometheus (Debian's `prometheus`) scrapes a real
//! `prometheus-node-exporter` and remote-writes to Vigie: every sample
//! Prometheus reports sent is stored by Vigie.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Vigie, free_port, wait_for};

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(bin: &str, args: &[String], log: &std::path::Path) -> Proc {
    assert!(
        std::path::Path::new(bin).exists(),
        "{bin} is missing: run `apt-get install prometheus prometheus-node-exporter` (scripts/test does)"
    );
    let log = std::fs::File::create(log).expect("log file");
    Proc(
        Command::new(bin)
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {bin}: {e}")),
    )
}

/// The value of an unlabelled counter in Prometheus' text exposition.
fn counter(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_remote_write_loses_nothing() {
    let vigie = Vigie::start("", "groups: []\n").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let node_port = free_port();
    let _node = spawn(
        "/usr/bin/prometheus-node-exporter",
        &[
            format!("--web.listen-address=127.0.0.1:{node_port}"),
            "--collector.disable-defaults".into(),
            "--collector.cpu".into(),
            "--collector.meminfo".into(),
            "--collector.loadavg".into(),
        ],
        &dir.path().join("node.log"),
    );
    // Targets come from a file so the test can take the target away and
    // let Prometheus reach a quiet point where its counter stops moving.
    let (sd, config) = common::prometheus::remote_write_config(
        dir.path(),
        "node",
        &format!("127.0.0.1:{node_port}"),
        vigie.addr,
    );
    let prom_port = free_port();
    let _prom = spawn(
        "/usr/bin/prometheus",
        &[
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
        ],
        &dir.path().join("prometheus.log"),
    );
    let prom_metrics = || async move {
        reqwest::get(format!("http://127.0.0.1:{prom_port}/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()
    };
    let sent_name = "prometheus_remote_storage_samples_total";
    let log = dir.path().join("prometheus.log");
    wait_for(
        "Prometheus to send 500 samples",
        Duration::from_secs(90),
        || async {
            let text = prom_metrics().await?;
            (counter(&text, sent_name)? >= 500.0).then_some(())
        },
    )
    .await;
    // Take the target away; Prometheus writes staleness markers, then
    // sends nothing more.
    std::fs::write(&sd, "[]").expect("empty sd");
    let mut last = -1.0;
    let mut settled = None;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let now = counter(&prom_metrics().await.unwrap_or_default(), sent_name).unwrap_or(-1.0);
        if now == last {
            settled = Some(now);
            break;
        }
        last = now;
    }
    let sent = settled.unwrap_or_else(|| {
        panic!(
            "counter never settled; prometheus log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    });
    let failed = counter(
        &prom_metrics().await.unwrap_or_default(),
        "prometheus_remote_storage_samples_failed_total",
    )
    .unwrap_or(0.0);
    assert_eq!(failed, 0.0, "Prometheus reports failed sends");
    let stored = vigie
        .count("SELECT count(*) FROM samples WHERE labels['job'] = 'node'")
        .await;
    assert_eq!(
        stored as f64, sent,
        "Prometheus sent {sent}, Vigie stored {stored}"
    );
    let metrics = vigie.metrics().await;
    assert_eq!(
        counter(&metrics, "vigie_remote_write_samples_total"),
        Some(sent),
        "{metrics}"
    );
}
