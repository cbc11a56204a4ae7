//! Alertmanager-compatible webhook (payload version 4).

use async_trait::async_trait;
use serde::Serialize;
use vigie_model::Labels;

use super::{
    IDEMPOTENCY_HEADER, Notification, Notifier, ZERO_TIME, http_client, post_json_with, rfc3339,
};
use crate::NotifyError;
use crate::config::WebhookConfig;

/// POSTs Alertmanager's webhook JSON to a URL.
pub struct WebhookNotifier {
    url: String,
    send_resolved: bool,
    max_alerts: usize,
    client: crate::http::HttpClient,
}

impl WebhookNotifier {
    /// Builds the notifier and its HTTP client.
    pub fn new(config: &WebhookConfig) -> Result<Self, NotifyError> {
        Ok(Self {
            url: config.url.clone(),
            send_resolved: config.send_resolved,
            max_alerts: config.max_alerts,
            client: http_client(&config.http_config, config.timeout)?,
        })
    }
}

/// The webhook body, field for field as Alertmanager sends it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookPayload<'a> {
    /// Always `"4"`.
    pub version: &'static str,
    /// The group key.
    pub group_key: &'a str,
    /// Alerts left out because of `max_alerts`.
    pub truncated_alerts: u64,
    /// `firing` or `resolved`.
    pub status: &'static str,
    /// Receiver name.
    pub receiver: &'a str,
    /// The labels the group is keyed by.
    pub group_labels: &'a Labels,
    /// Labels shared by all alerts.
    pub common_labels: Labels,
    /// Annotations shared by all alerts.
    pub common_annotations: Labels,
    /// Vigie's external URL.
    #[serde(rename = "externalURL")]
    pub external_url: &'a str,
    /// The alerts.
    pub alerts: Vec<WebhookAlert<'a>>,
    /// Vigie's addition: how many alerts of what depends on the firing
    /// alerts are not notified ([`crate::depends`]); absent when none.
    #[serde(skip_serializing_if = "is_zero")]
    pub dependents_suppressed: u64,
    /// Vigie's addition: the incident of these alerts, with its probable
    /// root cause and chain ([`crate::incident`]); absent when none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incident: Option<serde_json::Value>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One alert in a [`WebhookPayload`].
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAlert<'a> {
    /// `firing` or `resolved`.
    pub status: &'static str,
    /// Labels.
    pub labels: &'a Labels,
    /// Annotations.
    pub annotations: &'a Labels,
    /// RFC 3339 start time.
    pub starts_at: String,
    /// RFC 3339 end time; Go's zero time while firing.
    pub ends_at: String,
    /// Link to the source.
    #[serde(rename = "generatorURL")]
    pub generator_url: &'a str,
    /// Fingerprint.
    pub fingerprint: &'a str,
}

impl<'a> WebhookPayload<'a> {
    /// The payload for a notification.
    pub fn new(n: &'a Notification) -> Self {
        Self::truncated(n, 0)
    }

    /// The payload with at most `max_alerts` alerts (0: all).
    pub fn truncated(n: &'a Notification, max_alerts: usize) -> Self {
        let keep = if max_alerts == 0 {
            n.alerts.len()
        } else {
            max_alerts.min(n.alerts.len())
        };
        Self {
            version: "4",
            group_key: &n.group_key,
            truncated_alerts: (n.alerts.len() - keep) as u64,
            status: n.status.as_str(),
            receiver: &n.receiver,
            group_labels: &n.group_labels,
            common_labels: n.common_labels(),
            common_annotations: n.common_annotations(),
            external_url: &n.external_url,
            dependents_suppressed: crate::depends::dependents_suppressed(n),
            incident: n.incident.as_ref().map(|i| i.to_json()),
            alerts: n.alerts[..keep]
                .iter()
                .map(|a| WebhookAlert {
                    status: a.status.as_str(),
                    labels: &a.labels,
                    annotations: &a.annotations,
                    starts_at: rfc3339(a.starts_at_ms),
                    ends_at: a
                        .ends_at_ms
                        .map(rfc3339)
                        .unwrap_or_else(|| ZERO_TIME.to_string()),
                    generator_url: &a.generator_url,
                    fingerprint: &a.fingerprint,
                })
                .collect(),
        }
    }
}

#[async_trait]
impl Notifier for WebhookNotifier {
    fn integration(&self) -> &'static str {
        "webhook"
    }

    fn send_resolved(&self) -> bool {
        self.send_resolved
    }

    async fn notify(&self, n: &Notification) -> Result<(), NotifyError> {
        let key = n.idempotency_key();
        post_json_with(
            &self.client,
            &self.url,
            &WebhookPayload::truncated(n, self.max_alerts),
            &[(IDEMPOTENCY_HEADER, key.as_str())],
        )
        .await
    }
}
