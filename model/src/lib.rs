//! Vigie's shared vocabulary.
//!
//! Every stage of the pipeline (ingest → bus → analyzer → alerting) speaks
//! in the types defined here, and nothing else:
//!
//! - [`Labels`], [`SeriesKey`] and [`Sample`]: one metric point and the
//!   identity of the series it belongs to, with a stable [`SeriesKey::id`]
//!   used as the Kafka message key (so one series always lands on the same
//!   partition).
//! - [`schema`]: the Arrow schema of a metrics batch and the conversions
//!   between samples and record batches.
//! - [`codec`]: Arrow IPC encoding of batches for the `vigie.metrics` topic,
//!   and JSON encoding of alerts for `vigie.alerts`.
//! - [`topics`]: topic names and header names.
//! - [`Alert`]: an alert instance as produced by rule evaluation.
//! - [`AnomalyEvent`]: the start or end of a series' anomaly episode.
//! - [`LogRecord`]: one log line with its source labels; [`log_schema`]: the
//!   Arrow schema of a logs batch.
//!
//! This crate does no I/O and knows nothing about Kafka, storage or HTTP.

pub mod alert;
pub mod anomaly;
pub mod codec;
pub mod error;
pub mod log;
pub mod log_schema;
pub mod nflog;
pub mod sample;
pub mod schema;
pub mod topics;

pub use alert::{Alert, AlertState};
pub use anomaly::{AnomalyEvent, AnomalyPhase};
pub use error::ModelError;
pub use log::LogRecord;
pub use nflog::NotificationLogEntry;
pub use sample::{Labels, METRIC_NAME_LABEL, Sample, SeriesKey};
