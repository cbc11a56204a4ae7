//! The durable outbox: every notification is written to
//! `<data_dir>/alerting/outbox/<key>.json` before it is sent and removed
//! once delivered, so notifications pending when Vigie stops (or is killed)
//! are sent when it starts again.
//!
//! The key is a hash of receiver, integration, target, group key and the
//! notification's content: the same notification queued twice is one file.
//! At start-up only the newest pending notification per target and group
//! is re-sent (older ones are superseded by it); entries whose target no
//! longer exists in the configuration are dropped.
//!
//! Delivery is at least once: a crash between a successful send and the
//! removal of its file re-sends that one notification at the next start.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::notify::Notification;

/// The outbox directory under a data directory.
pub fn outbox_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("alerting").join("outbox")
}

/// One pending notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Index of the target (integration) in configuration order.
    pub target: usize,
    /// Receiver name of the target.
    pub receiver: String,
    /// Integration name of the target (`webhook`, `pagerduty`, ...).
    pub integration: String,
    /// When it was queued (ms since epoch).
    pub created_ms: i64,
    /// What to send.
    pub notification: Notification,
}

impl OutboxEntry {
    /// The entry's key: 32 hex digits of the MD5 of its target and content
    /// (not of `created_ms`, so the same notification has the same key).
    pub fn key(&self) -> String {
        let mut h = Md5::new();
        for part in [
            self.receiver.as_bytes(),
            self.integration.as_bytes(),
            self.target.to_string().as_bytes(),
            self.notification.group_key.as_bytes(),
        ] {
            h.update(part);
            h.update([0u8]);
        }
        // Serialising a notification cannot fail (string-keyed maps only).
        h.update(serde_json::to_vec(&self.notification).unwrap_or_default());
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// A directory of pending notifications, one JSON file each.
#[derive(Debug, Clone)]
pub struct Outbox {
    dir: PathBuf,
}

impl Outbox {
    /// Opens (creating it if needed) the outbox in `dir`.
    pub fn open(dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// Persists `entry` (written to a temporary file, synced, then renamed)
    /// unless an entry with the same key is already pending; returns its key.
    pub fn put(&self, entry: &OutboxEntry) -> std::io::Result<String> {
        let key = entry.key();
        let path = self.path(&key);
        if path.exists() {
            return Ok(key);
        }
        let bytes = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
        let tmp = self.dir.join(format!("{key}.json.tmp"));
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        Ok(key)
    }

    /// Removes the entry with `key`; removing an absent entry is fine.
    pub fn remove(&self, key: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.path(key)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Every pending entry with its key, oldest first. Unreadable files are
    /// logged and skipped (left in place for inspection).
    pub fn pending(&self) -> std::io::Result<Vec<(String, OutboxEntry)>> {
        let mut out = Vec::new();
        for item in std::fs::read_dir(&self.dir)? {
            let path = item?.path();
            let Some(key) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
            else {
                continue;
            };
            let key = key.to_string();
            let decoded = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<OutboxEntry>(&b).map_err(|e| e.to_string()));
            match decoded {
                Ok(entry) => out.push((key, entry)),
                Err(error) => {
                    warn!(path = %path.display(), %error, "unreadable outbox entry skipped");
                }
            }
        }
        out.sort_by(|a, b| (a.1.created_ms, &a.0).cmp(&(b.1.created_ms, &b.0)));
        Ok(out)
    }

    /// The entries to re-send at start-up: the newest per target and group
    /// for which `valid` holds. The others are removed from the outbox.
    pub fn replay(
        &self,
        valid: impl Fn(&OutboxEntry) -> bool,
    ) -> std::io::Result<Vec<(String, OutboxEntry)>> {
        let mut newest: BTreeMap<(usize, String), (String, OutboxEntry)> = BTreeMap::new();
        for (key, entry) in self.pending()? {
            if !valid(&entry) {
                warn!(receiver = %entry.receiver, integration = %entry.integration,
                      group = %entry.notification.group_key,
                      "outbox entry for a target no longer configured dropped");
                self.remove(&key)?;
                continue;
            }
            let slot = (entry.target, entry.notification.group_key.clone());
            // Oldest first: a later entry supersedes the one held.
            if let Some((old, _)) = newest.insert(slot, (key, entry)) {
                self.remove(&old)?;
            }
        }
        let mut out: Vec<(String, OutboxEntry)> = newest.into_values().collect();
        out.sort_by_key(|(_, e)| e.created_ms);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::GroupStatus;
    use vigie_model::Labels;

    fn entry(group: &str, created_ms: i64, status: GroupStatus) -> OutboxEntry {
        OutboxEntry {
            target: 0,
            receiver: "ops".into(),
            integration: "webhook".into(),
            created_ms,
            notification: Notification {
                receiver: "ops".into(),
                group_key: group.into(),
                status,
                group_labels: Labels::new(),
                alerts: vec![],
                external_url: String::new(),
                notified_at_ms: 0,
                incident: None,
            },
        }
    }

    #[test]
    fn put_dedups_and_replay_keeps_newest_per_group() {
        let dir = tempfile::tempdir().expect("tmp");
        let outbox = Outbox::open(dir.path().join("outbox")).expect("open");
        let a1 = outbox
            .put(&entry("a", 1, GroupStatus::Firing))
            .expect("put");
        let again = outbox
            .put(&entry("a", 5, GroupStatus::Firing))
            .expect("put");
        assert_eq!(a1, again, "same content, same key");
        outbox
            .put(&entry("a", 2, GroupStatus::Resolved))
            .expect("put");
        outbox
            .put(&entry("b", 3, GroupStatus::Firing))
            .expect("put");
        let mut gone = entry("c", 4, GroupStatus::Firing);
        gone.target = 9;
        outbox.put(&gone).expect("put");
        assert_eq!(outbox.pending().expect("pending").len(), 4);

        let replay = outbox.replay(|e| e.target == 0).expect("replay");
        let got: Vec<(&str, GroupStatus)> = replay
            .iter()
            .map(|(_, e)| (e.notification.group_key.as_str(), e.notification.status))
            .collect();
        assert_eq!(
            got,
            [("a", GroupStatus::Resolved), ("b", GroupStatus::Firing)]
        );
        assert_eq!(outbox.pending().expect("pending").len(), 2);
        for (key, _) in &replay {
            outbox.remove(key).expect("remove");
        }
        outbox.remove(&a1).expect("removing twice is fine");
        assert!(outbox.pending().expect("pending").is_empty());
    }
}
