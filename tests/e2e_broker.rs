//! Against a real Kafka-protocol broker process (tansu, SQLite engine) on
//! 127.0.0.1: Vigie creates its topics through the admin API, a collector
//! process and an analyzer process share the bus, the broker is killed and
//! restarted mid-stream, and every scraped sample is stored exactly once.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::broker::Broker;
use common::{Target, Vigie, assert_stored_exactly_once, free_port, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_broker_restart_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut broker = Broker::start(free_port(), dir.path().join("tansu.db"));
    let brokers = format!("127.0.0.1:{}", broker.port);
    let target = Target::start(3).await;
    let config = format!(
        "[bus]\nkind = \"kafka\"\nbrokers = \"{brokers}\"\npartitions = 4\n\
         [analyzer]\nflush_interval = \"2s\"\n\
         [[scrape]]\njob = \"app\"\ntargets = [\"{}\"]\ninterval = \"1s\"\ntimeout = \"1s\"\n",
        target.addr
    );
    let new_dir = || Arc::new(tempfile::tempdir().expect("tempdir"));
    // Vigie creates vigie.metrics and friends through the admin API.
    let analyzer = Vigie::start_in(
        new_dir(),
        &config,
        "groups: []\n",
        &["--roles", "analyze,alert"],
    )
    .await;
    let collector =
        Vigie::start_in(new_dir(), &config, "groups: []\n", &["--roles", "collect"]).await;
    wait_for(
        "samples through the broker",
        Duration::from_secs(90),
        || async {
            let n = analyzer
                .count(
                    "SELECT count(*) FROM samples WHERE metric = 'app_gauge' AND NOT isnan(value)",
                )
                .await;
            (n >= 5).then_some(())
        },
    )
    .await;

    let before = analyzer
        .count("SELECT count(*) FROM samples WHERE metric = 'app_gauge' AND NOT isnan(value)")
        .await;
    broker.restart();
    wait_for(
        "samples after the broker restart",
        Duration::from_secs(90),
        || async {
            let n = analyzer
                .count(
                    "SELECT count(*) FROM samples WHERE metric = 'app_gauge' AND NOT isnan(value)",
                )
                .await;
            (n >= before + 5).then_some(())
        },
    )
    .await;
    assert_stored_exactly_once(&analyzer, &target, 4).await; // app_gauge + 3 extra
    drop(collector);
}
