//! Log miner state end to end: the real `vigie` binary tails a file, mines
//! templates and counts lines, is stopped (SIGTERM) and restarted on the same
//! data directory; the template ids stay the same, no template is "new"
//! again, and `vigie_log_lines_total` continues from where it stopped
//! instead of starting again from 1.

mod common;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use common::{GAUGE_RULES, Vigie, wait_for};

fn append(path: &std::path::Path, lines: &[String]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open log");
    for l in lines {
        writeln!(f, "{l}").expect("write log");
    }
}

fn logins(from: usize, to: usize) -> Vec<String> {
    (from..to)
        .map(|i| {
            format!(
                "INFO user {} logged in from 10.0.0.{}",
                100 + i * 37,
                i % 250
            )
        })
        .collect()
}

/// Distinct template ids of the login lines.
async fn login_ids(v: &Vigie) -> Vec<String> {
    let rows = v
        .sql("SELECT DISTINCT CAST(template_id AS VARCHAR) FROM logs WHERE body LIKE '%logged in%'")
        .await["rows"]
        .clone();
    rows.as_array()
        .expect("rows")
        .iter()
        .map(|r| r[0].as_str().expect("id").to_string())
        .collect()
}

/// The largest `vigie_log_lines_total` of template `id` at level info.
async fn lines_total(v: &Vigie, id: &str) -> Option<f64> {
    v.sql(&format!(
        "SELECT max(value) FROM samples WHERE metric = 'vigie_log_lines_total' \
         AND labels['template_id'] = '{id}' AND labels['level'] = 'info'"
    ))
    .await["rows"][0][0]
        .as_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_ids_and_line_counts_continue_across_a_restart() {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let log = dir.path().join("app.log");
    append(&log, &[]);
    let config = format!(
        "[[logs]]\npath = \"{}\"\npoll_interval = \"100ms\"\n",
        log.display()
    );
    let mut vigie = Vigie::start_in(dir.clone(), &config, GAUGE_RULES, &[]).await;
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

    append(&log, &logins(0, 10));
    wait_for("the logins stored", Duration::from_secs(60), || async {
        let n = vigie
            .count("SELECT count(*) FROM logs WHERE body LIKE '%logged in%'")
            .await;
        (n == 10).then_some(())
    })
    .await;
    let before = login_ids(&vigie).await;
    assert_eq!(before.len(), 1, "one template for the logins: {before:?}");
    let id = before[0].clone();
    wait_for("the count reaches 10", Duration::from_secs(30), || async {
        (lines_total(&vigie, &id).await == Some(10.0)).then_some(())
    })
    .await;
    let metrics = vigie.metrics().await;
    assert!(
        metrics.contains("vigie_log_templates "),
        "templates gauge exported:\n{metrics}"
    );

    let status = vigie.stop();
    assert!(status.success(), "clean exit: {status}\n{}", vigie.log());
    assert!(
        dir.path().join("vigie-data/state/logminer.cbor").is_file(),
        "the miner is checkpointed in the data directory"
    );

    let vigie = Vigie::start_in(dir.clone(), &config, GAUGE_RULES, &[]).await;
    append(&log, &logins(10, 15));
    wait_for("the new logins stored", Duration::from_secs(60), || async {
        let n = vigie
            .count("SELECT count(*) FROM logs WHERE body LIKE '%logged in%'")
            .await;
        (n == 15).then_some(())
    })
    .await;
    assert_eq!(
        login_ids(&vigie).await,
        vec![id.clone()],
        "the same template id after the restart\n{}",
        vigie.log()
    );
    wait_for(
        "the count continues to 15",
        Duration::from_secs(30),
        || async { (lines_total(&vigie, &id).await == Some(15.0)).then_some(()) },
    )
    .await;
    // After the restart every sample of the counter is above the 10 reached
    // before it: no reset.
    let after_restart_min = vigie
        .sql(&format!(
            "SELECT min(value) FROM samples WHERE metric = 'vigie_log_lines_total' \
             AND labels['template_id'] = '{id}' AND value > 0 AND ts > \
             (SELECT max(ts) FROM logs WHERE body LIKE '%logged in from 10.0.0.9')"
        ))
        .await["rows"][0][0]
        .as_f64();
    assert!(
        after_restart_min.is_some_and(|v| v > 10.0),
        "counter reset after the restart: min {after_restart_min:?}\n{}",
        vigie.log()
    );
    assert_eq!(
        vigie
            .count(&format!(
                "SELECT count(*) FROM samples WHERE metric = 'vigie_log_new_template' \
                 AND labels['template_id'] = '{id}'"
            ))
            .await,
        1,
        "the login template is new once, not again after the restart"
    );
}
