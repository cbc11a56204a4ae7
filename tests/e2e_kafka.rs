//! The same flow over Kafka: the `vigie` binary talks to librdkafka's
//! built-in mock cluster (real Kafka protocol on 127.0.0.1), so
//! `cargo test` needs no broker. The end-to-end suite in `.ci/run` repeats
//! it against a real broker process.

mod common;

use std::time::Duration;

use common::{GAUGE_RULES, Target, Vigie, Webhook, assert_stored_exactly_once, get_json, wait_for};
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};

fn kafka_config(brokers: &str, target: &Target, hook: &Webhook) -> String {
    format!(
        "[bus]\nkind = \"kafka\"\nbrokers = \"{brokers}\"\npartitions = 3\ncreate_topics = false\n\
         [analyzer]\nflush_interval = \"2s\"\n\
         [[scrape]]\njob = \"app\"\ntargets = [\"{}\"]\ninterval = \"1s\"\ntimeout = \"1s\"\n\
         [alerting]\ngroup_wait = \"1s\"\ngroup_interval = \"2s\"\n\
         [[alerting.receivers]]\nname = \"ops\"\n[[alerting.receivers.webhook_configs]]\nurl = \"{}\"\n",
        target.addr,
        hook.url()
    )
}

/// A 3-broker mock cluster with Vigie's topics (3 partitions each).
fn mock_cluster() -> (
    MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    String,
) {
    let cluster = MockCluster::new(3).expect("mock cluster");
    for topic in [
        vigie_model::topics::METRICS,
        vigie_model::topics::ALERTS,
        vigie_model::topics::DEADLETTER,
    ] {
        cluster.create_topic(topic, 3, 1).expect("create topic");
    }
    cluster
        .create_topic(vigie_model::topics::FEEDBACK, 1, 1)
        .expect("create topic");
    let brokers = cluster.bootstrap_servers();
    (cluster, brokers)
}

async fn dead_letter(brokers: &str) -> rdkafka::message::OwnedMessage {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "test-deadletter-reader")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer
        .subscribe(&[vigie_model::topics::DEADLETTER])
        .expect("subscribe");
    let m = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
        .await
        .expect("a dead letter within 60s")
        .expect("receive");
    m.detach()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_flow_alerts_stores_everything_and_dead_letters_garbage() {
    let (cluster, brokers) = mock_cluster();
    let target = Target::start(0).await;
    let hook = Webhook::start().await;
    let vigie = Vigie::start(&kafka_config(&brokers, &target, &hook), GAUGE_RULES).await;

    // Samples travel collector -> Kafka -> analyzer.
    wait_for("samples through kafka", Duration::from_secs(60), || async {
        let n = vigie
            .count("SELECT count(*) FROM samples WHERE metric = 'app_gauge' AND NOT isnan(value)")
            .await;
        (n >= 3).then_some(())
    })
    .await;

    // A message that is not Arrow IPC goes to the dead-letter topic.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .expect("producer");
    producer
        .send(
            FutureRecord::to(vigie_model::topics::METRICS)
                .key(&[0u8, 0, 0, 1][..])
                .payload(&b"definitely not arrow"[..]),
            Duration::from_secs(10),
        )
        .await
        .expect("produce garbage");
    let dl = dead_letter(&brokers).await;
    assert_eq!(dl.payload(), Some(&b"definitely not arrow"[..]));
    let headers = dl.headers().expect("headers");
    let header = |name: &str| {
        headers
            .iter()
            .find(|h| h.key == name)
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    assert!(
        header(vigie_model::topics::HEADER_ERROR).is_some_and(|e| e.contains("decoding")),
        "reason header"
    );
    assert_eq!(
        header(vigie_model::topics::HEADER_SOURCE_TOPIC).as_deref(),
        Some(vigie_model::topics::METRICS)
    );
    let metrics = vigie.metrics().await;
    assert!(
        metrics.contains("vigie_deadletter_total{reason=\"decode\",topic=\"vigie.metrics\"} 1"),
        "{metrics}"
    );

    // Consumption went on after the garbage: the alert path still works.
    target.set(500.0);
    let firing = wait_for(
        "firing webhook over kafka",
        Duration::from_secs(60),
        || async { hook.with_status("firing", "GaugeHigh").into_iter().next() },
    )
    .await;
    assert_eq!(firing["alerts"][0]["labels"]["job"], "app");
    target.set(1.0);
    wait_for(
        "resolved webhook over kafka",
        Duration::from_secs(60),
        || async { hook.with_status("resolved", "GaugeHigh").into_iter().next() },
    )
    .await;

    // No loss: stop the target, then every served scrape is stored.
    let served = target.scrapes();
    *target.max_scrapes.lock().expect("lock") = Some(served);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let served = target.scrapes();
    let stored = wait_for("all samples stored", Duration::from_secs(30), || async {
        let n = vigie
            .count("SELECT count(*) FROM samples WHERE metric = 'app_gauge' AND NOT isnan(value)")
            .await;
        (n == served as i64).then_some(n)
    })
    .await;
    assert_eq!(stored, served as i64);
    drop(vigie);
    drop(cluster);
}

/// Scaled mode: a collector process and an analyzer process share the
/// Kafka bus; the analyzer is killed with SIGKILL mid-stream and
/// restarted on the same data. Every scraped sample is stored exactly
/// once: the consumer group resumes from its committed offsets and the
/// replayed part is recognised by the per-series watermarks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analyzer_crash_loses_and_duplicates_nothing() {
    let (cluster, brokers) = mock_cluster();
    let target = Target::start(3).await;
    let hook = Webhook::start().await;
    let config = kafka_config(&brokers, &target, &hook);
    let collector = Vigie::start_in(
        std::sync::Arc::new(tempfile::tempdir().expect("tempdir")),
        &config,
        "groups: []\n",
        &["--roles", "collect"],
    )
    .await;
    let analyzer_dir = std::sync::Arc::new(tempfile::tempdir().expect("tempdir"));
    let mut analyzer = Vigie::start_in(
        analyzer_dir.clone(),
        &config,
        "groups: []\n",
        &["--roles", "analyze,alert"],
    )
    .await;
    wait_for("a first flush", Duration::from_secs(60), || async {
        let files = std::fs::read_dir(analyzer_dir.path().join("vigie-data/samples"))
            .map(|d| d.count())
            .unwrap_or(0);
        (files >= 1 && target.scrapes() >= 6).then_some(())
    })
    .await;
    analyzer.crash();
    // The collector keeps producing while the analyzer is down.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let analyzer = Vigie::start_in(
        analyzer_dir.clone(),
        &config,
        "groups: []\n",
        &["--roles", "analyze,alert"],
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_stored_exactly_once(&analyzer, &target, 4).await; // app_gauge + 3 extra
    drop(collector);
    drop(cluster);
}

/// The `for` labels of the anomaly scores `vigie` stores.
async fn scored(vigie: &Vigie) -> Vec<String> {
    let url = reqwest::Url::parse_with_params(
        &format!("http://{}/api/v1/series", vigie.addr),
        &[("match[]", "vigie_anomaly_score")],
    )
    .expect("url");
    let body = get_json(url.as_str()).await.unwrap_or_default();
    let mut out: Vec<String> = body["data"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["for"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out.dedup();
    out
}

/// Feedback sent to one analyzer of a consumer group reaches the analyzer
/// that scores the series, which calibrates it and logs what it applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_reaches_the_analyzer_that_scores_the_series() {
    let (cluster, brokers) = mock_cluster();
    let target = Target::start(12).await;
    let hook = Webhook::start().await;
    let config = kafka_config(&brokers, &target, &hook);
    let dir = || std::sync::Arc::new(tempfile::tempdir().expect("tempdir"));
    let a = Vigie::start_in(dir(), &config, "groups: []\n", &["--roles", "analyze"]).await;
    let b = Vigie::start_in(dir(), &config, "groups: []\n", &["--roles", "analyze"]).await;
    let collector = Vigie::start_in(dir(), &config, "groups: []\n", &["--roles", "collect"]).await;
    // Both members of the group score some series; pick one only b holds.
    // While the group still settles, a may have been handed samples of a
    // series b scores now (and kept its detector state), so a must also
    // have stored none of it.
    let metric = wait_for(
        "a series scored by b alone",
        Duration::from_secs(120),
        || async {
            let (on_a, on_b) = (scored(&a).await, scored(&b).await);
            for m in on_b
                .into_iter()
                .filter(|m| m.starts_with("app_") && !on_a.contains(m))
            {
                let on_a = format!("SELECT count(*) FROM samples WHERE metric = '{m}'");
                if a.count(&on_a).await == 0 {
                    return Some(m);
                }
            }
            None
        },
    )
    .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let client = reqwest::Client::new();
    let response = client
        .post(format!("http://{}/api/v1/feedback", a.addr))
        .json(&serde_json::json!({
            "series": metric,
            "start": now - 120.0,
            "end": now,
            "kind": "false_alarm",
        }))
        .send()
        .await
        .expect("feedback");
    let status = response.status();
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["shared"], true, "{body}");
    assert_eq!(
        body["data"]["applied_to"].as_array().map(Vec::len),
        Some(0),
        "a holds no series of {metric}: {body}"
    );
    let record = wait_for(
        "b to apply the shared feedback",
        Duration::from_secs(60),
        || async {
            let body = get_json(&format!("http://{}/api/v1/feedback", b.addr)).await?;
            body["data"].as_array()?.first().cloned()
        },
    )
    .await;
    assert_eq!(record["series"], metric.as_str(), "{record}");
    assert!(
        record["from"]
            .as_str()
            .is_some_and(|f| f.ends_with(&a.addr.port().to_string())),
        "b names a as the analyzer that received it: {record}"
    );
    let applied = record["applied_to"].as_array().expect("applied_to");
    assert!(
        !applied.is_empty()
            && applied
                .iter()
                .all(|s| s.as_str().is_some_and(|s| s.starts_with(&metric))),
        "b calibrated its series of {metric}: {record}"
    );
    let metrics = b.metrics().await;
    assert!(
        metrics.contains("vigie_feedback_total{kind=\"false_alarm\"} 1"),
        "b counts the feedback it applied"
    );
    drop(collector);
    drop(cluster);
}
