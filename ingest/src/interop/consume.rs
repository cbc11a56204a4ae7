//! The consumer loop of one interop topic.
//!
//! Messages are taken in small batches (up to [`MAX_BATCH_SAMPLES`]
//! samples or [`BATCH_WAIT`] after the first message). A rejected message
//! is published to `vigie.deadletter` as soon as it is read; the batch's
//! samples go to [`Emitter::emit`], which returns once the bus accepted
//! them (with Kafka: acknowledged by the brokers). Only then are the
//! batch's offsets committed. If the bus refuses the samples, the same
//! batch is retried (with back-off) and nothing is committed; on shutdown
//! the uncommitted batch is read again at the next start.
//!
//! So delivery is at least once: a crash between the emit and the commit
//! replays the batch. Replayed samples that carry their own timestamp are
//! recognised and dropped by the analyzer's per-series watermarks (same
//! series, same time); points without a timestamp get the receive time,
//! so a replay stores them a second time, at a later time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info_span, warn};
use vigie_bus::kafka::KafkaSubscriber;
use vigie_bus::{BusConfig, Delivery, Position, Publisher, Subscriber};
use vigie_model::Sample;

use super::{Decoder, InteropConfig};
use crate::metrics::{
    INTEROP_ERRORS, INTEROP_MESSAGES, INTEROP_REJECTED, INTEROP_SAMPLES, INTEROP_SKIPPED,
};
use crate::ratelimit::LogLimiter;
use crate::source::now_ms;
use crate::{Emitter, IngestError};

/// Samples gathered before a batch is emitted, at most.
pub const MAX_BATCH_SAMPLES: usize = 10_000;
/// How long a batch waits for more messages after its first one.
pub const BATCH_WAIT: Duration = Duration::from_millis(100);
/// Longest pause between two attempts to emit a refused batch.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

static REJECT_LOG: LogLimiter = LogLimiter::new();
static RECEIVE_LOG: LogLimiter = LogLimiter::new();

/// Starts one consumer per `[[interop]]` entry, each a Kafka consumer in
/// the entry's group, publishing to `emitter` and dead letters to
/// `dead_letters` until `shutdown`. Must be called inside a Tokio runtime.
pub fn spawn_interop(
    configs: &[InteropConfig],
    bus: &BusConfig,
    emitter: Arc<Emitter>,
    dead_letters: Arc<dyn Publisher>,
    shutdown: CancellationToken,
) -> Result<Vec<JoinHandle<()>>, IngestError> {
    let mut tasks = Vec::new();
    for config in configs {
        let group = config.group();
        let subscriber = KafkaSubscriber::new(bus, Some(&group), &[config.topic.as_str()])
            .map_err(|source| IngestError::Subscribe {
                topic: config.topic.clone(),
                source: Box::new(source),
            })?;
        let span = info_span!("interop", topic = %config.topic, format = config.format.as_str());
        tasks.push(tokio::spawn(
            run_consumer(
                config.clone(),
                Box::new(subscriber),
                emitter.clone(),
                dead_letters.clone(),
                shutdown.clone(),
            )
            .instrument(span),
        ));
    }
    Ok(tasks)
}

/// One batch being gathered.
#[derive(Default)]
struct Batch {
    samples: Vec<Sample>,
    /// Highest offset read per (topic, partition).
    positions: BTreeMap<(String, i32), i64>,
}

/// Consumes `subscriber` (the entry's topic) until `shutdown` or until
/// the bus closes; see the module doc for the order of emit and commit.
pub async fn run_consumer(
    config: InteropConfig,
    mut subscriber: Box<dyn Subscriber>,
    emitter: Arc<Emitter>,
    dead_letters: Arc<dyn Publisher>,
    shutdown: CancellationToken,
) {
    let mut decoder = Decoder::new(&config);
    let labels = [config.topic.as_str(), config.format.as_str()];
    let mut open = true;
    while open {
        let first = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            r = subscriber.recv() => r,
        };
        let mut batch = Batch::default();
        match first {
            Ok(Some(d)) => handle(&config, &mut decoder, &*dead_letters, &d, &mut batch).await,
            Ok(None) => break,
            Err(error) => {
                INTEROP_ERRORS
                    .with_label_values(&[labels[0], "receive"])
                    .inc();
                if let Some(suppressed) = RECEIVE_LOG.check() {
                    warn!(%error, suppressed, "receive failed (does the topic exist?); retrying");
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        }
        let deadline = tokio::time::Instant::now() + BATCH_WAIT;
        while batch.samples.len() < MAX_BATCH_SAMPLES {
            match tokio::time::timeout_at(deadline, subscriber.recv()).await {
                Ok(Ok(Some(d))) => {
                    handle(&config, &mut decoder, &*dead_letters, &d, &mut batch).await;
                }
                Ok(Ok(None)) => {
                    open = false;
                    break;
                }
                Ok(Err(error)) => {
                    INTEROP_ERRORS
                        .with_label_values(&[labels[0], "receive"])
                        .inc();
                    if let Some(suppressed) = RECEIVE_LOG.check() {
                        warn!(%error, suppressed, "receive failed");
                    }
                    break;
                }
                Err(_) => break,
            }
        }
        if !emit(&emitter, &batch.samples, &shutdown, labels).await {
            debug!("stopping with an unpublished batch; it is read again at the next start");
            return;
        }
        for ((topic, partition), offset) in batch.positions {
            if let Err(error) = subscriber
                .commit(&topic, Position { partition, offset })
                .await
            {
                INTEROP_ERRORS
                    .with_label_values(&[labels[0], "commit"])
                    .inc();
                warn!(%error, partition, offset, "commit failed; the batch may be read again");
            }
        }
    }
    debug!("interop consumer stopped");
}

/// Decodes one delivery into `batch`; dead-letters it if it is rejected.
async fn handle(
    config: &InteropConfig,
    decoder: &mut Decoder,
    dead_letters: &dyn Publisher,
    delivery: &Delivery,
    batch: &mut Batch,
) {
    let m = &delivery.message;
    let (topic, format) = (config.topic.as_str(), config.format.as_str());
    INTEROP_MESSAGES.with_label_values(&[topic, format]).inc();
    let decoded = decoder.decode(&m.payload, now_ms());
    for (reason, n) in decoded.skipped.iter() {
        INTEROP_SKIPPED
            .with_label_values(&[topic, format, reason])
            .inc_by(n);
    }
    if let Some(error) = &decoded.error {
        INTEROP_REJECTED
            .with_label_values(&[topic, format, error.reason()])
            .inc();
        if let Some(suppressed) = REJECT_LOG.check() {
            warn!(%error, partition = delivery.position.partition,
                  offset = delivery.position.offset, suppressed,
                  "message rejected; sent to the dead-letter topic");
        }
        if let Err(error) = dead_letters
            .publish(m.dead_letter(&error.to_string()))
            .await
        {
            INTEROP_ERRORS
                .with_label_values(&[topic, "deadletter_publish"])
                .inc();
            warn!(%error, "cannot publish a dead letter; the message is dropped");
        }
    }
    batch.samples.extend(decoded.samples);
    let key = (m.topic.clone(), delivery.position.partition);
    let offset = batch
        .positions
        .entry(key)
        .or_insert(delivery.position.offset);
    *offset = (*offset).max(delivery.position.offset);
}

/// Emits `samples`, retrying until the bus takes them; false if
/// `shutdown` came first.
async fn emit(
    emitter: &Emitter,
    samples: &[Sample],
    shutdown: &CancellationToken,
    labels: [&str; 2],
) -> bool {
    if samples.is_empty() {
        return true;
    }
    let mut backoff = Duration::from_millis(100);
    loop {
        match emitter.emit(samples.to_vec()).await {
            Ok(n) => {
                INTEROP_SAMPLES.with_label_values(&labels).inc_by(n as u64);
                return true;
            }
            Err(error) => {
                INTEROP_ERRORS
                    .with_label_values(&[labels[0], "publish"])
                    .inc();
                warn!(%error, samples = samples.len(), ?backoff, "the bus refused the samples; retrying");
            }
        }
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return false,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

#[cfg(test)]
#[path = "consume_tests.rs"]
mod tests;
