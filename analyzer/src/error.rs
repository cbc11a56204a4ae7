//! Analyzer errors.

use std::path::PathBuf;

use thiserror::Error;

/// An error in the analyzer.
#[derive(Debug, Error)]
pub enum AnalyzerError {
    /// A bus message could not be decoded.
    #[error("decoding message from {topic}: {source}")]
    Decode {
        /// Topic the message came from.
        topic: String,
        /// Why.
        source: vigie_model::ModelError,
    },
    /// Arrow failed.
    #[error("arrow: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    /// Parquet failed.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// A query failed (bad SQL is the caller's fault, see [`AnalyzerError::is_user_error`]).
    #[error("query: {0}")]
    Query(#[from] datafusion::error::DataFusionError),
    /// An object store operation (local files or S3) failed.
    #[error("object store: {what}: {source}")]
    Store {
        /// The operation and object key.
        what: String,
        /// The store's error.
        source: object_store::Error,
    },
    /// File I/O failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A rule file is invalid.
    #[error("{file}: group `{group}`, rule `{rule}`: {message}")]
    Rule {
        /// Rule file.
        file: PathBuf,
        /// Group name.
        group: String,
        /// Rule name (alert or record).
        rule: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A rule file could not be read or parsed as YAML.
    #[error("{file}: {message}")]
    RuleFile {
        /// Rule file.
        file: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An evaluation or log-mining input is unusable.
    #[error("{what}: {message}")]
    Eval {
        /// The file, directory or setting at fault.
        what: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A PromQL query is invalid, unsupported, or failed to evaluate.
    #[error("{message}")]
    PromQl {
        /// What is wrong.
        message: String,
        /// True when the query is valid but its evaluation failed
        /// (Prometheus answers 422 `execution`); false for a bad or
        /// unsupported query (400 `bad_data`).
        execution: bool,
    },
    /// The model rejected data.
    #[error(transparent)]
    Model(#[from] vigie_model::ModelError),
    /// The bus failed.
    #[error(transparent)]
    Bus(#[from] vigie_bus::BusError),
}

impl AnalyzerError {
    /// True when the error is caused by the request (bad SQL), not by Vigie.
    pub fn is_user_error(&self) -> bool {
        use datafusion::error::DataFusionError as E;
        match self {
            AnalyzerError::PromQl { .. } => true,
            AnalyzerError::Query(e) => matches!(
                e.find_root(),
                E::SQL(..) | E::Plan(..) | E::SchemaError(..) | E::NotImplemented(..)
            ),
            _ => false,
        }
    }
}
