//! Robust rolling z-score: distance from the rolling median in units of the
//! rolling median absolute deviation (MAD).
//!
//! The score is `2Φ(|z|) − 1` with Φ the standard normal CDF, so it reads as
//! "how much less extreme a normal value would be": 0.9 ≈ 1.6σ,
//! 0.99 ≈ 2.6σ, 0.999 ≈ 3.3σ. With a constant window (MAD = 0) any change
//! scores 1 and no change scores 0.
//!
//! Behaviour on odd input: NaN and ±Inf are ignored (no score, no state
//! change); a point with a timestamp at or before the last one is ignored.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::Detector;
use super::common::{deviation_z, prefetch, prefetch_one, two_sided};

/// MAD → σ for normally distributed data.
const MAD_TO_SIGMA: f64 = 1.4826;

/// Robust z-score over a rolling window of points.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RobustZ {
    window: VecDeque<f64>,
    capacity: usize,
    min_points: usize,
    last_ts: Option<i64>,
    /// The window's values in order (rebuilt from `window` after a
    /// checkpoint is loaded).
    #[serde(skip)]
    sorted: Vec<f64>,
}

impl RobustZ {
    /// A detector with a window of `capacity` points that scores once it
    /// has seen `min_points` points.
    pub fn new(capacity: usize, min_points: usize) -> Self {
        let capacity = capacity.max(3);
        Self {
            window: VecDeque::with_capacity(capacity),
            capacity,
            min_points: min_points.clamp(3, capacity),
            last_ts: None,
            sorted: Vec::with_capacity(capacity),
        }
    }

    fn median(sorted: &[f64]) -> f64 {
        let n = sorted.len();
        if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        }
    }

    /// The median absolute deviation from `median` of the sorted window.
    ///
    /// The deviations of the values below the median grow leftwards from
    /// their boundary, those of the others rightwards: two sorted runs. The
    /// `t` smallest deviations are the first `a` of the left run and the
    /// first `t − a` of the right one, for the `a` a binary search finds,
    /// so the middle deviation(s) cost O(log n) instead of a merge.
    fn mad(sorted: &[f64], median: f64) -> f64 {
        let n = sorted.len();
        if n == 0 {
            return 0.0;
        }
        // The values below the median end at the middle (or just before
        // it); search the whole window only when ties say otherwise.
        let below = |i: usize| sorted[i] < median;
        let mid = n / 2;
        let split = if !below(mid) && (mid == 0 || below(mid - 1)) {
            mid
        } else if mid >= 1 && !below(mid - 1) && (mid == 1 || below(mid - 2)) {
            mid - 1
        } else {
            sorted.partition_point(|v| *v < median)
        };
        let (nl, nr) = (split, n - split);
        let left = |i: usize| (sorted[split - 1 - i] - median).abs();
        let right = |j: usize| (sorted[split + j] - median).abs();
        // Deviations taken: the middle one is the largest of them (odd n);
        // the two middle ones are the largest taken and the smallest left
        // (even n).
        let t = n / 2 + n % 2;
        let (mut lo, mut hi) = (t.saturating_sub(nr), t.min(nl));
        while lo < hi {
            let a = lo + (hi - lo) / 2;
            if right(t - a - 1) > left(a) {
                lo = a + 1;
            } else {
                hi = a;
            }
        }
        let (a, b) = (lo, t - lo);
        let largest = match (a > 0, b > 0) {
            (true, true) => left(a - 1).max(right(b - 1)),
            (true, false) => left(a - 1),
            (false, true) => right(b - 1),
            (false, false) => return 0.0,
        };
        if n % 2 == 1 {
            return largest;
        }
        let next = match (a < nl, b < nr) {
            (true, true) => left(a).min(right(b)),
            (true, false) => left(a),
            (false, true) => right(b),
            (false, false) => largest,
        };
        (largest + next) / 2.0
    }

    /// Deviation of `value` from the window's median in robust standard
    /// deviations (see [`deviation_z`]).
    fn z(&mut self, value: f64) -> f64 {
        if self.sorted.len() != self.window.len() {
            self.sorted.clear();
            self.sorted.extend(self.window.iter().copied());
            self.sorted.sort_by(f64::total_cmp);
        }
        let sorted = &self.sorted;
        let median = Self::median(sorted);
        let sigma = Self::mad(sorted, median) * MAD_TO_SIGMA;
        // Values this close to the median are the same number written
        // differently (float noise), not an anomaly.
        deviation_z(value - median, sigma, median)
    }

    /// Starts loading the memory the next update reads (see [`prefetch`]).
    pub(crate) fn prefetch(&self) {
        prefetch(&self.sorted);
        prefetch_one(self.window.front());
    }

    /// Replaces `old` by `value` in the sorted copy, moving only the
    /// values between their two positions.
    fn replace_sorted(&mut self, old: f64, value: f64) {
        let Ok(i) = self.sorted.binary_search_by(|v| v.total_cmp(&old)) else {
            // Not there (cannot happen while in sync): rebuild on next use.
            self.sorted.clear();
            return;
        };
        let j = self.sorted.partition_point(|v| v.total_cmp(&value).is_lt());
        if j <= i {
            self.sorted.copy_within(j..i, j + 1);
            self.sorted[j] = value;
        } else {
            self.sorted.copy_within(i + 1..j, i);
            self.sorted[j - 1] = value;
        }
    }
}

impl Detector for RobustZ {
    fn update(&mut self, ts_ms: i64, value: f64) -> Option<f64> {
        self.update_z(ts_ms, value).map(two_sided)
    }
}

impl RobustZ {
    /// [`Detector::update`] before the score is taken: the deviation in
    /// robust standard deviations, whose [`two_sided`] is the score.
    pub(crate) fn update_z(&mut self, ts_ms: i64, value: f64) -> Option<f64> {
        if !value.is_finite() {
            return None;
        }
        if self.last_ts.is_some_and(|last| ts_ms <= last) {
            return None;
        }
        self.last_ts = Some(ts_ms);
        let z = (self.window.len() >= self.min_points).then(|| self.z(value));
        let in_sync = self.sorted.len() == self.window.len();
        if self.window.len() == self.capacity
            && let Some(old) = self.window.pop_front()
        {
            self.window.push_back(value);
            if in_sync {
                self.replace_sorted(old, value);
            }
        } else {
            self.window.push_back(value);
            if in_sync {
                let at = self.sorted.partition_point(|v| v.total_cmp(&value).is_lt());
                self.sorted.insert(at, value);
            }
        }
        z
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Median and MAD by sorting, as the definition says.
    fn reference(window: &[f64]) -> (f64, f64) {
        let mut v = window.to_vec();
        v.sort_by(f64::total_cmp);
        let median = RobustZ::median(&v);
        let mut d: Vec<f64> = v.iter().map(|x| (x - median).abs()).collect();
        d.sort_by(f64::total_cmp);
        (median, RobustZ::median(&d))
    }

    proptest! {
        #[test]
        fn incremental_window_matches_sorting(values in proptest::collection::vec(-1e6f64..1e6, 4..300), cap in 3usize..40) {
            let mut d = RobustZ::new(cap, 3);
            let mut naive = RobustZ::new(cap, 3);
            for (i, v) in values.iter().enumerate() {
                // Integers repeat often: ties are the hard case.
                let v = if i % 3 == 0 { v.round() / 1e5 } else { *v };
                let got = d.update(i as i64, v);
                // A detector whose sorted copy is rebuilt every time.
                naive.sorted.clear();
                let want = naive.update(i as i64, v);
                prop_assert_eq!(got.map(f64::to_bits), want.map(f64::to_bits));
                let window: Vec<f64> = d.window.iter().copied().collect();
                let (median, mad) = reference(&window);
                let n = d.sorted.len();
                prop_assert_eq!(n, window.len());
                prop_assert_eq!(RobustZ::median(&d.sorted).to_bits(), median.to_bits());
                prop_assert_eq!(RobustZ::mad(&d.sorted, median).to_bits(), mad.to_bits());
            }
        }
    }

    #[test]
    fn warms_up_before_scoring() {
        let mut d = RobustZ::new(20, 5);
        for i in 0..5 {
            assert_eq!(d.update(i, 1.0), None);
        }
        assert_eq!(d.update(5, 1.0), Some(0.0));
    }

    #[test]
    fn jump_scores_high_and_noise_scores_low() {
        let mut d = RobustZ::new(60, 10);
        let mut last = 0.0;
        for i in 0..60 {
            let v = 10.0 + ((i * 7) % 5) as f64 * 0.1;
            last = d.update(i, v).unwrap_or(0.0);
        }
        assert!(last < 0.99, "noise scored {last}");
        let jump = d.update(100, 50.0).expect("scored");
        assert!(jump > 0.999, "jump scored {jump}");
    }

    #[test]
    fn constant_series_then_change() {
        let mut d = RobustZ::new(10, 3);
        for i in 0..10 {
            d.update(i, 7.0);
        }
        assert_eq!(d.update(10, 7.0), Some(0.0));
        assert_eq!(d.update(11, 8.0), Some(1.0));
    }

    #[test]
    fn ignores_nan_inf_and_out_of_order() {
        let mut d = RobustZ::new(10, 3);
        for i in 0..5 {
            d.update(i * 10, 1.0);
        }
        assert_eq!(d.update(100, f64::NAN), None);
        assert_eq!(d.update(101, f64::INFINITY), None);
        assert_eq!(d.update(5, 1.0), None, "out of order");
        assert_eq!(d.update(40, 1.0), None, "duplicate timestamp");
        assert_eq!(d.update(102, 1.0), Some(0.0));
    }

    #[test]
    fn causal_score_does_not_depend_on_future_points() {
        let values: Vec<f64> = (0..50).map(|i| (i as f64 * 0.7).sin()).collect();
        let mut a = RobustZ::new(20, 5);
        let mut b = RobustZ::new(20, 5);
        let sa: Vec<_> = values
            .iter()
            .enumerate()
            .map(|(i, v)| a.update(i as i64, *v))
            .collect();
        let sb: Vec<_> = values[..30]
            .iter()
            .enumerate()
            .map(|(i, v)| b.update(i as i64, *v))
            .collect();
        assert_eq!(&sa[..30], &sb[..]);
    }

    proptest! {
        #[test]
        fn score_is_in_unit_interval(values in proptest::collection::vec(proptest::num::f64::ANY, 0..200)) {
            let mut d = RobustZ::new(30, 5);
            for (i, v) in values.iter().enumerate() {
                if let Some(s) = d.update(i as i64, *v) {
                    prop_assert!((0.0..=1.0).contains(&s), "score {s}");
                }
            }
        }
    }
}
