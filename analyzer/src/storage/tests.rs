use super::*;
use vigie_model::schema::samples_to_batch;
use vigie_model::{Labels, Sample};

fn batch(job: &str, from: i64, n: i64) -> RecordBatch {
    let samples: Vec<Sample> = (0..n)
        .map(|i| Sample::new("m", Labels::new().with("job", job), from + i, i as f64))
        .collect();
    samples_to_batch(&samples).expect("batch")
}

async fn count(storage: &Arc<Storage>, q: &str) -> i64 {
    let out = storage.sql(q).await.expect("query");
    let col = out[0]
        .column(0)
        .as_any()
        .downcast_ref::<datafusion::arrow::array::Int64Array>()
        .expect("count column");
    col.value(0)
}

#[tokio::test]
async fn head_and_files_are_both_queryable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Arc::new(Storage::open(dir.path(), 3).expect("open"));
    storage.append(batch("a", 0, 10));
    let file = storage.flush().expect("flush").expect("a file");
    assert!(file.exists());
    storage.append(batch("b", 100, 5));
    assert_eq!(count(&storage, "SELECT count(*) FROM samples").await, 15);
    assert_eq!(
        count(
            &storage,
            "SELECT count(*) FROM samples WHERE labels['job'] = 'b'"
        )
        .await,
        5
    );
}

#[tokio::test]
async fn reopening_finds_flushed_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let storage = Storage::open(dir.path(), 3).expect("open");
        storage.append(batch("a", 0, 7));
        storage.flush().expect("flush");
    }
    std::fs::write(dir.path().join("samples/junk.parquet.tmp"), b"half").expect("write");
    let storage = Arc::new(Storage::open(dir.path(), 3).expect("reopen"));
    assert_eq!(storage.files().len(), 1);
    assert!(!dir.path().join("samples/junk.parquet.tmp").exists());
    assert_eq!(count(&storage, "SELECT count(*) FROM samples").await, 7);
}

#[tokio::test]
async fn flushed_file_is_sorted_by_series_then_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Arc::new(Storage::open(dir.path(), 3).expect("open"));
    storage.append(batch("b", 50, 3));
    storage.append(batch("a", 0, 3));
    storage.append(batch("b", 0, 3));
    storage.flush().expect("flush");
    let out = storage
        .sql("SELECT series_id, ts FROM samples_disk")
        .await
        .expect("query");
    let ids = out[0]
        .column(0)
        .as_any()
        .downcast_ref::<datafusion::arrow::array::UInt64Array>()
        .expect("ids");
    let ts = out[0]
        .column(1)
        .as_any()
        .downcast_ref::<TimestampMillisecondArray>()
        .expect("ts");
    for i in 1..out[0].num_rows() {
        assert!(
            (ids.value(i - 1), ts.value(i - 1)) <= (ids.value(i), ts.value(i)),
            "row {i} out of order"
        );
    }
}

#[tokio::test]
async fn writes_are_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Arc::new(Storage::open(dir.path(), 3).expect("open"));
    let err = storage
        .sql("CREATE TABLE x AS SELECT 1")
        .await
        .expect_err("DDL must be refused");
    assert!(err.is_user_error(), "{err}");
}
