//! node_exporter-like series for the ingest benches (`remote_write`,
//! `exposition`, the root `ingest_compare` bench): per node, 8 CPUs × 8
//! modes of `node_cpu_seconds_total`, filesystem, network, disk and memory
//! families, load averages and `node_time_seconds` — 210 series labelled
//! `instance="node-NNN:9100", job="node"`, values formatted as
//! node_exporter prints them (Go's shortest `%g`).
//!
//! Included with `#[path]` by each bench (a bench is its own crate).

#![allow(dead_code)]

use std::fmt::Write as _;

/// One series: metric name, labels in exposition order (no `__name__`),
/// and a value that moves with `round`.
pub struct NodeSeries {
    /// Metric name.
    pub name: &'static str,
    /// Labels, `instance` and `job` first.
    pub labels: Vec<(&'static str, String)>,
    /// Base value.
    base: f64,
    /// Per-round increment (0 for a constant gauge).
    step: f64,
}

impl NodeSeries {
    /// The value at scrape `round`.
    pub fn value(&self, round: u64) -> f64 {
        self.base + self.step * round as f64
    }
}

const CPU_MODES: [&str; 8] = [
    "idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user",
];
const FS: [(&str, &str, &str); 5] = [
    ("/dev/nvme0n1p2", "ext4", "/"),
    ("/dev/nvme0n1p1", "vfat", "/boot/efi"),
    ("tmpfs", "tmpfs", "/run"),
    ("tmpfs", "tmpfs", "/dev/shm"),
    ("/dev/sdb1", "xfs", "/var/lib/data"),
];
const FS_METRICS: [&str; 6] = [
    "node_filesystem_avail_bytes",
    "node_filesystem_files",
    "node_filesystem_files_free",
    "node_filesystem_free_bytes",
    "node_filesystem_readonly",
    "node_filesystem_size_bytes",
];
const NET_DEVICES: [&str; 4] = ["eth0", "eth1", "lo", "docker0"];
const NET_METRICS: [&str; 8] = [
    "node_network_receive_bytes_total",
    "node_network_receive_drop_total",
    "node_network_receive_errs_total",
    "node_network_receive_packets_total",
    "node_network_transmit_bytes_total",
    "node_network_transmit_drop_total",
    "node_network_transmit_errs_total",
    "node_network_transmit_packets_total",
];
const DISKS: [&str; 4] = ["nvme0n1", "sda", "sdb", "dm-0"];
const DISK_METRICS: [&str; 10] = [
    "node_disk_io_now",
    "node_disk_io_time_seconds_total",
    "node_disk_io_time_weighted_seconds_total",
    "node_disk_read_bytes_total",
    "node_disk_read_time_seconds_total",
    "node_disk_reads_completed_total",
    "node_disk_reads_merged_total",
    "node_disk_write_time_seconds_total",
    "node_disk_writes_completed_total",
    "node_disk_written_bytes_total",
];
const MEMORY: [&str; 40] = [
    "node_memory_Active_anon_bytes",
    "node_memory_Active_bytes",
    "node_memory_Active_file_bytes",
    "node_memory_AnonHugePages_bytes",
    "node_memory_AnonPages_bytes",
    "node_memory_Bounce_bytes",
    "node_memory_Buffers_bytes",
    "node_memory_Cached_bytes",
    "node_memory_CommitLimit_bytes",
    "node_memory_Committed_AS_bytes",
    "node_memory_DirectMap1G_bytes",
    "node_memory_DirectMap2M_bytes",
    "node_memory_DirectMap4k_bytes",
    "node_memory_Dirty_bytes",
    "node_memory_HardwareCorrupted_bytes",
    "node_memory_HugePages_Free",
    "node_memory_HugePages_Rsvd",
    "node_memory_HugePages_Surp",
    "node_memory_HugePages_Total",
    "node_memory_Hugepagesize_bytes",
    "node_memory_Inactive_anon_bytes",
    "node_memory_Inactive_bytes",
    "node_memory_Inactive_file_bytes",
    "node_memory_KernelStack_bytes",
    "node_memory_Mapped_bytes",
    "node_memory_MemAvailable_bytes",
    "node_memory_MemFree_bytes",
    "node_memory_MemTotal_bytes",
    "node_memory_Mlocked_bytes",
    "node_memory_NFS_Unstable_bytes",
    "node_memory_PageTables_bytes",
    "node_memory_SReclaimable_bytes",
    "node_memory_SUnreclaim_bytes",
    "node_memory_Shmem_bytes",
    "node_memory_Slab_bytes",
    "node_memory_SwapCached_bytes",
    "node_memory_SwapFree_bytes",
    "node_memory_SwapTotal_bytes",
    "node_memory_Unevictable_bytes",
    "node_memory_VmallocUsed_bytes",
];

/// Series per node.
pub const SERIES_PER_NODE: usize = 210;

/// The series of `nodes` nodes.
pub fn series(nodes: usize) -> Vec<NodeSeries> {
    let mut out = Vec::with_capacity(nodes * SERIES_PER_NODE);
    for n in 0..nodes {
        let instance = format!("node-{n:03}:9100");
        let base = |extra: &[(&'static str, String)]| {
            let mut l = vec![("instance", instance.clone()), ("job", "node".to_string())];
            l.extend(extra.iter().cloned());
            l
        };
        // A deterministic spread of magnitudes, by position.
        let mut k = 1.0 + n as f64;
        let mut next = || {
            k = (k * 1.618_033_988_75) % 97.0 + 1.0;
            k
        };
        for cpu in 0..8 {
            for mode in CPU_MODES {
                out.push(NodeSeries {
                    name: "node_cpu_seconds_total",
                    labels: base(&[("cpu", cpu.to_string()), ("mode", mode.to_string())]),
                    base: (next() * 104_729.0 * 100.0).round() / 100.0,
                    step: (next() * 15.0 * 100.0).round() / 100.0 / 97.0,
                });
            }
        }
        for m in FS_METRICS {
            for (device, fstype, mount) in FS {
                out.push(NodeSeries {
                    name: m,
                    labels: base(&[
                        ("device", device.to_string()),
                        ("fstype", fstype.to_string()),
                        ("mountpoint", mount.to_string()),
                    ]),
                    base: (next() * 1.1e9).round() * 4096.0,
                    step: 0.0,
                });
            }
        }
        for m in NET_METRICS {
            for device in NET_DEVICES {
                out.push(NodeSeries {
                    name: m,
                    labels: base(&[("device", device.to_string())]),
                    base: (next() * 3.3e10).round(),
                    step: (next() * 1.5e5).round(),
                });
            }
        }
        for m in DISK_METRICS {
            for device in DISKS {
                out.push(NodeSeries {
                    name: m,
                    labels: base(&[("device", device.to_string())]),
                    base: (next() * 7.1e8).round() / 1000.0,
                    step: (next() * 1.0e3).round() / 1000.0,
                });
            }
        }
        for m in MEMORY {
            out.push(NodeSeries {
                name: m,
                labels: base(&[]),
                base: (next() * 1.7e8).round() * 1024.0,
                step: 0.0,
            });
        }
        for m in ["node_load1", "node_load5", "node_load15"] {
            out.push(NodeSeries {
                name: m,
                labels: base(&[]),
                base: next() / 10.0,
                step: 0.0,
            });
        }
        out.push(NodeSeries {
            name: "node_time_seconds",
            labels: base(&[]),
            base: 1.767_225_600_123_456_7e9,
            step: 15.0,
        });
    }
    out
}

/// Formats a float as node_exporter (Go's `strconv.FormatFloat(f, 'g', -1, 64)`).
pub fn go_float(f: f64) -> String {
    let s = vigie_ingest::exposition::format_openmetrics_float(f);
    // That is Go's 'g' plus ".0" on integers; node_exporter omits the ".0".
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

/// The exposition text of `series` at scrape `round`; with `ts_ms`, every
/// line carries that timestamp (as `/api/v1/import/prometheus` takes it).
pub fn exposition(series: &[NodeSeries], round: u64, ts_ms: Option<i64>) -> String {
    let mut text = String::with_capacity(series.len() * 120);
    let mut last = "";
    for s in series {
        if s.name != last {
            let _ = writeln!(text, "# HELP {} A node_exporter-like series.", s.name);
            let kind = if s.name.ends_with("_total") {
                "counter"
            } else {
                "gauge"
            };
            let _ = writeln!(text, "# TYPE {} {kind}", s.name);
            last = s.name;
        }
        text.push_str(s.name);
        text.push('{');
        for (i, (k, v)) in s.labels.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            let _ = write!(text, "{k}=\"{v}\"");
        }
        let _ = write!(text, "}} {}", go_float(s.value(round)));
        if let Some(ts) = ts_ms {
            let _ = write!(text, " {ts}");
        }
        text.push('\n');
    }
    text
}
