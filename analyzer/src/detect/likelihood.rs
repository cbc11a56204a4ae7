//! Anomaly likelihood (after Numenta's `AnomalyLikelihood`): how unusual
//! the recent short-window average of raw scores is against the long-run
//! distribution of that average.
//!
//! Raw scores are averaged over the last `short` points; the averages of
//! the last `long` points give a mean and standard deviation (floored at
//! `min_std`); the likelihood of a point is `Φ((avg − mean) / std)` with
//! the distribution taken from earlier points only (causal). Until
//! `learning` averages have been seen there is no likelihood.
//!
//! [`log_scale`] maps a likelihood to a score that spreads the values near
//! 1 (0.5 at a tail of 10⁻⁵, 1 at 10⁻¹⁰), as NAB's Numenta detector does.
//!
//! Memory: two ring buffers (`short` and `long` values). Raw scores that
//! are not finite are treated as 0 and clamped to `[0, 1]`.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};

/// Numenta-style anomaly likelihood over raw scores.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AnomalyLikelihood {
    short: usize,
    long: usize,
    learning: usize,
    min_std: f64,
    recent: VecDeque<f64>,
    recent_sum: f64,
    history: VecDeque<f64>,
    sum: f64,
    sum_sq: f64,
    since_resum: usize,
}

/// Maps a likelihood in `[0, 1]` to `ln(1 + 1e-10 − l) / ln(1e-10)` in `[0, 1]`.
pub fn log_scale(likelihood: f64) -> f64 {
    let l = if likelihood.is_finite() {
        likelihood.clamp(0.0, 1.0)
    } else {
        0.0
    };
    ((1.0 + 1e-10 - l).ln() / 1e-10f64.ln()).clamp(0.0, 1.0)
}

impl AnomalyLikelihood {
    /// A likelihood over `short`-point averages, judged against the last
    /// `long` averages, available after `learning` points; `min_std`
    /// floors the standard deviation.
    pub fn new(short: usize, long: usize, learning: usize, min_std: f64) -> Self {
        let long = long.max(2);
        Self {
            short: short.max(1),
            long,
            learning: learning.clamp(2, long),
            min_std: min_std.max(1e-9),
            recent: VecDeque::new(),
            recent_sum: 0.0,
            history: VecDeque::new(),
            sum: 0.0,
            sum_sq: 0.0,
            since_resum: 0,
        }
    }

    /// Numenta's settings for 5-minute data: average of 10, history 8640,
    /// learning 300, std floor 0.0173 (variance 3·10⁻⁴).
    pub fn numenta() -> Self {
        Self::new(10, 8640, 300, 0.0173)
    }

    /// Feeds one raw score; returns the likelihood once learned.
    pub fn update(&mut self, raw: f64) -> Option<f64> {
        let raw = if raw.is_finite() {
            raw.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.recent.push_back(raw);
        self.recent_sum += raw;
        if self.recent.len() > self.short {
            self.recent_sum -= self.recent.pop_front().unwrap_or(0.0);
        }
        let avg = (self.recent_sum / self.recent.len() as f64).max(0.0);
        let n = self.history.len();
        let likelihood = (n >= self.learning).then(|| {
            let mean = self.sum / n as f64;
            let var = (self.sum_sq / n as f64 - mean * mean).max(0.0);
            let std = var.sqrt().max(self.min_std);
            Normal::standard().cdf((avg - mean) / std)
        });
        self.history.push_back(avg);
        self.sum += avg;
        self.sum_sq += avg * avg;
        if self.history.len() > self.long {
            let old = self.history.pop_front().unwrap_or(0.0);
            self.sum -= old;
            self.sum_sq -= old * old;
        }
        self.since_resum += 1;
        if self.since_resum >= self.long {
            // Running sums drift; recompute them exactly now and then.
            self.since_resum = 0;
            self.sum = self.history.iter().sum();
            self.sum_sq = self.history.iter().map(|v| v * v).sum();
            self.recent_sum = self.recent.iter().sum();
        }
        likelihood
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_after_quiet_is_likely_anomalous() {
        let mut l = AnomalyLikelihood::new(5, 200, 50, 0.01);
        for i in 0..50 {
            assert_eq!(l.update(0.1 + (i % 3) as f64 * 0.05), None);
        }
        let mut typical: f64 = 0.0;
        for i in 0..100 {
            typical = typical.max(l.update(0.1 + (i % 3) as f64 * 0.05).expect("learned"));
        }
        assert!(typical < 0.99, "typical {typical}");
        let burst = l.update(1.0).expect("learned");
        assert!(burst > 0.9999, "burst {burst}");
        assert!(log_scale(burst) > 0.3);
    }

    #[test]
    fn log_scale_is_monotone_and_bounded() {
        assert_eq!(log_scale(0.0), 0.0);
        assert!((log_scale(0.99999) - 0.5).abs() < 1e-3);
        assert!(log_scale(1.0) > 0.99);
        assert_eq!(log_scale(f64::NAN), 0.0);
        assert!(log_scale(0.9) < log_scale(0.99));
    }

    #[test]
    fn bad_raw_scores_and_bounded_memory() {
        let mut l = AnomalyLikelihood::new(3, 20, 5, 0.01);
        for i in 0..1000 {
            let raw = match i % 4 {
                0 => f64::NAN,
                1 => f64::INFINITY,
                2 => -3.0,
                _ => 0.5,
            };
            if let Some(p) = l.update(raw) {
                assert!((0.0..=1.0).contains(&p));
            }
        }
        assert!(l.history.len() <= 20 && l.recent.len() <= 3);
    }
}
