//! File-based discovery end to end inside the crate: a real HTTP target
//! listed in a file_sd JSON file, scraped through the collectors onto the
//! memory bus, removed from the file (staleness markers, scrapes stop),
//! and the targets view served over real HTTP.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use vigie_bus::Subscriber;
use vigie_bus::memory::MemoryBus;
use vigie_ingest::config::FileSdConfig;
use vigie_ingest::scrape::is_stale_marker;
use vigie_ingest::{
    Emitter, HostConfig, ScrapeConfig, Targets, spawn_collectors_with_targets, targets,
};
use vigie_model::codec::decode_batch;
use vigie_model::schema::batch_to_samples;
use vigie_model::{Sample, topics};

/// A target serving two series; counts its scrapes.
async fn target() -> (String, Arc<AtomicUsize>) {
    let scrapes = Arc::new(AtomicUsize::new(0));
    let s = scrapes.clone();
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let s = s.clone();
            async move {
                s.fetch_add(1, Ordering::SeqCst);
                "sd_gauge{zone=\"a\"} 1\nsd_other 2\n"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, scrapes)
}

/// Receives samples from the bus until `done` holds for what was
/// received so far, or panics after 10s.
async fn recv_until(
    sub: &mut impl Subscriber,
    seen: &mut Vec<Sample>,
    what: &str,
    done: impl Fn(&[Sample]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "timed out waiting for {what}");
        if let Ok(Ok(Some(d))) = tokio::time::timeout(left, sub.recv()).await {
            let batch = decode_batch(&d.message.payload).expect("decode");
            seen.extend(batch_to_samples(&batch).expect("samples"));
        }
    }
}

async fn get_targets(url: &str) -> Value {
    reqwest::get(url)
        .await
        .expect("GET targets")
        .json()
        .await
        .expect("json")
}

#[tokio::test]
async fn file_sd_targets_are_scraped_then_go_stale_when_removed() {
    let (addr, scrapes) = target().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("targets.json");
    std::fs::write(
        &file,
        format!(r#"[{{"targets":["{addr}"],"labels":{{"team":"sre","__meta_rack":"r1"}}}}]"#),
    )
    .expect("write");

    let bus = MemoryBus::new(1024);
    let mut sub = bus.subscribe(&[topics::METRICS]);
    let emitter = Arc::new(Emitter::new(Arc::new(bus.clone()), 2));
    let job = ScrapeConfig {
        job: "sd".into(),
        file_sd_configs: vec![FileSdConfig {
            files: vec![format!("{}/*.json", dir.path().display())],
            refresh_interval: Duration::from_millis(100),
        }],
        relabel_configs: serde_json::from_str(
            r#"[{"source_labels":["__meta_rack"],"target_label":"rack"},
                {"source_labels":["team"],"regex":"nobody","action":"drop"}]"#,
        )
        .expect("rules"),
        interval: Duration::from_millis(100),
        timeout: Duration::from_millis(100),
        ..ScrapeConfig::default()
    };
    assert!(job.problems(0).is_empty(), "{:?}", job.problems(0));
    let view = Arc::new(Targets::new());
    let shutdown = CancellationToken::new();
    let host = HostConfig {
        enabled: false,
        ..HostConfig::default()
    };
    let tasks =
        spawn_collectors_with_targets(&[job], &host, emitter, shutdown.clone(), view.clone());

    // The targets view over real HTTP.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let api = format!(
        "http://{}/api/v1/targets",
        listener.local_addr().expect("addr")
    );
    let app = targets::router(view.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut seen = Vec::new();
    recv_until(
        &mut sub,
        &mut seen,
        "a scrape of the discovered target",
        |s| s.iter().any(|s| s.series.metric == "sd_gauge"),
    )
    .await;
    let g = seen
        .iter()
        .find(|s| s.series.metric == "sd_gauge")
        .expect("sd_gauge");
    let labels: BTreeMap<&str, &str> = g.series.labels.iter().collect();
    assert_eq!(
        labels,
        BTreeMap::from([
            ("instance", addr.as_str()),
            ("job", "sd"),
            ("rack", "r1"),
            ("team", "sre"),
            ("zone", "a"),
        ]),
        "target labels from the file and relabelling; no __ labels"
    );

    let v = get_targets(&api).await;
    assert_eq!(v["status"], "success");
    let active = v["data"]["activeTargets"].as_array().expect("array");
    assert_eq!(active.len(), 1, "{v}");
    let t = &active[0];
    assert_eq!(t["health"], "up", "{t}");
    assert_eq!(t["scrapePool"], "sd");
    assert_eq!(t["scrapeUrl"], format!("http://{addr}/metrics"));
    assert_eq!(t["labels"]["instance"], addr.as_str());
    assert_eq!(t["labels"]["rack"], "r1");
    assert_eq!(t["discoveredLabels"]["__address__"], addr.as_str());
    assert_eq!(t["discoveredLabels"]["__meta_rack"], "r1");
    assert_eq!(
        t["discoveredLabels"]["__meta_filepath"],
        file.display().to_string()
    );
    assert_eq!(t["lastError"], "");
    assert_eq!(t["scrapeInterval"], "100ms");
    assert!(t["lastScrapeDuration"].as_f64().is_some());
    assert_ne!(t["lastScrape"], "0001-01-01T00:00:00Z");

    // A dropped target shows under droppedTargets.
    std::fs::write(
        &file,
        format!(
            r#"[{{"targets":["{addr}"],"labels":{{"team":"sre","__meta_rack":"r1"}}}},
                {{"targets":["127.0.0.1:1"],"labels":{{"team":"nobody"}}}}]"#
        ),
    )
    .expect("rewrite");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = get_targets(&format!("{api}?state=dropped")).await;
        if v["data"]["droppedTargets"].as_array().map(Vec::len) == Some(1) {
            assert_eq!(
                v["data"]["droppedTargets"][0]["discoveredLabels"]["__address__"],
                "127.0.0.1:1"
            );
            assert_eq!(v["data"]["activeTargets"].as_array().map(Vec::len), Some(0));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "dropped target never listed: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Remove the target from the file: its series go stale, scrapes stop.
    std::fs::write(&file, "[]").expect("rewrite");
    recv_until(&mut sub, &mut seen, "staleness markers", |s| {
        ["sd_gauge", "sd_other", "up"].iter().all(|m| {
            s.iter()
                .any(|s| s.series.metric == *m && is_stale_marker(s.value))
        })
    })
    .await;
    let marker = seen
        .iter()
        .find(|s| s.series.metric == "sd_gauge" && s.value.is_nan())
        .expect("marker");
    assert_eq!(marker.value.to_bits(), 0x7ff0_0000_0000_0002);
    assert_eq!(marker.series.labels.get("rack"), Some("r1"));
    let v = get_targets(&api).await;
    assert_eq!(
        v["data"]["activeTargets"].as_array().map(Vec::len),
        Some(0),
        "{v}"
    );
    let after = scrapes.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        scrapes.load(Ordering::SeqCst),
        after,
        "no scrape after removal"
    );

    shutdown.cancel();
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(5), t)
            .await
            .expect("stops")
            .expect("no panic");
    }
}
