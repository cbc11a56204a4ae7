//! The analyzer's state files (checkpoints): opened only when present,
//! and written so that a crash leaves the old file or the new one, never a
//! mixture (written to `<path>.tmp`, synced, then renamed).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::AnalyzerError;

/// `path` opened for reading; `Ok(None)` when there is no such file yet.
pub fn open_if_exists(path: &Path) -> Result<Option<File>, AnalyzerError> {
    match File::open(path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(AnalyzerError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The error for a state file at `path` that exists but does not decode
/// (`what`: "detector checkpoint", ...).
pub fn unreadable(path: &Path, what: &str, error: impl std::fmt::Display) -> AnalyzerError {
    AnalyzerError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(format!("unreadable {what}: {error}")),
    }
}

/// Writes `bytes` to `path` atomically (see the module doc).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), AnalyzerError> {
    write_atomic_with(path, |w| w.write_all(bytes))
}

/// Writes to `path` atomically what `write` writes into a buffered
/// writer, without holding it all in memory first (detector checkpoints
/// of many series run to hundreds of megabytes).
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<(), AnalyzerError> {
    let io = |source| AnalyzerError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("tmp");
    let mut writer = BufWriter::new(File::create(&tmp).map_err(io)?);
    write(&mut writer).map_err(io)?;
    let file = writer.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("absent.bin");
        assert!(open_if_exists(&path).expect("not an error").is_none());
        write_atomic(&path, b"x").expect("write");
        assert!(open_if_exists(&path).expect("opens").is_some());
    }

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub").join("state.bin");
        write_atomic(&path, b"old").expect("first write");
        write_atomic(&path, b"new").expect("second write");
        assert_eq!(std::fs::read(&path).expect("read"), b"new");
        assert!(!path.with_extension("tmp").exists());
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.bin");
        write_atomic(&path, b"old").expect("first write");
        let failed = write_atomic_with(&path, |w| {
            w.write_all(b"half")?;
            Err(std::io::Error::other("encoder gave up"))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read(&path).expect("read"), b"old");
    }
}
