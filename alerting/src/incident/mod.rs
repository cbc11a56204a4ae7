//! Incidents: alerts and anomaly episodes of one host or service, close in
//! time, grouped into one incident with a probable root cause.
//!
//! Data flow: the analyzer publishes anomaly onsets and ends on
//! `vigie.anomalies` ([`vigie_model::AnomalyEvent`]); the run loop hands
//! them to [`receive`], the dispatcher hands over every alert it takes in.
//! Both land in the dispatcher's [`IncidentTracker`]:
//!
//! - the *scope* of an alert or anomaly is the value of the first of
//!   `scope_labels` it carries (`instance` without its port); events of the
//!   same scope within `window` of an open incident join it, others open a
//!   new one; an event also joins an open incident whose scope is the value
//!   of another of its scope labels (a VM alert naming its `hypervisor`
//!   joins the hypervisor's incident);
//! - the *root cause* is the incident's earliest anomaly onset; the *chain*
//!   is every other member in time order with its delay after the root;
//! - an incident closes once none of its alerts fires and nothing happened
//!   in it for `quiet`; closed ones are kept `keep_closed` for the API.
//!
//! Each notification carries the incident of its alerts
//! ([`crate::Notification::incident`], an [`IncidentHint`]): webhooks in a
//! top-level `incident` field, email and Slack a "Probable root cause" line,
//! PagerDuty in `custom_details`. `GET /api/v1/incidents` lists them
//! ([`router`]). Everything is in memory and bounded (`max_open`,
//! `max_members`, `max_closed`; capping counts in
//! `vigie_incidents_capped_total`).

mod api;
mod config;
mod hint;
mod merge;
mod tracker;

pub use api::{receive, router};
pub use config::{IncidentConfig, default_consumer_group};
pub use hint::{Cause, IncidentHint, Link, LinkKind, format_delay};
pub use merge::Merged;
pub use tracker::{Incident, IncidentTracker, Member};

#[cfg(test)]
mod tests;
