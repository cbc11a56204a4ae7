//! Operator feedback on anomaly scores (`POST /api/v1/feedback`).
//!
//! An operator marks a time window of one or more series (a PromQL
//! selector) as a **false alarm** or a **missed anomaly**; each series'
//! [`Calibration`] learns from it and shapes every later score of that
//! series:
//!
//! - false alarm: the values the series took in the window (its scored
//!   values: the per-second rate for counters) become a *known-normal*
//!   range; a later point inside a known-normal range (widened by 10 % of
//!   its width) scores at most [`NORMAL_CAP`], below any alerting
//!   threshold, so the same pattern does not page again, while a value
//!   outside every such range (a real anomaly) scores as before. The
//!   detectors themselves still learn from every point.
//! - missed anomaly: the highest score the series got in the window, `m`,
//!   sets a gain `k` so that `1 − (1 − m)^k` reaches [`TARGET_SCORE`]:
//!   later scores become `1 − (1 − s)^k`, so a deviation as large as the
//!   missed one now crosses the usual 0.9999 threshold; `k` is at most
//!   [`MAX_GAIN`].
//!
//! In a consumer group each analyzer scores the series of its own
//! partitions, so the analyzer that receives feedback calibrates the series
//! it holds and, with [`Analyzer::with_feedback_bus`], shares the feedback
//! on `vigie.feedback`; every other analyzer reads that topic in a consumer
//! group of its own ([`Analyzer::run_shared_feedback`]) and calibrates the
//! series it holds. Each analyzer logs what it applied.
//!
//! Not here: shape matching beyond value ranges.

use std::io::Write;
use std::sync::Arc;

use promql_parser::label::{MatchOp, Matcher, Matchers};
use promql_parser::parser::Expr;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};
use vigie_bus::{Message, Publisher, Subscriber};
use vigie_model::{Labels, SeriesKey, topics};

use crate::AnalyzerError;
use crate::metrics::{ERRORS, FEEDBACK};
use crate::pipeline::Analyzer;
use crate::promql::value::{NAME, bad};
use crate::promql::{parse, selector_matchers};
use crate::score::{ANOMALY_SCORE, FOR_LABEL, scored_values};

/// Highest score of a point inside a known-normal range.
pub const NORMAL_CAP: f64 = 0.5;
/// Score a missed anomaly's peak reaches after calibration.
pub const TARGET_SCORE: f64 = 0.99999;
/// Largest gain a missed anomaly sets.
pub const MAX_GAIN: f64 = 20.0;
/// Known-normal ranges kept per series (the oldest goes first).
const MAX_RANGES: usize = 16;

/// What the operator says about a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedbackKind {
    /// The scores were high but nothing was wrong.
    FalseAlarm,
    /// Something was wrong but the scores stayed low.
    MissedAnomaly,
}

impl FeedbackKind {
    /// `false_alarm` or `missed_anomaly`.
    pub fn as_str(self) -> &'static str {
        match self {
            FeedbackKind::FalseAlarm => "false_alarm",
            FeedbackKind::MissedAnomaly => "missed_anomaly",
        }
    }
}

/// Body of `POST /api/v1/feedback`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Feedback {
    /// A PromQL vector selector naming the series, e.g.
    /// `node_load1{instance="a"}`.
    pub series: String,
    /// Start of the window: Unix seconds.
    pub start: f64,
    /// End of the window: Unix seconds.
    pub end: f64,
    /// What happened in the window.
    pub kind: FeedbackKind,
    /// Free text kept with the record.
    #[serde(default)]
    pub comment: String,
}

impl Feedback {
    /// The window in ms, or why it is unusable.
    pub fn window_ms(&self) -> Result<(i64, i64), String> {
        if !self.start.is_finite() || !self.end.is_finite() {
            return Err("start and end must be Unix seconds".into());
        }
        if self.start > self.end {
            return Err(format!(
                "start ({}) is after end ({})",
                self.start, self.end
            ));
        }
        Ok((
            (self.start * 1000.0).floor() as i64,
            (self.end * 1000.0).ceil() as i64,
        ))
    }
}

/// What one series learned from feedback.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Known-normal value ranges (inclusive).
    normal: Vec<(f64, f64)>,
    /// Gain of missed anomalies (0 or 1: none).
    gain: f64,
}

impl Calibration {
    /// Learns that `values` were normal. Returns false when there is no
    /// finite value to learn from.
    pub fn mark_normal(&mut self, values: &[f64]) -> bool {
        let finite = values.iter().copied().filter(|v| v.is_finite());
        let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
        if lo > hi {
            return false;
        }
        let margin = 0.1 * (hi - lo) + 1e-9 * hi.abs().max(lo.abs());
        if self.normal.len() == MAX_RANGES {
            self.normal.remove(0);
        }
        self.normal.push((lo - margin, hi + margin));
        true
    }

    /// Learns that a window whose highest score was `max_score` held an
    /// anomaly.
    pub fn mark_missed(&mut self, max_score: f64) {
        let m = if max_score.is_finite() {
            max_score.clamp(0.0, 1.0 - 1e-12)
        } else {
            0.0
        };
        let k = if m <= 0.0 {
            MAX_GAIN
        } else {
            ((1.0 - TARGET_SCORE).ln() / (1.0 - m).ln()).clamp(1.0, MAX_GAIN)
        };
        self.gain = self.gain.max(k);
    }

    /// True when nothing was learned.
    pub fn is_empty(&self) -> bool {
        self.normal.is_empty() && self.gain <= 1.0
    }

    /// The calibrated score of a point with scored value `value` and raw
    /// score `score`.
    pub fn apply(&self, value: f64, score: f64) -> f64 {
        let mut s = score;
        if self.gain > 1.0 {
            s = 1.0 - (1.0 - s).powf(self.gain);
        }
        if self
            .normal
            .iter()
            .any(|(lo, hi)| (*lo..=*hi).contains(&value))
        {
            s = s.min(NORMAL_CAP);
        }
        s
    }
}

/// A stored feedback record (`GET /api/v1/feedback`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackRecord {
    /// What the operator sent.
    #[serde(flatten)]
    pub feedback: Feedback,
    /// When it was received (Unix seconds).
    pub received: f64,
    /// The series it calibrated here (`metric{labels}`).
    pub applied_to: Vec<String>,
    /// Shared with the other analyzers on `vigie.feedback`.
    #[serde(default)]
    pub shared: bool,
    /// The analyzer that received it, when it came from `vigie.feedback`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

/// A feedback shared on `vigie.feedback`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharedFeedback {
    /// What the operator sent.
    pub feedback: Feedback,
    /// The analyzer that received it (it does not apply it twice).
    pub origin: String,
}

/// File of the feedback log, beside the detector checkpoint.
const LOG_FILE: &str = "feedback.jsonl";

impl Analyzer {
    fn feedback_log(&self) -> Option<std::path::PathBuf> {
        Some(self.checkpoint.as_ref()?.with_file_name(LOG_FILE))
    }

    /// Shares every feedback this analyzer receives on `vigie.feedback`
    /// through `publisher`, as analyzer `origin`.
    pub fn with_feedback_bus(mut self, publisher: Arc<dyn Publisher>, origin: String) -> Self {
        self.feedback_bus = Some((publisher, origin));
        self
    }

    /// Applies `fb` to every stored series its selector matches in its
    /// window, shares it with the other analyzers (with a feedback bus),
    /// appends it to the feedback log, and returns the record. An error
    /// when nothing matched here and it could not be shared (nothing was
    /// done anywhere, so the caller may send it again). When it applied
    /// here but sharing failed, the record says `shared: false` and the
    /// failure is logged and counted: an error would make the operator
    /// send it again and calibrate these series twice.
    pub async fn feedback(&self, fb: Feedback) -> Result<FeedbackRecord, AnalyzerError> {
        let applied = self.calibrate(&fb).await?;
        let shared = match &self.feedback_bus {
            Some((publisher, origin)) => {
                let message = SharedFeedback {
                    feedback: fb.clone(),
                    origin: origin.clone(),
                };
                let payload = serde_json::to_vec(&message).map_err(|e| bad(e.to_string()))?;
                let sent = publisher
                    .publish(Message::new(
                        topics::FEEDBACK,
                        fb.series.as_bytes().to_vec(),
                        payload,
                    ))
                    .await;
                match sent {
                    Ok(()) => true,
                    Err(e) if applied.is_empty() => return Err(e.into()),
                    Err(e) => {
                        ERRORS.with_label_values(&["feedback", "share"]).inc();
                        warn!(error = %e, series = %fb.series, applied = applied.len(),
                              "feedback applied here but not shared with the other analyzers");
                        false
                    }
                }
            }
            None => false,
        };
        if applied.is_empty() && !shared {
            return Err(bad(format!(
                "no scored series matches `{}` between {} and {}",
                fb.series, fb.start, fb.end
            )));
        }
        self.record(fb, applied, shared, None)
    }

    /// Applies a feedback another analyzer shared (a `vigie.feedback`
    /// payload) to the series this analyzer holds. `Ok(None)` when it is
    /// this analyzer's own or matches none of its series.
    pub async fn apply_shared_feedback(
        &self,
        payload: &[u8],
    ) -> Result<Option<FeedbackRecord>, AnalyzerError> {
        let message: SharedFeedback = serde_json::from_slice(payload)
            .map_err(|e| bad(format!("unreadable shared feedback: {e}")))?;
        if self
            .feedback_bus
            .as_ref()
            .is_some_and(|(_, me)| *me == message.origin)
        {
            return Ok(None);
        }
        let applied = self.calibrate(&message.feedback).await?;
        if applied.is_empty() {
            return Ok(None);
        }
        self.record(message.feedback, applied, false, Some(message.origin))
            .map(Some)
    }

    /// Reads `vigie.feedback` from `subscriber` (a consumer group of this
    /// analyzer's own, so it sees every feedback) until `shutdown`,
    /// applying each and committing it once applied. An unusable message
    /// is counted and skipped.
    pub async fn run_shared_feedback(
        self: Arc<Self>,
        mut subscriber: Box<dyn Subscriber>,
        shutdown: CancellationToken,
    ) {
        async move {
            loop {
                let delivery = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    d = subscriber.recv() => d,
                };
                match delivery {
                    Ok(Some(d)) => {
                        match self.apply_shared_feedback(&d.message.payload).await {
                            Ok(Some(record)) => {
                                info!(series = %record.feedback.series, applied = record.applied_to.len(), from = ?record.from, "applied shared feedback");
                            }
                            Ok(None) => {}
                            Err(e) => {
                                ERRORS.with_label_values(&["feedback", "shared"]).inc();
                                warn!(error = %e, offset = d.position.offset, "shared feedback skipped");
                            }
                        }
                        if let Err(e) = subscriber.commit(&d.message.topic, d.position).await {
                            ERRORS.with_label_values(&["feedback", "commit"]).inc();
                            warn!(error = %e, "committing shared feedback failed");
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        ERRORS.with_label_values(&["feedback", "receive"]).inc();
                        warn!(error = %e, "reading vigie.feedback failed; retrying");
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    }
                }
            }
        }
        .instrument(info_span!("feedback"))
        .await
    }

    /// Calibrates every series this analyzer holds that `fb` names, and
    /// returns them (`metric{labels}`).
    async fn calibrate(&self, fb: &Feedback) -> Result<Vec<String>, AnalyzerError> {
        let (start, end) = fb.window_ms().map_err(bad)?;
        let Expr::VectorSelector(vs) = parse(&fb.series)? else {
            return Err(bad(format!(
                "series `{}` must be a vector selector such as node_load1{{instance=\"a\"}}",
                fb.series
            )));
        };
        let selected = self
            .storage
            .select_series(&selector_matchers(&vs), Some(start), Some(end))
            .await?;
        let mut applied = Vec::new();
        for (mut labels, points) in selected {
            let Some(metric) = labels.remove(NAME) else {
                continue;
            };
            if labels.contains_key(FOR_LABEL) {
                continue; // the analyzer's own outputs
            }
            let key = SeriesKey::new(metric.clone(), labels.iter().collect::<Labels>());
            let max_score = match fb.kind {
                FeedbackKind::FalseAlarm => 0.0,
                FeedbackKind::MissedAnomaly => {
                    let mut m = vec![
                        Matcher::new(MatchOp::Equal, NAME, ANOMALY_SCORE),
                        Matcher::new(MatchOp::Equal, FOR_LABEL, &metric),
                    ];
                    m.extend(
                        labels
                            .iter()
                            .map(|(k, v)| Matcher::new(MatchOp::Equal, k, v)),
                    );
                    self.storage
                        .select_series(&Matchers::new(m), Some(start), Some(end))
                        .await?
                        .iter()
                        .flat_map(|(_, p)| p.iter().map(|p| p.1))
                        .fold(0.0, f64::max)
                }
            };
            let values = scored_values(&metric, &points);
            let done = self
                .scores
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .calibrate(key.id(), fb.kind, &values, max_score);
            if done {
                applied.push(format!("{metric}{}", key.labels));
            }
        }
        Ok(applied)
    }

    /// Counts and logs one applied feedback.
    fn record(
        &self,
        fb: Feedback,
        applied: Vec<String>,
        shared: bool,
        from: Option<String>,
    ) -> Result<FeedbackRecord, AnalyzerError> {
        FEEDBACK.with_label_values(&[fb.kind.as_str()]).inc();
        let record = FeedbackRecord {
            feedback: fb,
            received: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
            applied_to: applied,
            shared,
            from,
        };
        if let Some(path) = self.feedback_log() {
            let io = |source| AnalyzerError::Io {
                path: path.clone(),
                source,
            };
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            let mut line = serde_json::to_string(&record)
                .map_err(|e| io(std::io::Error::other(e.to_string())))?;
            line.push('\n');
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .and_then(|mut f| f.write_all(line.as_bytes()).and_then(|_| f.sync_data()))
                .map_err(io)?;
        }
        Ok(record)
    }

    /// Every feedback record received, oldest first (unreadable lines are
    /// skipped).
    pub fn feedback_records(&self) -> Vec<FeedbackRecord> {
        let Some(text) = self
            .feedback_log()
            .and_then(|p| std::fs::read_to_string(p).ok())
        else {
            return Vec::new();
        };
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use vigie_bus::memory::MemoryBus;

    /// Feedback applied here whose sharing fails is still a success (sent
    /// again, it would calibrate the series twice); one that applied
    /// nowhere and could not be shared is an error the caller may retry.
    #[tokio::test]
    async fn a_feedback_applied_here_is_kept_when_sharing_it_fails() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Arc::new(crate::storage::Storage::open(dir.path(), 1).expect("open"));
        // Room for one shared feedback, which nobody reads.
        let bus = MemoryBus::new(1).with_publish_timeout(Duration::from_millis(50));
        let _never_read = bus.subscribe(&[topics::FEEDBACK]);
        let analyzer = Analyzer::new(
            crate::config::AnalyzerConfig::default(),
            storage,
            Arc::new(MemoryBus::new(64)),
        )
        .with_feedback_bus(Arc::new(bus), "a".into());
        let start_ms = 1_700_000_000_000;
        for i in 0..30 {
            let samples = vec![vigie_model::Sample::new(
                "fb_share_test",
                Labels::new().with("host", "h"),
                start_ms + i * 15_000,
                if i == 25 { 90.0 } else { (i % 3) as f64 },
            )];
            let batch = vigie_model::schema::samples_to_batch(&samples).expect("batch");
            let payload = vigie_model::codec::encode_batch(&batch).expect("encode");
            analyzer.ingest(topics::METRICS, &payload).expect("ingest");
        }
        let fb = |series: &str| Feedback {
            series: series.into(),
            start: (start_ms / 1000) as f64,
            end: (start_ms / 1000 + 30 * 15) as f64,
            kind: FeedbackKind::FalseAlarm,
            comment: String::new(),
        };
        let first = analyzer.feedback(fb("fb_share_test")).await.expect("first");
        assert!(first.shared && first.applied_to.len() == 1, "{first:?}");
        let errors = || ERRORS.with_label_values(&["feedback", "share"]).get();
        let before = errors();
        let second = analyzer
            .feedback(fb("fb_share_test"))
            .await
            .expect("applied here: not an error");
        assert!(!second.shared, "{second:?}");
        assert_eq!(second.applied_to, first.applied_to);
        assert_eq!(errors(), before + 1);
        let nowhere = analyzer.feedback(fb("fb_share_test_absent")).await;
        assert!(matches!(nowhere, Err(AnalyzerError::Bus(_))), "{nowhere:?}");
    }

    #[test]
    fn a_false_alarm_caps_scores_inside_its_range_only() {
        let mut c = Calibration::default();
        assert!(c.is_empty());
        assert!(!c.mark_normal(&[f64::NAN]));
        assert!(c.mark_normal(&[10.0, 50.0, 30.0]));
        assert_eq!(c.apply(50.0, 1.0), NORMAL_CAP);
        assert_eq!(c.apply(53.9, 1.0), NORMAL_CAP, "within the 10% margin");
        assert_eq!(c.apply(6.1, 0.2), 0.2, "low scores are kept");
        assert_eq!(c.apply(500.0, 1.0), 1.0, "a real anomaly still scores");
        assert_eq!(c.apply(-5.0, 0.9), 0.9);
    }

    #[test]
    fn a_missed_anomaly_raises_the_peak_to_the_target() {
        let mut c = Calibration::default();
        c.mark_missed(0.9);
        let peak = c.apply(0.0, 0.9);
        assert!((peak - TARGET_SCORE).abs() < 1e-9, "{peak}");
        assert!(c.apply(0.0, 0.5) > 0.5 && c.apply(0.0, 0.5) < peak);
        assert_eq!(c.apply(0.0, 0.0), 0.0, "no deviation stays 0");
        let mut none = Calibration::default();
        none.mark_missed(0.0);
        assert!(
            none.apply(0.0, 0.1) > 0.1,
            "no score at all: the largest gain"
        );
    }

    #[test]
    fn window_must_be_ordered_and_finite() {
        let fb = |start, end| Feedback {
            series: "x".into(),
            start,
            end,
            kind: FeedbackKind::FalseAlarm,
            comment: String::new(),
        };
        assert_eq!(fb(1.5, 2.0).window_ms(), Ok((1500, 2000)));
        assert!(fb(3.0, 2.0).window_ms().is_err());
        assert!(fb(f64::NAN, 2.0).window_ms().is_err());
        let parsed: Feedback = serde_json::from_str(
            r#"{"series":"x{a=\"b\"}","start":1,"end":2,"kind":"missed_anomaly"}"#,
        )
        .expect("json");
        assert_eq!(parsed.kind, FeedbackKind::MissedAnomaly);
        assert!(
            serde_json::from_str::<Feedback>(r#"{"series":"x","start":1,"end":2,"kind":"meh"}"#)
                .is_err()
        );
    }
}
