//! The analyzer's own metrics.

use std::sync::LazyLock;

use prometheus::{
    Histogram, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, register_histogram,
    register_int_counter, register_int_counter_vec, register_int_gauge, register_int_gauge_vec,
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

/// Bytes of decoded file points kept for PromQL (storage module `decoded`).
pub(crate) static DECODED_CACHE_BYTES: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "vigie_storage_decoded_cache_bytes",
        "Bytes of decoded Parquet points kept in memory for PromQL queries (analyzer.storage.decoded_cache_bytes)."
    )
    .expect("metric registers once")
});

/// Lookups in the decoded points cache, by result (`hit`, `miss`).
pub(crate) static DECODED_CACHE_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "vigie_storage_decoded_cache_requests_total",
        "Lookups of a series' decoded points of one Parquet file, by result (hit, miss).",
        &["result"]
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

/// Bucket bounds of [`INGEST_DELAY`], in seconds: 1 ms to 60 s.
const INGEST_DELAY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0,
];

/// Delay from a sample's timestamp (for a scrape, the scrape time) to its
/// append to the head, where queries see it: one observation per stored
/// input sample.
pub(crate) static INGEST_DELAY: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "vigie_ingest_delay_seconds",
        "Delay from each stored sample's timestamp (the scrape time for scraped samples) to its append to the in-memory head, where queries see it.",
        INGEST_DELAY_BUCKETS.to_vec()
    )
    .expect("metric registers once")
});

/// Observes now − timestamp for every timestamp of `ts_ms` (milliseconds
/// since the epoch) in [`INGEST_DELAY`]; a timestamp in the future (clock
/// skew) counts as no delay. One local histogram per call keeps the cost
/// to a bucket search per sample and one atomic flush per batch.
pub(crate) fn observe_ingest_delay(ts_ms: &[i64]) {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0);
    let local = INGEST_DELAY.local();
    for &ts in ts_ms {
        local.observe(((now_ms - ts as f64) / 1000.0).max(0.0));
    }
    local.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingest_delay_observes_every_timestamp() {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis() as i64;
        let (count, sum) = (
            INGEST_DELAY.get_sample_count(),
            INGEST_DELAY.get_sample_sum(),
        );
        // Two samples scraped 2 s ago, one from a clock 1 h ahead.
        observe_ingest_delay(&[now_ms - 2_000, now_ms - 2_000, now_ms + 3_600_000]);
        // Other tests may observe concurrently: compare at least.
        assert!(INGEST_DELAY.get_sample_count() >= count + 3);
        let added = INGEST_DELAY.get_sample_sum() - sum;
        assert!(added >= 4.0, "sum grew by {added}");
    }
}
