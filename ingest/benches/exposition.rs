//! Exposition text → Arrow batch: the scrape hot path (parse +
//! `samples_to_batch`), on a 10k-line body with labels and a histogram.

// `criterion_main!` generates an undocumented `main`.
#![allow(missing_docs)]
use std::fmt::Write;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vigie_ingest::exposition;
use vigie_model::schema::samples_to_batch;

fn body(lines: usize) -> (String, usize) {
    let mut text =
        String::from("# HELP http_requests_total Requests.\n# TYPE http_requests_total counter\n");
    let mut samples = 0;
    let mut i = 0;
    while samples < lines {
        let _ = writeln!(
            text,
            "http_requests_total{{method=\"get\",path=\"/api/v1/item/{i}\",code=\"200\"}} {}",
            i * 7
        );
        samples += 1;
        i += 1;
    }
    text.push_str("# TYPE rpc_seconds histogram\n");
    for le in ["0.005", "0.01", "0.1", "1", "+Inf"] {
        let _ = writeln!(text, "rpc_seconds_bucket{{le=\"{le}\"}} 42");
        samples += 1;
    }
    text.push_str("rpc_seconds_sum 1.5\nrpc_seconds_count 42\n");
    (text, samples + 2)
}

fn bench(c: &mut Criterion) {
    let (text, samples) = body(10_000);
    let mut group = c.benchmark_group("exposition");
    group.throughput(Throughput::Elements(samples as u64));
    group.bench_function("parse_10k", |b| {
        b.iter(|| exposition::parse(black_box(&text), 0).expect("valid"))
    });
    group.bench_function("parse_to_batch_10k", |b| {
        b.iter(|| {
            let parsed = exposition::parse(black_box(&text), 0).expect("valid");
            samples_to_batch(&parsed).expect("batch")
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
