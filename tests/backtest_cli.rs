//! `vigie backtest FILE.csv`: replays a series through the detector and
//! forecaster, summarises the alerts and the band, and draws an SVG.

use std::process::Command;

fn vigie(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vigie"))
        .args(args)
        .output()
        .expect("run vigie")
}

#[test]
fn replays_a_csv_and_draws_value_band_score_and_alerts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("series.csv");
    // Five-minute points: a noisy level at 10 that jumps to 60 at row 1500.
    let mut text = String::from("timestamp,value\n");
    for i in 0..2000 {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000 + i * 300);
        // NAB's layout: `2023-11-14 22:13:20`.
        let t = humantime::format_rfc3339_seconds(at)
            .to_string()
            .replace('T', " ")
            .replace('Z', "");
        let noise = ((i * 7919) % 17) as f64 / 17.0;
        let v = if i < 1500 { 10.0 } else { 60.0 } + noise;
        text.push_str(&format!("{t},{v}\n"));
    }
    std::fs::write(&csv, text).expect("csv");
    let svg = dir.path().join("plot.svg");
    let (csv_s, svg_s) = (csv.to_str().expect("path"), svg.to_str().expect("path"));

    let out = vigie(&["backtest", csv_s, "--out", svg_s, "--horizon", "1h"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("2000 points"), "{stdout}");
    // The jump's time (row 1500) is among the alerts.
    let jump = "2023-11-20T03:13:20Z";
    assert!(stdout.contains(jump), "{stdout}");
    assert!(
        stdout.contains("forecast band (1h, 10-90%): contains"),
        "{stdout}"
    );
    let plot = std::fs::read_to_string(&svg).expect("svg written");
    assert!(plot.starts_with("<svg"), "not SVG");
    assert!(plot.contains("value and 1h forecast band"), "title");
    assert!(plot.contains("<polygon"), "the band is drawn");
    assert!(plot.contains("<circle"), "alerts are marked");
    assert!(plot.contains("anomaly score"), "score panel");

    // JSON: every point with its score and band.
    let out = vigie(&["backtest", csv_s, "--out", svg_s, "--json"]);
    let replay: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(replay["points"].as_array().map(Vec::len), Some(2000));
    assert!(replay["alerts"].as_u64().is_some_and(|n| n >= 1));
    let jump_point = &replay["points"][1500];
    assert_eq!(jump_point["alert"], true, "{jump_point}");
    assert!(jump_point["score"].as_f64().is_some_and(|s| s > 0.9999));

    // Neither a file nor --series: a usage error.
    let out = vigie(&["backtest", "--out", svg_s]);
    assert!(!out.status.success());
    let out = vigie(&["backtest", csv_s, "--horizon", "2h", "--out", svg_s]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("15m, 1h or 4h"));
}
