//! Prometheus rule files: loading, evaluation, alert state.
//!
//! Files use Prometheus' format (`groups:` → `rules:` with `alert`, `expr`,
//! `for`, `labels`, `annotations`). For now an `expr` must be an instant
//! selector compared with a number (`node_load1 > 4`,
//! `vigie_anomaly_score{for="x"} >= 0.999`, or the number first); anything
//! else is rejected at load time with an error naming file, group and rule.
//!
//! Each group is evaluated on its interval against the
//! [`crate::latest::LatestIndex`]. Alerts go pending → firing (after `for`)
//! → resolved, like Prometheus; firing and resolved alerts are published
//! to `vigie.alerts`, and firing ones re-sent every `resend_delay`.

mod expr;
mod file;
mod group;

pub use expr::{Comparison, ThresholdExpr};
pub use file::{load_paths, parse_rule_file};
pub use group::{AlertingRule, RuleGroup, RuleManager};
