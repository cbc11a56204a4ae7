//! File tailing: `[[logs]]` entries become [`LogRecord`]s on `vigie.logs`.
//!
//! A [`Tailer`] follows one file: on its first poll it resumes from its
//! checkpoint ([`checkpoint`]) if the file there is still the one it was
//! reading, reads a changed file from its start, and otherwise starts at
//! the end of the file (old lines are not replayed; a file that appears
//! later is read from its start). Then it reads whatever was appended at
//! every poll. When the file shrinks (truncation, `copytruncate`) it
//! starts again from 0; when the path names a different file (rename
//! rotation: the inode changed) it drains the old file and reopens the
//! path from 0. An unterminated last line is held back until its newline
//! arrives. With `multiline`, lines are joined into records
//! ([`multiline`]).
//!
//! After the records of a poll are handed to the bus (with Kafka: once the
//! broker acknowledged them), the position of the first byte not yet
//! published is saved, so a restart neither loses nor repeats a line.
//! When the bus does not take them (refused, or not accepted within
//! `bus.publish_timeout` because Kafka or the analyzer is behind), the
//! tail stops reading and offers the same records again at every poll
//! until the bus takes them: the file is the buffer, memory holds one
//! poll's records at most, and no line is dropped. If
//! the file was rotated while Vigie was down, the rest of the old file is
//! read first when a file beside it has the old identity (rename) or the
//! old first bytes (a `copytruncate` copy).

pub mod checkpoint;
mod glob;
pub mod multiline;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};
use vigie_model::{Labels, LogRecord};

pub use checkpoint::{Checkpoints, TailPosition};
pub use multiline::MultilineConfig;

use crate::Emitter;
use crate::emit::PartialPublish;
use crate::metrics::TAIL_ERRORS;
use crate::ratelimit::LogLimiter;
use crate::source::now_ms;
use multiline::Joiner;

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
    /// The file, or a pattern with `*` in its last element
    /// (`/var/log/nova/*.log`): every matching file is followed, including
    /// files that appear later (see `tail::glob`).
    pub path: PathBuf,
    /// Labels added to every line (`source` = the path is always added
    /// unless set here).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// How often to look for new lines.
    #[serde(default = "default_poll_interval", with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Join continuation lines (stack traces) into one record.
    #[serde(default)]
    pub multiline: Option<MultilineConfig>,
}

impl LogConfig {
    /// A config following `path` with no extra labels.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            labels: BTreeMap::new(),
            poll_interval: default_poll_interval(),
            multiline: None,
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
        let parent_glob = self
            .path
            .parent()
            .is_some_and(|p| p.to_string_lossy().contains('*'));
        if parent_glob {
            out.push((
                format!("logs[{i}].path"),
                "`*` is allowed in the file name only, e.g. \"/var/log/nova/*.log\"".into(),
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
        if let Some(m) = &self.multiline {
            out.extend(m.problems(i));
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

static READ_LOG: LogLimiter = LogLimiter::new();
static PUBLISH_LOG: LogLimiter = LogLimiter::new();

struct Open {
    file: File,
    id: (u64, u64),
    /// Where the next read starts.
    offset: u64,
}

/// A line read from a file and the offset of its first byte.
struct Line {
    text: String,
    from: u64,
}

/// Follows one file.
pub struct Tailer {
    path: PathBuf,
    source: String,
    labels: Labels,
    open: Option<Open>,
    partial: Vec<u8>,
    /// Offset of the first byte of `partial`.
    partial_from: u64,
    joiner: Option<Joiner>,
    first_poll: bool,
    resume: Option<TailPosition>,
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
            partial_from: 0,
            joiner: config.multiline.as_ref().and_then(Joiner::new),
            first_poll: true,
            resume: None,
        }
    }

    /// Reads the file from its start (not its end) when there is no saved
    /// position: for a file that appeared while Vigie was running.
    pub fn from_start(mut self) -> Self {
        self.first_poll = false;
        self
    }

    /// Resumes at a saved position on the first poll (see the module doc).
    pub fn resume_from(mut self, position: Option<TailPosition>) -> Self {
        self.resume = position;
        self
    }

    /// The path, as text (the bus key of this source).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Reads the records completed since the last poll. Blocking (file I/O).
    pub fn poll(&mut self) -> Vec<LogRecord> {
        self.poll_at(Instant::now())
    }

    /// [`Tailer::poll`] at time `now` (multi-line timeouts).
    pub fn poll_at(&mut self, now: Instant) -> Vec<LogRecord> {
        let first = std::mem::replace(&mut self.first_poll, false);
        let mut out = Vec::new();
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) => {
                if self.open.is_some() {
                    debug!(file = %self.source, error = %e, "file gone; waiting for it");
                    // Lines written to the old file before it went away.
                    self.drain(now, &mut out);
                }
                return self.records(out);
            }
        };
        let id = file_id(&meta);
        if let Some(open) = &mut self.open {
            if open.id != id {
                debug!(file = %self.source, "file rotated; reopening");
                self.drain(now, &mut out);
            } else if meta.len() < open.offset {
                debug!(file = %self.source, "file truncated; reading from the start");
                open.offset = 0;
                self.partial.clear();
                if let Some(j) = &mut self.joiner {
                    j.flush(&mut out);
                }
            }
        }
        if self.open.is_none() {
            let mut file = match File::open(&self.path) {
                Ok(file) => file,
                Err(e) => {
                    TAIL_ERRORS.with_label_values(&["open"]).inc();
                    if let Some(suppressed) = READ_LOG.check() {
                        warn!(file = %self.source, error = %e, suppressed, "cannot open log file");
                    }
                    return self.records(out);
                }
            };
            let offset = match self.resume.take() {
                Some(saved) => self.resume_offset(&mut file, id, meta.len(), &saved, now, &mut out),
                None if first => meta.len(),
                None => 0,
            };
            self.partial_from = offset;
            self.open = Some(Open { file, id, offset });
        }
        self.read(now, &mut out);
        if let Some(j) = &mut self.joiner {
            j.flush_if_idle(now, &mut out);
        }
        self.records(out)
    }

    /// Where to start in the file at the path, given the saved position;
    /// drains the rest of the saved file first if it was rotated away.
    fn resume_offset(
        &mut self,
        file: &mut File,
        id: (u64, u64),
        len: u64,
        saved: &TailPosition,
        now: Instant,
        out: &mut Vec<String>,
    ) -> u64 {
        if (saved.dev, saved.ino) == id && saved.matches_content(file, len) {
            info!(file = %self.source, offset = saved.offset, "resuming at the saved position");
            return saved.offset;
        }
        if let Some((old, old_id)) = find_rotated(&self.path, id, saved) {
            info!(file = %self.source, rotated = %old.display(), "file rotated while stopped; reading the rest of the old one first");
            if let Ok(f) = File::open(&old) {
                self.open = Some(Open {
                    file: f,
                    id: old_id,
                    offset: saved.offset,
                });
                self.partial_from = saved.offset;
                self.drain(now, out);
            }
        } else {
            info!(file = %self.source, "file changed while stopped; reading it from the start");
        }
        0
    }

    /// Reads the rest of the open file, publishes everything held, and
    /// closes it.
    fn drain(&mut self, now: Instant, out: &mut Vec<String>) {
        self.read(now, out);
        if !self.partial.is_empty() {
            let line = String::from_utf8_lossy(&self.partial)
                .trim_end()
                .to_string();
            self.partial.clear();
            self.accept(line, self.partial_from, now, out);
        }
        if let Some(j) = &mut self.joiner {
            j.flush(out);
        }
        self.open = None;
    }

    /// Hands a complete line to the joiner, or straight to `out`.
    fn accept(&mut self, text: String, from: u64, now: Instant, out: &mut Vec<String>) {
        match &mut self.joiner {
            Some(j) => j.push(text, from, now, out),
            None => out.push(text),
        }
    }

    fn read(&mut self, now: Instant, out: &mut Vec<String>) {
        let Some(open) = &mut self.open else {
            return;
        };
        let lines = read_new(
            open,
            &mut self.partial,
            &mut self.partial_from,
            &self.source,
        );
        for l in lines {
            self.accept(l.text, l.from, now, out);
        }
    }

    /// The position of the first byte not yet returned by a poll, in the
    /// open file. Blocking (reads the first bytes for the fingerprint).
    pub fn position(&mut self) -> Option<TailPosition> {
        let held = self.joiner.as_ref().and_then(Joiner::held_from);
        let open = self.open.as_mut()?;
        let offset = held.unwrap_or(if self.partial.is_empty() {
            open.offset
        } else {
            self.partial_from
        });
        TailPosition::of(&mut open.file, open.id, offset)
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

/// A file beside `path` (not the one at `path`, identity `current`) that
/// is the saved file: the same identity, or the same first bytes (a copy),
/// and at least as long as the saved offset.
fn find_rotated(
    path: &Path,
    current: (u64, u64),
    saved: &TailPosition,
) -> Option<(PathBuf, (u64, u64))> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut copy = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let candidate = entry.path();
        let Ok(meta) = std::fs::metadata(&candidate) else {
            continue;
        };
        let id = file_id(&meta);
        if candidate == path || id == current || !meta.is_file() || meta.len() < saved.offset {
            continue;
        }
        let Ok(mut f) = File::open(&candidate) else {
            continue;
        };
        if !saved.matches_content(&mut f, meta.len()) {
            continue;
        }
        if (saved.dev, saved.ino) == id {
            return Some((candidate, id));
        }
        copy.get_or_insert((candidate, id));
    }
    copy
}

/// Reads what was appended to `open`; returns the complete lines (empty
/// ones skipped) and keeps an unterminated one in `partial`.
fn read_new(
    open: &mut Open,
    partial: &mut Vec<u8>,
    partial_from: &mut u64,
    source: &str,
) -> Vec<Line> {
    let mut buf = Vec::new();
    let read = open
        .file
        .seek(SeekFrom::Start(open.offset))
        .and_then(|_| (&mut open.file).take(MAX_READ).read_to_end(&mut buf));
    if let Err(e) = read {
        TAIL_ERRORS.with_label_values(&["read"]).inc();
        if let Some(suppressed) = READ_LOG.check() {
            warn!(file = %source, error = %e, suppressed, "cannot read log file");
        }
        return Vec::new();
    }
    let mut pos = open.offset;
    open.offset += buf.len() as u64;
    let mut lines = Vec::new();
    for chunk in buf.split_inclusive(|b| *b == b'\n') {
        if partial.is_empty() {
            *partial_from = pos;
        }
        pos += chunk.len() as u64;
        if partial.len() < MAX_LINE {
            let room = MAX_LINE - partial.len();
            partial.extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
        if chunk.ends_with(b"\n") {
            let line = String::from_utf8_lossy(partial);
            let line = line.trim_end_matches(['\n', '\r']);
            if !line.is_empty() {
                lines.push(Line {
                    text: line.to_string(),
                    from: *partial_from,
                });
            }
            partial.clear();
        }
    }
    if partial.is_empty() {
        *partial_from = pos;
    }
    lines
}

/// Starts one task per `[[logs]]` entry, polling its file (or, for a
/// pattern, every matching file: `tail::glob`) every `poll_interval` and
/// publishing new records until `shutdown`. With
/// `checkpoints`, each resumes at its saved position and saves it after
/// every publish.
pub fn spawn_tails(
    configs: &[LogConfig],
    emitter: Arc<Emitter>,
    shutdown: CancellationToken,
    checkpoints: Option<Arc<Checkpoints>>,
) -> Vec<JoinHandle<()>> {
    configs
        .iter()
        .map(|config| {
            if glob::is_glob(config) {
                let span = info_span!("tail_glob", pattern = %config.path.display());
                let task = glob::run_glob(
                    config.clone(),
                    emitter.clone(),
                    shutdown.clone(),
                    checkpoints.clone(),
                );
                return tokio::spawn(task.instrument(span));
            }
            let tailer = Tailer::new(config);
            let saved = checkpoints.as_ref().and_then(|c| c.get(tailer.source()));
            let tailer = tailer.resume_from(saved);
            let every = config.poll_interval.max(Duration::from_millis(10));
            let span = info_span!("tail", file = %tailer.source());
            tokio::spawn(
                run_tail(
                    tailer,
                    every,
                    emitter.clone(),
                    shutdown.clone(),
                    checkpoints.clone(),
                )
                .instrument(span),
            )
        })
        .collect()
}

async fn run_tail(
    mut tailer: Tailer,
    every: Duration,
    emitter: Arc<Emitter>,
    shutdown: CancellationToken,
    checkpoints: Option<Arc<Checkpoints>>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut saved: Option<TailPosition> = None;
    // Records the bus did not take: published again before anything new
    // is read, so the file is the buffer while the bus is behind.
    let mut unpublished: Vec<LogRecord> = Vec::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let records = if unpublished.is_empty() {
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
            records
        } else {
            std::mem::take(&mut unpublished)
        };
        if !records.is_empty() {
            let n = records.len();
            match emitter.publish_logs(tailer.source(), &records).await {
                Ok(_) => {}
                Err(PartialPublish { published, error })
                    if matches!(error, crate::IngestError::Publish(_)) =>
                {
                    TAIL_ERRORS.with_label_values(&["publish"]).inc();
                    if let Some(suppressed) = PUBLISH_LOG.check() {
                        warn!(%error, records = n - published, suppressed, "log records not published; reading stops until the bus takes them");
                    }
                    // Only what the bus did not take is published again.
                    unpublished = records;
                    unpublished.drain(..published);
                    // Nothing new is saved: a restart reads them again.
                    continue;
                }
                Err(PartialPublish { published, error }) => {
                    // Records that cannot be encoded never will be.
                    crate::emit::count_dropped_logs("tail", error.reason(), n - published);
                    warn!(%error, records = n - published, "log records cannot be encoded; dropped");
                }
            }
        }
        let Some(checkpoints) = checkpoints.clone() else {
            continue;
        };
        let save = tokio::task::spawn_blocking(move || {
            let position = tailer.position();
            let changed = position.is_some() && position != saved;
            if changed && let Some(p) = &position {
                let source = tailer.source().to_string();
                if let Err(error) = checkpoints.save(&source, p.clone()) {
                    TAIL_ERRORS.with_label_values(&["checkpoint"]).inc();
                    if let Some(suppressed) = READ_LOG.check() {
                        warn!(%error, suppressed, "cannot save the tail position");
                    }
                    return (tailer, saved);
                }
            }
            (tailer, if changed { position } else { saved })
        })
        .await;
        (tailer, saved) = match save {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "tail task failed");
                break;
            }
        };
    }
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

    fn java_config(path: &std::path::Path) -> LogConfig {
        LogConfig {
            multiline: Some(MultilineConfig {
                start: r"^\d{4}-\d{2}-\d{2} ".into(),
                max_lines: 500,
                timeout: Duration::from_secs(2),
            }),
            ..LogConfig::new(path)
        }
    }

    const JAVA: &str = include_str!("tail/fixtures/java_stacktrace.log");

    #[test]
    fn joins_a_java_stack_trace() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("app.log");
        let mut t = Tailer::new(&java_config(&path));
        let t0 = Instant::now();
        assert!(t.poll_at(t0).is_empty());
        append(&path, JAVA);
        let got = t.poll_at(t0);
        assert_eq!(got.len(), 3, "the last record waits for its timeout");
        assert_eq!(got[0].body.lines().count(), 1);
        assert_eq!(got[1].body.lines().count(), 10, "{}", got[1].body);
        assert!(got[1].body.starts_with("2024-05-14 10:15:02,405 ERROR"));
        assert!(got[1].body.ends_with("\t... 3 more"));
        assert_eq!(got[1].severity.as_deref(), Some("error"));
        assert_eq!(got[2].severity.as_deref(), Some("warn"));
        assert!(t.poll_at(t0 + Duration::from_secs(1)).is_empty());
        let last = t.poll_at(t0 + Duration::from_secs(2));
        assert_eq!(bodies(last), vec![JAVA.lines().last().expect("line")]);
    }

    /// Polls like the tail task: records, then the position to save.
    fn poll_and_save(t: &mut Tailer, saved: &Checkpoints) -> Vec<String> {
        let got = bodies(t.poll_at(Instant::now()));
        if let Some(p) = t.position() {
            saved.save(t.source(), p).expect("save");
        }
        got
    }

    #[test]
    fn a_restart_resumes_where_it_stopped_even_mid_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("app.log");
        let saved = Checkpoints::load(dir.path().join("tail.json"));
        let config = java_config(&path);
        let mut t = Tailer::new(&config);
        append(&path, "");
        assert!(poll_and_save(&mut t, &saved).is_empty());
        append(&path, JAVA);
        append(&path, "2024-05-14 10:16:00,000 INFO half a li");
        let first = poll_and_save(&mut t, &saved);
        assert_eq!(first.len(), 3);
        drop(t);
        // While stopped: the half line is finished, more lines arrive.
        append(
            &path,
            "ne\n\tcontinued\n2024-05-14 10:17:00,000 INFO after\n",
        );
        let saved = Checkpoints::load(dir.path().join("tail.json"));
        let mut t = Tailer::new(&config).resume_from(saved.get(&path.display().to_string()));
        let mut second = poll_and_save(&mut t, &saved);
        second.extend(bodies(t.poll_at(Instant::now() + Duration::from_secs(3))));
        assert_eq!(
            second,
            vec![
                JAVA.lines().last().expect("line").to_string(),
                "2024-05-14 10:16:00,000 INFO half a line\n\tcontinued".into(),
                "2024-05-14 10:17:00,000 INFO after".into(),
            ],
            "nothing lost, nothing repeated"
        );
    }

    #[test]
    fn rotation_while_stopped_reads_the_rest_of_the_old_file_first() {
        for copytruncate in [false, true] {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("app.log");
            let saved = Checkpoints::load(dir.path().join("tail.json"));
            let mut t = Tailer::new(&LogConfig::new(&path));
            append(&path, "");
            poll_and_save(&mut t, &saved);
            append(&path, "one\n");
            assert_eq!(poll_and_save(&mut t, &saved), vec!["one"]);
            drop(t);
            append(&path, "two\n");
            let rotated = dir.path().join("app.log.1");
            if copytruncate {
                std::fs::copy(&path, &rotated).expect("copy");
                std::fs::write(&path, "").expect("truncate");
            } else {
                std::fs::rename(&path, &rotated).expect("rename");
            }
            append(&path, "three\n");
            let mut t = Tailer::new(&LogConfig::new(&path))
                .resume_from(saved.get(&path.display().to_string()));
            assert_eq!(
                poll_and_save(&mut t, &saved),
                vec!["two", "three"],
                "copytruncate: {copytruncate}"
            );
            append(&path, "four\n");
            assert_eq!(poll_and_save(&mut t, &saved), vec!["four"]);
        }
    }

    #[test]
    fn a_replaced_file_is_read_from_the_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("app.log");
        let saved = Checkpoints::load(dir.path().join("tail.json"));
        append(&path, "old one\nold two\n");
        let mut t = Tailer::new(&LogConfig::new(&path));
        append(&path, "x\n");
        poll_and_save(&mut t, &saved);
        drop(t);
        // Same length, other content, no copy beside it.
        std::fs::write(&path, "new one\nnew two\ny\n").expect("rewrite");
        let mut t =
            Tailer::new(&LogConfig::new(&path)).resume_from(saved.get(&path.display().to_string()));
        assert_eq!(
            poll_and_save(&mut t, &saved),
            vec!["new one", "new two", "y"]
        );
    }

    /// Waits up to 10 s for `f`; fails the test with `what` otherwise.
    async fn wait(what: &str, f: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Lines that make more than one bus message go as several; when the
    /// bus stalls after the first, only the rest are published again: every
    /// line arrives once, in order (a batch above the broker's limit used
    /// to be refused for ever and stop the tail).
    #[tokio::test]
    async fn a_poll_larger_than_a_message_is_split_and_resumed_where_it_stopped() {
        use vigie_bus::Subscriber;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("big.log");
        // 40 lines of 60 KiB: 2.4 MB in one poll.
        let text: String = (0..40)
            .map(|i| format!("{i:04}{}\n", "y".repeat(60 * 1024)))
            .collect();
        append(&path, &text);
        let bus = vigie_bus::memory::MemoryBus::new(1);
        let mut sub = bus.subscribe(&[vigie_model::topics::LOGS]);
        let emitter = Arc::new(
            Emitter::new(Arc::new(bus), 1).with_publish_timeout(Duration::from_millis(30)),
        );
        let config = LogConfig {
            poll_interval: Duration::from_millis(20),
            ..LogConfig::new(&path)
        };
        let shutdown = CancellationToken::new();
        let failed = || TAIL_ERRORS.with_label_values(&["publish"]).get();
        let before = failed();
        let task = tokio::spawn(run_tail(
            Tailer::new(&config).from_start(),
            config.poll_interval,
            emitter,
            shutdown.clone(),
            None,
        ));
        // Nobody reads yet: the first message fills the bus, the next waits
        // out its timeout.
        wait("the bus refuses the second message", || failed() > before).await;
        let mut heads = Vec::new();
        while heads.len() < 40 {
            let d =
                crate::testing::next_message(&mut sub, "records arrive once there is room").await;
            assert!(d.payload.len() <= crate::emit::MAX_MESSAGE_BYTES);
            heads.extend(
                crate::testing::logs_in(&d)
                    .iter()
                    .map(|r| r.body[..4].to_string()),
            );
        }
        let expected: Vec<String> = (0..40).map(|i| format!("{i:04}")).collect();
        assert_eq!(heads, expected, "every line once, in order");
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .expect("stops")
            .expect("no panic");
        assert!(
            !matches!(
                tokio::time::timeout(Duration::from_millis(100), sub.recv()).await,
                Ok(Ok(Some(_)))
            ),
            "no line twice"
        );
    }

    /// While the bus takes nothing, the tail stops reading and saves no
    /// new position; once the bus has room, every line arrives once, in
    /// order.
    #[tokio::test]
    async fn a_full_bus_pauses_the_tail_and_loses_no_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("app.log");
        append(&path, "l0\n");
        let bus = vigie_bus::memory::MemoryBus::new(1);
        let mut sub = bus.subscribe(&[vigie_model::topics::LOGS]);
        let emitter = Arc::new(
            Emitter::new(Arc::new(bus), 1).with_publish_timeout(Duration::from_millis(30)),
        );
        let state = dir.path().join("tail.json");
        let checkpoints = Arc::new(Checkpoints::load(&state));
        let config = LogConfig {
            poll_interval: Duration::from_millis(20),
            ..LogConfig::new(&path)
        };
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run_tail(
            Tailer::new(&config).from_start(),
            config.poll_interval,
            emitter,
            shutdown.clone(),
            Some(checkpoints),
        ));
        let source = path.display().to_string();
        let saved = || Checkpoints::load(&state).get(&source).map(|p| p.offset);
        wait("l0 published", || saved() == Some(3)).await;
        let failed = || TAIL_ERRORS.with_label_values(&["publish"]).get();
        let before = failed();
        append(&path, "l1\nl2\n");
        wait("the bus refuses l1, l2", || failed() > before).await;
        append(&path, "l3\n");
        wait("and refuses them again", || failed() > before + 2).await;
        assert_eq!(saved(), Some(3), "no position past unpublished lines");
        let mut bodies = Vec::new();
        while bodies.len() < 4 {
            let d =
                crate::testing::next_message(&mut sub, "records arrive once there is room").await;
            bodies.extend(crate::testing::logs_in(&d).into_iter().map(|r| r.body));
        }
        assert_eq!(
            bodies,
            ["l0", "l1", "l2", "l3"],
            "every line once, in order"
        );
        wait("the position moves on", || saved() == Some(12)).await;
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .expect("stops")
            .expect("no panic");
    }

    #[test]
    fn guesses_severity() {
        assert_eq!(guess_severity("[Info] ok"), Some("info"));
        assert_eq!(guess_severity("level=debug msg=x"), Some("debug"));
        assert_eq!(guess_severity("errors happen"), None);
        assert_eq!(guess_severity("nothing"), None);
    }
}
