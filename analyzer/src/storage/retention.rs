//! Retention: Parquet files older than the configured age, or the oldest
//! ones beyond the configured size, are dropped.
//!
//! A file leaves the query snapshot first and is deleted from disk on the
//! next pass, so a query that took its snapshot just before still finds
//! it.

use std::time::Duration;

use tracing::{info, warn};

use super::Storage;
use crate::AnalyzerError;
use crate::metrics::ERRORS;

/// The newest timestamp a file holds, from its name.
fn max_ts(name: &str) -> Option<i64> {
    super::time_range(name).map(|r| r.1)
}

impl Storage {
    /// Drops files whose newest sample is older than `max_age` (zero: no
    /// age limit), then the oldest files while the total size exceeds
    /// `max_bytes` (zero: no size limit); the logs store follows the same
    /// rules. Returns the number of files dropped.
    pub fn apply_retention(
        &self,
        now_ms: i64,
        max_age: Duration,
        max_bytes: u64,
    ) -> Result<usize, AnalyzerError> {
        let mut dropped = 0;
        let doomed = {
            let mut state = self.lock();
            let old = std::mem::take(&mut state.doomed);
            let mut keep = Vec::with_capacity(state.files.len());
            let mut leaving = Vec::new();
            let cutoff = now_ms.saturating_sub(max_age.as_millis() as i64);
            for f in std::mem::take(&mut state.files) {
                if !max_age.is_zero() && max_ts(f.name()).is_some_and(|t| t < cutoff) {
                    leaving.push(f);
                } else {
                    keep.push(f);
                }
            }
            if max_bytes > 0 {
                let mut total: u64 = keep.iter().map(|f| f.size).sum();
                // Files are kept oldest first; drop from the front.
                let mut first_kept = 0;
                while total > max_bytes && first_kept < keep.len() {
                    total = total.saturating_sub(keep[first_kept].size);
                    first_kept += 1;
                }
                leaving.extend(keep.drain(..first_kept));
            }
            dropped += leaving.len();
            state.files = keep;
            state.doomed = leaving;
            old
        };
        for f in doomed {
            if let Err(e) = self.store.store.delete(&f.key) {
                ERRORS.with_label_values(&["storage", "retention"]).inc();
                warn!(file = %f.key, error = %e, "cannot delete expired file");
            }
        }
        if dropped > 0 {
            info!(prefix = %self.store.prefix, files = dropped, "retention dropped files");
        }
        if let Some(logs) = self.logs() {
            dropped += logs.apply_retention(now_ms, max_age, max_bytes)?;
        }
        Ok(dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use vigie_model::schema::samples_to_batch;
    use vigie_model::{Labels, Sample};

    fn batch(from: i64) -> datafusion::arrow::array::RecordBatch {
        let samples: Vec<Sample> = (0..100)
            .map(|i| Sample::new("m", Labels::new(), from + i, i as f64))
            .collect();
        samples_to_batch(&samples).expect("batch")
    }

    async fn rows(storage: &Arc<Storage>) -> usize {
        storage
            .sql("SELECT * FROM samples")
            .await
            .expect("query")
            .iter()
            .map(|b| b.num_rows())
            .sum()
    }

    #[tokio::test]
    async fn old_files_leave_queries_then_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Arc::new(Storage::open(dir.path(), 3).expect("open"));
        storage.append(batch(1_000));
        let old = storage.flush().expect("flush").expect("file");
        storage.append(batch(100_000));
        storage.flush().expect("flush");
        let dropped = storage
            .apply_retention(100_000 + 50_000, Duration::from_secs(60), 0)
            .expect("retention");
        assert_eq!(dropped, 1);
        assert_eq!(rows(&storage).await, 100, "the old file left the snapshot");
        assert!(old.exists(), "deleted only on the next pass");
        storage
            .apply_retention(150_000, Duration::from_secs(60), 0)
            .expect("retention");
        assert!(!old.exists());
        assert_eq!(rows(&storage).await, 100);
    }

    #[tokio::test]
    async fn size_limit_drops_the_oldest_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Arc::new(Storage::open(dir.path(), 3).expect("open"));
        let mut files = Vec::new();
        for i in 0..3 {
            storage.append(batch(i * 1_000));
            files.push(storage.flush().expect("flush").expect("file"));
        }
        let one = std::fs::metadata(&files[2]).expect("meta").len();
        storage
            .apply_retention(0, Duration::ZERO, one + one / 2)
            .expect("retention");
        assert_eq!(storage.files(), vec![files[2].clone()]);
    }

    #[test]
    fn reads_the_newest_timestamp_from_the_name() {
        assert_eq!(
            max_ts("d/000000000001000-000000000002000-77.parquet"),
            Some(2000)
        );
        assert_eq!(max_ts("d/junk.parquet"), None);
    }
}
