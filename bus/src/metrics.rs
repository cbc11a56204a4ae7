//! The bus's own metrics.

use std::sync::LazyLock;

use prometheus::{IntCounterVec, register_int_counter_vec};

/// Messages accepted by the bus, by topic.
pub(crate) static PUBLISHED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "vigie_bus_messages_published_total",
        "Messages accepted by the bus, by topic.",
        &["topic"]
    )
    .expect("metric registers once")
});

/// Messages that could not be published, by topic.
pub(crate) static PUBLISH_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "vigie_bus_publish_errors_total",
        "Messages the bus refused or failed to deliver, by topic.",
        &["topic"]
    )
    .expect("metric registers once")
});

/// Messages received from the bus, by topic.
pub(crate) static RECEIVED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "vigie_bus_messages_received_total",
        "Messages received from the bus, by topic.",
        &["topic"]
    )
    .expect("metric registers once")
});
