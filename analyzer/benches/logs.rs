//! Log template miner throughput: lines/s through `TemplateMiner::add`
//! (masking + matching) over the messages of Loghub's HDFS and Android 2k
//! samples (`../shared/data/loghub`, or `$VIGIE_SHARED_DATA/loghub`), one
//! fresh miner per pass. Skipped with a message when the data is missing.

// `criterion_main!` generates an undocumented `main`.
#![allow(missing_docs)]
use std::hint::black_box;
use std::path::PathBuf;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use vigie_analyzer::eval::loghub::DEFAULT_FORMATS;
use vigie_analyzer::logs::{HeaderFormat, MinerConfig, TemplateMiner};

fn data_dir() -> PathBuf {
    match std::env::var_os("VIGIE_SHARED_DATA") {
        Some(dir) => PathBuf::from(dir).join("loghub"),
        None => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/data/loghub"
        )),
    }
}

/// The messages (header stripped) of `system`'s 2k sample, if present.
fn messages(system: &str) -> Option<Vec<String>> {
    let path = data_dir().join(system).join(format!("{system}_2k.log"));
    let text = std::fs::read_to_string(&path).ok()?;
    let (_, format) = DEFAULT_FORMATS.iter().find(|(s, _)| *s == system)?;
    let format = HeaderFormat::new(format).ok()?;
    Some(
        text.lines()
            .map(|l| {
                format
                    .split(l)
                    .map_or_else(|| l.to_string(), |s| s.content.to_string())
            })
            .collect(),
    )
}

fn bench_miner(c: &mut Criterion) {
    for system in ["HDFS", "Android"] {
        let Some(lines) = messages(system) else {
            eprintln!(
                "SKIPPED logs/{system}: no Loghub data under {} (set VIGIE_SHARED_DATA)",
                data_dir().display()
            );
            continue;
        };
        let mut group = c.benchmark_group("logs");
        group.throughput(Throughput::Elements(lines.len() as u64));
        group.bench_function(format!("miner_add_{system}"), |b| {
            b.iter_batched(
                || TemplateMiner::new(MinerConfig::default()),
                |mut miner| {
                    for line in &lines {
                        black_box(miner.add(line));
                    }
                    miner
                },
                BatchSize::SmallInput,
            );
        });
        group.finish();
    }
}

criterion_group!(benches, bench_miner);
criterion_main!(benches);
