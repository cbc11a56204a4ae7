//! Temperatures from `<sysfs>/class/hwmon` (a subset of node_exporter's
//! `hwmon` collector: `node_hwmon_temp_celsius` and `node_hwmon_chip_names`).

use std::path::Path;

use vigie_model::Labels;

use super::Point;

/// node_exporter's `cleanMetricName`: lower case, runs of other characters
/// than `[a-z0-9_]` become `_`, and `_` is trimmed at both ends.
fn clean(name: &str) -> String {
    let mut out = String::new();
    for c in name.trim().to_lowercase().chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_string()
}

/// The `chip` label: `<bus>_<device>` from the `device` link, else the
/// `name` file, else the `hwmonN` directory name (as node_exporter).
fn chip_name(dir: &Path) -> String {
    if let Ok(device) = std::fs::canonicalize(dir.join("device")) {
        let name = device.file_name().map(|n| clean(&n.to_string_lossy()));
        let bus = device
            .parent()
            .and_then(Path::file_name)
            .map(|n| clean(&n.to_string_lossy()));
        match (bus, name) {
            (Some(bus), Some(name)) if !bus.is_empty() && !name.is_empty() => {
                return format!("{bus}_{name}");
            }
            (_, Some(name)) if !name.is_empty() => return name,
            _ => {}
        }
    }
    if let Ok(name) = std::fs::read_to_string(dir.join("name")) {
        let name = clean(&name);
        if !name.is_empty() {
            return name;
        }
    }
    dir.file_name()
        .map(|n| clean(&n.to_string_lossy()))
        .unwrap_or_default()
}

/// Every `tempN_input` (millidegrees) of every hwmon device.
pub(crate) fn hwmon(sysfs: &Path) -> Vec<Point> {
    let Ok(entries) = std::fs::read_dir(sysfs.join("class/hwmon")) else {
        return Vec::new();
    };
    let mut dirs: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    dirs.sort();
    let mut out = Vec::new();
    for dir in dirs {
        let chip = chip_name(&dir);
        if let Ok(name) = std::fs::read_to_string(dir.join("name")) {
            out.push((
                "node_hwmon_chip_names".to_string(),
                Labels::new()
                    .with("chip", chip.clone())
                    .with("chip_name", name.trim()),
                1.0,
            ));
        }
        let Ok(files) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut sensors: Vec<String> = files
            .filter_map(Result::ok)
            .filter_map(|f| {
                let name = f.file_name().to_string_lossy().into_owned();
                let sensor = name.strip_suffix("_input")?;
                sensor.starts_with("temp").then(|| sensor.to_string())
            })
            .collect();
        sensors.sort();
        for sensor in sensors {
            let Some(millis) = std::fs::read_to_string(dir.join(format!("{sensor}_input")))
                .ok()
                .and_then(|t| t.trim().parse::<f64>().ok())
            else {
                continue;
            };
            out.push((
                "node_hwmon_temp_celsius".to_string(),
                Labels::new()
                    .with("chip", chip.clone())
                    .with("sensor", sensor),
                millis / 1000.0,
            ));
        }
    }
    out
}
