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
    pretext: Option<String>,
    fallback: Option<String>,
    title_link: Option<String>,
    footer: Option<String>,
    send_resolved: bool,
    client: crate::http::HttpClient,
    templates: std::sync::Arc<crate::templates::NotifyTemplates>,
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
            pretext: config.pretext.clone(),
            fallback: config.fallback.clone(),
            title_link: config.title_link.clone(),
            footer: config.footer.clone(),
            send_resolved: config.send_resolved,
            client: http_client(&config.http_config, config.timeout)?,
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

    /// The message posted for `n`.
    pub fn message(&self, n: &Notification) -> SlackMessage {
        let data = crate::templates::data(n);
        let render = |field: &str, src: &Option<String>, fallback: &dyn Fn() -> String| match src {
            Some(src) => self.templates.render(
                "slack",
                field,
                src,
                &data,
                vigie_template::Escape::Text,
                fallback,
            ),
            None => fallback(),
        };
        let optional = |field: &str, src: &Option<String>| {
            Some(render(field, src, &String::new)).filter(|s| !s.is_empty())
        };
        let title = render("title", &self.title, &|| subject(n));
        let text = render("text", &self.text, &|| default_text(n));
        let fallback = render("fallback", &self.fallback, &|| {
            format!("{title} | {}", n.external_url)
        });
        SlackMessage {
            channel: optional("channel", &self.channel),
            username: optional("username", &self.username),
            attachments: vec![SlackAttachment {
                color: match n.status {
                    GroupStatus::Firing => "danger",
                    GroupStatus::Resolved => "good",
                },
                title,
                title_link: optional("title_link", &self.title_link),
                pretext: optional("pretext", &self.pretext),
                text,
                fallback,
                footer: optional("footer", &self.footer),
            }],
        }
    }
}

/// The JSON posted to the webhook.
#[derive(Debug, Serialize)]
pub struct SlackMessage {
    /// Channel override (templated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// User name override (templated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
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
    /// The configured `title_link`, when it renders non-empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title_link: Option<String>,
    /// The configured `pretext`, when it renders non-empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pretext: Option<String>,
    /// The configured text, else one line per alert.
    pub text: String,
    /// Plain-text summary for clients that cannot show attachments: the
    /// configured `fallback`, else `<title> | <external URL>`.
    pub fallback: String,
    /// The configured `footer`, when it renders non-empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub footer: Option<String>,
}

/// One line per alert: `firing: <summary>`, the summary being the
/// `summary` annotation, else `description`, else the alert's name; then
/// `N dependents suppressed` when there are ([`crate::depends`]).
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
        .chain(crate::depends::dependents_line(n))
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
