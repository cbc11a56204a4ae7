//! Loghub regression floor: runs `vigie eval loghub`'s scorer on the shared
//! Loghub-2k samples (`../shared/data/loghub`, or `$VIGIE_SHARED_DATA/loghub`)
//! with the miner's one default configuration, and fails if the mean grouping
//! accuracy drops below the measured value minus 0.01.

use std::path::PathBuf;

use vigie_analyzer::eval::loghub::{LoghubOptions, run};

/// Measured mean grouping accuracy over the 10 systems (0.991), minus 0.01.
const GA_FLOOR: f64 = 0.981;

fn data_dir() -> PathBuf {
    match std::env::var_os("VIGIE_SHARED_DATA") {
        Some(dir) => PathBuf::from(dir).join("loghub"),
        None => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/data/loghub"
        )),
    }
}

#[test]
fn loghub_grouping_accuracy_stays_above_the_measured_floor() {
    let data = data_dir();
    assert!(
        data.join("HDFS").is_dir(),
        "Loghub data not found at {} (set VIGIE_SHARED_DATA)",
        data.display()
    );
    let out = std::env::var_os("VIGIE_LOGHUB_OUT").map(PathBuf::from);
    let report = run(&LoghubOptions {
        data,
        formats: None,
        out,
    })
    .expect("Loghub evaluation runs");
    println!("{report}");
    assert_eq!(report.systems.len(), 10, "{report}");
    assert!(
        report.systems.iter().all(|s| s.lines == 2000),
        "every sample has 2000 lines"
    );
    assert!(
        report.mean_grouping_accuracy >= GA_FLOOR,
        "mean GA {:.4} fell below {GA_FLOOR}",
        report.mean_grouping_accuracy
    );
}
