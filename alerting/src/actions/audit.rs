//! The audit log: every decision about an action, one JSON line in
//! `<data_dir>/state/actions.jsonl`, read back at start-up (cooldowns,
//! rate limits and the blast radius survive a restart) and served as
//! Arrow for the SQL table `actions`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::{Deserialize, Serialize};

/// What was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The HTTP call started.
    Ran,
    /// `dry_run`: the call would have started.
    DryRun,
    /// Not run; `reason` says why.
    Skipped,
    /// Waiting for approval (`POST /api/v1/actions/{id}/approve`).
    PendingApproval,
    /// An operator approved it.
    Approved,
    /// An operator denied it.
    Denied,
    /// The call failed after every retry.
    Failed,
    /// The call succeeded (2xx).
    Succeeded,
    /// The alert resolved after a successful run.
    Verified,
    /// A human was paged (blast radius, or no resolution in time).
    Escalated,
    /// The alert resolved (closes the episode).
    Resolved,
}

impl Decision {
    /// The name used in the log and in SQL.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ran => "ran",
            Self::DryRun => "dry_run",
            Self::Skipped => "skipped",
            Self::PendingApproval => "pending_approval",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Failed => "failed",
            Self::Succeeded => "succeeded",
            Self::Verified => "verified",
            Self::Escalated => "escalated",
            Self::Resolved => "resolved",
        }
    }
}

/// Why an action was skipped.
pub mod reason {
    /// The alert has no `target_label`.
    pub const NO_TARGET: &str = "no_target";
    /// The target was acted on less than `cooldown` ago.
    pub const COOLDOWN: &str = "cooldown";
    /// `rate_limit` reached.
    pub const RATE_LIMIT: &str = "rate_limit";
    /// `max_concurrent` runs already in flight.
    pub const MAX_CONCURRENT: &str = "max_concurrent";
    /// Acting would exceed `blast_radius` (also why it escalated).
    pub const BLAST_RADIUS: &str = "blast_radius";
    /// Escalated: the call failed.
    pub const FAILED: &str = "failed";
    /// Escalated: still firing `verify_within` after a successful run.
    pub const NOT_RESOLVED: &str = "not_resolved";
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// The run id: every decision about one alert episode shares it.
    pub id: String,
    /// When (ms since epoch).
    pub time_ms: i64,
    /// The action's name.
    pub action: String,
    /// The target (value of `target_label`; empty if missing).
    pub target: String,
    /// The alert's fingerprint.
    pub fingerprint: String,
    /// What was decided.
    pub decision: Decision,
    /// Why, for `skipped` and `escalated` (see [`reason`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Free text: HTTP status, error, approver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Errors of the audit log.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Building the Arrow batch failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

/// `<data_dir>/state/actions.jsonl`.
pub fn audit_path(data_dir: &Path) -> PathBuf {
    data_dir.join("state").join("actions.jsonl")
}

/// The append-only audit log (a file, or memory only).
#[derive(Debug, Clone, Default)]
pub struct AuditLog {
    path: Option<PathBuf>,
    records: Arc<Mutex<Vec<AuditRecord>>>,
}

impl AuditLog {
    /// A log kept in memory only.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// Opens (creating its folder) the log at `path` and reads what it
    /// holds; an unreadable line (a crash mid-write) is skipped.
    pub fn open(path: PathBuf) -> Result<Self, AuditError> {
        let io = |source| AuditError::Io {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let records = match std::fs::read_to_string(&path) {
            Ok(text) => text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .filter_map(|l| match serde_json::from_str::<AuditRecord>(l) {
                    Ok(r) => Some(r),
                    Err(error) => {
                        tracing::warn!(path = %path.display(), %error, "unreadable audit line skipped");
                        None
                    }
                })
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io(e)),
        };
        Ok(Self {
            path: Some(path),
            records: Arc::new(Mutex::new(records)),
        })
    }

    /// The file, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<AuditRecord>> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends `record` (to the file first, synced); a write failure is
    /// logged and the record kept in memory.
    pub fn append(&self, record: AuditRecord) {
        let mut records = self.lock();
        if let Some(path) = &self.path {
            let written = serde_json::to_string(&record)
                .map_err(std::io::Error::other)
                .and_then(|line| {
                    let mut f = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)?;
                    f.write_all(format!("{line}\n").as_bytes())?;
                    f.sync_data()
                });
            if let Err(error) = written {
                tracing::error!(path = %path.display(), %error, "writing the action audit log failed");
            }
        }
        records.push(record);
    }

    /// Every record, oldest first.
    pub fn all(&self) -> Vec<AuditRecord> {
        self.lock().clone()
    }

    /// The newest `limit` records, newest first.
    pub fn recent(&self, limit: usize) -> Vec<AuditRecord> {
        self.lock().iter().rev().take(limit).cloned().collect()
    }

    /// The whole log as one batch of [`schema`] (SQL table `actions`).
    pub fn record_batch(&self) -> Result<RecordBatch, AuditError> {
        to_batch(&self.all())
    }
}

/// The audit log at `path` as one batch of [`schema`], read afresh (for
/// SQL table `actions` in a process that does not run the engine, or
/// on every query); a missing file is an empty table.
pub fn read_batch(path: &Path) -> Result<RecordBatch, AuditError> {
    let records: Vec<AuditRecord> = match std::fs::read_to_string(path) {
        Ok(text) => text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(source) => {
            return Err(AuditError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    to_batch(&records)
}

/// The schema of SQL table `actions`:
///
/// | column | type | notes |
/// |---|---|---|
/// | `id` | Utf8 | run id, shared by the decisions of one alert episode |
/// | `time` | Timestamp(ms, UTC) | when |
/// | `action` | Utf8 | action name |
/// | `target` | Utf8 | value of the action's `target_label` |
/// | `fingerprint` | Utf8 | the alert's fingerprint |
/// | `decision` | Utf8 | ran, dry_run, skipped, pending_approval, approved, denied, failed, succeeded, verified, escalated, resolved |
/// | `reason` | Utf8, nullable | why skipped (no_target, cooldown, rate_limit, max_concurrent, blast_radius) or escalated (blast_radius, failed, not_resolved) |
/// | `detail` | Utf8, nullable | HTTP status, error, approver |
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new("action", DataType::Utf8, false),
        Field::new("target", DataType::Utf8, false),
        Field::new("fingerprint", DataType::Utf8, false),
        Field::new("decision", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, true),
        Field::new("detail", DataType::Utf8, true),
    ]))
}

/// `records` as one batch of [`schema`].
pub fn to_batch(records: &[AuditRecord]) -> Result<RecordBatch, AuditError> {
    let strings = |f: &dyn Fn(&AuditRecord) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(records.iter().map(f)))
    };
    let columns: Vec<ArrayRef> = vec![
        strings(&|r| &r.id),
        Arc::new(
            TimestampMillisecondArray::from_iter_values(records.iter().map(|r| r.time_ms))
                .with_timezone("UTC"),
        ),
        strings(&|r| &r.action),
        strings(&|r| &r.target),
        strings(&|r| &r.fingerprint),
        strings(&|r| r.decision.as_str()),
        Arc::new(StringArray::from_iter(
            records.iter().map(|r| r.reason.as_deref()),
        )),
        Arc::new(StringArray::from_iter(
            records.iter().map(|r| r.detail.as_deref()),
        )),
    ];
    Ok(RecordBatch::try_new(schema(), columns)?)
}
