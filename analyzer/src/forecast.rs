//! Per-series forecasts with honest bands, and time to a configured limit.
//!
//! One [`Forecaster`] per series (fed the same points as the anomaly
//! detector: counters as per-second rates) keeps a time-aware Holt linear
//! model (level and trend per millisecond, so irregular spacing and gaps
//! are handled) and, for each horizon in [`HORIZONS`], the forecasts it
//! issued that have not come due yet. When the actual value arrives, the
//! signed error joins a short ring per horizon; the band is the median
//! forecast plus the 10th/50th/90th percentiles of those recent errors
//! (split-conformal style), so the 10–90 % band covers about 80 % of
//! actual values on the series' own recent behaviour. Until a horizon has
//! [`MIN_ERRORS`] errors, the band is a normal approximation from the
//! one-step residual variance grown with the square root of the horizon.
//!
//! Outputs, every [`ForecastConfig::every`] per series:
//! `vigie_forecast{for="<metric>", <labels>, quantile, horizon}` and, for
//! series with a [`Limit`], `vigie_time_to_threshold_seconds{for="<metric>",
//! <labels>, threshold}`: seconds until the trend line reaches the limit,
//! 0 when it is already there, +Inf when the trend points away.
//!
//! Not here: seasonality in the forecast (the anomaly ensemble's
//! Holt-Winters models it for scoring), multi-series models.

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};
use vigie_model::{Labels, Sample, SeriesKey};

/// Name of the forecast series.
pub const FORECAST: &str = "vigie_forecast";
/// Name of the time-to-threshold series.
pub const TIME_TO_THRESHOLD: &str = "vigie_time_to_threshold_seconds";
/// Forecast horizons and their `horizon` label.
pub const HORIZONS: [(i64, &str); 3] = [
    (15 * 60_000, "15m"),
    (3_600_000, "1h"),
    (4 * 3_600_000, "4h"),
];
/// Quantiles of the band and their `quantile` label.
pub const QUANTILES: [(f64, &str); 3] = [(0.1, "0.1"), (0.5, "0.5"), (0.9, "0.9")];
/// Labels the outputs add; a series that already has one is not forecast
/// (its output would collide with another series').
pub const RESERVED_LABELS: [&str; 3] = ["quantile", "horizon", "threshold"];
/// Errors a horizon needs before its band comes from them.
pub const MIN_ERRORS: usize = 16;
/// Errors kept per horizon.
const MAX_ERRORS: usize = 96;
/// Pending forecasts kept per horizon (one is issued every horizon/16).
const MAX_PENDING: usize = 24;

/// A limit a series must not reach (`[[analyzer.forecast.limits]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// Metric name the limit applies to (exact).
    pub metric: String,
    /// The value the series must not reach.
    pub threshold: f64,
}

/// `[analyzer.forecast]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForecastConfig {
    /// Forecast at all.
    pub enabled: bool,
    /// How often each series' forecast is written.
    #[serde(with = "humantime_serde")]
    pub every: Duration,
    /// Level smoothing of the Holt model (0..1).
    pub alpha: f64,
    /// Trend smoothing of the Holt model (0..1).
    pub beta: f64,
    /// Points a series needs before it is forecast.
    pub min_points: u32,
    /// Limits for `vigie_time_to_threshold_seconds`.
    pub limits: Vec<Limit>,
}

impl Default for ForecastConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            every: Duration::from_secs(60),
            alpha: 0.5,
            beta: 0.02,
            min_points: 10,
            limits: vec![
                Limit {
                    metric: "node_filesystem_avail_bytes".into(),
                    threshold: 0.0,
                },
                Limit {
                    metric: "node_memory_MemAvailable_bytes".into(),
                    threshold: 0.0,
                },
            ],
        }
    }
}

impl ForecastConfig {
    /// Problems with this section, as `(key, message)` pairs.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let key = |k: &str| format!("analyzer.forecast.{k}");
        if self.every.is_zero() {
            out.push((key("every"), "must be positive, e.g. \"60s\"".into()));
        }
        for (name, v) in [("alpha", self.alpha), ("beta", self.beta)] {
            if !(v > 0.0 && v < 1.0) {
                out.push((key(name), format!("must be between 0 and 1 (got {v})")));
            }
        }
        if self.min_points < 2 {
            out.push((key("min_points"), "must be at least 2".into()));
        }
        for (i, l) in self.limits.iter().enumerate() {
            if l.metric.is_empty() {
                out.push((
                    format!("analyzer.forecast.limits[{i}].metric"),
                    "must name a metric".into(),
                ));
            }
            if !l.threshold.is_finite() {
                out.push((
                    format!("analyzer.forecast.limits[{i}].threshold"),
                    "must be a finite number".into(),
                ));
            }
        }
        out
    }

    /// Thresholds configured for `metric`.
    pub fn thresholds(&self, metric: &str) -> Vec<f64> {
        self.limits
            .iter()
            .filter(|l| l.metric == metric)
            .map(|l| l.threshold)
            .collect()
    }
}

/// The band of one horizon: values at the quantiles of [`QUANTILES`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Band {
    /// Horizon in milliseconds.
    pub horizon_ms: i64,
    /// 10th, 50th and 90th percentile forecasts.
    pub values: [f64; 3],
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Horizon {
    /// Forecasts issued and not yet due: (target ts, median forecast).
    pending: VecDeque<(i64, f64)>,
    /// Recent signed errors (actual − median forecast).
    errors: VecDeque<f32>,
    next_issue: i64,
}

/// Holt linear model with calibrated bands for one series.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Forecaster {
    level: f64,
    /// Trend per millisecond.
    trend: f64,
    last_ts: Option<i64>,
    points: u32,
    /// EWMA of squared one-step errors.
    residual_var: f64,
    /// EWMA of the spacing between points (ms).
    step_ms: f64,
    horizons: [Horizon; 3],
    next_emit: i64,
}

fn quantile(sorted: &[f32], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let w = pos - lo as f64;
    f64::from(sorted[lo]) * (1.0 - w) + f64::from(sorted[hi]) * w
}

impl Forecaster {
    /// Feeds one point. NaN/±Inf, duplicate and out-of-order points are
    /// ignored.
    pub fn update(&mut self, cfg: &ForecastConfig, ts_ms: i64, value: f64) {
        if !value.is_finite() || self.last_ts.is_some_and(|t| ts_ms <= t) {
            return;
        }
        let Some(last) = self.last_ts else {
            self.level = value;
            self.last_ts = Some(ts_ms);
            self.points = 1;
            return;
        };
        let dt = (ts_ms - last) as f64;
        if self.points == 1 {
            self.trend = 0.0;
            self.step_ms = dt;
        } else {
            self.step_ms = 0.9 * self.step_ms + 0.1 * dt;
        }
        let predicted = self.level + self.trend * dt;
        let err = value - predicted;
        self.residual_var = if self.points == 1 {
            err * err
        } else {
            0.95 * self.residual_var + 0.05 * err * err
        };
        let level = cfg.alpha * value + (1.0 - cfg.alpha) * predicted;
        self.trend = cfg.beta * (level - self.level) / dt + (1.0 - cfg.beta) * self.trend;
        self.level = level;
        self.last_ts = Some(ts_ms);
        self.points = self.points.saturating_add(1);

        let tolerance = (2.0 * self.step_ms) as i64;
        let ready = self.points >= cfg.min_points;
        for (h, (horizon_ms, _)) in self.horizons.iter_mut().zip(HORIZONS) {
            while let Some(&(target, predicted)) = h.pending.front() {
                if target > ts_ms {
                    break;
                }
                h.pending.pop_front();
                if ts_ms - target <= tolerance {
                    if h.errors.len() == MAX_ERRORS {
                        h.errors.pop_front();
                    }
                    h.errors.push_back((value - predicted) as f32);
                }
            }
            if ready && ts_ms >= h.next_issue {
                if h.pending.len() == MAX_PENDING {
                    h.pending.pop_front();
                }
                h.pending.push_back((
                    ts_ms + horizon_ms,
                    self.level + self.trend * horizon_ms as f64,
                ));
                h.next_issue = ts_ms + horizon_ms / 16;
            }
        }
    }

    /// The bands at every horizon, or `None` before `min_points` points.
    pub fn bands(&self, cfg: &ForecastConfig) -> Option<[Band; 3]> {
        if self.points < cfg.min_points {
            return None;
        }
        let z = Normal::standard().inverse_cdf(QUANTILES[2].0);
        let mut out = [Band {
            horizon_ms: 0,
            values: [0.0; 3],
        }; 3];
        for ((band, h), (horizon_ms, _)) in out.iter_mut().zip(&self.horizons).zip(HORIZONS) {
            let median = self.level + self.trend * horizon_ms as f64;
            band.horizon_ms = horizon_ms;
            band.values = if h.errors.len() >= MIN_ERRORS {
                let mut sorted: Vec<f32> = h.errors.iter().copied().collect();
                sorted.sort_by(f32::total_cmp);
                // Split-conformal finite-sample correction: widen the
                // outer quantiles by (n + 1) / n around the median.
                let n = sorted.len() as f64;
                QUANTILES.map(|(q, _)| {
                    let q = (0.5 + (q - 0.5) * (n + 1.0) / n).clamp(0.0, 1.0);
                    median + quantile(&sorted, q)
                })
            } else {
                let steps = (horizon_ms as f64 / self.step_ms.max(1.0)).max(1.0);
                let spread = z * (self.residual_var * steps).sqrt();
                [median - spread, median, median + spread]
            };
        }
        Some(out)
    }

    /// Seconds until the trend line reaches `threshold`: 0 when the level
    /// is already at or past it in the trend's direction, +Inf when the
    /// trend points away or is flat.
    pub fn time_to(&self, threshold: f64) -> f64 {
        let gap = threshold - self.level;
        if gap == 0.0 {
            return 0.0;
        }
        if self.trend == 0.0 || gap.signum() != self.trend.signum() {
            return f64::INFINITY;
        }
        gap / self.trend / 1000.0
    }

    /// Writes the outputs when `every` has passed since the last time.
    /// `thresholds` are the limits configured for this series.
    pub fn emit(
        &mut self,
        cfg: &ForecastConfig,
        metric: &str,
        labels: &Labels,
        thresholds: &[f64],
        out: &mut Vec<Sample>,
    ) {
        let Some(ts) = self.last_ts else { return };
        if ts < self.next_emit {
            return;
        }
        let Some(bands) = self.bands(cfg) else { return };
        self.next_emit = ts + cfg.every.as_millis() as i64;
        let mut base = labels.clone();
        base.insert("for", metric);
        for (band, (_, horizon)) in bands.iter().zip(HORIZONS) {
            for (value, (_, q)) in band.values.iter().zip(QUANTILES) {
                let labels = base.clone().with("horizon", horizon).with("quantile", q);
                out.push(Sample {
                    series: SeriesKey::new(FORECAST, labels),
                    ts_ms: ts,
                    value: *value,
                });
            }
        }
        for &threshold in thresholds {
            let labels = base.clone().with("threshold", format_threshold(threshold));
            out.push(Sample {
                series: SeriesKey::new(TIME_TO_THRESHOLD, labels),
                ts_ms: ts,
                value: self.time_to(threshold),
            });
        }
    }
}

/// The `threshold` label of a limit, formatted as Prometheus formats
/// sample values (`0`, `90`, `0.5`, `1e+09`).
pub fn format_threshold(v: f64) -> String {
    crate::promql::value::format_value(v)
}

/// How often actual values fall inside the 10–90 % band, per horizon, as
/// `(inside, checked)`, when a forecaster runs over `rows` (time-ordered
/// points): at each point the band for `ts + horizon` is taken and checked
/// against the first point at or after that time (within two steps).
pub fn coverage(cfg: &ForecastConfig, rows: &[(i64, f64)]) -> [(usize, usize); 3] {
    let mut f = Forecaster::default();
    let mut tally = [(0usize, 0usize); 3];
    let mut open: [VecDeque<(i64, f64, f64)>; 3] = Default::default();
    for &(ts, value) in rows {
        for (pending, t) in open.iter_mut().zip(tally.iter_mut()) {
            while let Some(&(target, lo, hi)) = pending.front() {
                if target > ts {
                    break;
                }
                pending.pop_front();
                if ts - target <= (2.0 * f.step_ms) as i64 {
                    t.1 += 1;
                    if (lo..=hi).contains(&value) {
                        t.0 += 1;
                    }
                }
            }
        }
        f.update(cfg, ts, value);
        if let Some(bands) = f.bands(cfg) {
            for (band, pending) in bands.iter().zip(open.iter_mut()) {
                pending.push_back((ts + band.horizon_ms, band.values[0], band.values[2]));
            }
        }
    }
    tally
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ForecastConfig {
        ForecastConfig::default()
    }

    #[test]
    fn a_straight_line_is_forecast_on_the_line() {
        let cfg = cfg();
        let mut f = Forecaster::default();
        for i in 0..2000 {
            f.update(&cfg, i * 15_000, 100.0 + i as f64);
        }
        let bands = f.bands(&cfg).expect("bands");
        // 1 per 15 s: 60 per 15 min.
        let last = 100.0 + 1999.0;
        assert!(
            (bands[0].values[1] - (last + 60.0)).abs() < 1.0,
            "{bands:?}"
        );
        assert!(
            (bands[2].values[1] - (last + 960.0)).abs() < 5.0,
            "{bands:?}"
        );
        assert!(bands[0].values[0] <= bands[0].values[1]);
        assert!(bands[0].values[1] <= bands[0].values[2]);
    }

    #[test]
    fn time_to_threshold_follows_the_trend() {
        let cfg = cfg();
        let mut f = Forecaster::default();
        // A disk losing 1 MB per 15 s from 1 GB.
        for i in 0..2000 {
            f.update(&cfg, i * 15_000, 1e9 - i as f64 * 1e6);
        }
        let left = 1e9 - 1999.0 * 1e6;
        let expected = left / 1e6 * 15.0;
        let got = f.time_to(0.0);
        assert!(
            (got - expected).abs() / expected < 0.01,
            "{got} vs {expected}"
        );
        assert_eq!(f.time_to(2e9), f64::INFINITY, "trend points away");
    }

    #[test]
    fn noisy_band_covers_about_80_percent() {
        let cfg = cfg();
        let mut rng = fastrand::Rng::with_seed(7);
        let rows: Vec<(i64, f64)> = (0..6000)
            .map(|i| {
                // Box-Muller normal noise on a slow wave.
                let (u, v): (f64, f64) = (rng.f64().max(1e-12), rng.f64());
                let n = (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos();
                (i * 60_000, 50.0 + (i as f64 / 500.0).sin() * 5.0 + n)
            })
            .collect();
        for (hit, total) in coverage(&cfg, &rows) {
            assert!(total > 1000, "{total}");
            let share = hit as f64 / total as f64;
            assert!((0.65..=0.92).contains(&share), "coverage {share}");
        }
    }

    #[test]
    fn odd_points_are_ignored() {
        let cfg = cfg();
        let mut f = Forecaster::default();
        for i in 0..20 {
            f.update(&cfg, i * 1000, 5.0);
        }
        let before = f.bands(&cfg);
        f.update(&cfg, 19_000, 1e9);
        f.update(&cfg, 3_000, 1e9);
        f.update(&cfg, 20_000, f64::NAN);
        f.update(&cfg, 21_000, f64::INFINITY);
        assert_eq!(f.bands(&cfg).map(|b| b[0]), before.map(|b| b[0]));
    }

    #[test]
    fn emits_every_interval_with_labels() {
        let cfg = ForecastConfig {
            every: Duration::from_secs(60),
            ..cfg()
        };
        let mut f = Forecaster::default();
        let labels = Labels::new().with("mountpoint", "/");
        let mut out = Vec::new();
        for i in 0..40 {
            f.update(&cfg, i * 15_000, 1000.0 - i as f64);
            f.emit(
                &cfg,
                "node_filesystem_avail_bytes",
                &labels,
                &[0.0],
                &mut out,
            );
        }
        // Points 9..39 (min 10 points) span 450 s: emissions at 135 s, 195 s, ...
        let ttt: Vec<&Sample> = out
            .iter()
            .filter(|s| s.series.metric == TIME_TO_THRESHOLD)
            .collect();
        assert_eq!(ttt.len(), 8, "{ttt:?}");
        assert_eq!(out.len(), ttt.len() * 10);
        let s = &ttt[0].series;
        assert_eq!(s.labels.get("for"), Some("node_filesystem_avail_bytes"));
        assert_eq!(s.labels.get("threshold"), Some("0"));
        assert_eq!(s.labels.get("mountpoint"), Some("/"));
        let f4h = out
            .iter()
            .find(|s| s.series.labels.get("horizon") == Some("4h"))
            .expect("4h forecast");
        assert_eq!(f4h.series.metric, FORECAST);
        assert!(f4h.series.labels.get("quantile").is_some());
    }

    #[test]
    fn config_problems_name_the_key() {
        let bad = ForecastConfig {
            alpha: 1.5,
            every: Duration::ZERO,
            limits: vec![Limit {
                metric: String::new(),
                threshold: f64::NAN,
            }],
            ..cfg()
        };
        let keys: Vec<String> = bad.problems().into_iter().map(|(k, _)| k).collect();
        assert!(keys.contains(&"analyzer.forecast.alpha".to_string()));
        assert!(keys.contains(&"analyzer.forecast.every".to_string()));
        assert!(keys.contains(&"analyzer.forecast.limits[0].metric".to_string()));
        assert!(keys.contains(&"analyzer.forecast.limits[0].threshold".to_string()));
        assert!(cfg().problems().is_empty());
    }
}
