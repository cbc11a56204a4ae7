//! Anomaly scoring hot path: (a) one `RobustZ` detector (window 120, the
//! default) fed a noisy sine, in points/s; (b) `ScoreBank::score` on a
//! 10k-sample batch spread over 1k series (10 points each, windows full),
//! in samples/s; (c) the live ensemble (`Ensemble::update`, every model)
//! over 100,000 series past their warm-up, one point per series per
//! round, in points/s, printing the memory each series holds (resident
//! set growth and checkpoint size per series); (d) `ScoreBank::score`
//! over the same 100,000 series, one sample each per batch.

// `criterion_main!` generates an undocumented `main`.
#![allow(missing_docs)]
use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use vigie_analyzer::detect::{Detector, Ensemble, EnsembleConfig, RobustZ};
use vigie_analyzer::forecast::ForecastConfig;
use vigie_analyzer::score::ScoreBank;
use vigie_model::{Labels, Sample};

/// The allocator of the `vigie` binary, so the figures are the binary's.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const WINDOW: usize = 120;
const MIN_POINTS: usize = 10;
const STEP_MS: i64 = 15_000;

/// Deterministic uniform noise in [-0.5, 0.5) (xorshift64*), no `rand` needed.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (x >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    }
}

/// A sine of period 240 points, amplitude 10 around 50, plus noise of ±1.
fn noisy_sine(n: usize, seed: u64) -> Vec<f64> {
    let mut noise = Noise(seed | 1);
    (0..n)
        .map(|i| {
            50.0 + 10.0 * (i as f64 * std::f64::consts::TAU / 240.0).sin() + 2.0 * noise.next()
        })
        .collect()
}

fn robust_z(c: &mut Criterion) {
    const POINTS: usize = 10_000;
    let values = noisy_sine(POINTS, 42);
    let mut detector = RobustZ::new(WINDOW, MIN_POINTS);
    let mut ts = 0i64;
    // Fill the window so every measured point is scored.
    for v in &values[..WINDOW] {
        ts += STEP_MS;
        detector.update(ts, *v);
    }
    let mut group = c.benchmark_group("robust_z");
    group.throughput(Throughput::Elements(POINTS as u64));
    group.bench_function("update_window120_noisy_sine", |b| {
        b.iter(|| {
            for v in &values {
                ts += STEP_MS;
                black_box(detector.update(ts, black_box(*v)));
            }
        })
    });
    group.finish();
}

/// `series × per_series` samples, series-interleaved, starting at `start_ms`.
fn batch(series: usize, per_series: usize, start_ms: i64, values: &[f64]) -> Vec<Sample> {
    let mut out = Vec::with_capacity(series * per_series);
    for p in 0..per_series {
        let ts = start_ms + p as i64 * STEP_MS;
        for s in 0..series {
            let labels = Labels::new()
                .with("instance", format!("host-{:03}:9100", s % 100))
                .with("job", "node")
                .with("cpu", (s / 100).to_string());
            let value = values[(s * 7 + p) % values.len()];
            out.push(Sample::new("node_bench_gauge", labels, ts, value));
        }
    }
    out
}

fn score_bank(c: &mut Criterion) {
    score_bank_with(c, "score_10k_samples_1k_series", None);
    score_bank_with(
        c,
        "score_and_forecast_10k_samples_1k_series",
        Some(ForecastConfig::default()),
    );
}

/// The live path: `ScoreBank::score`, with the forecasters when `forecast`
/// is given.
fn score_bank_with(c: &mut Criterion, name: &str, forecast: Option<ForecastConfig>) {
    const SERIES: usize = 1_000;
    const PER_SERIES: usize = 10;
    let values = noisy_sine(4_096, 7);
    let template = batch(SERIES, PER_SERIES, 0, &values);
    let batch_span_ms = PER_SERIES as i64 * STEP_MS;
    let mut bank = ScoreBank::new(WINDOW, MIN_POINTS);
    if let Some(f) = forecast {
        bank = bank.with_forecast(f);
    }
    // Warm up: enough batches that every window is full.
    let mut offset = 0i64;
    for _ in 0..(WINDOW / PER_SERIES + 1) {
        let shifted: Vec<Sample> = template
            .iter()
            .map(|s| Sample {
                ts_ms: s.ts_ms + offset,
                ..s.clone()
            })
            .collect();
        bank.score(&shifted);
        offset += batch_span_ms;
    }
    assert_eq!(bank.len(), SERIES);
    let mut group = c.benchmark_group("score_bank");
    group.throughput(Throughput::Elements(template.len() as u64));
    group.bench_function(name, |b| {
        b.iter_batched(
            || {
                // Untimed: the next batch, later in time than the last one.
                let shifted: Vec<Sample> = template
                    .iter()
                    .map(|s| Sample {
                        ts_ms: s.ts_ms + offset,
                        ..s.clone()
                    })
                    .collect();
                offset += batch_span_ms;
                shifted
            },
            |samples| bank.score(black_box(&samples)),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

/// Resident set size of this process, from `/proc/self/statm`.
fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// The whole live ensemble over 100,000 series, as the analyzer holds them.
fn ensemble_100k(c: &mut Criterion) {
    const SERIES: usize = 100_000;
    // Past Holt-Winters' warm-up (600 points) and the likelihood's
    // learning, so every model scores.
    const WARM: usize = 700;
    let values = noisy_sine(4_096, 11);
    let rss_before = rss_bytes();
    // One configuration shared by every series, as `ScoreBank` holds them.
    let config = std::sync::Arc::new(EnsembleConfig::live(WINDOW, MIN_POINTS));
    let mut detectors: Vec<Ensemble> = (0..SERIES)
        .map(|_| Ensemble::new(std::sync::Arc::clone(&config)))
        .collect();
    for (s, d) in detectors.iter_mut().enumerate() {
        for p in 0..WARM {
            d.update((p as i64 + 1) * STEP_MS, values[(s * 7 + p) % values.len()]);
        }
    }
    let held = rss_bytes().saturating_sub(rss_before);
    let checkpoint: usize = detectors
        .iter()
        .take(1_000)
        .map(|d| {
            let mut buf = Vec::new();
            ciborium::into_writer(d, &mut buf).map_or(0, |()| buf.len())
        })
        .sum();
    eprintln!(
        "ensemble_100k: {} bytes resident per series, {} bytes of checkpoint per series",
        held / SERIES,
        checkpoint / 1_000
    );
    let mut point = WARM;
    let mut group = c.benchmark_group("ensemble");
    group.throughput(Throughput::Elements(SERIES as u64));
    group.sample_size(10);
    group.bench_function("update_100k_series_one_point_each", |b| {
        b.iter(|| {
            point += 1;
            let ts = point as i64 * STEP_MS;
            for (s, d) in detectors.iter_mut().enumerate() {
                black_box(d.update(ts, values[(s * 7 + point) % values.len()]));
            }
        })
    });
    // The same, loading the state of the series two ahead while updating
    // this one, as `ScoreBank::score` does.
    group.bench_function("update_100k_series_one_point_each_prefetch_next", |b| {
        b.iter(|| {
            point += 1;
            let ts = point as i64 * STEP_MS;
            for s in 0..detectors.len() {
                if let Some(next) = detectors.get(s + PREFETCH_AHEAD) {
                    next.prefetch();
                }
                let value = values[(s * 7 + point) % values.len()];
                black_box(detectors[s].update(ts, value));
            }
        })
    });
    group.finish();
}

/// How many series ahead the pipelined loop loads state (as `ScoreBank`).
const PREFETCH_AHEAD: usize = 2;

/// The live path over 100,000 series: `ScoreBank::score` (and
/// `score_with_ids`, as the pipeline calls it) on batches of
/// one sample per series (a scrape round), detectors past their warm-up,
/// forecasters off. Each round first moves the batch's timestamps and
/// values on in place (100,000 additions, timed with the rest).
fn score_bank_100k(c: &mut Criterion) {
    const SERIES: usize = 100_000;
    const WARM: usize = 700;
    let values = noisy_sine(4_096, 13);
    let mut batch = batch(SERIES, 1, 0, &values);
    let mut bank = ScoreBank::new(WINDOW, MIN_POINTS);
    let mut point = 0;
    let mut next_round = |batch: &mut Vec<Sample>| {
        point += 1;
        for (s, sample) in batch.iter_mut().enumerate() {
            sample.ts_ms = point as i64 * STEP_MS;
            sample.value = values[(s * 7 + point) % values.len()];
        }
    };
    for _ in 0..WARM {
        next_round(&mut batch);
        bank.score(&batch);
    }
    assert_eq!(bank.len(), SERIES);
    let mut group = c.benchmark_group("score_bank");
    group.throughput(Throughput::Elements(SERIES as u64));
    group.sample_size(10);
    group.bench_function("score_100k_series_one_sample_each", |b| {
        b.iter(|| {
            next_round(&mut batch);
            black_box(bank.score(black_box(&batch)))
        })
    });
    // As the pipeline calls it: the batch's `series_id` column names each
    // sample's series, so labels are not hashed.
    let ids: Vec<u64> = batch.iter().map(|s| s.series.id()).collect();
    group.bench_function("score_100k_series_known_ids", |b| {
        b.iter(|| {
            next_round(&mut batch);
            black_box(bank.score_with_ids(black_box(&batch), &ids))
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    robust_z,
    score_bank,
    ensemble_100k,
    score_bank_100k
);
criterion_main!(benches);
