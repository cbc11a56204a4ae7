//! Interop topics over Kafka (librdkafka's mock cluster): another tool's
//! metrics, written with rdkafka as Telegraf and Vector write them
//! (InfluxDB line protocol, Telegraf JSON, Vector JSON), are found through
//! PromQL like scraped ones; a garbage message lands in `vigie.deadletter`
//! with its reason, and the messages after it are still read.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Vigie, wait_for};
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;
use vigie_model::topics;

/// The value of the one series `query` returns, if it returns one.
async fn instant(vigie: &Vigie, query: &str) -> Option<(Value, f64)> {
    let url = reqwest::Url::parse_with_params(
        &format!("http://{}/api/v1/query", vigie.addr),
        &[("query", query)],
    )
    .expect("url");
    let body: Value = reqwest::get(url).await.ok()?.json().await.ok()?;
    assert_eq!(body["status"], "success", "{query}: {body}");
    let result = body["data"]["result"].as_array()?;
    let [series] = result.as_slice() else {
        return None;
    };
    let value = series["value"][1].as_str()?.parse().ok()?;
    Some((series["metric"].clone(), value))
}

async fn produce(producer: &FutureProducer, topic: &str, payload: &str) {
    producer
        .send(
            FutureRecord::to(topic).key("k").payload(payload),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("produce");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_topics_reach_promql_and_garbage_the_dead_letter_topic() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    for topic in [
        topics::METRICS,
        topics::ALERTS,
        topics::DEADLETTER,
        topics::LOGS,
    ] {
        cluster.create_topic(topic, 2, 1).expect("create topic");
    }
    for topic in ["telegraf", "telegraf-json", "vector"] {
        cluster.create_topic(topic, 2, 1).expect("create topic");
    }
    let brokers = cluster.bootstrap_servers();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .expect("producer");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    // Written before Vigie starts: a new group reads from the earliest offset.
    produce(
        &producer,
        "telegraf",
        &format!(
            "cpu,cpu=cpu-total,host=web\\ 1 usage_idle=97.5,usage_user=2.5,state=\"ok\" {now}000000000\n\
             system,host=web\\ 1 load1=0.25,n_users=3i {now}000000000\n"
        ),
    )
    .await;
    produce(&producer, "telegraf", "this is { not line protocol").await;
    produce(
        &producer,
        "telegraf",
        &format!("mem,host=web\\ 1 used_percent=41 {now}000000000"),
    )
    .await;
    produce(
        &producer,
        "telegraf-json",
        &format!(r#"{{"fields":{{"n_images":660}},"name":"docker","tags":{{"host":"raynor"}},"timestamp":{now}}}"#),
    )
    .await;
    let ts = rfc3339_utc(now);
    produce(
        &producer,
        "vector",
        &format!(r#"{{"name":"memory_used_bytes","namespace":"host","tags":{{"host":"vec"}},"timestamp":"{ts}","kind":"absolute","gauge":{{"value":1048576.0}}}}"#),
    )
    .await;

    let config = format!(
        "[bus]\nkind = \"kafka\"\nbrokers = \"{brokers}\"\npartitions = 2\ncreate_topics = false\n\
         [analyzer]\nflush_interval = \"2s\"\n\
         [[interop]]\ntopic = \"telegraf\"\nformat = \"influx\"\nlabels = {{ dc = \"par1\" }}\n\
         [[interop]]\ntopic = \"telegraf-json\"\nformat = \"telegraf_json\"\n\
         [[interop]]\ntopic = \"vector\"\nformat = \"vector_json\"\n"
    );
    let vigie = Vigie::start(&config, "groups: []\n").await;

    let (labels, value) = wait_for("line protocol via PromQL", Duration::from_secs(60), || {
        instant(&vigie, "cpu_usage_idle{host=\"web 1\"}")
    })
    .await;
    assert_eq!(value, 97.5);
    assert_eq!(labels["cpu"], "cpu-total");
    assert_eq!(labels["dc"], "par1", "configured labels are added");
    for (query, want) in [
        ("system_load1", 0.25),
        ("system_n_users", 3.0),
        ("mem_used_percent{dc=\"par1\"}", 41.0),
        ("docker_n_images{host=\"raynor\"}", 660.0),
        ("host_memory_used_bytes{host=\"vec\"}", 1_048_576.0),
    ] {
        let (_, got) = wait_for(query, Duration::from_secs(30), || instant(&vigie, query)).await;
        assert_eq!(got, want, "{query}");
    }
    assert_eq!(
        instant(&vigie, "cpu_state").await,
        None,
        "string fields are not samples"
    );

    // The garbage message, whole, with its reason.
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "test-deadletter-reader")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer
        .subscribe(&[topics::DEADLETTER])
        .expect("subscribe");
    let dl = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
        .await
        .expect("a dead letter")
        .expect("receive")
        .detach();
    assert_eq!(dl.payload(), Some(&b"this is { not line protocol"[..]));
    let header = |name: &str| {
        dl.headers()?
            .iter()
            .find(|h| h.key == name)
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    let reason = header(topics::HEADER_ERROR).expect("reason header");
    assert!(reason.starts_with("line 1: "), "{reason}");
    assert_eq!(
        header(topics::HEADER_SOURCE_TOPIC).as_deref(),
        Some("telegraf")
    );
    let metrics = vigie.metrics().await;
    assert!(
        metrics.contains(
            "vigie_interop_rejected_total{format=\"influx\",reason=\"syntax\",topic=\"telegraf\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "vigie_interop_skipped_total{format=\"influx\",reason=\"string_field\",topic=\"telegraf\"} 1"
        ),
        "{metrics}"
    );
    drop(vigie);
    drop(cluster);
}

/// `secs` as an RFC 3339 UTC time (what Vector writes), without a date crate.
fn rfc3339_utc(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
