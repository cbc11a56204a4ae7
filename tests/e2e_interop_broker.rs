//! Interop topics against a real Kafka-protocol broker (tansu) and a real
//! third-party producer: `kcat -P` writes InfluxDB line protocol and
//! Telegraf JSON, one message per line, as a Telegraf would; Vigie reads
//! them into PromQL and sends the garbage line to `vigie.deadletter`.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Vigie, free_port, wait_for};
use serde_json::Value;

/// `kcat` from PATH, or a failure saying how to install it.
fn kcat() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("kcat"))
            .find(|c| c.is_file())
    });
    found.expect("kcat is missing: `apt-get install kcat` (scripts/test and .ci/run do it)")
}

/// The tansu broker binary: `$VIGIE_TANSU`, else `tansu` on PATH or in ~/.cargo/bin.
fn tansu() -> PathBuf {
    if let Some(p) = std::env::var_os("VIGIE_TANSU") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("tansu")).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([home.join(".cargo/bin/tansu")])
        .find(|c| c.is_file())
        .expect("the tansu broker is missing: `cargo install tansu --locked --features dynostore,libsql` (scripts/test does it)")
}

/// A tansu broker on 127.0.0.1 with a SQLite store in `dir`; killed on drop.
struct Broker(Child);

impl Broker {
    fn start(port: u16, dir: &std::path::Path) -> Broker {
        let url = format!("tcp://127.0.0.1:{port}");
        let log = std::fs::File::create(dir.join("tansu.log")).expect("broker log");
        let child = Command::new(tansu())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start tansu");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not listen on {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        Broker(child)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `kcat -P`: every line of `lines` becomes one message of `topic`.
fn kcat_produce(brokers: &str, topic: &str, lines: &str) {
    let mut child = Command::new(kcat())
        .args(["-P", "-b", brokers, "-t", topic])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kcat");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(lines.as_bytes())
        .expect("write to kcat");
    let out = child.wait_with_output().expect("kcat");
    assert!(
        out.status.success(),
        "kcat -P: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

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
    let _broker = Broker::start(port, dir.path());
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
        &format!(
            "disk,device=sda,host=db1 used_percent=71.5,inodes_free=1000u {now}000000000\n\
             not line protocol at all\n\
             net,host=db1,interface=eth0 bytes_recv=123456i,up=true {now}000000000\n"
        ),
    );
    kcat_produce(
        &brokers,
        "telegraf-json",
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
    // kcat reads the dead letter back, with its reason header.
    let out = Command::new(kcat())
        .args(["-C", "-b", &brokers, "-t", vigie_model::topics::DEADLETTER])
        .args(["-o", "beginning", "-c", "1", "-e", "-f", "%s|%h\n"])
        .output()
        .expect("kcat -C");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("not line protocol at all|"), "{text}");
    assert!(text.contains("vigie-error=line 1: "), "{text}");
    assert!(text.contains("vigie-source-topic=telegraf"), "{text}");
}
