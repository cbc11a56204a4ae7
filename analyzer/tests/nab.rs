//! NAB regression floor: runs `vigie eval nab`'s scorer on the shared NAB
//! subset (`../shared/data/nab`, or `$VIGIE_SHARED_DATA/nab`) and fails if
//! a profile's score drops more than one point below the measured value.

use std::path::PathBuf;

use vigie_analyzer::eval::nab::{NabOptions, run};

/// Measured on the 34-file subset with `EnsembleConfig::nab()` (multi-scale
/// scoring, re-arming, EWMA α 0.015, CUSUM h 13, model scores while the
/// likelihood learns): standard 76.73, reward_low_FP 69.53,
/// reward_low_FN 81.03.
const FLOORS: [f64; 3] = [75.7, 68.5, 80.0];

fn data_dir() -> PathBuf {
    match std::env::var_os("VIGIE_SHARED_DATA") {
        Some(dir) => PathBuf::from(dir).join("nab"),
        None => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/data/nab"
        )),
    }
}

#[test]
fn nab_scores_stay_above_the_measured_floor() {
    let data = data_dir();
    assert!(
        data.join("combined_windows.json").is_file(),
        "NAB data not found at {} (set VIGIE_SHARED_DATA)",
        data.display()
    );
    let out = tempfile::tempdir().expect("tempdir");
    let report = run(&NabOptions {
        data,
        out: Some(out.path().to_path_buf()),
    })
    .expect("NAB evaluation runs");
    println!("{report} thresholds {:?}", report.thresholds);
    assert_eq!(report.files, 34);
    let scores = [report.standard, report.reward_low_fp, report.reward_low_fn];
    for ((name, score), floor) in ["standard", "reward_low_FP", "reward_low_FN"]
        .iter()
        .zip(scores)
        .zip(FLOORS)
    {
        assert!(score > floor, "{name} {score:.2} fell below {floor}");
    }
    let sample = out
        .path()
        .join("vigie/realTweets/vigie_Twitter_volume_AAPL.csv");
    let text = std::fs::read_to_string(&sample).expect("results file written");
    assert!(text.starts_with("timestamp,value,anomaly_score,label\n"));
    assert!(
        text.lines().skip(1).any(|l| l.ends_with(",1")),
        "no window rows labelled"
    );
}
