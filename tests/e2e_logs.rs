//! Logs end to end: the real `vigie` binary tails a file (`[[logs]]`),
//! publishes the lines on `vigie.logs`, mines their templates, stores them
//! in table `logs` and counts them as `vigie_log_lines_total`.

mod common;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use common::{GAUGE_RULES, Vigie, wait_for};

fn append(path: &std::path::Path, lines: &[String]) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open log");
    for l in lines {
        writeln!(f, "{l}").expect("write log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tailed_lines_are_templated_stored_and_counted() {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let log = dir.path().join("app.log");
    std::fs::write(&log, "old line written before start\n").expect("log file");
    let config = format!(
        "[[logs]]\npath = \"{}\"\npoll_interval = \"200ms\"\nlabels = {{ app = \"demo\" }}\n",
        log.display()
    );
    let vigie = Vigie::start_in(dir, &config, GAUGE_RULES, &[]).await;

    // The tailer starts at the end of the file: probe until it follows.
    wait_for(
        "the tailer to follow app.log",
        Duration::from_secs(60),
        || {
            append(&log, &["probe the tailer".to_string()]);
            async {
                let n = vigie.count("SELECT count(*) FROM logs").await;
                (n > 0).then_some(())
            }
        },
    )
    .await;
    assert_eq!(
        vigie
            .count("SELECT count(*) FROM logs WHERE body LIKE 'old line%'")
            .await,
        0,
        "lines written before start are not replayed"
    );

    let logins: Vec<String> = (0..6)
        .map(|i| format!("INFO user {} logged in from 10.0.0.{}", 100 + i * 37, i))
        .collect();
    append(&log, &logins);
    append(&log, &["ERROR disk full on /dev/sda1".to_string()]);
    let appended = logins.len() as i64 + 1;
    let mine = "labels['app'] = 'demo' AND body NOT LIKE 'probe%'";
    wait_for(
        "all appended lines stored",
        Duration::from_secs(60),
        || async {
            let n = vigie
                .count(&format!("SELECT count(*) FROM logs WHERE {mine}"))
                .await;
            (n == appended).then_some(())
        },
    )
    .await;

    // Same template for every login line, another for the disk line.
    assert_eq!(
        vigie
            .count("SELECT count(DISTINCT template_id) FROM logs WHERE body LIKE '%logged in%'")
            .await,
        1
    );
    assert_eq!(
        vigie
            .count(&format!(
                "SELECT count(DISTINCT template_id) FROM logs WHERE {mine}"
            ))
            .await,
        2
    );
    assert_eq!(
        vigie
            .count("SELECT count(*) FROM logs WHERE severity = 'error'")
            .await,
        1
    );

    // The counter of the login template reaches the number of logins.
    let counter = "SELECT max(s.value) FROM samples s JOIN \
         (SELECT DISTINCT CAST(template_id AS VARCHAR) AS id FROM logs WHERE body LIKE '%logged in%') t \
         ON s.labels['template_id'] = t.id \
         WHERE s.metric = 'vigie_log_lines_total' AND s.labels['level'] = 'info'";
    wait_for(
        "vigie_log_lines_total of the logins",
        Duration::from_secs(30),
        || async {
            let v = vigie.sql(counter).await["rows"][0][0].as_f64();
            (v == Some(logins.len() as f64)).then_some(())
        },
    )
    .await;

    // A template first seen after start is an event.
    append(&log, &["WARN connection reset by peer".to_string()]);
    let event = "SELECT count(*) FROM samples s JOIN \
         (SELECT DISTINCT CAST(template_id AS VARCHAR) AS id FROM logs WHERE body LIKE '%connection reset%') t \
         ON s.labels['template_id'] = t.id \
         WHERE s.metric = 'vigie_log_new_template' AND s.value = 1";
    wait_for(
        "vigie_log_new_template for the new line",
        Duration::from_secs(30),
        || async { (vigie.count(event).await == 1).then_some(()) },
    )
    .await;
}
