//! `vigie eval bgl`: precision and recall of Vigie's log alerting signals on
//! Loghub's BGL sample, whose lines carry an alert label (first field `-`
//! for a normal line, otherwise the alert category).
//!
//! `<data>/BGL/BGL_2k.log` is streamed in file order. Each line is split with
//! BGL's header format ([`super::loghub::DEFAULT_FORMATS`]); its message goes
//! through one [`TemplateMiner`] with the default configuration, as in the
//! running pipeline, and the line's running count per (template, level) goes,
//! as the sample `vigie_log_lines_total{template_id, source, level}` at the
//! line's time, through a [`ScoreBank`] with the analyzer's default detector
//! settings (the same ensemble, scored on the counter's rate). A line is
//! flagged by:
//!
//! - `new_template`: the line created a template (the pipeline's
//!   `vigie_log_new_template` event);
//! - `error_level`: its `Level` field is one of [`ERROR_LEVELS`];
//! - `rate_anomaly`: the anomaly score of its template's counter at this line
//!   exceeds the threshold (default 0.9999, as `rules/anomaly.yml` uses);
//! - `any`: one of the three.
//!
//! Each signal is scored against the label: precision, recall and F1 over
//! lines, plus recall per alert category.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use vigie_model::{Labels, Sample};

use crate::logs::{HeaderFormat, MinerConfig, TemplateMiner};
use crate::pipeline::LOG_LINES_TOTAL;
use crate::score::ScoreBank;
use crate::{AnalyzerConfig, AnalyzerError};

/// Levels that flag a line by themselves (upper case).
pub const ERROR_LEVELS: &[&str] = &[
    "ERROR", "ERR", "FATAL", "FAILURE", "SEVERE", "CRITICAL", "CRIT", "ALERT", "EMERG", "PANIC",
];

/// Anomaly score above which a count is a rate anomaly by default (the
/// threshold of the rule library's anomaly alerts).
pub const DEFAULT_THRESHOLD: f64 = 0.9999;

/// Signal names, in report order.
pub const SIGNALS: [&str; 4] = ["new_template", "error_level", "rate_anomaly", "any"];

/// Options of `vigie eval bgl`.
#[derive(Debug, Clone)]
pub struct BglOptions {
    /// Loghub directory holding `BGL/BGL_2k.log`.
    pub data: PathBuf,
    /// Anomaly score above which a line's count is a rate anomaly.
    pub threshold: f64,
}

/// Counts of a binary classification.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Confusion {
    /// Flagged alert lines.
    pub true_positives: usize,
    /// Flagged normal lines.
    pub false_positives: usize,
    /// Alert lines not flagged.
    pub false_negatives: usize,
    /// Normal lines not flagged.
    pub true_negatives: usize,
}

impl Confusion {
    /// Counts one line.
    pub fn add(&mut self, flagged: bool, alert: bool) {
        match (flagged, alert) {
            (true, true) => self.true_positives += 1,
            (true, false) => self.false_positives += 1,
            (false, true) => self.false_negatives += 1,
            (false, false) => self.true_negatives += 1,
        }
    }

    /// Share of flagged lines that are alerts (0 when nothing is flagged).
    pub fn precision(&self) -> f64 {
        ratio(
            self.true_positives,
            self.true_positives + self.false_positives,
        )
    }

    /// Share of alert lines flagged (0 when there is no alert).
    pub fn recall(&self) -> f64 {
        ratio(
            self.true_positives,
            self.true_positives + self.false_negatives,
        )
    }

    /// Harmonic mean of precision and recall (0 when both are 0).
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
}

fn ratio(num: usize, den: usize) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// The score of one signal.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SignalScore {
    /// Signal name (see [`SIGNALS`]).
    pub signal: String,
    /// Line counts.
    pub confusion: Confusion,
    /// Alert lines flagged per alert category: `(flagged, total)`.
    pub by_category: BTreeMap<String, (usize, usize)>,
}

/// The evaluation's result.
#[derive(Debug, Clone)]
pub struct BglReport {
    /// Lines read.
    pub lines: usize,
    /// Alert lines (label other than `-`).
    pub alerts: usize,
    /// Templates mined.
    pub templates: usize,
    /// Lines that did not match the header format (mined whole).
    pub unmatched_header_lines: usize,
    /// The threshold used for `rate_anomaly`.
    pub threshold: f64,
    /// One score per signal, in [`SIGNALS`] order.
    pub signals: Vec<SignalScore>,
}

impl BglReport {
    /// `{"lines", "alerts", "templates", "threshold", "signals": {name:
    /// {"precision", "recall", "f1", "true_positives", ..., "by_category"}}}`.
    pub fn to_json(&self) -> serde_json::Value {
        let signals: serde_json::Map<String, serde_json::Value> = self
            .signals
            .iter()
            .map(|s| {
                let c = &s.confusion;
                let by_category: serde_json::Map<String, serde_json::Value> = s
                    .by_category
                    .iter()
                    .map(|(k, (hit, n))| {
                        (k.clone(), serde_json::json!({ "flagged": hit, "lines": n }))
                    })
                    .collect();
                (
                    s.signal.clone(),
                    serde_json::json!({
                        "precision": c.precision(),
                        "recall": c.recall(),
                        "f1": c.f1(),
                        "true_positives": c.true_positives,
                        "false_positives": c.false_positives,
                        "false_negatives": c.false_negatives,
                        "true_negatives": c.true_negatives,
                        "by_category": by_category,
                    }),
                )
            })
            .collect();
        serde_json::json!({
            "lines": self.lines,
            "alerts": self.alerts,
            "templates": self.templates,
            "unmatched_header_lines": self.unmatched_header_lines,
            "threshold": self.threshold,
            "signals": signals,
        })
    }
}

impl std::fmt::Display for BglReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "BGL: {} lines, {} alerts, {} templates, rate threshold {}",
            self.lines, self.alerts, self.templates, self.threshold
        )?;
        writeln!(
            f,
            "{:<13}  {:>9}  {:>6}  {:>6}  {:>5}  {:>5}  {:>5}",
            "signal", "precision", "recall", "F1", "TP", "FP", "FN"
        )?;
        for s in &self.signals {
            let c = &s.confusion;
            writeln!(
                f,
                "{:<13}  {:>9.3}  {:>6.3}  {:>6.3}  {:>5}  {:>5}  {:>5}",
                s.signal,
                c.precision(),
                c.recall(),
                c.f1(),
                c.true_positives,
                c.false_positives,
                c.false_negatives
            )?;
        }
        if let Some(any) = self.signals.iter().find(|s| s.signal == "any") {
            write!(f, "alert lines flagged by any signal, per category:")?;
            for (category, (hit, n)) in &any.by_category {
                write!(f, " {category} {hit}/{n}")?;
            }
        }
        Ok(())
    }
}

/// Milliseconds since the epoch of a BGL line: its `Timestamp` field
/// (seconds) plus the milliseconds of its `Time` field
/// (`2005-06-03-15.42.50.675872`).
fn line_ms(timestamp: &str, time: &str) -> Option<i64> {
    let secs: i64 = timestamp.parse().ok()?;
    let micros = time
        .rsplit('.')
        .next()
        .and_then(|f| (f.len() == 6).then(|| f.parse::<i64>().ok()).flatten());
    Some(secs * 1000 + micros.unwrap_or(0) / 1000)
}

/// Runs the evaluation.
pub fn run(options: &BglOptions) -> Result<BglReport, AnalyzerError> {
    let path = options.data.join("BGL").join("BGL_2k.log");
    let raw = std::fs::read(&path).map_err(|source| AnalyzerError::Io {
        path: path.clone(),
        source,
    })?;
    let text = String::from_utf8_lossy(&raw);
    Ok(evaluate(text.lines(), options.threshold))
}

/// Streams BGL lines through the miner and the detectors; see the module docs.
pub fn evaluate<'a>(lines: impl IntoIterator<Item = &'a str>, threshold: f64) -> BglReport {
    let format = super::loghub::DEFAULT_FORMATS
        .iter()
        .find(|(s, _)| *s == "BGL")
        .and_then(|(_, f)| HeaderFormat::new(f).ok());
    let defaults = AnalyzerConfig::default();
    let mut miner = TemplateMiner::new(MinerConfig::default());
    let mut bank = ScoreBank::new(defaults.detector_window, defaults.detector_min_points);
    let mut counts: HashMap<(u64, String), u64> = HashMap::new();
    let mut scores: Vec<SignalScore> = SIGNALS
        .iter()
        .map(|s| SignalScore {
            signal: (*s).to_string(),
            confusion: Confusion::default(),
            by_category: BTreeMap::new(),
        })
        .collect();
    let (mut n, mut alerts, mut unmatched, mut last_ms) = (0, 0, 0, 0i64);
    for line in lines {
        if line.trim().is_empty() {
            continue;
        }
        n += 1;
        let label = line.split_whitespace().next().unwrap_or("-");
        let alert = label != "-";
        alerts += usize::from(alert);
        let split = format.as_ref().and_then(|f| f.split(line));
        let field = |name: &str| {
            split
                .as_ref()
                .and_then(|s| s.fields.iter().find(|(k, _)| *k == name))
                .map_or("", |(_, v)| *v)
        };
        let (level, ts) = (field("Level"), line_ms(field("Timestamp"), field("Time")));
        let content = match &split {
            Some(s) => s.content,
            None => {
                unmatched += 1;
                line.trim()
            }
        };
        // Lines without a time keep the previous one (as a tail stamps
        // the read time).
        let ts = ts.unwrap_or(last_ms).max(last_ms);
        last_ms = ts;
        let m = miner.add(content);
        let level = level.to_ascii_uppercase();
        let count = counts.entry((m.id, level.clone())).or_insert(0);
        *count += 1;
        let labels = Labels::new()
            .with("template_id", m.id.to_string())
            .with("source", "BGL")
            .with("level", level.to_ascii_lowercase());
        let sample = Sample::new(LOG_LINES_TOTAL, labels, ts, *count as f64);
        let rate_anomaly = bank.score(&[sample]).iter().any(|s| s.value > threshold);
        let error_level = ERROR_LEVELS.contains(&level.as_str());
        let flags = [
            m.is_new,
            error_level,
            rate_anomaly,
            m.is_new || error_level || rate_anomaly,
        ];
        for (score, flagged) in scores.iter_mut().zip(flags) {
            score.confusion.add(flagged, alert);
            if alert {
                let e = score.by_category.entry(label.to_string()).or_default();
                e.0 += usize::from(flagged);
                e.1 += 1;
            }
        }
    }
    BglReport {
        lines: n,
        alerts,
        templates: miner.len(),
        unmatched_header_lines: unmatched,
        threshold,
        signals: scores,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precision_recall_and_f1_by_hand() {
        // flagged:  T T F F T F
        // alert:    T F T F T T
        // TP = 2 (lines 1, 5), FP = 1 (line 2), FN = 2 (lines 3, 6), TN = 1.
        let mut c = Confusion::default();
        for (flagged, alert) in [
            (true, true),
            (true, false),
            (false, true),
            (false, false),
            (true, true),
            (false, true),
        ] {
            c.add(flagged, alert);
        }
        assert_eq!(
            c,
            Confusion {
                true_positives: 2,
                false_positives: 1,
                false_negatives: 2,
                true_negatives: 1,
            }
        );
        assert!((c.precision() - 2.0 / 3.0).abs() < 1e-12);
        assert!((c.recall() - 0.5).abs() < 1e-12);
        // 2 * (2/3) * (1/2) / (2/3 + 1/2) = (2/3) / (7/6) = 4/7.
        assert!((c.f1() - 4.0 / 7.0).abs() < 1e-12);
        // Nothing flagged, nothing to find: zeros, not NaN.
        let empty = Confusion::default();
        assert_eq!(
            (empty.precision(), empty.recall(), empty.f1()),
            (0.0, 0.0, 0.0)
        );
    }

    #[test]
    fn line_time_has_milliseconds() {
        assert_eq!(
            line_ms("1117838570", "2005-06-03-15.42.50.675872"),
            Some(1_117_838_570_675)
        );
        assert_eq!(line_ms("1117838570", "garbled"), Some(1_117_838_570_000));
        assert_eq!(line_ms("x", "2005-06-03-15.42.50.675872"), None);
    }

    #[test]
    fn signals_on_a_few_labelled_lines() {
        let line = |label: &str, t: i64, level: &str, msg: &str| {
            format!(
                "{label} {t} 2005.06.03 R02-M1-N0 2005-06-03-15.42.50.000000 R02-M1-N0 RAS KERNEL {level} {msg}"
            )
        };
        let mut lines = Vec::new();
        for i in 0..20 {
            lines.push(line(
                "-",
                1_000 + i * 60,
                "INFO",
                &format!("cache parity error corrected {i}"),
            ));
        }
        lines.push(line("KERNDTLB", 2_300, "FATAL", "data TLB error interrupt"));
        lines.push(line("-", 2_400, "FATAL", "data storage interrupt"));
        lines.push(line("-", 2_460, "INFO", "cache parity error corrected 99"));
        let report = evaluate(lines.iter().map(String::as_str), DEFAULT_THRESHOLD);
        assert_eq!((report.lines, report.alerts), (23, 1));
        assert_eq!(report.unmatched_header_lines, 0);
        assert_eq!(report.templates, 3);
        let by = |name: &str| {
            report
                .signals
                .iter()
                .find(|s| s.signal == name)
                .map(|s| s.confusion)
                .expect("signal")
        };
        // New templates: the first line, the TLB line (alert), the storage line.
        assert_eq!(
            (
                by("new_template").true_positives,
                by("new_template").false_positives
            ),
            (1, 2)
        );
        // FATAL: the alert and one normal line.
        assert_eq!(by("error_level").precision(), 0.5);
        assert_eq!(by("error_level").recall(), 1.0);
        assert_eq!(by("any").recall(), 1.0);
        let json = report.to_json();
        assert_eq!(
            json["signals"]["any"]["by_category"]["KERNDTLB"]["flagged"],
            1
        );
        assert!(report.to_string().contains("KERNDTLB 1/1"));
    }
}
