//! Turns samples into Arrow batches on the bus.

use std::collections::BTreeMap;
use std::sync::Arc;

use vigie_bus::{Message, Publisher};
use vigie_model::codec::encode_batch;
use vigie_model::log_schema::logs_to_batch;
use vigie_model::schema::samples_to_batch;
use vigie_model::{LogRecord, Sample, topics};

use crate::IngestError;
use crate::metrics::{PUBLISH_ERRORS, SAMPLES_INGESTED};

/// Publishes samples to `vigie.metrics`, one message per shard.
///
/// A series always lands in the same shard (`series.id() % shards`), and the
/// message key is the shard number as 4 big-endian bytes, so the bus keeps
/// each series' samples in order.
pub struct Emitter {
    publisher: Arc<dyn Publisher>,
    shards: u32,
}

impl Emitter {
    /// An emitter over `publisher` with `shards` shards (0 is taken as 1).
    pub fn new(publisher: Arc<dyn Publisher>, shards: u32) -> Self {
        Self {
            publisher,
            shards: shards.max(1),
        }
    }

    /// The shard of a sample.
    fn shard_of(&self, sample: &Sample) -> u32 {
        // The remainder is < shards, which is a u32.
        u32::try_from(sample.series.id() % u64::from(self.shards)).unwrap_or(0)
    }

    /// Publishes `samples` and returns how many were handed to the bus.
    ///
    /// Every non-empty shard is attempted; if any shard fails, the first
    /// error is returned (the other shards' samples were still published).
    pub async fn emit(&self, samples: Vec<Sample>) -> Result<usize, IngestError> {
        let mut by_shard: BTreeMap<u32, Vec<Sample>> = BTreeMap::new();
        for sample in samples {
            by_shard
                .entry(self.shard_of(&sample))
                .or_default()
                .push(sample);
        }
        let mut published = 0;
        let mut first_error = None;
        for (shard, samples) in by_shard {
            let result = async {
                let payload = encode_batch(&samples_to_batch(&samples)?)?;
                let message = Message::new(topics::METRICS, shard.to_be_bytes().to_vec(), payload);
                self.publisher.publish(message).await?;
                Ok::<_, IngestError>(())
            }
            .await;
            match result {
                Ok(()) => {
                    published += samples.len();
                    SAMPLES_INGESTED.inc_by(samples.len() as u64);
                }
                Err(e) => {
                    PUBLISH_ERRORS.inc();
                    tracing::warn!(shard, samples = samples.len(), error = %e, "dropping a metrics batch");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(published),
        }
    }

    /// Publishes log records of one source to `vigie.logs` as one batch,
    /// keyed by `source` (so a file's lines stay in order). Returns how
    /// many were handed to the bus.
    pub async fn emit_logs(
        &self,
        source: &str,
        records: Vec<LogRecord>,
    ) -> Result<usize, IngestError> {
        if records.is_empty() {
            return Ok(0);
        }
        let payload = encode_batch(&logs_to_batch(&records)?)?;
        let message = Message::new(topics::LOGS, source.as_bytes().to_vec(), payload);
        if let Err(e) = self.publisher.publish(message).await {
            PUBLISH_ERRORS.inc();
            return Err(e.into());
        }
        Ok(records.len())
    }
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
            let d = tokio::time::timeout(Duration::from_secs(5), sub.recv())
                .await
                .expect("all messages arrive")
                .expect("recv")
                .expect("bus open");
            assert_eq!(d.message.key.len(), 4, "key is a u32 shard");
            let shard = u32::from_be_bytes(d.message.key.clone().try_into().expect("4 bytes"));
            assert!(shard < 4);
            let batch = decode_batch(&d.message.payload).expect("decode");
            for s in batch_to_samples(&batch).expect("samples") {
                assert_eq!(u64::from(shard), s.series.id() % 4);
                keys_of
                    .entry(s.series.id())
                    .or_default()
                    .insert(d.message.key.clone());
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
    async fn empty_input_publishes_nothing() {
        let bus = MemoryBus::new(4);
        let emitter = Emitter::new(Arc::new(bus.clone()), 0);
        assert_eq!(emitter.emit(Vec::new()).await.expect("emit"), 0);
        assert!(bus.retained(topics::METRICS).is_empty());
    }
}
