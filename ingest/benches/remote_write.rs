//! Remote-write → Arrow batch: decode (snappy + protobuf) and
//! `samples_to_batch` of a realistic request — 1,050 node_exporter-like
//! series (5 nodes) × 2 samples = 2,100 samples, about Prometheus' default
//! `max_samples_per_send` (2,000).
//!
//! `cargo bench -p vigie-ingest --bench remote_write`

// `criterion_main!` generates an undocumented `main`.
#![allow(missing_docs)]
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vigie_ingest::remote_write;
use vigie_model::schema::samples_to_batch;

#[path = "common/node.rs"]
mod node;

const START_MS: i64 = 1_767_225_600_000;

/// A remote-write body (snappy block format, protobuf `WriteRequest`) of
/// `series` with one sample per round of `rounds` (`(round, ts_ms)`), labels
/// sorted by name with `__name__` as Prometheus sends them.
fn write_request(series: &[node::NodeSeries], rounds: &[(u64, i64)]) -> Vec<u8> {
    use prost::Message as _;
    use vigie_ingest::remote_write::proto;
    let timeseries = series
        .iter()
        .map(|s| {
            let mut labels: Vec<proto::Label> = s
                .labels
                .iter()
                .map(|(k, v)| proto::Label {
                    name: (*k).to_string(),
                    value: v.clone(),
                })
                .collect();
            labels.push(proto::Label {
                name: "__name__".into(),
                value: s.name.into(),
            });
            labels.sort_by(|a, b| a.name.cmp(&b.name));
            proto::TimeSeries {
                labels,
                samples: rounds
                    .iter()
                    .map(|&(round, ts)| proto::Sample {
                        value: s.value(round),
                        timestamp: ts,
                    })
                    .collect(),
            }
        })
        .collect();
    let raw = proto::WriteRequest {
        timeseries,
        metadata: vec![],
    }
    .encode_to_vec();
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .expect("snappy compresses any input")
}

fn bench(c: &mut Criterion) {
    let series = node::series(5);
    let body = write_request(&series, &[(0, START_MS), (1, START_MS + 15_000)]);
    let samples = series.len() * 2;
    assert_eq!(
        remote_write::decode(&body).expect("valid").len(),
        samples,
        "every sample decodes"
    );
    let mut group = c.benchmark_group("remote_write");
    group.throughput(Throughput::Elements(samples as u64));
    group.bench_function("decode_2k", |b| {
        b.iter(|| remote_write::decode(black_box(&body)).expect("valid"))
    });
    group.bench_function("decode_to_batch_2k", |b| {
        b.iter(|| {
            let samples = remote_write::decode(black_box(&body)).expect("valid");
            samples_to_batch(&samples).expect("batch")
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
