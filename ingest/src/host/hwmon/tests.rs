//! The hwmon collector on `tests/fixtures/hwmon/sys`, a sysfs tree laid
//! out like real ones: class links into `devices/`, `device` links, PCI
//! and platform chips, old-kernel sensor files in `device/`, a chip with a
//! name but no device, one with neither, garbage values. (The same tree is
//! compared with the real node_exporter in `tests/e2e_host_parity.rs`.)

use std::path::{Path, PathBuf};

use super::*;

/// The value of the one point named `name` with these labels (among
/// others).
fn value(points: &[Point], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<f64> = points
        .iter()
        .filter(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.get(k) == Some(*v)))
        .map(|(_, _, v)| *v)
        .collect();
    assert!(found.len() <= 1, "{name} {labels:?} twice: {points:?}");
    found.first().copied()
}

/// `tests/fixtures/hwmon/sys`: a sysfs tree laid out like real ones.
fn sysfs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hwmon/sys")
}

#[test]
fn names_labels_and_units_are_node_exporters() {
    let p = hwmon(&sysfs());
    let core = [("chip", "platform_coretemp_0")];
    let with = |sensor: &'static str| [core[0], ("sensor", sensor)];
    assert_eq!(
        value(
            &p,
            "node_hwmon_chip_names",
            &[core[0], ("chip_name", "coretemp")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&p, "node_hwmon_temp_celsius", &with("temp1")),
        Some(45.0)
    );
    assert_eq!(
        value(&p, "node_hwmon_temp_max_celsius", &with("temp1")),
        Some(80.0)
    );
    assert_eq!(
        value(&p, "node_hwmon_temp_crit_celsius", &with("temp1")),
        Some(100.0)
    );
    assert_eq!(
        value(&p, "node_hwmon_temp_crit_alarm_celsius", &with("temp1")),
        Some(0.0)
    );
    assert_eq!(
        value(&p, "node_hwmon_temp_celsius", &with("temp2")),
        Some(51.5)
    );
    assert_eq!(
        value(&p, "node_hwmon_temp_celsius", &with("temp3")),
        Some(39.0)
    );
    // The label is the file's text (node_exporter 1.5 no longer cleans it).
    assert_eq!(
        value(
            &p,
            "node_hwmon_sensor_label",
            &[core[0], ("sensor", "temp1"), ("label", "Package id 0")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &p,
            "node_hwmon_sensor_label",
            &[core[0], ("sensor", "temp2"), ("label", "Core 0")]
        ),
        Some(1.0)
    );

    let pci = [("chip", "pci0000:00_0000:00:18_3"), ("sensor", "temp1")];
    assert_eq!(value(&p, "node_hwmon_temp_celsius", &pci), Some(61.25));
    assert_eq!(
        value(
            &p,
            "node_hwmon_chip_names",
            &[pci[0], ("chip_name", "k10temp")]
        ),
        Some(1.0)
    );

    let nct = |sensor: &'static str| [("chip", "platform_nct6775_656"), ("sensor", sensor)];
    for (name, sensor, want) in [
        ("node_hwmon_fan_rpm", "fan1", 1150.0),
        ("node_hwmon_fan_min_rpm", "fan1", 300.0),
        ("node_hwmon_fan_target_rpm", "fan1", 1200.0),
        ("node_hwmon_fan_alarm", "fan1", 0.0),
        ("node_hwmon_fan_pulses", "fan1", 2.0),
        ("node_hwmon_fan_beep_enabled", "fan1", 1.0),
        ("node_hwmon_in_volts", "in0", 1.032),
        ("node_hwmon_in_min_volts", "in0", 0.8),
        ("node_hwmon_in_max_volts", "in0", 1.6),
        ("node_hwmon_in_alarm", "in0", 1.0),
        ("node_hwmon_cpu_vid_volts", "cpu0", 1.25),
        ("node_hwmon_curr_amps", "curr1", 2.5),
        ("node_hwmon_power_average_watt", "power1", 15.5),
        ("node_hwmon_power_average_interval_seconds", "power1", 1.0),
        ("node_hwmon_power_accuracy", "power1", 0.095),
        ("node_hwmon_power_cap_watt", "power1", 125.0),
        ("node_hwmon_energy_joule_total", "energy1", 123.0),
        ("node_hwmon_humidity", "humidity1", 0.0455),
        ("node_hwmon_pwm", "pwm1", 128.0),
        ("node_hwmon_pwm_enable", "pwm1", 5.0),
        ("node_hwmon_intrusion_alarm", "intrusion0", 1.0),
        ("node_hwmon_beep_enabled", "beep_enable0", 1.0),
        (
            "node_hwmon_update_interval_seconds",
            "update_interval0",
            0.5,
        ),
        ("node_hwmon_voltage_regulator_version", "vrm0", 13.0),
        ("node_hwmon_temp_type", "temp7", 4.0),
    ] {
        let got = value(&p, name, &nct(sensor));
        assert!(
            got.is_some_and(|v| (v - want).abs() < 1e-9),
            "{name}{{sensor={sensor}}}: {got:?}, want {want}"
        );
    }
    assert_eq!(
        value(
            &p,
            "node_hwmon_sensor_label",
            &[nct("in0")[0], ("sensor", "in0"), ("label", "Vcore")]
        ),
        Some(1.0)
    );
    assert!(
        !p.iter().any(|(_, l, _)| l.get("sensor") == Some("fan2")),
        "unparsable values are skipped: {p:?}"
    );

    assert_eq!(
        value(
            &p,
            "node_hwmon_temp_celsius",
            &[("chip", "acpi_tz"), ("sensor", "temp1")]
        ),
        Some(27.8)
    );
    assert_eq!(
        value(
            &p,
            "node_hwmon_chip_names",
            &[("chip", "acpi_tz"), ("chip_name", "acpi_tz")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &p,
            "node_hwmon_temp_celsius",
            &[("chip", "hwmon4"), ("sensor", "temp1")]
        ),
        Some(-5.0)
    );
    assert!(
        !p.iter()
            .any(|(n, l, _)| n == "node_hwmon_chip_names" && l.get("chip") == Some("hwmon4")),
        "no name file, no chip_names"
    );
    // Every point has the chip and sensor labels, and names are valid.
    for (name, labels, _) in &p {
        assert!(labels.get("chip").is_some_and(|c| !c.is_empty()), "{name}");
        assert!(
            name == "node_hwmon_chip_names" || labels.get("sensor").is_some(),
            "{name}"
        );
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{name}"
        );
    }
}

#[test]
fn file_names_split_like_node_exporter() {
    assert_eq!(
        explode("temp1_input"),
        Some(("temp", "temp1".into(), "input"))
    );
    assert_eq!(
        explode("temp1_crit_alarm"),
        Some(("temp", "temp1".into(), "crit_alarm"))
    );
    assert_eq!(explode("in10_input"), Some(("in", "in10".into(), "input")));
    assert_eq!(explode("temp01_max"), Some(("temp", "temp1".into(), "max")));
    assert_eq!(explode("pwm1"), Some(("pwm", "pwm1".into(), "")));
    assert_eq!(explode("vrm"), Some(("vrm", "vrm0".into(), "")));
    assert_eq!(
        explode("update_interval"),
        Some(("update_interval", "update_interval0".into(), ""))
    );
    assert_eq!(
        explode("temp1_auto_point1_temp"),
        Some(("temp", "temp1".into(), "auto_point1_temp"))
    );
    // The regex backtracks to a shorter type when the greedy one fails.
    assert_eq!(
        explode("fan_speed1x"),
        Some(("fan", "fan0".into(), "speed1x"))
    );
    assert_eq!(explode("1_input"), None);
    assert_eq!(explode("temp1_"), None);
    assert_eq!(explode("temp99999999999999999999_input"), None);
    assert_eq!(clean("Package id 0\n"), "package_id_0");
    assert_eq!(clean("pci0000:00"), "pci0000:00");
    assert_eq!(clean("0000:00:18.3"), "0000:00:18_3");
    assert_eq!(clean("a  b"), "a__b");
    assert_eq!(clean("__x__"), "x");
    assert_eq!(clean("É"), "");
    assert_eq!(
        metric("fan", "input", true, 5.0).0,
        "node_hwmon_fan_input_rpm"
    );
    assert_eq!(
        metric("temp", "", false, 1000.0),
        ("node_hwmon_temp_celsius".into(), 1.0)
    );
}

#[test]
fn no_hwmon_class_is_no_points() {
    let tmp = tempfile::tempdir().expect("tempdir");
    assert!(hwmon(tmp.path()).is_empty());
    assert!(hwmon(&tmp.path().join("missing")).is_empty());
}
