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
    /// A consumer of an interop topic could not be created (bad broker
    /// properties); fix the configuration, retrying does not help.
    #[error("cannot consume interop topic {topic}: {source}")]
    Subscribe {
        /// The configured topic.
        topic: String,
        /// Why (boxed: librdkafka's errors are large).
        source: Box<vigie_bus::BusError>,
    },
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

impl IngestError {
    /// Whether the bus did not accept a batch because it is full or slow
    /// ([`vigie_bus::BusError::is_backpressure`]): trying later may work.
    pub fn is_backpressure(&self) -> bool {
        matches!(self, IngestError::Publish(e) if e.is_backpressure())
    }

    /// The `reason` label of a batch given up on:
    /// `timeout` (the bus did not accept it within `bus.publish_timeout`:
    /// full or slow), `bus_error` (refused), `encode` or `other`.
    pub fn reason(&self) -> &'static str {
        match self {
            _ if self.is_backpressure() => "timeout",
            IngestError::Publish(_) => "bus_error",
            IngestError::Encode(_) => "encode",
            _ => "other",
        }
    }
}

/// Why a message of an interop topic (`[[interop]]`) was rejected: it goes
/// to `vigie.deadletter` with this text as its reason, and is counted in
/// `vigie_interop_rejected_total` under [`InteropError::reason`]. Sending
/// the same bytes again cannot help.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum InteropError {
    /// The payload is not UTF-8 text.
    #[error("not UTF-8 text")]
    Utf8,
    /// Lines that are not InfluxDB line protocol (the others were kept).
    #[error("line {line}: {message} ({bad} of {lines} lines rejected)")]
    Syntax {
        /// The first bad line, from 1.
        line: usize,
        /// What is wrong with it.
        message: String,
        /// How many lines were bad.
        bad: usize,
        /// How many lines (points) the message had.
        lines: usize,
    },
    /// The payload is not JSON.
    #[error("invalid JSON: {0}")]
    Json(String),
    /// JSON, but not the shape the format describes.
    #[error("{0}")]
    Shape(String),
    /// A timestamp that cannot be read or is out of range.
    #[error("timestamp: {0}")]
    Timestamp(String),
    /// A metric kind with no simple Prometheus equivalent (Vector's
    /// `distribution` and `sketch`, incremental histograms and summaries).
    #[error("unsupported metric: {0}")]
    Unsupported(String),
}

impl InteropError {
    /// The `reason` label: `utf8`, `syntax`, `json`, `shape`, `timestamp`
    /// or `unsupported`.
    pub fn reason(&self) -> &'static str {
        match self {
            InteropError::Utf8 => "utf8",
            InteropError::Syntax { .. } => "syntax",
            InteropError::Json(_) => "json",
            InteropError::Shape(_) => "shape",
            InteropError::Timestamp(_) => "timestamp",
            InteropError::Unsupported(_) => "unsupported",
        }
    }
}
