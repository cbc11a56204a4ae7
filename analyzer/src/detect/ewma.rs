//! Exponentially weighted moving mean and variance.
//!
//! The score of a point is `2Φ(|z|) − 1` with `z` its distance from the
//! EWMA mean in EWMA standard deviations, both computed from earlier points
//! only. After a constant history (variance 0) any change scores 1.
//!
//! Odd input: NaN/±Inf, duplicate and out-of-order timestamps are ignored
//! (no score, no state change). Gaps are not special: the model advances
//! one step per point.

use serde::{Deserialize, Serialize};

use super::Detector;
use super::common::{Guard, deviation_z, two_sided};

/// EWMA mean/variance detector.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ewma {
    alpha: f64,
    min_points: usize,
    seen: usize,
    mean: f64,
    var: f64,
    guard: Guard,
}

impl Ewma {
    /// A detector with smoothing factor `alpha` (in `(0, 1]`, clamped) that
    /// scores once it has seen `min_points` points (at least 2).
    pub fn new(alpha: f64, min_points: usize) -> Self {
        let alpha = if alpha.is_finite() {
            alpha.clamp(1e-6, 1.0)
        } else {
            0.1
        };
        Self {
            alpha,
            min_points: min_points.max(2),
            seen: 0,
            mean: 0.0,
            var: 0.0,
            guard: Guard::default(),
        }
    }

    /// Current mean estimate.
    pub fn mean(&self) -> f64 {
        self.mean
    }

    /// Current standard deviation estimate.
    pub fn std_dev(&self) -> f64 {
        self.var.sqrt()
    }

    /// Deviation of `value` from the current state in standard deviations
    /// (see [`deviation_z`]), without updating it.
    pub(crate) fn peek_z(&self, value: f64) -> Option<f64> {
        (self.seen >= self.min_points)
            .then(|| deviation_z(value - self.mean, self.var.sqrt(), self.mean))
    }

    /// [`Detector::update`] before the score is taken: the deviation in
    /// standard deviations, whose [`two_sided`] is the score.
    pub(crate) fn update_z(&mut self, ts_ms: i64, value: f64) -> Option<f64> {
        if !self.guard.accept(ts_ms, value) {
            return None;
        }
        let z = self.peek_z(value);
        self.learn(value);
        z
    }

    /// Folds `value` into the state (no guard).
    pub(crate) fn learn(&mut self, value: f64) {
        if self.seen == 0 {
            self.mean = value;
            self.var = 0.0;
        } else {
            // Warm-up uses a plain average so early points weigh equally.
            let a = self.alpha.max(1.0 / (self.seen as f64 + 1.0));
            let diff = value - self.mean;
            let incr = a * diff;
            self.mean += incr;
            self.var = (1.0 - a) * (self.var + diff * incr);
        }
        if !self.mean.is_finite() || !self.var.is_finite() {
            // Overflow on extreme input: restart from this point.
            self.mean = value;
            self.var = 0.0;
        }
        self.seen = self.seen.saturating_add(1);
    }
}

impl Detector for Ewma {
    fn update(&mut self, ts_ms: i64, value: f64) -> Option<f64> {
        self.update_z(ts_ms, value).map(two_sided)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn warm_up_then_constant_then_jump() {
        let mut d = Ewma::new(0.1, 5);
        for i in 0..5 {
            assert_eq!(d.update(i, 3.0), None);
        }
        assert_eq!(d.update(5, 3.0), Some(0.0));
        assert_eq!(d.update(6, 4.0), Some(1.0));
    }

    #[test]
    fn noise_low_spike_high() {
        let mut d = Ewma::new(0.05, 10);
        let mut worst: f64 = 0.0;
        for i in 0..500 {
            let v = 10.0 + ((i * 7919) % 13) as f64 / 13.0;
            if i > 100 {
                worst = worst.max(d.update(i, v).unwrap_or(0.0));
            } else {
                d.update(i, v);
            }
        }
        assert!(worst < 0.9999, "noise scored {worst}");
        assert!(d.update(1000, 30.0).expect("scored") > 0.9999);
    }

    #[test]
    fn ignores_bad_points() {
        let mut d = Ewma::new(0.1, 2);
        d.update(10, 1.0);
        d.update(20, 1.0);
        assert_eq!(d.update(30, f64::NAN), None);
        assert_eq!(d.update(31, f64::NEG_INFINITY), None);
        assert_eq!(d.update(20, 5.0), None, "duplicate");
        assert_eq!(d.update(5, 5.0), None, "out of order");
        assert_eq!(d.update(1_000_000, 1.0), Some(0.0), "gap");
    }

    #[test]
    fn state_round_trips_through_serde() {
        let mut d = Ewma::new(0.1, 2);
        for i in 0..10 {
            d.update(i, i as f64);
        }
        let json = serde_json::to_string(&d).expect("serialize");
        let mut back: Ewma = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back.update(10, 10.0), d.update(10, 10.0));
    }

    proptest! {
        #[test]
        fn score_in_unit_interval(values in proptest::collection::vec(proptest::num::f64::ANY, 0..200)) {
            let mut d = Ewma::new(0.2, 3);
            for (i, v) in values.iter().enumerate() {
                if let Some(s) = d.update(i as i64, *v) {
                    prop_assert!((0.0..=1.0).contains(&s), "score {s}");
                }
            }
        }
    }
}
