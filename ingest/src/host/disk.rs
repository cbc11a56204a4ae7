//! `/proc/diskstats` (node_exporter's `diskstats` collector).

use std::path::Path;

use vigie_model::Labels;

use super::{Point, number};

/// Sector size of the `/proc/diskstats` byte counters (always 512).
const SECTOR: f64 = 512.0;

/// node_exporter 1.5's default device exclusion,
/// `^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$`: RAM disks, loop
/// devices, floppies and partitions.
pub(crate) fn ignored_device(name: &str) -> bool {
    let digits_tail = |rest: &str| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit());
    for prefix in ["ram", "loop", "fd"] {
        if let Some(rest) = name.strip_prefix(prefix)
            && digits_tail(rest)
        {
            return true;
        }
    }
    for prefix in ["hd", "sd", "vd", "xvd"] {
        if let Some(rest) = name.strip_prefix(prefix) {
            let mut chars = rest.chars();
            if chars.next().is_some_and(|c| c.is_ascii_lowercase()) && digits_tail(chars.as_str()) {
                return true;
            }
        }
    }
    // nvme\d+n\d+p\d+
    if let Some(rest) = name.strip_prefix("nvme") {
        let parts: Vec<&str> = rest.splitn(2, 'n').collect();
        if let [ctrl, ns] = parts[..]
            && digits_tail(ctrl)
            && let Some((ns, part)) = ns.split_once('p')
        {
            return digits_tail(ns) && digits_tail(part);
        }
    }
    false
}

/// Unit of a `/proc/diskstats` field.
#[derive(Clone, Copy)]
enum Unit {
    /// Exported as is.
    Count,
    /// 512-byte sectors, exported in bytes.
    Sectors,
    /// Milliseconds, exported in seconds.
    Millis,
}

impl Unit {
    fn convert(self, v: f64) -> f64 {
        match self {
            Unit::Count => v,
            Unit::Sectors => v * SECTOR,
            // A division keeps `388489 ms` exactly `388.489`.
            Unit::Millis => v / 1000.0,
        }
    }
}

/// How each `/proc/diskstats` field after the device name is exported.
/// Fields 12-15 exist since Linux 4.18, 16-17 since 5.5.
const FIELDS: [(&str, Unit); 17] = [
    ("node_disk_reads_completed_total", Unit::Count),
    ("node_disk_reads_merged_total", Unit::Count),
    ("node_disk_read_bytes_total", Unit::Sectors),
    ("node_disk_read_time_seconds_total", Unit::Millis),
    ("node_disk_writes_completed_total", Unit::Count),
    ("node_disk_writes_merged_total", Unit::Count),
    ("node_disk_written_bytes_total", Unit::Sectors),
    ("node_disk_write_time_seconds_total", Unit::Millis),
    ("node_disk_io_now", Unit::Count),
    ("node_disk_io_time_seconds_total", Unit::Millis),
    ("node_disk_io_time_weighted_seconds_total", Unit::Millis),
    ("node_disk_discards_completed_total", Unit::Count),
    ("node_disk_discards_merged_total", Unit::Count),
    ("node_disk_discarded_sectors_total", Unit::Count),
    ("node_disk_discard_time_seconds_total", Unit::Millis),
    ("node_disk_flush_requests_total", Unit::Count),
    ("node_disk_flush_requests_time_seconds_total", Unit::Millis),
];

/// `/proc/diskstats`, plus `node_disk_info` with the udev properties found
/// in `udev_data/b<major>:<minor>` (empty labels when there are none).
pub(crate) fn parse_diskstats(text: &str, udev_data: &Path) -> Result<Vec<Point>, String> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 14 {
            return Err(format!("malformed line `{line}`"));
        }
        let (major, minor, device) = (f[0], f[1], f[2]);
        if ignored_device(device) {
            continue;
        }
        let labels = Labels::new().with("device", device);
        for ((name, unit), field) in FIELDS.iter().zip(&f[3..]) {
            out.push((
                name.to_string(),
                labels.clone(),
                unit.convert(number(field, device)?),
            ));
        }
        let udev = std::fs::read_to_string(udev_data.join(format!("b{major}:{minor}")))
            .unwrap_or_default();
        let prop = |key: &str| {
            udev.lines()
                .filter_map(|l| l.strip_prefix("E:"))
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .unwrap_or_default()
                .to_string()
        };
        out.push((
            "node_disk_info".to_string(),
            labels
                .with("major", major)
                .with("minor", minor)
                .with("model", prop("ID_MODEL"))
                .with("path", prop("ID_PATH"))
                .with("revision", prop("ID_REVISION"))
                .with("serial", prop("ID_SERIAL_SHORT"))
                .with("wwn", prop("ID_WWN")),
            1.0,
        ));
    }
    Ok(out)
}
