//! Vigie's analyzer: the consumer side of the bus.
//!
//! Data flow, per message of `vigie.metrics`:
//!
//! 1. [`pipeline`] decodes the Arrow IPC payload (undecodable messages go to
//!    `vigie.deadletter` with the reason in a header, and are counted) and
//!    drops samples its series already has ([`dedup`]: Kafka replays never
//!    create duplicate rows);
//! 2. [`storage::Storage`] appends the batch to its in-memory head; the head
//!    is flushed to time-ordered Parquet files under `<data_dir>/samples/`
//!    on an interval, and only then are the bus offsets committed, so a
//!    crash replays rather than loses;
//! 3. [`score::ScoreBank`] runs one causal [`detect::Detector`] per series
//!    and stores its output as the series `vigie_anomaly_score{for="<metric>", ...}`,
//!    with a [`forecast::Forecaster`] per series writing `vigie_forecast`
//!    bands and `vigie_time_to_threshold_seconds` for configured limits;
//!    [`episodes`] turns the scores into anomaly onset and end events on
//!    `vigie.anomalies`, which alerting groups into incidents;
//! 4. [`rules`] evaluates Prometheus rule files on an interval with the
//!    [`promql`] engine over storage, stores recorded series and publishes
//!    alert state changes to `vigie.alerts`.
//!
//! [`http`] answers `POST /api/v1/sql` (DataFusion SQL over stored and head
//! samples), the Prometheus query API (`/api/v1/query`, `query_range`,
//! `series`, `labels`, ...) and `GET /api/v1/alerts`. [`eval`] scores the
//! detector on NAB and the log miner on Loghub.
//!
//! [`logs`] mines templates from `vigie.logs` and counts lines per template.
//! Storage compacts its flush files, keeps a series table and can live on
//! an object store ([`storage`]).
//!
//! Not here: collecting and parsing outside input (`vigie-ingest`), the
//! bus (`vigie-bus`), routing and paging alerts (`vigie-alerting`).

pub mod config;
pub mod dedup;
pub mod detect;
pub mod episodes;
pub mod error;
pub mod eval;
pub mod feedback;
pub mod forecast;
pub mod http;
pub mod logs;
mod metrics;
pub mod pipeline;
pub mod promql;
pub mod replay;
pub mod rules;
pub mod score;
pub mod sql_json;
mod state_file;
pub mod storage;

pub use config::{AnalyzerConfig, RulesConfig};
pub use error::AnalyzerError;
