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

/// Alerts left out of notifications, counted per target when the muting
/// starts, by reason: `silenced`, `inhibited`, `acknowledged`,
/// `dependency` (an alert they depend on is down, [`crate::depends`]).
pub static NOTIFICATIONS_SUPPRESSED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "vigie_notifications_suppressed_total",
        "Alerts left out of notifications (per target, when the muting starts), by reason.",
        &["reason"]
    )
    .expect("metric registers once")
});

/// Dependency configurations or map files that could not be used.
pub static DEPENDENCY_MAP_ERRORS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "vigie_alerting_dependency_map_errors_total",
        "Dependency map files (or dependency configurations) that could not be read or were invalid."
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

/// Whether this alerting process leads (sends notifications): 1 or 0.
pub static LEADER: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "vigie_alerting_leader",
        "1 while this alerting process sends notifications (always, without high availability), 0 while it stands by."
    )
    .expect("metric registers once")
});

/// Notification log entries (`vigie.nflog`) that could not be published.
pub static NFLOG_PUBLISH_ERRORS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "vigie_alerting_nflog_publish_errors_total",
        "Notification log entries the leader could not publish for its standbys."
    )
    .expect("metric registers once")
});

/// Notification log entries received from peers, by outcome (`applied`,
/// `ignored`: another configuration's target, `undecodable`).
pub static NFLOG_RECEIVED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "vigie_alerting_nflog_received_total",
        "Notification log entries received from alerting peers, by outcome.",
        &["outcome"]
    )
    .expect("metric registers once")
});

/// Alerts and anomaly events taken in by the incident tracker, by source
/// (`alert`, `anomaly`) and outcome (`opened`, `joined`, `updated`,
/// `unscoped`, `stale`, `unmatched`, `capped`).
pub static INCIDENT_EVENTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "vigie_incident_events_total",
        "Alerts and anomaly events taken in by the incident tracker, by source and outcome.",
        &["source", "outcome"]
    )
    .expect("metric registers once")
});

/// Things the incident tracker left out to stay bounded, by cap
/// (`open`: an incident not opened, `members`: a member not kept,
/// `closed`: a closed incident forgotten early).
pub static INCIDENTS_CAPPED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "vigie_incidents_capped_total",
        "Incidents or members the incident tracker left out to stay bounded, by cap.",
        &["cap"]
    )
    .expect("metric registers once")
});

/// Incidents open now.
pub static INCIDENTS_OPEN: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!("vigie_incidents_open", "Incidents open now.")
        .expect("metric registers once")
});

/// Messages on `vigie.anomalies` that could not be decoded.
pub static INCIDENT_DECODE_ERRORS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "vigie_incident_decode_errors_total",
        "Messages on vigie.anomalies that could not be decoded and were skipped."
    )
    .expect("metric registers once")
});

/// `GET /api/v1/incidents` requests refused (bad parameters).
pub static INCIDENT_REQUESTS_REFUSED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "vigie_incident_requests_refused_total",
        "GET /api/v1/incidents requests refused for bad parameters (HTTP 400)."
    )
    .expect("metric registers once")
});

/// Notification template fields that failed to render (Vigie's default
/// text was sent instead), by integration and field.
pub static TEMPLATE_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "vigie_notification_template_errors_total",
        "Notification template fields that failed to render and were replaced by Vigie's default text, by integration and field.",
        &["integration", "field"]
    )
    .expect("metric registers once")
});
