//! One detector per series; detector output as the series
//! `vigie_anomaly_score{for="<metric>", <original labels>}`.
//!
//! Counters (names ending in `_total`, `_count`, `_sum`, `_bucket`) are
//! scored on their per-second rate, not their raw value; a counter reset
//! produces no score for that point.
//!
//! The detector is the [`Ensemble`] with [`EnsembleConfig::live`]: EWMA,
//! robust z-score, Holt-Winters and CUSUM, anomaly likelihood once learned.
//! Beside it, each series has a [`Forecaster`] fed the same points, whose
//! outputs (`vigie_forecast`, `vigie_time_to_threshold_seconds`) are
//! returned with the scores.

mod table;

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use vigie_model::{Sample, SeriesKey};

use crate::AnalyzerError;

use crate::detect::{Detector, Ensemble, EnsembleConfig, prefetch, prefetch_one};
use crate::feedback::{Calibration, FeedbackKind};
use crate::forecast::{ForecastConfig, Forecaster, RESERVED_LABELS};
use crate::metrics::SCORED_SERIES;

/// Name of the output series.
pub const ANOMALY_SCORE: &str = "vigie_anomaly_score";
/// Label of the output series that names the scored metric.
pub const FOR_LABEL: &str = "for";

#[derive(Serialize, Deserialize)]
struct SeriesState {
    detector: Ensemble,
    output: SeriesKey,
    last_raw: Option<(i64, f64)>,
    counter: bool,
    /// Absent in checkpoints written before forecasts existed.
    #[serde(default)]
    forecaster: Forecaster,
    /// What operator feedback taught (absent in older checkpoints).
    #[serde(default)]
    calibration: Calibration,
}

/// Series ahead of the one being scored whose detector state is loaded
/// (see [`ScoreBank::score`]); 2 measured best in the detector bench.
const PREFETCH_AHEAD: usize = 2;

impl SeriesState {
    /// The state of the series of `sample`, seen for the first time.
    fn new(sample: &Sample, config: &Arc<EnsembleConfig>) -> Self {
        let mut labels = sample.series.labels.clone();
        labels.insert(FOR_LABEL, sample.series.metric.clone());
        SeriesState {
            detector: Ensemble::new(Arc::clone(config)),
            output: SeriesKey::new(ANOMALY_SCORE, labels),
            last_raw: None,
            counter: is_counter(&sample.series.metric),
            forecaster: Forecaster::default(),
            calibration: Calibration::default(),
        }
    }

    /// Starts loading what scoring a point of this series reads: the
    /// detector's state and the output series' name and labels (a hint;
    /// no effect on results).
    fn prefetch(&self) {
        self.detector.prefetch();
        prefetch_one(Some(&self.last_raw));
        prefetch_one(Some(&self.calibration));
        prefetch(self.output.metric.as_bytes());
        prefetch_one(
            self.output
                .labels
                .iter()
                .next()
                .and_then(|(k, _)| k.as_bytes().first()),
        );
    }
}

/// Detectors for every series seen.
#[derive(Serialize, Deserialize)]
pub struct ScoreBank {
    series: table::Table<SeriesState>,
    window: usize,
    min_points: usize,
    /// Taken from the configuration, never from a checkpoint.
    #[serde(skip)]
    forecast: Option<ForecastConfig>,
    /// The detector configuration new series share: set by
    /// [`ScoreBank::set_scales`] from the configuration, else
    /// [`EnsembleConfig::live`] of `window` and `min_points` on first use.
    #[serde(skip)]
    detector_config: Option<Arc<EnsembleConfig>>,
}

/// True for metrics scored on their per-second rate.
pub fn is_counter(metric: &str) -> bool {
    ["_total", "_count", "_sum", "_bucket"]
        .iter()
        .any(|s| metric.ends_with(s))
}

impl ScoreBank {
    /// A bank whose detectors use `window` points (robust z-score window)
    /// and score after `min_points`.
    pub fn new(window: usize, min_points: usize) -> Self {
        Self {
            series: table::Table::default(),
            window,
            min_points,
            forecast: None,
            detector_config: None,
        }
    }

    /// The configuration new series share (see `detector_config`).
    fn detector_config(&mut self) -> Arc<EnsembleConfig> {
        let (window, min_points) = (self.window, self.min_points);
        Arc::clone(
            self.detector_config
                .get_or_insert_with(|| Arc::new(EnsembleConfig::live(window, min_points))),
        )
    }

    /// Points every series whose configuration equals that of new series
    /// at the shared one (a loaded checkpoint gives each its own copy).
    fn share_detector_config(&mut self) {
        let shared = self.detector_config();
        for state in self.series.values_mut() {
            state.detector.share_config(&shared);
        }
    }

    /// Scores new series also on block means of `scales` points
    /// (`analyzer.detector_scales`; empty: no multi-scale scoring).
    pub fn with_scales(mut self, scales: Vec<usize>) -> Self {
        self.set_scales(scales);
        self
    }

    /// Replaces the block sizes of new series (after loading a
    /// checkpoint: series already there keep theirs).
    pub fn set_scales(&mut self, scales: Vec<usize>) {
        let config = EnsembleConfig {
            scales,
            ..EnsembleConfig::live(self.window, self.min_points)
        };
        // Loading already shared the default, which is usually this one.
        if self.detector_config.as_deref() != Some(&config) {
            self.detector_config = Some(Arc::new(config));
            self.share_detector_config();
        }
    }

    /// Also forecast every series with `config` (when it is enabled).
    pub fn with_forecast(mut self, config: ForecastConfig) -> Self {
        self.set_forecast(config);
        self
    }

    /// Replaces the forecast configuration (after loading a checkpoint).
    pub fn set_forecast(&mut self, config: ForecastConfig) {
        self.forecast = config.enabled.then_some(config);
    }

    /// Writes every detector's state to `path` (CBOR, which keeps NaN and
    /// infinities; written to a temporary file, then renamed).
    pub fn save(&self, path: &Path) -> Result<(), AnalyzerError> {
        crate::state_file::write_atomic_with(path, |w| {
            ciborium::into_writer(self, w).map_err(|e| std::io::Error::other(e.to_string()))
        })
    }

    /// Reads detectors saved by [`ScoreBank::save`]; `Ok(None)` when there
    /// is no checkpoint yet.
    pub fn load(path: &Path) -> Result<Option<Self>, AnalyzerError> {
        let Some(file) = crate::state_file::open_if_exists(path)? else {
            return Ok(None);
        };
        let mut bank: ScoreBank = ciborium::from_reader(std::io::BufReader::new(file))
            .map_err(|e| crate::state_file::unreadable(path, "detector checkpoint", e))?;
        bank.share_detector_config();
        SCORED_SERIES.set(bank.series.len() as i64);
        Ok(Some(bank))
    }

    /// Number of series with a detector.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// True when no series has been seen.
    pub fn is_empty(&self) -> bool {
        self.series.len() == 0
    }

    /// Applies operator feedback to series `id`: `values` are its scored
    /// values in the window (see [`scored_values`]), `max_score` its highest
    /// score there. False when the series has no detector yet.
    pub fn calibrate(
        &mut self,
        id: u64,
        kind: FeedbackKind,
        values: &[f64],
        max_score: f64,
    ) -> bool {
        let Some(state) = self.series.get_mut(id) else {
            return false;
        };
        match kind {
            FeedbackKind::FalseAlarm => state.calibration.mark_normal(values),
            FeedbackKind::MissedAnomaly => {
                state.calibration.mark_missed(max_score);
                true
            }
        }
    }

    /// Scores `samples` (in time order per series) and returns the score
    /// samples, followed by forecast outputs when forecasting is on.
    pub fn score(&mut self, samples: &[Sample]) -> Vec<Sample> {
        let ids: Vec<u64> = samples.iter().map(|s| s.series.id()).collect();
        self.score_with_ids(samples, &ids)
    }

    /// [`ScoreBank::score`] for samples whose series ids are known:
    /// `ids[i]` is `samples[i].series.id()`, as the `series_id` column of
    /// a metrics batch carries it, so labels are not hashed again. A
    /// sample without an id (a shorter `ids`) is hashed.
    pub fn score_with_ids(&mut self, samples: &[Sample], ids: &[u64]) -> Vec<Sample> {
        let mut out = Vec::with_capacity(samples.len());
        let mut forecasts = Vec::new();
        let config = self.detector_config();
        // First every sample's state, so that the loop below can load the
        // state of the series `PREFETCH_AHEAD` samples on while it updates
        // this one (see `table`).
        let slots: Vec<Option<usize>> = samples
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let own_output = s.series.metric.starts_with("vigie_anomaly")
                    || s.series.labels.get(FOR_LABEL).is_some();
                (!own_output).then(|| {
                    let id = ids.get(i).copied().unwrap_or_else(|| s.series.id());
                    self.series.slot(id, || SeriesState::new(s, &config))
                })
            })
            .collect();
        for (i, (s, slot)) in samples.iter().zip(&slots).enumerate() {
            if let Some(ahead) = slots.get(i + PREFETCH_AHEAD).copied().flatten()
                && let Some(state) = self.series.at(ahead)
            {
                state.prefetch();
            }
            let Some(state) = slot.and_then(|slot| self.series.at_mut(slot)) else {
                continue;
            };
            let point = if state.counter {
                let prev = state.last_raw;
                if prev.is_some_and(|(t, _)| s.ts_ms <= t) {
                    continue;
                }
                state.last_raw = Some((s.ts_ms, s.value));
                match prev {
                    Some((t, v)) if s.value >= v => {
                        Some((s.value - v) / ((s.ts_ms - t) as f64 / 1000.0))
                    }
                    _ => None,
                }
            } else {
                Some(s.value)
            };
            if let (Some(v), Some(cfg)) = (point, &self.forecast)
                && !RESERVED_LABELS
                    .iter()
                    .any(|l| s.series.labels.get(l).is_some())
            {
                state.forecaster.update(cfg, s.ts_ms, v);
                state.forecaster.emit(
                    cfg,
                    &s.series.metric,
                    &s.series.labels,
                    &cfg.thresholds(&s.series.metric),
                    &mut forecasts,
                );
            }
            if let Some(v) = point
                && let Some(score) = state.detector.update(s.ts_ms, v)
            {
                let score = state.calibration.apply(v, score);
                out.push(Sample {
                    series: state.output.clone(),
                    ts_ms: s.ts_ms,
                    value: score,
                });
            }
        }
        SCORED_SERIES.set(self.series.len() as i64);
        out.extend(forecasts);
        out
    }
}

/// The values the detector of `metric` sees for `points`: the values
/// themselves, or for a counter the per-second rate between consecutive
/// points (none across a reset).
pub fn scored_values(metric: &str, points: &[(i64, f64)]) -> Vec<f64> {
    if !is_counter(metric) {
        return points.iter().map(|p| p.1).collect();
    }
    crate::replay::counter_rates(points)
        .into_iter()
        .map(|p| p.1)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigie_model::Labels;

    #[test]
    fn output_keeps_labels_and_names_the_metric() {
        let mut bank = ScoreBank::new(10, 3);
        let labels = Labels::new().with("instance", "a");
        let mut out = Vec::new();
        for i in 0..6 {
            out.extend(bank.score(&[Sample::new("temp", labels.clone(), i * 1000, 20.0)]));
        }
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].series.metric, ANOMALY_SCORE);
        assert_eq!(out[0].series.labels.get("for"), Some("temp"));
        assert_eq!(out[0].series.labels.get("instance"), Some("a"));
    }

    #[test]
    fn known_ids_score_as_hashed_ones() {
        // Three series, one of them a counter, 60 rounds with a jump.
        let rounds: Vec<Vec<Sample>> = (0..60)
            .map(|i| {
                ["a", "b"]
                    .iter()
                    .map(|h| {
                        let v = if i == 50 { 90.0 } else { 20.0 + (i % 5) as f64 };
                        Sample::new("temp", Labels::new().with("host", *h), i * 1000, v)
                    })
                    .chain([Sample::new(
                        "requests_total",
                        Labels::new(),
                        i * 1000,
                        (i * i) as f64,
                    )])
                    .collect()
            })
            .collect();
        let (mut hashed, mut known, mut partly) = (
            ScoreBank::new(20, 5),
            ScoreBank::new(20, 5),
            ScoreBank::new(20, 5),
        );
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        for round in &rounds {
            let ids: Vec<u64> = round.iter().map(|s| s.series.id()).collect();
            a.extend(hashed.score(round));
            b.extend(known.score_with_ids(round, &ids));
            c.extend(partly.score_with_ids(round, &ids[..1]));
        }
        assert!(a.len() > 100, "{}", a.len());
        assert_eq!(a, b);
        assert_eq!(a, c, "samples without an id are hashed");
        assert_eq!(known.len(), 3);
    }

    #[test]
    fn detector_scales_of_the_configuration_reach_new_series() {
        // A small, lasting shift that block means see better than points.
        let run = |bank: &mut ScoreBank| -> Vec<f64> {
            (0..3000)
                .flat_map(|i| {
                    let noise = ((i * 7919) % 23) as f64 / 23.0;
                    let v = noise + if i > 2000 { 0.2 } else { 0.0 };
                    bank.score(&[Sample::new("drift", Labels::new(), i * 1000, v)])
                })
                .map(|s| s.value)
                .collect()
        };
        let default = run(&mut ScoreBank::new(120, 5));
        let same = run(&mut ScoreBank::new(120, 5).with_scales(crate::detect::NAB_SCALES.to_vec()));
        let off = run(&mut ScoreBank::new(120, 5).with_scales(Vec::new()));
        assert_eq!(default, same, "the default is NAB's scales");
        assert_eq!(default.len(), off.len());
        assert_ne!(default, off, "no multi-scale scoring changes the scores");
    }

    #[test]
    fn counters_are_scored_on_rate_and_resets_skipped() {
        let mut bank = ScoreBank::new(10, 3);
        let mut scores = Vec::new();
        // Steady rate of 1/s: raw value grows, rate is constant.
        for i in 0..8 {
            scores.extend(bank.score(&[Sample::new("x_total", Labels::new(), i * 1000, i as f64)]));
        }
        assert!(scores.iter().all(|s| s.value == 0.0), "{scores:?}");
        // Reset: no score for that point.
        let reset = bank.score(&[Sample::new("x_total", Labels::new(), 9000, 0.0)]);
        assert!(reset.is_empty());
    }

    #[test]
    fn scores_after_a_checkpoint_equal_scores_without_one() {
        let points: Vec<Sample> = (0..400)
            .flat_map(|i| {
                let v = (i as f64 * 0.3).sin() * 10.0 + if i == 350 { 80.0 } else { 0.0 };
                [
                    Sample::new("temp", Labels::new().with("host", "a"), i * 1000, v),
                    Sample::new("x_total", Labels::new(), i * 1000, (i * 3) as f64),
                ]
            })
            .collect();
        let (before, after) = points.split_at(300);
        let mut continuous = ScoreBank::new(60, 5);
        continuous.score(before);
        let expected = continuous.score(after);

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state/detectors.cbor");
        let mut first = ScoreBank::new(60, 5);
        first.score(before);
        first.save(&path).expect("save");
        drop(first);
        let mut restored = ScoreBank::load(&path).expect("load").expect("a checkpoint");
        // The two loaded series share one configuration again.
        let shared = restored.detector_config();
        assert_eq!(Arc::strong_count(&shared), 2 + restored.len());
        let got = restored.score(after);
        assert_eq!(got.len(), expected.len());
        for (g, e) in got.iter().zip(&expected) {
            assert_eq!(g.series, e.series);
            assert_eq!(g.ts_ms, e.ts_ms);
            assert_eq!(g.value.to_bits(), e.value.to_bits(), "at {}", g.ts_ms);
        }
        assert!(
            expected.iter().any(|s| s.value > 0.99),
            "the spike is scored"
        );
    }

    #[test]
    fn missing_checkpoint_is_none_and_garbage_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("detectors.cbor");
        assert!(ScoreBank::load(&path).expect("no file").is_none());
        std::fs::write(&path, b"not cbor at all").expect("write");
        assert!(ScoreBank::load(&path).is_err());
    }

    #[test]
    fn forecasts_ride_along_and_are_not_scored_again() {
        let cfg = ForecastConfig::default();
        let mut bank = ScoreBank::new(10, 3).with_forecast(cfg);
        let labels = Labels::new().with("mountpoint", "/");
        let mut out = Vec::new();
        for i in 0..100 {
            let s = Sample::new(
                "node_filesystem_avail_bytes",
                labels.clone(),
                i * 15_000,
                1e9 - i as f64,
            );
            out.extend(bank.score(&[s]));
        }
        let forecasts = out
            .iter()
            .filter(|s| s.series.metric == crate::forecast::FORECAST)
            .count();
        let ttt = out
            .iter()
            .filter(|s| s.series.metric == crate::forecast::TIME_TO_THRESHOLD)
            .count();
        assert!(
            ttt > 0 && forecasts == ttt * 9,
            "{forecasts} forecasts, {ttt} ttt"
        );
        let len = bank.len();
        bank.score(&out);
        assert_eq!(bank.len(), len, "outputs are not scored or forecast");
        // A summary quantile would collide with the forecast's own label.
        let q = Sample::new("rpc_seconds", Labels::new().with("quantile", "0.5"), 0, 1.0);
        for i in 0..100 {
            let s = Sample {
                ts_ms: i * 15_000,
                ..q.clone()
            };
            assert!(
                bank.score(&[s])
                    .iter()
                    .all(|o| o.series.metric == ANOMALY_SCORE)
            );
        }
    }

    #[test]
    fn does_not_score_its_own_output() {
        let mut bank = ScoreBank::new(10, 3);
        let s = Sample::new(ANOMALY_SCORE, Labels::new().with("for", "x"), 0, 1.0);
        assert!(bank.score(&[s]).is_empty());
        assert!(bank.is_empty());
    }
}
