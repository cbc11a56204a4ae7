//! Turns samples into Arrow batches on the bus.
//!
//! Backpressure: every publish waits at most the emitter's publish
//! timeout (`bus.publish_timeout`) for the bus to accept it, so a
//! collector never blocks for ever behind a slow Kafka or a stalled
//! analyzer, and memory stays bounded by the bus's own queues. What to do
//! with a batch the bus did not take is the caller's choice:
//! [`Emitter::emit_or_drop`] (scrapes, the host collector) and
//! [`Emitter::emit_logs_or_drop`] (syslog) give it up and count it in
//! `vigie_ingest_dropped_samples_total{source,reason}` /
//! `vigie_ingest_dropped_log_records_total{source,reason}`;
//! [`Emitter::emit`] and [`Emitter::emit_logs`] return the error so the
//! caller can answer 503 (remote write) or keep the batch and retry (the
//! file tail, interop consumers).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use vigie_bus::{Message, Publisher};
use vigie_model::codec::encode_batch;
use vigie_model::log_schema::logs_to_batch;
use vigie_model::schema::samples_to_batch;
use vigie_model::{LogRecord, Sample, topics};

use crate::IngestError;
use crate::metrics::{DROPPED_LOG_RECORDS, DROPPED_SAMPLES, PUBLISH_ERRORS, SAMPLES_INGESTED};
use crate::ratelimit::LogLimiter;

/// How long a publish waits for the bus by default (`bus.publish_timeout`).
pub const DEFAULT_PUBLISH_TIMEOUT: Duration = Duration::from_secs(30);

static PUBLISH_LOG: LogLimiter = LogLimiter::new();

/// Largest Arrow IPC payload of one `vigie.metrics` message: a shard's
/// samples that encode to more are split into several messages (Kafka's
/// default `message.max.bytes` is 1 MB; a broker refuses a larger message
/// and the whole scrape would be lost).
pub const MAX_MESSAGE_BYTES: usize = 900 * 1024;

/// Longest log record body a collector produces (a joined multi-line
/// record, a syslog message): far enough below [`MAX_MESSAGE_BYTES`] that
/// one record always fits a message with its labels.
pub const MAX_LOG_RECORD_BYTES: usize = 256 * 1024;

/// `items` encoded by `encode` as payloads of at most
/// [`MAX_MESSAGE_BYTES`] each (a single item may exceed it), in order,
/// with how many items each holds.
fn encode_chunks<T>(
    items: &[T],
    encode: &impl Fn(&[T]) -> Result<Vec<u8>, IngestError>,
) -> Result<Vec<(Vec<u8>, usize)>, IngestError> {
    let payload = encode(items)?;
    if payload.len() <= MAX_MESSAGE_BYTES || items.len() <= 1 {
        return Ok(vec![(payload, items.len())]);
    }
    // As many parts as the size says, with a quarter to spare (labels and
    // dictionaries do not shrink in proportion), so most parts are encoded
    // once more rather than halved again and again.
    let parts = (payload.len() * 5 / 4).div_ceil(MAX_MESSAGE_BYTES).max(2);
    let mut out = Vec::with_capacity(parts);
    for part in items.chunks(items.len().div_ceil(parts)) {
        out.extend(encode_chunks(part, encode)?);
    }
    Ok(out)
}

fn encode_samples(samples: &[Sample]) -> Result<Vec<u8>, IngestError> {
    Ok(encode_batch(&samples_to_batch(samples)?)?)
}

fn encode_logs(records: &[LogRecord]) -> Result<Vec<u8>, IngestError> {
    Ok(encode_batch(&logs_to_batch(records)?)?)
}

/// A log publish that stopped part way: the first `published` records
/// are on the bus, the rest are not.
#[derive(Debug)]
pub(crate) struct PartialPublish {
    /// Records handed to the bus before the error, a prefix of the input.
    pub published: usize,
    /// Why the rest were not.
    pub error: IngestError,
}

/// Publishes samples to `vigie.metrics`, one message per shard (several
/// when a shard's batch would exceed [`MAX_MESSAGE_BYTES`]).
///
/// A series always lands in the same shard (`series.id() % shards`), and the
/// message key is the shard number as 4 big-endian bytes, so the bus keeps
/// each series' samples in order. The shards of one call are published
/// concurrently, each within the publish timeout.
pub struct Emitter {
    publisher: Arc<dyn Publisher>,
    shards: u32,
    publish_timeout: Duration,
}

/// What happened to the shards of one [`Emitter::emit`]-like call.
struct Outcome {
    published: usize,
    /// The samples of each failed shard, with why.
    failed: Vec<(usize, IngestError)>,
}

impl Emitter {
    /// An emitter over `publisher` with `shards` shards (0 is taken as 1)
    /// and the default publish timeout.
    pub fn new(publisher: Arc<dyn Publisher>, shards: u32) -> Self {
        Self {
            publisher,
            shards: shards.max(1),
            publish_timeout: DEFAULT_PUBLISH_TIMEOUT,
        }
    }

    /// The same emitter, waiting at most `timeout` (at least 1 ms) for the
    /// bus to accept each message.
    pub fn with_publish_timeout(mut self, timeout: Duration) -> Self {
        self.publish_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The shard of a sample.
    fn shard_of(&self, sample: &Sample) -> u32 {
        // The remainder is < shards, which is a u32.
        u32::try_from(sample.series.id() % u64::from(self.shards)).unwrap_or(0)
    }

    /// Publishes `samples` and returns how many were handed to the bus.
    ///
    /// Every non-empty shard is attempted; if any shard fails (refused, or
    /// not accepted within the publish timeout), the first error is
    /// returned (the other shards' samples were still published, so
    /// sending the same samples again stores nothing twice: the analyzer
    /// drops a series' samples at or before its newest stored one).
    pub async fn emit(&self, samples: Vec<Sample>) -> Result<usize, IngestError> {
        let outcome = self.publish_shards(samples).await;
        match outcome.failed.into_iter().next() {
            Some((_, e)) => Err(e),
            None => Ok(outcome.published),
        }
    }

    /// Like [`Emitter::emit`], and the samples of every shard that failed
    /// are given up and counted in
    /// `vigie_ingest_dropped_samples_total{source, reason}`.
    pub async fn emit_or_drop(
        &self,
        source: &str,
        samples: Vec<Sample>,
    ) -> Result<usize, IngestError> {
        let outcome = self.publish_shards(samples).await;
        let mut first = None;
        for (n, e) in outcome.failed {
            DROPPED_SAMPLES
                .with_label_values(&[source, e.reason()])
                .inc_by(n as u64);
            first.get_or_insert(e);
        }
        match first {
            Some(e) => Err(e),
            None => Ok(outcome.published),
        }
    }

    async fn publish_shards(&self, samples: Vec<Sample>) -> Outcome {
        let mut by_shard: BTreeMap<u32, Vec<Sample>> = BTreeMap::new();
        for sample in samples {
            by_shard
                .entry(self.shard_of(&sample))
                .or_default()
                .push(sample);
        }
        let mut outcome = Outcome {
            published: 0,
            failed: Vec::new(),
        };
        // One task per shard: with Kafka, the shards' acknowledgements are
        // awaited together rather than one after the other. Dropping the
        // set (the caller gave up) aborts them.
        let mut tasks = JoinSet::new();
        for (shard, samples) in by_shard {
            let publisher = self.publisher.clone();
            let timeout = self.publish_timeout;
            tasks.spawn(async move {
                let n = samples.len();
                let mut published = 0;
                let result = async {
                    // In order, with the same key: the partition keeps them so.
                    for (payload, count) in encode_chunks(&samples, &encode_samples)? {
                        let message =
                            Message::new(topics::METRICS, shard.to_be_bytes().to_vec(), payload);
                        publisher.publish_within(message, timeout).await?;
                        published += count;
                    }
                    Ok::<_, IngestError>(())
                }
                .await;
                (shard, published, n - published, result)
            });
        }
        while let Some(joined) = tasks.join_next().await {
            let (shard, published, unpublished, result) = match joined {
                Ok(r) => r,
                // A panic in encoding is a bug, reported as such.
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                // Cancelled: the runtime is shutting down.
                Err(_) => continue,
            };
            outcome.published += published;
            SAMPLES_INGESTED.inc_by(published as u64);
            if let Err(e) = result {
                count_publish_error(&e);
                if let Some(suppressed) = PUBLISH_LOG.check() {
                    tracing::warn!(shard, samples = unpublished, error = %e, suppressed, "a metrics batch was not published");
                }
                outcome.failed.push((unpublished, e));
            }
        }
        outcome
    }

    /// Publishes log records of one source to `vigie.logs`, keyed by
    /// `source` (so a file's lines stay in order), as one message or, when
    /// they encode to more than [`MAX_MESSAGE_BYTES`], several in order.
    /// Returns how many were handed to the bus; on an error, the records
    /// before the failed message may already be on the bus (counted as
    /// dropped by [`Emitter::emit_logs_or_drop`] only from there on).
    pub async fn emit_logs(
        &self,
        source: &str,
        records: Vec<LogRecord>,
    ) -> Result<usize, IngestError> {
        self.publish_logs(source, &records)
            .await
            .map_err(|p| p.error)
    }

    /// [`Emitter::emit_logs`] of borrowed records (kept by a caller that
    /// retries them): on an error, says how many were published, so the
    /// caller retries only the rest.
    pub(crate) async fn publish_logs(
        &self,
        source: &str,
        records: &[LogRecord],
    ) -> Result<usize, PartialPublish> {
        let mut published = 0;
        let fail = |published, error| {
            count_publish_error(&error);
            PartialPublish { published, error }
        };
        let chunks = encode_chunks(records, &encode_logs).map_err(|e| fail(0, e))?;
        for (payload, count) in chunks {
            let message = Message::new(topics::LOGS, source.as_bytes().to_vec(), payload);
            if let Err(e) = self
                .publisher
                .publish_within(message, self.publish_timeout)
                .await
            {
                return Err(fail(published, e.into()));
            }
            published += count;
        }
        Ok(published)
    }

    /// Like [`Emitter::emit_logs`], and records the bus did not take are
    /// given up and counted in
    /// `vigie_ingest_dropped_log_records_total{source = collector, reason}`.
    pub async fn emit_logs_or_drop(
        &self,
        collector: &str,
        key: &str,
        records: Vec<LogRecord>,
    ) -> Result<usize, IngestError> {
        match self.publish_logs(key, &records).await {
            Ok(n) => Ok(n),
            Err(PartialPublish { published, error }) => {
                count_dropped_logs(collector, error.reason(), records.len() - published);
                Err(error)
            }
        }
    }
}

/// Counts a batch the bus refused or timed out on in
/// `vigie_ingest_publish_errors_total`; a batch that could not be encoded
/// never reached the bus and is counted only as dropped (`reason="encode"`).
fn count_publish_error(error: &IngestError) {
    if !matches!(error, IngestError::Encode(_)) {
        PUBLISH_ERRORS.inc();
    }
}

/// Counts `n` log records of `collector` given up for `reason`.
pub(crate) fn count_dropped_logs(collector: &str, reason: &str, n: usize) {
    DROPPED_LOG_RECORDS
        .with_label_values(&[collector, reason])
        .inc_by(n as u64);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};
    use std::time::Duration;
    use vigie_bus::Subscriber;
    use vigie_bus::memory::MemoryBus;
    use vigie_model::Labels;
    use vigie_model::codec::decode_batch;
    use vigie_model::schema::batch_to_samples;

    #[tokio::test]
    async fn shards_series_consistently_and_delivers_everything() {
        let bus = MemoryBus::new(64);
        let mut sub = bus.subscribe(&[topics::METRICS]);
        let emitter = Emitter::new(Arc::new(bus.clone()), 4);
        let samples: Vec<Sample> = (0..100)
            .map(|i| {
                Sample::new(
                    "emit_test",
                    Labels::new().with("series", (i % 10).to_string()),
                    i64::from(i),
                    f64::from(i),
                )
            })
            .collect();
        assert_eq!(emitter.emit(samples).await.expect("emit"), 100);

        let mut received = Vec::new();
        let mut keys_of: HashMap<u64, HashSet<Vec<u8>>> = HashMap::new();
        while received.len() < 100 {
            let d = crate::testing::next_message(&mut sub, "all messages arrive").await;
            assert_eq!(d.key.len(), 4, "key is a u32 shard");
            let shard = u32::from_be_bytes(d.key.clone().try_into().expect("4 bytes"));
            assert!(shard < 4);
            let batch = decode_batch(&d.payload).expect("decode");
            for s in batch_to_samples(&batch).expect("samples") {
                assert_eq!(u64::from(shard), s.series.id() % 4);
                keys_of
                    .entry(s.series.id())
                    .or_default()
                    .insert(d.key.clone());
                received.push(s);
            }
        }
        assert_eq!(received.len(), 100);
        assert_eq!(keys_of.len(), 10);
        assert!(keys_of.values().all(|keys| keys.len() == 1));
        let mut ts: Vec<i64> = received.iter().map(|s| s.ts_ms).collect();
        ts.sort_unstable();
        assert_eq!(ts, (0..100).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_large_scrape_is_split_into_messages_a_broker_accepts() {
        let bus = MemoryBus::new(1024);
        let mut sub = bus.subscribe(&[topics::METRICS]);
        let emitter = Emitter::new(Arc::new(bus.clone()), 1);
        // 20,000 series with long labels: several MB as one batch.
        let big: Vec<Sample> = (0..20_000)
            .map(|i| {
                Sample::new(
                    "emit_big",
                    Labels::new()
                        .with("series", i.to_string())
                        .with("path", format!("/var/lib/some/rather/long/path/{i:08}")),
                    1_000,
                    f64::from(i),
                )
            })
            .collect();
        assert_eq!(emitter.emit(big).await.expect("emit"), 20_000);
        let mut received = Vec::new();
        let mut messages = 0;
        while received.len() < 20_000 {
            let d = crate::testing::next_message(&mut sub, "all messages arrive").await;
            assert!(
                d.payload.len() <= MAX_MESSAGE_BYTES,
                "{} bytes",
                d.payload.len()
            );
            messages += 1;
            let batch = decode_batch(&d.payload).expect("decode");
            received.extend(batch_to_samples(&batch).expect("samples"));
        }
        assert!(messages > 1, "split into several messages");
        let values: Vec<f64> = received.iter().map(|s| s.value).collect();
        let expected: Vec<f64> = (0..20_000).map(f64::from).collect();
        assert_eq!(values, expected, "every sample once, in order");
    }

    fn samples(n: usize, series: usize) -> Vec<Sample> {
        (0..n)
            .map(|i| {
                Sample::new(
                    "drop_test",
                    Labels::new().with("series", (i % series).to_string()),
                    i as i64,
                    1.0,
                )
            })
            .collect()
    }

    /// A bus of capacity 2 whose subscriber never reads: the emitter
    /// returns after its timeout each time, the first two batches are
    /// published, and every sample of the others is counted as dropped.
    #[tokio::test]
    async fn a_subscriber_that_never_reads_makes_the_emitter_drop_and_count() {
        let bus = MemoryBus::new(2);
        let _never_read = bus.subscribe(&[topics::METRICS]);
        let emitter =
            Emitter::new(Arc::new(bus.clone()), 1).with_publish_timeout(Duration::from_millis(50));
        let dropped = || {
            DROPPED_SAMPLES
                .with_label_values(&["emit_test_never_read", "timeout"])
                .get()
        };
        let before = dropped();
        let mut published = 0;
        for batch in 0..6 {
            let r = tokio::time::timeout(
                Duration::from_secs(30),
                emitter.emit_or_drop("emit_test_never_read", samples(7 + batch, 3)),
            )
            .await
            .expect("the emitter gives up instead of waiting for ever");
            if batch < 2 {
                published += r.expect("room for two messages");
            } else {
                let e = r.expect_err("no room");
                assert_eq!(e.reason(), "timeout", "{e}");
            }
        }
        assert_eq!(published, 7 + 8);
        assert_eq!(dropped() - before, 9 + 10 + 11 + 12);
    }

    /// With four shards and room for three messages, exactly one shard
    /// is dropped, and exactly its samples are counted.
    #[tokio::test]
    async fn only_the_samples_of_refused_shards_are_counted() {
        let bus = MemoryBus::new(3);
        let mut sub = bus.subscribe(&[topics::METRICS]);
        let emitter =
            Emitter::new(Arc::new(bus.clone()), 4).with_publish_timeout(Duration::from_millis(50));
        let batch = samples(40, 40);
        let mut shard_sizes: HashMap<u64, usize> = HashMap::new();
        for s in &batch {
            *shard_sizes.entry(s.series.id() % 4).or_default() += 1;
        }
        assert_eq!(shard_sizes.len(), 4, "the test needs four shards");
        let dropped = || {
            DROPPED_SAMPLES
                .with_label_values(&["emit_test_shards", "timeout"])
                .get()
        };
        let before = dropped();
        let e = emitter
            .emit_or_drop("emit_test_shards", batch)
            .await
            .expect_err("one shard finds no room");
        assert_eq!(e.reason(), "timeout");
        let mut received = 0;
        while let Ok(Ok(Some(d))) =
            tokio::time::timeout(Duration::from_millis(100), sub.recv()).await
        {
            received += batch_to_samples(&decode_batch(&d.message.payload).expect("decode"))
                .expect("samples")
                .len();
        }
        let lost = (dropped() - before) as usize;
        assert!(
            shard_sizes.values().any(|n| *n == lost),
            "{lost} is one shard"
        );
        assert_eq!(received + lost, 40, "every sample is received or counted");
    }

    #[tokio::test]
    async fn large_log_batches_are_split_and_a_stalled_bus_drops_only_the_rest() {
        // 12 records of 200 KiB: about 2.4 MB as one batch, which a broker
        // would refuse for ever (the tail used to retry it for ever).
        let records: Vec<LogRecord> = (0..12)
            .map(|i| LogRecord {
                ts_ms: i,
                labels: Labels::new().with("file", "/var/log/big.log"),
                severity: None,
                body: format!("{i:04}{}", "x".repeat(200 * 1024)),
            })
            .collect();
        let bus = MemoryBus::new(1024);
        let mut sub = bus.subscribe(&[topics::LOGS]);
        let emitter = Emitter::new(Arc::new(bus), 1);
        assert_eq!(
            emitter
                .emit_logs("big", records.clone())
                .await
                .expect("emit"),
            12
        );
        let mut bodies = Vec::new();
        let mut messages = 0;
        while bodies.len() < 12 {
            let d = crate::testing::next_message(&mut sub, "all messages arrive").await;
            assert!(d.payload.len() <= MAX_MESSAGE_BYTES);
            assert_eq!(d.key, b"big");
            messages += 1;
            let got = crate::testing::logs_in(&d);
            bodies.extend(got.into_iter().map(|r| r.body[..4].to_string()));
        }
        assert!(messages >= 3, "{messages} messages");
        let expected: Vec<String> = (0..12).map(|i| format!("{i:04}")).collect();
        assert_eq!(bodies, expected, "every record once, in order");

        // A bus with room for one message that nobody reads: the first
        // chunk goes, the rest are reported as not published.
        let bus = MemoryBus::new(1);
        let _never_read = bus.subscribe(&[topics::LOGS]);
        let emitter =
            Emitter::new(Arc::new(bus), 1).with_publish_timeout(Duration::from_millis(50));
        let partial = emitter
            .publish_logs("big", &records)
            .await
            .expect_err("the bus stalls after one message");
        assert!(
            (1..12).contains(&partial.published),
            "{} published",
            partial.published
        );
        assert_eq!(partial.error.reason(), "timeout");
        let dropped = || {
            DROPPED_LOG_RECORDS
                .with_label_values(&["emit_test_big_logs", "timeout"])
                .get()
        };
        let before = dropped();
        emitter
            .emit_logs_or_drop("emit_test_big_logs", "big", records)
            .await
            .expect_err("still stalled");
        assert_eq!(dropped() - before, 12, "nothing of this call got through");
    }

    #[tokio::test]
    async fn log_records_the_bus_does_not_take_are_counted() {
        let bus = MemoryBus::new(1);
        let _never_read = bus.subscribe(&[topics::LOGS]);
        let emitter =
            Emitter::new(Arc::new(bus), 1).with_publish_timeout(Duration::from_millis(50));
        let records = |n: usize| -> Vec<LogRecord> {
            (0..n)
                .map(|i| LogRecord {
                    ts_ms: i as i64,
                    labels: Labels::new(),
                    severity: None,
                    body: format!("line {i}"),
                })
                .collect()
        };
        let dropped = || {
            DROPPED_LOG_RECORDS
                .with_label_values(&["emit_test_logs", "timeout"])
                .get()
        };
        let before = dropped();
        assert_eq!(
            emitter
                .emit_logs_or_drop("emit_test_logs", "k", records(3))
                .await
                .expect("room for one"),
            3
        );
        let e = emitter
            .emit_logs_or_drop("emit_test_logs", "k", records(5))
            .await
            .expect_err("full");
        assert_eq!(e.reason(), "timeout");
        assert_eq!(dropped() - before, 5);
    }

    #[tokio::test]
    async fn empty_input_publishes_nothing() {
        let bus = MemoryBus::new(4);
        let emitter = Emitter::new(Arc::new(bus.clone()), 0);
        assert_eq!(emitter.emit(Vec::new()).await.expect("emit"), 0);
        assert!(bus.retained(topics::METRICS).is_empty());
    }
}
