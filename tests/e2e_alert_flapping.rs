//! Flap detection on the real binary: a scraped gauge oscillating around
//! its alert threshold pages once (as flapping, with its change count),
//! then once more when it settles below, not at every crossing.

mod common;

use std::time::Duration;

use common::{Target, Vigie, Webhook, wait_for};

const RULES: &str = r#"
groups:
  - name: test
    rules:
      - alert: GaugeHigh
        expr: app_gauge > 100
        labels: {severity: page}
        annotations:
          summary: "gauge above 100"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gauge_oscillating_around_its_threshold_pages_once() {
    let target = Target::start(0).await;
    let hook = Webhook::start().await;
    let config = format!(
        "[[scrape]]\njob = \"app\"\ntargets = [\"{}\"]\ninterval = \"1s\"\ntimeout = \"1s\"\n\
         [alerting]\ngroup_wait = \"15s\"\ngroup_interval = \"2s\"\n\
         [alerting.flapping]\nchanges = 3\nwindow = \"1m\"\nquiet = \"10s\"\n\
         [[alerting.receivers]]\nname = \"ops\"\n\
         [[alerting.receivers.webhook_configs]]\nurl = \"{}\"\n",
        target.addr,
        hook.url()
    );
    let vigie = Vigie::start(&config, RULES).await;
    wait_for("a few scrapes", Duration::from_secs(60), || async {
        (target.scrapes() >= 3).then_some(())
    })
    .await;

    // Above and below the threshold every 3 s, for 45 s: some 15 crossings,
    // more than 3 of them before group_wait ends.
    for i in 0..15 {
        target.set(if i % 2 == 0 { 150.0 } else { 50.0 });
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    target.set(50.0);
    let firing = hook.with_status("firing", "GaugeHigh");
    assert_eq!(
        firing.len(),
        1,
        "one page while it flapped: {firing:?}\n{}",
        vigie.log()
    );
    let alert = &firing[0]["alerts"][0];
    assert_eq!(alert["annotations"]["flapping"], "true", "{alert}");
    let changes: usize = alert["annotations"]["flap_changes"]
        .as_str()
        .and_then(|n| n.parse().ok())
        .expect("flap_changes");
    assert!(changes > 3, "{changes}");
    assert!(
        hook.with_status("resolved", "GaugeHigh").is_empty(),
        "held firing while it flapped"
    );

    // Settled below: resolved once the quiet window has passed.
    wait_for("the resolution", Duration::from_secs(60), || async {
        (!hook.with_status("resolved", "GaugeHigh").is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(hook.with_status("firing", "GaugeHigh").len(), 1);
    assert_eq!(hook.with_status("resolved", "GaugeHigh").len(), 1);
}
