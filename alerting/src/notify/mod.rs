//! The notification seam: what is sent, and the [`Notifier`] trait that
//! each integration (webhook, email) implements.

pub mod email;
pub mod pagerduty;
pub mod slack;
pub mod webhook;

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use vigie_model::Labels;

use crate::NotifyError;

/// Whether a group (or one alert) is firing or resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupStatus {
    /// At least one alert fires.
    Firing,
    /// Every alert is resolved.
    Resolved,
}

impl GroupStatus {
    /// `"firing"` or `"resolved"`.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupStatus::Firing => "firing",
            GroupStatus::Resolved => "resolved",
        }
    }
}

/// One alert as it appears in a notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotifiedAlert {
    /// Firing or resolved.
    pub status: GroupStatus,
    /// The alert's labels.
    pub labels: Labels,
    /// The alert's annotations.
    pub annotations: Labels,
    /// When it started firing (ms since epoch).
    pub starts_at_ms: i64,
    /// When it resolved (ms since epoch); `None` while firing.
    pub ends_at_ms: Option<i64>,
    /// Link to the rule or query that produced it.
    pub generator_url: String,
    /// The alert's fingerprint (16 hex digits).
    pub fingerprint: String,
}

/// One notification about one group, for one receiver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Receiver name.
    pub receiver: String,
    /// Alertmanager-style group key, e.g. `{}:{alertname="X"}`.
    pub group_key: String,
    /// Firing when any alert fires.
    pub status: GroupStatus,
    /// The labels the group is keyed by.
    pub group_labels: Labels,
    /// The alerts, firing first.
    pub alerts: Vec<NotifiedAlert>,
    /// Vigie's external URL.
    pub external_url: String,
    /// When the dispatcher decided to send it (ms since epoch): with the
    /// receiver, group key and status it makes [`Notification::idempotency_key`].
    /// 0 in entries written before this field existed.
    #[serde(default)]
    pub notified_at_ms: i64,
    /// The incident of these alerts with its probable root cause
    /// ([`crate::incident`]); `None` when none holds them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<crate::incident::IncidentHint>,
}

/// The HTTP header carrying [`Notification::idempotency_key`] on webhooks.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

impl Notification {
    /// A key that is the same for every attempt to deliver this
    /// notification, in this run or re-sent from the outbox after a crash,
    /// and different for any other notification (a repeat, a change, the
    /// resolution): 32 hex digits of the MD5 of receiver, group key, status
    /// and [`Notification::notified_at_ms`]. Webhooks carry it in the
    /// [`IDEMPOTENCY_HEADER`] header, emails in their `Message-ID`, so a
    /// receiver can drop the duplicate that at-least-once delivery may bring.
    pub fn idempotency_key(&self) -> String {
        use md5::{Digest, Md5};
        let mut h = Md5::new();
        for part in [
            self.receiver.as_bytes(),
            self.group_key.as_bytes(),
            self.status.as_str().as_bytes(),
            self.notified_at_ms.to_string().as_bytes(),
        ] {
            h.update(part);
            h.update([0u8]);
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The fingerprints of the alerts, in notification order.
    pub fn fingerprints(&self) -> Vec<String> {
        self.alerts.iter().map(|a| a.fingerprint.clone()).collect()
    }

    /// Label pairs shared by every alert.
    pub fn common_labels(&self) -> Labels {
        common(self.alerts.iter().map(|a| &a.labels))
    }

    /// Annotation pairs shared by every alert.
    pub fn common_annotations(&self) -> Labels {
        common(self.alerts.iter().map(|a| &a.annotations))
    }

    /// Number of firing alerts.
    pub fn firing_count(&self) -> usize {
        self.alerts
            .iter()
            .filter(|a| a.status == GroupStatus::Firing)
            .count()
    }

    /// Number of resolved alerts.
    pub fn resolved_count(&self) -> usize {
        self.alerts.len() - self.firing_count()
    }
}

fn common<'a>(mut sets: impl Iterator<Item = &'a Labels>) -> Labels {
    let Some(first) = sets.next() else {
        return Labels::new();
    };
    let mut out = first.clone();
    for set in sets {
        out = out
            .iter()
            .filter(|(k, v)| set.get(k) == Some(*v))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    }
    out
}

/// Formats ms since epoch as RFC 3339 in UTC (`2024-05-01T12:00:00.123Z`).
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| ZERO_TIME.to_string())
}

/// Go's zero time, which Alertmanager sends as `endsAt` of firing alerts.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// One integration of one receiver.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Integration name for logs and metrics (`webhook`, `email`).
    fn integration(&self) -> &'static str;

    /// Whether resolved alerts are sent to this integration.
    fn send_resolved(&self) -> bool;

    /// Sends one notification; one attempt, no retries.
    async fn notify(&self, n: &Notification) -> Result<(), NotifyError>;
}

/// How much of an error response body is kept in the error.
const BODY_EXCERPT: usize = 256;

/// The HTTP(S) client of one integration: its `http_config` and request
/// timeout. Unusable TLS files are a [`NotifyError::Build`] naming the key.
pub(crate) fn http_client(
    config: &crate::tls::HttpConfig,
    timeout: Duration,
) -> Result<crate::http::HttpClient, NotifyError> {
    crate::http::HttpClient::new(&config.tls_config, timeout)
        .map_err(|e| NotifyError::Build(format!("http_config.{e}")))
}

/// POSTs `body` as JSON to `url`; any 2xx answer is success, anything else
/// an [`NotifyError::Http`] with the start of the answer's body.
pub(crate) async fn post_json<T: Serialize + ?Sized>(
    client: &crate::http::HttpClient,
    url: &str,
    body: &T,
) -> Result<(), NotifyError> {
    post_json_with(client, url, body, &[]).await
}

/// [`post_json`] with extra request headers.
pub(crate) async fn post_json_with<T: Serialize + ?Sized>(
    client: &crate::http::HttpClient,
    url: &str,
    body: &T,
    headers: &[(&str, &str)],
) -> Result<(), NotifyError> {
    use crate::http::HttpError;
    let json = serde_json::to_vec(body).map_err(|e| NotifyError::Build(e.to_string()))?;
    let response = client
        .post(url, "application/json", headers, json)
        .await
        .map_err(|e| match e {
            HttpError::Tls { message, retriable } => NotifyError::Tls { message, retriable },
            HttpError::Transport(m) => NotifyError::Transport(m),
            HttpError::Request(m) => NotifyError::Build(m),
        })?;
    if (200..300).contains(&response.status) {
        return Ok(());
    }
    let body = response.body;
    let mut excerpt: String = body.chars().take(BODY_EXCERPT).collect();
    if excerpt.len() < body.len() {
        excerpt.push('…');
    }
    Err(NotifyError::Http {
        status: response.status,
        body: excerpt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_labels_are_shared_pairs() {
        let a = |l: Labels| NotifiedAlert {
            status: GroupStatus::Firing,
            labels: l,
            annotations: Labels::new(),
            starts_at_ms: 0,
            ends_at_ms: None,
            generator_url: String::new(),
            fingerprint: String::new(),
        };
        let n = Notification {
            receiver: "r".into(),
            group_key: "k".into(),
            status: GroupStatus::Firing,
            group_labels: Labels::new(),
            alerts: vec![
                a(Labels::new()
                    .with("alertname", "X")
                    .with("i", "1")
                    .with("s", "p")),
                a(Labels::new()
                    .with("alertname", "X")
                    .with("i", "2")
                    .with("s", "p")),
            ],
            external_url: String::new(),
            notified_at_ms: 0,
            incident: None,
        };
        assert_eq!(
            n.common_labels(),
            Labels::new().with("alertname", "X").with("s", "p")
        );
        assert!(n.common_annotations().is_empty());
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_500), "1970-01-01T00:00:01.500Z");
    }
}
