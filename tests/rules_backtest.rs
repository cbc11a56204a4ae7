//! `vigie rules backtest` replays a rule file over the history a running
//! Vigie holds and reports when the alert would have fired and resolved.

mod common;

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Target, Vigie, wait_for};

const RULES: &str = r#"
groups:
  - name: app
    interval: 1s
    rules:
      - record: zone:app_gauge:max
        expr: max by (zone) (app_gauge)
      - alert: AppGaugeHigh
        expr: zone:app_gauge:max > 10
        for: 3s
        labels:
          severity: warning
      - alert: AppGaugeUnusual
        expr: anomaly_score(app_gauge) > 2
"#;

fn unix_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

fn backtest(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vigie"))
        .args(["rules", "backtest"])
        .args(args)
        .output()
        .expect("run vigie rules backtest")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backtest_reports_when_the_alert_would_have_fired_and_resolved() {
    let target = Target::start(0).await;
    let config = format!(
        "[[scrape]]\njob = \"app\"\ntargets = [\"{}\"]\ninterval = \"1s\"\ntimeout = \"1s\"\n",
        target.addr
    );
    // The running Vigie has no rules: the backtest alone decides.
    let vigie = Vigie::start(&config, "groups: []\n").await;
    let from = unix_s();
    let scrapes = |n: usize| {
        let target = target.clone();
        async move {
            let goal = target.scrapes() + n;
            wait_for("scrapes", Duration::from_secs(60), || async {
                (target.scrapes() >= goal).then_some(())
            })
            .await;
        }
    };
    scrapes(5).await;
    target.set(50.0);
    scrapes(8).await;
    target.set(1.0);
    scrapes(5).await;
    let to = unix_s();

    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("rules.yml");
    std::fs::write(&rules, RULES).expect("rules");
    let url = format!("http://{}", vigie.addr);
    let (from, to) = (format!("{from:.3}"), format!("{to:.3}"));
    let args = [
        rules.to_str().expect("path"),
        "--from",
        &from,
        "--to",
        &to,
        "--url",
        &url,
    ];
    let out = backtest(&[&args[..], &["--json"]].concat());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("loaded"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let high = &report["rules"]["AppGaugeHigh"];
    assert_eq!(high["fired"], 1, "{report:#}");
    assert_eq!(high["pending_only"], 0, "{report:#}");
    // Above 10 for about 8 s, pending for 3 of them.
    let firing_ms = high["firing_ms"].as_i64().expect("firing_ms");
    assert!((3_000..=8_000).contains(&firing_ms), "{report:#}");
    assert_eq!(high["median_pending_ms"], 3000, "{report:#}");
    let episodes = report["episodes"].as_array().expect("episodes");
    let ep = episodes
        .iter()
        .find(|e| e["alertname"] == "AppGaugeHigh")
        .expect("an AppGaugeHigh episode");
    assert_eq!(ep["labels"]["zone"], "a");
    assert_eq!(ep["labels"]["severity"], "warning");
    let (pending, fired, ended) = (
        ep["pending_at_ms"].as_i64().expect("pending"),
        ep["fired_at_ms"].as_i64().expect("fired"),
        ep["ended_at_ms"]
            .as_i64()
            .expect("resolved inside the window"),
    );
    assert!(pending < fired && fired < ended, "{ep}");
    // The score rule (never above 2) is listed and never fired.
    assert_eq!(report["rules"]["AppGaugeUnusual"]["fired"], 0);
    assert_eq!(report["errors"].as_array().map(Vec::len), Some(0));

    // The text report says the same for people.
    let out = backtest(&args);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("AppGaugeHigh: fired 1 time(s)"), "{text}");
    assert!(text.contains("zone=\"a\""), "{text}");

    // A time it cannot read is an error that says which forms work.
    let out = backtest(&[args[0], "--from", "yesterday", "--url", &url]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--from") && err.contains("RFC 3339"), "{err}");
}
