//! Log template miner throughput: lines/s through `TemplateMiner::add`
//! (masking + matching) over the messages of every Loghub 2k sample with a
//! built-in header format (`../shared/data/loghub`, or
//! `$VIGIE_SHARED_DATA/loghub`): `miner_add_<System>` with one fresh miner
//! per pass (template creation included), `miner_warm_<System>` with a miner
//! that has seen the sample (the steady state of a stream). A system whose data
//! is missing is skipped with a message. `cargo bench -p vigie-analyzer
//! --bench logs -- HDFS` runs one system.

// `criterion_main!` generates an undocumented `main`.
#![allow(missing_docs)]
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

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
    for (system, _) in DEFAULT_FORMATS {
        let Some(lines) = messages(system) else {
            eprintln!(
                "SKIPPED logs/{system}: no Loghub data under {} (set VIGIE_SHARED_DATA)",
                data_dir().display()
            );
            continue;
        };
        let mut group = c.benchmark_group("logs");
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(3));
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
        let mut warm = TemplateMiner::new(MinerConfig::default());
        for line in &lines {
            warm.add(line);
        }
        group.bench_function(format!("miner_warm_{system}"), |b| {
            b.iter(|| {
                for line in &lines {
                    black_box(warm.add(line));
                }
            });
        });
        group.finish();
    }
}

criterion_group!(benches, bench_miner);
criterion_main!(benches);
