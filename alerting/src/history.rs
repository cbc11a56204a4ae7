//! The notification history: every notification sent, retried, failed,
//! silenced, inhibited or held by an acknowledgement, as one JSON line in
//! `<data_dir>/alerting/notifications.jsonl`.
//!
//! The file is append-only; when it would grow past its size limit it is
//! renamed to `notifications.jsonl.1` (replacing the previous one) and a
//! new file begins, so the history takes at most twice the limit on disk
//! and keeps the newest records. Records survive restarts; one being
//! written when the process is killed may be lost (the file is not synced
//! per record), and a torn last line is skipped when read.
//!
//! Read it with [`History::query`] (`GET /api/v1/notifications`, see
//! [`router`]) or as Arrow with [`History::record_batch`] (SQL table
//! `notifications`, schema [`schema`]). Reading needs only the data
//! directory, so another process on the same disk can read it too.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arrow::array::{
    ArrayRef, ListBuilder, RecordBatch, StringArray, StringBuilder, TimestampMillisecondArray,
    UInt32Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::notify::{GroupStatus, Notification};

/// Default size limit of the current history file (the previous one is
/// kept too): 32 MiB, some 100 000 records.
pub const DEFAULT_MAX_BYTES: u64 = 32 * 1024 * 1024;

/// Default and largest `limit` of a query.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest `limit` of a query.
pub const MAX_LIMIT: usize = 10_000;

/// The history file under a data directory.
pub fn history_path(data_dir: &Path) -> PathBuf {
    data_dir.join("alerting").join("notifications.jsonl")
}

/// What happened to a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordStatus {
    /// Delivered (the receiver answered 2xx, the SMTP server accepted it).
    Sent,
    /// An attempt failed and another one follows.
    Retried,
    /// The last attempt failed; the dispatcher notifies the group again at
    /// its next flush (or the outbox at the next start).
    Failed,
    /// Alerts left out because a silence mutes them.
    Silenced,
    /// Alerts left out because firing alerts inhibit them.
    Inhibited,
    /// Alerts left out because their group is acknowledged.
    Acknowledged,
    /// Alerts left out because an alert they depend on is down
    /// ([`crate::depends`]).
    Suppressed,
}

impl RecordStatus {
    /// The lowercase name, as in the JSON and the SQL table.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordStatus::Sent => "sent",
            RecordStatus::Retried => "retried",
            RecordStatus::Failed => "failed",
            RecordStatus::Silenced => "silenced",
            RecordStatus::Inhibited => "inhibited",
            RecordStatus::Acknowledged => "acknowledged",
            RecordStatus::Suppressed => "suppressed",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }
}

/// One line of the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// When it happened (ms since epoch).
    pub at_ms: i64,
    /// What happened.
    pub status: RecordStatus,
    /// Receiver name.
    pub receiver: String,
    /// Integration (`webhook`, `email`, `pagerduty`, `slack`).
    pub integration: String,
    /// The group key.
    pub group_key: String,
    /// Whether the group was firing or resolved.
    pub group_status: GroupStatus,
    /// Fingerprints of the alerts concerned.
    pub alerts: Vec<String>,
    /// Delivery attempt (1 for the first); 0 for suppressions.
    pub attempt: u32,
    /// The notification's idempotency key (empty for suppressions).
    pub idempotency_key: String,
    /// The error of a failed attempt, the silences, inhibiting alerts or
    /// acknowledgement of a suppression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Record {
    /// A delivery record for `n` sent to `integration`.
    pub fn delivery(
        n: &Notification,
        integration: &str,
        status: RecordStatus,
        attempt: u32,
        detail: Option<String>,
        at_ms: i64,
    ) -> Self {
        Self {
            at_ms,
            status,
            receiver: n.receiver.clone(),
            integration: integration.to_string(),
            group_key: n.group_key.clone(),
            group_status: n.status,
            alerts: n.fingerprints(),
            attempt,
            idempotency_key: n.idempotency_key(),
            detail,
        }
    }
}

/// A filter over the history, as `GET /api/v1/notifications` takes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    /// Only this receiver.
    pub receiver: Option<String>,
    /// Only this group key.
    pub group_key: Option<String>,
    /// Only this status.
    pub status: Option<RecordStatus>,
    /// At most this many (newest first); [`DEFAULT_LIMIT`] when `None`.
    pub limit: Option<usize>,
}

impl Query {
    /// Parses `receiver=&group_key=&status=&limit=` (other keys are errors).
    pub fn parse(raw: Option<&str>) -> Result<Self, String> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
            .map_err(|e| format!("bad query string: {e}"))?;
        let mut q = Query::default();
        for (k, v) in pairs {
            let v = (!v.is_empty()).then_some(v);
            match k.as_str() {
                "receiver" => q.receiver = v,
                "group_key" => q.group_key = v,
                "status" => {
                    q.status = match v {
                        None => None,
                        Some(s) => Some(RecordStatus::parse(&s).ok_or_else(|| {
                            format!("status: {s:?} is not one of sent, retried, failed, silenced, inhibited, acknowledged, suppressed")
                        })?),
                    }
                }
                "limit" => {
                    q.limit = match v {
                        None => None,
                        Some(s) => Some(
                            s.parse::<usize>()
                                .ok()
                                .filter(|n| (1..=MAX_LIMIT).contains(n))
                                .ok_or_else(|| {
                                    format!("limit: {s:?} is not a number from 1 to {MAX_LIMIT}")
                                })?,
                        ),
                    }
                }
                other => {
                    return Err(format!(
                        "unknown parameter {other:?}; use receiver, group_key, status, limit"
                    ));
                }
            }
        }
        Ok(q)
    }

    fn accepts(&self, r: &Record) -> bool {
        self.receiver.as_ref().is_none_or(|x| *x == r.receiver)
            && self.group_key.as_ref().is_none_or(|x| *x == r.group_key)
            && self.status.is_none_or(|x| x == r.status)
    }
}

/// Why the history could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// A history file could not be read or written.
    #[error("notification history {path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        message: String,
    },
    /// The records could not be made into an Arrow batch (a bug).
    #[error("notification history as Arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

/// The history files of one data directory; cheap to clone.
#[derive(Debug, Clone)]
pub struct History {
    path: PathBuf,
    max_bytes: u64,
    /// Serialises appends and rotation within this process.
    writer: Arc<Mutex<()>>,
}

impl History {
    /// The history of `data_dir` (files are created at the first append).
    pub fn open(data_dir: &Path) -> Self {
        Self::at(history_path(data_dir), DEFAULT_MAX_BYTES)
    }

    /// The history in file `path`, rotated past `max_bytes`.
    pub fn at(path: PathBuf, max_bytes: u64) -> Self {
        Self {
            path,
            max_bytes: max_bytes.max(1),
            writer: Arc::new(Mutex::new(())),
        }
    }

    /// The current file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn previous(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".1");
        PathBuf::from(name)
    }

    fn io_error(&self, e: std::io::Error) -> HistoryError {
        HistoryError::Io {
            path: self.path.display().to_string(),
            message: e.to_string(),
        }
    }

    /// Appends one record (one `write` of one line), rotating first when
    /// the current file would pass the size limit.
    pub fn append(&self, record: &Record) -> Result<(), HistoryError> {
        let mut line = serde_json::to_vec(record).map_err(|e| self.io_error(e.into()))?;
        line.push(b'\n');
        let _guard = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| self.io_error(e))?;
        }
        let size = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        if size > 0 && size + line.len() as u64 > self.max_bytes {
            std::fs::rename(&self.path, self.previous()).map_err(|e| self.io_error(e))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| self.io_error(e))?;
        file.write_all(&line).map_err(|e| self.io_error(e))
    }

    /// Appends `record`, logging (not returning) a failure: the history
    /// must never stop a notification.
    pub fn record(&self, record: &Record) {
        if let Err(error) = self.append(record) {
            crate::metrics::HISTORY_ERRORS.inc();
            warn!(%error, "recording a notification in the history failed");
        }
    }

    /// Every record, oldest first (unreadable lines skipped).
    pub fn all(&self) -> Result<Vec<Record>, HistoryError> {
        let mut out = Vec::new();
        for path in [self.previous(), self.path.clone()] {
            let file = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.io_error(e)),
            };
            for line in std::io::BufReader::new(file).lines() {
                let line = line.map_err(|e| self.io_error(e))?;
                if let Ok(r) = serde_json::from_str::<Record>(&line) {
                    out.push(r);
                }
            }
        }
        Ok(out)
    }

    /// The records `q` selects, newest first.
    pub fn query(&self, q: &Query) -> Result<Vec<Record>, HistoryError> {
        let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
        let mut all = self.all()?;
        // Appends are in time order except across processes; sort stably.
        all.sort_by_key(|r| r.at_ms);
        Ok(all
            .into_iter()
            .rev()
            .filter(|r| q.accepts(r))
            .take(limit)
            .collect())
    }

    /// The whole history as one Arrow batch (oldest first), with
    /// [`schema`]: what SQL table `notifications` shows.
    pub fn record_batch(&self) -> Result<RecordBatch, HistoryError> {
        to_batch(&self.all()?)
    }
}

/// The Arrow schema of the history (SQL table `notifications`):
///
/// | column | type | notes |
/// |---|---|---|
/// | `ts` | Timestamp(ms, UTC) | when it happened |
/// | `status` | Utf8 | sent, retried, failed, silenced, inhibited, acknowledged |
/// | `receiver` | Utf8 | receiver name |
/// | `integration` | Utf8 | webhook, email, pagerduty, slack |
/// | `group_key` | Utf8 | the group key |
/// | `group_status` | Utf8 | firing or resolved |
/// | `alerts` | `List<Utf8>` | fingerprints |
/// | `attempt` | UInt32 | 1 for a first attempt, 0 for suppressions |
/// | `idempotency_key` | Utf8 | empty for suppressions |
/// | `detail` | Utf8, nullable | error, silence ids, inhibiting alerts, acknowledgement |
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new("status", DataType::Utf8, false),
        Field::new("receiver", DataType::Utf8, false),
        Field::new("integration", DataType::Utf8, false),
        Field::new("group_key", DataType::Utf8, false),
        Field::new("group_status", DataType::Utf8, false),
        Field::new(
            "alerts",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            false,
        ),
        Field::new("attempt", DataType::UInt32, false),
        Field::new("idempotency_key", DataType::Utf8, false),
        Field::new("detail", DataType::Utf8, true),
    ]))
}

/// `records` as one batch of [`schema`].
pub fn to_batch(records: &[Record]) -> Result<RecordBatch, HistoryError> {
    let strings = |f: &dyn Fn(&Record) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(records.iter().map(f)))
    };
    let mut alerts = ListBuilder::new(StringBuilder::new());
    for r in records {
        for fp in &r.alerts {
            alerts.values().append_value(fp);
        }
        alerts.append(true);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(
            TimestampMillisecondArray::from_iter_values(records.iter().map(|r| r.at_ms))
                .with_timezone("UTC"),
        ),
        strings(&|r| r.status.as_str()),
        strings(&|r| &r.receiver),
        strings(&|r| &r.integration),
        strings(&|r| &r.group_key),
        strings(&|r| r.group_status.as_str()),
        Arc::new(alerts.finish()),
        Arc::new(UInt32Array::from_iter_values(
            records.iter().map(|r| r.attempt),
        )),
        strings(&|r| &r.idempotency_key),
        Arc::new(StringArray::from_iter(
            records.iter().map(|r| r.detail.as_deref()),
        )),
    ];
    Ok(RecordBatch::try_new(schema(), columns)?)
}

/// `GET /api/v1/notifications?receiver=&group_key=&status=&limit=`: the
/// history, newest first, as a JSON list of [`Record`]s.
pub fn router(history: History) -> Router {
    Router::new()
        .route("/api/v1/notifications", get(get_notifications))
        .with_state(history)
}

async fn get_notifications(State(history): State<History>, RawQuery(q): RawQuery) -> Response {
    let query = match Query::parse(q.as_deref()) {
        Ok(q) => q,
        Err(reason) => return (StatusCode::BAD_REQUEST, axum::Json(reason)).into_response(),
    };
    let read = tokio::task::spawn_blocking(move || history.query(&query)).await;
    match read {
        Ok(Ok(records)) => axum::Json(records).into_response(),
        Ok(Err(e)) => {
            (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(e.to_string())).into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(e.to_string())).into_response(),
    }
}

#[cfg(test)]
mod tests;
