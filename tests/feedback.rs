//! Operator feedback (`POST /api/v1/feedback`): a pattern marked as a
//! false alarm does not alert again when it recurs, while a real anomaly
//! on the same series still does, and an unmarked twin series still
//! alerts on the same pattern (the control).

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Target, Vigie, wait_for};
use serde_json::{Value, json};

const RULES: &str = r#"
groups:
  - name: anomalies
    rules:
      - alert: GaugeUnusual
        expr: anomaly_score(app_gauge) > 0.99
"#;

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

/// Waits until both targets served `n` more scrapes.
async fn scrapes(targets: &[&Target], n: usize) {
    let goals: Vec<usize> = targets.iter().map(|t| t.scrapes() + n).collect();
    wait_for("scrapes", Duration::from_secs(60), || async {
        targets
            .iter()
            .zip(&goals)
            .all(|(t, g)| t.scrapes() >= *g)
            .then_some(())
    })
    .await;
}

/// Plays the same spike on `targets`: `peak` for 3 scrapes, then back to
/// 10 for 6; returns the window (Unix seconds).
async fn spike(targets: &[&Target], peak: f64) -> (f64, f64) {
    let start = now_s();
    targets.iter().for_each(|t| t.set(peak));
    scrapes(targets, 3).await;
    targets.iter().for_each(|t| t.set(10.0));
    scrapes(targets, 6).await;
    // Rules run every second: let the last evaluation of the window land.
    tokio::time::sleep(Duration::from_secs(2)).await;
    (start, now_s())
}

/// Instances for which GaugeUnusual was firing at some point in the window.
async fn fired(vigie: &Vigie, (start, end): (f64, f64)) -> Vec<String> {
    let range = (end - start).ceil() as i64 + 1;
    let query = format!(
        "max_over_time(ALERTS{{alertname=\"GaugeUnusual\",alertstate=\"firing\"}}[{range}s])"
    );
    let url = reqwest::Url::parse_with_params(
        &format!("http://{}/api/v1/query", vigie.addr),
        &[("query", query.as_str()), ("time", &format!("{end:.3}"))],
    )
    .expect("url");
    let body: Value = reqwest::Client::new()
        .get(url)
        .send()
        .await
        .expect("query")
        .json()
        .await
        .expect("json");
    assert_eq!(body["status"], "success", "{body}");
    let mut out: Vec<String> = body["data"]["result"]
        .as_array()
        .expect("vector")
        .iter()
        .map(|s| {
            s["metric"]["instance"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_false_alarm_stays_quiet_and_a_real_anomaly_still_fires() {
    let marked = Target::start(0).await;
    let control = Target::start(0).await;
    let both = [&marked, &control];
    both.iter().for_each(|t| t.set(10.0));
    let config = format!(
        "[[scrape]]\njob = \"app\"\ntargets = [\"{}\", \"{}\"]\ninterval = \"1s\"\ntimeout = \"1s\"\n",
        marked.addr, control.addr
    );
    let vigie = Vigie::start(&config, RULES).await;
    let (m, c) = (marked.addr.to_string(), control.addr.to_string());
    scrapes(&both, 15).await;

    // The first spike alerts on both series.
    let first = spike(&both, 50.0).await;
    assert_eq!(fired(&vigie, first).await, sorted(&[&m, &c]), "first spike");

    // The operator says: on `marked`, that was normal.
    let client = reqwest::Client::new();
    let url = format!("http://{}/api/v1/feedback", vigie.addr);
    let body = json!({
        "series": format!("app_gauge{{instance=\"{m}\"}}"),
        "start": first.0, "end": first.1,
        "kind": "false_alarm", "comment": "nightly batch job",
    });
    let res: Value = client
        .post(&url)
        .json(&body)
        .send()
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    assert_eq!(res["status"], "success", "{res}");
    let applied = res["data"]["applied_to"].as_array().expect("applied_to");
    assert_eq!(applied.len(), 1, "{res}");
    assert!(applied[0].as_str().is_some_and(|s| s.contains(&m)), "{res}");

    // The same pattern again: only the unmarked control alerts.
    scrapes(&both, 5).await;
    let second = spike(&both, 50.0).await;
    assert_eq!(
        fired(&vigie, second).await,
        vec![c.clone()],
        "recurring pattern"
    );

    // A real anomaly on the marked series still fires.
    scrapes(&both, 5).await;
    let third = spike(&[&marked], 500.0).await;
    assert!(fired(&vigie, third).await.contains(&m), "real anomaly");

    // The feedback is listed, and counted in Vigie's own metrics.
    let list: Value = client
        .get(&url)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(list["data"][0]["kind"], "false_alarm", "{list}");
    assert_eq!(list["data"][0]["comment"], "nightly batch job");
    assert!(
        vigie
            .metrics()
            .await
            .contains("vigie_feedback_total{kind=\"false_alarm\"} 1")
    );

    // Unusable feedback is a 400 that says why.
    for (body, needle) in [
        (
            json!({"series": "app_gauge", "start": 2, "end": 1, "kind": "false_alarm"}),
            "after end",
        ),
        (
            json!({"series": "rate(app_gauge[1m])", "start": 1, "end": 2, "kind": "false_alarm"}),
            "vector selector",
        ),
        (
            json!({"series": "nothing_here", "start": 1, "end": 2, "kind": "missed_anomaly"}),
            "no scored series",
        ),
        (
            json!({"series": "app_gauge", "start": 1, "end": 2, "kind": "meh"}),
            "false_alarm",
        ),
    ] {
        let res = client.post(&url).json(&body).send().await.expect("post");
        assert_eq!(res.status(), 400, "{body}");
        let text = res.text().await.expect("text");
        assert!(text.contains(needle), "{body}: {text}");
    }
}

fn sorted(v: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    out.sort();
    out
}
