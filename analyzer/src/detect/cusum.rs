//! Two-sided CUSUM on standardised values: detects persistent shifts of
//! the mean that a point-wise score misses.
//!
//! The baseline is a slow EWMA mean and variance. Each point adds
//! `z − k` (up) and `−z − k` (down) to two sums floored at 0; the score is
//! `min(1, max(S⁺, S⁻) / h)`. When a sum reaches `h` the change is
//! accepted: both sums restart at 0 and the baseline mean is re-learned
//! as the plain average of the next `min_points` points (variance kept;
//! no score meanwhile), so a level shift alarms once rather than forever.
//!
//! Odd input: NaN/±Inf, duplicate and out-of-order timestamps are ignored.
//! A constant history (variance 0) makes any change an immediate alarm.

use serde::{Deserialize, Serialize};

use super::Detector;
use super::common::Guard;

/// Two-sided CUSUM detector.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cusum {
    k: f64,
    h: f64,
    alpha: f64,
    min_points: usize,
    seen: usize,
    mean: f64,
    var: f64,
    up: f64,
    down: f64,
    /// Points averaged since the last alarm; `None` when not re-learning.
    relearn: Option<usize>,
    guard: Guard,
}

impl Cusum {
    /// A detector with slack `k` and decision interval `h` (in standard
    /// deviations), baseline smoothing `alpha`, scoring after `min_points`.
    pub fn new(k: f64, h: f64, alpha: f64, min_points: usize) -> Self {
        Self {
            k: k.max(0.0),
            h: h.max(1e-6),
            alpha: alpha.clamp(1e-6, 1.0),
            min_points: min_points.max(2),
            seen: 0,
            mean: 0.0,
            var: 0.0,
            up: 0.0,
            down: 0.0,
            relearn: None,
            guard: Guard::default(),
        }
    }

    fn baseline(&mut self, value: f64) {
        if self.seen == 0 {
            self.mean = value;
        } else {
            let a = self.alpha.max(1.0 / (self.seen as f64 + 1.0));
            let diff = value - self.mean;
            self.mean += a * diff;
            self.var = (1.0 - a) * (self.var + a * diff * diff);
        }
        if !self.mean.is_finite() || !self.var.is_finite() {
            self.mean = value;
            self.var = 0.0;
        }
        self.seen = self.seen.saturating_add(1);
    }
}

impl Detector for Cusum {
    fn update(&mut self, ts_ms: i64, value: f64) -> Option<f64> {
        if !self.guard.accept(ts_ms, value) {
            return None;
        }
        if self.seen < self.min_points {
            self.baseline(value);
            return None;
        }
        if let Some(n) = self.relearn {
            let n = n + 1;
            self.mean += (value - self.mean) / n as f64;
            self.relearn = (n < self.min_points).then_some(n);
            return None;
        }
        let dev = value - self.mean;
        let sd = self.var.sqrt();
        let tolerance = 1e-9 * self.mean.abs().max(1.0);
        let z = if dev.abs() <= tolerance {
            0.0
        } else if sd <= tolerance {
            dev.signum() * (self.h + self.k) * 2.0
        } else {
            (dev / sd).clamp(-1e6, 1e6)
        };
        self.up = (self.up + z - self.k).max(0.0);
        self.down = (self.down - z - self.k).max(0.0);
        let score = (self.up.max(self.down) / self.h).min(1.0);
        if score >= 1.0 {
            self.up = 0.0;
            self.down = 0.0;
            self.mean = value;
            self.relearn = Some(1);
        } else {
            self.baseline(value);
        }
        Some(score)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_persistent_shift_alarms_once() {
        let mut d = Cusum::new(0.5, 8.0, 0.01, 20);
        for i in 0..300 {
            let v = ((i * 7919) % 17) as f64 / 17.0 - 0.5;
            let s = d.update(i, v).unwrap_or(0.0);
            assert!(s < 1.0, "noise alarmed at {i}: {s}");
        }
        // Shift of about one standard deviation (0.29): each point alone is unremarkable.
        let scores: Vec<f64> = (300..400)
            .map(|i| {
                d.update(i, 0.35 + ((i * 7919) % 17) as f64 / 17.0 - 0.5)
                    .unwrap_or(0.0)
            })
            .collect();
        let alarms = scores.iter().filter(|s| **s >= 1.0).count();
        assert!(alarms >= 1, "shift not detected: {scores:?}");
        assert!(alarms <= 3, "alarmed {alarms} times");
    }

    #[test]
    fn constant_then_change_and_bad_points() {
        let mut d = Cusum::new(0.5, 5.0, 0.05, 3);
        for i in 0..5 {
            d.update(i, 1.0);
        }
        assert_eq!(d.update(5, 1.0), Some(0.0));
        assert_eq!(d.update(5, 2.0), None, "duplicate");
        assert_eq!(d.update(1, 2.0), None, "out of order");
        assert_eq!(d.update(6, f64::INFINITY), None);
        assert_eq!(d.update(7, 2.0), Some(1.0));
        assert_eq!(d.update(8, 2.0), None, "re-learning the level");
        assert_eq!(d.update(9, 2.0), None);
        assert_eq!(d.update(10, 2.0), Some(0.0), "new level accepted");
    }
}
