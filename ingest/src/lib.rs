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
//!   load, pressure, disks, network, netstat, filesystems, uname, time,
//!   hwmon sensors) reading procfs and sysfs, with node_exporter's names;
//!   with an `nvidia-smi` on the machine, NVIDIA GPUs too
//!   ([`host::gpu`]: one `nvidia-smi --query-gpu` run per interval, with a
//!   timeout, under NVIDIA's DCGM exporter names).
//! - [`emit::Emitter`]: samples → Arrow batches → `vigie.metrics`, sharded by
//!   series id so a series always keeps the same key.
//! - [`tail`]: follows `[[logs]]` files (appends, truncation, rename
//!   rotation, multi-line joining) and publishes their lines to
//!   `vigie.logs` ([`Emitter::emit_logs`]), saving positions so a restart
//!   loses and repeats no line.
//! - [`syslog`]: `[[syslog]]` receivers (RFC 5424 and RFC 3164 over UDP
//!   and TCP) publishing records to `vigie.logs` like the tail does.
//! - [`interop`]: `[[interop]]` Kafka topics other tools write metrics to
//!   (InfluxDB line protocol, Telegraf JSON, Vector JSON), decoded into
//!   samples for the same [`Emitter`]; bad messages go to the dead-letter
//!   topic.
//! - [`remote_write`]: the Prometheus remote-write 1.0 receiver
//!   (`POST /api/v1/write`, snappy + protobuf).
//! - [`sd`] and [`relabel`]: static and file_sd targets, `relabel_configs`
//!   and `metric_relabel_configs` with Prometheus' semantics.
//! - [`spawn_collectors_with_targets`]: one manager task per scrape job
//!   that (re)discovers its targets, starts and stops one scrape loop per
//!   target, and keeps the [`targets`] view (`GET /api/v1/targets`) up to
//!   date; plus the host collector.
//! - Staleness: when a series leaves a target's scrape, or the target fails
//!   or goes away, its series get Prometheus' staleness marker
//!   ([`scrape::STALE_NAN_BITS`]).
//!
//! What it does not do: service discovery other than files, TLS/auth,
//! compressed bodies, the protobuf/OpenMetrics formats, native histograms,
//! or any storage — samples are handed to a [`vigie_bus::Publisher`] and
//! forgotten.

pub mod config;
pub mod emit;
pub mod error;
pub mod exposition;
pub mod host;
pub mod interop;
mod metrics;
mod ratelimit;
pub mod relabel;
pub mod remote_write;
pub mod scrape;
pub mod sd;
pub mod source;
mod sys;
pub mod syslog;
pub mod tail;
pub mod targets;
#[cfg(test)]
mod testing;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use config::{HostConfig, ScrapeConfig};
pub use emit::Emitter;
pub use error::IngestError;
pub use host::HostCollector;
pub use interop::{InteropConfig, spawn_interop};
pub use scrape::ScrapeTarget;
pub use source::Source;
pub use syslog::{SyslogConfig, spawn_syslog};
pub use tail::{LogConfig, spawn_tails};
pub use targets::Targets;

/// Like [`spawn_collectors_with_targets`], with a targets view nobody
/// reads.
pub fn spawn_collectors(
    scrape: &[ScrapeConfig],
    host: &HostConfig,
    emitter: Arc<Emitter>,
    shutdown: CancellationToken,
) -> Vec<JoinHandle<()>> {
    spawn_collectors_with_targets(scrape, host, emitter, shutdown, Arc::new(Targets::new()))
}

/// Starts one manager task per scrape job and one task for the host
/// collector if enabled; returns their handles.
///
/// A job's manager discovers its targets (static `targets` plus
/// `file_sd_configs`, re-read every `refresh_interval`), relabels them,
/// runs one scrape loop per distinct target (started and stopped as the
/// set changes; a stopped target's series get staleness markers), and
/// records pools, targets and scrape health in `targets` (serve it with
/// [`targets::router`]). Each loop scrapes immediately, then at its
/// interval (late ticks are delayed, not bunched). On `shutdown` every
/// task stops (an in-flight collection is abandoned) and a manager returns
/// once its loops have. Must be called inside a Tokio runtime.
pub fn spawn_collectors_with_targets(
    scrape: &[ScrapeConfig],
    host: &HostConfig,
    emitter: Arc<Emitter>,
    shutdown: CancellationToken,
    targets: Arc<Targets>,
) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    if !scrape.is_empty() {
        match reqwest::Client::builder()
            .user_agent(concat!("vigie-ingest/", env!("CARGO_PKG_VERSION")))
            .build()
        {
            Ok(client) => {
                for (index, job) in scrape.iter().enumerate() {
                    let span = tracing::info_span!("scrape_job", job = %job.job);
                    tasks.push(tokio::spawn(
                        run_job(
                            index,
                            job.clone(),
                            client.clone(),
                            emitter.clone(),
                            shutdown.clone(),
                            targets.clone(),
                        )
                        .instrument(span),
                    ));
                }
            }
            Err(error) => {
                tracing::error!(%error, "cannot build the HTTP client; no scrape job will run");
            }
        }
    }
    if host.enabled {
        let source: Box<dyn Source> = Box::new(HostCollector::new(host));
        let span = tracing::info_span!("source", name = %source.name());
        tasks.push(tokio::spawn(
            run_source(source, emitter, shutdown).instrument(span),
        ));
    }
    tasks
}

/// A running scrape loop of a job's manager.
struct Running {
    target: targets::ActiveTarget,
    removed: CancellationToken,
    handle: JoinHandle<()>,
}

/// The manager of one scrape job (see [`spawn_collectors_with_targets`]).
async fn run_job(
    index: usize,
    job: ScrapeConfig,
    client: reqwest::Client,
    emitter: Arc<Emitter>,
    shutdown: CancellationToken,
    targets: Arc<Targets>,
) {
    let rules = match relabel::compile(&job.relabel_configs) {
        Ok(r) => r,
        Err((i, error)) => {
            tracing::error!(rule = i, %error, "invalid relabel_configs; the job does not run");
            return;
        }
    };
    let metric_rules = match relabel::compile(&job.metric_relabel_configs) {
        Ok(r) => Arc::new(r),
        Err((i, error)) => {
            tracing::error!(rule = i, %error, "invalid metric_relabel_configs; the job does not run");
            return;
        }
    };
    let refresh = job
        .file_sd_configs
        .iter()
        .map(|c| c.refresh_interval.max(Duration::from_millis(10)))
        .min();
    let mut file_sd = sd::FileSd::new(&job.file_sd_configs);
    // Keyed by URL and final labels: the identity of a target.
    let mut running: BTreeMap<String, Running> = BTreeMap::new();
    let mut stopping: Vec<JoinHandle<()>> = Vec::new();
    loop {
        let groups = file_sd.refresh();
        let mut wanted: BTreeMap<String, sd::ResolvedTarget> = BTreeMap::new();
        let mut dropped = Vec::new();
        for labels in sd::discovered(&job, &groups) {
            match sd::resolve(&job, &rules, labels.clone()) {
                Ok(Some(t)) => {
                    let key = format!("{}\u{0}{:?}", t.url, t.labels);
                    wanted.entry(key).or_insert(t);
                }
                Ok(None) => dropped.push(labels),
                Err(error) => {
                    tracing::warn!(target = ?labels.get(sd::ADDRESS), %error, "dropping target");
                    dropped.push(labels);
                }
            }
        }
        let gone: Vec<String> = running
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        for key in gone {
            if let Some(r) = running.remove(&key) {
                tracing::info!(url = %r.target.url, "target gone; stopping its scrapes");
                r.removed.cancel();
                stopping.push(r.handle);
            }
        }
        for (key, t) in wanted {
            if let Some(r) = running.get_mut(&key) {
                r.target.discovered = t.discovered;
                continue;
            }
            let health = Arc::new(Mutex::new(targets::Health::default()));
            let scraper = ScrapeTarget::from_resolved(
                &job,
                &t,
                metric_rules.clone(),
                client.clone(),
                health.clone(),
            );
            let removed = CancellationToken::new();
            let span = tracing::info_span!("source", name = %scraper.name());
            tracing::info!(url = %t.url, "target discovered; scraping it");
            let handle = tokio::spawn(
                run_target(scraper, emitter.clone(), shutdown.clone(), removed.clone())
                    .instrument(span),
            );
            running.insert(
                key,
                Running {
                    target: targets::ActiveTarget {
                        discovered: t.discovered,
                        labels: t.labels,
                        url: t.url,
                        interval: job.interval,
                        timeout: job.timeout,
                        health,
                    },
                    removed,
                    handle,
                },
            );
        }
        stopping.retain(|h| !h.is_finished());
        targets.set_pool(
            index,
            targets::Pool {
                name: job.job.clone(),
                active: running.values().map(|r| r.target.clone()).collect(),
                dropped,
            },
        );
        match refresh {
            Some(every) => tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(every) => {}
            },
            None => {
                shutdown.cancelled().await;
                break;
            }
        }
    }
    for handle in running.into_values().map(|r| r.handle).chain(stopping) {
        let _ = handle.await;
    }
    tracing::debug!("scrape job stopped");
}

/// The loop of one target: like [`run_source`] (dropped samples count
/// under source `scrape`), and when `removed` is
/// cancelled (the target was not discovered any more), writes staleness
/// markers for its series before returning. On `shutdown` it returns
/// without markers, as Prometheus does.
async fn run_target(
    mut target: ScrapeTarget,
    emitter: Arc<Emitter>,
    shutdown: CancellationToken,
    removed: CancellationToken,
) {
    let mut ticker = tokio::time::interval(target.interval().max(Duration::from_millis(1)));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            () = removed.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let samples = tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            () = removed.cancelled() => break,
            samples = target.collect() => samples,
        };
        let count = samples.len();
        match emitter.emit_or_drop("scrape", samples).await {
            Ok(published) => tracing::debug!(published, "collected"),
            Err(error) => tracing::warn!(count, %error, "samples dropped (counted)"),
        }
    }
    let markers = target.end_of_run_markers(source::now_ms());
    let count = markers.len();
    match emitter.emit_or_drop("scrape", markers).await {
        Ok(_) => tracing::debug!(count, "wrote staleness markers"),
        Err(error) => tracing::warn!(count, %error, "emitting staleness markers failed"),
    }
}

/// The loop of one source. Samples the bus does not accept within the
/// emitter's publish timeout are dropped and counted under the source's
/// name; the next collection waits for the next tick (late ticks are
/// delayed, not bunched), so a slow bus slows the loop down rather than
/// piling collections up.
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
        match emitter.emit_or_drop(source.name(), samples).await {
            Ok(published) => tracing::debug!(published, "collected"),
            Err(error) => tracing::warn!(count, %error, "samples dropped (counted)"),
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

    /// The analyzer stopped reading: the loop goes on at its pace, every
    /// collection is either published or counted as dropped, and it stops
    /// on shutdown.
    #[tokio::test]
    async fn a_stuck_bus_slows_the_loop_and_every_drop_is_counted() {
        let bus = MemoryBus::new(1);
        let _never_read = bus.subscribe(&[topics::METRICS]);
        let emitter = Arc::new(
            Emitter::new(Arc::new(bus.clone()), 1).with_publish_timeout(Duration::from_millis(30)),
        );
        let dropped = || {
            metrics::DROPPED_SAMPLES
                .with_label_values(&["counting", "timeout"])
                .get()
        };
        let before = dropped();
        let count = Arc::new(AtomicUsize::new(0));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run_source(
            Box::new(Counting(count.clone(), Duration::from_millis(5))),
            emitter,
            shutdown.clone(),
        ));
        wait_until(|| (dropped() - before >= 3).then_some(())).await;
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("stops although the bus is stuck")
            .expect("no panic");
        let collections = count.load(Ordering::SeqCst) as u64;
        assert_eq!(
            dropped() - before,
            collections - 1,
            "one sample per collection: the first is in the channel, the others counted"
        );
    }

    /// Polls `f` every 20ms for up to 5s.
    async fn wait_until<T>(mut f: impl FnMut() -> Option<T>) -> T {
        for _ in 0..250 {
            if let Some(v) = f() {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("condition not met within 5s");
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
            ..ScrapeConfig::default()
        };
        let host = HostConfig {
            enabled: false,
            ..HostConfig::default()
        };
        let shutdown = CancellationToken::new();
        let targets = Arc::new(Targets::new());
        let tasks = spawn_collectors_with_targets(
            &[job.clone(), job],
            &host,
            emitter,
            shutdown.clone(),
            targets.clone(),
        );
        assert_eq!(tasks.len(), 2, "one manager per job");
        let active = wait_until(|| {
            let pools = targets.pools();
            (pools.len() == 2).then(|| pools.iter().map(|p| p.active.len()).sum::<usize>())
        })
        .await;
        assert_eq!(active, 4, "two targets per job");
        shutdown.cancel();
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(2), t)
                .await
                .expect("stops")
                .expect("no panic");
        }
    }
}
