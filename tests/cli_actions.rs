//! `vigie actions approve|deny ID` against a running Vigie: two actions
//! wait for approval on one firing alert; the approved one calls its
//! controller, the denied one does not.

mod common;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use common::{Target, Vigie, wait_for};
use serde_json::Value;

const RULES: &str = r#"
groups:
  - name: hypervisors
    rules:
      - alert: HypervisorFailing
        expr: app_gauge > 80
        labels: {severity: critical}
"#;

async fn called(
    State(calls): State<Arc<Mutex<Vec<String>>>>,
    Path(what): Path<String>,
) -> StatusCode {
    calls.lock().expect("lock").push(what);
    StatusCode::OK
}

fn cli(vigie: &Vigie, verb: &str, id: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vigie"))
        .args([
            "actions",
            verb,
            id,
            "--url",
            &format!("http://{}", vigie.addr),
            "--by",
            "alice",
        ])
        .output()
        .expect("run vigie actions")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_runs_the_action_and_deny_does_not() {
    let target = Target::start(0).await;
    target.set(95.0);
    let calls: Arc<Mutex<Vec<String>>> = Arc::default();
    let app = Router::new()
        .route("/{what}", post(called))
        .with_state(calls.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base_url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut config = format!(
        "[[scrape]]\njob = \"hypervisor\"\ntargets = [\"{}\"]\ninterval = \"1s\"\ntimeout = \"1s\"\n",
        target.addr
    );
    for name in ["evacuate", "reboot"] {
        config.push_str(&format!(
            "[[action]]\nname = \"{name}\"\nmatchers = '{{alertname=\"HypervisorFailing\"}}'\n\
             url = \"{base_url}/{name}\"\nrequire_approval = true\n"
        ));
    }
    let vigie = Vigie::start(&config, RULES).await;
    let http = reqwest::Client::new();
    let list = format!("http://{}/api/v1/actions", vigie.addr);
    let pending: Vec<Value> = wait_for("two pending actions", Duration::from_secs(60), || {
        let http = http.clone();
        let list = list.clone();
        async move {
            let v: Value = http.get(&list).send().await.ok()?.json().await.ok()?;
            let p = v["pending"].as_array()?.clone();
            (p.len() == 2).then_some(p)
        }
    })
    .await;
    let id = |name: &str| {
        pending
            .iter()
            .find(|p| p["action"] == name)
            .and_then(|p| p["id"].as_str())
            .expect("pending id")
            .to_string()
    };
    assert!(
        calls.lock().expect("lock").is_empty(),
        "nothing before approval"
    );

    let approved = cli(&vigie, "approve", &id("evacuate"));
    assert!(approved.status.success(), "{approved:?}");
    assert!(String::from_utf8_lossy(&approved.stdout).contains("approved"));
    let denied = cli(&vigie, "deny", &id("reboot"));
    assert!(denied.status.success(), "{denied:?}");
    let again = cli(&vigie, "deny", &id("reboot"));
    assert!(!again.status.success(), "nothing pending any more");

    wait_for("the approved call", Duration::from_secs(30), || async {
        (!calls.lock().expect("lock").is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(*calls.lock().expect("lock"), ["evacuate"]);
    let v: Value = http
        .get(&list)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert!(v["pending"].as_array().is_some_and(|p| p.is_empty()), "{v}");
    let decisions: Vec<(String, String)> = v["recent"]
        .as_array()
        .expect("recent")
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap_or("").to_string(),
                r["decision"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    for want in [
        ("evacuate", "approved"),
        ("evacuate", "succeeded"),
        ("reboot", "denied"),
    ] {
        assert!(
            decisions.iter().any(|(a, d)| a == want.0 && d == want.1),
            "{want:?} not in {decisions:?}"
        );
    }
}
