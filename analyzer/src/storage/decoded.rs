//! Decoded points of compacted and flushed files, kept for later queries.
//!
//! Reading a series from a Parquet file means fetching its pages,
//! decompressing them (zstd) and decoding `ts` and the decimal values
//! (module `values`) again at every query. Files are immutable, so PromQL
//! selection (module `select`) keeps each series' decoded points per file
//! here, as Prometheus keeps chunks mapped and VictoriaMetrics keeps
//! blocks cached: later queries slice them by time without any IO.
//!
//! The cache holds at most a budget of bytes (`[analyzer.storage]
//! decoded_cache_bytes`); beyond it the least recently used entries go.
//! A file's entries go with the file (compaction, retention). Its size is
//! the gauge `vigie_storage_decoded_cache_bytes`; hits and misses count in
//! `vigie_storage_decoded_cache_requests_total`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::metrics::{DECODED_CACHE_BYTES, DECODED_CACHE_REQUESTS};

/// The points `(ms, value)` of one series in one file, in time order.
pub(crate) type Points = Arc<[(i64, f64)]>;

/// A cache key: file (its index's number) and series (position in it).
pub(crate) type Key = (u64, usize);

/// Default budget: 256 MiB, some 16 M points (a day of 10,000 series at
/// 15 s is 58 M points).
pub const DEFAULT_BUDGET: u64 = 256 << 20;

/// Bytes an entry is counted for: its points plus bookkeeping.
fn cost(points: &Points) -> u64 {
    (std::mem::size_of_val::<[(i64, f64)]>(points) + 96) as u64
}

#[derive(Default)]
struct Lru {
    entries: HashMap<Key, (Points, u64)>,
    /// Entries by last use.
    by_use: BTreeMap<u64, Key>,
    clock: u64,
    bytes: u64,
}

/// Decoded points by (file, series), least recently used dropped first.
pub(crate) struct DecodedCache {
    budget: AtomicU64,
    lru: Mutex<Lru>,
}

impl DecodedCache {
    /// A cache of at most `budget` bytes (0: keeps nothing).
    pub fn new(budget: u64) -> Self {
        Self {
            budget: AtomicU64::new(budget),
            lru: Mutex::default(),
        }
    }

    /// True when the cache keeps anything.
    pub fn enabled(&self) -> bool {
        self.budget() > 0
    }

    fn budget(&self) -> u64 {
        self.budget.load(Ordering::Relaxed)
    }

    /// Changes the budget, dropping the least recently used entries
    /// beyond it.
    pub fn set_budget(&self, budget: u64) {
        self.budget.store(budget, Ordering::Relaxed);
        let mut lru = self.lock();
        Self::evict(&mut lru, budget);
    }

    fn evict(lru: &mut Lru, budget: u64) {
        while lru.bytes > budget {
            let Some((_, oldest)) = lru.by_use.pop_first() else {
                break;
            };
            if let Some((gone, _)) = lru.entries.remove(&oldest) {
                lru.bytes -= cost(&gone);
            }
        }
        DECODED_CACHE_BYTES.set(i64::try_from(lru.bytes).unwrap_or(i64::MAX));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        self.lru.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The points of `key`, if kept (marked as just used).
    pub fn get(&self, key: Key) -> Option<Points> {
        let mut lru = self.lock();
        lru.clock += 1;
        let now = lru.clock;
        let Some((points, used)) = lru.entries.get_mut(&key) else {
            DECODED_CACHE_REQUESTS.with_label_values(&["miss"]).inc();
            return None;
        };
        let (points, before) = (points.clone(), std::mem::replace(used, now));
        lru.by_use.remove(&before);
        lru.by_use.insert(now, key);
        DECODED_CACHE_REQUESTS.with_label_values(&["hit"]).inc();
        Some(points)
    }

    /// Keeps `points` as `key`'s, dropping the least recently used
    /// entries beyond the budget (an entry larger than the budget is not
    /// kept).
    pub fn insert(&self, key: Key, points: Points) {
        let size = cost(&points);
        let budget = self.budget();
        if size > budget {
            return;
        }
        let mut lru = self.lock();
        lru.clock += 1;
        let now = lru.clock;
        if let Some((old, used)) = lru.entries.insert(key, (points, now)) {
            lru.bytes -= cost(&old);
            lru.by_use.remove(&used);
        }
        lru.by_use.insert(now, key);
        lru.bytes += size;
        Self::evict(&mut lru, budget);
    }

    /// Drops the entries of the files `gone` (by their index's number).
    pub fn forget_files(&self, gone: &[u64]) {
        if gone.is_empty() {
            return;
        }
        let mut lru = self.lock();
        let keys: Vec<(Key, u64)> = lru
            .entries
            .iter()
            .filter(|(k, _)| gone.contains(&k.0))
            .map(|(k, v)| (*k, v.1))
            .collect();
        for (key, used) in keys {
            if let Some((points, _)) = lru.entries.remove(&key) {
                lru.bytes -= cost(&points);
            }
            lru.by_use.remove(&used);
        }
        DECODED_CACHE_BYTES.set(i64::try_from(lru.bytes).unwrap_or(i64::MAX));
    }

    /// Bytes held.
    #[cfg(test)]
    pub fn bytes(&self) -> u64 {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(n: usize) -> Points {
        (0..n).map(|i| (i as i64, i as f64)).collect()
    }

    #[test]
    fn keeps_within_budget_dropping_least_recently_used() {
        let one = cost(&points(100));
        let cache = DecodedCache::new(one * 2);
        cache.insert((1, 0), points(100));
        cache.insert((1, 1), points(100));
        // Using (1, 0) makes (1, 1) the oldest: the third entry evicts it.
        assert!(cache.get((1, 0)).is_some());
        cache.insert((2, 0), points(100));
        assert_eq!(cache.bytes(), one * 2);
        assert!(cache.get((1, 1)).is_none());
        assert_eq!(cache.get((1, 0)).expect("kept").len(), 100);
        assert!(cache.get((2, 0)).is_some());
        // Larger than the whole budget: not kept, nothing evicted.
        cache.insert((3, 0), points(1000));
        assert!(cache.get((3, 0)).is_none());
        assert_eq!(cache.bytes(), one * 2);
        // A file's entries go with it.
        cache.forget_files(&[1]);
        assert!(cache.get((1, 0)).is_none());
        assert_eq!(cache.bytes(), one);
        // A smaller budget evicts at once; 0 keeps nothing.
        cache.insert((1, 0), points(100));
        cache.set_budget(one);
        assert_eq!(cache.bytes(), one);
        assert!(cache.get((1, 0)).is_some());
        assert!(cache.get((2, 0)).is_none());
        let off = DecodedCache::new(0);
        assert!(!off.enabled());
        off.insert((1, 0), points(1));
        assert!(off.get((1, 0)).is_none());
    }
}
