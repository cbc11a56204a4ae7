//! The ensemble: several models on one series, combined into one score in
//! `[0, 1]`.
//!
//! Each model gives a two-sided probability-like score `p`; it is turned
//! into a surprise `−log₁₀(1 − p) / 12` (so models agree on a scale where
//! 1 means a 10⁻¹² tail) and the raw score is the largest surprise. With
//! likelihood post-processing on, the output is the log-scaled
//! [`AnomalyLikelihood`] of the raw scores (how unusual the recent raw
//! scores are); before it has learned, the output is the largest model
//! `p` (or nothing, see [`EnsembleConfig::quiet_while_learning`]). After
//! an output at or above [`EnsembleConfig::alarm`], the next
//! [`EnsembleConfig::refractory`] outputs are damped by
//! [`EnsembleConfig::refractory_factor`]: one event, one alarm.
//!
//! Odd input: NaN/±Inf, duplicate and out-of-order timestamps are ignored
//! (no score, no state change); models handle gaps and constant series as
//! documented in their modules.

use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::common::{Guard, two_sided};
use super::likelihood::log_scale;
use super::{
    AnomalyLikelihood, Cusum, Detector, Ewma, HoltWinters, HwConfig, MultiScale, NAB_SCALES,
    RobustZ,
};

/// CUSUM parameters (see [`Cusum::new`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CusumConfig {
    /// Slack, in standard deviations.
    pub k: f64,
    /// Decision interval, in standard deviations.
    pub h: f64,
    /// Baseline smoothing.
    pub alpha: f64,
}

/// Anomaly likelihood parameters (see [`AnomalyLikelihood::new`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LikelihoodConfig {
    /// Points in the short average.
    pub short: usize,
    /// Averages in the long-run history.
    pub long: usize,
    /// Averages needed before a likelihood is given.
    pub learning: usize,
    /// Floor of the standard deviation.
    pub min_std: f64,
}

/// Which models run and how their scores are post-processed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnsembleConfig {
    /// Points before the point-wise models score.
    pub min_points: usize,
    /// EWMA smoothing, or `None` for no EWMA model.
    pub ewma_alpha: Option<f64>,
    /// Robust z-score window, or `None`.
    pub robust_window: Option<usize>,
    /// Holt-Winters parameters, or `None`.
    pub holt_winters: Option<HwConfig>,
    /// CUSUM parameters, or `None`.
    pub cusum: Option<CusumConfig>,
    /// Likelihood post-processing, or `None` (output = largest model score).
    pub likelihood: Option<LikelihoodConfig>,
    /// Output nothing (rather than the largest model score) while the
    /// likelihood is learning.
    pub quiet_while_learning: bool,
    /// Output level that starts a refractory period.
    pub alarm: f64,
    /// Outputs damped after an alarm.
    pub refractory: usize,
    /// Factor applied to outputs during the refractory period.
    pub refractory_factor: f64,
    /// The refractory period also ends at the first output below this
    /// level (the event is over: a new one may alarm at once); `None` =
    /// it lasts [`EnsembleConfig::refractory`] outputs (and in older
    /// checkpoints).
    #[serde(default)]
    pub rearm_below: Option<f64>,
    /// Spatial anomaly (as in NAB's Numenta detector): a value beyond the
    /// range seen so far by more than this fraction of the range scores 1
    /// (after `min_points`); `None` = off.
    pub spatial_tolerance: Option<f64>,
    /// Downsampling factors: EWMA, Holt-Winters and CUSUM run again on
    /// means of this many points (see [`MultiScale`]); their scores join
    /// the largest model score. Empty = off (and in older checkpoints).
    #[serde(default)]
    pub scales: Vec<usize>,
}

impl EnsembleConfig {
    /// Settings for live monitoring: [`EnsembleConfig::nab`] plus a robust
    /// z-score over `window` points, scoring after `min_points`, and no
    /// refractory damping (a lasting anomaly keeps scoring for `for:`
    /// clauses).
    pub fn live(window: usize, min_points: usize) -> Self {
        Self {
            min_points,
            robust_window: Some(window),
            refractory: 0,
            refractory_factor: 1.0,
            ..Self::nab()
        }
    }

    /// The single configuration evaluated on NAB (`vigie eval nab`), and
    /// the base of [`EnsembleConfig::live`]: the models also run on block
    /// means of [`NAB_SCALES`] points; a refractory period ends early once
    /// the output has fallen below 0.1 (the event is over); EWMA α 0.015
    /// and a CUSUM decision interval of 13 standard deviations (the centre
    /// of a plateau of good values, α 0.01–0.02 × h 12–14). While the
    /// likelihood learns, the output is the largest model score, not
    /// silence: an anomaly soon after a series starts (a jump after a
    /// short constant warm-up) still scores at once.
    pub fn nab() -> Self {
        Self {
            min_points: 30,
            ewma_alpha: Some(0.015),
            robust_window: None,
            holt_winters: Some(HwConfig {
                scale_alpha: 0.005,
                ..HwConfig::default()
            }),
            cusum: Some(CusumConfig {
                k: 0.5,
                h: 13.0,
                alpha: 0.003,
            }),
            likelihood: Some(LikelihoodConfig {
                short: 15,
                long: 8640,
                learning: 300,
                min_std: 0.03,
            }),
            quiet_while_learning: false,
            alarm: 0.6,
            refractory: 100,
            refractory_factor: 0.0,
            rearm_below: Some(0.1),
            spatial_tolerance: Some(0.05),
            scales: NAB_SCALES.to_vec(),
        }
    }
}

/// Ensemble detector.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ensemble {
    /// Shared by every series created from one configuration (a per-series
    /// copy was a quarter of the struct, read on every point); a
    /// checkpoint still holds the configuration itself.
    #[serde(serialize_with = "config_out", deserialize_with = "config_in")]
    cfg: Arc<EnsembleConfig>,
    ewma: Option<Ewma>,
    robust: Option<RobustZ>,
    holt_winters: Option<HoltWinters>,
    cusum: Option<Cusum>,
    likelihood: Option<AnomalyLikelihood>,
    refractory_left: usize,
    seen: usize,
    min: f64,
    max: f64,
    guard: Guard,
    /// One per [`EnsembleConfig::scales`] (absent in older checkpoints).
    #[serde(default)]
    scales: Vec<MultiScale>,
}

/// `−log₁₀(1 − p) / 12` in `[0, 1]`.
pub fn surprise(p: f64) -> f64 {
    if !p.is_finite() {
        return 0.0;
    }
    (-(1.0 - p.clamp(0.0, 1.0)).max(1e-12).log10() / 12.0).clamp(0.0, 1.0)
}

fn config_out<S: Serializer>(cfg: &Arc<EnsembleConfig>, s: S) -> Result<S::Ok, S::Error> {
    cfg.as_ref().serialize(s)
}

fn config_in<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<EnsembleConfig>, D::Error> {
    EnsembleConfig::deserialize(d).map(Arc::new)
}

impl Ensemble {
    /// An ensemble with the given configuration; pass an
    /// `Arc<EnsembleConfig>` to share one configuration between series.
    pub fn new(cfg: impl Into<Arc<EnsembleConfig>>) -> Self {
        let cfg: Arc<EnsembleConfig> = cfg.into();
        Self {
            ewma: cfg.ewma_alpha.map(|a| Ewma::new(a, cfg.min_points)),
            robust: cfg.robust_window.map(|w| RobustZ::new(w, cfg.min_points)),
            holt_winters: cfg.holt_winters.map(HoltWinters::new),
            cusum: cfg
                .cusum
                .map(|c| Cusum::new(c.k, c.h, c.alpha, cfg.min_points)),
            likelihood: cfg
                .likelihood
                .map(|l| AnomalyLikelihood::new(l.short, l.long, l.learning, l.min_std)),
            refractory_left: 0,
            seen: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            guard: Guard::default(),
            scales: cfg
                .scales
                .iter()
                .map(|&f| {
                    MultiScale::new(
                        f,
                        cfg.min_points,
                        cfg.ewma_alpha,
                        cfg.holt_winters,
                        cfg.cusum,
                    )
                })
                .collect(),
            cfg,
        }
    }

    /// Starts loading this detector's state into the CPU cache (a hint;
    /// no effect on results). Over many series, calling it for the next
    /// series before updating the current one hides the memory latency.
    #[inline]
    pub fn prefetch(&self) {
        if let Some(d) = &self.robust {
            d.prefetch();
        }
        if let Some(d) = &self.holt_winters {
            d.prefetch();
        }
        if let Some(d) = &self.likelihood {
            d.prefetch();
        }
        for d in &self.scales {
            d.prefetch();
        }
    }

    /// The configuration.
    pub fn config(&self) -> &EnsembleConfig {
        &self.cfg
    }

    /// Uses `shared` as the configuration when it equals this detector's
    /// own (as after loading a checkpoint, where each series gets its own
    /// copy).
    pub fn share_config(&mut self, shared: &Arc<EnsembleConfig>) {
        if !Arc::ptr_eq(&self.cfg, shared) && *self.cfg == **shared {
            self.cfg = Arc::clone(shared);
        }
    }
}

impl Detector for Ensemble {
    fn update(&mut self, ts_ms: i64, value: f64) -> Option<f64> {
        if !self.guard.accept(ts_ms, value) {
            return None;
        }
        // Every model's heap state is in another place in memory: start
        // loading all of it at once rather than one miss after another.
        self.prefetch();
        // The largest deviation of the normal-score models, then one
        // `erf` for all of them (see `deviation_z`); CUSUM scores itself.
        let z = [
            self.ewma.as_mut().and_then(|d| d.update_z(ts_ms, value)),
            self.robust.as_mut().and_then(|d| d.update_z(ts_ms, value)),
            self.holt_winters
                .as_mut()
                .and_then(|d| d.update_z(ts_ms, value)),
        ]
        .into_iter()
        .flatten()
        .reduce(f64::max);
        let scores = [
            z.map(two_sided),
            self.cusum.as_mut().and_then(|d| d.update(ts_ms, value)),
        ];
        let beyond = self.cfg.spatial_tolerance.is_some_and(|tolerance| {
            let margin = (self.max - self.min) * tolerance;
            self.seen >= self.cfg.min_points
                && (value > self.max + margin || value < self.min - margin)
        });
        self.seen = self.seen.saturating_add(1);
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        let coarse = self
            .scales
            .iter_mut()
            .filter_map(|d| d.update(ts_ms, value));
        let max_p = scores
            .iter()
            .flatten()
            .copied()
            .chain(coarse)
            .reduce(f64::max);
        let out = match self.likelihood.as_mut() {
            Some(likelihood) => {
                let raw = max_p.map(surprise).unwrap_or(0.0);
                match likelihood.update(raw) {
                    Some(l) => Some(log_scale(l)),
                    None if self.cfg.quiet_while_learning => None,
                    None => max_p,
                }
            }
            None => max_p,
        }?;
        let mut out = out.clamp(0.0, 1.0);
        if beyond {
            out = 1.0;
        }
        if self.refractory_left > 0 && self.cfg.rearm_below.is_some_and(|r| out < r) {
            self.refractory_left = 0;
        }
        if self.refractory_left > 0 {
            self.refractory_left -= 1;
            return Some((out * self.cfg.refractory_factor).clamp(0.0, 1.0));
        }
        if out >= self.cfg.alarm && self.cfg.refractory > 0 {
            self.refractory_left = self.cfg.refractory;
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn live_jump_after_short_constant_warm_up_scores_high() {
        let mut d = Ensemble::new(EnsembleConfig::live(120, 5));
        for i in 0..12 {
            let s = d.update(i * 1000, 1.0);
            assert!(s.is_none_or(|s| s == 0.0), "constant scored {s:?}");
        }
        let s = d.update(12_000, 500.0).expect("scored");
        assert!(s > 0.99, "jump scored {s}");
    }

    #[test]
    fn nab_config_alarms_once_per_event() {
        let mut d = Ensemble::new(EnsembleConfig::nab());
        let noise = |i: i64| ((i * 7919) % 23) as f64 / 23.0;
        for i in 0..2000 {
            d.update(i * 300_000, 10.0 + noise(i));
        }
        let scores: Vec<f64> = (2000..2100)
            .filter_map(|i| d.update(i * 300_000, 30.0 + noise(i)))
            .collect();
        let alarms = scores.iter().filter(|s| **s >= 0.5).count();
        assert_eq!(alarms, 1, "{scores:?}");
    }

    #[test]
    fn bad_points_are_ignored() {
        let mut d = Ensemble::new(EnsembleConfig::live(20, 3));
        for i in 0..10 {
            d.update(i, 1.0);
        }
        assert_eq!(d.update(20, f64::NAN), None);
        assert_eq!(d.update(9, 1.0), None, "duplicate");
        assert_eq!(d.update(2, 1.0), None, "out of order");
        assert_eq!(d.update(50_000, 1.0), Some(0.0), "gap");
    }

    #[test]
    fn causal_and_serialisable() {
        let values: Vec<f64> = (0..700)
            .map(|i| (i as f64 * 0.3).sin() + (i % 7) as f64)
            .collect();
        let mut a = Ensemble::new(EnsembleConfig::nab());
        let mut b = Ensemble::new(EnsembleConfig::nab());
        let sa: Vec<_> = values
            .iter()
            .enumerate()
            .map(|(i, v)| a.update(i as i64, *v))
            .collect();
        let sb: Vec<_> = values[..400]
            .iter()
            .enumerate()
            .map(|(i, v)| b.update(i as i64, *v))
            .collect();
        assert_eq!(&sa[..400], &sb[..]);
        let json = serde_json::to_string(&b).expect("serialize");
        let mut c: Ensemble = serde_json::from_str(&json).expect("deserialize");
        for (i, v) in values.iter().enumerate().skip(400) {
            let (x, y) = (b.update(i as i64, *v), c.update(i as i64, *v));
            assert_eq!(x.is_some(), y.is_some());
            // JSON floats round-trip to within an ulp or so.
            assert!(
                (x.unwrap_or(0.0) - y.unwrap_or(0.0)).abs() < 1e-9,
                "{x:?} vs {y:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn score_in_unit_interval(values in proptest::collection::vec(proptest::num::f64::ANY, 0..400)) {
            let mut d = Ensemble::new(EnsembleConfig::live(30, 3));
            for (i, v) in values.iter().enumerate() {
                if let Some(s) = d.update(i as i64, *v) {
                    prop_assert!((0.0..=1.0).contains(&s), "score {s}");
                }
            }
        }
    }
}
