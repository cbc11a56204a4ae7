//! Errors of the model crate.

use thiserror::Error;

/// An error while converting or decoding shared types.
#[derive(Debug, Error)]
pub enum ModelError {
    /// An Arrow operation failed (schema mismatch, IPC decoding, ...).
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// A batch does not have the expected metrics schema.
    #[error("batch does not match the metrics schema: {0}")]
    Schema(String),
    /// A payload held no record batch.
    #[error("payload holds no record batch")]
    Empty,
    /// A JSON payload could not be decoded.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}
