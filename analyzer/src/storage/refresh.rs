//! Refresh: a process reading a store another process writes re-lists it
//! at an interval (`[analyzer.storage] refresh_interval`) and serves the
//! files it finds.
//!
//! The writer puts a compacted file before it deletes the inputs (at its
//! next retention pass), so a listing may hold both: the inputs a
//! compacted file names in its metadata (`vigie.replaces`, read once per
//! compacted file, from its footer) are left out, and no row is doubled.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tracing::warn;

use super::compact::replaced_by;
use super::{DataFile, Files};
use crate::AnalyzerError;
use crate::metrics::ERRORS;

impl Files {
    /// Re-lists the store and makes what it holds the view.
    pub(super) async fn refresh(&self) -> Result<(), AnalyzerError> {
        // Series first, so that every file served names known series.
        if let Some(series) = &self.series {
            series.refresh(&self.store).await?;
        }
        let mut files: Vec<DataFile> = self
            .store
            .list(&self.prefix)
            .await?
            .into_iter()
            .map(|m| DataFile {
                key: m.location,
                size: m.size,
            })
            .filter(|f| f.name().ends_with(".parquet"))
            .collect();
        let known: HashMap<_, _> = self
            .replaces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut replaces = HashMap::new();
        for f in files.iter().filter(|f| f.name().ends_with("-c.parquet")) {
            let names = match known.get(&f.key) {
                Some(names) => names.clone(),
                None => replaced_by(self.store.object(), f.clone())
                    .await
                    .map_err(|source| AnalyzerError::Store {
                        what: format!("reading the footer of {}", f.key),
                        source,
                    })?,
            };
            replaces.insert(f.key.clone(), names);
        }
        let replaced: HashSet<&str> = replaces.values().flatten().map(String::as_str).collect();
        files.retain(|f| !replaced.contains(f.name()));
        files.sort();
        self.lock().files = files;
        *self.replaces.lock().unwrap_or_else(|e| e.into_inner()) = replaces;
        Ok(())
    }
}

/// Refreshes `files` every `every` on the store's I/O runtime, until the
/// storage is dropped.
pub(super) fn start(files: &Arc<Files>, every: Duration) {
    let weak: Weak<Files> = Arc::downgrade(files);
    files.store.spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(files) = weak.upgrade() else {
                return;
            };
            if let Err(e) = files.refresh().await {
                ERRORS.with_label_values(&["storage", "refresh"]).inc();
                warn!(prefix = %files.prefix, error = %e, "cannot refresh the file list; serving the last one");
            }
        }
    });
}
