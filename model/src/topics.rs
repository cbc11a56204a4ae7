//! Bus topic names and message header names.
//!
//! | topic | key | payload |
//! |---|---|---|
//! | `vigie.metrics` | shard number `series_id % shards` (u32, big endian) | Arrow IPC stream, metrics schema |
//! | `vigie.alerts` | alert fingerprint (16 hex chars) | JSON [`crate::Alert`] |
//! | `vigie.logs` | source | Arrow IPC stream, logs schema |
//! | `vigie.anomalies` | scored series id (16 hex digits) | JSON [`crate::AnomalyEvent`] |
//! | `vigie.deadletter` | original key | original payload, headers below |
//! | `vigie.nflog` | alert group key | JSON [`crate::NotificationLogEntry`] |
//! | `vigie.feedback` | series selector | JSON operator feedback `{feedback, origin}`, read by every analyzer (a consumer group each) |
//! | `vigie.alerting.leader` | candidate name | one partition; JSON heartbeats `{election, name, leading, alive}` of the alerting replicas, which elect the one that sends |

/// Metric samples, Arrow IPC record batches keyed by series id.
pub const METRICS: &str = "vigie.metrics";
/// Alert state changes produced by rule evaluation, JSON.
pub const ALERTS: &str = "vigie.alerts";
/// Log records, Arrow IPC record batches.
pub const LOGS: &str = "vigie.logs";
/// Anomaly episodes (onset, end) of scored series, JSON.
pub const ANOMALIES: &str = "vigie.anomalies";
/// Messages that could not be decoded or processed.
pub const DEADLETTER: &str = "vigie.deadletter";
/// What the leading alerting process notified (its notification log), JSON,
/// so its peers know what was sent when they take over.
pub const NFLOG: &str = "vigie.nflog";
/// Operator feedback (`POST /api/v1/feedback`) as JSON, so every analyzer
/// of a consumer group calibrates the series it scores, whichever analyzer
/// received it.
pub const FEEDBACK: &str = "vigie.feedback";
/// The election topic of alerting processes in high availability: one
/// partition of heartbeats (see `vigie_bus::election`); the elected replica
/// sends the notifications.
pub const ALERTING_LEADER: &str = "vigie.alerting.leader";

/// Header on a dead-letter message: why it was rejected.
pub const HEADER_ERROR: &str = "vigie-error";
/// Header on a dead-letter message: the topic it came from.
pub const HEADER_SOURCE_TOPIC: &str = "vigie-source-topic";
