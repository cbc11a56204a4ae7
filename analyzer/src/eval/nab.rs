//! `vigie eval nab`: the Numenta Anomaly Benchmark scorer.

use std::path::PathBuf;

use crate::AnalyzerError;

/// Options of `vigie eval nab`.
#[derive(Debug, Clone)]
pub struct NabOptions {
    /// Directory in NAB layout (`<category>/<file>.csv`, `combined_windows.json`, `profiles.json`).
    pub data: PathBuf,
    /// Where to write NAB's results format.
    pub out: Option<PathBuf>,
}

/// Normalised scores per profile.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NabReport {
    /// Standard profile score.
    pub standard: f64,
    /// reward_low_FP_rate profile score.
    pub reward_low_fp: f64,
    /// reward_low_FN_rate profile score.
    pub reward_low_fn: f64,
    /// Files scored.
    pub files: usize,
}

impl NabReport {
    /// `{"standard": x, "reward_low_fp": y, "reward_low_fn": z, "files": n}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

impl std::fmt::Display for NabReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "NAB ({} files): standard {:.1}, reward_low_FP {:.1}, reward_low_FN {:.1}",
            self.files, self.standard, self.reward_low_fp, self.reward_low_fn
        )
    }
}

/// Runs the evaluation.
pub fn run(_options: &NabOptions) -> Result<NabReport, AnalyzerError> {
    Err(AnalyzerError::RuleFile {
        file: PathBuf::new(),
        message: "vigie eval nab is not implemented yet".into(),
    })
}
