//! The two libc calls the host collector needs. The only unsafe code of the
//! crate (the workspace forbids it; this crate denies it except here).
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Clock ticks per second of `/proc/stat` (USER_HZ); 100 if unknown.
pub(crate) fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions and only reads a constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// Filesystem statistics of one mount point, in bytes and inodes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct FsStats {
    pub size_bytes: f64,
    pub free_bytes: f64,
    pub avail_bytes: f64,
    pub files: f64,
    pub files_free: f64,
}

/// `statvfs(2)` on `path`.
pub(crate) fn statvfs(path: &Path) -> io::Result<FsStats> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut buf = MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c_path` is a valid NUL-terminated string that outlives the
    // call, and `buf` is writable memory of the type statvfs fills.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), buf.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled `buf` (which was zeroed
    // anyway, and every field is a plain integer).
    let s = unsafe { buf.assume_init() };
    let frsize = s.f_frsize as f64;
    Ok(FsStats {
        size_bytes: s.f_blocks as f64 * frsize,
        free_bytes: s.f_bfree as f64 * frsize,
        avail_bytes: s.f_bavail as f64 * frsize,
        files: s.f_files as f64,
        files_free: s.f_ffree as f64,
    })
}
