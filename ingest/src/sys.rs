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

/// The fields of `uname(2)`, as node_exporter's `node_uname_info` labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Uname {
    pub sysname: String,
    pub nodename: String,
    pub release: String,
    pub version: String,
    pub machine: String,
    pub domainname: String,
}

/// A NUL-terminated C char array as a String (lossy; empty if unterminated).
fn c_chars(chars: &[libc::c_char]) -> String {
    let bytes: Vec<u8> = chars
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// `uname(2)`.
pub(crate) fn uname() -> io::Result<Uname> {
    let mut buf = MaybeUninit::<libc::utsname>::zeroed();
    // SAFETY: `buf` is writable memory of the type uname fills.
    let rc = unsafe { libc::uname(buf.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: uname returned 0, so it filled `buf` (zeroed anyway; every
    // field is a char array).
    let u = unsafe { buf.assume_init() };
    Ok(Uname {
        sysname: c_chars(&u.sysname),
        nodename: c_chars(&u.nodename),
        release: c_chars(&u.release),
        version: c_chars(&u.version),
        machine: c_chars(&u.machine),
        domainname: c_chars(&u.domainname),
    })
}

/// The local time zone at `unix_seconds`: its abbreviation (`UTC`, `CET`)
/// and offset east of UTC in seconds, from `localtime_r(3)`.
pub(crate) fn local_zone(unix_seconds: i64) -> Option<(String, i64)> {
    let t: libc::time_t = unix_seconds;
    let mut tm = MaybeUninit::<libc::tm>::zeroed();
    // SAFETY: both pointers are valid for the call; localtime_r is the
    // reentrant variant and writes only to `tm`.
    let r = unsafe { libc::localtime_r(&t, tm.as_mut_ptr()) };
    if r.is_null() {
        return None;
    }
    // SAFETY: localtime_r succeeded, so it filled `tm`.
    let tm = unsafe { tm.assume_init() };
    let zone = if tm.tm_zone.is_null() {
        String::new()
    } else {
        // SAFETY: a non-null tm_zone points to a NUL-terminated static
        // string owned by libc (the tz abbreviations table).
        unsafe { std::ffi::CStr::from_ptr(tm.tm_zone) }
            .to_string_lossy()
            .into_owned()
    };
    Some((zone, tm.tm_gmtoff))
}
