//! File tailing: `[[logs]]` entries become [`LogRecord`]s on `vigie.logs`.
//!
//! A [`Tailer`] follows one file: on its first poll it starts at the end of
//! the file (old lines are not replayed; a file that appears later is read
//! from its start), then reads whatever was appended at every poll. When
//! the file shrinks (truncation, `copytruncate`) it starts again from 0;
//! when the path names a different file (rename rotation: the inode
//! changed) it drains the old file and reopens the path from 0. An
//! unterminated last line is held back until its newline arrives.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info_span, warn};
use vigie_model::{Labels, LogRecord};

use crate::Emitter;
use crate::source::now_ms;

/// Bytes read from one file per poll, at most.
const MAX_READ: u64 = 8 << 20;
/// Longest line kept; longer lines are cut.
const MAX_LINE: usize = 64 << 10;

fn default_poll_interval() -> Duration {
    Duration::from_secs(1)
}

/// `[[logs]]`: one file to follow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// The file (no globs).
    pub path: PathBuf,
    /// Labels added to every line (`source` = the path is always added
    /// unless set here).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// How often to look for new lines.
    #[serde(default = "default_poll_interval", with = "humantime_serde")]
    pub poll_interval: Duration,
}

impl LogConfig {
    /// A config following `path` with no extra labels.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            labels: BTreeMap::new(),
            poll_interval: default_poll_interval(),
        }
    }

    /// Problems of entry `i`, as `(key, what to fix)`.
    pub fn problems(&self, i: usize) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.path.as_os_str().is_empty() {
            out.push((
                format!("logs[{i}].path"),
                "must name a file, e.g. \"/var/log/syslog\"".into(),
            ));
        }
        if self.poll_interval.is_zero() {
            out.push((
                format!("logs[{i}].poll_interval"),
                "must be positive, e.g. \"1s\"".into(),
            ));
        }
        for k in self.labels.keys() {
            if k.is_empty() || k.starts_with("__") {
                out.push((
                    format!("logs[{i}].labels"),
                    format!("label name `{k}` is empty or reserved"),
                ));
            }
        }
        out
    }
}

/// Guesses a severity from the first level word of a line
/// (case-insensitive): `error`, `warn`, `info` or `debug`.
pub fn guess_severity(line: &str) -> Option<&'static str> {
    line.split(|c: char| !c.is_ascii_alphabetic())
        .find_map(|w| match w.to_ascii_uppercase().as_str() {
            "ERROR" | "ERR" | "FATAL" | "CRITICAL" | "CRIT" => Some("error"),
            "WARN" | "WARNING" => Some("warn"),
            "INFO" => Some("info"),
            "DEBUG" | "TRACE" => Some("debug"),
            _ => None,
        })
}

#[cfg(unix)]
fn file_id(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn file_id(_meta: &std::fs::Metadata) -> (u64, u64) {
    (0, 0)
}

struct Open {
    file: File,
    id: (u64, u64),
    offset: u64,
}

/// Follows one file.
pub struct Tailer {
    path: PathBuf,
    source: String,
    labels: Labels,
    open: Option<Open>,
    partial: Vec<u8>,
    first_poll: bool,
}

impl Tailer {
    /// A tailer for `config`; nothing is opened before the first poll.
    pub fn new(config: &LogConfig) -> Self {
        let source = config.path.display().to_string();
        let mut labels = Labels::new();
        for (k, v) in &config.labels {
            labels.insert(k.clone(), v.clone());
        }
        if labels.get("source").is_none() {
            labels.insert("source", source.clone());
        }
        Self {
            path: config.path.clone(),
            source,
            labels,
            open: None,
            partial: Vec::new(),
            first_poll: true,
        }
    }

    /// The path, as text (the bus key of this source).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Reads the lines appended since the last poll. Blocking (file I/O).
    pub fn poll(&mut self) -> Vec<LogRecord> {
        let first = std::mem::replace(&mut self.first_poll, false);
        let mut lines = Vec::new();
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) => {
                if self.open.is_some() {
                    debug!(file = %self.source, error = %e, "file gone; waiting for it");
                }
                // Lines written to the old file before it went away.
                if let Some(open) = &mut self.open {
                    Self::read_new(open, &mut self.partial, &mut lines);
                }
                self.open = None;
                return self.records(lines);
            }
        };
        let id = file_id(&meta);
        if let Some(open) = &mut self.open {
            if open.id != id {
                Self::read_new(open, &mut self.partial, &mut lines);
                self.flush_partial(&mut lines);
                debug!(file = %self.source, "file rotated; reopening");
                self.open = None;
            } else if meta.len() < open.offset {
                debug!(file = %self.source, "file truncated; reading from the start");
                open.offset = 0;
                self.partial.clear();
            }
        }
        if self.open.is_none() {
            match File::open(&self.path) {
                Ok(file) => {
                    let offset = if first { meta.len() } else { 0 };
                    self.open = Some(Open { file, id, offset });
                }
                Err(e) => {
                    warn!(file = %self.source, error = %e, "cannot open log file");
                    return self.records(lines);
                }
            }
        }
        if let Some(open) = &mut self.open {
            Self::read_new(open, &mut self.partial, &mut lines);
        }
        self.records(lines)
    }

    fn read_new(open: &mut Open, partial: &mut Vec<u8>, lines: &mut Vec<String>) {
        let mut buf = Vec::new();
        let read = open
            .file
            .seek(SeekFrom::Start(open.offset))
            .and_then(|_| (&mut open.file).take(MAX_READ).read_to_end(&mut buf));
        let n = match read {
            Ok(n) => n,
            Err(e) => {
                warn!(error = %e, "cannot read log file");
                return;
            }
        };
        open.offset += n as u64;
        for chunk in buf.split_inclusive(|b| *b == b'\n') {
            if partial.len() < MAX_LINE {
                let room = MAX_LINE - partial.len();
                partial.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            if chunk.ends_with(b"\n") {
                let line = String::from_utf8_lossy(partial);
                let line = line.trim_end_matches(['\n', '\r']);
                if !line.is_empty() {
                    lines.push(line.to_string());
                }
                partial.clear();
            }
        }
    }

    fn flush_partial(&mut self, lines: &mut Vec<String>) {
        if !self.partial.is_empty() {
            lines.push(
                String::from_utf8_lossy(&self.partial)
                    .trim_end()
                    .to_string(),
            );
            self.partial.clear();
        }
    }

    fn records(&self, lines: Vec<String>) -> Vec<LogRecord> {
        let ts_ms = now_ms();
        lines
            .into_iter()
            .map(|body| LogRecord {
                ts_ms,
                labels: self.labels.clone(),
                severity: guess_severity(&body).map(str::to_string),
                body,
            })
            .collect()
    }
}

/// Starts one task per `[[logs]]` entry, polling its file every
/// `poll_interval` and publishing new lines until `shutdown`.
pub fn spawn_tails(
    configs: &[LogConfig],
    emitter: Arc<Emitter>,
    shutdown: CancellationToken,
) -> Vec<JoinHandle<()>> {
    configs
        .iter()
        .map(|config| {
            let mut tailer = Tailer::new(config);
            let emitter = emitter.clone();
            let shutdown = shutdown.clone();
            let every = config.poll_interval.max(Duration::from_millis(10));
            let span = info_span!("tail", file = %tailer.source());
            tokio::spawn(
                async move {
                    let mut tick = tokio::time::interval(every);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tokio::select! {
                            _ = shutdown.cancelled() => break,
                            _ = tick.tick() => {}
                        }
                        let polled = tokio::task::spawn_blocking(move || {
                            let records = tailer.poll();
                            (tailer, records)
                        })
                        .await;
                        let records;
                        (tailer, records) = match polled {
                            Ok(r) => r,
                            Err(e) => {
                                warn!(error = %e, "tail task failed");
                                break;
                            }
                        };
                        if records.is_empty() {
                            continue;
                        }
                        if let Err(e) = emitter.emit_logs(tailer.source(), records).await {
                            warn!(error = %e, "dropping log lines");
                        }
                    }
                }
                .instrument(span),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(path: &std::path::Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open");
        f.write_all(text.as_bytes()).expect("write");
    }

    fn bodies(records: Vec<LogRecord>) -> Vec<String> {
        records.into_iter().map(|r| r.body).collect()
    }

    #[test]
    fn starts_at_end_follows_appends_and_truncation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("app.log");
        append(&path, "old line\n");
        let mut t = Tailer::new(&LogConfig::new(&path));
        assert!(t.poll().is_empty(), "old lines are not replayed");
        append(&path, "ERROR one\nwarning: two\nthr");
        let got = t.poll();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].severity.as_deref(), Some("error"));
        assert_eq!(got[1].severity.as_deref(), Some("warn"));
        assert_eq!(
            got[0].labels.get("source"),
            Some(path.to_str().expect("utf8"))
        );
        append(&path, "ee\n");
        assert_eq!(bodies(t.poll()), vec!["three"]);
        // Truncate and write something shorter than before.
        std::fs::write(&path, "after\n").expect("truncate");
        assert_eq!(bodies(t.poll()), vec!["after"]);
        append(&path, "more\n");
        assert_eq!(bodies(t.poll()), vec!["more"]);
    }

    #[test]
    fn follows_rename_rotation_and_late_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("app.log");
        let mut t = Tailer::new(&LogConfig::new(&path));
        assert!(t.poll().is_empty(), "missing file");
        append(&path, "first\n");
        assert_eq!(bodies(t.poll()), vec!["first"], "late file read from 0");
        append(&path, "last of old\n");
        std::fs::rename(&path, dir.path().join("app.log.1")).expect("rename");
        append(&path, "new file\n");
        assert_eq!(bodies(t.poll()), vec!["last of old", "new file"]);
    }

    #[test]
    fn guesses_severity() {
        assert_eq!(guess_severity("[Info] ok"), Some("info"));
        assert_eq!(guess_severity("level=debug msg=x"), Some("debug"));
        assert_eq!(guess_severity("errors happen"), None);
        assert_eq!(guess_severity("nothing"), None);
    }
}
