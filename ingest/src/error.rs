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
    /// A listener could not bind its address (in use, no permission);
    /// fix the configuration, retrying does not help.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}
