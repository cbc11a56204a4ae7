//! Every panel query of every shipped Grafana dashboard runs against a
//! live Vigie holding host metrics, through the Prometheus API that
//! Grafana's Prometheus datasource calls.

mod common;

use std::time::Duration;

use common::{Vigie, root, wait_for};
use serde_json::Value;

fn exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            if let Some(Value::String(e)) = map.get("expr") {
                out.push(e.clone());
            }
            map.values().for_each(|x| exprs(x, out));
        }
        Value::Array(items) => items.iter().for_each(|x| exprs(x, out)),
        _ => {}
    }
}

async fn get(vigie: &Vigie, path: &str, params: &[(&str, String)]) -> Value {
    let query = serde_urlencoded::to_string(params).expect("query string");
    let r = reqwest::Client::new()
        .get(format!("http://{}{path}?{query}", vigie.addr))
        .send()
        .await
        .expect("request");
    r.json().await.expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_query_succeeds_on_live_data() {
    let vigie = Vigie::start_with_host("", "groups: []\n").await;
    // Grafana resolves `label_values(node_load1, instance)` through this call.
    let instance = wait_for("host metrics", Duration::from_secs(60), || async {
        let v = get(
            &vigie,
            "/api/v1/label/instance/values",
            &[("match[]", "node_load1".into())],
        )
        .await;
        v["data"][0].as_str().map(str::to_string)
    })
    .await;
    // Let rates have a few points.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let mut checked = 0;
    for entry in std::fs::read_dir(root("dashboards")).expect("dashboards dir") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let dashboard: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        let mut queries = Vec::new();
        exprs(&dashboard["panels"], &mut queries);
        for q in queries {
            let q = q
                .replace("$instance", &instance.replace('.', "\\\\."))
                .replace("${instance}", &instance)
                .replace("$__rate_interval", "1m")
                .replace("$__interval", "15s");
            let v = get(
                &vigie,
                "/api/v1/query_range",
                &[
                    ("query", q.clone()),
                    ("start", format!("{}", now - 300.0)),
                    ("end", format!("{now}")),
                    ("step", "5".into()),
                ],
            )
            .await;
            assert_eq!(v["status"], "success", "{}: {q}: {v}", path.display());
            if q.contains("node_cpu_seconds_total") {
                assert!(
                    v["data"]["result"]
                        .as_array()
                        .is_some_and(|r| !r.is_empty()),
                    "the CPU panel has no data: {v}"
                );
            }
            checked += 1;
        }
    }
    println!("{checked} panel queries succeeded");
    assert!(checked >= 10, "only {checked} panel queries found");
}
