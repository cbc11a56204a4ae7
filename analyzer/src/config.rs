//! Analyzer and rules configuration (`[analyzer]` and `[rules]`).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::forecast::ForecastConfig;

/// `[analyzer]`: storage and detection.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnalyzerConfig {
    /// How often the in-memory head is written to Parquet (and bus offsets
    /// committed).
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
    /// Flush early when the head holds this many samples.
    pub max_head_rows: usize,
    /// Points in each detector's rolling window.
    pub detector_window: usize,
    /// Points a series needs before it is scored.
    pub detector_min_points: usize,
    /// Block sizes of multi-scale scoring: the EWMA, Holt-Winters and
    /// CUSUM models also score the means of blocks of this many points
    /// (`[8, 32]`, as evaluated on NAB; `[]` turns it off, for about 20 %
    /// more points per second and half the memory per series).
    pub detector_scales: Vec<usize>,
    /// Zstd level of the Parquet files each flush writes.
    pub zstd_level: i32,
    /// Zstd level of compacted files (one per 2 h window, kept for the
    /// whole retention: worth a slower, tighter level than the flushes).
    pub compaction_zstd_level: i32,
    /// Drop stored data older than this ("0s": keep forever).
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// Drop the oldest files while storage exceeds this many bytes (0: no limit).
    pub retention_bytes: u64,
    /// `[analyzer.forecast]`: forecasts and time to threshold.
    pub forecast: ForecastConfig,
    /// `[analyzer.anomaly_events]`: onset and end events on `vigie.anomalies`.
    pub anomaly_events: crate::episodes::EpisodeConfig,
    /// `[analyzer.storage]`: where data files live (the data dir by
    /// default, or an S3-compatible bucket).
    pub storage: crate::storage::StorageConfig,
}

impl Default for AnalyzerConfig {
    fn default() -> Self {
        Self {
            flush_interval: Duration::from_secs(60),
            max_head_rows: 1_000_000,
            detector_window: 120,
            detector_min_points: 5,
            detector_scales: crate::detect::NAB_SCALES.to_vec(),
            zstd_level: 3,
            compaction_zstd_level: crate::storage::DEFAULT_COMPACTION_ZSTD_LEVEL,
            retention: Duration::from_secs(15 * 24 * 3600),
            retention_bytes: 0,
            forecast: ForecastConfig::default(),
            anomaly_events: crate::episodes::EpisodeConfig::default(),
            storage: crate::storage::StorageConfig::default(),
        }
    }
}

impl AnalyzerConfig {
    /// Problems with this section, as `(key, message)` pairs.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.flush_interval.is_zero() {
            out.push((
                "analyzer.flush_interval".into(),
                "must be positive, e.g. \"60s\"".into(),
            ));
        }
        if self.detector_window < 5 {
            out.push((
                "analyzer.detector_window".into(),
                "must be at least 5 points".into(),
            ));
        }
        if self.detector_min_points < 3 || self.detector_min_points > self.detector_window {
            out.push((
                "analyzer.detector_min_points".into(),
                format!(
                    "must be between 3 and detector_window ({})",
                    self.detector_window
                ),
            ));
        }
        if !(1..=22).contains(&self.zstd_level) {
            out.push(("analyzer.zstd_level".into(), "must be 1..=22".into()));
        }
        if self.detector_scales.iter().any(|&n| n < 2) {
            out.push((
                "analyzer.detector_scales".into(),
                "block sizes must be at least 2 points, e.g. [8, 32] ([] turns multi-scale scoring off)"
                    .into(),
            ));
        }
        if !(1..=22).contains(&self.compaction_zstd_level) {
            out.push((
                "analyzer.compaction_zstd_level".into(),
                "must be 1..=22, e.g. 15".into(),
            ));
        }
        out.extend(self.forecast.problems());
        out.extend(self.anomaly_events.problems());
        out.extend(self.storage.problems());
        out
    }
}

/// `[rules]`: which rule files to evaluate, and how often.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// Rule files or directories (every `*.yml`/`*.yaml` inside). Empty by
    /// default; `vigie run` without `--config` uses `./rules` if present.
    pub files: Vec<PathBuf>,
    /// Default evaluation interval of groups without their own.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// How often firing alerts are re-sent to alerting.
    #[serde(with = "humantime_serde")]
    pub resend_delay: Duration,
    /// How far back an instant selector looks for a sample.
    #[serde(with = "humantime_serde")]
    pub lookback: Duration,
}

impl Default for RulesConfig {
    fn default() -> Self {
        Self {
            files: Vec::new(),
            interval: Duration::from_secs(15),
            resend_delay: Duration::from_secs(60),
            lookback: Duration::from_secs(300),
        }
    }
}

impl RulesConfig {
    /// Problems with this section, as `(key, message)` pairs.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.interval.is_zero() {
            out.push((
                "rules.interval".into(),
                "must be positive, e.g. \"15s\"".into(),
            ));
        }
        if self.lookback.is_zero() {
            out.push((
                "rules.lookback".into(),
                "must be positive, e.g. \"5m\"".into(),
            ));
        }
        for (i, f) in self.files.iter().enumerate() {
            if !f.exists() {
                out.push((
                    format!("rules.files[{i}]"),
                    format!("{} does not exist; fix the path or remove it", f.display()),
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detector_scales_default_to_nab_and_must_be_blocks() {
        let config = AnalyzerConfig::default();
        assert_eq!(config.detector_scales, crate::detect::NAB_SCALES.to_vec());
        assert!(config.problems().is_empty());
        let off = AnalyzerConfig {
            detector_scales: Vec::new(),
            ..AnalyzerConfig::default()
        };
        assert!(off.problems().is_empty(), "[] turns it off");
        let bad = AnalyzerConfig {
            detector_scales: vec![8, 1],
            ..AnalyzerConfig::default()
        };
        let keys: Vec<String> = bad.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["analyzer.detector_scales"]);
    }
}
