//! Storage on a real S3-compatible server (moto's `moto_server`, started
//! here on 127.0.0.1): one Storage writes samples to `s3://bucket/prefix`
//! (flush, compaction, retention), a second one opened on the same store
//! with `refresh_interval` sees them through SQL and PromQL, never doubled
//! while a compaction replaces files.
//!
//! `moto_server`: see `tests/common/moto.rs`.

#[path = "../../tests/common/moto.rs"]
mod moto;

use std::sync::Arc;
use std::time::{Duration, Instant};

use moto::Moto;
use vigie_analyzer::promql::{Engine, Value};
use vigie_analyzer::storage::{Storage, StorageConfig};
use vigie_model::schema::samples_to_batch;
use vigie_model::{Labels, Sample};

const H: i64 = 3600 * 1000;

fn config(moto: &Moto, secret: &std::path::Path, refresh: Duration) -> StorageConfig {
    StorageConfig {
        url: format!("s3://{}/vigie/prod", moto.bucket),
        endpoint: moto.endpoint(),
        region: "us-east-1".into(),
        access_key_id: "testing".into(),
        secret_access_key_file: Some(secret.to_path_buf()),
        allow_http: true,
        refresh_interval: refresh,
        ..StorageConfig::default()
    }
}

/// 30 min of 15 s samples of counter `req_total` of jobs a and b from
/// `from`.
fn window(from: i64) -> datafusion::arrow::array::RecordBatch {
    let samples: Vec<Sample> = (0..120)
        .flat_map(|i| {
            ["a", "b"].map(|job| {
                Sample::new(
                    "req_total",
                    Labels::new().with("job", job),
                    from + i * 15_000,
                    // A counter growing by 10 a step, across windows.
                    ((from / 15_000 + i) * 10) as f64,
                )
            })
        })
        .collect();
    samples_to_batch(&samples).expect("batch")
}

async fn count(storage: &Arc<Storage>, sql: &str) -> i64 {
    let out = storage.sql(sql).await.expect("query");
    out[0]
        .column(0)
        .as_any()
        .downcast_ref::<datafusion::arrow::array::Int64Array>()
        .expect("count")
        .value(0)
}

/// Waits until `reader` serves `files` files, checking on the way that
/// it never serves more than `rows` rows.
async fn wait_for(reader: &Arc<Storage>, files: usize, rows: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n = count(reader, "SELECT count(*) FROM samples").await;
        assert!(n <= rows, "{n} rows served, {rows} stored: rows doubled");
        if reader.files().len() == files && n == rows {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the reader serves {} files and {n} rows, {files} files and {rows} rows expected",
            reader.files().len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_reads_what_one_writes_to_s3() {
    let moto = Moto::start("vigie-test").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "testing\n").expect("secret");
    let writer_config = config(&moto, &secret, Duration::ZERO);
    assert!(
        writer_config.problems().is_empty(),
        "{:?}",
        writer_config.problems()
    );
    let writer = Storage::open_with(&writer_config, &dir.path().join("w"), 3).expect("writer");
    writer.set_auto_compact(false);
    let reader = Arc::new(
        Storage::open_with(
            &config(&moto, &secret, Duration::from_millis(100)),
            &dir.path().join("r"),
            3,
        )
        .expect("reader"),
    );
    assert_eq!(count(&reader, "SELECT count(*) FROM samples").await, 0);

    // Four flushes: three in the 0 h window, one at 2 h closing it.
    for from in [0, 30 * 60_000, 60 * 60_000, 2 * H] {
        writer.append(window(from));
        writer.flush().expect("flush to S3");
    }
    assert!(
        !dir.path().join("w").join("samples").exists(),
        "nothing written to the local data dir"
    );
    wait_for(&reader, 4, 4 * 240).await;
    assert_eq!(
        count(
            &reader,
            "SELECT count(*) FROM samples WHERE labels['job'] = 'b' AND metric = 'req_total'"
        )
        .await,
        4 * 120
    );

    // PromQL on the reader: both series, the rate of +10 per 15 s.
    let r = Engine::default()
        .instant(reader.as_ref(), "rate(req_total[5m])", H)
        .await
        .expect("promql");
    let Value::Vector(v) = r.value else {
        panic!("vector expected, got {:?}", r.value);
    };
    assert_eq!(v.len(), 2, "{v:?}");
    for s in &v {
        assert!((s.v - 10.0 / 15.0).abs() < 1e-9, "{s:?}");
    }

    // The writer compacts the closed window; the reader sees one file for
    // three and never a doubled row, before or after the inputs go.
    assert_eq!(writer.compact().expect("compact"), 1);
    wait_for(&reader, 2, 4 * 240).await;
    writer
        .apply_retention(0, Duration::ZERO, 0)
        .expect("retention");
    tokio::time::sleep(Duration::from_millis(300)).await;
    wait_for(&reader, 2, 4 * 240).await;

    // The objects are in the bucket, under the URL's prefix.
    let keys = moto.keys("vigie/prod/samples/").await;
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().any(|k| k.ends_with("-c.parquet")), "{keys:?}");
    assert!(!moto.keys("vigie/prod/series/").await.is_empty());

    // A store opened afterwards (a restart) finds the same data.
    let again =
        Arc::new(Storage::open_with(&writer_config, &dir.path().join("w"), 3).expect("reopen"));
    assert_eq!(again.files().len(), 2);
    assert!(
        again
            .files()
            .iter()
            .all(|f| f.starts_with("vigie/prod/samples/")),
        "{:?}",
        again.files()
    );
    assert_eq!(count(&again, "SELECT count(*) FROM samples").await, 4 * 240);
}
