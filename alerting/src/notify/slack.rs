//! Slack and Mattermost incoming webhooks (one attachment per
//! notification, as Alertmanager sends them).

use async_trait::async_trait;
use serde::Serialize;

use super::email::subject;
use super::{GroupStatus, Notification, Notifier, http_client, post_json};
use crate::NotifyError;
use crate::config::SlackConfig;

/// Posts a message with one attachment to an incoming webhook.
pub struct SlackNotifier {
    api_url: String,
    channel: Option<String>,
    username: Option<String>,
    title: Option<String>,
    text: Option<String>,
    send_resolved: bool,
    client: crate::http::HttpClient,
}

impl SlackNotifier {
    /// Builds the notifier and its HTTP client.
    pub fn new(config: &SlackConfig) -> Result<Self, NotifyError> {
        Ok(Self {
            api_url: config.api_url.clone(),
            channel: config.channel.clone(),
            username: config.username.clone(),
            title: config.title.clone(),
            text: config.text.clone(),
            send_resolved: config.send_resolved,
            client: http_client(&config.http_config, config.timeout)?,
        })
    }

    /// The message posted for `n`.
    pub fn message<'a>(&'a self, n: &Notification) -> SlackMessage<'a> {
        let title = self.title.clone().unwrap_or_else(|| subject(n));
        let text = self.text.clone().unwrap_or_else(|| default_text(n));
        let fallback = format!("{title} | {}", n.external_url);
        SlackMessage {
            channel: self.channel.as_deref(),
            username: self.username.as_deref(),
            attachments: vec![SlackAttachment {
                color: match n.status {
                    GroupStatus::Firing => "danger",
                    GroupStatus::Resolved => "good",
                },
                title,
                text,
                fallback,
            }],
        }
    }
}

/// The JSON posted to the webhook.
#[derive(Debug, Serialize)]
pub struct SlackMessage<'a> {
    /// Channel override.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<&'a str>,
    /// User name override.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<&'a str>,
    /// Exactly one attachment.
    pub attachments: Vec<SlackAttachment>,
}

/// One attachment of a [`SlackMessage`].
#[derive(Debug, Serialize)]
pub struct SlackAttachment {
    /// `danger` while firing, `good` once resolved.
    pub color: &'static str,
    /// The configured title, else Alertmanager's default subject.
    pub title: String,
    /// The configured text, else one line per alert.
    pub text: String,
    /// Plain-text summary for clients that cannot show attachments:
    /// `<title> | <external URL>`.
    pub fallback: String,
}

/// One line per alert: `firing: <summary>`, the summary being the
/// `summary` annotation, else `description`, else the alert's name.
pub fn default_text(n: &Notification) -> String {
    n.alerts
        .iter()
        .map(|a| {
            let what = a
                .annotations
                .get("summary")
                .or_else(|| a.annotations.get("description"))
                .or_else(|| a.labels.get("alertname"))
                .unwrap_or("");
            format!("{}: {what}", a.status.as_str())
        })
        .chain(n.incident.as_ref().and_then(|i| i.summary_line()))
        .collect::<Vec<_>>()
        .join("\n")
}

#[async_trait]
impl Notifier for SlackNotifier {
    fn integration(&self) -> &'static str {
        "slack"
    }

    fn send_resolved(&self) -> bool {
        self.send_resolved
    }

    async fn notify(&self, n: &Notification) -> Result<(), NotifyError> {
        post_json(&self.client, &self.api_url, &self.message(n)).await
    }
}
