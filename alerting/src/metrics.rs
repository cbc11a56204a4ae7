//! Alerting metrics, registered on the Prometheus default registry.

use std::sync::LazyLock;

use prometheus::{
    IntCounter, IntCounterVec, IntGauge, register_int_counter, register_int_counter_vec,
    register_int_gauge,
};

/// Notifications delivered, by receiver and integration.
pub static NOTIFICATIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "vigie_notifications_total",
        "Notifications delivered, by receiver and integration.",
        &["receiver", "integration"]
    )
    .expect("metric registers once")
});

/// Failed notification attempts (each retry counts), by receiver,
/// integration and reason.
pub static NOTIFICATIONS_FAILED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "vigie_notifications_failed_total",
        "Failed notification attempts (each retry counts), by receiver, integration and reason.",
        &["receiver", "integration", "reason"]
    )
    .expect("metric registers once")
});

/// Messages on `vigie.alerts` that could not be decoded.
pub static DECODE_ERRORS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "vigie_alerting_decode_errors_total",
        "Messages on vigie.alerts that could not be decoded and were skipped."
    )
    .expect("metric registers once")
});

/// Alert groups currently held by the dispatcher.
pub static ALERT_GROUPS: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "vigie_alert_groups",
        "Alert groups currently held by the dispatcher."
    )
    .expect("metric registers once")
});

/// Requests refused for a missing or wrong API token.
pub static API_UNAUTHORIZED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "vigie_api_unauthorized_total",
        "State-changing HTTP requests refused for a missing or wrong bearer token."
    )
    .expect("metric registers once")
});

/// Records that could not be written to the notification history.
pub static HISTORY_ERRORS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "vigie_notification_history_errors_total",
        "Notification history records that could not be written."
    )
    .expect("metric registers once")
});
