//! nvidia-smi's output parsed (fixed cases and properties), and the
//! collection path run against real executables: the checked-in
//! `tests/fixtures/nvidia-smi/nvidia-smi` shell script, which stands for
//! NVIDIA's nvidia-smi (it cannot run here: it needs an NVIDIA GPU and
//! driver) and prints `query-gpu.csv`, an answer written in nvidia-smi's
//! `--format=csv,noheader,nounits` format; and scripts written at test
//! time that hang, fail or print garbage.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nvidia-smi")
}

fn fixture_csv() -> String {
    std::fs::read_to_string(fixture_dir().join("query-gpu.csv")).expect("fixture")
}

fn value(points: &[Point], metric: &str, gpu: &str) -> Option<f64> {
    points
        .iter()
        .find(|(m, l, _)| m == metric && l.get("gpu") == Some(gpu))
        .map(|(_, _, v)| *v)
}

fn errors(reason: &str) -> u64 {
    GPU_ERRORS.with_label_values(&[reason]).get()
}

/// An executable script `nvidia-smi` in a new temporary directory.
fn script(body: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nvidia-smi");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    (dir, path)
}

fn runner(path: &Path, timeout: Duration) -> NvidiaSmi {
    NvidiaSmi::new(path.to_str().expect("utf-8 path"), timeout, "gpu-host").expect("executable")
}

#[test]
fn fixture_maps_to_dcgm_names_and_labels() {
    let parsed = parse_query_output(&fixture_csv(), "gpu-host");
    assert!(parsed.garbage.is_empty(), "{:?}", parsed.garbage);
    assert_eq!(
        parsed.unsupported,
        [
            "fan.speed",
            "ecc.errors.corrected.volatile.total",
            "ecc.errors.uncorrected.volatile.total"
        ]
    );
    let p = &parsed.points;
    assert_eq!(p.len(), 13 - 1 + 13 - 2);
    let (_, labels, _) = p
        .iter()
        .find(|(m, l, _)| m == "DCGM_FI_DEV_GPU_TEMP" && l.get("gpu") == Some("0"))
        .expect("gpu 0 temperature");
    assert_eq!(
        labels.get("UUID"),
        Some("GPU-5f2b6c43-0e2a-7c1d-93a8-1c2e3f4a5b6c")
    );
    assert_eq!(labels.get("modelName"), Some("NVIDIA A100-SXM4-40GB"));
    assert_eq!(labels.get("pci_bus_id"), Some("00000000:07:00.0"));
    assert_eq!(labels.get("Hostname"), Some("gpu-host"));
    for (metric, gpu, want) in [
        ("DCGM_FI_DEV_GPU_TEMP", "0", 34.0),
        ("DCGM_FI_DEV_GPU_TEMP", "1", 67.0),
        ("DCGM_FI_DEV_GPU_UTIL", "1", 98.0),
        ("DCGM_FI_DEV_MEM_COPY_UTIL", "1", 45.0),
        ("DCGM_FI_DEV_FB_USED", "1", 20110.0),
        ("DCGM_FI_DEV_FB_FREE", "1", 4046.0),
        ("DCGM_FI_DEV_FB_TOTAL", "0", 40960.0),
        ("DCGM_FI_DEV_POWER_USAGE", "0", 54.12),
        ("DCGM_FI_DEV_POWER_MGMT_LIMIT", "1", 350.0),
        ("DCGM_FI_DEV_SM_CLOCK", "1", 1860.0),
        ("DCGM_FI_DEV_MEM_CLOCK", "0", 1215.0),
        ("DCGM_FI_DEV_FAN_SPEED", "1", 72.0),
        ("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "0", 0.0),
        ("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "0", 0.0),
    ] {
        assert_eq!(value(p, metric, gpu), Some(want), "{metric} gpu {gpu}");
    }
    assert_eq!(value(p, "DCGM_FI_DEV_FAN_SPEED", "0"), None);
    assert_eq!(value(p, "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "1"), None);
    // The names rules/gpu.yml alerts on.
    assert!(p.iter().any(|(m, _, _)| m == "DCGM_FI_DEV_GPU_TEMP"));
    assert!(
        p.iter()
            .any(|(m, _, _)| m == "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL")
    );
}

#[test]
fn garbage_is_skipped_and_said() {
    let csv = fixture_csv();
    let gpu0 = csv.lines().next().expect("a line");
    let text = format!(
        "{gpu0}\nNo devices were found\n\
         x, GPU-1, n, b, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13\n\
         2, , n, b, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13\n\
         3, GPU-3, n, [N/A], 1e400, nan, inf, [Unknown Error], 5, 6, 7, 8, 9, 10, 11, 12, 13\n\n"
    );
    let parsed = parse_query_output(&text, "");
    assert_eq!(parsed.garbage.len(), 3 + 4, "{:?}", parsed.garbage);
    assert!(
        parsed.garbage[0].contains("line 2 has 1 fields"),
        "{:?}",
        parsed.garbage
    );
    assert!(
        parsed.garbage[3].contains("temperature.gpu is `1e400`"),
        "{:?}",
        parsed.garbage
    );
    // GPU 0 is whole; GPU 3 has its 9 sound values, without a bus id label.
    assert_eq!(
        value(&parsed.points, "DCGM_FI_DEV_GPU_TEMP", "0"),
        Some(34.0)
    );
    assert_eq!(parsed.points.len(), 12 + 9);
    assert!(
        parsed
            .points
            .iter()
            .all(|(_, l, _)| l.get("Hostname").is_none()
                && (l.get("gpu") == Some("0") || l.get("pci_bus_id").is_none()))
    );
    assert_eq!(value(&parsed.points, "DCGM_FI_DEV_FB_FREE", "3"), Some(5.0));
    // Long garbage is cut in messages.
    let long = "y".repeat(10_000);
    let parsed = parse_query_output(&long, "");
    assert!(parsed.garbage[0].len() < 200);
}

/// One GPU line: index, UUID, name, and each value field either a number
/// or an "unavailable" marker.
fn gpu_line() -> impl Strategy<Value = (u32, String, String, Vec<Option<f64>>, Vec<bool>)> {
    (
        any::<u32>(),
        "GPU-[0-9a-f]{8}-[0-9a-f]{4}",
        "[A-Za-z0-9 -]{1,24}",
        proptest::collection::vec(
            prop_oneof![
                3 => (-1e6f64..1e6).prop_map(Some),
                1 => Just(None),
            ],
            VALUE_FIELDS.len(),
        ),
        proptest::collection::vec(any::<bool>(), VALUE_FIELDS.len()),
    )
}

proptest! {
    #[test]
    fn every_reported_value_becomes_one_point(gpus in proptest::collection::vec(gpu_line(), 0..4)) {
        let mut text = String::new();
        for (index, uuid, name, values, not_supported) in &gpus {
            let mut fields = vec![index.to_string(), uuid.clone(), name.clone(), "00000000:01:00.0".into()];
            for (v, ns) in values.iter().zip(not_supported) {
                fields.push(match (v, ns) {
                    (Some(v), _) => v.to_string(),
                    (None, true) => "[Not Supported]".into(),
                    (None, false) => "[N/A]".into(),
                });
            }
            text.push_str(&fields.join(", "));
            text.push('\n');
        }
        let parsed = parse_query_output(&text, "h");
        prop_assert!(parsed.garbage.is_empty(), "{:?}", parsed.garbage);
        let reported: usize = gpus.iter().map(|g| g.3.iter().flatten().count()).sum();
        let unavailable: usize = gpus.iter().map(|g| g.3.iter().filter(|v| v.is_none()).count()).sum();
        prop_assert_eq!(parsed.points.len(), reported);
        prop_assert_eq!(parsed.unsupported.len(), unavailable);
        let mut points = parsed.points.iter();
        for (index, uuid, name, values, _) in &gpus {
            for ((_, metric), v) in VALUE_FIELDS.iter().zip(values) {
                let Some(v) = v else { continue };
                let (m, labels, got) = points.next().expect("a point per value");
                prop_assert_eq!(m, metric);
                prop_assert_eq!(*got, *v);
                let index = index.to_string();
                prop_assert_eq!(labels.get("gpu"), Some(index.as_str()));
                prop_assert_eq!(labels.get("UUID"), Some(uuid.as_str()));
                let name = name.trim();
                prop_assert_eq!(labels.get("modelName"), (!name.is_empty()).then_some(name));
                prop_assert_eq!(labels.get("Hostname"), Some("h"));
            }
        }
    }

    #[test]
    fn any_text_parses_without_panic_into_sound_points(text in "(?s).{0,400}", lines in proptest::collection::vec("[0-9, .A-Za-z\\[\\]/:-]{0,120}", 0..6)) {
        for input in [text, lines.join("\n")] {
            let parsed = parse_query_output(&input, "h");
            let line_count = input.lines().count();
            prop_assert!(parsed.points.len() + parsed.unsupported.len() <= line_count * VALUE_FIELDS.len());
            for (metric, labels, value) in &parsed.points {
                prop_assert!(value.is_finite());
                prop_assert!(VALUE_FIELDS.iter().any(|(_, m)| m == metric));
                prop_assert!(labels.get("gpu").is_some_and(|g| g.parse::<u32>().is_ok()));
                prop_assert!(labels.get("UUID").is_some_and(|u| !u.is_empty()));
            }
        }
    }

    #[test]
    fn a_garbage_line_does_not_change_the_others(garbage in "[^\n]{0,200}") {
        let csv = fixture_csv();
        let clean = parse_query_output(&csv, "h");
        let mut lines: Vec<&str> = csv.lines().collect();
        lines.insert(1, &garbage);
        let mixed = parse_query_output(&lines.join("\n"), "h");
        for point in &clean.points {
            prop_assert!(mixed.points.contains(point), "{:?} lost", point);
        }
    }
}

#[test]
fn query_argument_lists_every_field_once() {
    let arg = query_argument();
    let fields: Vec<&str> = arg
        .strip_prefix("--query-gpu=")
        .expect("prefix")
        .split(',')
        .collect();
    assert_eq!(fields.len(), 4 + VALUE_FIELDS.len());
    assert_eq!(fields[..4], ["index", "uuid", "name", "pci.bus_id"]);
    let script = std::fs::read_to_string(fixture_dir().join("nvidia-smi")).expect("script");
    assert!(
        script.contains(&format!("expected=\"{arg}\"")),
        "the fixture script checks the arguments Vigie passes"
    );
}

#[test]
fn resolves_on_path_or_as_given() {
    let fixtures = fixture_dir();
    let path_var = std::env::join_paths(["/nonexistent".into(), fixtures.clone()]).expect("PATH");
    assert_eq!(
        resolve("nvidia-smi", Some(&path_var)),
        Some(fixtures.join("nvidia-smi"))
    );
    assert_eq!(resolve("nvidia-smi", None), None);
    assert_eq!(resolve("nvidia-smi", Some("/nonexistent".as_ref())), None);
    assert_eq!(resolve("", Some(&path_var)), None);
    // Not executable.
    assert_eq!(resolve("query-gpu.csv", Some(&path_var)), None);
    let absolute = fixtures.join("nvidia-smi");
    assert_eq!(
        resolve(absolute.to_str().expect("utf-8"), None),
        Some(absolute.clone())
    );
    assert!(NvidiaSmi::new("/nonexistent/nvidia-smi", Duration::from_secs(5), "h").is_none());
    assert!(NvidiaSmi::new("", Duration::from_secs(5), "h").is_none());
}

#[tokio::test]
async fn collects_from_the_fixture_executable() {
    let mut smi = runner(&fixture_dir().join("nvidia-smi"), Duration::from_secs(20));
    let before = GPU_UNSUPPORTED.with_label_values(&["fan.speed"]).get();
    let points = smi.collect().await;
    assert_eq!(points.len(), 23, "{points:?}");
    assert_eq!(value(&points, "DCGM_FI_DEV_POWER_USAGE", "1"), Some(311.45));
    assert!(GPU_UNSUPPORTED.with_label_values(&["fan.speed"]).get() > before);
    // Twice: nothing is left over from the first run.
    assert_eq!(smi.collect().await.len(), 23);
}

#[tokio::test]
async fn failing_and_garbage_runs_are_counted() {
    let (_dir, failing) = script(
        "echo \"NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\"\nexit 9",
    );
    let before = errors("exit_status");
    assert!(
        runner(&failing, Duration::from_secs(20))
            .collect()
            .await
            .is_empty()
    );
    assert!(errors("exit_status") > before);

    let (_dir, garbage) = script(
        "echo 'this is not csv'\necho '0, GPU-x, n, b, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, oops'",
    );
    let before = errors("garbage");
    let points = runner(&garbage, Duration::from_secs(20)).collect().await;
    assert_eq!(points.len(), 12, "the sound values of the sound line");
    assert!(errors("garbage") >= before + 2);

    // Removed after start: the run cannot spawn.
    let (dir, gone) = script("exit 0");
    let mut smi = runner(&gone, Duration::from_secs(20));
    drop(dir);
    let before = errors("spawn");
    assert!(smi.collect().await.is_empty());
    assert!(errors("spawn") > before);
}

#[tokio::test]
async fn a_hanging_run_is_killed_at_its_timeout() {
    let (_dir, hanging) = script("exec sleep 600");
    let mut smi = runner(&hanging, Duration::from_millis(300));
    let before = errors("timeout");
    assert!(smi.collect().await.is_empty());
    assert!(errors("timeout") > before);
    let mut stuck = smi
        .stuck
        .take()
        .expect("the killed run is kept until it exits");
    let status = stuck.wait().await.expect("wait");
    assert!(!status.success(), "killed, not finished: {status}");
}
