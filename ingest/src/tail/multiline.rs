//! Multi-line joining: lines that do not match a start pattern belong to
//! the record before them (stack traces, wrapped messages).

use std::time::{Duration, Instant};

use regex::Regex;
use serde::{Deserialize, Serialize};

/// Longest joined record kept; a line that would make it longer starts a
/// new record (so a record always fits one bus message).
const MAX_RECORD: usize = crate::emit::MAX_LOG_RECORD_BYTES;

fn default_max_lines() -> usize {
    500
}

fn default_timeout() -> Duration {
    Duration::from_secs(2)
}

/// `multiline = { start = "REGEX", max_lines = 500, timeout = "2s" }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultilineConfig {
    /// A line matching this regex starts a record; any other line is
    /// appended (after a `\n`) to the record before it.
    pub start: String,
    /// Lines per record at most; a full record is published at once.
    #[serde(default = "default_max_lines")]
    pub max_lines: usize,
    /// A record is published once no line was added for this long.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

impl MultilineConfig {
    /// Problems of `logs[i].multiline`, as `(key, what to fix)`.
    pub fn problems(&self, i: usize) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Err(e) = Regex::new(&self.start) {
            out.push((
                format!("logs[{i}].multiline.start"),
                format!("not a valid regex ({e}), e.g. \"^\\\\d{{4}}-\""),
            ));
        }
        if self.max_lines == 0 {
            out.push((
                format!("logs[{i}].multiline.max_lines"),
                "must be positive, e.g. 500".into(),
            ));
        }
        if self.timeout.is_zero() {
            out.push((
                format!("logs[{i}].multiline.timeout"),
                "must be positive, e.g. \"2s\"".into(),
            ));
        }
        out
    }
}

struct Pending {
    text: String,
    lines: usize,
    /// File offset of its first line.
    from: u64,
    last: Instant,
}

/// Joins lines into records.
pub(crate) struct Joiner {
    start: Regex,
    max_lines: usize,
    timeout: Duration,
    pending: Option<Pending>,
}

impl Joiner {
    /// A joiner for `config`; `None` if its regex does not compile (the
    /// configuration check reports it).
    pub(crate) fn new(config: &MultilineConfig) -> Option<Self> {
        Some(Self {
            start: Regex::new(&config.start).ok()?,
            max_lines: config.max_lines.max(1),
            timeout: config.timeout,
            pending: None,
        })
    }

    /// Adds a line that starts at file offset `from`; completed records
    /// go to `out`.
    pub(crate) fn push(&mut self, line: String, from: u64, now: Instant, out: &mut Vec<String>) {
        if let Some(p) = &mut self.pending
            && !self.start.is_match(&line)
            && p.text.len() + 1 + line.len() <= MAX_RECORD
        {
            p.text.push('\n');
            p.text.push_str(&line);
            p.lines += 1;
            p.last = now;
            if p.lines >= self.max_lines {
                self.flush(out);
            }
            return;
        }
        self.flush(out);
        self.pending = Some(Pending {
            text: line,
            lines: 1,
            from,
            last: now,
        });
        if self.max_lines == 1 {
            self.flush(out);
        }
    }

    /// Publishes the record being joined, if any.
    pub(crate) fn flush(&mut self, out: &mut Vec<String>) {
        if let Some(p) = self.pending.take() {
            out.push(p.text);
        }
    }

    /// Publishes the record being joined if no line came for `timeout`.
    pub(crate) fn flush_if_idle(&mut self, now: Instant, out: &mut Vec<String>) {
        if self
            .pending
            .as_ref()
            .is_some_and(|p| now.duration_since(p.last) >= self.timeout)
        {
            self.flush(out);
        }
    }

    /// File offset of the first line not yet published, if one is held.
    pub(crate) fn held_from(&self) -> Option<u64> {
        self.pending.as_ref().map(|p| p.from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joiner(max_lines: usize) -> Joiner {
        Joiner::new(&MultilineConfig {
            start: r"^\d{4}-".into(),
            max_lines,
            timeout: Duration::from_secs(2),
        })
        .expect("valid")
    }

    #[test]
    fn joins_continuations_flushes_on_start_max_and_timeout() {
        let mut j = joiner(3);
        let t0 = Instant::now();
        let mut out = Vec::new();
        j.push("  orphan".into(), 0, t0, &mut out);
        j.push("2024-01-01 a".into(), 9, t0, &mut out);
        assert_eq!(
            out,
            ["  orphan"],
            "a continuation with nothing before stands alone"
        );
        j.push("  at x".into(), 22, t0, &mut out);
        assert_eq!(j.held_from(), Some(9));
        j.push("2024-01-01 b".into(), 30, t0, &mut out);
        assert_eq!(out[1], "2024-01-01 a\n  at x");
        j.push("  1".into(), 43, t0, &mut out);
        j.push("  2".into(), 47, t0, &mut out);
        assert_eq!(out[2], "2024-01-01 b\n  1\n  2", "max_lines reached");
        assert_eq!(j.held_from(), None);
        j.push("2024-01-01 c".into(), 51, t0, &mut out);
        j.flush_if_idle(t0 + Duration::from_secs(1), &mut out);
        assert_eq!(out.len(), 3, "not idle yet");
        j.flush_if_idle(t0 + Duration::from_secs(2), &mut out);
        assert_eq!(out[3], "2024-01-01 c");
    }

    #[test]
    fn bad_regex_is_a_problem() {
        let c = MultilineConfig {
            start: "(".into(),
            max_lines: 0,
            timeout: Duration::ZERO,
        };
        assert_eq!(c.problems(2).len(), 3);
        assert!(Joiner::new(&c).is_none());
    }
}
