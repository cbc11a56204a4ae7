//! PromQL evaluation over stored samples, with Prometheus 3 semantics.
//!
//! [`Engine::instant`] and [`Engine::range`] parse a query with
//! `promql-parser`, fetch each selector's series once through a
//! [`Queryable`] (the analyzer's [`crate::storage::Storage`], or the
//! in-memory [`MemoryStore`] of tests), then evaluate step by step.
//!
//! Semantics follow Prometheus 3: left-open range windows and lookback
//! (`(t - range, t]`), a 5-minute lookback, staleness markers (the NaN with
//! bits `0x7ff0000000000002`) ending a series, `offset` and `@` (with
//! `start()`/`end()`), subqueries aligned to their step, and delayed
//! `__name__` removal (a function that drops the name marks the sample; the
//! name goes at the end of the query, so `label_replace` can still read it).
//!
//! Vigie adds [`predictive`] functions (`anomaly_score`, `forecast`,
//! `time_to_threshold`) over the analyzer's stored outputs.
//!
//! Not supported (an error names the construct, HTTP 400 `bad_data`):
//! native histograms and the `histogram_*` functions other than
//! `histogram_quantile` over classic buckets, `limitk`, `limit_ratio`,
//! `sort_by_label`, `info`, and the experimental duration expressions.

mod aggregate;
mod binary;
mod eval;
mod functions;
pub mod predictive;
mod range;
pub mod value;

pub use eval::{
    Engine, MemoryStore, Queryable, Selected, matches, name_equal, parse, selector_matchers,
};
pub use functions::almost_equal;
pub use value::{LabelSet, QueryResult, Sample, Series, Value};

#[cfg(test)]
mod tests;
