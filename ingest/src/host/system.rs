//! `uname` and `time` (node_exporter's collectors of those names).

use std::path::Path;

use vigie_model::Labels;

use super::Point;
use crate::sys;

/// `node_uname_info` from `uname(2)`.
pub(crate) fn uname_info(u: &sys::Uname) -> Point {
    (
        "node_uname_info".to_string(),
        Labels::new()
            .with("sysname", u.sysname.clone())
            .with("release", u.release.clone())
            .with("version", u.version.clone())
            .with("machine", u.machine.clone())
            .with("nodename", u.nodename.clone())
            .with("domainname", u.domainname.clone()),
        1.0,
    )
}

/// `node_time_seconds`, `node_time_zone_offset_seconds{time_zone}`.
pub(crate) fn time(now_ms: i64) -> Vec<Point> {
    let mut out = vec![(
        "node_time_seconds".to_string(),
        Labels::new(),
        now_ms as f64 / 1000.0,
    )];
    if let Some((zone, offset)) = sys::local_zone(now_ms.div_euclid(1000)) {
        out.push((
            "node_time_zone_offset_seconds".to_string(),
            Labels::new().with("time_zone", zone),
            offset as f64,
        ));
    }
    out
}

/// `node_time_clocksource_{available,current}_info{clocksource,device}` from
/// `<sysfs>/devices/system/clocksource/clocksource<N>/`.
pub(crate) fn clocksources(sysfs: &Path) -> Vec<Point> {
    let dir = sysfs.join("devices/system/clocksource");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut devices: Vec<(String, std::path::PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n = name.strip_prefix("clocksource")?.to_string();
            n.bytes()
                .all(|b| b.is_ascii_digit())
                .then_some((n, e.path()))
        })
        .collect();
    devices.sort();
    let mut out = Vec::new();
    for (device, path) in devices {
        let read = |f: &str| std::fs::read_to_string(path.join(f)).unwrap_or_default();
        for source in read("available_clocksource").split_whitespace() {
            out.push((
                "node_time_clocksource_available_info".to_string(),
                Labels::new()
                    .with("clocksource", source)
                    .with("device", device.clone()),
                1.0,
            ));
        }
        let current = read("current_clocksource");
        if !current.trim().is_empty() {
            out.push((
                "node_time_clocksource_current_info".to_string(),
                Labels::new()
                    .with("clocksource", current.trim())
                    .with("device", device.clone()),
                1.0,
            ));
        }
    }
    out
}
