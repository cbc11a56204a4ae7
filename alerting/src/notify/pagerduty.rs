//! PagerDuty through the Events API v2.
//!
//! A firing group sends a `trigger` event, a group whose alerts have all
//! resolved a `resolve` event; both carry the same `dedup_key`, derived
//! from the receiver and the group key, so PagerDuty keeps one incident per
//! alert group and the resolve closes it.
//!
//! Events go to PagerDuty's https URL by default, verified against the
//! system's roots or `http_config.tls_config` ([`crate::tls`]).

use async_trait::async_trait;
use md5::{Digest, Md5};
use serde::Serialize;
use vigie_model::Labels;

use super::email::subject;
use super::{GroupStatus, Notification, NotifiedAlert, Notifier, http_client, post_json, rfc3339};
use crate::NotifyError;
use crate::config::PagerdutyConfig;

/// PagerDuty's limit on `payload.summary`, in characters.
pub const SUMMARY_MAX: usize = 1024;

/// The `client` of every event.
pub const CLIENT: &str = "Vigie";

/// Sends Events API v2 events to PagerDuty.
pub struct PagerdutyNotifier {
    routing_key: String,
    url: String,
    severity: Option<String>,
    send_resolved: bool,
    client: crate::http::HttpClient,
    /// The templated fields (`description`, `client`, `details`, ...).
    templated: PagerdutyConfig,
    templates: std::sync::Arc<crate::templates::NotifyTemplates>,
}

impl PagerdutyNotifier {
    /// Builds the notifier and its HTTP client.
    pub fn new(config: &PagerdutyConfig) -> Result<Self, NotifyError> {
        Ok(Self {
            routing_key: config.routing_key.clone(),
            url: config.url.clone(),
            severity: config.severity.clone(),
            send_resolved: config.send_resolved,
            client: http_client(&config.http_config, config.timeout)?,
            templated: config.clone(),
            templates: crate::templates::NotifyTemplates::defaults(),
        })
    }

    /// Renders the templated fields with `templates` (Alertmanager's
    /// defaults and the configured `templates` files).
    pub fn with_templates(
        mut self,
        templates: std::sync::Arc<crate::templates::NotifyTemplates>,
    ) -> Self {
        self.templates = templates;
        self
    }

    /// The event sent for `n`, with the templated fields rendered.
    pub fn event<'a>(&'a self, n: &'a Notification) -> PagerdutyEvent<'a> {
        let data = crate::templates::data(n);
        let render = |field: &str, src: &str, fallback: &dyn Fn() -> String| {
            self.templates.render(
                "pagerduty",
                field,
                src,
                &data,
                vigie_template::Escape::Text,
                fallback,
            )
        };
        let c = &self.templated;
        let severity = self.severity.as_ref().map(|src| {
            let s = render("severity", src, &|| group_severity(n).to_string());
            if s.trim().is_empty() {
                group_severity(n).to_string()
            } else {
                s
            }
        });
        let mut e = PagerdutyEvent::new(&self.routing_key, severity.as_deref(), n);
        if let Some(src) = &c.description {
            let summary = render("description", src, &|| subject(n));
            e.payload.summary = truncate(&summary, SUMMARY_MAX);
        }
        if let Some(src) = &c.client {
            e.client = render("client", src, &|| CLIENT.to_string());
        }
        if let Some(src) = &c.client_url {
            e.client_url = render("client_url", src, &|| n.external_url.clone());
        }
        if let Some(src) = &c.source {
            let fallback = e.payload.source.clone();
            e.payload.source = render("source", src, &|| fallback.clone());
        }
        let optional = |field: &str, src: &Option<String>| {
            src.as_ref()
                .map(|src| render(field, src, &String::new))
                .filter(|s| !s.is_empty())
        };
        e.payload.class = optional("class", &c.class);
        e.payload.component = optional("component", &c.component);
        e.payload.group = optional("group", &c.group);
        if !c.details.is_empty() {
            e.payload.custom_details = Details::Templated(
                c.details
                    .iter()
                    .map(|(k, src)| {
                        (
                            k.clone(),
                            render(&format!("details.{k}"), src, &String::new),
                        )
                    })
                    .collect(),
            );
        }
        e
    }
}

/// One Events API v2 event.
#[derive(Debug, Serialize)]
pub struct PagerdutyEvent<'a> {
    /// The service's integration key.
    pub routing_key: &'a str,
    /// `trigger` or `resolve`.
    pub event_action: &'static str,
    /// Stable per receiver and alert group: see [`dedup_key`].
    pub dedup_key: String,
    /// What happened.
    pub payload: PagerdutyPayload<'a>,
    /// The configured `client`, else [`CLIENT`].
    pub client: String,
    /// The configured `client_url`, else Vigie's external URL.
    pub client_url: String,
}

/// The `payload` of a [`PagerdutyEvent`].
#[derive(Debug, Serialize)]
pub struct PagerdutyPayload<'a> {
    /// Alertmanager's default subject, e.g. `[FIRING:2] HighLatency (page)`,
    /// cut to [`SUMMARY_MAX`] characters.
    pub summary: String,
    /// The alerts' common `instance` label, else [`CLIENT`].
    pub source: String,
    /// `critical`, `error`, `warning` or `info`.
    pub severity: String,
    /// The configured `class`, when it renders non-empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// The configured `component`, when it renders non-empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    /// The configured `group`, when it renders non-empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The alerts, firing and resolved, or the configured `details`.
    pub custom_details: Details<'a>,
}

/// `payload.custom_details`: Vigie's lists of alerts, or the rendered
/// `details` of the configuration.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Details<'a> {
    /// The alerts, firing and resolved.
    Alerts(CustomDetails<'a>),
    /// The configured `details`, rendered.
    Templated(std::collections::BTreeMap<String, String>),
}

/// The alerts of a notification, in `payload.custom_details`.
#[derive(Debug, Serialize)]
pub struct CustomDetails<'a> {
    /// Number of firing alerts.
    pub num_firing: usize,
    /// Number of resolved alerts.
    pub num_resolved: usize,
    /// The firing alerts.
    pub firing: Vec<DetailAlert<'a>>,
    /// The resolved alerts.
    pub resolved: Vec<DetailAlert<'a>>,
    /// The incident of these alerts with its probable root cause and
    /// chain ([`crate::incident`]); absent when none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incident: Option<serde_json::Value>,
}

/// One alert in [`CustomDetails`].
#[derive(Debug, Serialize)]
pub struct DetailAlert<'a> {
    /// Labels.
    pub labels: &'a Labels,
    /// Annotations.
    pub annotations: &'a Labels,
    /// RFC 3339 start time.
    pub starts_at: String,
    /// RFC 3339 end time, for resolved alerts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
    /// Link to the source.
    pub generator_url: &'a str,
    /// Fingerprint.
    pub fingerprint: &'a str,
}

impl<'a> DetailAlert<'a> {
    fn new(a: &'a NotifiedAlert) -> Self {
        Self {
            labels: &a.labels,
            annotations: &a.annotations,
            starts_at: rfc3339(a.starts_at_ms),
            ends_at: a.ends_at_ms.map(rfc3339),
            generator_url: &a.generator_url,
            fingerprint: &a.fingerprint,
        }
    }
}

impl<'a> PagerdutyEvent<'a> {
    /// The event for `n`: `severity` if configured, else mapped from the
    /// alerts' `severity` labels.
    pub fn new(routing_key: &'a str, severity: Option<&str>, n: &'a Notification) -> Self {
        let details = |status: GroupStatus| -> Vec<DetailAlert<'a>> {
            n.alerts
                .iter()
                .filter(|a| a.status == status)
                .map(DetailAlert::new)
                .collect()
        };
        let firing = details(GroupStatus::Firing);
        let resolved = details(GroupStatus::Resolved);
        let common = n.common_labels();
        Self {
            routing_key,
            event_action: match n.status {
                GroupStatus::Firing => "trigger",
                GroupStatus::Resolved => "resolve",
            },
            dedup_key: dedup_key(&n.receiver, &n.group_key),
            payload: PagerdutyPayload {
                summary: truncate(&subject(n), SUMMARY_MAX),
                source: common.get("instance").unwrap_or(CLIENT).to_string(),
                severity: severity
                    .map(str::to_string)
                    .unwrap_or_else(|| group_severity(n).to_string()),
                class: None,
                component: None,
                group: None,
                custom_details: Details::Alerts(CustomDetails {
                    num_firing: firing.len(),
                    num_resolved: resolved.len(),
                    firing,
                    resolved,
                    incident: n.incident.as_ref().map(|i| i.to_json()),
                }),
            },
            client: CLIENT.to_string(),
            client_url: n.external_url.clone(),
        }
    }
}

/// The `dedup_key` of a group for a receiver: 32 hex digits of the MD5 of
/// `receiver`, a NUL and `group_key`, stable across restarts and versions.
pub fn dedup_key(receiver: &str, group_key: &str) -> String {
    let mut h = Md5::new();
    h.update(receiver.as_bytes());
    h.update([0u8]);
    h.update(group_key.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Maps a `severity` label value to a PagerDuty severity, case-insensitively;
/// `None` when not recognised.
pub fn map_severity(label: &str) -> Option<&'static str> {
    Some(match label.to_ascii_lowercase().as_str() {
        "critical" | "crit" | "page" | "fatal" | "emergency" | "emerg" | "alert" | "p1"
        | "sev1" => "critical",
        "error" | "err" | "major" | "high" | "p2" | "sev2" => "error",
        "warning" | "warn" | "minor" | "medium" | "p3" | "sev3" => "warning",
        "info" | "informational" | "notice" | "low" | "none" | "p4" | "p5" | "sev4" | "sev5" => {
            "info"
        }
        _ => return None,
    })
}

/// The most severe mapped `severity` label among the firing alerts (all
/// alerts when none fires); `error` (Alertmanager's default) when none maps.
pub fn group_severity(n: &Notification) -> &'static str {
    const ORDER: [&str; 4] = ["critical", "error", "warning", "info"];
    let firing = n.firing_count() > 0;
    n.alerts
        .iter()
        .filter(|a| !firing || a.status == GroupStatus::Firing)
        .filter_map(|a| a.labels.get("severity").and_then(map_severity))
        .min_by_key(|s| ORDER.iter().position(|o| o == s))
        .unwrap_or("error")
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[async_trait]
impl Notifier for PagerdutyNotifier {
    fn integration(&self) -> &'static str {
        "pagerduty"
    }

    fn send_resolved(&self) -> bool {
        self.send_resolved
    }

    async fn notify(&self, n: &Notification) -> Result<(), NotifyError> {
        post_json(&self.client, &self.url, &self.event(n)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_map() {
        assert_eq!(map_severity("Page"), Some("critical"));
        assert_eq!(map_severity("warn"), Some("warning"));
        assert_eq!(map_severity("ticket"), None);
    }

    #[test]
    fn dedup_key_is_stable_and_per_receiver() {
        let k = dedup_key("ops", "{}:{alertname=\"X\"}");
        assert_eq!(k.len(), 32);
        assert_eq!(k, dedup_key("ops", "{}:{alertname=\"X\"}"));
        assert_ne!(k, dedup_key("dev", "{}:{alertname=\"X\"}"));
    }

    #[test]
    fn long_summaries_are_cut() {
        let s = truncate(&"x".repeat(2000), SUMMARY_MAX);
        assert_eq!(s.chars().count(), SUMMARY_MAX);
        assert!(s.ends_with('…'));
    }
}
