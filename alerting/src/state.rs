//! The dispatcher's durable state: what was last notified to each target
//! about each group (the notification log) and the acknowledged groups, in
//! `<data_dir>/alerting/state.json` (written to a temporary file, synced,
//! then renamed).
//!
//! With it, a restart neither repeats a notification already sent nor
//! forgets an acknowledgement: a group re-created from the analyzer's
//! re-sent alerts finds what its targets were told, and is notified again
//! only when something changed or `repeat_interval` passed.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The state file under a data directory.
pub fn state_path(data_dir: &Path) -> PathBuf {
    data_dir.join("alerting").join("state.json")
}

/// What one target was last told about one group: the entry alerting
/// replicas also share on `vigie.nflog` (`peer` is empty here).
pub use vigie_model::NotificationLogEntry as LoggedNotification;

/// An acknowledged group: muted until it resolves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    /// The group key.
    pub group_key: String,
    /// Who acknowledged it.
    pub by: String,
    /// Why, or what is being done.
    pub comment: String,
    /// When (ms since epoch).
    pub at_ms: i64,
}

/// Everything persisted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DispatchState {
    /// The notification log.
    #[serde(default)]
    pub log: Vec<LoggedNotification>,
    /// The acknowledgements.
    #[serde(default)]
    pub acks: Vec<Ack>,
}

/// The state file.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    /// The file at `path` (created at the first save).
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved state; empty when there is no file yet.
    pub fn load(&self) -> std::io::Result<DispatchState> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(std::io::Error::other),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DispatchState::default()),
            Err(e) => Err(e),
        }
    }

    /// Saves `state` atomically (temporary file, sync, rename).
    pub fn save(&self, state: &DispatchState) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let bytes = serde_json::to_vec(state).map_err(std::io::Error::other)?;
        let mut tmp = self.path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn saves_and_loads() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = StateFile::new(state_path(dir.path()));
        assert_eq!(file.load().expect("empty"), DispatchState::default());
        let state = DispatchState {
            log: vec![LoggedNotification {
                peer: String::new(),
                target: 0,
                receiver: "ops".into(),
                integration: "webhook".into(),
                group_key: "{}:{}".into(),
                firing: ["a".to_string()].into(),
                resolved: BTreeSet::new(),
                at_ms: 7,
            }],
            acks: vec![Ack {
                group_key: "{}:{}".into(),
                by: "me".into(),
                comment: "on it".into(),
                at_ms: 8,
            }],
        };
        file.save(&state).expect("save");
        assert_eq!(file.load().expect("load"), state);
    }

    #[test]
    fn loads_the_snake_case_log_of_earlier_versions() {
        let old = r#"{"log":[{"target":0,"receiver":"ops","integration":"webhook","group_key":"{}:{}","firing":["a"],"resolved":[],"at_ms":7}],"acks":[]}"#;
        let state: DispatchState = serde_json::from_str(old).expect("old state");
        assert_eq!(state.log[0].group_key, "{}:{}");
        assert_eq!(state.log[0].at_ms, 7);
        assert_eq!(state.log[0].peer, "");
    }
}
