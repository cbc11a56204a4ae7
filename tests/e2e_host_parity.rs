//! Host collector parity with node_exporter: the real
//! `/usr/bin/prometheus-node-exporter` (default collectors) and the real
//! `vigie` binary (host collector on) run on the same machine; for each
//! node_exporter collector Vigie claims, every metric node_exporter emits
//! here must be stored by Vigie with the same label names (`job` and
//! `instance` aside). The gaps are printed, including those of collectors
//! Vigie does not claim. `hwmon` only has something to compare on machines
//! with `/sys/class/hwmon` entries.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Vigie, free_port, wait_for};

const NODE_EXPORTER: &str = "/usr/bin/prometheus-node-exporter";

/// A metric's label-name sets (one per distinct set among its series).
type Shapes = BTreeMap<String, BTreeSet<BTreeSet<String>>>;

/// node_exporter collectors, and which of their metrics they own.
/// `claimed` collectors must be at parity.
struct Collector {
    name: &'static str,
    claimed: bool,
    owns: fn(&str) -> bool,
}

const COLLECTORS: &[Collector] = &[
    Collector {
        name: "cpu",
        claimed: true,
        owns: |m| m.starts_with("node_cpu_"),
    },
    Collector {
        name: "stat",
        claimed: true,
        owns: |m| {
            [
                "node_boot_time_seconds",
                "node_context_switches_total",
                "node_forks_total",
                "node_intr_total",
                "node_procs_blocked",
                "node_procs_running",
            ]
            .contains(&m)
        },
    },
    Collector {
        name: "meminfo",
        claimed: true,
        owns: |m| m.starts_with("node_memory_"),
    },
    Collector {
        name: "loadavg",
        claimed: true,
        owns: |m| ["node_load1", "node_load5", "node_load15"].contains(&m),
    },
    Collector {
        name: "pressure",
        claimed: true,
        owns: |m| m.starts_with("node_pressure_"),
    },
    Collector {
        name: "diskstats",
        claimed: true,
        owns: |m| m.starts_with("node_disk_"),
    },
    Collector {
        name: "filesystem",
        claimed: true,
        owns: |m| m.starts_with("node_filesystem_"),
    },
    Collector {
        name: "netdev",
        claimed: true,
        // netclass owns the other node_network_* metrics.
        owns: |m| {
            (m.starts_with("node_network_receive_") || m.starts_with("node_network_transmit_"))
                && m.ends_with("_total")
        },
    },
    Collector {
        name: "netstat",
        claimed: true,
        owns: |m| m.starts_with("node_netstat_"),
    },
    Collector {
        name: "uname",
        claimed: true,
        owns: |m| m == "node_uname_info",
    },
    Collector {
        name: "time",
        claimed: true,
        owns: |m| m.starts_with("node_time_"),
    },
    Collector {
        name: "hwmon",
        claimed: true,
        owns: |m| m.starts_with("node_hwmon_"),
    },
];

/// Metric names and label names (of non-empty values) of an exposition
/// text.
fn exposition_shapes(text: &str) -> Shapes {
    let mut out = Shapes::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let end = line.find(['{', ' ']).unwrap_or(line.len());
        let (name, rest) = line.split_at(end);
        let mut labels = BTreeSet::new();
        if let Some(mut rest) = rest.strip_prefix('{') {
            // name="value" pairs; values may hold escaped quotes and commas.
            while let Some((label, after)) = rest.split_once("=\"") {
                let mut escaped = false;
                let close = after
                    .char_indices()
                    .find(|&(_, c)| {
                        let hit = c == '"' && !escaped;
                        escaped = c == '\\' && !escaped;
                        hit
                    })
                    .map(|(i, _)| i)
                    .expect("closing quote");
                // An empty value is no label at all once stored (Prometheus
                // semantics; Vigie drops them too).
                if close > 0 {
                    labels.insert(label.trim_start_matches(',').trim().to_string());
                }
                rest = &after[close + 1..];
                if rest.starts_with('}') {
                    break;
                }
            }
        }
        out.entry(name.to_string()).or_default().insert(labels);
    }
    out
}

/// Kills node_exporter on drop.
struct NodeExporter(Child);

impl NodeExporter {
    /// Starts the real node_exporter with `args` on a free port and
    /// returns it (killed on drop) with its first `/metrics` text.
    async fn scrape(args: &[&str]) -> (NodeExporter, String) {
        let port = free_port();
        let ne = NodeExporter(
            Command::new(NODE_EXPORTER)
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start node_exporter"),
        );
        let url = format!("http://127.0.0.1:{port}/metrics");
        let text = wait_for("node_exporter /metrics", Duration::from_secs(20), || {
            let url = url.clone();
            async move {
                let r = reqwest::get(&url).await.ok()?;
                if !r.status().is_success() {
                    return None;
                }
                r.text().await.ok()
            }
        })
        .await;
        (ne, text)
    }
}

impl Drop for NodeExporter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_collector_matches_node_exporter() {
    assert!(
        std::path::Path::new(NODE_EXPORTER).exists(),
        "{NODE_EXPORTER} is missing: `apt-get install prometheus-node-exporter` (scripts/test does)"
    );
    let (_ne, ne_text) = NodeExporter::scrape(&[]).await;
    let ne = exposition_shapes(&ne_text);

    let vigie = Vigie::start_with_host("", "groups: []\n").await;
    // One collection round is stored at once; the zone offset is one of the
    // last metrics of a round.
    let query = "SELECT DISTINCT metric, array_to_string(map_keys(labels), ',') AS keys \
                 FROM samples WHERE labels['job'] = 'node'";
    let rows = wait_for(
        "a host collection round",
        Duration::from_secs(30),
        || async {
            let body = vigie.sql(query).await;
            let rows = body["rows"].as_array()?.clone();
            let has = |m: &str| rows.iter().any(|r| r[0] == m);
            (has("node_time_zone_offset_seconds") && has("node_filesystem_size_bytes"))
                .then_some(rows)
        },
    )
    .await;
    let mut vigie_shapes = Shapes::new();
    for row in &rows {
        let metric = row[0].as_str().expect("metric").to_string();
        let keys: BTreeSet<String> = row[1]
            .as_str()
            .expect("keys")
            .split(',')
            .filter(|k| !k.is_empty() && *k != "job" && *k != "instance")
            .map(str::to_string)
            .collect();
        vigie_shapes.entry(metric).or_default().insert(keys);
    }

    let mut failures = Vec::new();
    println!("node_exporter metrics Vigie lacks, per collector:");
    for c in COLLECTORS {
        let mut lacking = Vec::new();
        let mut matched = 0;
        for (metric, shapes) in ne.iter().filter(|(m, _)| (c.owns)(m)) {
            match vigie_shapes.get(metric) {
                None => lacking.push(metric.clone()),
                Some(ours) => {
                    let missing: Vec<_> = shapes.difference(ours).collect();
                    if missing.is_empty() {
                        matched += 1;
                    } else {
                        lacking.push(format!("{metric} (labels {missing:?}, Vigie has {ours:?})"));
                    }
                }
            }
        }
        let claim = if c.claimed { "claimed" } else { "not claimed" };
        println!(
            "  {} ({claim}): {matched} match, {} lacking {lacking:?}",
            c.name,
            lacking.len()
        );
        if c.claimed && !lacking.is_empty() {
            failures.push(format!("{}: {lacking:?}", c.name));
        }
    }
    let unclaimed: BTreeSet<&str> = ne
        .keys()
        .filter(|m| !COLLECTORS.iter().any(|c| (c.owns)(m)))
        .filter_map(|m| m.strip_prefix("node_"))
        .filter_map(|m| m.split('_').next())
        .collect();
    println!("other node_exporter metric families (not claimed): {unclaimed:?}");
    assert!(
        failures.is_empty(),
        "claimed collectors not at parity with node_exporter:\n{}",
        failures.join("\n")
    );
}

/// hwmon value parity on a sysfs tree laid out like real ones
/// (`ingest/tests/fixtures/hwmon/sys`: class links into `devices/`,
/// `device` links, PCI and platform chips, fans, voltages, power, current,
/// energy, humidity, alarms, labels, garbage values): node_exporter run on
/// it with `--path.sysfs` and Vigie's host collector read it, and every
/// series must be the same, with the same value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hwmon_matches_node_exporter_on_a_fixture_tree() {
    use vigie_ingest::source::Source;

    assert!(
        std::path::Path::new(NODE_EXPORTER).exists(),
        "{NODE_EXPORTER} is missing: `apt-get install prometheus-node-exporter` (scripts/test does)"
    );
    let fixtures = common::root("ingest/tests/fixtures");
    let sysfs = fixtures.join("hwmon/sys");
    let sysfs_arg = format!("--path.sysfs={}", sysfs.display());
    let (_ne, ne_text) = NodeExporter::scrape(&[
        &sysfs_arg,
        "--collector.disable-defaults",
        "--collector.hwmon",
    ])
    .await;
    let mut theirs = BTreeMap::new();
    for line in ne_text.lines().filter(|l| l.starts_with("node_hwmon_")) {
        let s = vigie_ingest::exposition::parse_sample_line(line).expect("node_exporter's line");
        let labels: BTreeMap<String, String> = s
            .labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        theirs.insert((s.name.to_string(), labels), s.value);
    }

    let mut collector = vigie_ingest::HostCollector::new(&vigie_ingest::config::HostConfig {
        procfs: fixtures.join("proc"),
        sysfs,
        udev_data: fixtures.join("udev"),
        nvidia_smi: String::new(),
        ..Default::default()
    });
    let mut ours = BTreeMap::new();
    for s in collector.collect().await {
        if !s.series.metric.starts_with("node_hwmon_") {
            continue;
        }
        let labels: BTreeMap<String, String> = s
            .series
            .labels
            .iter()
            .filter(|(k, _)| *k != "job" && *k != "instance")
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ours.insert((s.series.metric.clone(), labels), s.value);
    }
    assert!(
        theirs.len() >= 40,
        "node_exporter read the tree: {theirs:?}"
    );
    let missing: Vec<_> = theirs.keys().filter(|k| !ours.contains_key(*k)).collect();
    let extra: Vec<_> = ours.keys().filter(|k| !theirs.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "Vigie lacks {missing:?}\nVigie has more: {extra:?}"
    );
    for (key, value) in &theirs {
        let got = ours[key];
        assert!(
            (got - value).abs() <= 1e-9 * value.abs().max(1.0),
            "{key:?}: node_exporter {value}, Vigie {got}"
        );
    }
}
