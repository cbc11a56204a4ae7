//! Silences, with Alertmanager's model and JSON field names.
//!
//! A silence mutes every alert whose labels satisfy all of its matchers
//! while it is active (`startsAt <= now < endsAt`). Silences are persisted
//! to one JSON file (written to a temporary file, then renamed) and loaded
//! at start; expired silences are kept for [`SILENCE_RETENTION`] so
//! `amtool silence query --expired` can show them, then dropped.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use regex::Regex;
use serde::{Deserialize, Serialize};
use tracing::warn;
use vigie_model::Labels;

/// How long an expired silence is kept before it is dropped.
pub const SILENCE_RETENTION: Duration = Duration::from_secs(5 * 24 * 3600);

/// The file silences are persisted to, under the data directory.
pub fn silences_path(data_dir: &Path) -> PathBuf {
    data_dir.join("alerting").join("silences.json")
}

/// Why a silence or a matcher was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SilenceError {
    /// The silence or matcher is malformed; the message says why.
    Invalid(String),
    /// No silence has this id.
    NotFound(String),
}

impl fmt::Display for SilenceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SilenceError::Invalid(m) => f.write_str(m),
            SilenceError::NotFound(id) => write!(f, "silence {id} not found"),
        }
    }
}

impl std::error::Error for SilenceError {}

/// One label matcher: `name = value`, `!=`, `=~` or `!~` (regexes are
/// fully anchored, as in Alertmanager).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Matcher {
    /// Label name.
    pub name: String,
    /// Value or regular expression.
    pub value: String,
    /// Whether `value` is a regular expression.
    pub is_regex: bool,
    /// False for the negative operators (`!=`, `!~`).
    #[serde(default = "yes")]
    pub is_equal: bool,
    #[serde(skip)]
    compiled: Option<Regex>,
}

fn yes() -> bool {
    true
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.value == other.value
            && self.is_regex == other.is_regex
            && self.is_equal == other.is_equal
    }
}

impl Matcher {
    /// A checked matcher; fails on an empty name or a bad regex.
    pub fn new(
        name: impl Into<String>,
        value: impl Into<String>,
        is_regex: bool,
        is_equal: bool,
    ) -> Result<Self, SilenceError> {
        let mut m = Matcher {
            name: name.into(),
            value: value.into(),
            is_regex,
            is_equal,
            compiled: None,
        };
        m.compile()?;
        Ok(m)
    }

    /// Validates the name and compiles the regex (after deserializing).
    pub fn compile(&mut self) -> Result<(), SilenceError> {
        if !valid_label_name(&self.name) {
            return Err(SilenceError::Invalid(format!(
                "invalid label name {:?} in matcher",
                self.name
            )));
        }
        if self.is_regex {
            let re = Regex::new(&format!("^(?:{})$", self.value)).map_err(|e| {
                SilenceError::Invalid(format!("invalid regular expression {:?}: {e}", self.value))
            })?;
            self.compiled = Some(re);
        } else {
            self.compiled = None;
        }
        Ok(())
    }

    /// Parses one matcher as in Alertmanager's `filter` parameter and
    /// amtool: `name=value`, `name!="value"`, `name=~"re"`, `name!~re`.
    pub fn parse(s: &str) -> Result<Self, SilenceError> {
        let s = s.trim();
        let s = s
            .strip_prefix('{')
            .and_then(|r| r.strip_suffix('}'))
            .unwrap_or(s)
            .trim();
        let pos = s
            .find(['=', '!'])
            .ok_or_else(|| SilenceError::Invalid(format!("bad matcher format: {s}")))?;
        let name = s[..pos].trim();
        let rest = &s[pos..];
        let (op_len, is_equal, is_regex) = if rest.starts_with("=~") {
            (2, true, true)
        } else if rest.starts_with("!~") {
            (2, false, true)
        } else if rest.starts_with("!=") {
            (2, false, false)
        } else if rest.starts_with('=') {
            (1, true, false)
        } else {
            return Err(SilenceError::Invalid(format!("bad matcher format: {s}")));
        };
        let raw = rest[op_len..].trim();
        let value = match raw.strip_prefix('"') {
            Some(inner) => {
                let inner = inner.strip_suffix('"').ok_or_else(|| {
                    SilenceError::Invalid(format!("unterminated quoted value in matcher: {s}"))
                })?;
                unescape(inner)
            }
            None => raw.to_string(),
        };
        Matcher::new(name, value, is_regex, is_equal)
    }

    /// Whether `labels` satisfy this matcher (a missing label is `""`).
    pub fn matches(&self, labels: &Labels) -> bool {
        self.matches_value(labels.get(&self.name).unwrap_or(""))
    }

    /// Whether a label value satisfies this matcher.
    pub fn matches_value(&self, v: &str) -> bool {
        let hit = match (&self.compiled, self.is_regex) {
            (Some(re), true) => re.is_match(v),
            // Not compiled (only before `compile` ran): matches nothing.
            (None, true) => false,
            (_, false) => v == self.value,
        };
        hit == self.is_equal
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match (self.is_equal, self.is_regex) {
            (true, false) => "=",
            (false, false) => "!=",
            (true, true) => "=~",
            (false, true) => "!~",
        };
        write!(f, "{}{op}{:?}", self.name, self.value)
    }
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some(o) => out.push(o),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether `name` is a valid Prometheus label name.
pub fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether all `matchers` hold for `labels`.
pub fn all_match(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers.iter().all(|m| m.matches(labels))
}

/// Where a silence is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SilenceState {
    /// Starts in the future.
    Pending,
    /// Mutes matching alerts now.
    Active,
    /// Ended.
    Expired,
}

impl SilenceState {
    /// `"pending"`, `"active"` or `"expired"`.
    pub fn as_str(self) -> &'static str {
        match self {
            SilenceState::Pending => "pending",
            SilenceState::Active => "active",
            SilenceState::Expired => "expired",
        }
    }
}

/// One silence (Alertmanager's `gettableSilence` without `status`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Silence {
    /// UUID v4.
    pub id: String,
    /// All must match for an alert to be muted.
    pub matchers: Vec<Matcher>,
    /// When it starts muting.
    pub starts_at: DateTime<Utc>,
    /// When it stops muting.
    pub ends_at: DateTime<Utc>,
    /// Who created it.
    pub created_by: String,
    /// Why.
    pub comment: String,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl Silence {
    /// Its state at `now`.
    pub fn state(&self, now: DateTime<Utc>) -> SilenceState {
        if now < self.starts_at {
            SilenceState::Pending
        } else if now < self.ends_at {
            SilenceState::Active
        } else {
            SilenceState::Expired
        }
    }

    /// Whether it mutes `labels` at `now`.
    pub fn mutes(&self, labels: &Labels, now: DateTime<Utc>) -> bool {
        self.state(now) == SilenceState::Active && all_match(&self.matchers, labels)
    }
}

/// What a client posts to create or update a silence.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostableSilence {
    /// Set to update an existing silence.
    #[serde(default)]
    pub id: Option<String>,
    /// Matchers; at least one.
    pub matchers: Vec<Matcher>,
    /// Start; a past start becomes now for a new silence.
    pub starts_at: DateTime<Utc>,
    /// End; must be after the start and not in the past.
    pub ends_at: DateTime<Utc>,
    /// Author.
    pub created_by: String,
    /// Comment.
    pub comment: String,
}

/// A random UUID v4 (RFC 4122 variant), lower-case hex with dashes.
pub fn new_uuid() -> String {
    let mut b = [0u8; 16];
    for x in &mut b {
        *x = fastrand::u8(..);
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[derive(Serialize, Deserialize)]
struct File {
    silences: Vec<Silence>,
}

/// Every silence, by id, optionally persisted to a file.
#[derive(Debug, Default)]
pub struct Silences {
    path: Option<PathBuf>,
    by_id: BTreeMap<String, Silence>,
}

impl Silences {
    /// An empty store that is not persisted.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// Loads the store persisted at `path` (empty if the file does not
    /// exist); later changes are written back there.
    pub fn load(path: PathBuf, now: DateTime<Utc>) -> std::io::Result<Self> {
        let mut by_id = BTreeMap::new();
        match std::fs::read(&path) {
            Ok(bytes) => {
                let file: File = serde_json::from_slice(&bytes).map_err(|e| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{}: {e}", path.display()),
                    )
                })?;
                for mut s in file.silences {
                    let mut ok = true;
                    for m in &mut s.matchers {
                        if let Err(e) = m.compile() {
                            warn!(id = %s.id, error = %e, "stored silence skipped");
                            ok = false;
                        }
                    }
                    if ok {
                        by_id.insert(s.id.clone(), s);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut s = Self {
            path: Some(path),
            by_id,
        };
        s.gc(now);
        Ok(s)
    }

    /// Number of silences held (expired ones included).
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether no silence is held.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// One silence.
    pub fn get(&self, id: &str) -> Option<&Silence> {
        self.by_id.get(id)
    }

    /// Every silence, in id order.
    pub fn iter(&self) -> impl Iterator<Item = &Silence> {
        self.by_id.values()
    }

    /// The ids of the active silences that mute `labels` at `now`.
    pub fn muting(&self, labels: &Labels, now: DateTime<Utc>) -> Vec<String> {
        self.by_id
            .values()
            .filter(|s| s.mutes(labels, now))
            .map(|s| s.id.clone())
            .collect()
    }

    /// Creates a silence, or updates the one named by `p.id`, and returns
    /// its id. As in Alertmanager, an update that cannot be made in place
    /// (the silence already started and its start or matchers change, or
    /// it has expired) expires the old silence and creates a new one.
    pub fn set(&mut self, p: PostableSilence, now: DateTime<Utc>) -> Result<String, SilenceError> {
        // Times are kept to the millisecond, as the API shows them, so a
        // silence read and posted back compares equal.
        let now = now.trunc_subsecs(3);
        let mut matchers = p.matchers;
        if matchers.is_empty() {
            return Err(SilenceError::Invalid(
                "at least one matcher is required".into(),
            ));
        }
        for m in &mut matchers {
            m.compile()?;
        }
        if matchers.iter().all(|m| m.matches_value("")) {
            return Err(SilenceError::Invalid(
                "at least one matcher must not match the empty string".into(),
            ));
        }
        if p.ends_at < p.starts_at {
            return Err(SilenceError::Invalid(
                "end time must not be before start time".into(),
            ));
        }
        if p.ends_at < now {
            return Err(SilenceError::Invalid(
                "end time can't be in the past".into(),
            ));
        }
        let mut silence = Silence {
            id: String::new(),
            matchers,
            starts_at: p.starts_at.trunc_subsecs(3),
            ends_at: p.ends_at.trunc_subsecs(3),
            created_by: p.created_by,
            comment: p.comment,
            updated_at: now,
        };
        if let Some(id) = p.id.filter(|id| !id.is_empty()) {
            let Some(prev) = self.by_id.get_mut(&id) else {
                return Err(SilenceError::NotFound(id));
            };
            let in_place = match prev.state(now) {
                SilenceState::Pending => true,
                SilenceState::Active => {
                    prev.starts_at == silence.starts_at && prev.matchers == silence.matchers
                }
                SilenceState::Expired => false,
            };
            if in_place {
                if silence.starts_at < now {
                    silence.starts_at = now;
                }
                silence.id = id.clone();
                *prev = silence;
                self.persist();
                return Ok(id);
            }
            if prev.state(now) == SilenceState::Active {
                prev.ends_at = now;
                prev.updated_at = now;
            }
        }
        if silence.starts_at < now {
            silence.starts_at = now;
        }
        silence.id = new_uuid();
        let id = silence.id.clone();
        self.by_id.insert(id.clone(), silence);
        self.persist();
        Ok(id)
    }

    /// Expires a silence now (a pending one never starts).
    pub fn expire(&mut self, id: &str, now: DateTime<Utc>) -> Result<(), SilenceError> {
        let now = now.trunc_subsecs(3);
        let s = self
            .by_id
            .get_mut(id)
            .ok_or_else(|| SilenceError::NotFound(id.to_string()))?;
        match s.state(now) {
            SilenceState::Expired => {
                return Err(SilenceError::Invalid(format!(
                    "silence {id} already expired"
                )));
            }
            SilenceState::Pending => {
                s.starts_at = now;
                s.ends_at = now;
            }
            SilenceState::Active => s.ends_at = now,
        }
        s.updated_at = now;
        self.persist();
        Ok(())
    }

    /// Drops silences expired for longer than [`SILENCE_RETENTION`];
    /// returns how many were dropped.
    pub fn gc(&mut self, now: DateTime<Utc>) -> usize {
        let retention =
            chrono::Duration::from_std(SILENCE_RETENTION).unwrap_or(chrono::Duration::MAX);
        let before = self.by_id.len();
        self.by_id.retain(|_, s| {
            s.ends_at
                .checked_add_signed(retention)
                .is_none_or(|t| t > now)
        });
        let dropped = before - self.by_id.len();
        if dropped > 0 {
            self.persist();
        }
        dropped
    }

    fn persist(&self) {
        let Some(path) = &self.path else {
            return;
        };
        if let Err(e) = self.write(path) {
            warn!(path = %path.display(), error = %e, "cannot persist silences");
        }
    }

    fn write(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = File {
            silences: self.by_id.values().cloned().collect(),
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).expect("time")
    }

    fn post(matchers: Vec<Matcher>, start: i64, end: i64) -> PostableSilence {
        PostableSilence {
            id: None,
            matchers,
            starts_at: t(start),
            ends_at: t(end),
            created_by: "me".into(),
            comment: "maintenance".into(),
        }
    }

    fn labels(name: &str, instance: &str) -> Labels {
        Labels::new()
            .with("alertname", name)
            .with("instance", instance)
    }

    #[test]
    fn uuid_is_v4_shaped_and_unique() {
        let a = new_uuid();
        let b = new_uuid();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'), "{a}");
        assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"), "{a}");
    }

    #[test]
    fn matchers_parse_and_regexes_are_anchored() {
        let m = Matcher::parse(r#"instance=~"db.""#).expect("parse");
        assert!(m.is_regex && m.is_equal);
        assert!(m.matches(&labels("A", "db1")));
        assert!(!m.matches(&labels("A", "xdb1")), "anchored at the start");
        assert!(!m.matches(&labels("A", "db12")), "anchored at the end");
        let m = Matcher::parse("alertname!=Foo").expect("parse");
        assert!(!m.is_equal && !m.is_regex);
        assert!(m.matches(&labels("Bar", "x")));
        assert!(!m.matches(&labels("Foo", "x")));
        let m = Matcher::parse(r#"{job!~"a|b"}"#).expect("parse");
        assert!(m.matches(&labels("X", "y")), "missing label is empty");
        assert!(Matcher::parse("1bad=x").is_err());
        assert!(Matcher::parse("a=~\"(\"").is_err());
        assert!(Matcher::parse("nooperator").is_err());
        assert_eq!(Matcher::parse(r#"a="q\"x""#).expect("parse").value, "q\"x");
    }

    #[test]
    fn silence_mutes_only_while_active() {
        let mut s = Silences::in_memory();
        let m = Matcher::new("alertname", "A", false, true).expect("m");
        let id = s.set(post(vec![m], 10, 20), t(0)).expect("set");
        assert_eq!(
            s.get(&id).map(|x| x.state(t(0))),
            Some(SilenceState::Pending)
        );
        assert!(s.muting(&labels("A", "x"), t(5)).is_empty());
        assert_eq!(s.muting(&labels("A", "x"), t(10)), vec![id.clone()]);
        assert!(s.muting(&labels("B", "x"), t(10)).is_empty());
        assert!(s.muting(&labels("A", "x"), t(20)).is_empty());
    }

    #[test]
    fn validation() {
        let mut s = Silences::in_memory();
        let a = || Matcher::new("alertname", "A", false, true).expect("m");
        assert!(s.set(post(vec![], 0, 10), t(0)).is_err(), "no matcher");
        assert!(
            s.set(post(vec![a()], 10, 5), t(0)).is_err(),
            "end before start"
        );
        assert!(
            s.set(post(vec![a()], -20, -10), t(0)).is_err(),
            "in the past"
        );
        let empty = Matcher::new("alertname", ".*", true, true).expect("m");
        assert!(
            s.set(post(vec![empty], 0, 10), t(0)).is_err(),
            "matches all"
        );
        let mut p = post(vec![a()], 0, 10);
        p.id = Some("nope".into());
        assert_eq!(s.set(p, t(0)), Err(SilenceError::NotFound("nope".into())));
        assert!(s.is_empty());
    }

    #[test]
    fn update_in_place_or_replace() {
        let mut s = Silences::in_memory();
        let a = Matcher::new("alertname", "A", false, true).expect("m");
        let id = s.set(post(vec![a.clone()], 0, 100), t(0)).expect("set");
        // Active, same start and matchers: extend in place.
        let mut p = post(vec![a.clone()], 0, 200);
        p.id = Some(id.clone());
        assert_eq!(s.set(p, t(50)).expect("update"), id);
        assert_eq!(s.get(&id).map(|x| x.ends_at), Some(t(200)));
        // Matchers change while active: old expired, new id.
        let b = Matcher::new("alertname", "B", false, true).expect("m");
        let mut p = post(vec![b], 0, 200);
        p.id = Some(id.clone());
        let new = s.set(p, t(60)).expect("replace");
        assert_ne!(new, id);
        assert_eq!(
            s.get(&id).map(|x| x.state(t(60))),
            Some(SilenceState::Expired)
        );
        assert_eq!(s.get(&new).map(|x| x.starts_at), Some(t(60)));
    }

    #[test]
    fn expire_and_retention() {
        let mut s = Silences::in_memory();
        let a = Matcher::new("alertname", "A", false, true).expect("m");
        let id = s.set(post(vec![a], 0, 100), t(0)).expect("set");
        s.expire(&id, t(10)).expect("expire");
        assert_eq!(
            s.get(&id).map(|x| x.state(t(10))),
            Some(SilenceState::Expired)
        );
        assert!(s.expire(&id, t(11)).is_err(), "already expired");
        assert!(matches!(
            s.expire("x", t(11)),
            Err(SilenceError::NotFound(_))
        ));
        let day = 24 * 3600;
        assert_eq!(s.gc(t(10 + 5 * day - 1)), 0, "kept within retention");
        assert_eq!(s.gc(t(10 + 5 * day)), 1, "dropped after retention");
        assert!(s.is_empty());
    }

    #[test]
    fn persisted_and_reloaded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = silences_path(dir.path());
        let mut s = Silences::load(path.clone(), t(0)).expect("load empty");
        let a = Matcher::new("instance", "db.*", true, true).expect("m");
        let id = s.set(post(vec![a], 0, 100), t(0)).expect("set");
        assert!(path.exists());
        assert!(!path.with_extension("json.tmp").exists());
        let again = Silences::load(path.clone(), t(1)).expect("reload");
        let got = again.get(&id).expect("kept");
        assert_eq!(got.comment, "maintenance");
        assert_eq!(again.muting(&labels("A", "db7"), t(1)), vec![id.clone()]);
        // Long expired silences are not loaded back.
        let later = Silences::load(path, t(100 + 6 * 24 * 3600)).expect("reload");
        assert!(later.is_empty());
    }
}
