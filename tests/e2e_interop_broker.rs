//! Interop topics against a real Kafka-protocol broker (tansu) and a real
//! third-party producer: `kcat -P` writes InfluxDB line protocol and
//! Telegraf JSON, one message per line, as a Telegraf would; Vigie reads
//! them into PromQL and sends the garbage line to `vigie.deadletter`.

mod common;

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::broker::{Broker, kcat, kcat_produce};
use common::{Vigie, free_port, wait_for};
use serde_json::Value;

async fn instant(vigie: &Vigie, query: &str) -> Option<f64> {
    let url = reqwest::Url::parse_with_params(
        &format!("http://{}/api/v1/query", vigie.addr),
        &[("query", query)],
    )
    .expect("url");
    let body: Value = reqwest::get(url).await.ok()?.json().await.ok()?;
    let result = body["data"]["result"].as_array()?;
    let [series] = result.as_slice() else {
        return None;
    };
    series["value"][1].as_str()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_written_line_protocol_and_json_reach_promql() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let _broker = Broker::start(port, dir.path().join("tansu.db"));
    let brokers = format!("127.0.0.1:{port}");
    let bus = vigie_bus::BusConfig {
        kind: vigie_bus::BusKind::Kafka,
        brokers: brokers.clone(),
        partitions: 2,
        ..vigie_bus::BusConfig::default()
    };
    vigie_bus::kafka::ensure_topics(&bus, &["telegraf", "telegraf-json"])
        .await
        .expect("create the interop topics");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    kcat_produce(
        &brokers,
        "telegraf",
        &[],
        &format!(
            "disk,device=sda,host=db1 used_percent=71.5,inodes_free=1000u {now}000000000\n\
             not line protocol at all\n\
             net,host=db1,interface=eth0 bytes_recv=123456i,up=true {now}000000000\n"
        ),
    );
    kcat_produce(
        &brokers,
        "telegraf-json",
        &[],
        &format!(
            "{{\"fields\":{{\"value\":12}},\"name\":\"processes\",\"tags\":{{\"host\":\"db1\"}},\"timestamp\":{now}000}}\n"
        ),
    );
    let config = format!(
        "[bus]\nkind = \"kafka\"\nbrokers = \"{brokers}\"\npartitions = 2\n\
         [analyzer]\nflush_interval = \"2s\"\n\
         [[interop]]\ntopic = \"telegraf\"\nformat = \"influx\"\n\
         [[interop]]\ntopic = \"telegraf-json\"\nformat = \"telegraf_json\"\njson_timestamp_units = \"1ms\"\n"
    );
    let vigie = Vigie::start(&config, "groups: []\n").await;
    for (query, want) in [
        ("disk_used_percent{device=\"sda\",host=\"db1\"}", 71.5),
        ("disk_inodes_free", 1000.0),
        ("net_bytes_recv{interface=\"eth0\"}", 123_456.0),
        ("net_up", 1.0),
        ("processes{host=\"db1\"}", 12.0),
    ] {
        let got = wait_for(query, Duration::from_secs(90), || instant(&vigie, query)).await;
        assert_eq!(got, want, "{query}");
    }
    let rejected = wait_for(
        "the garbage line counted",
        Duration::from_secs(30),
        || async {
            vigie
                .metrics()
                .await
                .lines()
                .find(|l| {
                    l.starts_with("vigie_interop_rejected_total{")
                        && l.contains("topic=\"telegraf\"")
                        && l.contains("reason=\"syntax\"")
                })
                .map(str::to_string)
        },
    )
    .await;
    assert!(rejected.ends_with(" 1"), "{rejected}");
    // kcat reads the dead letter back, with its reason header (the counter
    // moves before the broker has acknowledged the dead letter: retry).
    let text = wait_for(
        "the dead letter on the broker",
        Duration::from_secs(30),
        || async {
            let out = Command::new(kcat())
                .args(["-C", "-b", &brokers, "-t", vigie_model::topics::DEADLETTER])
                .args(["-o", "beginning", "-c", "1", "-e", "-f", "%s|%h\n"])
                .output()
                .expect("kcat -C");
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            (!text.is_empty()).then_some(text)
        },
    )
    .await;
    assert!(text.starts_with("not line protocol at all|"), "{text}");
    assert!(text.contains("vigie-error=line 1: "), "{text}");
    assert!(text.contains("vigie-source-topic=telegraf"), "{text}");
}
