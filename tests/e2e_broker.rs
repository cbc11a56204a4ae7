//! Against a real Kafka-protocol broker process (tansu, SQLite engine) on
//! 127.0.0.1: Vigie creates its topics through the admin API, a collector
//! process and an analyzer process share the bus, the broker is killed and
//! restarted mid-stream, and every scraped sample is stored exactly once.

mod common;

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Target, Vigie, assert_stored_exactly_once, free_port, wait_for};

/// The broker binary: `$VIGIE_TANSU`, else `tansu` on PATH or in ~/.cargo/bin.
fn tansu() -> PathBuf {
    if let Some(p) = std::env::var_os("VIGIE_TANSU") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let candidates = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("tansu"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .chain([home.join(".cargo/bin/tansu")]);
    for c in candidates {
        if c.is_file() {
            return c;
        }
    }
    panic!(
        "the tansu broker is missing: `cargo install tansu --locked --features dynostore,libsql` \
         (scripts/test does it)"
    );
}

struct Broker {
    child: Child,
    port: u16,
    db: PathBuf,
}

impl Broker {
    fn start(port: u16, db: PathBuf) -> Broker {
        let url = format!("tcp://127.0.0.1:{port}");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(db.with_extension("log"))
            .expect("broker log");
        let child = Command::new(tansu())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .arg("--storage-engine")
            // tansu resolves a sqlite:// path against its working directory.
            .arg(format!(
                "sqlite://{}",
                db.file_name().expect("db file").to_string_lossy()
            ))
            .current_dir(db.parent().expect("db dir"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start tansu");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {port}: {}",
                std::fs::read_to_string(db.with_extension("log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Broker { child, port, db }
    }

    /// SIGKILL, as a crash would.
    fn crash(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn restart(&mut self) {
        self.crash();
        *self = Broker::start(self.port, self.db.clone());
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.crash();
    }
}

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
