//! Remediation actions with guardrails (`[[action]]`).
//!
//! An [`ActionEngine`] reads the same `vigie.alerts` the dispatcher reads
//! (its own subscription, so the dispatcher is untouched). For each firing
//! alert matching an action's `matchers`, once per firing episode, it
//! decides under the guardrails, in this order:
//!
//! 1. no `target_label` on the alert → `skipped` (`no_target`);
//! 2. `blast_radius`: acting would make more than `max_targets` distinct
//!    targets within `window` → `skipped` (`blast_radius`) and
//!    `escalated`: automation stops for that action (until the window
//!    slides) and a human is paged;
//! 3. `cooldown`: the target was acted on less than `cooldown` ago →
//!    `skipped` (`cooldown`);
//! 4. `rate_limit`: `max` runs within `per` already → `skipped`
//!    (`rate_limit`);
//! 5. `max_concurrent` calls in flight → `skipped` (`max_concurrent`);
//! 6. `require_approval` → `pending_approval` until `POST
//!    /api/v1/actions/{id}/approve` (`approved`, then it runs) or `/deny`
//!    (`denied`);
//! 7. `dry_run` → `dry_run` (counts for the rate limit, cooldown and
//!    blast radius, so a dry run shows what would happen);
//! 8. otherwise `ran`: a JSON POST to `url` with the alert, signed with
//!    HMAC-SHA256 of the body under `secret_file` in header
//!    `X-Vigie-Signature: sha256=<hex>`, with `timeout` per attempt and
//!    `retries` (connection errors, timeouts, 429, 5xx), then `succeeded`
//!    or `failed` (a failure pages a human: `escalated`).
//!
//! When the alert resolves after a successful run, `verified`; if it is
//! still firing `verify_within` after the run succeeded, `escalated`.
//!
//! **Paging a human**: the engine publishes an alert on `vigie.alerts`
//! with the original alert's labels plus `vigie_action="<name>"` and
//! `vigie_escalation="<why>"`; the dispatcher routes it like the alert it
//! is about, so the route's receiver is notified (and told when it
//! resolves). It also logs at error level. The engine never acts on
//! alerts carrying `vigie_action`.
//!
//! Every decision is appended to the audit log ([`audit`]:
//! `<data_dir>/state/actions.jsonl`), read back at start so cooldowns,
//! rate limits, the blast radius, open episodes and pending approvals
//! survive a restart; [`AuditLog::record_batch`] serves it as SQL table
//! `actions` ([`audit::schema`]).

pub mod api;
pub mod audit;
pub mod config;
pub mod engine;

pub use api::router;
pub use audit::{AuditLog, AuditRecord, Decision, audit_path, read_batch};
pub use config::{ActionConfig, BlastRadius, RateLimit, problems};
pub use engine::{
    ActionEngine, ActionError, ESCALATION_LABEL, PendingAction, SIGNATURE_HEADER, sign,
    verify_signature,
};

#[cfg(test)]
mod tests;
