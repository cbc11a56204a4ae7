//! `vigie eval loghub`: log-parsing accuracy on Loghub-2k.

use std::path::PathBuf;

use crate::AnalyzerError;

/// Options of `vigie eval loghub`.
#[derive(Debug, Clone)]
pub struct LoghubOptions {
    /// Directory holding `<System>/<System>_2k.log` and `_structured.csv`.
    pub data: PathBuf,
    /// TOML file `system = "<format>"` for systems without a built-in format.
    pub formats: Option<PathBuf>,
    /// Where to write predicted `<System>_2k.log_structured.csv` files.
    pub out: Option<PathBuf>,
}

/// Accuracy per system.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoghubReport {
    /// `(system, grouping accuracy, parsing accuracy)` rows.
    pub systems: Vec<(String, f64, f64)>,
}

impl LoghubReport {
    /// `{"systems": {...}, "mean_grouping_accuracy": m}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "systems": {}, "mean_grouping_accuracy": 0.0 })
    }
}

impl std::fmt::Display for LoghubReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not implemented yet")
    }
}

/// Runs the evaluation.
pub fn run(_options: &LoghubOptions) -> Result<LoghubReport, AnalyzerError> {
    Err(AnalyzerError::RuleFile {
        file: PathBuf::new(),
        message: "vigie eval loghub is not implemented yet".into(),
    })
}
