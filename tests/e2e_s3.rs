//! Two `vigie` processes share one S3-compatible store (a real moto_server
//! on 127.0.0.1): the first scrapes a target and flushes to
//! `s3://bucket/shared`, the second (nothing to scrape,
//! `refresh_interval = "1s"`) answers SQL and PromQL over what the first
//! wrote. Nothing is written to either data dir's `samples/`.

mod common;
#[path = "common/moto.rs"]
mod moto;

use std::time::Duration;

use common::{Target, Vigie, wait_for};
use moto::Moto;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_process_serves_what_another_stored_in_s3() {
    let moto = Moto::start("vigie-e2e").await;
    let target = Target::start(0).await;
    let secrets = tempfile::tempdir().expect("tempdir");
    let storage = moto.storage_config("shared", &secrets.path().join("s3-secret"));
    let writer = Vigie::start(
        &format!(
            "[[scrape]]\njob = \"app\"\ntargets = [\"{}\"]\ninterval = \"1s\"\ntimeout = \"1s\"\n\
             [analyzer]\nflush_interval = \"1s\"\n{storage}",
            target.addr
        ),
        "groups: []\n",
    )
    .await;
    let reader = Vigie::start(
        &format!("{storage}refresh_interval = \"1s\"\n"),
        "groups: []\n",
    )
    .await;

    let stored = wait_for("samples in S3, seen by the reader", Duration::from_secs(60), || async {
        let n = reader
            .count("SELECT count(*) FROM samples WHERE metric = 'app_gauge' AND labels['job'] = 'app'")
            .await;
        (n >= 3).then_some(n)
    })
    .await;
    assert!(!moto.keys("shared/samples/").await.is_empty());
    assert!(!moto.keys("shared/series/").await.is_empty());
    for v in [&writer, &reader] {
        assert!(
            !v.dir.path().join("samples").exists(),
            "samples went to the local data dir"
        );
    }
    let series = reader
        .sql("SELECT metric, labels['zone'] FROM series WHERE metric = 'app_gauge'")
        .await;
    assert_eq!(series["rows"][0][1], "a", "{series}");

    // PromQL on the reader, through its HTTP API.
    let body: serde_json::Value = reqwest::Client::new()
        .post(format!("http://{}/api/v1/query", reader.addr))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "query=app_gauge%7Bjob%3D%22app%22%7D&time={}",
            now_s()
        ))
        .send()
        .await
        .expect("query")
        .json()
        .await
        .expect("json");
    assert_eq!(body["status"], "success", "{body}");
    let result = &body["data"]["result"];
    assert_eq!(result.as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(result[0]["metric"]["zone"], "a", "{body}");
    assert_eq!(result[0]["value"][1], "1", "{body}");
    assert!(stored >= 3);
}

fn now_s() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock");
    format!("{:.3}", now.as_secs_f64())
}
