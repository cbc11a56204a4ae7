//! Tail positions saved across restarts (`<data_dir>/state/tail.json`).
//!
//! For each followed path: the file's identity (device and inode), the
//! offset of the first byte not yet handed to the bus, and a fingerprint
//! (MD5 of the first bytes, up to [`FINGERPRINT_BYTES`] and never past the
//! offset) that tells the same file from one that was truncated and
//! rewritten (`copytruncate`) or a new file on a reused inode. The file is
//! written as `.tmp`, synced, then renamed, so a crash leaves the old or
//! the new version, never half of one.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use tracing::warn;

/// Bytes at the start of a file that identify it.
pub const FINGERPRINT_BYTES: u64 = 256;

/// Where a tailer stands in one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TailPosition {
    /// Device of the file.
    pub dev: u64,
    /// Inode of the file.
    pub ino: u64,
    /// Offset of the first byte not yet published.
    pub offset: u64,
    /// How many leading bytes the fingerprint covers.
    pub fingerprint_len: u64,
    /// MD5 of those bytes, hex.
    pub fingerprint: String,
}

/// MD5 (hex) of the first `len` bytes of `file`, or `None` if it has fewer.
pub(crate) fn fingerprint(file: &mut File, len: u64) -> Option<String> {
    let mut head = Vec::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.take(len).read_to_end(&mut head).ok()?;
    if head.len() as u64 != len {
        return None;
    }
    Some(
        Md5::digest(&head)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}

impl TailPosition {
    /// The position `offset` in `file` (identity `id`).
    pub(crate) fn of(file: &mut File, id: (u64, u64), offset: u64) -> Option<Self> {
        let fingerprint_len = offset.min(FINGERPRINT_BYTES);
        Some(Self {
            dev: id.0,
            ino: id.1,
            offset,
            fingerprint_len,
            fingerprint: fingerprint(file, fingerprint_len)?,
        })
    }

    /// Whether `file` still starts with the bytes this position saw and
    /// is at least `offset` long.
    pub(crate) fn matches_content(&self, file: &mut File, len: u64) -> bool {
        len >= self.offset
            && fingerprint(file, self.fingerprint_len).as_deref() == Some(&self.fingerprint)
    }
}

/// The positions of every tailed path, persisted in one JSON file.
pub struct Checkpoints {
    path: PathBuf,
    positions: Mutex<BTreeMap<String, TailPosition>>,
}

impl Checkpoints {
    /// Reads `path`; a missing file is an empty set, an unreadable one is
    /// logged and treated as empty (files are then followed from their end).
    pub fn load(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let positions = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|error| {
                warn!(file = %path.display(), %error, "tail checkpoints unreadable; ignoring them");
                BTreeMap::new()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(error) => {
                warn!(file = %path.display(), %error, "cannot read tail checkpoints; ignoring them");
                BTreeMap::new()
            }
        };
        Self {
            path,
            positions: Mutex::new(positions),
        }
    }

    /// The saved position of `source` (a followed path).
    pub fn get(&self, source: &str) -> Option<TailPosition> {
        self.lock().get(source).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, TailPosition>> {
        self.positions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records `position` for `source` and writes every position to disk.
    /// Blocking (file I/O).
    pub fn save(&self, source: &str, position: TailPosition) -> std::io::Result<()> {
        let mut positions = self.lock();
        positions.insert(source.to_string(), position);
        let bytes = serde_json::to_vec_pretty(&*positions).map_err(std::io::Error::other)?;
        write_atomically(&self.path, &bytes)
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_loads_and_tells_files_apart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("a.log");
        std::fs::write(&log, "first line\nsecond\n").expect("write");
        let mut f = File::open(&log).expect("open");
        let pos = TailPosition::of(&mut f, (1, 2), 11).expect("position");
        assert_eq!(pos.fingerprint_len, 11);
        assert!(pos.matches_content(&mut f, 18));
        assert!(!pos.matches_content(&mut f, 10), "shorter than the offset");

        let state = dir.path().join("state").join("tail.json");
        Checkpoints::load(&state)
            .save("a", pos.clone())
            .expect("save");
        assert_eq!(Checkpoints::load(&state).get("a"), Some(pos.clone()));

        std::fs::write(&log, "other line\nsecond\n").expect("rewrite");
        let mut f = File::open(&log).expect("open");
        assert!(!pos.matches_content(&mut f, 18), "same length, other bytes");

        std::fs::write(&state, "{not json").expect("corrupt");
        assert_eq!(Checkpoints::load(&state).get("a"), None);
    }
}
