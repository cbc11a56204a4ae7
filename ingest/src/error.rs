//! Errors of the ingest crate.

use thiserror::Error;

/// An error while turning samples into bus messages.
#[derive(Debug, Error)]
pub enum IngestError {
    /// Samples could not be converted to an Arrow batch or encoded.
    #[error("encoding samples: {0}")]
    Encode(#[from] vigie_model::ModelError),
    /// The bus refused a message.
    #[error("publishing to the bus: {0}")]
    Publish(#[from] vigie_bus::BusError),
}
