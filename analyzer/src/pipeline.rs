//! The consumer loop: bus → decode → store → score → index; periodic flush
//! and offset commit.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info, info_span, warn};
use vigie_bus::{Delivery, Position, Publisher, Subscriber};
use vigie_model::schema::{batch_to_samples, samples_to_batch};
use vigie_model::{codec, topics};

use crate::dedup::Watermarks;
use crate::latest::LatestIndex;
use crate::metrics::{DEAD_LETTERS, ERRORS};
use crate::score::ScoreBank;
use crate::storage::Storage;
use crate::{AnalyzerConfig, AnalyzerError};

/// Everything the consumer loop updates; shared with the HTTP API.
pub struct Analyzer {
    /// Sample storage.
    pub storage: Arc<Storage>,
    /// Newest point per series.
    pub latest: Arc<LatestIndex>,
    scores: Mutex<ScoreBank>,
    watermarks: Watermarks,
    checkpoint: Option<std::path::PathBuf>,
    dead_letters: Arc<dyn Publisher>,
    config: AnalyzerConfig,
}

impl Analyzer {
    /// An analyzer storing into `storage` and sending undecodable messages
    /// to `dead_letters`.
    pub fn new(
        config: AnalyzerConfig,
        storage: Arc<Storage>,
        latest: Arc<LatestIndex>,
        dead_letters: Arc<dyn Publisher>,
    ) -> Self {
        Self {
            scores: Mutex::new(ScoreBank::new(
                config.detector_window,
                config.detector_min_points,
            )),
            watermarks: Watermarks::new(),
            checkpoint: None,
            storage,
            latest,
            dead_letters,
            config,
        }
    }

    /// Rebuilds the per-series watermarks from storage, so samples that
    /// the bus delivers again after a restart are not stored twice, and
    /// reloads the detectors' checkpoint (written at every flush), so a
    /// restart resumes with the learned baselines. Returns the number of
    /// stored series.
    pub async fn restore(&self) -> Result<usize, AnalyzerError> {
        let series = self.watermarks.restore(&self.storage).await?;
        if let Some(path) = &self.checkpoint
            && let Some(bank) = ScoreBank::load(path)?
        {
            info!(series = bank.len(), file = %path.display(), "detectors restored");
            *self.scores.lock().unwrap_or_else(|e| e.into_inner()) = bank;
        }
        Ok(series)
    }

    /// Where the detectors are checkpointed.
    pub fn with_checkpoint(mut self, path: std::path::PathBuf) -> Self {
        self.checkpoint = Some(path);
        self
    }

    /// Handles one metrics payload: decode, store, score, index.
    /// Returns the number of samples stored (input plus scores).
    pub fn ingest(&self, topic: &str, payload: &[u8]) -> Result<usize, AnalyzerError> {
        let decode = |source| AnalyzerError::Decode {
            topic: topic.to_string(),
            source,
        };
        let batch = codec::decode_batch(payload).map_err(decode)?;
        vigie_model::schema::check_metrics_batch(&batch).map_err(decode)?;
        let Some(batch) = self.watermarks.admit(&batch)? else {
            return Ok(0);
        };
        let samples = batch_to_samples(&batch).map_err(decode)?;
        let scores = self
            .scores
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .score(&samples);
        self.storage.append(batch);
        self.latest.update(&samples);
        let mut stored = samples.len();
        if !scores.is_empty() {
            self.storage.append(samples_to_batch(&scores)?);
            self.latest.update(&scores);
            stored += scores.len();
        }
        Ok(stored)
    }

    async fn handle(&self, delivery: &Delivery) {
        let m = &delivery.message;
        if m.topic != topics::METRICS {
            warn!(topic = %m.topic, "message from an unexpected topic ignored");
            return;
        }
        match self.ingest(&m.topic, &m.payload) {
            Ok(n) => debug!(samples = n, "stored"),
            Err(e) => {
                let reason = match &e {
                    AnalyzerError::Decode { .. } => "decode",
                    _ => "store",
                };
                warn!(error = %e, topic = %m.topic, partition = delivery.position.partition,
                      offset = delivery.position.offset, "sending message to dead-letter topic");
                DEAD_LETTERS.with_label_values(&[&m.topic, reason]).inc();
                if let Err(e) = self
                    .dead_letters
                    .publish(m.dead_letter(&e.to_string()))
                    .await
                {
                    ERRORS
                        .with_label_values(&["pipeline", "deadletter_publish"])
                        .inc();
                    error!(error = %e, "cannot publish dead letter");
                }
            }
        }
    }

    /// Flushes the head to Parquet (off the async threads).
    /// Also checkpoints the detectors, so that what is stored and what
    /// the detectors have learned describe the same point of the stream.
    pub async fn flush(self: &Arc<Self>) -> Result<(), AnalyzerError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            this.storage.flush()?;
            if let Some(path) = &this.checkpoint {
                this.scores
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .save(path)?;
            }
            Ok::<(), AnalyzerError>(())
        })
        .await
        .map_err(|e| AnalyzerError::Io {
            path: "flush task".into(),
            source: std::io::Error::other(e.to_string()),
        })??;
        Ok(())
    }

    /// Consumes `subscriber` until `shutdown`, flushing every
    /// `flush_interval` (or when the head is full) and committing the
    /// positions of everything flushed. Flushes once more on the way out.
    pub async fn run(
        self: Arc<Self>,
        mut subscriber: Box<dyn Subscriber>,
        shutdown: CancellationToken,
    ) {
        let span = info_span!("analyzer");
        async move {
            let mut pending: BTreeMap<(String, i32), i64> = BTreeMap::new();
            let mut tick = tokio::time::interval(self.config.flush_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                let flush_now = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => true,
                    received = subscriber.recv() => match received {
                        Ok(Some(d)) => {
                            self.handle(&d).await;
                            let key = (d.message.topic.clone(), d.position.partition);
                            let e = pending.entry(key).or_insert(d.position.offset);
                            *e = (*e).max(d.position.offset);
                            self.storage.head_rows() >= self.config.max_head_rows
                        }
                        Ok(None) => break,
                        Err(e) => {
                            ERRORS.with_label_values(&["pipeline", "receive"]).inc();
                            warn!(error = %e, "bus receive failed; retrying");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                            false
                        }
                    },
                };
                if flush_now {
                    self.flush_and_commit(&mut *subscriber, &mut pending).await;
                }
            }
            self.flush_and_commit(&mut *subscriber, &mut pending).await;
        }
        .instrument(span)
        .await
    }

    async fn flush_and_commit(
        self: &Arc<Self>,
        subscriber: &mut dyn Subscriber,
        pending: &mut BTreeMap<(String, i32), i64>,
    ) {
        if let Err(e) = self.flush().await {
            ERRORS.with_label_values(&["storage", "flush"]).inc();
            error!(error = %e, "flush failed; offsets not committed, will retry");
            return;
        }
        for ((topic, partition), offset) in std::mem::take(pending) {
            let position = Position { partition, offset };
            if let Err(e) = subscriber.commit(&topic, position).await {
                ERRORS.with_label_values(&["pipeline", "commit"]).inc();
                warn!(error = %e, %topic, partition, offset, "commit failed");
            }
        }
    }
}
