//! Compaction: the flush files of a closed 2 h window become one file.
//!
//! A flush every minute leaves many small files; small files compress
//! badly (each carries its own dictionaries, footer and short runs) and
//! slow queries down. Once a newer file reaches past a window's end, the
//! window is closed: its files (grouped by the window of their oldest
//! sample) are read, re-sorted by series then time and written as one
//! `<min>-<max>-<nanos>-c.parquet`, at most [`MAX_ROWS`] rows per file.
//!
//! Crash safety: the output is written in one atomic put, and its
//! Parquet metadata names the files it replaces (`vigie.replaces`). Only
//! then do the inputs leave the query snapshot (one swap under the state
//! lock, so a query sees either the inputs or the output, never both);
//! they are deleted by the next retention pass, like expired files, so a
//! query that took its snapshot just before still finds them. If Vigie
//! stops in between, [`finish_interrupted`] takes at open the inputs that
//! a compacted file names out of the view (and deletes them at the next
//! retention pass); if it stops before the put, the inputs are still
//! whole.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use datafusion::arrow::array::RecordBatch;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::metadata::{FooterTail, KeyValue, ParquetMetaDataReader};
use tracing::{info, warn};

use super::store::Store;
use super::{DataFile, Files, Storage, time_range, write_sorted};
use crate::AnalyzerError;
use crate::metrics::ERRORS;

/// Width of a compaction window.
pub(crate) const WINDOW_MS: i64 = 2 * 3600 * 1000;
/// Rows per compacted file at most (bounds the memory a merge takes).
const MAX_ROWS: usize = 8 * 1024 * 1024;
/// Parquet key/value metadata naming the files a compacted file replaces.
const REPLACES: &str = "vigie.replaces";

/// Groups of files to merge: per window of their oldest sample, windows
/// with more than one file that end at or before the newest sample stored.
fn plan(files: &[DataFile]) -> Vec<Vec<DataFile>> {
    let Some(latest) = files
        .iter()
        .filter_map(|f| time_range(f.name()))
        .map(|r| r.1)
        .max()
    else {
        return Vec::new();
    };
    let mut windows: BTreeMap<i64, Vec<DataFile>> = BTreeMap::new();
    for f in files {
        if let Some((min, _)) = time_range(f.name()) {
            windows
                .entry(min.div_euclid(WINDOW_MS))
                .or_default()
                .push(f.clone());
        }
    }
    windows
        .into_iter()
        .filter(|(w, group)| group.len() > 1 && (w + 1).saturating_mul(WINDOW_MS) <= latest)
        .map(|(_, group)| group)
        .collect()
}

fn read(file: &DataFile, files: &Files) -> Result<Vec<RecordBatch>, AnalyzerError> {
    let bytes = files.store.get(&file.key)?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?
        .with_batch_size(64 * 1024)
        .build()?;
    // Samples files hold values as decimals (storage::values).
    let samples = files
        .schema
        .field_with_name(vigie_model::schema::col::VALUE)
        .is_ok();
    reader
        .map(|b| {
            let b = b?;
            // A file from before the series table: its series join it.
            if let Some(series) = &files.series
                && b.column_by_name(vigie_model::schema::col::LABELS).is_some()
            {
                series.observe(&b)?;
            }
            if samples {
                super::values::decode(&b)
            } else {
                Ok(RecordBatch::try_new(
                    files.schema.clone(),
                    b.columns().to_vec(),
                )?)
            }
        })
        .collect()
}

impl Files {
    /// Merges every due window. Returns the number of files written.
    fn compact_due(&self) -> Result<usize, AnalyzerError> {
        let _one_at_a_time = self.compact_lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(series) = &self.series {
            series.compact(&self.store, self.zstd_level)?;
        }
        let groups = plan(&self.lock().files);
        let mut written = 0;
        for group in groups {
            let mut batches = Vec::new();
            let mut rows = 0;
            let mut inputs = Vec::new();
            for (i, f) in group.iter().enumerate() {
                let b = read(f, self)?;
                rows += b.iter().map(RecordBatch::num_rows).sum::<usize>();
                batches.extend(b);
                inputs.push(f.clone());
                if rows >= MAX_ROWS || i + 1 == group.len() {
                    if inputs.len() > 1 {
                        written += usize::from(self.merge(&batches, &inputs)?);
                    }
                    batches.clear();
                    inputs.clear();
                    rows = 0;
                }
            }
        }
        Ok(written)
    }

    /// Writes `batches` as one file replacing `inputs`, then swaps it in.
    /// Returns false (and removes the output) when retention took one of
    /// the inputs meanwhile.
    fn merge(&self, batches: &[RecordBatch], inputs: &[DataFile]) -> Result<bool, AnalyzerError> {
        let names: Vec<&str> = inputs.iter().map(DataFile::name).collect();
        let meta = vec![KeyValue::new(REPLACES.to_string(), names.join(","))];
        if let Some(series) = &self.series {
            series.persist(&self.store, self.zstd_level)?;
        }
        let (out, rows) = write_sorted(
            self,
            batches,
            "-c",
            self.compaction_zstd_level.load(Ordering::Relaxed),
            Some(meta),
        )?;
        let mut state = self.lock();
        if !inputs.iter().all(|f| state.files.contains(f)) {
            drop(state);
            if let Err(e) = self.store.delete(&out.key) {
                warn!(error = %e, "cannot remove an unused compaction output");
            }
            return Ok(false);
        }
        state.files.retain(|f| !inputs.contains(f));
        state.files.push(out.clone());
        state.files.sort();
        state.doomed.extend(inputs.iter().cloned());
        drop(state);
        info!(file = %out.key, inputs = inputs.len(), rows, "compacted");
        Ok(true)
    }
}

/// Starts a background compaction if a window is due and none is running.
pub(super) fn spawn_if_due(files: &Arc<Files>) {
    if plan(&files.lock().files).is_empty()
        || files
            .compacting
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
    {
        return;
    }
    let files = files.clone();
    let started = std::thread::Builder::new()
        .name("vigie-compact".into())
        .spawn({
            let files = files.clone();
            move || {
                if let Err(e) = files.compact_due() {
                    ERRORS.with_label_values(&["storage", "compaction"]).inc();
                    warn!(prefix = %files.prefix, error = %e, "compaction failed; inputs kept");
                }
                files.compacting.store(false, Ordering::Release);
            }
        });
    if let Err(e) = started {
        files.compacting.store(false, Ordering::Release);
        warn!(error = %e, "cannot start the compaction thread");
    }
}

/// The names of the files compacted file `file` replaces (its
/// `vigie.replaces` metadata), read from its footer only (two ranged
/// reads).
pub(super) async fn replaced_by(
    store: Arc<dyn ObjectStore>,
    file: DataFile,
) -> Result<Vec<String>, object_store::Error> {
    let parquet_err = |e: parquet::errors::ParquetError| object_store::Error::Generic {
        store: "parquet",
        source: Box::new(e),
    };
    const TAIL: u64 = 8;
    let size = file.size;
    let tail = store
        .get_range(&file.key, size.saturating_sub(TAIL)..size)
        .await?;
    let tail: [u8; 8] = tail.as_ref().try_into().map_err(|_| {
        parquet_err(parquet::errors::ParquetError::General(
            "file shorter than a Parquet footer".into(),
        ))
    })?;
    let len = FooterTail::try_new(&tail)
        .map_err(parquet_err)?
        .metadata_length() as u64;
    let start = size.saturating_sub(TAIL + len);
    let footer = store.get_range(&file.key, start..size - TAIL).await?;
    let meta = ParquetMetaDataReader::decode_metadata(&footer).map_err(parquet_err)?;
    let kv = meta.file_metadata().key_value_metadata();
    Ok(kv
        .into_iter()
        .flatten()
        .filter(|entry| entry.key == REPLACES)
        .filter_map(|entry| entry.value.as_deref())
        .flat_map(|v| v.split(',').map(str::to_string))
        .collect())
}

/// Splits `files` (in order) into the files to serve and the inputs of
/// compactions that were interrupted after their output was written (the
/// output's metadata names them): those leave the view and are deleted at
/// the next retention pass.
pub(super) fn finish_interrupted(
    store: &Store,
    files: Vec<DataFile>,
) -> (Vec<DataFile>, Vec<DataFile>) {
    let mut replaced = std::collections::HashSet::new();
    for f in files.iter().filter(|f| f.name().ends_with("-c.parquet")) {
        let file = f.clone();
        match store.block_on(format!("reading the footer of {}", f.key), |object| {
            replaced_by(object, file)
        }) {
            Ok(names) => replaced.extend(names),
            Err(e) => warn!(error = %e, "cannot read a compacted file's metadata"),
        }
    }
    files.into_iter().partition(|f| {
        if !replaced.contains(f.name()) {
            return true;
        }
        warn!(file = %f.key, "input of an interrupted compaction; deleted at the next retention pass");
        false
    })
}

impl Storage {
    /// Merges the files of every closed 2 h window (here and in the logs
    /// store) into one file per window, now, on this thread. Flushes
    /// start the same work in the background by themselves. Returns the
    /// number of files written.
    pub fn compact(&self) -> Result<usize, AnalyzerError> {
        let mut n = self.store.compact_due()?;
        if let Some(logs) = self.logs() {
            n += logs.compact()?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{TimestampMillisecondArray, UInt64Array};
    use vigie_model::schema::{column, samples_to_batch};
    use vigie_model::{Labels, Sample};

    const H: i64 = 3600 * 1000;

    fn batch(job: &str, from: i64, n: i64) -> RecordBatch {
        let samples: Vec<Sample> = (0..n)
            .map(|i| {
                Sample::new(
                    "m",
                    Labels::new().with("job", job),
                    from + i * 15_000,
                    i as f64,
                )
            })
            .collect();
        samples_to_batch(&samples).expect("batch")
    }

    async fn rows(storage: &Arc<Storage>) -> i64 {
        let out = storage
            .sql("SELECT count(*) FROM samples")
            .await
            .expect("query");
        out[0]
            .column(0)
            .as_any()
            .downcast_ref::<datafusion::arrow::array::Int64Array>()
            .expect("count")
            .value(0)
    }

    #[test]
    fn plans_only_closed_windows_with_several_files() {
        let f = |min: i64, max: i64| DataFile {
            key: format!("d/{min:015}-{max:015}-1.parquet").into(),
            size: 1,
        };
        let files = vec![
            f(0, H),
            f(H, 2 * H - 1),
            f(2 * H, 3 * H),
            f(3 * H, 4 * H - 1),
        ];
        // Window 0 is closed (a file reaches 4 h); window 1 is still open.
        assert_eq!(plan(&files), vec![vec![files[0].clone(), files[1].clone()]]);
        let files = vec![f(0, H), f(2 * H, 3 * H)];
        assert!(
            plan(&files).is_empty(),
            "one file per window: nothing to do"
        );
    }

    #[tokio::test]
    async fn merges_a_closed_window_into_one_sorted_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Arc::new(Storage::open(dir.path(), 3).expect("open"));
        storage.set_auto_compact(false);
        for i in 0..4 {
            storage.append(batch("b", i * 30 * 60_000, 120));
            storage.append(batch("a", i * 30 * 60_000, 120));
            storage.flush().expect("flush");
        }
        storage.append(batch("a", 2 * H, 10));
        storage.flush().expect("flush");
        assert_eq!(storage.files().len(), 5);
        assert_eq!(storage.compact().expect("compact"), 1);
        let files = storage.files();
        assert_eq!(files.len(), 2);
        assert!(
            files[0].to_string_lossy().ends_with("-c.parquet"),
            "{files:?}"
        );
        assert_eq!(rows(&storage).await, 4 * 240 + 10, "no row lost or doubled");
        let mut keys = Vec::new();
        let first = storage.store.lock().files[0].clone();
        for b in read(&first, &storage.store).expect("read") {
            let ids = column::<UInt64Array>(&b, "series_id").expect("ids");
            let ts = column::<TimestampMillisecondArray>(&b, "ts").expect("ts");
            keys.extend((0..b.num_rows()).map(|i| (ids.value(i), ts.value(i))));
        }
        assert_eq!(keys.len(), 4 * 240);
        assert!(
            keys.windows(2).all(|w| w[0] < w[1]),
            "sorted by series then time"
        );
        // The inputs leave the disk at the next retention pass.
        storage
            .apply_retention(0, std::time::Duration::ZERO, 0)
            .expect("retention");
        let on_disk = std::fs::read_dir(dir.path().join("samples"))
            .expect("dir")
            .count();
        assert_eq!(on_disk, 2);
    }

    #[tokio::test]
    async fn an_interrupted_compaction_is_finished_at_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let inputs = {
            let storage = Storage::open(dir.path(), 3).expect("open");
            storage.set_auto_compact(false);
            storage.append(batch("a", 0, 10));
            storage.flush().expect("flush");
            storage.append(batch("a", H, 10));
            storage.flush().expect("flush");
            storage.append(batch("a", 3 * H, 10));
            storage.flush().expect("flush");
            let inputs = storage.files();
            storage.compact().expect("compact");
            // Stopped before the retention pass that deletes the inputs.
            inputs
        };
        assert!(inputs[0].exists() && inputs[1].exists());
        let storage = Arc::new(Storage::open(dir.path(), 3).expect("reopen"));
        assert_eq!(storage.files().len(), 2, "the inputs left the view");
        assert_eq!(rows(&storage).await, 30, "no row doubled");
        storage
            .apply_retention(0, std::time::Duration::ZERO, 0)
            .expect("retention");
        assert!(!inputs[0].exists() && !inputs[1].exists());
        assert_eq!(rows(&storage).await, 30);
    }

    #[tokio::test]
    async fn flushes_compact_in_the_background() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Arc::new(Storage::open(dir.path(), 3).expect("open"));
        for i in 0..3 {
            storage.append(batch("a", i * H, 10));
            storage.flush().expect("flush");
        }
        let mut waited = 0;
        while storage.files().len() > 2 && waited < 500 {
            std::thread::sleep(std::time::Duration::from_millis(10));
            waited += 1;
        }
        assert_eq!(storage.files().len(), 2, "window 0 was merged");
        assert_eq!(rows(&storage).await, 30);
    }
}
