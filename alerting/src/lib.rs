//! Vigie's alerting: turns the analyzer's alerts into notifications.
//!
//! The analyzer's rule evaluator publishes [`vigie_model::Alert`]s as JSON on
//! `vigie.alerts` when an alert starts firing or resolves, and re-sends
//! firing alerts every minute. This crate consumes them ([`run`]) and
//! notifies people the way Prometheus' Alertmanager does:
//!
//! - alerts are kept by fingerprint and grouped by the values of the
//!   `group_by` labels ([`Dispatcher`]);
//! - a new group is notified after `group_wait`, changes (new or resolved
//!   alerts) at the next `group_interval`, an unchanged firing group again
//!   after `repeat_interval`; a firing alert not re-sent for
//!   `resolve_timeout` counts as resolved;
//! - alerts walk a routing tree ([`route`]): Vigie's TOML makes one route
//!   to every receiver; an existing `alertmanager.yml` ([`alertmanager`])
//!   brings Alertmanager's tree (matchers, `continue`, per-route grouping
//!   and timing), inhibition rules and mute/active time intervals;
//! - each route's receiver gets its groups, through its integrations: an
//!   Alertmanager-compatible webhook (payload version 4), email over
//!   SMTP (STARTTLS or implicit TLS, AUTH PLAIN/LOGIN), PagerDuty's Events
//!   API v2 (trigger and resolve with a stable `dedup_key` per group) and
//!   Slack/Mattermost incoming webhooks ([`notify`]), over http or https
//!   as `tls_config` says ([`tls`], [`http`]); failures are retried with
//!   exponential back-off and counted ([`metrics`]);
//! - with a data directory, each notification is written to a durable
//!   outbox before it is sent and removed once delivered; what is pending
//!   at start-up is re-sent ([`outbox`]). What each target was told about
//!   each group (the notification log) is saved after the outbox, so a
//!   restart neither repeats a notification nor forgets one owed
//!   ([`state`]). Delivery stays at least once in one window: a crash
//!   after a receiver accepted a notification and before its outbox entry
//!   is removed re-sends it, with the same idempotency key (webhook header
//!   `Idempotency-Key`, email `Message-ID`) so the receiver can drop it;
//!   PagerDuty drops it by its `dedup_key`;
//! - every attempt (sent, retried, failed) and every muting (silenced,
//!   inhibited, acknowledged) is recorded in the notification history
//!   ([`history`]: `GET /api/v1/notifications`, and Arrow for SQL);
//! - an acknowledged group ([`ack`]) is muted until it resolves;
//!   resolutions are always sent to targets told the alert fired, even
//!   when it resolved while silenced, inhibited or acknowledged.
//!
//! - silences ([`silence`]) mute matching alerts; they are persisted under
//!   the data directory and managed through Alertmanager's API v2
//!   ([`api`]), which also takes alerts from a Prometheus
//!   (`POST /api/v2/alerts`) and lists them for `amtool`.
//! - incidents ([`incident`]): alerts and the analyzer's anomaly onsets
//!   (`vigie.anomalies`) of one host or service within a window are one
//!   incident; its probable root cause (the earliest onset) and the chain
//!   after it ride in every notification and `GET /api/v1/incidents`.
//! - dependency-aware suppression ([`depends`]): while a parent (a
//!   hypervisor) has a down alert, the alerts of what depends on it (its
//!   VMs, their services), by labels or a static map, are not notified
//!   but recorded as `suppressed`; the parent's notification counts them.
//!
//! - high availability ([`ha`]): with Kafka, several alerting replicas
//!   each hold every alert; one elected replica sends and logs what it
//!   sent on `vigie.nflog`, so a standby that takes over pages only what
//!   is news.
//!
//! Groups live in memory: after a restart they are re-created from the
//! alerts the analyzer re-sends, and the saved notification log decides
//! what is news.

pub mod ack;
pub mod actions;
pub mod alertmanager;
pub mod api;
pub mod auth;
pub mod config;
pub mod depends;
pub mod dispatch;
pub mod error;
pub mod flap;
pub mod ha;
pub mod history;
pub mod http;
pub mod incident;
pub mod metrics;
pub mod notify;
pub mod outbox;
pub mod route;
pub mod runner;
pub mod silence;
pub mod state;
pub mod templates;
pub mod tls;

pub use alertmanager::AlertmanagerError;
pub use api::{AlertingTask, router, start, start_with_notifiers, start_with_peers};
pub use auth::{ApiToken, TokenError, protect};
pub use config::{
    AlertingConfig, EmailConfig, PagerdutyConfig, ReceiverConfig, Resolved, SlackConfig,
    WebhookConfig,
};
pub use dispatch::{
    Dispatcher, HeldAlert, Job, ReceiverNotifier, Shared, Target, build_notifiers, run, run_shared,
    run_with_notifiers,
};
pub use error::{AlertingError, NotifyError};
pub use notify::{GroupStatus, Notification, NotifiedAlert, Notifier};
pub use route::{InhibitRule, RouteNode, Routing, TimeInterval};
pub use silence::{Matcher, Silence, SilenceState, Silences};
