//! Multi-scale scoring: the ensemble's point-wise models (EWMA,
//! Holt-Winters, CUSUM) run again on a downsampled copy of the series, the
//! means of `factor` consecutive points.
//!
//! A slow drift or a change of level that is lost in the noise of single
//! points stands out in block means, whose noise is `√factor` times
//! smaller. The score is given at the last point of each block only (from
//! that block and earlier ones: causal) and is the largest model score;
//! between block ends there is none, so a block's score counts once.
//!
//! Odd input: the ensemble filters NaN/±Inf and out-of-order points
//! before they reach this model; the inner models guard against them too.

use serde::{Deserialize, Serialize};

use super::common::two_sided;
use super::ensemble::CusumConfig;
use super::{Cusum, Detector, Ewma, HoltWinters, HwConfig};

/// Downsampling factors of [`EnsembleConfig::nab`]'s evaluation (see
/// `vigie eval nab`): blocks of 8 and of 32 points.
///
/// [`EnsembleConfig::nab`]: super::EnsembleConfig::nab
pub const NAB_SCALES: [usize; 2] = [8, 32];

/// Points a downsampled model needs before it scores, at least.
const MIN_BLOCKS: usize = 10;

/// The point-wise models on block means of `factor` points.
///
/// `repr(C)` keeps the block accumulator (`factor`, `sum`, `n`), which
/// every point touches, in the struct's first cache line: prefetching that
/// line (see `MultiScale::prefetch`) is all most points need.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[repr(C)]
pub struct MultiScale {
    factor: usize,
    sum: f64,
    n: usize,
    ewma: Option<Ewma>,
    holt_winters: Option<HoltWinters>,
    cusum: Option<Cusum>,
}

impl MultiScale {
    /// Models configured as the ensemble's, on means of `factor` points
    /// (at least 2); each scores after `max(min_points / factor, 10)`
    /// block means.
    pub fn new(
        factor: usize,
        min_points: usize,
        ewma_alpha: Option<f64>,
        holt_winters: Option<HwConfig>,
        cusum: Option<CusumConfig>,
    ) -> Self {
        let factor = factor.max(2);
        let min_points = (min_points / factor).max(MIN_BLOCKS);
        Self {
            factor,
            sum: 0.0,
            n: 0,
            ewma: ewma_alpha.map(|a| Ewma::new(a, min_points)),
            holt_winters: holt_winters.map(HoltWinters::new),
            cusum: cusum.map(|c| Cusum::new(c.k, c.h, c.alpha, min_points)),
        }
    }

    /// Points per block.
    pub fn factor(&self) -> usize {
        self.factor
    }

    /// Starts loading the block accumulator into the CPU cache (a hint; no
    /// effect on results).
    #[inline]
    pub(crate) fn prefetch(&self) {
        super::common::prefetch_one(Some(self));
    }
}

impl Detector for MultiScale {
    fn update(&mut self, ts_ms: i64, value: f64) -> Option<f64> {
        if !value.is_finite() {
            return None;
        }
        self.sum += value;
        self.n += 1;
        if self.n < self.factor {
            return None;
        }
        let mean = self.sum / self.n as f64;
        (self.sum, self.n) = (0.0, 0);
        // The largest deviation, then one `erf` (see `deviation_z`).
        let z = [
            self.ewma.as_mut().and_then(|d| d.update_z(ts_ms, mean)),
            self.holt_winters
                .as_mut()
                .and_then(|d| d.update_z(ts_ms, mean)),
        ]
        .into_iter()
        .flatten()
        .reduce(f64::max);
        let cusum = self.cusum.as_mut().and_then(|d| d.update(ts_ms, mean));
        [z.map(two_sided), cusum]
            .into_iter()
            .flatten()
            .reduce(f64::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(factor: usize) -> MultiScale {
        MultiScale::new(
            factor,
            30,
            Some(0.01),
            None,
            Some(CusumConfig {
                k: 0.5,
                h: 12.0,
                alpha: 0.003,
            }),
        )
    }

    fn noise(i: i64) -> f64 {
        ((i * 7919) % 23) as f64 / 23.0 - 0.5
    }

    #[test]
    fn scores_once_per_block() {
        let mut d = model(8);
        let scored: Vec<usize> = (0..800)
            .filter_map(|i| d.update(i, noise(i)).map(|_| i as usize))
            .collect();
        assert!(!scored.is_empty());
        assert!(scored.iter().all(|i| i % 8 == 7), "{scored:?}");
    }

    #[test]
    fn small_shift_stands_out_in_block_means() {
        // A shift of a third of the noise's range: small for one point,
        // several standard deviations for a mean of 32 points.
        let mut d = model(32);
        let mut quiet: f64 = 0.0;
        for i in 0..6400 {
            quiet = quiet.max(d.update(i, noise(i)).unwrap_or(0.0));
        }
        let shifted = (6400..7400)
            .filter_map(|i| d.update(i, 0.3 + noise(i)))
            .fold(0.0, f64::max);
        assert!(quiet < 0.999, "noise scored {quiet}");
        assert!(shifted > 0.9999, "shift scored {shifted}");
    }

    #[test]
    fn bad_values_are_skipped_and_state_round_trips() {
        let mut d = model(4);
        for i in 0..100 {
            d.update(i, noise(i));
        }
        assert_eq!(d.update(100, f64::NAN), None);
        let json = serde_json::to_string(&d).expect("serialise");
        let mut e: MultiScale = serde_json::from_str(&json).expect("deserialise");
        for i in 101..400 {
            let (a, b) = (d.update(i, noise(i)), e.update(i, noise(i)));
            assert_eq!(a.is_some(), b.is_some());
            assert!((a.unwrap_or(0.0) - b.unwrap_or(0.0)).abs() < 1e-9);
        }
        assert_eq!(d.factor(), 4);
    }

    #[test]
    fn ensemble_checkpoint_without_scales_still_loads() {
        use crate::detect::{Ensemble, EnsembleConfig};
        // The configuration of a version before multi-scale scoring.
        let before = || EnsembleConfig {
            scales: Vec::new(),
            rearm_below: None,
            ..EnsembleConfig::nab()
        };
        let mut with = Ensemble::new(EnsembleConfig {
            scales: vec![8],
            ..before()
        });
        let mut without = Ensemble::new(before());
        for i in 0..500 {
            with.update(i, noise(i));
            without.update(i, noise(i));
        }
        // What a version before multi-scale scoring wrote.
        let mut old = serde_json::to_value(&without).expect("json");
        let obj = old.as_object_mut().expect("object");
        obj.remove("scales");
        let cfg = obj
            .get_mut("cfg")
            .and_then(|c| c.as_object_mut())
            .expect("cfg");
        cfg.remove("scales");
        cfg.remove("rearm_below");
        let mut loaded: Ensemble = serde_json::from_value(old).expect("older checkpoint");
        assert!(loaded.config().scales.is_empty());
        assert_eq!(loaded.config().rearm_below, None);
        let mut differs = false;
        for i in 500..3000 {
            let v = noise(i) + if i > 2000 { 0.2 } else { 0.0 };
            let (a, b) = (without.update(i, v), loaded.update(i, v));
            assert_eq!(a.is_some(), b.is_some());
            assert!((a.unwrap_or(0.0) - b.unwrap_or(0.0)).abs() < 1e-9);
            differs |= with.update(i, v) != a;
        }
        assert!(differs, "the coarse scale never changed a score");
    }
}
