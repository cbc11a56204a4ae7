//! `<sysfs>/class/hwmon`: node_exporter 1.5's `hwmon` collector.
//!
//! Every `hwmonN` directory is a chip; every file named
//! `<type><N>[_<property>]` of a known type (in the directory and in its
//! `device` directory, where old kernels put them) is a sensor property.
//! Names, labels and units follow node_exporter's `collector/hwmon_linux.go`:
//! temperatures (millidegrees → `_celsius`), voltages (millivolts →
//! `_volts`), currents (milliamps → `_amps`), power (microwatts → `_watt`),
//! energy (microjoules → `_joule_total`), humidity (millipercent → ratio),
//! fans (`_rpm`), alarms, faults and the rest as read, plus
//! `node_hwmon_chip_names{chip,chip_name}` and
//! `node_hwmon_sensor_label{chip,sensor,label}`. A file that cannot be read
//! or parsed (a disconnected fan's `EIO`, say) is skipped silently, as
//! node_exporter does.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;
use vigie_model::Labels;

use super::Point;

/// node_exporter's `hwmonFilenameFormat`: `<type><id>_<property>`, with
/// Go's (and the regex crate's) leftmost-first submatch preferences.
static FILENAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?P<type>[^0-9]+)(?P<id>[0-9]*)?(_(?P<property>.+))?$").expect("a valid regex")
});

/// The sensor types node_exporter reads; other files are ignored.
const SENSOR_TYPES: &[&str] = &[
    "vrm",
    "beep_enable",
    "update_interval",
    "in",
    "cpu",
    "fan",
    "pwm",
    "temp",
    "curr",
    "power",
    "energy",
    "humidity",
    "intrusion",
];

/// node_exporter's `cleanMetricName`: lower case, every character other
/// than `[a-z0-9:_]` becomes `_`, then `_` is trimmed at both ends.
pub(crate) fn clean(name: &str) -> String {
    let cleaned: String = name
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == ':' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    cleaned.trim_matches('_').to_string()
}

/// `(type, sensor, property)` of a sysfs file name: `temp1_crit_alarm` →
/// `("temp", "temp1", "crit_alarm")`; `vrm` → `("vrm", "vrm0", "")`.
/// `None` for names that are not sensor files.
pub(crate) fn explode(filename: &str) -> Option<(&str, String, &str)> {
    let caps = FILENAME.captures(filename)?;
    let kind = caps.name("type")?.as_str();
    let id = match caps.name("id").map(|m| m.as_str()) {
        Some(digits) if !digits.is_empty() => digits.parse::<i64>().ok()?,
        _ => 0,
    };
    let property = caps.name("property").map_or("", |m| m.as_str());
    Some((kind, format!("{kind}{id}"), property))
}

/// A sysfs attribute, read like node_exporter's `sysReadFile`: one read of
/// at most 128 bytes (some broken drivers answer `EAGAIN` forever), with
/// the newlines at both ends trimmed.
fn read_value(path: &Path) -> Option<String> {
    let mut file = std::fs::File::open(path).ok()?;
    let mut buf = [0u8; 128];
    let n = file.read(&mut buf).ok()?;
    Some(
        String::from_utf8_lossy(&buf[..n])
            .trim_matches('\n')
            .to_string(),
    )
}

/// One sensor's properties (`""` for a bare `vrm` or `pwm1`), by name.
type Sensor = BTreeMap<String, String>;

/// Adds the sensor files of `dir` to `data` (sensor → property → value).
fn collect_sensor_data(dir: &Path, data: &mut BTreeMap<String, (String, Sensor)>) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    for entry in entries.filter_map(Result::ok) {
        let filename = entry.file_name().to_string_lossy().into_owned();
        let Some((kind, sensor, property)) = explode(&filename) else {
            continue;
        };
        if !SENSOR_TYPES.contains(&kind) {
            continue;
        }
        let Some(value) = read_value(&entry.path()) else {
            continue;
        };
        data.entry(sensor)
            .or_insert_with(|| (kind.to_string(), Sensor::new()))
            .1
            .insert(property.to_string(), value);
    }
    true
}

/// The `chip` label: `<parent>_<device>` of the resolved `device` link
/// (`platform_coretemp_0`, `pci0000:00_0000:00:18_3`), else the `name`
/// file, else the `hwmonN` directory name; all cleaned.
fn chip_name(dir: &Path) -> Option<String> {
    if let Ok(device) = std::fs::canonicalize(dir.join("device")) {
        let name = device
            .file_name()
            .map(|n| clean(&n.to_string_lossy()))
            .unwrap_or_default();
        let parent = device
            .parent()
            .and_then(Path::file_name)
            .map(|n| clean(&n.to_string_lossy()))
            .unwrap_or_default();
        if !parent.is_empty() && !name.is_empty() {
            return Some(format!("{parent}_{name}"));
        }
        if !name.is_empty() {
            return Some(name);
        }
    }
    if let Ok(name) = std::fs::read_to_string(dir.join("name")) {
        let name = clean(&name);
        if !name.is_empty() {
            return Some(name);
        }
    }
    let real = std::fs::canonicalize(dir).ok()?;
    Some(clean(&real.file_name()?.to_string_lossy())).filter(|n| !n.is_empty())
}

/// Every chip under `<sysfs>/class/hwmon`, in directory name order.
pub(crate) fn hwmon(sysfs: &Path) -> Vec<Point> {
    let Ok(entries) = std::fs::read_dir(sysfs.join("class/hwmon")) else {
        return Vec::new();
    };
    // `is_dir` follows the links sysfs has there.
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs.iter().flat_map(|dir| chip(dir)).collect()
}

/// One chip's points.
fn chip(dir: &Path) -> Vec<Point> {
    let Some(chip) = chip_name(dir) else {
        return Vec::new();
    };
    let mut data = BTreeMap::new();
    if !collect_sensor_data(dir, &mut data) {
        return Vec::new();
    }
    let device = dir.join("device");
    if device.exists() && !collect_sensor_data(&device, &mut data) {
        return Vec::new();
    }
    let mut out = Vec::new();
    let labels = |sensor: &str| {
        Labels::new()
            .with("chip", chip.as_str())
            .with("sensor", sensor)
    };
    if let Some(name) = std::fs::read_to_string(dir.join("name"))
        .ok()
        .map(|n| clean(&n))
        .filter(|n| !n.is_empty())
    {
        out.push((
            "node_hwmon_chip_names".to_string(),
            Labels::new()
                .with("chip", chip.as_str())
                .with("chip_name", name),
            1.0,
        ));
    }
    for (sensor, (kind, props)) in &data {
        if let Some(label) = props.get("label") {
            out.push((
                "node_hwmon_sensor_label".to_string(),
                labels(sensor).with("label", label.as_str()),
                1.0,
            ));
        }
        let bare = props.get("").map(String::as_str);
        match kind.as_str() {
            "beep_enable" => {
                let on = if bare == Some("1") { 1.0 } else { 0.0 };
                out.push(("node_hwmon_beep_enabled".to_string(), labels(sensor), on));
                continue;
            }
            "vrm" => {
                if let Some(v) = bare.and_then(|v| v.parse::<f64>().ok()) {
                    out.push((
                        "node_hwmon_voltage_regulator_version".to_string(),
                        labels(sensor),
                        v,
                    ));
                }
                continue;
            }
            "update_interval" => {
                if let Some(v) = bare.and_then(|v| v.parse::<f64>().ok()) {
                    out.push((
                        "node_hwmon_update_interval_seconds".to_string(),
                        labels(sensor),
                        v * 0.001,
                    ));
                }
                continue;
            }
            _ => {}
        }
        for (element, value) in props {
            if element == "label" {
                continue;
            }
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let (name, value) = metric(kind, element, bare.is_some(), value);
            out.push((name, labels(sensor), value));
        }
    }
    out
}

/// The metric name and scaled value of one property of a sensor of type
/// `kind`; `has_bare` tells whether the sensor also has a file without a
/// property (then `_input` keeps its name).
pub(crate) fn metric(kind: &str, element: &str, has_bare: bool, value: f64) -> (String, f64) {
    let mut name = format!("node_hwmon_{kind}");
    if element == "input" {
        if has_bare {
            name.push_str("_input");
        }
    } else if !element.is_empty() {
        name.push('_');
        name.push_str(&clean(element));
    }
    match (kind, element) {
        (_, "fault" | "alarm") => (name, value),
        (_, "beep") => (name + "_enabled", value),
        ("in" | "cpu", _) => (name + "_volts", value * 0.001),
        ("temp", e) if e != "type" => (name + "_celsius", value * 0.001),
        ("curr", _) => (name + "_amps", value * 0.001),
        ("energy", _) => (name + "_joule_total", value / 1_000_000.0),
        ("power", "accuracy") => (name, value / 1_000_000.0),
        ("power", "average_interval" | "average_interval_min" | "average_interval_max") => {
            (name + "_seconds", value * 0.001)
        }
        ("power", _) => (name + "_watt", value / 1_000_000.0),
        ("humidity", _) => (name, value / 1_000_000.0),
        ("fan", "input" | "min" | "max" | "target") => (name + "_rpm", value),
        _ => (name, value),
    }
}

#[cfg(test)]
mod tests;
