//! Prometheus rule files: loading, evaluation, alert state.
//!
//! Files use Prometheus' format (`groups:` → `rules:` with `alert`, `expr`,
//! `for`, `labels`, `annotations`; `record`, `expr`, `labels`). `expr` is
//! full PromQL, checked at load time (an invalid one is an error naming
//! file, group and rule) and evaluated by [`crate::promql::Engine`] over
//! the stored samples.
//!
//! Each group is evaluated on its interval, rules in file order (recorded
//! series, `ALERTS` and `ALERTS_FOR_STATE` are stored, so later rules see
//! them). Alerts go pending → firing (after `for`) → resolved (after
//! `keep_firing_for`, and with `resolve_expr` only once it matches: a
//! Vigie extension, see docs/rules.md), like Prometheus; firing and
//! resolved alerts are published to `vigie.alerts`, and firing ones re-sent
//! every `resend_delay`. [`unittest`] runs promtool's rule unit tests,
//! [`backtest`] replays rules over history, and [`template`] expands
//! labels and annotations.

pub mod backtest;
mod file;
mod group;
pub mod template;
pub mod unittest;

pub use file::{RuleProblem, check_files, check_rule_file, load_paths, parse_rule_file};
pub use group::{
    AlertingRule, EvalContext, GroupEval, RecordingRule, RuleGroup, RuleHealth, RuleManager,
    RuleRef, RuleStore, SharedMemoryStore, evaluate_group,
};
