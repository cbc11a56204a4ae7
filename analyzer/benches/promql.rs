//! PromQL query latency over a stored data dir, stage by stage.
//!
//! Opens the data dir `VIGIE_BENCH_DATA` (e.g. the one
//! `scripts/query-compare` keeps in `WORKDIR/vigie`, made by the storage
//! bench) and runs `scripts/query-compare`'s dashboard queries through
//! [`Engine`] directly, without HTTP: each as an instant query at the
//! data's end and as range queries over the last 6 h and 24 h at a 60 s
//! step. Prints, per query and mode, the median over the runs of the
//! whole evaluation and of the part spent selecting series from storage
//! (the rest is the evaluator).
//!
//! `VIGIE_BENCH_DATA=/var/tmp/qc2/vigie cargo bench -p vigie-analyzer --bench promql`
//!
//! Environment: `VIGIE_BENCH_END` (Unix seconds of the data's end;
//! default 2026-01-02T00:00:00Z, where the storage bench's 24 h end),
//! `VIGIE_BENCH_RUNS` (default 10), `VIGIE_BENCH_ONLY` (run only the
//! queries whose short name contains it), `VIGIE_BENCH_DUMP=FILE` (write
//! every answer as text, to compare two versions' answers exactly).

use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use promql_parser::label::Matchers;
use vigie_analyzer::AnalyzerError;
use vigie_analyzer::promql::{Engine, Queryable, Selected, Value};
use vigie_analyzer::storage::Storage;

/// `scripts/lib/query_compare.py`'s queries: (short name, PromQL).
const QUERIES: &[(&str, &str)] = &[
    (
        "cpu_busy",
        r#"sum by (instance) (rate(node_cpu_seconds_total{mode!="idle"}[5m]))"#,
    ),
    (
        "net_rx",
        "sum by (instance) (rate(node_network_receive_bytes_total[5m]))",
    ),
    (
        "p90",
        "histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
    ),
    (
        "p99_inst",
        "histogram_quantile(0.99, sum by (instance, le) (rate(http_request_duration_seconds_bucket[5m])))",
    ),
    (
        "topk_tx",
        "topk(5, rate(node_network_transmit_bytes_total[5m]))",
    ),
    ("load1_avg", "avg by (instance) (node_load1)"),
    (
        "fs_avail",
        "node_filesystem_avail_bytes / node_filesystem_size_bytes",
    ),
    (
        "mem_used",
        "1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes",
    ),
    (
        "req_rate",
        "sum by (instance) (rate(http_request_duration_seconds_count[5m]))",
    ),
    (
        "disk_w_max",
        "max by (instance) (rate(node_disk_written_bytes_total[5m]))",
    ),
];

const STEP_MS: i64 = 60_000;

/// A [`Queryable`] adding up the time its selections take.
struct Timed<'a> {
    inner: &'a Storage,
    spent: Mutex<Duration>,
}

#[async_trait]
impl Queryable for Timed<'_> {
    async fn select(
        &self,
        matchers: &Matchers,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Selected, AnalyzerError> {
        let t0 = Instant::now();
        let r = self.inner.select(matchers, start_ms, end_ms).await;
        *self.spent.lock().unwrap_or_else(|e| e.into_inner()) += t0.elapsed();
        r
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The answer as text, exactly (values by their bits).
fn dump(out: &mut String, name: &str, mode: &str, value: &Value) {
    let _ = writeln!(out, "# {name} {mode}");
    let mut line = |metric: &dyn std::fmt::Debug, points: &mut dyn Iterator<Item = (i64, f64)>| {
        let _ = write!(out, "{metric:?}");
        for (t, v) in points {
            let _ = write!(out, " {t}:{:x}", v.to_bits());
        }
        out.push('\n');
    };
    match value {
        Value::Scalar(v) => line(&"scalar", &mut std::iter::once((0, *v))),
        Value::String(s) => line(s, &mut std::iter::empty()),
        Value::Vector(v) => {
            for s in v {
                line(&s.metric, &mut std::iter::once((s.t, s.v)));
            }
        }
        Value::Matrix(m) => {
            for s in m {
                line(&s.metric, &mut s.points.iter().copied());
            }
        }
    }
}

fn main() {
    let Ok(dir) = std::env::var("VIGIE_BENCH_DATA") else {
        eprintln!(
            "set VIGIE_BENCH_DATA to a data dir (e.g. scripts/query-compare's WORKDIR/vigie)"
        );
        return;
    };
    let end_ms = env_or("VIGIE_BENCH_END", 1_767_312_000i64) * 1000;
    let runs: usize = env_or("VIGIE_BENCH_RUNS", 10usize).max(1);
    let only = std::env::var("VIGIE_BENCH_ONLY").unwrap_or_default();
    let dump_to = std::env::var("VIGIE_BENCH_DUMP").ok();
    let storage = Storage::open(std::path::Path::new(&dir), 3).expect("open the data dir");
    storage.set_auto_compact(false);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let engine = Engine::default();
    let timed = Timed {
        inner: &storage,
        spent: Mutex::new(Duration::ZERO),
    };
    let mut answers = String::new();
    let mut totals: Vec<(&str, Vec<f64>)> = Vec::new();
    println!(
        "{:<10} {:<10} {:>9} {:>9} {:>9}",
        "query", "mode", "total ms", "select", "eval"
    );
    for (mode, span) in [
        ("instant", None),
        ("range 6h", Some(6 * 3_600_000)),
        ("range 24h", Some(24 * 3_600_000)),
    ] {
        let mut medians = Vec::new();
        for (name, query) in QUERIES.iter().filter(|q| q.0.contains(&only)) {
            let run = || {
                rt.block_on(async {
                    match span {
                        None => engine.instant(&timed, query, end_ms).await,
                        Some(s) => {
                            engine
                                .range(&timed, query, end_ms - s, end_ms, STEP_MS)
                                .await
                        }
                    }
                })
                .expect("query")
            };
            // Warm-up (reads the file indexes), kept for the dump.
            let first = run();
            if dump_to.is_some() {
                dump(&mut answers, name, mode, &first.value);
            }
            let (mut total, mut select) = (Vec::new(), Vec::new());
            for _ in 0..runs {
                *timed.spent.lock().expect("lock") = Duration::ZERO;
                let t0 = Instant::now();
                std::hint::black_box(run());
                total.push(t0.elapsed().as_secs_f64() * 1e3);
                select.push(timed.spent.lock().expect("lock").as_secs_f64() * 1e3);
            }
            let (t, s) = (median(total), median(select));
            println!(
                "{name:<10} {mode:<10} {t:>9.2} {s:>9.2} {:>9.2}",
                (t - s).max(0.0)
            );
            medians.push(t);
        }
        totals.push((mode, medians));
    }
    println!("median over the queries of each query's median (ms):");
    for (mode, medians) in totals {
        if !medians.is_empty() {
            println!("  {mode:<10}: {:.2}", median(medians));
        }
    }
    if let Some(path) = dump_to {
        std::fs::write(&path, answers).expect("write the dump");
        println!("answers written to {path}");
    }
}
