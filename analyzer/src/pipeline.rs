//! The consumer loop: bus → decode → store → score → index; periodic flush
//! and offset commit.
//!
//! Log batches (`vigie.logs`) go through one [`TemplateMiner`](crate::logs::miner::TemplateMiner): each record
//! gets its `template_id`/`template`, the enriched batch goes to the logs
//! store, and the samples `vigie_log_lines_total{template_id, source, level}`
//! (running count per template, source and level; checkpointed with the
//! miner in `state/logminer.cbor` at every flush, so it stays monotonic
//! across restarts) and, for a template never seen before,
//! `vigie_log_new_template{template_id, source} 1` go to the samples store,
//! so rules and detectors see log rates. See [`crate::logs::state`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use datafusion::arrow::array::UInt64Array;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info, info_span, warn};
use vigie_bus::{Delivery, Position, Publisher, Subscriber};
use vigie_model::log_schema::{batch_to_logs, check_logs_batch, templated_logs_to_batch};
use vigie_model::schema::{batch_to_samples, col, column, samples_to_batch};
use vigie_model::{AnomalyEvent, Labels, Sample, codec, topics};

use crate::dedup::Watermarks;
use crate::episodes::Episodes;
use crate::logs::{LogState, MinerConfig};
use crate::metrics::{ANOMALY_EVENTS, DEAD_LETTERS, ERRORS};
use crate::score::ScoreBank;
use crate::storage::Storage;
use crate::{AnalyzerConfig, AnalyzerError};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Everything the consumer loop updates; shared with the HTTP API.
pub struct Analyzer {
    /// Sample storage.
    pub storage: Arc<Storage>,
    pub(crate) scores: Mutex<ScoreBank>,
    watermarks: Watermarks,
    pub(crate) checkpoint: Option<std::path::PathBuf>,
    dead_letters: Arc<dyn Publisher>,
    config: AnalyzerConfig,
    logs: Mutex<LogState>,
    /// Anomaly episodes, when events go to `vigie.anomalies`.
    episodes: Mutex<Episodes>,
    anomaly_events: Option<Arc<dyn Publisher>>,
    pending_events: Mutex<Vec<AnomalyEvent>>,
    /// Where feedback is shared with the other analyzers, and this
    /// analyzer's name on it (see [`crate::feedback`]).
    pub(crate) feedback_bus: Option<(Arc<dyn Publisher>, String)>,
}

/// Longest pause between two flush attempts while consumption is paused
/// (head full, storage failing).
pub const MAX_FLUSH_BACKOFF: Duration = Duration::from_secs(10);

/// Metric name of the per-template line counters.
pub const LOG_LINES_TOTAL: &str = "vigie_log_lines_total";
/// Metric name of the new-template events.
pub const LOG_NEW_TEMPLATE: &str = "vigie_log_new_template";

impl Analyzer {
    /// An analyzer storing into `storage` and sending undecodable messages
    /// to `dead_letters`.
    pub fn new(
        config: AnalyzerConfig,
        storage: Arc<Storage>,
        dead_letters: Arc<dyn Publisher>,
    ) -> Self {
        Self {
            episodes: Mutex::new(Episodes::new(config.anomaly_events.clone())),
            scores: Mutex::new(
                ScoreBank::new(config.detector_window, config.detector_min_points)
                    .with_forecast(config.forecast.clone())
                    .with_scales(config.detector_scales.clone()),
            ),
            watermarks: Watermarks::new(),
            checkpoint: None,
            storage,
            dead_letters,
            config,
            anomaly_events: None,
            pending_events: Mutex::new(Vec::new()),
            feedback_bus: None,
            logs: Mutex::new(LogState::new(MinerConfig::default())),
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
            && let Some(mut bank) = ScoreBank::load(path)?
        {
            bank.set_forecast(self.config.forecast.clone());
            bank.set_scales(self.config.detector_scales.clone());
            info!(series = bank.len(), file = %path.display(), "detectors restored");
            *self.scores.lock().unwrap_or_else(|e| e.into_inner()) = bank;
        }
        if let Some(path) = self.log_checkpoint()
            && let Some(state) = LogState::load(&path, MinerConfig::default())?
        {
            info!(templates = state.miner().len(), file = %path.display(), "log templates restored");
            *self.logs.lock().unwrap_or_else(|e| e.into_inner()) = state;
        }
        Ok(series)
    }

    /// Number of series with a stored sample.
    pub fn series_count(&self) -> usize {
        self.watermarks.len()
    }

    /// Publishes anomaly episode events ([`crate::episodes`]) to
    /// `vigie.anomalies` through `publisher` after each metrics message.
    pub fn with_anomaly_events(mut self, publisher: Arc<dyn Publisher>) -> Self {
        self.anomaly_events = Some(publisher);
        self
    }

    /// Publishes the anomaly events found since the last call; a failed
    /// publish is logged and counted, the event dropped.
    async fn publish_anomaly_events(&self) {
        let Some(publisher) = &self.anomaly_events else {
            return;
        };
        let events = std::mem::take(
            &mut *self
                .pending_events
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for event in events {
            let payload = match event.encode() {
                Ok(p) => p,
                Err(e) => {
                    ERRORS
                        .with_label_values(&["anomaly_events", "encode"])
                        .inc();
                    warn!(error = %e, series = %event.series(), "cannot encode anomaly event");
                    continue;
                }
            };
            let message =
                vigie_bus::Message::new(topics::ANOMALIES, event.key().into_bytes(), payload);
            match publisher.publish(message).await {
                Ok(()) => {
                    ANOMALY_EVENTS
                        .with_label_values(&[event.phase.as_str()])
                        .inc();
                    debug!(series = %event.series(), phase = event.phase.as_str(), "anomaly event");
                }
                Err(e) => {
                    ERRORS
                        .with_label_values(&["anomaly_events", "publish"])
                        .inc();
                    warn!(error = %e, series = %event.series(), "cannot publish anomaly event");
                }
            }
        }
    }

    /// Where the detectors are checkpointed; the log miner and its line
    /// counts go beside, in [`crate::logs::state::CHECKPOINT_FILE`].
    pub fn with_checkpoint(mut self, path: std::path::PathBuf) -> Self {
        self.checkpoint = Some(path);
        self
    }

    /// The log state's checkpoint, beside the detectors'.
    fn log_checkpoint(&self) -> Option<std::path::PathBuf> {
        let path = self.checkpoint.as_ref()?;
        Some(path.with_file_name(crate::logs::state::CHECKPOINT_FILE))
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
        // The batch names each row's series: no need to hash labels again.
        let ids = column::<UInt64Array>(&batch, col::SERIES_ID).map_err(decode)?;
        let scores = self
            .scores
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .score_with_ids(&samples, ids.values());
        // The timestamps of the admitted samples, for the scrape-to-queryable
        // delay (observed per sample once the batch is in the head).
        let ts = batch.column_by_name(col::TS).cloned();
        self.storage.append(batch);
        if let Some(ts) = ts.as_ref().and_then(|c| {
            c.as_any()
                .downcast_ref::<datafusion::arrow::array::TimestampMillisecondArray>()
        }) {
            crate::metrics::observe_ingest_delay(ts.values());
        }
        let mut stored = samples.len();
        if !scores.is_empty() {
            self.storage.append(samples_to_batch(&scores)?);
            stored += scores.len();
            if self.anomaly_events.is_some() {
                let observed = self
                    .episodes
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .observe(&scores);
                if observed.suppressed > 0 {
                    ANOMALY_EVENTS
                        .with_label_values(&["suppressed"])
                        .inc_by(observed.suppressed as u64);
                }
                self.pending_events
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(observed.events);
            }
        }
        Ok(stored)
    }

    /// Handles one logs payload: decode, mine templates, store the
    /// enriched records in the logs store and the line counters in the
    /// samples store. Returns the number of records stored.
    pub fn ingest_logs(&self, topic: &str, payload: &[u8]) -> Result<usize, AnalyzerError> {
        let decode = |source| AnalyzerError::Decode {
            topic: topic.to_string(),
            source,
        };
        let batch = codec::decode_batch(payload).map_err(decode)?;
        check_logs_batch(&batch).map_err(decode)?;
        let Some(store) = self.storage.logs() else {
            return Ok(0);
        };
        let mut logs = batch_to_logs(&batch).map_err(decode)?;
        // Newest sample per counter in this batch, plus new-template events.
        let mut counters: BTreeMap<(u64, String, String), (i64, u64)> = BTreeMap::new();
        let mut events = Vec::new();
        {
            let mut state = self.logs.lock().unwrap_or_else(|e| e.into_inner());
            for log in &mut logs {
                let r = &log.record;
                let source = r.labels.get("source").unwrap_or("").to_string();
                let level = r.severity.clone().unwrap_or_else(|| "unknown".into());
                // An empty body is stored without a template (and counted).
                let Some(observed) = state.observe(&r.body, &source, &level) else {
                    continue;
                };
                let (m, n) = (observed.template, observed.count);
                if m.is_new {
                    let labels = Labels::new()
                        .with("template_id", m.id.to_string())
                        .with("source", source.clone());
                    events.push(Sample::new(LOG_NEW_TEMPLATE, labels, r.ts_ms, 1.0));
                }
                let c = counters
                    .entry((m.id, source, level))
                    .or_insert((r.ts_ms, n));
                *c = (c.0.max(r.ts_ms), n);
                log.template = Some((m.id, m.template.to_string()));
            }
        }
        let mut samples: Vec<Sample> = counters
            .into_iter()
            .map(|((id, source, level), (ts, n))| {
                let labels = Labels::new()
                    .with("template_id", id.to_string())
                    .with("source", source)
                    .with("level", level);
                // Counts fit f64 exactly up to 2^53.
                Sample::new(LOG_LINES_TOTAL, labels, ts, n as f64)
            })
            .collect();
        samples.append(&mut events);
        store.append(templated_logs_to_batch(&logs)?);
        if !samples.is_empty() {
            self.storage.append(samples_to_batch(&samples)?);
        }
        Ok(logs.len())
    }

    async fn handle(&self, delivery: &Delivery) {
        let m = &delivery.message;
        let result = match m.topic.as_str() {
            topics::METRICS => {
                let stored = self.ingest(&m.topic, &m.payload);
                self.publish_anomaly_events().await;
                stored
            }
            topics::LOGS => self.ingest_logs(&m.topic, &m.payload),
            _ => {
                warn!(topic = %m.topic, "message from an unexpected topic ignored");
                return;
            }
        };
        match result {
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
    /// Also checkpoints the detectors and the log miner with its line
    /// counts, so that what is stored and what they have learned describe
    /// the same point of the stream.
    pub async fn flush(self: &Arc<Self>) -> Result<(), AnalyzerError> {
        let this = self.clone();
        let expired = tokio::task::spawn_blocking(move || {
            this.storage.flush()?;
            let expired = this.storage.apply_retention(
                now_ms(),
                this.config.retention,
                this.config.retention_bytes,
            )?;
            if let Some(path) = &this.checkpoint {
                this.scores
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .save(path)?;
            }
            if let Some(path) = this.log_checkpoint() {
                // Encoded under the lock, written outside it.
                let bytes = this
                    .logs
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .encode()?;
                crate::state_file::write_atomic(&path, &bytes)?;
            }
            Ok::<usize, AnalyzerError>(expired)
        })
        .await
        .map_err(|e| AnalyzerError::Io {
            path: "flush task".into(),
            source: std::io::Error::other(e.to_string()),
        })??;
        // Series that only expired files held leave the series table; a
        // failure here costs memory, not data: logged, counted, retried
        // after the next expiry.
        if expired > 0
            && let Err(e) = self.storage.prune_series().await
        {
            ERRORS.with_label_values(&["storage", "prune_series"]).inc();
            warn!(error = %e, "cannot prune the series table");
        }
        Ok(())
    }

    /// Rows held in memory: the samples head plus the logs head.
    fn head_rows(&self) -> usize {
        self.storage.head_rows() + self.storage.logs().map_or(0, Storage::head_rows)
    }

    /// Consumes `subscriber` until `shutdown`, flushing every
    /// `flush_interval` (or when the head is full) and committing the
    /// positions of everything flushed. Flushes once more on the way out.
    ///
    /// When a flush fails, nothing is committed and the head keeps the
    /// rows. Below `max_head_rows` consumption goes on and the next flush
    /// retries; once the head is full, the loop stops receiving and
    /// retries the flush with a back-off (up to [`MAX_FLUSH_BACKOFF`])
    /// until it succeeds: the bus holds the backlog (Kafka on disk; the
    /// memory bus's bounded channels, whose collectors then drop and
    /// count), so memory stays bounded by `max_head_rows` plus one
    /// message.
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
                            self.head_rows() >= self.config.max_head_rows
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
                if flush_now
                    && !self.flush_and_commit(&mut *subscriber, &mut pending).await
                    && self.head_rows() >= self.config.max_head_rows
                    && !self
                        .flush_until_stored(&mut *subscriber, &mut pending, &shutdown)
                        .await
                {
                    break;
                }
            }
            self.flush_and_commit(&mut *subscriber, &mut pending).await;
        }
        .instrument(span)
        .await
    }

    /// The head is full and storage fails: retries the flush, without
    /// receiving, until it succeeds (true) or `shutdown` (false).
    async fn flush_until_stored(
        self: &Arc<Self>,
        subscriber: &mut dyn Subscriber,
        pending: &mut BTreeMap<(String, i32), i64>,
        shutdown: &CancellationToken,
    ) -> bool {
        warn!(
            head_rows = self.head_rows(),
            max_head_rows = self.config.max_head_rows,
            "head full and storage failing: consumption paused until a flush succeeds"
        );
        let mut backoff = Duration::from_millis(100);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return false,
                () = tokio::time::sleep(backoff) => {}
            }
            if self.flush_and_commit(subscriber, pending).await {
                info!("storage writable again: consumption resumes");
                return true;
            }
            backoff = (backoff * 2).min(MAX_FLUSH_BACKOFF);
        }
    }

    /// Flushes, then commits `pending` if the flush worked; returns
    /// whether it did.
    async fn flush_and_commit(
        self: &Arc<Self>,
        subscriber: &mut dyn Subscriber,
        pending: &mut BTreeMap<(String, i32), i64>,
    ) -> bool {
        if let Err(e) = self.flush().await {
            ERRORS.with_label_values(&["storage", "flush"]).inc();
            error!(error = %e, "flush failed; offsets not committed, will retry");
            return false;
        }
        for ((topic, partition), offset) in std::mem::take(pending) {
            let position = Position { partition, offset };
            if let Err(e) = subscriber.commit(&topic, position).await {
                ERRORS.with_label_values(&["pipeline", "commit"]).inc();
                warn!(error = %e, %topic, partition, offset, "commit failed");
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigie_bus::memory::MemoryBus;
    use vigie_model::LogRecord;
    use vigie_model::log_schema::logs_to_batch;

    fn payload(bodies: &[&str]) -> Vec<u8> {
        let records: Vec<LogRecord> = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| LogRecord {
                ts_ms: 1_000 + i as i64,
                labels: Labels::new().with("source", "/tmp/app.log"),
                severity: Some("info".into()),
                body: (*b).to_string(),
            })
            .collect();
        codec::encode_batch(&logs_to_batch(&records).expect("batch")).expect("encode")
    }

    fn first_i64(batches: &[datafusion::arrow::array::RecordBatch]) -> i64 {
        let col = datafusion::arrow::compute::cast(
            batches[0].column(0),
            &datafusion::arrow::datatypes::DataType::Int64,
        )
        .expect("cast");
        col.as_any()
            .downcast_ref::<datafusion::arrow::array::Int64Array>()
            .expect("i64")
            .value(0)
    }

    #[tokio::test]
    async fn logs_are_templated_stored_and_counted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Arc::new(Storage::open(dir.path(), 1).expect("open"));
        let analyzer = Analyzer::new(
            AnalyzerConfig::default(),
            storage.clone(),
            Arc::new(MemoryBus::new(4)),
        );
        let lines = [
            "user 1 logged in from 10.0.0.1",
            "user 22 logged in from 10.0.0.2",
            "disk full on /var",
            "user 333 logged in from 10.0.0.3",
        ];
        assert_eq!(
            analyzer
                .ingest_logs(topics::LOGS, &payload(&lines))
                .expect("ingest"),
            4
        );
        let n = storage
            .sql("SELECT count(DISTINCT template_id) FROM logs")
            .await
            .expect("sql");
        assert_eq!(first_i64(&n), 2);
        storage.flush().expect("flush");
        assert_eq!(storage.logs().expect("logs").files().len(), 1);
        let n = storage
            .sql("SELECT max(value) FROM samples WHERE metric = 'vigie_log_lines_total'")
            .await
            .expect("sql");
        assert_eq!(first_i64(&n), 3);
        let n = storage
            .sql("SELECT count(*) FROM samples WHERE metric = 'vigie_log_new_template'")
            .await
            .expect("sql");
        assert_eq!(first_i64(&n), 2);
        assert!(analyzer.ingest_logs(topics::LOGS, b"garbage").is_err());
    }

    #[tokio::test]
    async fn bad_log_bodies_are_processed_or_counted_never_a_panic() {
        use crate::metrics::{LOG_LINES_REJECTED, LOG_LINES_TRUNCATED};
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Arc::new(Storage::open(dir.path(), 1).expect("open"));
        let analyzer = Analyzer::new(
            AnalyzerConfig::default(),
            storage.clone(),
            Arc::new(MemoryBus::new(4)),
        );
        let rejected = LOG_LINES_REJECTED.with_label_values(&["empty"]).get();
        let truncated = LOG_LINES_TRUNCATED.get();
        let garbage =
            String::from_utf8_lossy(&[0xff, 0x00, 0xfe, b' ', 0x1b, b'[', 0xc3]).into_owned();
        let one_mb = "y".repeat(1 << 20);
        let many_words = "w ".repeat(600_000);
        let bodies = ["", "\n\t ", &garbage, &one_mb, &many_words, "\u{0}\u{0}"];
        let n = analyzer
            .ingest_logs(topics::LOGS, &payload(&bodies))
            .expect("ingest");
        assert_eq!(n, bodies.len(), "every record is stored");
        assert!(LOG_LINES_REJECTED.with_label_values(&["empty"]).get() >= rejected + 2);
        assert!(LOG_LINES_TRUNCATED.get() > truncated);
        let n = storage
            .sql("SELECT count(*) FROM logs WHERE template_id IS NOT NULL")
            .await
            .expect("sql");
        assert_eq!(first_i64(&n), 4, "the non-empty bodies are mined");
    }

    #[tokio::test]
    async fn template_ids_and_line_counts_survive_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let checkpoint = dir.path().join("state").join("detectors.cbor");
        let start = || {
            let storage = Arc::new(Storage::open(dir.path(), 1).expect("open"));
            let analyzer = Arc::new(
                Analyzer::new(
                    AnalyzerConfig::default(),
                    storage.clone(),
                    Arc::new(MemoryBus::new(4)),
                )
                .with_checkpoint(checkpoint.clone()),
            );
            (storage, analyzer)
        };
        let lines = [
            "user 1 logged in",
            "user 22 logged in",
            "",
            "disk full on /var",
        ];
        let (_, first) = start();
        first.restore().await.expect("restore");
        first
            .ingest_logs(topics::LOGS, &payload(&lines))
            .expect("ingest");
        first.flush().await.expect("flush");
        assert!(dir.path().join("state/logminer.cbor").is_file());
        let ids: Vec<u64> = {
            let state = first.logs.lock().expect("lock");
            state.miner().templates().iter().map(|t| t.0).collect()
        };
        drop(first);

        let (storage, second) = start();
        second.restore().await.expect("restore");
        second
            .ingest_logs(topics::LOGS, &payload(&lines))
            .expect("ingest");
        {
            let state = second.logs.lock().expect("lock");
            let again: Vec<u64> = state.miner().templates().iter().map(|t| t.0).collect();
            assert_eq!(again, ids, "same templates, same ids");
            assert_eq!(state.count(ids[0], "/tmp/app.log", "info"), 4);
        }
        // The counter sample after the restart continues from 2 to 4.
        let n = storage
            .sql("SELECT max(value) FROM samples WHERE metric = 'vigie_log_lines_total'")
            .await
            .expect("sql");
        assert_eq!(first_i64(&n), 4);
        let n = storage
            .sql("SELECT count(*) FROM samples WHERE metric = 'vigie_log_new_template'")
            .await
            .expect("sql");
        assert_eq!(first_i64(&n), 2, "no template is new again after a restart");
        let n = storage
            .sql("SELECT count(*) FROM logs WHERE template_id IS NULL")
            .await
            .expect("sql");
        assert_eq!(first_i64(&n), 2, "empty bodies stored without a template");
    }

    /// One message of five samples, each of its own series (so no
    /// detector scores add rows), recent (so retention keeps them).
    fn metrics_message(i: usize) -> vigie_bus::Message {
        let ts = now_ms() - 60_000 + i as i64;
        let samples: Vec<Sample> = (0..5)
            .map(|j| {
                let labels = Labels::new()
                    .with("m", i.to_string())
                    .with("j", j.to_string());
                Sample::new("stall_test", labels, ts, j as f64)
            })
            .collect();
        let payload =
            codec::encode_batch(&samples_to_batch(&samples).expect("batch")).expect("encode");
        vigie_bus::Message::new(topics::METRICS, vec![0, 0, 0, 0], payload)
    }

    /// Storage fails with the head full: the loop stops receiving (the
    /// head stays at max_head_rows, the bus's channel fills and the
    /// publisher times out), then resumes when storage works again, and
    /// every sample is stored once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_flush_with_a_full_head_stops_consumption_until_storage_works() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Arc::new(Storage::open(dir.path(), 1).expect("open"));
        let config = AnalyzerConfig {
            max_head_rows: 10,
            flush_interval: Duration::from_secs(3600),
            ..AnalyzerConfig::default()
        };
        let bus = MemoryBus::new(4);
        let sub = bus.subscribe(&[topics::METRICS]);
        let analyzer = Arc::new(Analyzer::new(
            config,
            storage.clone(),
            Arc::new(bus.clone()),
        ));
        // The samples directory becomes a file: every flush fails.
        let samples_dir = dir.path().join("samples");
        let away = dir.path().join("samples.away");
        std::fs::create_dir_all(&samples_dir).expect("samples dir");
        std::fs::rename(&samples_dir, &away).expect("move away");
        std::fs::write(&samples_dir, b"not a directory").expect("block");
        let failed_flushes = || ERRORS.with_label_values(&["storage", "flush"]).get();
        let failed_before = failed_flushes();

        let shutdown = CancellationToken::new();
        let run = tokio::spawn(analyzer.clone().run(Box::new(sub), shutdown.clone()));
        let mut sent = 0;
        let mut timeouts = 0;
        // Until the bus refuses: the analyzer stopped reading.
        while timeouts == 0 {
            assert!(sent < 40, "the analyzer kept reading {sent} messages");
            match bus
                .publish_within(metrics_message(sent), Duration::from_millis(500))
                .await
            {
                Ok(()) => sent += 1,
                Err(e) => {
                    assert!(e.is_backpressure(), "{e}");
                    timeouts += 1;
                }
            }
        }
        // Two messages filled the head, four wait in the channel.
        assert_eq!(sent, 2 + 4);
        assert_eq!(storage.head_rows(), 10, "the head stops at max_head_rows");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while failed_flushes() < failed_before + 3 {
            assert!(std::time::Instant::now() < deadline, "flush retried");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(storage.head_rows(), 10, "no growth while retrying");

        // Storage comes back: the backlog is consumed, then the rest.
        std::fs::remove_file(&samples_dir).expect("unblock");
        std::fs::rename(&away, &samples_dir).expect("restore");
        for i in sent..12 {
            bus.publish_within(metrics_message(i), Duration::from_secs(30))
                .await
                .expect("consumption resumed");
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let n = storage
                .sql("SELECT count(*) FROM samples WHERE metric = 'stall_test'")
                .await
                .expect("sql");
            if first_i64(&n) == 60 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "all 60 samples stored"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), run)
            .await
            .expect("stops")
            .expect("no panic");
        assert_eq!(storage.head_rows(), 0, "the last flush wrote everything");
        let distinct = storage
            .sql("SELECT count(*) FROM (SELECT DISTINCT series_id, ts FROM samples)")
            .await
            .expect("sql");
        assert_eq!(first_i64(&distinct), 60, "each sample once");
    }
}
