//! Vigie's storage fails for a while (issue #3, item 7): the analyzer's
//! `<data_dir>/samples` directory is moved away and a regular file put in
//! its place, so every Parquet flush really fails (the tests run as root,
//! so taking permissions away would not stop the writes). Flushes fail for
//! longer than several flush intervals, the head fills up to
//! `max_head_rows` and consumption pauses, then the directory comes back.
//!
//! - Over a real Kafka-protocol broker (tansu), with a collector process
//!   and an analyzer process: the broker holds the backlog, nothing is
//!   dropped, and after the fault and a restart of the analyzer every
//!   scraped sample is stored exactly once.
//! - Embedded (memory bus): the bounded channel fills, the collector gives
//!   up on whole scrapes after `bus.publish_timeout` and counts them; every
//!   other scraped sample is stored exactly once.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::broker::Broker;
use common::{
    Target, Vigie, assert_stored_exactly_once, assert_stored_exactly_once_except, free_port,
    metric_value, wait_for,
};

/// Flushes that failed, on the analyzer's /metrics.
const FLUSH_ERRORS: &str = "vigie_analyzer_errors_total{reason=\"flush\",stage=\"storage\"}";
/// Rows in the analyzer's head.
const HEAD_ROWS: &str = "vigie_storage_head_rows ";
/// Scraped samples the collector gave up on.
const DROPPED: &str = "vigie_ingest_dropped_samples_total{reason=\"timeout\",source=\"scrape\"}";
/// Samples of one scrape of the target: `app_gauge`, 3 extra metrics,
/// and `up`, `scrape_duration_seconds`, `scrape_samples_scraped`,
/// `scrape_samples_post_metric_relabeling`, `scrape_series_added`.
const PER_SCRAPE: i64 = 4 + 5;
/// `analyzer.max_head_rows` in these tests: five scrapes.
const MAX_HEAD: f64 = 5.0 * PER_SCRAPE as f64;
/// The head may pass `max_head_rows` by one message: a scrape's samples
/// and, once the detectors are warm, their scores.
const HEAD_BOUND: f64 = MAX_HEAD + 2.0 * PER_SCRAPE as f64;

/// The samples directory of a data dir replaced by a regular file.
struct Fault {
    samples: PathBuf,
    away: PathBuf,
}

impl Fault {
    fn start(data_dir: &Path) -> Fault {
        let samples = data_dir.join("samples");
        let away = data_dir.join("samples.away");
        std::fs::rename(&samples, &away).expect("move the samples directory away");
        std::fs::write(&samples, b"not a directory\n").expect("a file in its place");
        Fault { samples, away }
    }

    fn end(self) {
        std::fs::remove_file(&self.samples).expect("remove the file");
        std::fs::rename(&self.away, &self.samples).expect("put the directory back");
    }
}

/// A metric of `vigie`'s /metrics, 0 when absent.
async fn metric(vigie: &Vigie, name: &str) -> f64 {
    metric_value(&vigie.addr.to_string(), name)
        .await
        .unwrap_or(0.0)
}

/// Waits for Parquet files and a few samples: storage works before the fault.
async fn wait_first_flush(analyzer: &Vigie) {
    let dir = analyzer.dir.path().join("vigie-data/samples");
    wait_for("a first flush", Duration::from_secs(120), || async {
        let files = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
        let n = analyzer
            .count("SELECT count(*) FROM samples WHERE metric = 'app_gauge' AND NOT isnan(value)")
            .await;
        (files >= 1 && n >= 3).then_some(())
    })
    .await;
}

/// Breaks the analyzer's storage until flushes failed at least three
/// times and the head has been full (consumption paused) for five more
/// scrapes; checks the head stayed bounded; then repairs storage.
async fn fail_storage_for_a_while(analyzer: &Vigie, target: &Target) {
    let errors_before = metric(analyzer, FLUSH_ERRORS).await;
    let (started, scrapes_before) = (std::time::Instant::now(), target.scrapes());
    let fault = Fault::start(&analyzer.dir.path().join("vigie-data"));
    wait_for(
        "failed flushes counted",
        Duration::from_secs(120),
        || async { (metric(analyzer, FLUSH_ERRORS).await >= errors_before + 3.0).then_some(()) },
    )
    .await;
    wait_for("the head full", Duration::from_secs(120), || async {
        (metric(analyzer, HEAD_ROWS).await >= MAX_HEAD).then_some(())
    })
    .await;
    let full_at = target.scrapes();
    wait_for(
        "five scrapes while the head is full",
        Duration::from_secs(120),
        || async {
            let head = metric(analyzer, HEAD_ROWS).await;
            assert!(head <= HEAD_BOUND, "the head grew to {head} rows");
            (target.scrapes() >= full_at + 5).then_some(())
        },
    )
    .await;
    let head = metric(analyzer, HEAD_ROWS).await;
    assert!(head <= HEAD_BOUND, "the head grew to {head} rows");
    let errors = metric(analyzer, FLUSH_ERRORS).await - errors_before;
    assert!(errors >= 3.0, "flushes kept failing");
    fault.end();
    eprintln!(
        "storage failed for {:.1?}: {errors} failed flushes, {} scrapes served, head {head} rows \
         (max_head_rows {MAX_HEAD})",
        started.elapsed(),
        target.scrapes() - scrapes_before
    );
}

/// Waits until the analyzer has said it stopped consuming with a full
/// head, then that it resumed.
async fn wait_paused_then_resumed(vigie: &Vigie) {
    wait_for(
        "the log to say consumption paused, then resumed",
        Duration::from_secs(120),
        || async {
            let log = vigie.log();
            let paused = log.find("consumption paused until a flush succeeds")?;
            let resumed = log.find("storage writable again: consumption resumes")?;
            (paused < resumed).then_some(())
        },
    )
    .await;
}

fn assert_no_panic(vigie: &Vigie) {
    let log = vigie.log();
    assert!(!log.contains("panicked"), "a panic:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_kafka_storage_failing_for_a_while_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(free_port(), dir.path().join("tansu.db"));
    let target = Target::start(3).await;
    let config = format!(
        "[bus]\nkind = \"kafka\"\nbrokers = \"127.0.0.1:{}\"\npartitions = 2\n\
         [analyzer]\nflush_interval = \"1s\"\nmax_head_rows = {MAX_HEAD}\n\
         [[scrape]]\njob = \"app\"\ntargets = [\"{}\"]\ninterval = \"1s\"\ntimeout = \"1s\"\n",
        broker.port, target.addr
    );
    let new_dir = || Arc::new(tempfile::tempdir().expect("tempdir"));
    let analyzer_dir = new_dir();
    let mut analyzer = Vigie::start_in(
        analyzer_dir.clone(),
        &config,
        "groups: []\n",
        &["--roles", "analyze,alert"],
    )
    .await;
    let collector =
        Vigie::start_in(new_dir(), &config, "groups: []\n", &["--roles", "collect"]).await;
    wait_first_flush(&analyzer).await;

    fail_storage_for_a_while(&analyzer, &target).await;
    // Kafka held the backlog: the collector dropped nothing.
    assert_eq!(metric(&collector, DROPPED).await, 0.0);
    wait_paused_then_resumed(&analyzer).await;
    assert_no_panic(&analyzer);

    // A restart on the same data: the committed offsets, the Parquet
    // files and the watermarks agree.
    analyzer.stop();
    assert_no_panic(&analyzer);
    let analyzer = Vigie::start_in(
        analyzer_dir,
        &config,
        "groups: []\n",
        &["--roles", "analyze,alert"],
    )
    .await;
    assert_stored_exactly_once(&analyzer, &target, 4).await; // app_gauge + 3 extra
    assert_eq!(metric(&collector, DROPPED).await, 0.0);
    assert_no_panic(&analyzer);
    assert_no_panic(&collector);
    drop(collector);
    drop(broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_storage_failing_drops_whole_counted_scrapes_and_stores_the_rest_once() {
    let target = Target::start(3).await;
    // One shard: a scrape is one message, dropped or published whole.
    let config = format!(
        "[bus]\nchannel_capacity = 3\npartitions = 1\npublish_timeout = \"2s\"\n\
         [analyzer]\nflush_interval = \"1s\"\nmax_head_rows = {MAX_HEAD}\n\
         [[scrape]]\njob = \"app\"\ntargets = [\"{}\"]\ninterval = \"1s\"\ntimeout = \"1s\"\n",
        target.addr
    );
    let vigie = Vigie::start(&config, "groups: []\n").await;
    wait_first_flush(&vigie).await;

    fail_storage_for_a_while(&vigie, &target).await;
    // With the analyzer paused, the channel filled and the collector gave
    // up on scrapes after publish_timeout.
    assert!(metric(&vigie, DROPPED).await > 0.0, "drops counted");
    // Consumption resumes: three more scrapes stored.
    let stored = vigie
        .count("SELECT count(*) FROM samples WHERE metric = 'app_gauge' AND NOT isnan(value)")
        .await;
    wait_for("consumption resumed", Duration::from_secs(120), || async {
        let n = vigie
            .count("SELECT count(*) FROM samples WHERE metric = 'app_gauge' AND NOT isnan(value)")
            .await;
        (n >= stored + 3).then_some(())
    })
    .await;
    wait_paused_then_resumed(&vigie).await;
    // Stop the target; once the emits in flight have ended (within
    // publish_timeout), what the collector dropped is final.
    *target.max_scrapes.lock().expect("lock") = Some(target.scrapes());
    tokio::time::sleep(Duration::from_secs(4)).await;
    let dropped = metric(&vigie, DROPPED).await as i64;
    assert_eq!(dropped % PER_SCRAPE, 0, "whole scrapes are dropped");
    eprintln!(
        "embedded: {} of {} scrapes dropped and counted",
        dropped / PER_SCRAPE,
        target.scrapes()
    );
    assert_stored_exactly_once_except(&vigie, &target, 4, dropped / PER_SCRAPE).await;
    assert_no_panic(&vigie);
}
