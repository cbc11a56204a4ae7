//! The series table: series id → metric name and labels, so that samples
//! files hold no labels (they keep `metric` and `series_id`, sorted, which
//! cost nearly nothing).
//!
//! Series are registered as batches reach the head; a flush writes the
//! series not yet persisted to `series/<nanos>.parquet` *before* the
//! samples file that needs them, so a reader never finds a series id it
//! cannot name. Opening (and a reader's refresh) loads every series file.
//! SQL sees the table as `series` (`series_id`, `metric`, `labels`).
//! Files written before the table existed keep their `labels` column;
//! compaction registers their series and drops it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use datafusion::arrow::array::{
    Array, ArrayRef, MapArray, MapBuilder, RecordBatch, StringArray, StringBuilder, UInt64Array,
    UInt64Builder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjPath;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use vigie_model::Labels;
use vigie_model::schema::{col, column, labels_at, labels_type};

use super::store::Store;
use crate::AnalyzerError;
use crate::promql::LabelSet;
use crate::promql::value::NAME;

/// Series files at most before they are merged into one.
const MAX_FILES: usize = 16;

/// One series: metric name and labels (without `__name__`).
pub(crate) struct Series {
    /// Metric name.
    pub metric: String,
    /// Labels other than the name.
    pub labels: Labels,
}

impl Series {
    /// The labels as PromQL sees them, `__name__` included.
    pub(crate) fn label_set(&self) -> LabelSet {
        let mut set: LabelSet = self
            .labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        set.insert(NAME.into(), self.metric.clone());
        set
    }
}

#[derive(Default)]
struct Inner {
    by_id: HashMap<u64, Arc<Series>>,
    /// Ids not yet in a series file, in order of arrival.
    pending: Vec<u64>,
    /// Series files read or written.
    files: HashSet<ObjPath>,
    /// The SQL batch, while no series was added since.
    batch: Option<RecordBatch>,
}

/// The series table of a samples store.
pub(crate) struct SeriesTable {
    /// Key prefix of the series files.
    prefix: ObjPath,
    inner: Mutex<Inner>,
}

/// Schema of the series files and of SQL's `series`.
pub(crate) fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(col::SERIES_ID, DataType::UInt64, false),
        Field::new(col::METRIC, DataType::Utf8, false),
        Field::new(col::LABELS, labels_type(), false),
    ]))
}

impl SeriesTable {
    /// Loads every series file under `prefix` of `store`.
    pub(crate) fn open(store: &Store, prefix: ObjPath) -> Result<Self, AnalyzerError> {
        let table = Self {
            prefix,
            inner: Mutex::default(),
        };
        let listed = store.list_blocking(&table.prefix)?;
        for meta in listed {
            if meta.location.as_ref().ends_with(".parquet") {
                let bytes = match store.get(&meta.location) {
                    Ok(bytes) => bytes,
                    // Merged away by the writer since the listing.
                    Err(AnalyzerError::Store {
                        source: object_store::Error::NotFound { .. },
                        ..
                    }) => continue,
                    Err(e) => return Err(e),
                };
                table.load(meta.location, bytes)?;
            }
        }
        Ok(table)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads series file `key` (its bytes) into the table.
    fn load(&self, key: ObjPath, bytes: bytes::Bytes) -> Result<(), AnalyzerError> {
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?.build()?;
        let mut inner = self.lock();
        for batch in reader {
            add(&mut inner, &batch?, false)?;
        }
        inner.files.insert(key);
        Ok(())
    }

    /// Registers the series of a metrics batch (or of an old samples file
    /// with a `labels` column) not seen yet.
    pub(crate) fn observe(&self, batch: &RecordBatch) -> Result<(), AnalyzerError> {
        add(&mut self.lock(), batch, true)
    }

    /// Series `id`, if known.
    pub(crate) fn get(&self, id: u64) -> Option<Arc<Series>> {
        self.lock().by_id.get(&id).cloned()
    }

    /// Writes the series not yet persisted as one series file, blocking.
    pub(crate) fn persist(&self, store: &Store, zstd_level: i32) -> Result<(), AnalyzerError> {
        let (ids, batch) = {
            let inner = self.lock();
            if inner.pending.is_empty() {
                return Ok(());
            }
            let ids = inner.pending.clone();
            let batch = to_batch(
                ids.iter()
                    .filter_map(|id| Some((*id, inner.by_id.get(id)?))),
            )?;
            (ids, batch)
        };
        let key = self.write(store, zstd_level, &batch)?;
        let mut inner = self.lock();
        let written: HashSet<u64> = ids.into_iter().collect();
        inner.pending.retain(|id| !written.contains(id));
        inner.files.insert(key);
        Ok(())
    }

    /// Merges the series files into one when there are more than
    /// [`MAX_FILES`] (series churn leaves one per flush), blocking. The
    /// merged file is written before the others are deleted, so a reader
    /// always finds every series in some file. Returns whether it merged.
    pub(crate) fn compact(&self, store: &Store, zstd_level: i32) -> Result<bool, AnalyzerError> {
        if self.lock().files.len() <= MAX_FILES {
            return Ok(false);
        }
        self.rewrite(store, zstd_level, |_| true)?;
        Ok(true)
    }

    /// Forgets the series that are neither in `live` (the ids of every
    /// samples file) nor waiting for their series file, and rewrites the
    /// series files as one without them, blocking. The caller holds off
    /// flushes meanwhile; a series that comes back later is registered
    /// again by the flush that stores it. Returns how many were dropped.
    pub(crate) fn prune(
        &self,
        store: &Store,
        zstd_level: i32,
        live: &HashSet<u64>,
    ) -> Result<usize, AnalyzerError> {
        let before = self.lock().by_id.len();
        self.rewrite(store, zstd_level, |id| live.contains(&id))?;
        Ok(before.saturating_sub(self.lock().by_id.len()))
    }

    /// Writes the persisted series that `keep` keeps as one series file,
    /// then forgets the others and deletes the older files.
    fn rewrite(
        &self,
        store: &Store,
        zstd_level: i32,
        keep: impl Fn(u64) -> bool,
    ) -> Result<(), AnalyzerError> {
        let (old, batch, gone) = {
            let inner = self.lock();
            let pending: HashSet<u64> = inner.pending.iter().copied().collect();
            let mut kept: Vec<(u64, &Arc<Series>)> = Vec::with_capacity(inner.by_id.len());
            let mut gone = Vec::new();
            for (id, s) in &inner.by_id {
                if pending.contains(id) {
                    continue; // their own file comes with the next flush
                }
                if keep(*id) {
                    kept.push((*id, s));
                } else {
                    gone.push(*id);
                }
            }
            kept.sort_unstable_by_key(|(id, _)| *id);
            let old: Vec<ObjPath> = inner.files.iter().cloned().collect();
            (old, to_batch(kept.into_iter())?, gone)
        };
        let key = self.write(store, zstd_level, &batch)?;
        {
            let mut inner = self.lock();
            for k in &old {
                inner.files.remove(k);
            }
            inner.files.insert(key);
            if !gone.is_empty() {
                for id in &gone {
                    inner.by_id.remove(id);
                }
                inner.batch = None;
            }
        }
        for k in &old {
            store.delete(k)?;
        }
        Ok(())
    }

    /// Writes `batch` as a new series file; returns its key.
    fn write(
        &self,
        store: &Store,
        zstd_level: i32,
        batch: &RecordBatch,
    ) -> Result<ObjPath, AnalyzerError> {
        let mut buf = Vec::new();
        let mut writer = ArrowWriter::try_new(
            &mut buf,
            schema(),
            Some(super::writer_props(zstd_level, None)),
        )?;
        writer.write(batch)?;
        writer.close()?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let key = self.prefix.clone().join(format!("{nanos}.parquet"));
        store.put(&key, buf)?;
        Ok(key)
    }

    /// Loads the series files another process wrote since the last look.
    pub(crate) async fn refresh(&self, store: &Store) -> Result<(), AnalyzerError> {
        let listed = store.list(&self.prefix).await?;
        for meta in listed {
            if !meta.location.as_ref().ends_with(".parquet")
                || self.lock().files.contains(&meta.location)
            {
                continue;
            }
            let object = store.object();
            let bytes = match async { object.get(&meta.location).await?.bytes().await }.await {
                Ok(bytes) => bytes,
                // Merged away since the listing: the merged file has them.
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(source) => {
                    return Err(AnalyzerError::Store {
                        what: format!("reading {}", meta.location),
                        source,
                    });
                }
            };
            self.load(meta.location, bytes)?;
        }
        Ok(())
    }

    /// Every series, as SQL's `series` table.
    pub(crate) fn batch(&self) -> Result<RecordBatch, AnalyzerError> {
        let mut inner = self.lock();
        if let Some(b) = &inner.batch {
            return Ok(b.clone());
        }
        let mut ids: Vec<u64> = inner.by_id.keys().copied().collect();
        ids.sort_unstable();
        let b = to_batch(
            ids.iter()
                .filter_map(|id| Some((*id, inner.by_id.get(id)?))),
        )?;
        inner.batch = Some(b.clone());
        Ok(b)
    }
}

/// Adds the unseen series of `batch` (columns `series_id`, `metric`,
/// `labels`); `pending`: they still need a series file.
fn add(inner: &mut Inner, batch: &RecordBatch, pending: bool) -> Result<(), AnalyzerError> {
    let ids = column::<UInt64Array>(batch, col::SERIES_ID)?;
    let mut metric: Option<ArrayRef> = None;
    for row in 0..batch.num_rows() {
        let id = ids.value(row);
        if inner.by_id.contains_key(&id) {
            continue;
        }
        let m = match &metric {
            Some(m) => m,
            None => {
                let raw = batch.column_by_name(col::METRIC).ok_or_else(|| {
                    vigie_model::ModelError::Schema("series: no `metric` column".into())
                })?;
                metric.insert(cast(raw, &DataType::Utf8)?)
            }
        };
        let m = m
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| vigie_model::ModelError::Schema("series: `metric` type".into()))?;
        let labels = labels_at(column::<MapArray>(batch, col::LABELS)?, row)?;
        inner.by_id.insert(
            id,
            Arc::new(Series {
                metric: if m.is_null(row) {
                    String::new()
                } else {
                    m.value(row).to_string()
                },
                labels,
            }),
        );
        if pending {
            inner.pending.push(id);
        }
        inner.batch = None;
    }
    Ok(())
}

fn to_batch<'a>(
    series: impl Iterator<Item = (u64, &'a Arc<Series>)>,
) -> Result<RecordBatch, AnalyzerError> {
    let mut ids = UInt64Builder::new();
    let mut metric = StringBuilder::new();
    let mut labels = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    for (id, s) in series {
        ids.append_value(id);
        metric.append_value(&s.metric);
        for (k, v) in s.labels.iter() {
            labels.keys().append_value(k);
            labels.values().append_value(v);
        }
        labels.append(true)?;
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(ids.finish()),
        Arc::new(metric.finish()),
        Arc::new(labels.finish()),
    ];
    Ok(RecordBatch::try_new(schema(), columns)?)
}

/// An all-empty `labels` column of `rows` rows (for samples files that
/// hold no labels, read back in the metrics schema).
pub(crate) fn empty_labels(rows: usize) -> Result<ArrayRef, AnalyzerError> {
    let mut labels = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    for _ in 0..rows {
        labels.append(true)?;
    }
    Ok(Arc::new(labels.finish()))
}
