//! Bytes per sample on disk for typical node metrics.
//!
//! Generates node_exporter-like series (10 nodes × 100 series: CPU seconds
//! in 1/100 s ticks, memory and filesystem bytes, network and disk
//! counters, load averages, `node_time_seconds`; plus, per node, a classic
//! histogram `http_request_duration_seconds` of 12 buckets, `_sum` and
//! `_count`, so 1,140 series in all) scraped every 15 s for
//! 24 h, appends them to a [`Storage`] scrape by scrape, flushes every
//! 60 s as the analyzer does by default (`analyzer.flush_interval`), and
//! prints the size of the Parquet files per sample: as flushed, then after
//! compaction merged each 2 h window into one file.
//!
//! `cargo bench -p vigie-analyzer --bench storage`
//!
//! Environment: `VIGIE_BENCH_HOURS` (default 24), `VIGIE_BENCH_NODES`
//! (default 10), `VIGIE_BENCH_HISTOGRAMS=0` to leave the histograms out
//! (the 1,000 node series alone), `VIGIE_BENCH_DATA=DIR` to keep the data
//! directory (`DIR/samples/`, a data dir `vigie run` opens), and
//! `VIGIE_BENCH_EXPORT=DIR` to also write the same
//! samples as OpenMetrics text (`DIR/node.om`, seconds, for
//! `promtool tsdb create-blocks-from openmetrics`) and as Prometheus text
//! with millisecond timestamps (`DIR/node.prom`, for VictoriaMetrics'
//! `/api/v1/import/prometheus`); `scripts/storage-compare` does the rest.

use std::fmt::Write as _;
use std::io::Write as _;

use vigie_analyzer::storage::Storage;
use vigie_model::schema::samples_to_batch;
use vigie_model::{Labels, Sample};

const STEP_MS: i64 = 15_000;
const FLUSH_EVERY: i64 = 4; // 60 s of 15 s scrapes
/// 2026-01-01T00:00:00Z.
const START_MS: i64 = 1_767_225_600_000;

/// How a series moves from one scrape to the next.
#[derive(Clone, Copy)]
enum Kind {
    /// Fixed value.
    Const(f64),
    /// Counter growing by a random whole number of units in `0..=max`
    /// per scrape, value = units × `scale`.
    Counter { max: u64, scale: f64 },
    /// Gauge doing a random walk of whole steps of `unit`, within
    /// `[lo, hi]`.
    Walk {
        unit: f64,
        steps: i64,
        lo: f64,
        hi: f64,
    },
    /// Wall-clock seconds with nanosecond noise, like `node_time_seconds`.
    Clock,
    /// Series `part` of histogram `hist` (see [`Histogram`]).
    Hist { hist: usize, part: usize },
}

/// Upper bounds (`le`) of the request-latency histogram's buckets, in ms;
/// the last bucket, `+Inf`, follows.
const BUCKETS_MS: [u64; 11] = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];

/// A classic histogram of request latencies, as a client library exposes
/// it: cumulative `_bucket` counters (one per [`BUCKETS_MS`] bound, then
/// `+Inf`), `_sum` (seconds) and `_count`.
#[derive(Default)]
struct Histogram {
    /// Requests per bucket (not cumulative), `+Inf` last.
    buckets: [u64; BUCKETS_MS.len() + 1],
    sum_ms: u64,
}

impl Histogram {
    /// Series parts: the buckets, then `_sum`, then `_count`.
    const PARTS: usize = BUCKETS_MS.len() + 3;

    /// Observes one scrape interval's requests: up to 200, latencies
    /// skewed towards a few ms (whole ms, as a server measures them).
    fn step(&mut self, rng: &mut fastrand::Rng) {
        for _ in 0..rng.u64(0..=200) {
            let ms = 10f64.powf(4.3 * rng.f64() * rng.f64()).round() as u64;
            let b = BUCKETS_MS.partition_point(|&le| le < ms);
            self.buckets[b] += 1;
            self.sum_ms += ms;
        }
    }

    /// The value of series `part`.
    fn value(&self, part: usize) -> f64 {
        match part {
            p if p <= BUCKETS_MS.len() => self.buckets[..=p].iter().sum::<u64>() as f64,
            p if p == BUCKETS_MS.len() + 1 => scaled(self.sum_ms as f64, 0.001),
            _ => self.buckets.iter().sum::<u64>() as f64,
        }
    }
}

struct Series {
    name: String,
    labels: Labels,
    kind: Kind,
    units: u64,
    value: f64,
}

impl Series {
    fn new(name: &str, labels: Labels, kind: Kind, rng: &mut fastrand::Rng) -> Self {
        let value = match kind {
            Kind::Const(v) => v,
            Kind::Counter { .. } => 0.0,
            Kind::Walk { unit, lo, hi, .. } => {
                let span = ((hi - lo) / unit) as i64;
                scaled((lo / unit).round() + rng.i64(0..=span.max(0)) as f64, unit)
            }
            Kind::Clock | Kind::Hist { .. } => 0.0,
        };
        let units = match kind {
            Kind::Counter { max, .. } => rng.u64(0..=max.saturating_mul(10_000)),
            _ => 0,
        };
        Self {
            name: name.into(),
            labels,
            kind,
            units,
            value,
        }
    }

    fn step(&mut self, ts_ms: i64, rng: &mut fastrand::Rng, hists: &[Histogram]) -> f64 {
        match self.kind {
            Kind::Const(v) => v,
            Kind::Counter { max, scale } => {
                self.units += rng.u64(0..=max);
                scaled(self.units as f64, scale)
            }
            Kind::Walk {
                unit,
                steps,
                lo,
                hi,
            } => {
                // In whole units, as an exporter reads them (e.g. "3.07").
                let k = (self.value / unit).round() + rng.i64(-steps..=steps) as f64;
                self.value = scaled(k, unit).clamp(lo, hi);
                self.value
            }
            Kind::Clock => (ts_ms as f64 + rng.f64()) / 1000.0,
            Kind::Hist { hist, part } => hists[hist].value(part),
        }
    }
}

/// `units × unit`, computed as exporters do: ticks / 100 for 0.01 s, so
/// values are the shortest decimals they print.
fn scaled(units: f64, unit: f64) -> f64 {
    if unit >= 1.0 {
        units * unit
    } else {
        units / (1.0 / unit).round()
    }
}

/// 100 series of one node_exporter target.
fn node(instance: &str, rng: &mut fastrand::Rng) -> Vec<Series> {
    let base = || Labels::new().with("instance", instance).with("job", "node");
    let mut out = Vec::new();
    let gib = 1024.0 * 1024.0 * 1024.0;
    for cpu in 0..4 {
        for (mode, max) in [
            ("idle", 1400),
            ("user", 300),
            ("system", 80),
            ("iowait", 10),
            ("irq", 0),
            ("softirq", 5),
            ("steal", 0),
            ("nice", 1),
        ] {
            out.push(Series::new(
                "node_cpu_seconds_total",
                base().with("cpu", cpu.to_string()).with("mode", mode),
                Kind::Counter { max, scale: 0.01 },
                rng,
            ));
        }
    }
    let mem = [
        ("MemTotal", Kind::Const(16.0 * gib)),
        ("SwapTotal", Kind::Const(2.0 * gib)),
        ("SwapFree", Kind::Const(2.0 * gib)),
        ("HugePages_Total", Kind::Const(0.0)),
        ("Writeback", Kind::Const(0.0)),
    ];
    for (name, kind) in mem {
        out.push(Series::new(
            &format!("node_memory_{name}_bytes"),
            base(),
            kind,
            rng,
        ));
    }
    for name in [
        "MemFree",
        "MemAvailable",
        "Buffers",
        "Cached",
        "Active",
        "Inactive",
        "Dirty",
        "Slab",
        "SReclaimable",
        "SUnreclaim",
        "PageTables",
        "Shmem",
        "Mapped",
        "AnonPages",
        "Committed_AS",
    ] {
        out.push(Series::new(
            &format!("node_memory_{name}_bytes"),
            base(),
            Kind::Walk {
                unit: 4096.0,
                steps: 500,
                lo: 0.0,
                hi: 8.0 * gib,
            },
            rng,
        ));
    }
    for (device, fstype, mountpoint, size) in [
        ("/dev/sda1", "ext4", "/", 100.0 * gib),
        ("/dev/sda2", "ext4", "/boot", gib),
        ("/dev/sdb1", "xfs", "/var", 500.0 * gib),
    ] {
        let fs = || {
            base()
                .with("device", device)
                .with("fstype", fstype)
                .with("mountpoint", mountpoint)
        };
        let walk = Kind::Walk {
            unit: 4096.0,
            steps: 64,
            lo: 0.1 * size,
            hi: 0.9 * size,
        };
        out.push(Series::new("node_filesystem_avail_bytes", fs(), walk, rng));
        out.push(Series::new("node_filesystem_free_bytes", fs(), walk, rng));
        out.push(Series::new(
            "node_filesystem_size_bytes",
            fs(),
            Kind::Const(size),
            rng,
        ));
        out.push(Series::new(
            "node_filesystem_files",
            fs(),
            Kind::Const((size / 16384.0).round()),
            rng,
        ));
        out.push(Series::new(
            "node_filesystem_files_free",
            fs(),
            Kind::Walk {
                unit: 1.0,
                steps: 20,
                lo: 1000.0,
                hi: size / 16384.0,
            },
            rng,
        ));
        out.push(Series::new(
            "node_filesystem_readonly",
            fs(),
            Kind::Const(0.0),
            rng,
        ));
    }
    for (device, scale) in [("eth0", 1u64), ("lo", 0)] {
        for dir in ["receive", "transmit"] {
            let net = || base().with("device", device);
            out.push(Series::new(
                &format!("node_network_{dir}_bytes_total"),
                net(),
                Kind::Counter {
                    max: 2_000_000 * scale + 20_000,
                    scale: 1.0,
                },
                rng,
            ));
            out.push(Series::new(
                &format!("node_network_{dir}_packets_total"),
                net(),
                Kind::Counter {
                    max: 2_000 * scale + 50,
                    scale: 1.0,
                },
                rng,
            ));
            out.push(Series::new(
                &format!("node_network_{dir}_errs_total"),
                net(),
                Kind::Const(0.0),
                rng,
            ));
            out.push(Series::new(
                &format!("node_network_{dir}_drop_total"),
                net(),
                Kind::Const(0.0),
                rng,
            ));
        }
    }
    for device in ["sda", "sdb"] {
        let disk = || base().with("device", device);
        out.push(Series::new(
            "node_disk_reads_completed_total",
            disk(),
            Kind::Counter {
                max: 200,
                scale: 1.0,
            },
            rng,
        ));
        out.push(Series::new(
            "node_disk_writes_completed_total",
            disk(),
            Kind::Counter {
                max: 600,
                scale: 1.0,
            },
            rng,
        ));
        out.push(Series::new(
            "node_disk_read_bytes_total",
            disk(),
            Kind::Counter {
                max: 2_000,
                scale: 4096.0,
            },
            rng,
        ));
        out.push(Series::new(
            "node_disk_written_bytes_total",
            disk(),
            Kind::Counter {
                max: 5_000,
                scale: 4096.0,
            },
            rng,
        ));
    }
    for name in ["node_load1", "node_load15"] {
        out.push(Series::new(
            name,
            base(),
            Kind::Walk {
                unit: 0.01,
                steps: 20,
                lo: 0.0,
                hi: 8.0,
            },
            rng,
        ));
    }
    out.push(Series::new(
        "node_context_switches_total",
        base(),
        Kind::Counter {
            max: 100_000,
            scale: 1.0,
        },
        rng,
    ));
    out.push(Series::new(
        "node_procs_running",
        base(),
        Kind::Walk {
            unit: 1.0,
            steps: 2,
            lo: 1.0,
            hi: 12.0,
        },
        rng,
    ));
    out.push(Series::new(
        "node_boot_time_seconds",
        base(),
        Kind::Const(1_767_000_000.0),
        rng,
    ));
    out.push(Series::new("node_time_seconds", base(), Kind::Clock, rng));
    assert_eq!(out.len(), 100);
    out
}

/// The [`Histogram::PARTS`] series of histogram `hist`,
/// `http_request_duration_seconds`, of one target.
fn histogram(instance: &str, hist: usize) -> Vec<Series> {
    let base = || Labels::new().with("instance", instance).with("job", "node");
    let name = "http_request_duration_seconds";
    (0..Histogram::PARTS)
        .map(|part| {
            let (name, labels) = match part {
                p if p < BUCKETS_MS.len() => (
                    format!("{name}_bucket"),
                    base().with("le", (BUCKETS_MS[p] as f64 / 1000.0).to_string()),
                ),
                p if p == BUCKETS_MS.len() => (format!("{name}_bucket"), base().with("le", "+Inf")),
                p if p == BUCKETS_MS.len() + 1 => (format!("{name}_sum"), base()),
                _ => (format!("{name}_count"), base()),
            };
            Series {
                name,
                labels,
                kind: Kind::Hist { hist, part },
                units: 0,
                value: 0.0,
            }
        })
        .collect()
}

fn env_or(name: &str, default: i64) -> i64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Prometheus text of one sample: `name{k="v",...} value`.
fn exposition(line: &mut String, s: &Series, value: f64) {
    line.push_str(&s.name);
    line.push('{');
    for (i, (k, v)) in s.labels.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        let _ = write!(line, "{k}=\"{v}\"");
    }
    let _ = write!(line, "}} {value}");
}

/// Bytes of the series table's files under the data dir `data`.
fn series_bytes(data: &std::path::Path) -> u64 {
    std::fs::read_dir(data.join("series"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn files_bytes(files: &[std::path::PathBuf]) -> u64 {
    files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs a short pass.
    let quick = !std::env::args().any(|a| a == "--bench");
    let hours = env_or("VIGIE_BENCH_HOURS", if quick { 1 } else { 24 });
    let nodes = env_or("VIGIE_BENCH_NODES", 10);
    let export = std::env::var_os("VIGIE_BENCH_EXPORT").map(std::path::PathBuf::from);
    let with_histograms = env_or("VIGIE_BENCH_HISTOGRAMS", 1) != 0;
    let mut rng = fastrand::Rng::with_seed(15);
    // Histograms draw from their own generator, so the node series are the
    // same with or without them.
    let mut hist_rng = fastrand::Rng::with_seed(16);
    let mut hists: Vec<Histogram> = Vec::new();
    let mut series: Vec<Series> = Vec::new();
    for n in 0..nodes {
        let instance = format!("10.0.{}.{}:9100", n / 250, n % 250 + 1);
        series.extend(node(&instance, &mut rng));
        if with_histograms {
            series.extend(histogram(&instance, hists.len()));
            hists.push(Histogram::default());
        }
    }
    let per_node = series.len() / nodes.max(1) as usize;
    let steps = hours * 3600 * 1000 / STEP_MS;
    let dir = tempfile::tempdir()?;
    let data = std::env::var_os("VIGIE_BENCH_DATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.path().to_path_buf());
    let storage = Storage::open(&data, 3)?;
    // Compaction runs once at the end, so both figures can be read.
    storage.set_auto_compact(false);
    let mut om = None;
    let mut prom = None;
    if let Some(d) = &export {
        std::fs::create_dir_all(d)?;
        om = Some(std::io::BufWriter::new(std::fs::File::create(
            d.join("node.om"),
        )?));
        prom = Some(std::io::BufWriter::new(std::fs::File::create(
            d.join("node.prom"),
        )?));
    }
    let started = std::time::Instant::now();
    let mut line = String::new();
    let mut total = 0u64;
    // One more scrape after the day, the first of the next, closes the
    // last window.
    for step in 0..=steps {
        let ts = START_MS + step * STEP_MS;
        for h in &mut hists {
            h.step(&mut hist_rng);
        }
        let mut samples = Vec::with_capacity(series.len());
        for s in &mut series {
            let v = s.step(ts, &mut rng, &hists);
            if let (Some(om), Some(prom)) = (&mut om, &mut prom) {
                line.clear();
                exposition(&mut line, s, v);
                writeln!(om, "{line} {}.{:03}", ts / 1000, ts % 1000)?;
                writeln!(prom, "{line} {ts}")?;
            }
            samples.push(Sample::new(&s.name, s.labels.clone(), ts, v));
        }
        total += samples.len() as u64;
        // One batch per node, as one scrape per target arrives.
        for chunk in samples.chunks(per_node) {
            storage.append(samples_to_batch(chunk)?);
        }
        if (step + 1) % FLUSH_EVERY == 0 || step == steps {
            storage.flush()?;
        }
    }
    if let Some(mut om) = om {
        writeln!(om, "# EOF")?;
        om.flush()?;
    }
    if let Some(mut prom) = prom {
        prom.flush()?;
    }
    // Samples files plus the series table (labels, once per series).
    let flushed = files_bytes(&storage.files()) + series_bytes(&data);
    println!(
        "{} series x {} h at 15 s = {total} samples, generated and flushed in {:.1} s",
        series.len(),
        hours,
        started.elapsed().as_secs_f64()
    );
    println!(
        "flushed every 60 s: {} files, {flushed} bytes, {:.3} bytes/sample",
        storage.files().len(),
        flushed as f64 / total as f64
    );
    let started = std::time::Instant::now();
    storage.compact()?;
    let compacted = files_bytes(&storage.files()) + series_bytes(&data);
    println!(
        "compacted per 2 h window in {:.1} s: {} files, {compacted} bytes, {:.3} bytes/sample \
         (series table {} bytes)",
        started.elapsed().as_secs_f64(),
        storage.files().len(),
        compacted as f64 / total as f64,
        series_bytes(&data)
    );
    Ok(())
}
