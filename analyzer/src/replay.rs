//! Replaying one series through the live detector and forecaster
//! (`vigie backtest`): per point, the anomaly score, the forecast band
//! that was issued one horizon earlier for that time, and whether an alert
//! on the score would have fired.
//!
//! The detector is the one the running analyzer uses
//! ([`EnsembleConfig::live`] with the configured window), fed points in
//! time order; counters are replayed on their per-second rate, as live.

use serde::Serialize;

use crate::detect::{Detector, Ensemble, EnsembleConfig};
use crate::forecast::{ForecastConfig, Forecaster, HORIZONS};

/// How to replay.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Detector window (points) and warm-up, as `[analyzer]` sets them.
    pub window: usize,
    /// Points before the first score.
    pub min_points: usize,
    /// Forecast settings.
    pub forecast: ForecastConfig,
    /// Which forecast horizon the band shows (index into [`HORIZONS`]).
    pub horizon: usize,
    /// Score above which an alert fires.
    pub threshold: f64,
}

/// One replayed point.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplayPoint {
    /// Time (ms).
    pub ts_ms: i64,
    /// The value the detector saw.
    pub value: f64,
    /// Its anomaly score (none during warm-up).
    pub score: Option<f64>,
    /// The 10–90 % band forecast for this time one horizon earlier.
    pub band: Option<(f64, f64)>,
    /// The score crossed the threshold here (start of an alert).
    pub alert: bool,
}

/// A replay and its summary.
#[derive(Debug, Clone, Serialize)]
pub struct Replay {
    /// Every point.
    pub points: Vec<ReplayPoint>,
    /// Alerts (threshold crossings from below).
    pub alerts: usize,
    /// Points with a score above the threshold.
    pub points_above: usize,
    /// Share of points with a band that fell inside it.
    pub band_coverage: Option<f64>,
    /// The horizon of the band (`"15m"`, `"1h"`, `"4h"`).
    pub horizon: &'static str,
}

/// The per-second rate between consecutive points of a counter (none
/// across a reset), at the later point's time.
pub fn counter_rates(points: &[(i64, f64)]) -> Vec<(i64, f64)> {
    points
        .windows(2)
        .filter(|w| w[1].0 > w[0].0 && w[1].1 >= w[0].1)
        .map(|w| {
            (
                w[1].0,
                (w[1].1 - w[0].1) / ((w[1].0 - w[0].0) as f64 / 1000.0),
            )
        })
        .collect()
}

/// Replays `points` (time-ordered); `progress(done)` is called every
/// 1,000 points and at the end.
pub fn replay(
    points: &[(i64, f64)],
    options: &ReplayOptions,
    progress: &mut dyn FnMut(u64),
) -> Replay {
    let mut detector = Ensemble::new(EnsembleConfig::live(options.window, options.min_points));
    let mut forecaster = Forecaster::default();
    let (horizon_ms, horizon) = HORIZONS[options.horizon.min(HORIZONS.len() - 1)];
    // Bands issued, waiting for their time: (target ts, lo, hi).
    let mut pending: std::collections::VecDeque<(i64, f64, f64)> = Default::default();
    let mut out = Vec::with_capacity(points.len());
    let (mut alerts, mut above, mut inside, mut banded) = (0, 0, 0, 0);
    let mut was_above = false;
    let mut last_band: Option<(f64, f64)> = None;
    for (i, &(ts, value)) in points.iter().enumerate() {
        while let Some(&(target, lo, hi)) = pending.front() {
            if target > ts {
                break;
            }
            pending.pop_front();
            last_band = Some((lo, hi));
        }
        let band = last_band.filter(|_| value.is_finite());
        if let Some((lo, hi)) = band {
            banded += 1;
            if (lo..=hi).contains(&value) {
                inside += 1;
            }
        }
        let score = detector.update(ts, value);
        forecaster.update(&options.forecast, ts, value);
        if let Some(bands) = forecaster.bands(&options.forecast) {
            let b = bands[options.horizon.min(bands.len() - 1)];
            pending.push_back((ts + horizon_ms, b.values[0], b.values[2]));
        }
        let is_above = score.is_some_and(|s| s > options.threshold);
        let alert = is_above && !was_above;
        was_above = is_above;
        alerts += usize::from(alert);
        above += usize::from(is_above);
        out.push(ReplayPoint {
            ts_ms: ts,
            value,
            score,
            band,
            alert,
        });
        if (i + 1) % 1000 == 0 {
            progress((i + 1) as u64);
        }
    }
    progress(points.len() as u64);
    Replay {
        points: out,
        alerts,
        points_above: above,
        band_coverage: (banded > 0).then(|| inside as f64 / banded as f64),
        horizon,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> ReplayOptions {
        ReplayOptions {
            window: 120,
            min_points: 5,
            forecast: ForecastConfig::default(),
            horizon: 0,
            threshold: 0.9999,
        }
    }

    #[test]
    fn a_level_shift_alerts_once_and_bands_follow() {
        let points: Vec<(i64, f64)> = (0..600)
            .map(|i| {
                let wobble = ((i * 7919) % 13) as f64 / 13.0;
                (i * 60_000, if i < 400 { 10.0 } else { 40.0 } + wobble)
            })
            .collect();
        let mut calls = Vec::new();
        let r = replay(&points, &options(), &mut |d| calls.push(d));
        assert_eq!(calls, vec![600]);
        assert_eq!(r.points.len(), 600);
        assert!(r.alerts >= 1, "the shift alerts");
        // Once the baseline is learned, the first alert is at the shift.
        let first = r.points[150..]
            .iter()
            .position(|p| p.alert)
            .expect("an alert");
        assert_eq!(first + 150, 400, "at the shift, not before");
        assert!(r.points[..5].iter().all(|p| p.score.is_none()), "warm-up");
        // 15 min bands at 1 min: the first band lands 15 points after the
        // forecaster's first forecast.
        assert!(r.points[..20].iter().any(|p| p.band.is_none()));
        let coverage = r.band_coverage.expect("bands");
        assert!(coverage > 0.5, "{coverage}");
        assert_eq!(r.horizon, "15m");
    }

    #[test]
    fn counter_rates_skip_resets() {
        let rates = counter_rates(&[(0, 0.0), (1000, 5.0), (2000, 1.0), (4000, 5.0)]);
        assert_eq!(rates, vec![(1000, 5.0), (4000, 2.0)]);
    }
}
