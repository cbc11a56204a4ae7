//! Sample storage: an in-memory head of Arrow batches plus Parquet files.
//!
//! Appends go to the head. [`Storage::flush`] sorts the head by series id
//! then time and writes it as one zstd-compressed Parquet object under
//! `samples/` of the store (module `store`: a local directory, by default
//! the data dir, or an S3-compatible bucket; one atomic put, so a reader
//! never sees half a file), named `<min ts>-<max ts>-<nanos>.parquet`.
//! Queries see the files and the head through one consistent snapshot, so
//! a row is never missing or doubled while a flush runs.
//!
//! Columns are encoded for time series: `ts` with `DELTA_BINARY_PACKED`
//! (a fixed scrape interval costs almost nothing once sorted by series),
//! values as exact decimals `(value_m + value_b) × value_g / 10^value_e` with
//! `DELTA_BINARY_PACKED` (module `values`; other values in `value_f`,
//! `BYTE_STREAM_SPLIT`), the rest with dictionaries, all zstd; SQL's
//! `samples` turns them back into `value`. Once a 2 h window is closed (a
//! newer file exists past its end), a background compaction
//! ([`Storage::compact`], module `compact`) merges the window's flush
//! files into one file, re-sorted by series then time, at a tighter zstd
//! level (`analyzer.compaction_zstd_level`).
//!
//! Labels are not repeated per sample: samples files keep `metric` and
//! `series_id`, and the series table (module `series`, objects under
//! `series/`) maps each id to its metric name and labels. SQL's `series`
//! is that table; `samples` joins it back, so its `labels` column works
//! as before.
//!
//! Several processes can share one store: one writes it, the others open
//! it with a refresh interval (module `refresh`).
//!
//! Log records (logs schema, see [`vigie_model::log_schema`]) live in a
//! second store of the same kind under `logs/` ([`Storage::logs`],
//! sorted by time only); SQL sees them as table `logs`.

mod compact;
mod decoded;
mod index;
mod location;
mod prune;
mod query;
mod refresh;
mod retention;
mod select;
mod series;
mod store;
mod values;

pub use location::StorageConfig;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{RecordBatch, TimestampMillisecondArray};
use datafusion::arrow::compute::{
    SortColumn, concat_batches, lexsort_to_indices, take_record_batch,
};
use datafusion::arrow::datatypes::SchemaRef;
use object_store::ObjectStore;
use object_store::path::Path as ObjPath;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use tracing::{info, warn};
use vigie_model::log_schema::logs_schema;
use vigie_model::schema::{col, metrics_schema};

use crate::AnalyzerError;
use crate::metrics::{FLUSHES, HEAD_ROWS, STORED};
use store::Store;

/// A data file in the store: its key and size in bytes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct DataFile {
    /// Object key, e.g. `samples/<min>-<max>-<nanos>.parquet`.
    pub(crate) key: ObjPath,
    /// Size in bytes.
    pub(crate) size: u64,
}

impl DataFile {
    /// The file name (the key's last part).
    pub(crate) fn name(&self) -> &str {
        self.key.filename().unwrap_or_default()
    }
}

#[derive(Default)]
struct State {
    /// Batches not yet handed to a flush.
    head: Vec<RecordBatch>,
    head_rows: usize,
    /// Batches being written by a flush; still served by queries.
    flushing: Vec<RecordBatch>,
    /// Parquet files, oldest first.
    files: Vec<DataFile>,
    /// Files retention removed from queries, deleted on its next pass.
    doomed: Vec<DataFile>,
}

/// Rows per Parquet row group: a 2 h window of 1,000 series at 15 s is
/// one row group.
const ROW_GROUP_ROWS: usize = 1024 * 1024;

/// Zstd level of compacted files unless configured
/// (`analyzer.compaction_zstd_level`).
pub const DEFAULT_COMPACTION_ZSTD_LEVEL: i32 = 15;

/// What a store's files need, shared with the background compaction.
struct Files {
    store: Arc<Store>,
    /// Key prefix of this store's files (`samples` or `logs`).
    prefix: ObjPath,
    schema: SchemaRef,
    /// Zstd level of flushed files.
    zstd_level: i32,
    /// Zstd level of compacted files ([`Storage::set_compaction_zstd_level`]).
    compaction_zstd_level: AtomicI32,
    state: Mutex<State>,
    /// Serialises compactions.
    compact_lock: Mutex<()>,
    /// A background compaction is running.
    compacting: AtomicBool,
    /// The files each compacted file replaces, as the last refresh read
    /// them (module `refresh`).
    replaces: Mutex<std::collections::HashMap<ObjPath, Vec<String>>>,
    /// The series table (samples store only; module `series`).
    series: Option<Arc<series::SeriesTable>>,
}

impl Files {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Where samples (and, in [`Storage::logs`], log records) live.
pub struct Storage {
    store: Arc<Files>,
    schema: SchemaRef,
    /// The logs store, beside a samples store.
    logs: Option<Box<Storage>>,
    /// Serialises flushes.
    flush_lock: Mutex<()>,
    /// Start a background compaction after a flush closes a window.
    auto_compact: AtomicBool,
    /// Tables other stages contribute to SQL (see [`Storage::add_table`]).
    tables: Mutex<Vec<(String, TableSource)>>,
    /// Series index of each file PromQL has read (module `index`).
    series_index: Arc<index::IndexCache>,
}

/// A table another stage offers to SQL: called at each query for its
/// schema and rows (e.g. alerting's notification history).
pub type TableSource = Arc<dyn Fn() -> Result<(SchemaRef, Vec<RecordBatch>), String> + Send + Sync>;

/// The time range `(min, max)` in ms a data file holds, from its name
/// (`<min ms>-<max ms>-<nanos>[-c].parquet`, as flushes and compactions
/// write it; a key's directories are ignored). `None` for other names.
pub(crate) fn time_range(name: &str) -> Option<(i64, i64)> {
    let name = name.rsplit('/').next()?;
    let mut parts = name.split('-');
    let min = parts.next()?.parse().ok()?;
    let max = parts.next()?.parse().ok()?;
    Some((min, max))
}

/// The files that may hold samples in `[start_ms, end_ms]` (either bound
/// optional), by the time range in their name; files named otherwise are
/// kept.
pub(crate) fn files_overlapping(
    files: Vec<DataFile>,
    start_ms: Option<i64>,
    end_ms: Option<i64>,
) -> Vec<DataFile> {
    files
        .into_iter()
        .filter(|f| match time_range(f.name()) {
            Some((min, max)) => {
                start_ms.is_none_or(|s| max >= s) && end_ms.is_none_or(|e| min <= e)
            }
            None => true,
        })
        .collect()
}

/// Writer settings of every data file: zstd, large row groups, delta
/// timestamps, byte-stream-split values, optional key/value metadata.
fn writer_props(zstd_level: i32, metadata: Option<Vec<KeyValue>>) -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(zstd_level).unwrap_or_default(),
        ))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_column_dictionary_enabled(ColumnPath::from(col::TS), false)
        .set_column_encoding(ColumnPath::from(col::TS), Encoding::DELTA_BINARY_PACKED)
        .set_column_dictionary_enabled(ColumnPath::from(col::VALUE), false)
        .set_column_encoding(ColumnPath::from(col::VALUE), Encoding::BYTE_STREAM_SPLIT)
        .set_column_dictionary_enabled(ColumnPath::from(values::M), false)
        .set_column_encoding(ColumnPath::from(values::M), Encoding::DELTA_BINARY_PACKED)
        .set_column_dictionary_enabled(ColumnPath::from(values::F), false)
        .set_column_encoding(ColumnPath::from(values::F), Encoding::BYTE_STREAM_SPLIT)
        .set_key_value_metadata(metadata)
        .build()
}

/// Sorts `batches` by series id (when the schema has one) then time and
/// writes them as one Parquet object under the prefix of `files`, in one
/// atomic put. `suffix` goes before `.parquet` (`"-c"` for compactions).
/// Returns the file and its row count.
fn write_sorted(
    files: &Files,
    batches: &[RecordBatch],
    suffix: &str,
    zstd_level: i32,
    metadata: Option<Vec<KeyValue>>,
) -> Result<(DataFile, usize), AnalyzerError> {
    let schema = &files.schema;
    let all = concat_batches(schema, batches)?;
    let mut sort = Vec::with_capacity(2);
    if let Some(ids) = all.column_by_name(col::SERIES_ID) {
        sort.push(SortColumn {
            values: ids.clone(),
            options: None,
        });
    }
    sort.push(SortColumn {
        values: all
            .column_by_name(col::TS)
            .cloned()
            .ok_or_else(|| vigie_model::ModelError::Schema("missing ts".into()))?,
        options: None,
    });
    let indices = lexsort_to_indices(&sort, None)?;
    let sorted = take_record_batch(&all, &indices)?;
    // Samples go to disk with their values as decimals (module `values`).
    let (sorted, schema) = if schema.field_with_name(col::VALUE).is_ok() {
        (values::encode(&sorted)?, values::write_schema())
    } else {
        (sorted, schema.clone())
    };
    let ts = sorted
        .column_by_name(col::TS)
        .and_then(|c| c.as_any().downcast_ref::<TimestampMillisecondArray>())
        .ok_or_else(|| vigie_model::ModelError::Schema("ts column".into()))?;
    let min = datafusion::arrow::compute::min(ts).unwrap_or(0);
    let max = datafusion::arrow::compute::max(ts).unwrap_or(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let key = files
        .prefix
        .clone()
        .join(format!("{min:015}-{max:015}-{nanos}{suffix}.parquet"));
    let mut buf = Vec::new();
    let mut writer =
        ArrowWriter::try_new(&mut buf, schema, Some(writer_props(zstd_level, metadata)))?;
    writer.write(&sorted)?;
    writer.close()?;
    let size = buf.len() as u64;
    files.store.put(&key, buf)?;
    Ok((DataFile { key, size }, sorted.num_rows()))
}

impl Storage {
    /// Opens (or creates) the storage in the local directory `data_dir`
    /// (samples under `samples/`, log records under `logs/`), removing
    /// leftovers of interrupted flushes.
    pub fn open(data_dir: &Path, zstd_level: i32) -> Result<Self, AnalyzerError> {
        Self::open_in(Arc::new(Store::local(data_dir)?), zstd_level)
    }

    /// Opens the storage kept in `store` (e.g. an S3 bucket, or
    /// `object_store::memory::InMemory`): samples under `samples/`, log
    /// records under `logs/`.
    pub fn open_store(store: Arc<dyn ObjectStore>, zstd_level: i32) -> Result<Self, AnalyzerError> {
        Self::open_in(
            Arc::new(Store::new(store, None, ObjPath::default())?),
            zstd_level,
        )
    }

    /// Opens the storage `config` names (`[analyzer.storage]`; the local
    /// directory `data_dir` by default). With a `refresh_interval`, the
    /// file list is re-read from the store at that interval, to serve
    /// what another process writes there.
    pub fn open_with(
        config: &StorageConfig,
        data_dir: &Path,
        zstd_level: i32,
    ) -> Result<Self, AnalyzerError> {
        let storage = Self::open_in(Arc::new(config.store(data_dir)?), zstd_level)?;
        storage.set_decoded_cache_bytes(config.decoded_cache_bytes);
        if !config.refresh_interval.is_zero() {
            refresh::start(&storage.store, config.refresh_interval);
            if let Some(logs) = &storage.logs {
                refresh::start(&logs.store, config.refresh_interval);
            }
        }
        Ok(storage)
    }

    fn open_in(store: Arc<Store>, zstd_level: i32) -> Result<Self, AnalyzerError> {
        let logs = Self::open_prefix(store.clone(), "logs", logs_schema(), None, zstd_level)?;
        Self::open_prefix(
            store,
            "samples",
            metrics_schema(),
            Some(Box::new(logs)),
            zstd_level,
        )
    }

    fn open_prefix(
        store: Arc<Store>,
        prefix: &str,
        schema: SchemaRef,
        logs: Option<Box<Storage>>,
        zstd_level: i32,
    ) -> Result<Self, AnalyzerError> {
        let prefix = store.key(prefix);
        store.ensure_dir(&prefix)?;
        let mut files = Vec::new();
        for meta in store.list_blocking(&prefix)? {
            let file = DataFile {
                key: meta.location,
                size: meta.size,
            };
            let name = file.name();
            if name.ends_with(".parquet") {
                files.push(file);
            } else if name.ends_with(".tmp") {
                // Left by a flush of the versions that wrote a `.tmp` file
                // and renamed it.
                warn!(file = %file.key, "removing interrupted flush");
                if let Err(e) = store.delete(&file.key) {
                    warn!(error = %e, "cannot remove an interrupted flush");
                }
            }
        }
        files.sort();
        let (files, doomed) = compact::finish_interrupted(&store, files);
        // Only the samples store has series (the logs schema has labels
        // but no series id).
        let series: Option<Arc<series::SeriesTable>> = if schema
            .field_with_name(vigie_model::schema::col::SERIES_ID)
            .is_ok()
        {
            let series = series::SeriesTable::open(&store, store.key("series"))?;
            Some(Arc::new(series))
        } else {
            None
        };
        let series_index = series.clone();
        info!(prefix = %prefix, files = files.len(), "storage opened");
        Ok(Self {
            store: Arc::new(Files {
                store,
                prefix,
                schema: schema.clone(),
                zstd_level,
                compaction_zstd_level: AtomicI32::new(DEFAULT_COMPACTION_ZSTD_LEVEL),
                state: Mutex::new(State {
                    files,
                    doomed,
                    ..State::default()
                }),
                compact_lock: Mutex::new(()),
                compacting: AtomicBool::new(false),
                replaces: Mutex::default(),
                series,
            }),
            schema,
            logs,
            flush_lock: Mutex::new(()),
            auto_compact: AtomicBool::new(true),
            tables: Mutex::new(Vec::new()),
            series_index: Arc::new(index::IndexCache::new(
                series_index,
                decoded::DEFAULT_BUDGET,
            )),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.store.lock()
    }

    /// Sets the zstd level of compacted files, here and in the logs store
    /// (`analyzer.compaction_zstd_level`; default
    /// [`DEFAULT_COMPACTION_ZSTD_LEVEL`]). A compacted file is written once
    /// per window and kept for the whole retention, so it is worth a
    /// slower, tighter level than the flushes.
    pub fn set_compaction_zstd_level(&self, level: i32) {
        self.store
            .compaction_zstd_level
            .store(level, Ordering::Relaxed);
        if let Some(logs) = &self.logs {
            logs.set_compaction_zstd_level(level);
        }
    }

    /// Turns the background compaction after flushes on (the default) or
    /// off, here and in the logs store; [`Storage::compact`] still works.
    pub fn set_auto_compact(&self, on: bool) {
        self.auto_compact.store(on, Ordering::Relaxed);
        if let Some(logs) = &self.logs {
            logs.set_auto_compact(on);
        }
    }

    /// Sets how many bytes of decoded file points PromQL selection keeps
    /// for later queries (`[analyzer.storage] decoded_cache_bytes`; 0:
    /// none, every query decodes what it reads).
    pub fn set_decoded_cache_bytes(&self, bytes: u64) {
        self.series_index.decoded.set_budget(bytes);
    }

    /// The logs store (`None` for the logs store itself).
    pub fn logs(&self) -> Option<&Storage> {
        self.logs.as_deref()
    }

    /// Appends a batch (metrics schema; logs schema on [`Storage::logs`])
    /// to the head.
    pub fn append(&self, batch: RecordBatch) {
        let rows = batch.num_rows();
        if rows == 0 {
            return;
        }
        if let Some(series) = &self.store.series
            && let Err(e) = series.observe(&batch)
        {
            // The flush registers them again, or refuses the batch.
            warn!(error = %e, "cannot register the series of a batch");
        }
        let mut state = self.lock();
        state.head.push(batch);
        state.head_rows += rows;
        STORED.inc_by(rows as u64);
        HEAD_ROWS.set(state.head_rows as i64);
    }

    /// Samples in the head (not yet in Parquet).
    pub fn head_rows(&self) -> usize {
        self.lock().head_rows
    }

    /// Parquet files written so far, oldest first: their paths on disk
    /// for a local store, their object keys for another store.
    pub fn files(&self) -> Vec<PathBuf> {
        let files = self.lock().files.clone();
        files
            .iter()
            .map(|f| self.store.store.locate(&f.key))
            .collect()
    }

    /// Writes the head to a new Parquet file. Blocking: call it from
    /// `spawn_blocking` in async code. Returns the file, if any rows were
    /// written. Flushes the logs store first.
    pub fn flush(&self) -> Result<Option<PathBuf>, AnalyzerError> {
        if let Some(logs) = &self.logs {
            logs.flush()?;
        }
        let _one_at_a_time = self.flush_lock.lock().unwrap_or_else(|e| e.into_inner());
        let batches = {
            let mut state = self.lock();
            if state.head.is_empty() {
                return Ok(None);
            }
            let batches = std::mem::take(&mut state.head);
            state.head_rows = 0;
            state.flushing = batches.clone();
            batches
        };
        match self.write_file(&batches) {
            Ok(file) => {
                let path = self.store.store.locate(&file.key);
                {
                    let mut state = self.lock();
                    state.flushing.clear();
                    state.files.push(file);
                    state.files.sort();
                    HEAD_ROWS.set(state.head_rows as i64);
                }
                FLUSHES.inc();
                if self.auto_compact.load(Ordering::Relaxed) {
                    compact::spawn_if_due(&self.store);
                }
                Ok(Some(path))
            }
            Err(e) => {
                // Put the rows back so the next flush retries them.
                let mut state = self.lock();
                let mut restored = std::mem::take(&mut state.flushing);
                restored.append(&mut state.head);
                state.head_rows = restored.iter().map(RecordBatch::num_rows).sum();
                state.head = restored;
                Err(e)
            }
        }
    }

    fn write_file(&self, batches: &[RecordBatch]) -> Result<DataFile, AnalyzerError> {
        // Series first: no samples file names a series no file describes.
        if let Some(series) = &self.store.series {
            for b in batches {
                series.observe(b)?;
            }
            series.persist(&self.store.store, self.store.zstd_level)?;
        }
        let (file, rows) = write_sorted(&self.store, batches, "", self.store.zstd_level, None)?;
        info!(file = %file.key, rows, "flushed head to parquet");
        Ok(file)
    }

    /// A consistent view: Parquet files plus in-memory batches.
    fn snapshot(&self) -> query::Snapshot {
        let state = self.lock();
        let mut batches = state.flushing.clone();
        batches.extend(state.head.iter().cloned());
        (state.files.clone(), batches)
    }

    /// Offers table `name` to SQL; `source` is read at every query.
    pub fn add_table(&self, name: impl Into<String>, source: TableSource) {
        self.tables
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((name.into(), source));
    }

    /// Runs a read-only SQL query over tables `samples`, `series` (id,
    /// metric name, labels of every series) and `logs`, and the tables
    /// added with [`Storage::add_table`].
    pub async fn sql(self: &Arc<Self>, query: &str) -> Result<Vec<RecordBatch>, AnalyzerError> {
        // The series before the snapshot: every file in it is described.
        let series = match &self.store.series {
            Some(series) => Some(series.batch()?),
            None => None,
        };
        let (files, head) = self.snapshot();
        let logs = self.logs.as_ref().map(|l| (l.schema.clone(), l.snapshot()));
        let sources = self
            .tables
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut extra = Vec::with_capacity(sources.len());
        for (name, source) in sources {
            let (schema, batches) = source().map_err(|message| AnalyzerError::Eval {
                what: format!("table {name}"),
                message,
            })?;
            extra.push((name, schema, batches));
        }
        if let Some(batch) = series {
            extra.push(("series".into(), series::schema(), vec![batch]));
        }
        query::run_with_logs(&self.store.store, query, files, head, logs, extra).await
    }
}

#[cfg(test)]
mod tests;
