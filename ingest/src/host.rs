//! The built-in host collector: a small node_exporter.
//!
//! Reads procfs (`stat`, `meminfo`, `loadavg`, `net/dev`, `self/mounts`,
//! `pressure/*`, `diskstats`, `net/{netstat,snmp,snmp6}`) and sysfs
//! (`class/hwmon`, clock sources, `rx_nohandler`) under configurable roots,
//! so tests can point them at fixtures, and calls `statvfs` on mount points
//! and `uname`. Metric names and labels are node_exporter 1.5's, for its
//! collectors `cpu` (without `node_cpu_info`), `stat`, `meminfo`, `loadavg`,
//! `netdev`, `filesystem`, `pressure`, `diskstats`, `netstat`, `uname`,
//! `time` and `hwmon`.
//! With an `nvidia-smi` on the machine, NVIDIA GPUs too, under the DCGM
//! exporter's names ([`gpu`]).
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

mod disk;
pub mod gpu;
mod hwmon;
mod netstat;
mod pressure;
mod system;

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
    sysfs: PathBuf,
    udev_data: PathBuf,
    interval: Duration,
    /// `job="node"`, `instance` and the configured labels.
    host_labels: Labels,
    ticks_per_second: f64,
    /// Set while a filesystem round runs on the blocking pool.
    fs_busy: Arc<AtomicBool>,
    /// GPU metrics, when an nvidia-smi is there.
    gpu: Option<gpu::NvidiaSmi>,
}

impl HostCollector {
    /// A collector for `config`; the instance defaults to the host name
    /// (`<procfs>/sys/kernel/hostname`, else `localhost`), which is also
    /// the GPU metrics' `Hostname` label.
    pub fn new(config: &HostConfig) -> Self {
        let hostname = std::fs::read_to_string(config.procfs.join("sys/kernel/hostname"))
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_string());
        let instance = config.instance.clone().unwrap_or_else(|| hostname.clone());
        let mut host_labels: Labels = config
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        host_labels.insert("job", "node");
        host_labels.insert("instance", instance);
        Self {
            procfs: config.procfs.clone(),
            sysfs: config.sysfs.clone(),
            udev_data: config.udev_data.clone(),
            interval: config.interval,
            host_labels,
            ticks_per_second: sys::clock_ticks_per_second(),
            fs_busy: Arc::new(AtomicBool::new(false)),
            gpu: gpu::NvidiaSmi::new(
                &config.nvidia_smi,
                config.nvidia_smi_timeout.min(config.interval),
                &hostname,
            ),
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

    /// Like [`HostCollector::read`], but a missing file (a kernel without
    /// the feature) yields nothing silently.
    fn read_optional(
        &self,
        collector: &str,
        file: &str,
        parse: impl FnOnce(&str) -> Result<Vec<Point>, String>,
    ) -> Vec<Point> {
        if self.procfs.join(file).exists() {
            self.read(collector, file, parse)
        } else {
            Vec::new()
        }
    }

    /// Everything but filesystems (procfs and sysfs reads do not block).
    fn collect_procfs(&self) -> Vec<Point> {
        let ticks = self.ticks_per_second;
        let mut points = self.read("stat", "stat", |t| parse_stat(t, ticks));
        points.extend(self.read("meminfo", "meminfo", parse_meminfo));
        points.extend(self.read("loadavg", "loadavg", parse_loadavg));
        let netdev = self.read("netdev", "net/dev", parse_net_dev);
        points.extend(rx_nohandler(&self.sysfs, &netdev));
        points.extend(netdev);
        for resource in ["cpu", "memory", "io"] {
            points.extend(
                self.read_optional("pressure", &format!("pressure/{resource}"), |t| {
                    pressure::parse_pressure(resource, t)
                }),
            );
        }
        let udev = self.udev_data.clone();
        points.extend(self.read_optional("diskstats", "diskstats", |t| {
            disk::parse_diskstats(t, &udev)
        }));
        points.extend(self.read_optional("netstat", "net/netstat", netstat::parse_netstat));
        points.extend(self.read_optional("netstat", "net/snmp", netstat::parse_netstat));
        points.extend(self.read_optional("netstat", "net/snmp6", netstat::parse_snmp6));
        match sys::uname() {
            Ok(u) => points.push(system::uname_info(&u)),
            Err(e) => host_error("uname", &e.to_string()),
        }
        points.extend(system::clocksources(&self.sysfs));
        points.extend(hwmon::hwmon(&self.sysfs));
        points
    }
}

/// One round of `statvfs` calls on the blocking pool, with a timeout.
async fn collect_filesystems(fs_busy: Arc<AtomicBool>, procfs: PathBuf) -> Vec<Point> {
    if fs_busy.swap(true, Ordering::SeqCst) {
        host_error(
            "filesystem",
            "the previous statvfs round is still stuck; skipping",
        );
        return Vec::new();
    }
    let guard = BusyGuard(fs_busy);
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
        let filesystems = collect_filesystems(self.fs_busy.clone(), self.procfs.clone());
        let gpu = async {
            match &mut self.gpu {
                Some(gpu) => gpu.collect().await,
                None => Vec::new(),
            }
        };
        let (filesystems, gpu) = tokio::join!(filesystems, gpu);
        points.extend(filesystems);
        points.extend(gpu);
        points.extend(system::time(ts_ms));
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

/// `node_network_receive_nohandler_total` (which node_exporter 1.5 gets
/// over netlink) from `<sysfs>/class/net/<device>/statistics/rx_nohandler`,
/// for the devices of `netdev` that have it.
fn rx_nohandler(sysfs: &Path, netdev: &[Point]) -> Vec<Point> {
    netdev
        .iter()
        .filter(|(name, _, _)| name == "node_network_receive_bytes_total")
        .filter_map(|(_, labels, _)| {
            let device = labels.get("device")?;
            let path = sysfs.join(format!("class/net/{device}/statistics/rx_nohandler"));
            let value = std::fs::read_to_string(path)
                .ok()?
                .trim()
                .parse::<f64>()
                .ok()?;
            Some((
                "node_network_receive_nohandler_total".to_string(),
                labels.clone(),
                value,
            ))
        })
        .collect()
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

    fn sys_fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sys")
    }

    fn udev_fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/udev")
    }

    fn count(points: &[Point], name: &str) -> usize {
        points.iter().filter(|(n, _, _)| n == name).count()
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
    fn pressure_some_is_waiting_full_is_stalled() {
        let p = pressure::parse_pressure("cpu", &fixture("pressure/cpu")).expect("parse");
        assert_eq!(p.len(), 1, "node_exporter 1.5 has no cpu stalled: {p:?}");
        assert_eq!(
            value(&p, "node_pressure_cpu_waiting_seconds_total", &[]),
            3652.539616
        );
        let p = pressure::parse_pressure("memory", &fixture("pressure/memory")).expect("parse");
        assert_eq!(
            value(&p, "node_pressure_memory_waiting_seconds_total", &[]),
            1.5
        );
        assert_eq!(
            value(&p, "node_pressure_memory_stalled_seconds_total", &[]),
            0.25
        );
        let p = pressure::parse_pressure("io", &fixture("pressure/io")).expect("parse");
        assert_eq!(
            value(&p, "node_pressure_io_waiting_seconds_total", &[]),
            32.360666
        );
        assert_eq!(
            value(&p, "node_pressure_io_stalled_seconds_total", &[]),
            7.872458
        );
        assert!(pressure::parse_pressure("io", "").is_err());
        assert!(pressure::parse_pressure("io", "some avg10=1").is_err());
        assert!(pressure::parse_pressure("io", "some total=x").is_err());
    }

    #[test]
    fn diskstats_units_filter_and_info() {
        let p = disk::parse_diskstats(&fixture("diskstats"), &udev_fixtures()).expect("parse");
        // sda and zram0 have 17 fields, nvme0n1 (an old kernel's line) 11;
        // loop0, ram0 and the partitions sda1 and nvme0n1p1 are ignored.
        assert_eq!(p.len(), 17 + 11 + 17 + 3);
        let devices: std::collections::BTreeSet<&str> =
            p.iter().filter_map(|(_, l, _)| l.get("device")).collect();
        assert_eq!(
            devices.into_iter().collect::<Vec<_>>(),
            ["nvme0n1", "sda", "zram0"]
        );
        let sda = [("device", "sda")];
        assert_eq!(
            value(&p, "node_disk_reads_completed_total", &sda),
            1_630_083.0
        );
        assert_eq!(value(&p, "node_disk_reads_merged_total", &sda), 22_116.0);
        assert_eq!(
            value(&p, "node_disk_read_bytes_total", &sda),
            40_047_170.0 * 512.0
        );
        assert_eq!(
            value(&p, "node_disk_read_time_seconds_total", &sda),
            1567.951
        );
        assert_eq!(
            value(&p, "node_disk_writes_completed_total", &sda),
            82_398.0
        );
        assert_eq!(
            value(&p, "node_disk_written_bytes_total", &sda),
            87_466_088.0 * 512.0
        );
        assert_eq!(
            value(&p, "node_disk_write_time_seconds_total", &sda),
            388.489
        );
        assert_eq!(value(&p, "node_disk_io_now", &sda), 1.0);
        assert_eq!(value(&p, "node_disk_io_time_seconds_total", &sda), 79.932);
        assert_eq!(
            value(&p, "node_disk_io_time_weighted_seconds_total", &sda),
            1972.097
        );
        assert_eq!(
            value(&p, "node_disk_discards_completed_total", &sda),
            42_417.0
        );
        assert_eq!(value(&p, "node_disk_discards_merged_total", &sda), 49.0);
        assert_eq!(
            value(&p, "node_disk_discarded_sectors_total", &sda),
            41_885_784.0
        );
        assert_eq!(
            value(&p, "node_disk_discard_time_seconds_total", &sda),
            15.241
        );
        assert_eq!(value(&p, "node_disk_flush_requests_total", &sda), 2671.0);
        assert_eq!(
            value(&p, "node_disk_flush_requests_time_seconds_total", &sda),
            0.416
        );
        let nvme = [("device", "nvme0n1")];
        assert_eq!(
            value(&p, "node_disk_io_time_weighted_seconds_total", &nvme),
            0.35
        );
        assert!(get(&p, "node_disk_discards_completed_total", &nvme).is_none());
        let info = get(&p, "node_disk_info", &sda).expect("sda info");
        for (k, v) in [
            ("major", "8"),
            ("minor", "0"),
            ("model", "QEMU_HARDDISK"),
            ("path", "pci-0000:00:1f.2-ata-1"),
            ("revision", "2.5+"),
            ("serial", "QM00001"),
        ] {
            assert_eq!(info.1.get(k), Some(v), "{k}");
        }
        assert_eq!(info.1.get("wwn").unwrap_or_default(), "");
        assert!(
            get(
                &p,
                "node_disk_info",
                &[("device", "zram0"), ("major", "253")]
            )
            .is_some()
        );
        for (device, ignored) in [
            ("loop0", true),
            ("ram12", true),
            ("fd0", true),
            ("sda1", true),
            ("xvda2", true),
            ("nvme0n1p1", true),
            ("sda", false),
            ("nvme0n1", false),
            ("dm-0", false),
            ("md127", false),
            ("loop", false),
        ] {
            assert_eq!(disk::ignored_device(device), ignored, "{device}");
        }
        assert!(disk::parse_diskstats("8 0 sda 1 2 3", &udev_fixtures()).is_err());
    }

    #[test]
    fn netstat_default_fields() {
        let p = netstat::parse_netstat(&fixture("net/netstat")).expect("parse");
        let names: Vec<&str> = p.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "node_netstat_TcpExt_SyncookiesSent",
                "node_netstat_TcpExt_SyncookiesRecv",
                "node_netstat_TcpExt_SyncookiesFailed",
                "node_netstat_TcpExt_ListenOverflows",
                "node_netstat_TcpExt_ListenDrops",
                "node_netstat_TcpExt_TCPTimeouts",
                "node_netstat_TcpExt_TCPSynRetrans",
                "node_netstat_IpExt_InOctets",
                "node_netstat_IpExt_OutOctets",
            ]
        );
        assert_eq!(value(&p, "node_netstat_TcpExt_ListenDrops", &[]), 4.0);
        assert_eq!(value(&p, "node_netstat_IpExt_InOctets", &[]), 509_201_079.0);
        let p = netstat::parse_netstat(&fixture("net/snmp")).expect("parse");
        assert_eq!(p.len(), 15, "{p:?}");
        assert_eq!(value(&p, "node_netstat_Ip_Forwarding", &[]), 2.0);
        assert!(get(&p, "node_netstat_Ip_InHdrErrors", &[]).is_none());
        assert_eq!(value(&p, "node_netstat_Tcp_InErrs", &[]), 60.0);
        assert_eq!(value(&p, "node_netstat_Tcp_CurrEstab", &[]), 8.0);
        assert_eq!(value(&p, "node_netstat_Udp_OutDatagrams", &[]), 200.0);
        assert!(get(&p, "node_netstat_Udp_InCsumErrors", &[]).is_none());
        let p = netstat::parse_snmp6(&fixture("net/snmp6")).expect("parse");
        assert_eq!(p.len(), 5, "{p:?}");
        assert_eq!(value(&p, "node_netstat_Ip6_InOctets", &[]), 3456.0);
        assert_eq!(value(&p, "node_netstat_Icmp6_InMsgs", &[]), 4.0);
        assert_eq!(value(&p, "node_netstat_UdpLite6_InErrors", &[]), 6.0);
        assert!(netstat::parse_netstat("Tcp: A B\nTcp: 1\n").is_err());
        assert!(netstat::parse_netstat("Tcp: InErrs\nUdp: 1\n").is_err());
        assert!(netstat::parse_netstat("Tcp: InErrs\n").is_err());
        assert!(netstat::parse_snmp6("Ip6InOctets").is_err());
    }

    #[test]
    fn sysfs_hwmon_clocksource_nohandler() {
        let p = hwmon::hwmon(&sys_fixtures());
        assert_eq!(p.len(), 5, "{p:?}");
        let chip = [("chip", "coretemp")];
        assert_eq!(
            value(
                &p,
                "node_hwmon_temp_crit_celsius",
                &[chip[0], ("sensor", "temp1")]
            ),
            90.0
        );
        // No name file and no device link: the directory's name.
        assert_eq!(
            value(
                &p,
                "node_hwmon_fan_rpm",
                &[("chip", "hwmon1"), ("sensor", "fan1")]
            ),
            1200.0
        );
        assert_eq!(
            value(
                &p,
                "node_hwmon_temp_celsius",
                &[chip[0], ("sensor", "temp1")]
            ),
            45.5
        );
        assert_eq!(
            value(
                &p,
                "node_hwmon_temp_celsius",
                &[chip[0], ("sensor", "temp2")]
            ),
            51.0
        );
        assert_eq!(
            value(
                &p,
                "node_hwmon_chip_names",
                &[chip[0], ("chip_name", "coretemp")]
            ),
            1.0
        );
        let p = system::clocksources(&sys_fixtures());
        assert_eq!(count(&p, "node_time_clocksource_available_info"), 3);
        for source in ["tsc", "kvm-clock", "acpi_pm"] {
            assert!(
                get(
                    &p,
                    "node_time_clocksource_available_info",
                    &[("clocksource", source), ("device", "0")]
                )
                .is_some()
            );
        }
        assert_eq!(
            value(
                &p,
                "node_time_clocksource_current_info",
                &[("clocksource", "tsc"), ("device", "0")]
            ),
            1.0
        );
        let netdev = parse_net_dev(&fixture("net/dev")).expect("parse");
        let p = rx_nohandler(&sys_fixtures(), &netdev);
        assert_eq!(p.len(), 1, "lo has no sysfs fixture: {p:?}");
        assert_eq!(
            value(
                &p,
                "node_network_receive_nohandler_total",
                &[("device", "eth0")]
            ),
            42.0
        );
        assert!(hwmon::hwmon(&fixtures()).is_empty());
        assert!(system::clocksources(&fixtures()).is_empty());
    }

    #[test]
    fn uname_and_time() {
        let u = sys::Uname {
            sysname: "Linux".into(),
            nodename: "vm".into(),
            release: "6.1.0".into(),
            version: "#1 SMP".into(),
            machine: "x86_64".into(),
            domainname: "(none)".into(),
        };
        let (name, labels, v) = system::uname_info(&u);
        assert_eq!((name.as_str(), v), ("node_uname_info", 1.0));
        assert_eq!(labels.get("release"), Some("6.1.0"));
        assert_eq!(labels.get("domainname"), Some("(none)"));
        assert_eq!(labels.get("nodename"), Some("vm"));
        let real = sys::uname().expect("uname");
        assert_eq!(real.sysname, "Linux");
        assert!(!real.release.is_empty() && !real.machine.is_empty());
        let p = system::time(1_700_000_000_500);
        assert_eq!(value(&p, "node_time_seconds", &[]), 1_700_000_000.5);
        let (_, zone, offset) = get(&p, "node_time_zone_offset_seconds", &[]).expect("zone");
        assert!(zone.get("time_zone").is_some_and(|z| !z.is_empty()));
        assert!(offset.abs() <= 14.0 * 3600.0);
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
            sysfs: sys_fixtures(),
            udev_data: udev_fixtures(),
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
        for metric in [
            "node_pressure_io_stalled_seconds_total",
            "node_disk_read_bytes_total",
            "node_netstat_Tcp_InSegs",
            "node_netstat_Ip6_InOctets",
            "node_uname_info",
            "node_time_zone_offset_seconds",
            "node_time_clocksource_current_info",
            "node_hwmon_temp_celsius",
            "node_network_receive_nohandler_total",
        ] {
            assert!(find(metric, None).is_some(), "{metric}");
        }
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
            procfs: dir.clone(),
            sysfs: dir.clone(),
            udev_data: dir,
            instance: Some("x".into()),
            ..HostConfig::default()
        });
        let samples = c.collect().await;
        // What needs no procfs or sysfs: time and uname.
        let names: Vec<&str> = samples.iter().map(|s| s.series.metric.as_str()).collect();
        assert_eq!(
            names,
            [
                "node_uname_info",
                "node_time_seconds",
                "node_time_zone_offset_seconds"
            ],
        );
        assert!(HOST_ERRORS.with_label_values(&["meminfo"]).get() > before);
    }
}
