//! The ingest crate's own metrics, in the `prometheus` default registry.

use std::sync::LazyLock;

use prometheus::{IntCounter, IntCounterVec, register_int_counter, register_int_counter_vec};

/// Samples handed to the bus.
pub(crate) static SAMPLES_INGESTED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "vigie_samples_ingested_total",
        "Samples handed to the bus by the collectors."
    )
    .expect("metric registers once")
});

/// Messages the bus refused.
pub(crate) static PUBLISH_ERRORS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "vigie_ingest_publish_errors_total",
        "Metric or log batches the bus refused or did not accept within bus.publish_timeout \
         (what was lost is in vigie_ingest_dropped_samples_total and \
         vigie_ingest_dropped_log_records_total; the rest is retried)."
    )
    .expect("metric registers once")
});

/// Samples a collector gave up on, by source (`scrape`, `host`) and
/// reason (`timeout`, `bus_error`, `encode`).
pub(crate) static DROPPED_SAMPLES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "vigie_ingest_dropped_samples_total",
        "Samples collected but never published, by source and reason (timeout: the bus did not \
         accept them within bus.publish_timeout; bus_error: the bus refused them; encode).",
        &["source", "reason"]
    )
    .expect("metric registers once")
});

/// Log records a collector gave up on, by source (`syslog`, `tail`) and
/// reason (`queue_full`, `timeout`, `bus_error`, `encode`).
pub(crate) static DROPPED_LOG_RECORDS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "vigie_ingest_dropped_log_records_total",
        "Log records received but never published, by source and reason (queue_full: syslog UDP \
         arrived faster than the bus takes it; timeout; bus_error; encode).",
        &["source", "reason"]
    )
    .expect("metric registers once")
});

/// Scrapes attempted, by job.
pub(crate) static SCRAPES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "vigie_scrapes_total",
        "Scrapes attempted, by job.",
        &["job"]
    )
    .expect("metric registers once")
});

/// Failed scrapes, by job and reason (`connect`, `timeout`, `http_status`,
/// `parse`, `body`).
pub(crate) static SCRAPE_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "vigie_scrape_errors_total",
        "Failed scrapes, by job and reason (connect, timeout, http_status, parse, body).",
        &["job", "reason"]
    )
    .expect("metric registers once")
});

/// Host collector files that could not be read or parsed, by collector.
pub(crate) static HOST_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "vigie_host_collector_errors_total",
        "Host collector sources that could not be read or parsed, by collector.",
        &["collector"]
    )
    .expect("metric registers once")
});

/// Failed or partly failed nvidia-smi runs, by reason.
pub(crate) static GPU_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "vigie_host_gpu_errors_total",
        "nvidia-smi runs that failed (spawn, exit_status, timeout, still_running) or values and lines skipped as garbage, by reason.",
        &["reason"]
    )
    .expect("metric registers once")
});

/// GPU values nvidia-smi reported as unavailable, by query field.
pub(crate) static GPU_UNSUPPORTED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "vigie_host_gpu_unsupported_values_total",
        "GPU values nvidia-smi reported as [N/A] or [Not Supported] (skipped), by --query-gpu field.",
        &["field"]
    )
    .expect("metric registers once")
});

/// Remote-write samples accepted.
pub(crate) static REMOTE_WRITE_SAMPLES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "vigie_remote_write_samples_total",
        "Samples accepted on POST /api/v1/write."
    )
    .expect("metric registers once")
});

/// Remote-write requests rejected, by reason.
pub(crate) static REMOTE_WRITE_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "vigie_remote_write_errors_total",
        "Remote-write requests or series rejected, by reason.",
        &["reason"]
    )
    .expect("metric registers once")
});

/// Syslog messages received, by transport (`udp`, `tcp`).
pub(crate) static SYSLOG_MESSAGES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "vigie_syslog_messages_total",
        "Syslog messages received (each becomes a log record), by transport.",
        &["transport"]
    )
    .expect("metric registers once")
});

/// Syslog defects, by stage (`udp`, `tcp`) and reason (`pri`,
/// `rfc5424_<field>`, `rfc3164_timestamp`, `truncated`, `read`, `accept`).
/// A defective message is still kept as a record; records lost are in
/// [`DROPPED_LOG_RECORDS`] (source `syslog`).
pub(crate) static SYSLOG_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "vigie_syslog_errors_total",
        "Syslog messages kept unparsed or cut and read/accept failures, by stage and reason \
         (records lost: vigie_ingest_dropped_log_records_total{source=\"syslog\"}).",
        &["stage", "reason"]
    )
    .expect("metric registers once")
});

/// File tail failures, by reason (`open`, `read`, `publish`, `checkpoint`).
pub(crate) static TAIL_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "vigie_log_tail_errors_total",
        "File tail failures, by reason (open, read, publish: the bus did not take a poll's records, reading waits and they are offered again, checkpoint: position not saved).",
        &["reason"]
    )
    .expect("metric registers once")
});

/// Interop messages read, by topic and format.
pub(crate) static INTEROP_MESSAGES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "vigie_interop_messages_total",
        "Messages read from interop topics, by topic and format.",
        &["topic", "format"]
    )
    .expect("metric registers once")
});

/// Samples from interop topics handed to the bus, by topic and format.
pub(crate) static INTEROP_SAMPLES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "vigie_interop_samples_total",
        "Samples read from interop topics and handed to the bus, by topic and format.",
        &["topic", "format"]
    )
    .expect("metric registers once")
});

/// Interop messages sent to the dead-letter topic, by topic, format and
/// reason (`utf8`, `syntax`, `json`, `shape`, `timestamp`, `unsupported`).
pub(crate) static INTEROP_REJECTED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "vigie_interop_rejected_total",
        "Interop messages sent to vigie.deadletter, by topic, format and reason (utf8, syntax, json, shape, timestamp, unsupported).",
        &["topic", "format", "reason"]
    )
    .expect("metric registers once")
});

/// Parts of interop messages left out without rejecting them, by topic,
/// format and reason (`string_field`, `metric_name`, `tag_name`,
/// `tag_type`, `field_type`).
pub(crate) static INTEROP_SKIPPED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "vigie_interop_skipped_total",
        "Values of interop messages left out (string fields, unusable names or types), by topic, format and reason.",
        &["topic", "format", "reason"]
    )
    .expect("metric registers once")
});

/// Interop consumer failures, by topic and stage (`receive`, `publish`:
/// retried, `commit`: read again later, `deadletter_publish`: dropped).
pub(crate) static INTEROP_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "vigie_interop_errors_total",
        "Interop consumer failures, by topic and stage (receive, publish, commit, deadletter_publish).",
        &["topic", "stage"]
    )
    .expect("metric registers once")
});
