//! Scrape depth end to end: the real `vigie` binary discovers a real HTTP
//! target through a file_sd file, relabels it, stores its samples, and
//! lists it on `GET /api/v1/targets`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{GAUGE_RULES, Target, Vigie, wait_for};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_sd_target_is_scraped_stored_and_listed() {
    let target = Target::start(0).await;
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    std::fs::create_dir(dir.path().join("sd")).expect("mkdir");
    std::fs::write(
        dir.path().join("sd/app.json"),
        format!(
            r#"[{{"targets":["{}"],"labels":{{"__meta_team":"sre"}}}}]"#,
            target.addr
        ),
    )
    .expect("file_sd file");
    let config = "[[scrape]]\njob = \"disc\"\ninterval = \"1s\"\ntimeout = \"1s\"\n\
         [[scrape.file_sd_configs]]\nfiles = [\"sd/*.json\"]\nrefresh_interval = \"1s\"\n\
         [[scrape.relabel_configs]]\nsource_labels = [\"__meta_team\"]\ntarget_label = \"team\"\n";
    let vigie = Vigie::start_in(dir, config, GAUGE_RULES, &[]).await;

    wait_for(
        "stored samples of the discovered target",
        Duration::from_secs(60),
        || async {
            let n = vigie
                .count(
                    "SELECT count(*) FROM samples WHERE metric = 'app_gauge' \
                 AND labels['job'] = 'disc' AND labels['team'] = 'sre'",
                )
                .await;
            (n > 0).then_some(())
        },
    )
    .await;

    let url = format!("http://{}/api/v1/targets", vigie.addr);
    let t = wait_for(
        "the target listed as up",
        Duration::from_secs(30),
        || async {
            let v: Value = reqwest::get(&url).await.ok()?.json().await.ok()?;
            let t = v["data"]["activeTargets"]
                .as_array()?
                .iter()
                .find(|t| t["scrapePool"] == "disc")?
                .clone();
            (t["health"] == "up").then_some(t)
        },
    )
    .await;
    assert_eq!(t["labels"]["instance"], target.addr.to_string());
    assert_eq!(t["labels"]["team"], "sre");
    assert_eq!(t["discoveredLabels"]["__meta_filepath"], "sd/app.json");
    assert_eq!(t["scrapeUrl"], format!("http://{}/metrics", target.addr));
}
