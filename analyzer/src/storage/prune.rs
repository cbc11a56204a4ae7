//! Forgetting series that no samples file holds any more.
//!
//! Retention drops whole files; the series those files alone held (a
//! container that was replaced, a disk that was swapped) would otherwise
//! stay in the series table, in memory and on disk, for ever. After a
//! retention pass that dropped files, [`Storage::prune_series`] reads the
//! series ids of the remaining files (through the per-file series index,
//! module `index`) and rewrites the series table without the others.
//!
//! Safety: the ids are read first, then, with flushes and compactions held
//! off, the table is rewritten only if the file list is still the one the
//! ids came from (otherwise the next pass tries again). A series that is
//! only in the head is dropped too, but the flush that stores it
//! registers it again before its samples file is written (module
//! `series`), so no file ever names a series the table cannot.

use std::collections::HashSet;
use std::sync::Arc;

use tracing::info;

use super::Storage;
use crate::AnalyzerError;

impl Storage {
    /// Drops from the series table the series that no samples file holds;
    /// returns how many. Zero when the store has no series table or its
    /// files changed while their ids were read.
    pub async fn prune_series(self: &Arc<Self>) -> Result<usize, AnalyzerError> {
        if self.store.series.is_none() {
            return Ok(0);
        }
        let files = self.lock().files.clone();
        let object = self.store.store.object();
        let mut live = HashSet::new();
        for file in &files {
            let index = self.series_index.get(&object, file).await?;
            live.extend(index.series.iter().map(|s| s.id));
        }
        let this = self.clone();
        let dropped = tokio::task::spawn_blocking(move || {
            let _no_flush = this.flush_lock.lock().unwrap_or_else(|e| e.into_inner());
            let _no_compaction = this
                .store
                .compact_lock
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if this.lock().files != files {
                return Ok(0);
            }
            match &this.store.series {
                Some(series) => series.prune(&this.store.store, this.store.zstd_level, &live),
                None => Ok(0),
            }
        })
        .await
        .map_err(|e| AnalyzerError::Io {
            path: "series prune task".into(),
            source: std::io::Error::other(e.to_string()),
        })??;
        if dropped > 0 {
            info!(series = dropped, "series no file holds any more forgotten");
        }
        Ok(dropped)
    }
}
