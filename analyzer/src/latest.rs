//! The newest point of every series, for instant rule evaluation.

use std::collections::HashMap;
use std::sync::RwLock;

use vigie_model::{Sample, SeriesKey};

/// The newest point of one series.
#[derive(Debug, Clone, PartialEq)]
pub struct LatestPoint {
    /// The series.
    pub series: SeriesKey,
    /// Timestamp (ms).
    pub ts_ms: i64,
    /// Value.
    pub value: f64,
}

/// Newest point per series id; shared between the pipeline and the rules.
#[derive(Default)]
pub struct LatestIndex {
    points: RwLock<HashMap<u64, LatestPoint>>,
}

impl LatestIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records samples; an older point never replaces a newer one.
    pub fn update(&self, samples: &[Sample]) {
        let mut points = self.points.write().unwrap_or_else(|e| e.into_inner());
        for s in samples {
            let entry = points.entry(s.series.id());
            match entry {
                std::collections::hash_map::Entry::Occupied(mut o) => {
                    if o.get().ts_ms <= s.ts_ms {
                        let p = o.get_mut();
                        p.ts_ms = s.ts_ms;
                        p.value = s.value;
                    }
                }
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(LatestPoint {
                        series: s.series.clone(),
                        ts_ms: s.ts_ms,
                        value: s.value,
                    });
                }
            }
        }
    }

    /// Points newer than `since_ms` whose series satisfies `keep`.
    pub fn select(&self, since_ms: i64, keep: impl Fn(&SeriesKey) -> bool) -> Vec<LatestPoint> {
        let points = self.points.read().unwrap_or_else(|e| e.into_inner());
        points
            .values()
            .filter(|p| p.ts_ms > since_ms && keep(&p.series))
            .cloned()
            .collect()
    }

    /// Drops series whose newest point is older than `before_ms`.
    pub fn expire(&self, before_ms: i64) {
        let mut points = self.points.write().unwrap_or_else(|e| e.into_inner());
        points.retain(|_, p| p.ts_ms >= before_ms);
    }

    /// Number of series.
    pub fn len(&self) -> usize {
        self.points.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigie_model::Labels;

    #[test]
    fn keeps_newest_and_filters_by_time() {
        let idx = LatestIndex::new();
        idx.update(&[Sample::new("a", Labels::new(), 200, 2.0)]);
        idx.update(&[Sample::new("a", Labels::new(), 100, 1.0)]);
        let got = idx.select(0, |_| true);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].value, 2.0);
        assert!(idx.select(200, |_| true).is_empty());
        idx.expire(300);
        assert!(idx.is_empty());
    }
}
