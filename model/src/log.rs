//! Log records.

use serde::{Deserialize, Serialize};

use crate::Labels;

/// One log line with where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    /// Milliseconds since the Unix epoch.
    pub ts_ms: i64,
    /// Source labels (host, file, unit, ...).
    pub labels: Labels,
    /// Severity as text (`info`, `warning`, ...), if known.
    pub severity: Option<String>,
    /// The message body.
    pub body: String,
}
