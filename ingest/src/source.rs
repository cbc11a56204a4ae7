//! The seam between collectors and the emit loop.

use std::time::Duration;

use async_trait::async_trait;
use vigie_model::Sample;

/// Something that produces samples at a fixed interval.
///
/// `collect` never fails: a failure becomes samples (`up 0`) and counted
/// metrics, so the pipeline sees it like any other data.
#[async_trait]
pub trait Source: Send {
    /// A short name for logs and spans (`scrape/<job>/<target>`, `host`).
    fn name(&self) -> &str;
    /// How often to collect.
    fn interval(&self) -> Duration;
    /// Collects one round of samples.
    async fn collect(&mut self) -> Vec<Sample>;
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
