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
use super::common::deviation_score;

/// MAD → σ for normally distributed data.
const MAD_TO_SIGMA: f64 = 1.4826;

/// Robust z-score over a rolling window of points.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RobustZ {
    window: VecDeque<f64>,
    capacity: usize,
    min_points: usize,
    last_ts: Option<i64>,
    #[serde(skip)]
    scratch: Vec<f64>,
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
            scratch: Vec::with_capacity(capacity),
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

    /// Score of `value` against the current window.
    fn score(&mut self, value: f64) -> f64 {
        self.scratch.clear();
        self.scratch.extend(self.window.iter().copied());
        self.scratch.sort_by(f64::total_cmp);
        let median = Self::median(&self.scratch);
        for v in &mut self.scratch {
            *v = (*v - median).abs();
        }
        self.scratch.sort_by(f64::total_cmp);
        let sigma = Self::median(&self.scratch) * MAD_TO_SIGMA;
        // Values this close to the median are the same number written
        // differently (float noise), not an anomaly.
        deviation_score(value - median, sigma, median)
    }
}

impl Detector for RobustZ {
    fn update(&mut self, ts_ms: i64, value: f64) -> Option<f64> {
        if !value.is_finite() {
            return None;
        }
        if self.last_ts.is_some_and(|last| ts_ms <= last) {
            return None;
        }
        self.last_ts = Some(ts_ms);
        let score = (self.window.len() >= self.min_points).then(|| self.score(value));
        if self.window.len() == self.capacity {
            self.window.pop_front();
        }
        self.window.push_back(value);
        score
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
