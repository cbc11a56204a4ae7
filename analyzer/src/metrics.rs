//! The analyzer's own metrics.

use std::sync::LazyLock;

use prometheus::{
    IntCounter, IntCounterVec, IntGauge, IntGaugeVec, register_int_counter,
    register_int_counter_vec, register_int_gauge, register_int_gauge_vec,
};

/// Samples appended to storage (scraped and derived).
pub(crate) static STORED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "vigie_samples_stored_total",
        "Samples appended to storage, including derived series."
    )
    .expect("metric registers once")
});

/// Messages sent to the dead-letter topic.
pub(crate) static DEAD_LETTERS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "vigie_deadletter_total",
        "Messages the analyzer could not process and sent to vigie.deadletter.",
        &["topic", "reason"]
    )
    .expect("metric registers once")
});

/// Parquet files written.
pub(crate) static FLUSHES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "vigie_storage_flushes_total",
        "Parquet files written by flushing the in-memory head."
    )
    .expect("metric registers once")
});

/// Errors by stage and reason.
pub(crate) static ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "vigie_analyzer_errors_total",
        "Analyzer errors by stage and reason.",
        &["stage", "reason"]
    )
    .expect("metric registers once")
});

/// Rows in the in-memory head.
pub(crate) static HEAD_ROWS: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "vigie_storage_head_rows",
        "Samples held in memory, not yet in Parquet."
    )
    .expect("metric registers once")
});

/// Series with a detector.
pub(crate) static SCORED_SERIES: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!("vigie_detector_series", "Series with an anomaly detector.")
        .expect("metric registers once")
});

/// Alerts by state.
pub(crate) static ALERTS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "vigie_alerts",
        "Alerts of Vigie's rules by state (pending, firing).",
        &["state"]
    )
    .expect("metric registers once")
});

/// Rule evaluations.
pub(crate) static RULE_EVALS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!("vigie_rule_evaluations_total", "Rule evaluations.")
        .expect("metric registers once")
});

/// Samples not stored because their series already had them.
pub(crate) static REJECTED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "vigie_samples_rejected_total",
        "Samples not stored: duplicate (same series and timestamp, e.g. a Kafka replay) or out_of_order.",
        &["reason"]
    )
    .expect("metric registers once")
});

/// Log templates held by the miner.
pub(crate) static LOG_TEMPLATES: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "vigie_log_templates",
        "Log templates held by the template miner."
    )
    .expect("metric registers once")
});

/// Log templates evicted to stay under the miner's cap.
pub(crate) static LOG_TEMPLATES_EVICTED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "vigie_log_templates_evicted_total",
        "Log templates evicted (least recently used) to stay under the miner's cap."
    )
    .expect("metric registers once")
});

/// Log lines mined on their first words only.
pub(crate) static LOG_LINES_TRUNCATED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "vigie_log_lines_truncated_total",
        "Log lines with more words than the miner's cap, mined on their first words."
    )
    .expect("metric registers once")
});

/// Log lines not mined, by reason.
pub(crate) static LOG_LINES_REJECTED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "vigie_log_lines_rejected_total",
        "Log lines stored without a template: empty (no word).",
        &["reason"]
    )
    .expect("metric registers once")
});

/// Operator feedback applied, by kind.
pub(crate) static FEEDBACK: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "vigie_feedback_total",
        "Operator feedback (POST /api/v1/feedback) applied to anomaly scores, by kind.",
        &["kind"]
    )
    .expect("metric registers once")
});

/// Anomaly events published on `vigie.anomalies`, by phase; `suppressed`
/// counts onsets not announced because of `anomaly_events.min_interval`.
pub(crate) static ANOMALY_EVENTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "vigie_anomaly_events_total",
        "Anomaly episode events: published onsets and ends, and onsets suppressed by min_interval.",
        &["phase"]
    )
    .expect("metric registers once")
});
