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

/// The first value of the first column of `q`, a float.
async fn first_f64(storage: &Arc<Storage>, q: &str) -> f64 {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::Float64Type;
    let out = storage.sql(q).await.expect("query");
    out[0].column(0).as_primitive::<Float64Type>().value(0)
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

/// Hour `h` after the epoch, in ms.
const H: i64 = 3600 * 1000;

/// Four files, one per 2 h window (0 h, 2 h, 4 h, 6 h), 30 min of 15 s
/// samples of two series each.
fn four_windows(storage: &Storage) -> Vec<PathBuf> {
    storage.set_auto_compact(false);
    for w in 0..4 {
        let from = w * 2 * H;
        let samples: Vec<Sample> = (0..120)
            .flat_map(|i| {
                ["a", "b"].map(|job| {
                    Sample::new("m", Labels::new().with("job", job), from + i * 15_000, 1.0)
                })
            })
            .collect();
        storage.append(samples_to_batch(&samples).expect("batch"));
        storage.flush().expect("flush");
    }
    storage.files()
}

/// The text of an `EXPLAIN ANALYZE` result (its `plan` column).
async fn explain(storage: &Arc<Storage>, query: &str) -> String {
    let out = storage
        .sql(&format!("EXPLAIN ANALYZE {query}"))
        .await
        .expect("explain");
    let mut text = String::new();
    for b in &out {
        let plan = b
            .column_by_name("plan")
            .expect("plan column")
            .as_any()
            .downcast_ref::<datafusion::arrow::array::StringArray>()
            .expect("plan text");
        for i in 0..b.num_rows() {
            text.push_str(plan.value(i));
            text.push('\n');
        }
    }
    text
}

/// `name=<total> total → <matched> matched` from a plan's metrics.
fn pruning(plan: &str, name: &str) -> (u64, u64) {
    let at = plan
        .find(&format!("{name}="))
        .unwrap_or_else(|| panic!("no {name} in\n{plan}"));
    let rest = &plan[at + name.len() + 1..];
    let num = |s: &str| -> u64 {
        s.trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap_or_else(|_| panic!("number after {name} in\n{plan}"))
    };
    let total = num(rest);
    let matched_at = rest
        .find('→')
        .unwrap_or_else(|| panic!("{name}: no → in\n{plan}"));
    let matched = num(&rest[matched_at + '→'.len_utf8()..]);
    (total, matched)
}

#[tokio::test]
async fn time_range_predicates_prune_files_in_explain_analyze() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Arc::new(Storage::open(dir.path(), 3).expect("open"));
    assert_eq!(four_windows(&storage).len(), 4);
    // The same path as POST /api/v1/sql: Storage::sql.
    let plan = explain(
        &storage,
        "SELECT sum(value) FROM samples \
         WHERE ts BETWEEN '1970-01-01T04:00:00Z' AND '1970-01-01T04:10:00Z'",
    )
    .await;
    println!("{plan}");
    let (total, matched) = pruning(&plan, "files_ranges_pruned_statistics");
    assert_eq!(
        (total, matched),
        (4, 1),
        "three files outside the range\n{plan}"
    );
    // And the result is right: 10 min of two series at 15 s, both ends in.
    let out = storage
        .sql(
            "SELECT count(*) FROM samples \
             WHERE ts BETWEEN '1970-01-01T04:00:00Z' AND '1970-01-01T04:10:00Z'",
        )
        .await
        .expect("query");
    let n = out[0]
        .column(0)
        .as_any()
        .downcast_ref::<datafusion::arrow::array::Int64Array>()
        .expect("count")
        .value(0);
    assert_eq!(n, 2 * 41);
}

#[tokio::test]
async fn select_series_skips_files_outside_the_span_before_datafusion() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Arc::new(Storage::open(dir.path(), 3).expect("open"));
    let files = four_windows(&storage);
    // Garbage in the 0 h file: reading it would fail.
    std::fs::write(&files[0], b"not parquet").expect("write");
    let matchers = promql_parser::label::Matchers::new(vec![promql_parser::label::Matcher::new(
        promql_parser::label::MatchOp::Equal,
        "__name__",
        "m",
    )]);
    let selected = storage
        .select_series(&matchers, Some(4 * H), Some(6 * H + 60_000))
        .await
        .expect("the broken file is never opened");
    assert_eq!(selected.len(), 2);
    assert!(selected.iter().all(|(_, points)| points.len() == 120 + 5));
    storage
        .select_series(&matchers, Some(0), Some(H))
        .await
        .expect_err("a span over the broken file reads it");
}

#[test]
fn files_overlapping_reads_ranges_from_names() {
    let file = |key: String| DataFile {
        key: key.into(),
        size: 1,
    };
    let f = |a: i64, b: i64| file(format!("d/{a:015}-{b:015}-1.parquet"));
    let files = vec![f(0, 10), f(20, 30), file("d/other.parquet".into())];
    assert_eq!(
        files_overlapping(files.clone(), Some(11), Some(19)),
        vec![files[2].clone()]
    );
    assert_eq!(files_overlapping(files.clone(), Some(10), None), files);
    assert_eq!(
        files_overlapping(files.clone(), None, Some(5)),
        vec![files[0].clone(), files[2].clone()]
    );
}

/// The object keys under `prefix` of `store`.
async fn keys(store: &Arc<dyn ObjectStore>, prefix: &str) -> Vec<String> {
    use futures::TryStreamExt;
    let mut keys: Vec<String> = store
        .list(Some(&ObjPath::from(prefix)))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .expect("list");
    keys.sort();
    keys
}

#[tokio::test]
async fn flush_compaction_and_retention_work_on_any_object_store() {
    let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let storage = Arc::new(Storage::open_store(store.clone(), 3).expect("open"));
    let files = four_windows(&storage);
    assert_eq!(files.len(), 4);
    assert_eq!(keys(&store, "samples").await.len(), 4);
    assert!(
        files[0].starts_with("samples/"),
        "a remote file is named by its key: {files:?}"
    );
    storage.append(batch("c", 0, 3));
    assert_eq!(
        count(&storage, "SELECT count(*) FROM samples").await,
        4 * 240 + 3
    );
    assert_eq!(
        count(
            &storage,
            "SELECT count(*) FROM samples WHERE labels['job'] = 'b'"
        )
        .await,
        4 * 120
    );
    storage.flush().expect("flush");
    // The 0 h window now has two files: the compaction merges them.
    assert_eq!(storage.compact().expect("compact"), 1);
    assert_eq!(
        keys(&store, "samples").await.len(),
        6,
        "inputs kept until retention"
    );
    storage
        .apply_retention(0, std::time::Duration::ZERO, 0)
        .expect("retention");
    let left = keys(&store, "samples").await;
    assert_eq!(left.len(), 4, "{left:?}");
    assert!(left.iter().any(|k| k.ends_with("-c.parquet")), "{left:?}");
    assert_eq!(
        count(&storage, "SELECT count(*) FROM samples").await,
        4 * 240 + 3
    );
}

#[tokio::test]
async fn a_second_storage_on_the_same_store_sees_the_files() {
    let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let writer = Storage::open_store(store.clone(), 3).expect("open");
    writer.append(batch("a", 0, 10));
    writer.flush().expect("flush");
    let reader = Arc::new(Storage::open_store(store, 3).expect("open again"));
    assert_eq!(reader.files().len(), 1);
    assert_eq!(count(&reader, "SELECT count(*) FROM samples").await, 10);
}

/// The column names of the first samples file's Parquet schema.
fn file_columns(path: &std::path::Path) -> Vec<String> {
    let file = std::fs::File::open(path).expect("open");
    let builder =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).expect("pq");
    builder
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().to_string())
        .collect()
}

#[tokio::test]
async fn labels_live_in_the_series_table_not_in_samples_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Arc::new(Storage::open(dir.path(), 3).expect("open"));
    storage.append(batch("a", 0, 10));
    storage.append(batch("b", 0, 10));
    let file = storage.flush().expect("flush").expect("file");
    let cols = file_columns(&file);
    assert!(!cols.contains(&"labels".to_string()), "{cols:?}");
    assert!(cols.contains(&"series_id".to_string()), "{cols:?}");
    let series_files = std::fs::read_dir(dir.path().join("series"))
        .expect("series dir")
        .count();
    assert_eq!(series_files, 1);
    // A new series in the head is in `series` before any flush.
    storage.append(batch("c", 100, 3));
    assert_eq!(count(&storage, "SELECT count(*) FROM series").await, 3);
    assert_eq!(
        count(
            &storage,
            "SELECT count(*) FROM series WHERE metric = 'm' AND labels['job'] = 'c'"
        )
        .await,
        1
    );
    // `samples` still carries the labels, from the series table.
    assert_eq!(
        count(
            &storage,
            "SELECT count(*) FROM samples WHERE labels['job'] = 'b' AND metric = 'm'"
        )
        .await,
        10
    );
    // A second flush writes only the new series.
    storage.flush().expect("flush");
    assert_eq!(
        std::fs::read_dir(dir.path().join("series"))
            .expect("series dir")
            .count(),
        2
    );
    // Reopened: series come back from their files, for SQL and PromQL.
    drop(storage);
    let storage = Arc::new(Storage::open(dir.path(), 3).expect("reopen"));
    assert_eq!(count(&storage, "SELECT count(*) FROM series").await, 3);
    assert_eq!(
        count(
            &storage,
            "SELECT count(*) FROM samples WHERE labels['job'] = 'c'"
        )
        .await,
        3
    );
    let matchers = promql_parser::label::Matchers::new(vec![promql_parser::label::Matcher::new(
        promql_parser::label::MatchOp::Equal,
        "job",
        "b",
    )]);
    let selected = storage
        .select_series(&matchers, None, None)
        .await
        .expect("select");
    assert_eq!(selected.len(), 1);
    assert_eq!(selected[0].0.get("__name__").map(String::as_str), Some("m"));
    assert_eq!(selected[0].1.len(), 10);
}

#[tokio::test]
async fn files_with_labels_from_before_the_series_table_still_work_and_compact() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("samples")).expect("mkdir");
    // The oldest layout: the metrics schema as is (labels, plain values).
    let old = dir
        .path()
        .join("samples/000000000000000-000000000000009-1.parquet");
    let mut writer = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&old).expect("create"),
        metrics_schema(),
        None,
    )
    .expect("writer");
    writer.write(&batch("old", 0, 10)).expect("write");
    writer.close().expect("close");
    let storage = Arc::new(Storage::open(dir.path(), 3).expect("open"));
    storage.set_auto_compact(false);
    assert_eq!(
        count(
            &storage,
            "SELECT count(*) FROM samples WHERE labels['job'] = 'old'"
        )
        .await,
        10
    );
    let matchers = promql_parser::label::Matchers::new(vec![promql_parser::label::Matcher::new(
        promql_parser::label::MatchOp::Equal,
        "job",
        "old",
    )]);
    let selected = storage
        .select_series(&matchers, None, None)
        .await
        .expect("select");
    assert_eq!(selected.len(), 1);
    // Compacted with a new file of the same window: labels move to the
    // series table, the output holds none.
    storage.append(batch("new", 20, 10));
    storage.flush().expect("flush");
    storage.append(batch("new", 3 * 3600 * 1000, 1));
    storage.flush().expect("flush");
    assert_eq!(storage.compact().expect("compact"), 1);
    let compacted = storage.files()[0].clone();
    assert!(!file_columns(&compacted).contains(&"labels".to_string()));
    assert_eq!(
        count(
            &storage,
            "SELECT count(*) FROM series WHERE labels['job'] = 'old'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &storage,
            "SELECT count(*) FROM samples WHERE labels['job'] = 'old'"
        )
        .await,
        10
    );
    let selected = storage
        .select_series(&matchers, None, None)
        .await
        .expect("select after compaction");
    assert_eq!(selected.len(), 1);
    assert_eq!(selected[0].1.len(), 10);
}

#[tokio::test]
async fn series_files_of_churning_series_are_merged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let series_files = || {
        std::fs::read_dir(dir.path().join("series"))
            .expect("series dir")
            .count()
    };
    {
        let storage = Storage::open(dir.path(), 3).expect("open");
        storage.set_auto_compact(false);
        for i in 0..20 {
            storage.append(batch(&format!("job{i}"), i * 10, 1));
            storage.flush().expect("flush");
        }
        assert_eq!(series_files(), 20, "one file per flush with new series");
        storage.compact().expect("compact");
        assert_eq!(series_files(), 1);
    }
    let storage = Arc::new(Storage::open(dir.path(), 3).expect("reopen"));
    assert_eq!(count(&storage, "SELECT count(*) FROM series").await, 20);
    assert_eq!(
        count(
            &storage,
            "SELECT count(*) FROM samples WHERE labels['job'] = 'job19'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn sql_multiplies_a_series_common_factor_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Arc::new(Storage::open(dir.path(), 3).expect("open"));
    let samples: Vec<Sample> = (0..10)
        .map(|i| Sample::new("mem", Labels::new(), i, (4096 * (1000 + i * i)) as f64))
        .chain((0..10).map(|i| Sample::new("load", Labels::new(), i, i as f64 / 4.0)))
        .collect();
    let want: f64 = samples.iter().map(|s| s.value).sum();
    storage.append(samples_to_batch(&samples).expect("batch"));
    let file = storage.flush().expect("flush").expect("file");
    assert!(file_columns(&file).contains(&"value_g".to_string()));
    assert_eq!(
        first_f64(
            &storage,
            "SELECT max(value) FROM samples WHERE metric = 'mem'"
        )
        .await,
        4096.0 * 1081.0
    );
    assert_eq!(
        first_f64(&storage, "SELECT sum(value) FROM samples").await,
        want
    );
}

#[tokio::test]
async fn series_only_expired_files_held_are_forgotten_and_come_back_when_seen_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Arc::new(Storage::open(dir.path(), 3).expect("open"));
    storage.set_auto_compact(false);
    let day = 86_400_000;
    storage.append(batch("gone", 0, 5));
    storage.flush().expect("flush");
    storage.append(batch("kept", 10 * day, 5));
    storage.flush().expect("flush");
    let series = |s: &Arc<Storage>| {
        let s = s.clone();
        async move { count(&s, "SELECT count(*) FROM series").await }
    };
    assert_eq!(series(&storage).await, 2);
    // Nothing expired yet: nothing to forget.
    assert_eq!(storage.prune_series().await.expect("prune"), 0);
    let dropped = storage
        .apply_retention(10 * day, std::time::Duration::from_secs(86_400), 0)
        .expect("retention");
    assert_eq!(dropped, 1);
    assert_eq!(storage.prune_series().await.expect("prune"), 1);
    assert_eq!(series(&storage).await, 1);
    // On disk too: a reopened store knows only the kept series.
    let reopened = Arc::new(Storage::open(dir.path(), 3).expect("reopen"));
    assert_eq!(series(&reopened).await, 1);
    drop(reopened);
    // The series comes back: its flush registers it again, and its
    // samples are named.
    storage.append(batch("gone", 10 * day + 100, 3));
    storage.flush().expect("flush");
    assert_eq!(series(&storage).await, 2);
    assert_eq!(
        count(
            &storage,
            "SELECT count(*) FROM samples WHERE labels['job'] = 'gone'"
        )
        .await,
        3
    );
}

/// Label lookups next to a filter over the view that unions files and
/// head: the README's second query failed to plan ("UNION field 0 have
/// different type") until the field-access pushdown was turned off.
#[tokio::test]
async fn label_lookups_with_filters_over_files_and_head_plan() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Arc::new(Storage::open(dir.path(), 3).expect("open"));
    let scored = |from: i64| {
        let samples: Vec<Sample> = (0..4)
            .map(|i| {
                Sample::new(
                    "vigie_anomaly_score",
                    Labels::new().with("for", format!("m{}", i % 2)),
                    from + i,
                    i as f64 / 4.0,
                )
            })
            .collect();
        samples_to_batch(&samples).expect("batch")
    };
    storage.append(scored(0));
    storage.flush().expect("flush").expect("file");
    storage.append(scored(100));
    for q in [
        "SELECT labels['for'], value FROM samples WHERE metric = 'vigie_anomaly_score'",
        "SELECT labels['for'] AS f, count(*) FROM samples WHERE value >= 0 GROUP BY 1",
    ] {
        let out = storage.sql(q).await.unwrap_or_else(|e| panic!("{q}: {e}"));
        assert!(
            out.iter().map(RecordBatch::num_rows).sum::<usize>() > 0,
            "{q}"
        );
    }
    let out = storage
        .sql(
            "SELECT labels['for'] AS scored, max(value) AS top FROM samples \
             WHERE metric = 'vigie_anomaly_score' GROUP BY 1 ORDER BY 2 DESC LIMIT 5",
        )
        .await
        .expect("the README's query plans and runs");
    let batch = datafusion::arrow::compute::concat_batches(&out[0].schema(), &out).expect("concat");
    use datafusion::arrow::array::AsArray;
    let scored = batch.column(0).as_string::<i32>();
    let top = batch
        .column(1)
        .as_primitive::<datafusion::arrow::datatypes::Float64Type>();
    assert_eq!(batch.num_rows(), 2);
    assert_eq!((scored.value(0), top.value(0)), ("m1", 0.75));
    assert_eq!((scored.value(1), top.value(1)), ("m0", 0.5));
}

/// Rewrites a samples file in the layout before `value_b`: mantissas hold
/// the base again and the column is gone.
fn drop_value_b(path: &std::path::Path) {
    use datafusion::arrow::array::{Array, ArrayRef, Int64Array};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).expect("open"))
            .expect("reader");
    let kv = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .cloned();
    let batches: Vec<RecordBatch> = builder
        .build()
        .expect("build")
        .collect::<Result<_, _>>()
        .expect("read");
    let old: Vec<RecordBatch> = batches
        .iter()
        .map(|batch| {
            let schema = batch.schema();
            let m = vigie_model::schema::column::<Int64Array>(batch, values::M).expect("m");
            let b = vigie_model::schema::column::<Int64Array>(batch, values::B).expect("b");
            let merged: Int64Array = (0..m.len())
                .map(|i| {
                    m.is_valid(i)
                        .then(|| m.value(i) + if b.is_valid(i) { b.value(i) } else { 0 })
                })
                .collect();
            let (mut fields, mut columns): (Vec<_>, Vec<ArrayRef>) = (Vec::new(), Vec::new());
            for (field, column) in schema.fields().iter().zip(batch.columns()) {
                match field.name().as_str() {
                    values::B => continue,
                    values::M => columns.push(Arc::new(merged.clone())),
                    _ => columns.push(column.clone()),
                }
                fields.push(field.as_ref().clone());
            }
            let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(fields));
            RecordBatch::try_new(schema, columns).expect("old layout")
        })
        .collect();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_key_value_metadata(kv)
        .build();
    let mut writer = ArrowWriter::try_new(
        std::fs::File::create(path).expect("create"),
        old[0].schema(),
        Some(props),
    )
    .expect("writer");
    for batch in &old {
        writer.write(batch).expect("write");
    }
    writer.close().expect("close");
}

#[tokio::test]
async fn files_from_before_value_b_still_read_and_compact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let samples: Vec<Sample> = (0..10)
        .map(|i| Sample::new("bytes", Labels::new(), i, (4096 * (5_000 + i * i)) as f64))
        .chain((0..10).map(|i| Sample::new("load", Labels::new(), i, 3.0 + i as f64 / 4.0)))
        .collect();
    let want: f64 = samples.iter().map(|s| s.value).sum();
    {
        let storage = Storage::open(dir.path(), 3).expect("open");
        storage.set_auto_compact(false);
        storage.append(samples_to_batch(&samples).expect("batch"));
        let file = storage.flush().expect("flush").expect("file");
        assert!(file_columns(&file).contains(&values::B.to_string()));
        drop_value_b(&file);
        assert!(!file_columns(&file).contains(&values::B.to_string()));
    }
    let storage = Arc::new(Storage::open(dir.path(), 3).expect("reopen"));
    storage.set_auto_compact(false);
    let sql_sum = "SELECT sum(value) FROM samples";
    assert_eq!(first_f64(&storage, sql_sum).await, want);
    let bytes = promql_parser::label::Matchers::new(vec![promql_parser::label::Matcher::new(
        promql_parser::label::MatchOp::Equal,
        "__name__",
        "bytes",
    )]);
    let points = |selected: &crate::promql::Selected| -> Vec<f64> {
        selected[0].1.iter().map(|p| p.1).collect()
    };
    let selected = storage
        .select_series(&bytes, None, None)
        .await
        .expect("select");
    let expect: Vec<f64> = samples[..10].iter().map(|s| s.value).collect();
    assert_eq!(points(&selected), expect);
    // Compacted with a file in today's layout: values survive.
    storage.append(
        samples_to_batch(&[Sample::new("bytes", Labels::new(), 20, 8192.0)]).expect("batch"),
    );
    storage.flush().expect("flush");
    storage.append(batch("later", 3 * 3600 * 1000, 1));
    storage.flush().expect("flush");
    assert_eq!(storage.compact().expect("compact"), 1);
    assert_eq!(first_f64(&storage, sql_sum).await, want + 8192.0 + 0.0);
    let selected = storage
        .select_series(&bytes, None, None)
        .await
        .expect("select");
    assert_eq!(points(&selected).len(), 11);
    assert_eq!(points(&selected)[..10], expect[..]);
}
