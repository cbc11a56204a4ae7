//! Vigie's collectors: the producer side of the bus.
//!
//! What this crate does:
//!
//! - [`scrape::ScrapeTarget`]: scrapes one Prometheus text-format endpoint
//!   (`[[scrape]]` job × target), adds `job`/`instance` and the job's labels,
//!   and reports `up`, `scrape_duration_seconds`, `scrape_samples_scraped`,
//!   `scrape_samples_post_metric_relabeling` and `scrape_series_added` as
//!   Prometheus does. Malformed exposition is rejected ([`exposition`]), so
//!   a target serving garbage is `up 0`.
//! - [`host::HostCollector`]: a small built-in node_exporter (CPU, memory,
//!   load, network, filesystems) reading procfs, with node_exporter's names.
//! - [`emit::Emitter`]: samples → Arrow batches → `vigie.metrics`, sharded by
//!   series id so a series always keeps the same key.
//! - [`remote_write`]: the Prometheus remote-write 1.0 receiver
//!   (`POST /api/v1/write`, snappy + protobuf).
//! - [`spawn_collectors`]: one task per source, ticking at its interval
//!   until shutdown.
//!
//! What it does not do: service discovery, relabeling rules, TLS/auth,
//! compressed bodies, the protobuf/OpenMetrics formats, native histograms,
//! staleness markers, or any storage — samples are handed to a
//! [`vigie_bus::Publisher`] and forgotten.

pub mod config;
pub mod emit;
pub mod error;
pub mod exposition;
pub mod host;
mod metrics;
pub mod remote_write;
pub mod scrape;
pub mod source;
mod sys;

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use config::{HostConfig, ScrapeConfig};
pub use emit::Emitter;
pub use error::IngestError;
pub use host::HostCollector;
pub use scrape::ScrapeTarget;
pub use source::Source;

/// Starts one task per source: every target of every scrape job, and the
/// host collector if enabled. Each task collects immediately, then at its
/// interval (late ticks are delayed, not bunched), emits through `emitter`,
/// and stops when `shutdown` is cancelled (an in-flight collection is
/// abandoned). Must be called inside a Tokio runtime.
pub fn spawn_collectors(
    scrape: &[ScrapeConfig],
    host: &HostConfig,
    emitter: Arc<Emitter>,
    shutdown: CancellationToken,
) -> Vec<JoinHandle<()>> {
    let mut sources: Vec<Box<dyn Source>> = Vec::new();
    if scrape.iter().any(|j| !j.targets.is_empty()) {
        match reqwest::Client::builder()
            .user_agent(concat!("vigie-ingest/", env!("CARGO_PKG_VERSION")))
            .build()
        {
            Ok(client) => {
                for job in scrape {
                    for target in &job.targets {
                        sources.push(Box::new(ScrapeTarget::new(job, target, client.clone())));
                    }
                }
            }
            Err(error) => {
                tracing::error!(%error, "cannot build the HTTP client; no scrape job will run");
            }
        }
    }
    if host.enabled {
        sources.push(Box::new(HostCollector::new(host)));
    }
    sources
        .into_iter()
        .map(|source| {
            let span = tracing::info_span!("source", name = %source.name());
            tokio::spawn(run_source(source, emitter.clone(), shutdown.clone()).instrument(span))
        })
        .collect()
}

/// The loop of one source.
pub async fn run_source(
    mut source: Box<dyn Source>,
    emitter: Arc<Emitter>,
    shutdown: CancellationToken,
) {
    // tokio panics on a zero period; the configuration check rejects it.
    let mut ticker = tokio::time::interval(source.interval().max(Duration::from_millis(1)));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let samples = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            samples = source.collect() => samples,
        };
        let count = samples.len();
        match emitter.emit(samples).await {
            Ok(published) => tracing::debug!(published, "collected"),
            Err(error) => tracing::warn!(count, %error, "emitting samples failed"),
        }
    }
    tracing::debug!("source stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use vigie_bus::Subscriber;
    use vigie_bus::memory::MemoryBus;
    use vigie_model::{Labels, Sample, topics};

    struct Counting(Arc<AtomicUsize>, Duration);

    #[async_trait]
    impl Source for Counting {
        fn name(&self) -> &str {
            "counting"
        }
        fn interval(&self) -> Duration {
            self.1
        }
        async fn collect(&mut self) -> Vec<Sample> {
            let n = self.0.fetch_add(1, Ordering::SeqCst);
            vec![Sample::new("ticks", Labels::new(), n as i64, 1.0)]
        }
    }

    fn start(
        interval: Duration,
    ) -> (
        Arc<AtomicUsize>,
        CancellationToken,
        JoinHandle<()>,
        MemoryBus,
    ) {
        let bus = MemoryBus::new(1024);
        let emitter = Arc::new(Emitter::new(Arc::new(bus.clone()), 1));
        let count = Arc::new(AtomicUsize::new(0));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run_source(
            Box::new(Counting(count.clone(), interval)),
            emitter,
            shutdown.clone(),
        ));
        (count, shutdown, task, bus)
    }

    #[tokio::test]
    async fn first_tick_is_immediate_and_emitted() {
        let (count, shutdown, task, bus) = start(Duration::from_secs(3600));
        let mut sub = bus.subscribe(&[topics::METRICS]);
        tokio::time::timeout(Duration::from_secs(5), sub.recv())
            .await
            .expect("first collection does not wait an interval")
            .expect("recv")
            .expect("message");
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .expect("stops promptly")
            .expect("no panic");
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn ticks_at_interval_until_shutdown() {
        let (count, shutdown, task, _bus) = start(Duration::from_millis(20));
        tokio::time::sleep(Duration::from_millis(300)).await;
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .expect("stops promptly")
            .expect("no panic");
        let n = count.load(Ordering::SeqCst);
        assert!((3..=17).contains(&n), "{n} collections in 300ms at 20ms");
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(
            count.load(Ordering::SeqCst),
            n,
            "no collection after shutdown"
        );
    }

    #[tokio::test]
    async fn spawns_one_task_per_target_and_host() {
        let bus = MemoryBus::new(64);
        let emitter = Arc::new(Emitter::new(Arc::new(bus), 2));
        let job = ScrapeConfig {
            job: "j".into(),
            targets: vec!["127.0.0.1:1".into(), "127.0.0.1:2".into()],
            interval: Duration::from_secs(60),
            timeout: Duration::from_millis(100),
            metrics_path: "/metrics".into(),
            scheme: "http".into(),
            labels: Default::default(),
        };
        let host = HostConfig {
            enabled: false,
            ..HostConfig::default()
        };
        let shutdown = CancellationToken::new();
        let tasks = spawn_collectors(&[job.clone(), job], &host, emitter, shutdown.clone());
        assert_eq!(tasks.len(), 4);
        shutdown.cancel();
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(2), t)
                .await
                .expect("stops")
                .expect("no panic");
        }
    }
}
