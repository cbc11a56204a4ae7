//! `vigie alerts ack ID` against the real binary with an API token: the
//! acknowledgement needs the token, mutes the group at a real webhook, and
//! shows in `GET /api/v1/alerts/groups/acks`.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::{Vigie, Webhook, wait_for};
use serde_json::{Value, json};

const TOKEN: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";

async fn post_alert(vigie: &Vigie, instance: &str) {
    let r = reqwest::Client::new()
        .post(format!("http://{}/api/v2/alerts", vigie.addr))
        .bearer_auth(TOKEN)
        .json(&json!([{
            "labels": {"alertname": "DiskFull", "instance": instance},
            "annotations": {"summary": format!("disk full on {instance}")},
        }]))
        .send()
        .await
        .expect("post alert");
    assert!(r.status().is_success(), "{}", r.status());
}

fn vigie_cli(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vigie"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run vigie")
}

#[tokio::test]
async fn vigie_alerts_ack_mutes_the_group_with_the_token() {
    let hook = Webhook::start().await;
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    std::fs::write(dir.path().join("token"), format!("{TOKEN}\n")).expect("token");
    let config = format!(
        "[api]\ntoken_file = \"token\"\n[alerting]\ngroup_wait = \"1s\"\ngroup_interval = \"2s\"\n\
         [[alerting.receivers]]\nname = \"ops\"\n\
         [[alerting.receivers.webhook_configs]]\nurl = \"{}\"\n",
        hook.url()
    );
    let vigie = Vigie::start_in(Arc::clone(&dir), &config, "groups: []\n", &[]).await;
    post_alert(&vigie, "db1").await;
    wait_for("the first page", Duration::from_secs(30), || async {
        (hook.with_status("firing", "DiskFull").len() == 1).then_some(())
    })
    .await;
    let alerts: Value = reqwest::get(format!("http://{}/api/v2/alerts", vigie.addr))
        .await
        .expect("alerts")
        .json()
        .await
        .expect("json");
    let fingerprint = alerts[0]["fingerprint"].as_str().expect("fingerprint");
    let url = format!("http://{}", vigie.addr);

    let refused = vigie_cli(&["alerts", "ack", fingerprint, "--url", &url], dir.path());
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("401") && stderr.contains("--token-file"),
        "{stderr}"
    );

    let done = vigie_cli(
        &[
            "alerts",
            "ack",
            fingerprint,
            "--url",
            &url,
            "--token-file",
            "token",
            "--by",
            "bob",
            "--comment",
            "on it",
        ],
        dir.path(),
    );
    let stdout = String::from_utf8_lossy(&done.stdout);
    assert!(
        done.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert_eq!(stdout.trim(), r#"acknowledged {}:{alertname="DiskFull"}"#);

    // A new alert in the acknowledged group: no page.
    post_alert(&vigie, "db2").await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        hook.with_status("firing", "DiskFull").len(),
        1,
        "{}",
        vigie.log()
    );
    let acks: Value = reqwest::get(format!("{url}/api/v1/alerts/groups/acks"))
        .await
        .expect("acks")
        .json()
        .await
        .expect("json");
    assert_eq!(acks[0]["by"], "bob", "{acks}");
    assert_eq!(acks[0]["comment"], "on it");
}
