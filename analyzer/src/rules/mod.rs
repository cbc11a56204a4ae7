//! Prometheus rule files: loading, evaluation, alert state.
//!
//! Files use Prometheus' format (`groups:` → `rules:` with `alert`, `expr`,
//! `for`, `labels`, `annotations`; `record`, `expr`, `labels`). `expr` is
//! full PromQL, checked at load time (an invalid one is an error naming
//! file, group and rule) and evaluated by [`crate::promql::Engine`] over
//! the stored samples.
//!
//! Each group is evaluated on its interval: recording rules first (their
//! results are stored as new series), then alerting rules. Alerts go
//! pending → firing (after `for`)
//! → resolved, like Prometheus; firing and resolved alerts are published
//! to `vigie.alerts`, and firing ones re-sent every `resend_delay`.

mod file;
mod group;

pub use file::{load_paths, parse_rule_file};
pub use group::{AlertingRule, RecordingRule, RuleGroup, RuleManager};
