//! Additive Holt-Winters (level, trend, season) with a residual scale.
//!
//! The season length is either given or found from the autocorrelation of
//! a warm-up buffer (the lag with the highest autocorrelation peak above
//! [`MIN_ACF`]; none → no season). During warm-up nothing is scored; then
//! the model is initialised from the buffer, the buffer is replayed to
//! learn the residual scale, and dropped (bounded memory).
//!
//! The score of a point is `2Φ(|r|/σ) − 1` with `r` the one-step forecast
//! error and `σ` an EWMA of past absolute errors (× √(π/2)).
//!
//! Odd input: NaN/±Inf, duplicate and out-of-order timestamps are ignored.
//! Gaps: the step is the median spacing of the warm-up points; a gap of `k`
//! steps advances the model `k` steps (at most one season) before scoring.

use serde::{Deserialize, Serialize};

use super::Detector;
use super::common::{Guard, deviation_z, two_sided};

/// Autocorrelation a lag must exceed to be taken as the season.
pub const MIN_ACF: f64 = 0.3;

/// Parameters of [`HoltWinters`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HwConfig {
    /// Level smoothing.
    pub alpha: f64,
    /// Trend smoothing.
    pub beta: f64,
    /// Season smoothing.
    pub gamma: f64,
    /// Residual scale smoothing.
    pub scale_alpha: f64,
    /// Season length in points; `None` = detect from the warm-up buffer.
    pub period: Option<usize>,
    /// Points buffered before the model starts (at least 2 seasons to
    /// detect one).
    pub warmup: usize,
}

impl Default for HwConfig {
    fn default() -> Self {
        Self {
            alpha: 0.2,
            beta: 0.01,
            gamma: 0.2,
            scale_alpha: 0.02,
            period: None,
            warmup: 600,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Model {
    level: f64,
    trend: f64,
    season: Vec<f64>,
    phase: usize,
    /// EWMA of absolute one-step errors.
    abs_err: f64,
    step_ms: i64,
    last_ts: i64,
}

impl Model {
    fn forecast(&self) -> f64 {
        self.level + self.trend + self.season[self.phase]
    }

    /// Advances one step, learning `value` when given.
    fn step(&mut self, cfg: &HwConfig, value: Option<f64>) {
        let s = self.season[self.phase];
        let prev_level = self.level;
        match value {
            Some(x) => {
                let seasonal = self.season.len() > 1;
                self.level = cfg.alpha * (x - if seasonal { s } else { 0.0 })
                    + (1.0 - cfg.alpha) * (self.level + self.trend);
                self.trend = cfg.beta * (self.level - prev_level) + (1.0 - cfg.beta) * self.trend;
                if seasonal {
                    self.season[self.phase] = cfg.gamma * (x - self.level) + (1.0 - cfg.gamma) * s;
                }
            }
            None => self.level += self.trend,
        }
        self.phase = (self.phase + 1) % self.season.len();
    }

    fn learn(&mut self, cfg: &HwConfig, value: f64) {
        let err = (value - self.forecast()).abs();
        self.abs_err = cfg.scale_alpha * err + (1.0 - cfg.scale_alpha) * self.abs_err;
        self.step(cfg, Some(value));
        if !self.level.is_finite() || !self.trend.is_finite() || !self.abs_err.is_finite() {
            self.level = value;
            self.trend = 0.0;
            self.abs_err = 0.0;
            self.season.iter_mut().for_each(|s| *s = 0.0);
        }
    }
}

/// Additive Holt-Winters detector.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HoltWinters {
    cfg: HwConfig,
    buffer: Vec<(i64, f64)>,
    model: Option<Model>,
    guard: Guard,
}

/// Season length of `values` from their autocorrelation: the lag (2 to
/// `len / 2`) of the highest local ACF maximum above [`MIN_ACF`].
pub fn detect_period(values: &[f64]) -> Option<usize> {
    let n = values.len();
    if n < 8 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let dev: Vec<f64> = values.iter().map(|v| v - mean).collect();
    let denom: f64 = dev.iter().map(|d| d * d).sum();
    if denom <= 0.0 || !denom.is_finite() {
        return None;
    }
    let max_lag = n / 2;
    let acf: Vec<f64> = (0..=max_lag + 1)
        .map(|lag| {
            if lag >= n {
                return 0.0;
            }
            dev[..n - lag]
                .iter()
                .zip(&dev[lag..])
                .map(|(a, b)| a * b)
                .sum::<f64>()
                / denom
        })
        .collect();
    let mut best: Option<(usize, f64)> = None;
    for lag in 2..=max_lag {
        let a = acf[lag];
        let peak = a > acf[lag - 1] && a >= acf[lag + 1];
        if peak && a > MIN_ACF && best.is_none_or(|(_, b)| a > b) {
            best = Some((lag, a));
        }
    }
    best.map(|(lag, _)| lag)
}

impl HoltWinters {
    /// A detector with the given parameters.
    pub fn new(cfg: HwConfig) -> Self {
        let warmup = cfg.warmup.max(cfg.period.unwrap_or(0) * 2).max(4);
        Self {
            cfg: HwConfig { warmup, ..cfg },
            // Grown as points come (see `update`): a model on block means
            // may take days to fill its warm-up, and 100,000 series
            // holding full-size buffers from the start cost gigabytes.
            buffer: Vec::new(),
            model: None,
            guard: Guard::default(),
        }
    }

    /// Season length in use (1 = none), once warmed up.
    pub fn period(&self) -> Option<usize> {
        self.model.as_ref().map(|m| m.season.len())
    }

    /// Starts loading the memory the next update reads (see
    /// [`super::common::prefetch`]).
    pub(crate) fn prefetch(&self) {
        super::common::prefetch_one(self.model.as_ref().and_then(|m| m.season.get(m.phase)));
    }

    fn initialise(&mut self) {
        let values: Vec<f64> = self.buffer.iter().map(|(_, v)| *v).collect();
        let mut deltas: Vec<i64> = self.buffer.windows(2).map(|w| w[1].0 - w[0].0).collect();
        deltas.sort_unstable();
        let step_ms = deltas.get(deltas.len() / 2).copied().unwrap_or(1).max(1);
        let period = self
            .cfg
            .period
            .or_else(|| detect_period(&values))
            .filter(|p| *p >= 2 && *p * 2 <= values.len())
            .unwrap_or(1);
        let cycles = values.len() / period;
        let mut season = vec![0.0; period];
        if period > 1 {
            for c in 0..cycles {
                let cycle = &values[c * period..(c + 1) * period];
                let m = cycle.iter().sum::<f64>() / period as f64;
                for (s, v) in season.iter_mut().zip(cycle) {
                    *s += (v - m) / cycles as f64;
                }
            }
        }
        let level = values[..period.min(values.len())].iter().sum::<f64>() / period as f64;
        let mut model = Model {
            level,
            trend: 0.0,
            season,
            phase: 0,
            abs_err: 0.0,
            step_ms,
            last_ts: 0,
        };
        for (ts, v) in std::mem::take(&mut self.buffer) {
            model.learn(&self.cfg, v);
            model.last_ts = ts;
        }
        self.model = Some(model);
    }
}

impl Detector for HoltWinters {
    fn update(&mut self, ts_ms: i64, value: f64) -> Option<f64> {
        self.update_z(ts_ms, value).map(two_sided)
    }
}

impl HoltWinters {
    /// [`Detector::update`] before the score is taken: the deviation from
    /// the forecast in error scales, whose [`two_sided`] is the score.
    pub(crate) fn update_z(&mut self, ts_ms: i64, value: f64) -> Option<f64> {
        if !self.guard.accept(ts_ms, value) {
            return None;
        }
        let Some(model) = self.model.as_mut() else {
            let len = self.buffer.len();
            if len == self.buffer.capacity() {
                // Doubling, but never past the warm-up length.
                self.buffer
                    .reserve_exact(len.max(8).min(self.cfg.warmup.saturating_sub(len).max(1)));
            }
            self.buffer.push((ts_ms, value));
            if self.buffer.len() >= self.cfg.warmup {
                self.initialise();
            }
            return None;
        };
        let steps = ((ts_ms - model.last_ts) as f64 / model.step_ms as f64).round() as usize;
        for _ in 1..steps.clamp(1, model.season.len().max(1) + 1) {
            model.step(&self.cfg, None);
        }
        model.last_ts = ts_ms;
        let forecast = model.forecast();
        let sigma = model.abs_err * (std::f64::consts::PI / 2.0).sqrt();
        let z = deviation_z(value - forecast, sigma, forecast);
        model.learn(&self.cfg, value);
        Some(z)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(i: usize, period: usize) -> f64 {
        10.0 + 5.0 * (i as f64 * std::f64::consts::TAU / period as f64).sin()
            + ((i * 7919) % 11) as f64 * 0.02
    }

    #[test]
    fn finds_the_period() {
        let values: Vec<f64> = (0..400).map(|i| sine(i, 48)).collect();
        assert_eq!(detect_period(&values), Some(48));
        assert_eq!(detect_period(&[1.0; 100]), None, "constant");
    }

    #[test]
    fn seasonal_series_scores_low_and_break_scores_high() {
        let cfg = HwConfig {
            warmup: 200,
            ..HwConfig::default()
        };
        let mut d = HoltWinters::new(cfg);
        let mut worst: f64 = 0.0;
        for i in 0..1000 {
            if let Some(s) = d.update(i as i64 * 1000, sine(i, 48)) {
                worst = worst.max(s);
            }
        }
        assert_eq!(d.period(), Some(48));
        assert!(worst < 0.9999, "regular season scored {worst}");
        // The trough value at the crest is normal for the series but not for its phase.
        let s = d.update(1000 * 1000, 5.0).expect("scored");
        assert!(s > 0.999, "break scored {s}");
    }

    #[test]
    fn constant_series_and_bad_points() {
        let mut d = HoltWinters::new(HwConfig {
            warmup: 10,
            ..HwConfig::default()
        });
        for i in 0..10 {
            assert_eq!(d.update(i, 2.0), None);
        }
        assert_eq!(d.update(10, 2.0), Some(0.0));
        assert_eq!(d.update(10, 9.0), None, "duplicate");
        assert_eq!(d.update(3, 9.0), None, "out of order");
        assert_eq!(d.update(11, f64::NAN), None);
        assert_eq!(d.update(10_000, 2.0), Some(0.0), "gap");
        assert_eq!(d.update(10_001, 3.0), Some(1.0));
    }

    #[test]
    fn memory_is_bounded_after_warm_up() {
        let mut d = HoltWinters::new(HwConfig {
            warmup: 50,
            ..HwConfig::default()
        });
        for i in 0..5000 {
            d.update(i, sine(i as usize, 10));
        }
        assert!(d.buffer.is_empty());
        let json = serde_json::to_string(&d).expect("serialize");
        assert!(json.len() < 5000, "state is {} bytes", json.len());
    }
}
