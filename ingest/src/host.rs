//! The built-in host collector: a small node_exporter.
//!
//! Reads procfs (`stat`, `meminfo`, `loadavg`, `net/dev`, `self/mounts`)
//! under a configurable root, so tests can point it at fixtures, and calls
//! `statvfs` on mount points. Metric names and labels are node_exporter's.
//! A source that cannot be read or parsed is skipped with a warning and
//! counted in `vigie_host_collector_errors_total{collector}`; the others are
//! still reported.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use vigie_model::{Labels, Sample};

use crate::config::HostConfig;
use crate::metrics::HOST_ERRORS;
use crate::source::{Source, now_ms};
use crate::sys;

/// One metric point before the host labels are added.
type Point = (String, Labels, f64);

/// Filesystem types node_exporter ignores by default.
const IGNORED_FS_TYPES: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "fusectl",
    "hugetlbfs",
    "iso9660",
    "mqueue",
    "nsfs",
    "overlay",
    "proc",
    "procfs",
    "pstore",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "erofs",
    "sysfs",
    "tracefs",
];

/// Longest a round of `statvfs` calls may take (a dead NFS server can make
/// them hang); a stuck round is skipped until it returns.
const FS_TIMEOUT: Duration = Duration::from_secs(5);

/// The host collector, as a [`Source`].
pub struct HostCollector {
    procfs: PathBuf,
    interval: Duration,
    /// `job="node"`, `instance` and the configured labels.
    host_labels: Labels,
    ticks_per_second: f64,
    /// Set while a filesystem round runs on the blocking pool.
    fs_busy: Arc<AtomicBool>,
}

impl HostCollector {
    /// A collector for `config`; the instance defaults to the host name
    /// (`<procfs>/sys/kernel/hostname`, else `localhost`).
    pub fn new(config: &HostConfig) -> Self {
        let instance = config.instance.clone().unwrap_or_else(|| {
            std::fs::read_to_string(config.procfs.join("sys/kernel/hostname"))
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "localhost".to_string())
        });
        let mut host_labels: Labels = config
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        host_labels.insert("job", "node");
        host_labels.insert("instance", instance);
        Self {
            procfs: config.procfs.clone(),
            interval: config.interval,
            host_labels,
            ticks_per_second: sys::clock_ticks_per_second(),
            fs_busy: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Reads `<procfs>/<file>` and parses it; failures are logged, counted
    /// and yield nothing.
    fn read(
        &self,
        collector: &str,
        file: &str,
        parse: impl FnOnce(&str) -> Result<Vec<Point>, String>,
    ) -> Vec<Point> {
        let path = self.procfs.join(file);
        let result = std::fs::read_to_string(&path)
            .map_err(|e| format!("reading {}: {e}", path.display()))
            .and_then(|text| parse(&text).map_err(|e| format!("parsing {}: {e}", path.display())));
        result.unwrap_or_else(|error| {
            host_error(collector, &error);
            Vec::new()
        })
    }

    /// Everything but filesystems (procfs reads do not block).
    fn collect_procfs(&self) -> Vec<Point> {
        let ticks = self.ticks_per_second;
        let mut points = self.read("stat", "stat", |t| parse_stat(t, ticks));
        points.extend(self.read("meminfo", "meminfo", parse_meminfo));
        points.extend(self.read("loadavg", "loadavg", parse_loadavg));
        points.extend(self.read("netdev", "net/dev", parse_net_dev));
        points
    }

    async fn collect_filesystems(&self) -> Vec<Point> {
        if self.fs_busy.swap(true, Ordering::SeqCst) {
            host_error(
                "filesystem",
                "the previous statvfs round is still stuck; skipping",
            );
            return Vec::new();
        }
        let guard = BusyGuard(self.fs_busy.clone());
        let procfs = self.procfs.clone();
        let task = tokio::task::spawn_blocking(move || {
            let _guard = guard;
            filesystems(&procfs)
        });
        match tokio::time::timeout(FS_TIMEOUT, task).await {
            Ok(Ok(Ok(points))) => points,
            Ok(Ok(Err(error))) => {
                host_error("filesystem", &error);
                Vec::new()
            }
            Ok(Err(join)) => {
                host_error("filesystem", &format!("statvfs task failed: {join}"));
                Vec::new()
            }
            Err(_) => {
                host_error("filesystem", "statvfs took longer than 5s; skipping");
                Vec::new()
            }
        }
    }
}

/// Clears the busy flag when the blocking filesystem round ends.
struct BusyGuard(Arc<AtomicBool>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

fn host_error(collector: &str, error: &str) {
    HOST_ERRORS.with_label_values(&[collector]).inc();
    tracing::warn!(collector, error, "host collector skipped a source");
}

#[async_trait]
impl Source for HostCollector {
    fn name(&self) -> &str {
        "host"
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    async fn collect(&mut self) -> Vec<Sample> {
        let ts_ms = now_ms();
        let mut points = self.collect_procfs();
        points.extend(self.collect_filesystems().await);
        points.push((
            "node_time_seconds".into(),
            Labels::new(),
            ts_ms as f64 / 1000.0,
        ));
        points
            .into_iter()
            .map(|(name, mut labels, value)| {
                for (k, v) in self.host_labels.iter() {
                    labels.insert(k, v);
                }
                Sample::new(name, labels, ts_ms, value)
            })
            .collect()
    }
}

fn number(field: &str, what: &str) -> Result<f64, String> {
    field
        .parse::<f64>()
        .map_err(|_| format!("{what}: `{field}` is not a number"))
}

/// `/proc/stat`: per-CPU times, interrupts, context switches, boot time,
/// forks and process states.
pub(crate) fn parse_stat(text: &str, ticks_per_second: f64) -> Result<Vec<Point>, String> {
    const MODES: [&str; 8] = [
        "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
    ];
    const GUEST_MODES: [&str; 2] = ["user", "nice"];
    let mut out = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some(key) = fields.next() else { continue };
        let first = |mut fields: std::str::SplitWhitespace<'_>| {
            fields
                .next()
                .ok_or_else(|| format!("`{key}` has no value"))
                .and_then(|v| number(v, key))
        };
        let simple = match key {
            "intr" => Some("node_intr_total"),
            "ctxt" => Some("node_context_switches_total"),
            "btime" => Some("node_boot_time_seconds"),
            "processes" => Some("node_forks_total"),
            "procs_running" => Some("node_procs_running"),
            "procs_blocked" => Some("node_procs_blocked"),
            _ => None,
        };
        if let Some(metric) = simple {
            out.push((metric.to_string(), Labels::new(), first(fields)?));
            continue;
        }
        // `cpuN`; the `cpu` total line is not exported, as in node_exporter.
        let Some(cpu) = key.strip_prefix("cpu").filter(|n| !n.is_empty()) else {
            continue;
        };
        if !cpu.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let values: Vec<f64> = fields.map(|f| number(f, key)).collect::<Result<_, _>>()?;
        if values.len() < 4 {
            return Err(format!(
                "`{key}` has {} fields, expected at least 4",
                values.len()
            ));
        }
        for (mode, ticks) in MODES.iter().zip(&values) {
            out.push((
                "node_cpu_seconds_total".to_string(),
                Labels::new().with("cpu", cpu).with("mode", *mode),
                ticks / ticks_per_second,
            ));
        }
        for (mode, ticks) in GUEST_MODES.iter().zip(values.iter().skip(8)) {
            out.push((
                "node_cpu_guest_seconds_total".to_string(),
                Labels::new().with("cpu", cpu).with("mode", *mode),
                ticks / ticks_per_second,
            ));
        }
    }
    if !out.iter().any(|(m, _, _)| m == "node_cpu_seconds_total") {
        return Err("no per-CPU line".to_string());
    }
    Ok(out)
}

/// `/proc/meminfo`: every field as `node_memory_<Field>[_bytes]`.
pub(crate) fn parse_meminfo(text: &str) -> Result<Vec<Point>, String> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let (Some(key), Some(value)) = (parts.first(), parts.get(1)) else {
            return Err(format!("malformed line `{line}`"));
        };
        let Some(key) = key.strip_suffix(':') else {
            return Err(format!("malformed line `{line}`"));
        };
        // node_exporter: `Active(anon)` -> `Active_anon`.
        let key = key.replace('(', "_").replace(')', "");
        if !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') || key.is_empty() {
            return Err(format!("unexpected field name `{key}`"));
        }
        let value = number(value, &key)?;
        let (name, value) = match parts.len() {
            2 => (format!("node_memory_{key}"), value),
            3 if parts[2] == "kB" => (format!("node_memory_{key}_bytes"), value * 1024.0),
            _ => return Err(format!("malformed line `{line}`")),
        };
        out.push((name, Labels::new(), value));
    }
    if out.is_empty() {
        return Err("no fields".to_string());
    }
    Ok(out)
}

/// `/proc/loadavg`: `node_load1`, `node_load5`, `node_load15`.
pub(crate) fn parse_loadavg(text: &str) -> Result<Vec<Point>, String> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    if fields.len() < 3 {
        return Err(format!("expected 3 load averages, got `{}`", text.trim()));
    }
    ["node_load1", "node_load5", "node_load15"]
        .iter()
        .zip(&fields)
        .map(|(name, f)| Ok(((*name).to_string(), Labels::new(), number(f, name)?)))
        .collect()
}

/// `/proc/net/dev`: the 16 counters of each interface.
pub(crate) fn parse_net_dev(text: &str) -> Result<Vec<Point>, String> {
    const NAMES: [&str; 16] = [
        "receive_bytes",
        "receive_packets",
        "receive_errs",
        "receive_drop",
        "receive_fifo",
        "receive_frame",
        "receive_compressed",
        "receive_multicast",
        "transmit_bytes",
        "transmit_packets",
        "transmit_errs",
        "transmit_drop",
        "transmit_fifo",
        "transmit_colls",
        "transmit_carrier",
        "transmit_compressed",
    ];
    let mut out = Vec::new();
    // Two header lines, then `iface: 16 numbers`.
    for line in text.lines().skip(2).filter(|l| !l.trim().is_empty()) {
        let Some((device, rest)) = line.split_once(':') else {
            return Err(format!("malformed line `{line}`"));
        };
        let device = device.trim();
        let values: Vec<f64> = rest
            .split_whitespace()
            .map(|f| number(f, device))
            .collect::<Result<_, _>>()?;
        if device.is_empty() || values.len() != NAMES.len() {
            return Err(format!("malformed line `{line}`"));
        }
        for (name, value) in NAMES.iter().zip(values) {
            out.push((
                format!("node_network_{name}_total"),
                Labels::new().with("device", device),
                value,
            ));
        }
    }
    Ok(out)
}

/// One line of a mounts file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    pub device: String,
    pub mountpoint: String,
    pub fstype: String,
    pub readonly: bool,
}

/// Decodes the octal escapes of mounts files (`\040` is a space).
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = u32::from(b[i + 1] - b'0') * 64
                + u32::from(b[i + 2] - b'0') * 8
                + u32::from(b[i + 3] - b'0');
            if let Ok(byte) = u8::try_from(v) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mounts to report: node_exporter's default fstype and mount point
/// exclusions applied.
pub(crate) fn parse_mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 4 {
                return None;
            }
            Some(Mount {
                device: unescape_mount(f[0]),
                mountpoint: unescape_mount(f[1]),
                fstype: f[2].to_string(),
                readonly: f[3].split(',').any(|o| o == "ro"),
            })
        })
        .filter(|m| !IGNORED_FS_TYPES.contains(&m.fstype.as_str()))
        .filter(|m| !ignored_mountpoint(&m.mountpoint))
        .collect()
}

/// node_exporter's default
/// `^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)`.
fn ignored_mountpoint(mp: &str) -> bool {
    let under = |prefix: &str| mp == prefix || mp.starts_with(&format!("{prefix}/"));
    let strictly_under =
        |prefix: &str| mp.len() > prefix.len() + 1 && mp.starts_with(&format!("{prefix}/"));
    under("/dev")
        || under("/proc")
        || under("/sys")
        || strictly_under("/run/credentials")
        || strictly_under("/var/lib/docker")
        || strictly_under("/var/lib/containers/storage")
}

/// Reads the mounts file and `statvfs`es every mount (blocking).
fn filesystems(procfs: &Path) -> Result<Vec<Point>, String> {
    let path = [procfs.join("self/mounts"), procfs.join("mounts")]
        .into_iter()
        .find(|p| p.exists())
        .ok_or_else(|| format!("no mounts file under {}", procfs.display()))?;
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for m in parse_mounts(&text) {
        if !seen.insert(m.mountpoint.clone()) {
            continue;
        }
        let labels = Labels::new()
            .with("device", m.device.clone())
            .with("fstype", m.fstype.clone())
            .with("mountpoint", m.mountpoint.clone());
        match sys::statvfs(Path::new(&m.mountpoint)) {
            Ok(s) => {
                for (name, value) in [
                    ("node_filesystem_size_bytes", s.size_bytes),
                    ("node_filesystem_free_bytes", s.free_bytes),
                    ("node_filesystem_avail_bytes", s.avail_bytes),
                    ("node_filesystem_files", s.files),
                    ("node_filesystem_files_free", s.files_free),
                    (
                        "node_filesystem_readonly",
                        if m.readonly { 1.0 } else { 0.0 },
                    ),
                    ("node_filesystem_device_error", 0.0),
                ] {
                    out.push((name.to_string(), labels.clone(), value));
                }
            }
            Err(e) => {
                tracing::debug!(mountpoint = %m.mountpoint, error = %e, "statvfs failed");
                out.push(("node_filesystem_device_error".to_string(), labels, 1.0));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/proc")
    }

    fn fixture(file: &str) -> String {
        std::fs::read_to_string(fixtures().join(file)).expect("fixture")
    }

    fn get<'a>(points: &'a [Point], name: &str, labels: &[(&str, &str)]) -> Option<&'a Point> {
        points
            .iter()
            .find(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.get(k) == Some(*v)))
    }

    fn value(points: &[Point], name: &str, labels: &[(&str, &str)]) -> f64 {
        get(points, name, labels)
            .unwrap_or_else(|| panic!("{name}{labels:?} missing"))
            .2
    }

    #[test]
    fn stat_cpu_and_counters() {
        let p = parse_stat(&fixture("stat"), 100.0).expect("parse");
        assert_eq!(
            value(
                &p,
                "node_cpu_seconds_total",
                &[("cpu", "0"), ("mode", "user")]
            ),
            13932.80
        );
        assert_eq!(
            value(
                &p,
                "node_cpu_seconds_total",
                &[("cpu", "0"), ("mode", "idle")]
            ),
            133432.92
        );
        assert_eq!(
            value(
                &p,
                "node_cpu_seconds_total",
                &[("cpu", "1"), ("mode", "steal")]
            ),
            0.05
        );
        assert_eq!(
            value(
                &p,
                "node_cpu_guest_seconds_total",
                &[("cpu", "1"), ("mode", "nice")]
            ),
            0.1
        );
        // 2 CPUs x 8 modes; the `cpu` total line is not exported.
        assert_eq!(
            p.iter()
                .filter(|(n, _, _)| n == "node_cpu_seconds_total")
                .count(),
            16
        );
        assert_eq!(value(&p, "node_intr_total", &[]), 199_292_311.0);
        assert_eq!(value(&p, "node_context_switches_total", &[]), 406_124_211.0);
        assert_eq!(value(&p, "node_boot_time_seconds", &[]), 1_700_000_000.0);
        assert_eq!(value(&p, "node_forks_total", &[]), 223_914.0);
        assert_eq!(value(&p, "node_procs_running", &[]), 2.0);
    }

    #[test]
    fn meminfo_names_and_units() {
        let p = parse_meminfo(&fixture("meminfo")).expect("parse");
        assert_eq!(
            value(&p, "node_memory_MemTotal_bytes", &[]),
            16_310_052.0 * 1024.0
        );
        assert_eq!(
            value(&p, "node_memory_MemAvailable_bytes", &[]),
            9_873_564.0 * 1024.0
        );
        assert_eq!(
            value(&p, "node_memory_Active_anon_bytes", &[]),
            4_912_740.0 * 1024.0
        );
        assert_eq!(
            value(&p, "node_memory_SwapFree_bytes", &[]),
            2_060_284.0 * 1024.0
        );
        assert_eq!(value(&p, "node_memory_HugePages_Total", &[]), 0.0);
        assert_eq!(p.len(), 18);
    }

    #[test]
    fn loadavg_and_net_dev() {
        let p = parse_loadavg(&fixture("loadavg")).expect("parse");
        assert_eq!(value(&p, "node_load1", &[]), 0.52);
        assert_eq!(value(&p, "node_load15", &[]), 0.59);
        let p = parse_net_dev(&fixture("net/dev")).expect("parse");
        assert_eq!(p.len(), 32);
        assert_eq!(
            value(
                &p,
                "node_network_receive_bytes_total",
                &[("device", "eth0")]
            ),
            98_765_432_100.0
        );
        assert_eq!(
            value(
                &p,
                "node_network_transmit_bytes_total",
                &[("device", "eth0")]
            ),
            12_345_678_901.0
        );
        assert_eq!(
            value(&p, "node_network_receive_errs_total", &[("device", "eth0")]),
            3.0
        );
        assert_eq!(
            value(&p, "node_network_receive_drop_total", &[("device", "eth0")]),
            7.0
        );
        assert_eq!(
            value(
                &p,
                "node_network_transmit_drop_total",
                &[("device", "eth0")]
            ),
            2.0
        );
        assert_eq!(
            value(
                &p,
                "node_network_receive_multicast_total",
                &[("device", "eth0")]
            ),
            1234.0
        );
        assert_eq!(
            value(
                &p,
                "node_network_receive_packets_total",
                &[("device", "lo")]
            ),
            12345.0
        );
    }

    #[test]
    fn odd_input_is_an_error_not_a_panic() {
        for text in ["", "garbage", "cpu0 a b c d", "cpu0 1 2"] {
            assert!(parse_stat(text, 100.0).is_err(), "{text:?}");
        }
        for text in ["", "MemTotal 12 kB", "MemTotal: x kB", "MemTotal: 1 MB"] {
            assert!(parse_meminfo(text).is_err(), "{text:?}");
        }
        assert!(parse_loadavg("0.1 0.2").is_err());
        assert!(parse_loadavg("a b c").is_err());
        assert!(parse_net_dev("h\nh\neth0 1 2 3\n").is_err());
        assert!(parse_net_dev("h\nh\neth0: 1 2 3\n").is_err());
        assert_eq!(unescape_mount("a\\04"), "a\\04");
        assert_eq!(unescape_mount("\\777x"), "\\777x");
    }

    #[test]
    fn mounts_skip_pseudo_filesystems() {
        let m = parse_mounts(&fixture("self/mounts"));
        let points: Vec<&str> = m.iter().map(|m| m.mountpoint.as_str()).collect();
        assert_eq!(points, vec!["/", "/run", "/definitely/not here"]);
        assert!(m[2].readonly);
        assert!(!m[0].readonly);
        assert!(ignored_mountpoint("/var/lib/docker/overlay2"));
        assert!(!ignored_mountpoint("/var/lib/docker"));
        assert!(!ignored_mountpoint("/devices"));
    }

    #[tokio::test]
    async fn collector_on_fixtures() {
        let config = HostConfig {
            procfs: fixtures(),
            labels: [("dc".to_string(), "par1".to_string())].into(),
            ..HostConfig::default()
        };
        let mut c = HostCollector::new(&config);
        let samples = c.collect().await;
        assert!(
            samples
                .iter()
                .all(|s| s.series.labels.get("job") == Some("node")
                    && s.series.labels.get("instance") == Some("fixture-host")
                    && s.series.labels.get("dc") == Some("par1"))
        );
        let find = |name: &str, mp: Option<&str>| {
            samples.iter().find(|s| {
                s.series.metric == name
                    && mp.is_none_or(|mp| s.series.labels.get("mountpoint") == Some(mp))
            })
        };
        let root = find("node_filesystem_size_bytes", Some("/")).expect("root filesystem");
        assert!(root.value > 0.0);
        assert_eq!(root.series.labels.get("device"), Some("/dev/sda1"));
        assert_eq!(root.series.labels.get("fstype"), Some("ext4"));
        let missing =
            find("node_filesystem_device_error", Some("/definitely/not here")).expect("error");
        assert_eq!(missing.value, 1.0);
        assert!(find("node_filesystem_size_bytes", Some("/proc")).is_none());
        assert!(find("node_load5", None).is_some());
        assert!(find("node_time_seconds", None).is_some_and(|s| s.value > 1.6e9));
        let user = samples
            .iter()
            .find(|s| {
                s.series.metric == "node_cpu_seconds_total"
                    && s.series.labels.get("cpu") == Some("1")
                    && s.series.labels.get("mode") == Some("user")
            })
            .expect("cpu1 user");
        assert_eq!(user.value, 1_335_290.0 / sys::clock_ticks_per_second());
    }

    #[tokio::test]
    async fn unreadable_sources_are_counted() {
        let dir = fixtures().join("does-not-exist");
        let before = HOST_ERRORS.with_label_values(&["meminfo"]).get();
        let mut c = HostCollector::new(&HostConfig {
            procfs: dir,
            instance: Some("x".into()),
            ..HostConfig::default()
        });
        let samples = c.collect().await;
        assert_eq!(samples.len(), 1, "only node_time_seconds: {samples:?}");
        assert!(HOST_ERRORS.with_label_values(&["meminfo"]).get() > before);
    }
}
