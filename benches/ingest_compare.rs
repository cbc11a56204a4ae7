//! Text exposition ingest throughput, stage by stage, on node_exporter-like
//! series (`ingest/benches/common/node.rs`), for `scripts/ingest-compare`,
//! which imports the same text into VictoriaMetrics and prints the ratio.
//!
//! `cargo bench -p vigie --bench ingest_compare` (pin it with `taskset -c 0`
//! for a per-core figure). Each stage is timed over every round, 3 passes,
//! and the median pass is printed as samples/s:
//!
//! - `parse+batch`: exposition text → samples → Arrow batch (what a
//!   collector does per scrape before publishing);
//! - `+ipc`: and encode the batch as the bus payload (Arrow IPC);
//! - `+head`: and, as the analyzer does, decode the payload, check its
//!   schema, drop duplicates/out-of-order samples per series (watermarks)
//!   and append the batch to the storage head, where queries see it. This
//!   is the closest to what VictoriaMetrics' import does (parse, then write
//!   into its storage); it leaves out anomaly scoring.
//!
//! Environment: `VIGIE_BENCH_NODES` (default 50 nodes × 210 series),
//! `VIGIE_BENCH_ROUNDS` (default 200 scrapes, 15 s apart, every line with
//! its timestamp as `/api/v1/import/prometheus` takes it), and
//! `VIGIE_BENCH_EXPORT=DIR` to write the same text as `DIR/import.NNNN.prom`
//! (10 rounds a file) and one round without timestamps as
//! `DIR/target.prom` (a scrape target for `scripts/kafka-bench`; with
//! `VIGIE_BENCH_ROUNDS=0`, only that).

use std::path::Path;
use std::time::{Duration, Instant};

use vigie_analyzer::dedup::Watermarks;
use vigie_analyzer::storage::Storage;
use vigie_ingest::exposition;
use vigie_model::codec;
use vigie_model::schema::{check_metrics_batch, samples_to_batch};

#[path = "../ingest/benches/common/node.rs"]
mod node;

/// The allocator of the `vigie` binary, so the figures are the binary's.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// 2026-01-01T00:00:00Z.
const START_MS: i64 = 1_767_225_600_000;
const STEP_MS: i64 = 15_000;
const ROUNDS_PER_FILE: usize = 10;
const PASSES: usize = 3;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `stage` over every round `PASSES` times; the median pass.
fn median_pass(mut pass: impl FnMut() -> usize) -> (Duration, usize) {
    let mut runs: Vec<(Duration, usize)> = (0..PASSES)
        .map(|_| {
            let start = Instant::now();
            let n = pass();
            (start.elapsed(), n)
        })
        .collect();
    runs.sort();
    runs[PASSES / 2]
}

fn report(stage: &str, (took, samples): (Duration, usize)) {
    println!(
        "vigie {stage}: {samples} samples in {:.3} s = {:.0} samples/s",
        took.as_secs_f64(),
        samples as f64 / took.as_secs_f64()
    );
}

fn export(dir: &Path, series: &[node::NodeSeries], texts: &[String]) {
    std::fs::create_dir_all(dir).expect("export dir");
    for (i, chunk) in texts.chunks(ROUNDS_PER_FILE).enumerate() {
        std::fs::write(dir.join(format!("import.{i:04}.prom")), chunk.concat())
            .expect("write import file");
    }
    std::fs::write(dir.join("target.prom"), node::exposition(series, 0, None))
        .expect("write target file");
}

fn main() {
    let nodes = env_usize("VIGIE_BENCH_NODES", 50);
    let rounds = env_usize("VIGIE_BENCH_ROUNDS", 200);
    let series = node::series(nodes);
    let texts: Vec<String> = (0..rounds)
        .map(|r| node::exposition(&series, r as u64, Some(START_MS + r as i64 * STEP_MS)))
        .collect();
    let total = series.len() * rounds;
    let bytes: usize = texts.iter().map(String::len).sum();
    println!(
        "payload: {} series × {rounds} rounds = {total} samples, {bytes} bytes of text",
        series.len()
    );
    if let Some(dir) = std::env::var_os("VIGIE_BENCH_EXPORT") {
        export(Path::new(&dir), &series, &texts);
    }
    if rounds == 0 {
        return; // VIGIE_BENCH_ROUNDS=0: export the scrape target only.
    }

    let parse_batch = |text: &str| {
        let samples = exposition::parse(text, 0).expect("valid exposition");
        samples_to_batch(&samples).expect("batch")
    };
    report(
        "parse+batch",
        median_pass(|| texts.iter().map(|t| parse_batch(t).num_rows()).sum()),
    );
    report(
        "parse+batch+ipc",
        median_pass(|| {
            texts
                .iter()
                .map(|t| {
                    let batch = parse_batch(t);
                    codec::encode_batch(&batch).expect("encode").len();
                    batch.num_rows()
                })
                .sum()
        }),
    );
    report(
        "parse+batch+ipc+head",
        median_pass(|| {
            let dir = tempfile::tempdir().expect("tempdir");
            let storage = Storage::open(dir.path(), 3).expect("storage");
            let watermarks = Watermarks::new();
            for t in &texts {
                let payload = codec::encode_batch(&parse_batch(t)).expect("encode");
                let batch = codec::decode_batch(&payload).expect("decode");
                check_metrics_batch(&batch).expect("metrics batch");
                if let Some(batch) = watermarks.admit(&batch).expect("admit") {
                    storage.append(batch);
                }
            }
            let stored = storage.head_rows();
            assert_eq!(stored, total, "every sample reaches the head");
            stored
        }),
    );
}
