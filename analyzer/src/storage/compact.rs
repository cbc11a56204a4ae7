//! Compaction: the flush files of a closed 2 h window become one file.
//!
//! A flush every minute leaves many small files; small files compress
//! badly (each carries its own dictionaries, footer and short runs) and
//! slow queries down. Once a newer file reaches past a window's end, the
//! window is closed: its files (grouped by the window of their oldest
//! sample) are read, re-sorted by series then time and written as one
//! `<min>-<max>-<nanos>-c.parquet`, at most [`MAX_ROWS`] rows per file.
//!
//! Crash safety: the output is written as `.tmp` and renamed, and its
//! Parquet metadata names the files it replaces (`vigie.replaces`). Only
//! then do the inputs leave the query snapshot (one swap under the state
//! lock, so a query sees either the inputs or the output, never both);
//! they are deleted by the next retention pass, like expired files, so a
//! query that took its snapshot just before still finds them. If Vigie
//! stops in between, [`finish_interrupted`] deletes at open the inputs
//! that a compacted file names; if it stops before the rename, the `.tmp`
//! is removed and the inputs are still whole.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use datafusion::arrow::array::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::metadata::KeyValue;
use parquet::file::reader::{FileReader, SerializedFileReader};
use tracing::{info, warn};

use super::{Files, Storage, io_err, time_range, write_sorted};
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
fn plan(files: &[PathBuf]) -> Vec<Vec<PathBuf>> {
    let Some(latest) = files
        .iter()
        .filter_map(|f| time_range(f))
        .map(|r| r.1)
        .max()
    else {
        return Vec::new();
    };
    let mut windows: BTreeMap<i64, Vec<PathBuf>> = BTreeMap::new();
    for f in files {
        if let Some((min, _)) = time_range(f) {
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

fn read(path: &Path, files: &Files) -> Result<Vec<RecordBatch>, AnalyzerError> {
    let file = fs::File::open(path).map_err(io_err(path))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)?
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

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl Files {
    /// Merges every due window. Returns the number of files written.
    fn compact_due(&self) -> Result<usize, AnalyzerError> {
        let _one_at_a_time = self.compact_lock.lock().unwrap_or_else(|e| e.into_inner());
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
    fn merge(&self, batches: &[RecordBatch], inputs: &[PathBuf]) -> Result<bool, AnalyzerError> {
        let names: Vec<String> = inputs.iter().map(|p| file_name(p)).collect();
        let meta = vec![KeyValue::new(REPLACES.to_string(), names.join(","))];
        let (out, rows) = write_sorted(
            &self.dir,
            &self.schema,
            batches,
            self.zstd_level,
            "-c",
            Some(meta),
        )?;
        let mut state = self.lock();
        if !inputs.iter().all(|f| state.files.contains(f)) {
            drop(state);
            let _ = fs::remove_file(&out);
            return Ok(false);
        }
        state.files.retain(|f| !inputs.contains(f));
        state.files.push(out.clone());
        state.files.sort();
        state.doomed.extend(inputs.iter().cloned());
        drop(state);
        info!(file = %out.display(), inputs = inputs.len(), rows, "compacted");
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
                    warn!(dir = %files.dir.display(), error = %e, "compaction failed; inputs kept");
                }
                files.compacting.store(false, Ordering::Release);
            }
        });
    if let Err(e) = started {
        files.compacting.store(false, Ordering::Release);
        warn!(error = %e, "cannot start the compaction thread");
    }
}

/// Deletes the inputs of compactions that were interrupted after their
/// output was renamed into place (the output's metadata names them).
/// Returns the files that remain, in order.
pub(super) fn finish_interrupted(files: Vec<PathBuf>) -> Vec<PathBuf> {
    let mut replaced = std::collections::HashSet::new();
    for f in files
        .iter()
        .filter(|f| file_name(f).ends_with("-c.parquet"))
    {
        let meta = fs::File::open(f)
            .ok()
            .and_then(|file| SerializedFileReader::new(file).ok());
        let Some(reader) = meta else {
            continue;
        };
        let kv = reader.metadata().file_metadata().key_value_metadata();
        for entry in kv.into_iter().flatten() {
            if entry.key == REPLACES
                && let Some(v) = &entry.value
            {
                replaced.extend(v.split(',').map(str::to_string));
            }
        }
    }
    files
        .into_iter()
        .filter(|f| {
            if !replaced.contains(&file_name(f)) {
                return true;
            }
            warn!(file = %f.display(), "removing input of an interrupted compaction");
            if let Err(e) = fs::remove_file(f)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                warn!(file = %f.display(), error = %e, "cannot remove compacted input");
            }
            false
        })
        .collect()
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
        let f = |min: i64, max: i64| PathBuf::from(format!("/d/{min:015}-{max:015}-1.parquet"));
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
        assert!(file_name(&files[0]).ends_with("-c.parquet"), "{files:?}");
        assert_eq!(rows(&storage).await, 4 * 240 + 10, "no row lost or doubled");
        let mut keys = Vec::new();
        for b in read(&files[0], &storage.store).expect("read") {
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
        let on_disk = fs::read_dir(dir.path().join("samples"))
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
        assert!(!inputs[0].exists() && !inputs[1].exists());
        assert_eq!(storage.files().len(), 2);
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
