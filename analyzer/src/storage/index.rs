//! Per-file series index for PromQL selection.
//!
//! A samples file is immutable and sorted by series id then time, so each
//! series is one run of consecutive rows. The first selection touching a
//! file reads its `metric`, `labels` and `series_id` columns once and
//! keeps, with the file's Parquet metadata (page index included), every
//! series' label set and row ranges. Later selections match their label
//! matchers against those label sets without any IO, then read only the
//! `ts` and value columns of the matching rows: a Parquet row selection
//! skips the pages of every other series.
//!
//! Entries live as long as their file is in the storage's file list.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use datafusion::arrow::array::{Array, ArrayRef, Float64Array, MapArray, StringArray, UInt64Array};
use datafusion::arrow::array::{RecordBatch, TimestampMillisecondArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use futures::TryStreamExt;
use futures::future::{BoxFuture, FutureExt};
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, RowSelection};
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask};
use parquet::errors::ParquetError;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader};
use vigie_model::schema::{col, column, labels_at};

use super::decoded::DecodedCache;
use super::series::SeriesTable;
use super::{DataFile, values};
use crate::AnalyzerError;
use crate::promql::LabelSet;
use crate::promql::value::NAME;

/// Rows decoded at a time.
const BATCH_ROWS: usize = 64 * 1024;

/// One series of a file.
pub(crate) struct IndexedSeries {
    /// Series id.
    pub id: u64,
    /// Labels, `__name__` included.
    pub labels: Arc<LabelSet>,
    /// Its rows in the file (one range when the file is sorted by series).
    pub rows: Vec<Range<usize>>,
}

/// Numbers the indexes built, for the keys of module `decoded`.
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// What a file holds, by series.
pub(crate) struct FileIndex {
    /// This index's number (unique in the process).
    pub id: u64,
    meta: ArrowReaderMetadata,
    /// Rows in the file.
    rows: usize,
    /// Every series, by first row.
    pub series: Vec<IndexedSeries>,
    /// Positions in `series` by metric name (`""`: none).
    by_name: HashMap<String, Vec<usize>>,
}

/// Indexes of the files queried so far, by key, and their series'
/// decoded points (module `decoded`).
pub(crate) struct IndexCache {
    files: Mutex<HashMap<ObjPath, Arc<FileIndex>>>,
    /// Labels of the files that hold none (module `series`).
    series: Option<Arc<SeriesTable>>,
    /// Decoded points by (file index, series).
    pub decoded: DecodedCache,
}

impl IndexCache {
    /// A cache naming series through `series`, keeping up to
    /// `decoded_budget` bytes of decoded points.
    pub fn new(series: Option<Arc<SeriesTable>>, decoded_budget: u64) -> Self {
        Self {
            files: Mutex::default(),
            series,
            decoded: DecodedCache::new(decoded_budget),
        }
    }

    /// The index of `file`, read now if it is not cached yet.
    pub async fn get(
        &self,
        store: &Arc<dyn ObjectStore>,
        file: &DataFile,
    ) -> Result<Arc<FileIndex>, AnalyzerError> {
        if let Some(hit) = self.lock().get(&file.key) {
            return Ok(hit.clone());
        }
        let index = Arc::new(FileIndex::build(store, file, self.series.as_deref()).await?);
        self.lock().insert(file.key.clone(), index.clone());
        Ok(index)
    }

    /// Forgets the files not in `live` (compacted or removed by retention).
    pub fn retain(&self, live: &[DataFile]) {
        let mut files = self.lock();
        let live: HashSet<&ObjPath> = live.iter().map(|f| &f.key).collect();
        if files.keys().any(|k| !live.contains(k)) {
            let mut gone = Vec::new();
            files.retain(|k, index| {
                let keep = live.contains(k);
                if !keep {
                    gone.push(index.id);
                }
                keep
            });
            drop(files);
            self.decoded.forget_files(&gone);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ObjPath, Arc<FileIndex>>> {
        self.files.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Reads byte ranges of one data file from the object store, for the
/// Parquet reader: only the footer, the page index and the pages a
/// selection needs are fetched.
struct FileReader {
    store: Arc<dyn ObjectStore>,
    key: ObjPath,
    size: u64,
}

fn reader(store: &Arc<dyn ObjectStore>, file: &DataFile) -> FileReader {
    FileReader {
        store: store.clone(),
        key: file.key.clone(),
        size: file.size,
    }
}

fn parquet_err(e: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl AsyncFileReader for FileReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            self.store
                .get_range(&self.key, range)
                .await
                .map_err(parquet_err)
        }
        .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move {
            self.store
                .get_ranges(&self.key, &ranges)
                .await
                .map_err(parquet_err)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        let size = self.size;
        async move {
            let metadata = ParquetMetaDataReader::new()
                .with_arrow_reader_options(options)
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

fn schema_err(what: &str) -> AnalyzerError {
    vigie_model::ModelError::Schema(format!("index: column `{what}` missing or mistyped")).into()
}

/// The metric name at `row` of a `metric` column (plain or dictionary
/// strings); `None` when null.
fn metric_at(metric: &ArrayRef, row: usize) -> Result<Option<String>, AnalyzerError> {
    if metric.is_null(row) {
        return Ok(None);
    }
    let one = cast(&metric.slice(row, 1), &DataType::Utf8)?;
    let s = one
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| schema_err(col::METRIC))?;
    Ok(Some(s.value(0).to_string()))
}

impl FileIndex {
    /// Reads the series of samples file `file`; their labels come from
    /// its `labels` column, or from `series` when it has none.
    async fn build(
        store: &Arc<dyn ObjectStore>,
        file: &DataFile,
        series_table: Option<&SeriesTable>,
    ) -> Result<Self, AnalyzerError> {
        let mut input = reader(store, file);
        let meta = ArrowReaderMetadata::load_async(
            &mut input,
            ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional),
        )
        .await?;
        let rows = usize::try_from(meta.metadata().file_metadata().num_rows()).unwrap_or(0);
        let mask = ProjectionMask::columns(
            meta.parquet_schema(),
            [col::METRIC, col::LABELS, col::SERIES_ID],
        );
        let mut stream = ParquetRecordBatchStreamBuilder::new_with_metadata(input, meta.clone())
            .with_projection(mask)
            .with_batch_size(BATCH_ROWS)
            .build()?;
        let mut series: Vec<IndexedSeries> = Vec::new();
        let mut by_id: HashMap<u64, usize> = HashMap::new();
        let mut row = 0usize;
        let mut last: Option<usize> = None;
        while let Some(batch) = stream.try_next().await? {
            let ids = column::<UInt64Array>(&batch, col::SERIES_ID)?;
            let labels = match batch.column_by_name(col::LABELS) {
                Some(_) => Some(column::<MapArray>(&batch, col::LABELS)?),
                None => None,
            };
            let metric = batch
                .column_by_name(col::METRIC)
                .ok_or_else(|| schema_err(col::METRIC))?;
            for i in 0..batch.num_rows() {
                let id = ids.value(i);
                let s = match last {
                    Some(s) if series[s].id == id => s,
                    _ => match by_id.get(&id) {
                        Some(&s) => s,
                        None => {
                            let set = match labels {
                                Some(labels) => {
                                    let mut set: LabelSet = labels_at(labels, i)?
                                        .iter()
                                        .map(|(k, v)| (k.to_string(), v.to_string()))
                                        .collect();
                                    if let Some(name) = metric_at(metric, i)? {
                                        set.insert(NAME.into(), name);
                                    }
                                    set
                                }
                                None => series_table
                                    .and_then(|t| t.get(id))
                                    .map(|s| s.label_set())
                                    .ok_or_else(|| {
                                        vigie_model::ModelError::Schema(format!(
                                            "{}: series {id} is in no series file",
                                            file.key
                                        ))
                                    })?,
                            };
                            series.push(IndexedSeries {
                                id,
                                labels: Arc::new(set),
                                rows: Vec::new(),
                            });
                            by_id.insert(id, series.len() - 1);
                            series.len() - 1
                        }
                    },
                };
                let ranges = &mut series[s].rows;
                match ranges.last_mut() {
                    Some(r) if r.end == row => r.end += 1,
                    _ => ranges.push(row..row + 1),
                }
                last = Some(s);
                row += 1;
            }
        }
        let mut by_name: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, s) in series.iter().enumerate() {
            let name = s.labels.get(NAME).map(String::as_str).unwrap_or_default();
            by_name.entry(name.to_string()).or_default().push(i);
        }
        Ok(Self {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            meta,
            rows,
            series,
            by_name,
        })
    }

    /// Positions in [`FileIndex::series`] of the series named `name`.
    pub fn named(&self, name: &str) -> &[usize] {
        self.by_name
            .get(name)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Points in `[start_ms, end_ms]` of the series at `wanted` (indexes
    /// into [`FileIndex::series`], each with the caller's tag), reading
    /// only their rows' `ts` and value columns. Points come in file order.
    pub async fn read(
        &self,
        store: &Arc<dyn ObjectStore>,
        file: &DataFile,
        wanted: &[(usize, usize)],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<(usize, Vec<(i64, f64)>)>, AnalyzerError> {
        // (rows, tag, output slot), by first row.
        let mut ranges: Vec<(Range<usize>, usize)> = Vec::new();
        let mut out: Vec<(usize, Vec<(i64, f64)>)> = Vec::with_capacity(wanted.len());
        for &(i, tag) in wanted {
            let s = &self.series[i];
            let n: usize = s.rows.iter().map(ExactSizeIterator::len).sum();
            out.push((tag, Vec::with_capacity(n)));
            ranges.extend(s.rows.iter().map(|r| (r.clone(), out.len() - 1)));
        }
        if ranges.is_empty() {
            return Ok(out);
        }
        ranges.sort_by_key(|r| r.0.start);
        let selection =
            RowSelection::from_consecutive_ranges(ranges.iter().map(|r| r.0.clone()), self.rows);
        let schema = self.meta.parquet_schema();
        let file_schema = self.meta.schema();
        // The value columns of this file's layout (older files lack some).
        let columns: Vec<&str> = [
            col::TS,
            col::VALUE,
            values::M,
            values::E,
            values::F,
            values::G,
            values::B,
        ]
        .into_iter()
        .filter(|c| file_schema.field_with_name(c).is_ok())
        .collect();
        let mut stream = ParquetRecordBatchStreamBuilder::new_with_metadata(
            reader(store, file),
            self.meta.clone(),
        )
        .with_projection(ProjectionMask::columns(schema, columns.iter().copied()))
        .with_row_selection(selection)
        .with_batch_size(BATCH_ROWS)
        .build()?;
        // Rows arrive in the order of `ranges`: walk them alongside.
        let mut at = 0usize;
        let mut left = ranges[0].0.len();
        while let Some(batch) = stream.try_next().await? {
            let batch: RecordBatch = batch;
            let ts = column::<TimestampMillisecondArray>(&batch, col::TS)?;
            let values = values::decode_values(&batch)?;
            let values = values
                .as_any()
                .downcast_ref::<Float64Array>()
                .ok_or_else(|| schema_err(col::VALUE))?;
            for i in 0..batch.num_rows() {
                while left == 0 {
                    at += 1;
                    left = ranges
                        .get(at)
                        .map(|r| r.0.len())
                        .ok_or_else(|| schema_err("row selection"))?;
                }
                left -= 1;
                let t = ts.value(i);
                if t >= start_ms && t <= end_ms && values.is_valid(i) {
                    out[ranges[at].1].1.push((t, values.value(i)));
                }
            }
        }
        Ok(out)
    }
}
