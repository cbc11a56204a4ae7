//! Idempotent appends: the newest stored timestamp of every series.
//!
//! Kafka delivers at least once, so a batch can come back after a crash or
//! a rebalance. A sample whose timestamp is not newer than the newest
//! stored one of its series is dropped (a duplicate when equal, out of
//! order when older, as Prometheus' TSDB rejects it) and counted, so
//! replays never create duplicate rows. The watermarks are rebuilt from
//! storage at start-up ([`Watermarks::restore`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{
    Array, BooleanArray, RecordBatch, TimestampMillisecondArray, UInt64Array,
};
use datafusion::arrow::compute::filter_record_batch;
use vigie_model::schema::{col, column};

use crate::AnalyzerError;
use crate::metrics::REJECTED;
use crate::storage::Storage;

/// Newest stored timestamp per series id.
#[derive(Default)]
pub struct Watermarks {
    last: Mutex<HashMap<u64, i64>>,
}

impl Watermarks {
    /// Empty watermarks.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, i64>> {
        self.last.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of series with a stored sample.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Loads the newest timestamp of every stored series.
    pub async fn restore(&self, storage: &Arc<Storage>) -> Result<usize, AnalyzerError> {
        let batches = storage
            .sql("SELECT series_id, max(ts) AS ts FROM samples GROUP BY series_id")
            .await?;
        let mut last = self.lock();
        for b in &batches {
            let ids = column::<UInt64Array>(b, "series_id")?;
            let ts = column::<TimestampMillisecondArray>(b, "ts")?;
            for i in 0..b.num_rows() {
                if ts.is_valid(i) {
                    last.insert(ids.value(i), ts.value(i));
                }
            }
        }
        Ok(last.len())
    }

    /// Keeps the rows of a metrics batch that are newer than their series'
    /// watermark (and advances it). Returns `None` when nothing is new.
    pub fn admit(&self, batch: &RecordBatch) -> Result<Option<RecordBatch>, AnalyzerError> {
        let ids = column::<UInt64Array>(batch, col::SERIES_ID)?;
        let ts = column::<TimestampMillisecondArray>(batch, col::TS)?;
        let mut last = self.lock();
        let mut keep = Vec::with_capacity(batch.num_rows());
        let (mut duplicates, mut older) = (0u64, 0u64);
        for i in 0..batch.num_rows() {
            let (id, t) = (ids.value(i), ts.value(i));
            match last.get(&id) {
                Some(&l) if t == l => {
                    duplicates += 1;
                    keep.push(false);
                }
                Some(&l) if t < l => {
                    older += 1;
                    keep.push(false);
                }
                _ => {
                    last.insert(id, t);
                    keep.push(true);
                }
            }
        }
        if duplicates > 0 {
            REJECTED
                .with_label_values(&["duplicate"])
                .inc_by(duplicates);
        }
        if older > 0 {
            REJECTED.with_label_values(&["out_of_order"]).inc_by(older);
        }
        if duplicates + older == 0 {
            return Ok(Some(batch.clone()));
        }
        if duplicates + older == batch.num_rows() as u64 {
            return Ok(None);
        }
        Ok(Some(filter_record_batch(batch, &BooleanArray::from(keep))?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigie_model::schema::samples_to_batch;
    use vigie_model::{Labels, Sample};

    fn batch(points: &[(&str, i64)]) -> RecordBatch {
        let samples: Vec<Sample> = points
            .iter()
            .map(|(job, ts)| Sample::new("m", Labels::new().with("job", *job), *ts, 1.0))
            .collect();
        samples_to_batch(&samples).expect("batch")
    }

    #[test]
    fn replayed_rows_are_dropped_new_ones_kept() {
        let w = Watermarks::new();
        let first = batch(&[("a", 10), ("a", 20), ("b", 10)]);
        assert_eq!(w.admit(&first).expect("admit").expect("rows").num_rows(), 3);
        assert!(
            w.admit(&first).expect("admit").is_none(),
            "a full replay adds nothing"
        );
        let mixed = batch(&[("a", 20), ("a", 30), ("b", 5), ("c", 1)]);
        let kept = w.admit(&mixed).expect("admit").expect("rows");
        assert_eq!(kept.num_rows(), 2);
    }

    #[tokio::test]
    async fn restores_from_storage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Arc::new(Storage::open(dir.path(), 3).expect("open"));
        storage.append(batch(&[("a", 10), ("a", 20), ("b", 7)]));
        storage.flush().expect("flush");
        let w = Watermarks::new();
        assert_eq!(w.restore(&storage).await.expect("restore"), 2);
        assert!(
            w.admit(&batch(&[("a", 20), ("b", 7)]))
                .expect("admit")
                .is_none()
        );
        assert!(w.admit(&batch(&[("a", 21)])).expect("admit").is_some());
    }
}
