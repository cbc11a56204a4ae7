//! Tail checkpoints end to end: the real `vigie` binary tails a file with
//! multi-line joining, is stopped (SIGTERM) while lines keep coming, and
//! restarts on the same data directory; every line is stored exactly once.

mod common;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use common::{GAUGE_RULES, Vigie, wait_for};

fn append(path: &std::path::Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open log");
    f.write_all(text.as_bytes()).expect("write log");
}

/// Lines `from..to`, every fifth with a continuation line.
fn lines(from: usize, to: usize) -> (String, Vec<String>) {
    let mut text = String::new();
    let mut records = Vec::new();
    for i in from..to {
        let mut record = format!("line {i} INFO event");
        if i % 5 == 0 {
            record.push_str(&format!("\n\tat continuation of {i}"));
        }
        text.push_str(&record);
        text.push('\n');
        records.push(record);
    }
    (text, records)
}

/// Stored records of the test's lines.
async fn stored(v: &Vigie) -> i64 {
    v.count("SELECT count(*) FROM logs WHERE body LIKE 'line %'")
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_loses_and_repeats_no_line() {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let log = dir.path().join("app.log");
    append(&log, "");
    let config = format!(
        "[[logs]]\npath = \"{}\"\npoll_interval = \"100ms\"\nmultiline = {{ start = \"^(line|probe) \", timeout = \"300ms\" }}\n",
        log.display()
    );
    let mut vigie = Vigie::start_in(dir.clone(), &config, GAUGE_RULES, &[]).await;
    // The first run starts at the end of the file: probe until it follows.
    wait_for(
        "the tailer to follow app.log",
        Duration::from_secs(60),
        || {
            append(&log, "probe the tailer\n");
            async {
                let n = vigie.count("SELECT count(*) FROM logs").await;
                (n > 0).then_some(())
            }
        },
    )
    .await;

    let mut expected = Vec::new();
    let (text, records) = lines(0, 50);
    append(&log, &text);
    expected.extend(records);
    wait_for(
        "the first lines stored",
        Duration::from_secs(60),
        || async { (stored(&vigie).await == 50).then_some(()) },
    )
    .await;

    // Lines written just before the stop, a record left open (no line
    // after its continuation), and lines written while Vigie is down.
    let (text, records) = lines(50, 61);
    append(&log, &text);
    expected.extend(records);
    let status = vigie.stop();
    assert!(status.success(), "clean exit: {status}\n{}", vigie.log());
    let (text, records) = lines(61, 100);
    append(&log, &text);
    expected.extend(records);
    append(&log, "line 100 INFO half wri");

    let vigie = Vigie::start_in(dir.clone(), &config, GAUGE_RULES, &[]).await;
    append(&log, "tten\n");
    expected.push("line 100 INFO half written".into());
    let (text, records) = lines(101, 120);
    append(&log, &text);
    expected.extend(records);

    let n = expected.len() as i64;
    wait_for("every line stored", Duration::from_secs(60), || async {
        (stored(&vigie).await >= n).then_some(())
    })
    .await;
    // Give a repeated line time to show up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rows = vigie
        .sql("SELECT body FROM logs WHERE body LIKE 'line %'")
        .await["rows"]
        .clone();
    let mut got: Vec<String> = rows
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r[0].as_str().expect("body").to_string())
        .collect();
    got.sort();
    expected.sort();
    assert_eq!(got, expected, "every line exactly once\n{}", vigie.log());
    assert!(
        dir.path().join("vigie-data/state/tail.json").exists(),
        "the position is saved in the data directory"
    );
}
