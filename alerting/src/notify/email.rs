//! Email over plain SMTP (no TLS yet), with Alertmanager's default subject.

use std::fmt::Write as _;

use async_trait::async_trait;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{GroupStatus, Notification, NotifiedAlert, Notifier, rfc3339};
use crate::NotifyError;
use crate::config::{EmailConfig, split_smarthost};

/// Sends one email per notification through an SMTP relay.
pub struct EmailNotifier {
    to: Vec<Mailbox>,
    from: Mailbox,
    send_resolved: bool,
    headers: Vec<(String, String)>,
    subject_override: Option<String>,
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl EmailNotifier {
    /// Builds the notifier; fails on anything `AlertingConfig::problems`
    /// would report (bad addresses, smarthost, TLS requested).
    pub fn new(config: &EmailConfig) -> Result<Self, NotifyError> {
        if config.require_tls {
            return Err(NotifyError::Build(
                "require_tls: TLS (STARTTLS) support is not built yet; set require_tls = false"
                    .into(),
            ));
        }
        let parse = |s: &str| {
            s.parse::<Mailbox>()
                .map_err(|e| NotifyError::Build(format!("address {s:?}: {e}")))
        };
        let to = config
            .to
            .iter()
            .map(|s| parse(s))
            .collect::<Result<Vec<_>, _>>()?;
        if to.is_empty() {
            return Err(NotifyError::Build("no recipient (`to`)".into()));
        }
        let from = parse(&config.from)?;
        let (host, port) = split_smarthost(&config.smarthost).ok_or_else(|| {
            NotifyError::Build(format!("smarthost {:?} is not host:port", config.smarthost))
        })?;
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .timeout(Some(std::time::Duration::from_secs(30)));
        if let (Some(user), Some(pass)) = (&config.auth_username, &config.auth_password) {
            builder = builder.credentials(Credentials::new(user.clone(), pass.clone()));
        }
        let mut headers = Vec::new();
        let mut subject_override = None;
        for (name, value) in &config.headers {
            if name.eq_ignore_ascii_case("subject") {
                subject_override = Some(value.clone());
            } else {
                HeaderName::new_from_ascii(name.clone())
                    .map_err(|e| NotifyError::Build(format!("header {name:?}: {e}")))?;
                headers.push((name.clone(), value.clone()));
            }
        }
        Ok(Self {
            to,
            from,
            send_resolved: config.send_resolved,
            headers,
            subject_override,
            transport: builder.build(),
        })
    }

    /// Builds the message for a notification (without sending it).
    pub fn message(&self, n: &Notification) -> Result<Message, NotifyError> {
        let mut builder = Message::builder()
            .message_id(Some(format!("<{}@vigie>", n.idempotency_key())))
            .from(self.from.clone())
            .subject(self.subject_override.clone().unwrap_or_else(|| subject(n)));
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        for (name, value) in &self.headers {
            let name = HeaderName::new_from_ascii(name.clone())
                .map_err(|e| NotifyError::Build(format!("header {name:?}: {e}")))?;
            builder = builder.raw_header(HeaderValue::new(name, value.clone()));
        }
        builder
            .multipart(MultiPart::alternative_plain_html(
                text_body(n),
                html_body(n),
            ))
            .map_err(|e| NotifyError::Build(e.to_string()))
    }
}

#[async_trait]
impl Notifier for EmailNotifier {
    fn integration(&self) -> &'static str {
        "email"
    }

    fn send_resolved(&self) -> bool {
        self.send_resolved
    }

    async fn notify(&self, n: &Notification) -> Result<(), NotifyError> {
        let message = self.message(n)?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| NotifyError::Smtp {
                retriable: !e.is_permanent(),
                message: e.to_string(),
            })
    }
}

/// Alertmanager's default subject:
/// `[FIRING:2] <group label values> (<other common label values>)`.
pub fn subject(n: &Notification) -> String {
    let mut s = match n.status {
        GroupStatus::Firing => format!("[FIRING:{}]", n.firing_count()),
        GroupStatus::Resolved => "[RESOLVED]".to_string(),
    };
    for (_, v) in n.group_labels.iter() {
        s.push(' ');
        s.push_str(v);
    }
    let common = n.common_labels();
    let extra: Vec<&str> = common
        .iter()
        .filter(|(k, _)| n.group_labels.get(k).is_none())
        .map(|(_, v)| v)
        .collect();
    if !extra.is_empty() {
        let _ = write!(s, " ({})", extra.join(" "));
    }
    s
}

fn section(n: &Notification, status: GroupStatus) -> Vec<&NotifiedAlert> {
    n.alerts.iter().filter(|a| a.status == status).collect()
}

/// The plain-text body.
pub fn text_body(n: &Notification) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}", subject(n));
    let _ = writeln!(s, "Receiver: {}", n.receiver);
    let _ = writeln!(s, "Group: {}", n.group_labels);
    if let Some(line) = n.incident.as_ref().and_then(|i| i.summary_line()) {
        let _ = writeln!(s, "{line}");
    }
    for status in [GroupStatus::Firing, GroupStatus::Resolved] {
        let alerts = section(n, status);
        if alerts.is_empty() {
            continue;
        }
        let _ = writeln!(s, "\n{} alerts ({}):", title(status), alerts.len());
        for a in alerts {
            let _ = writeln!(
                s,
                "\n- {}",
                a.labels.get("alertname").unwrap_or("(no alertname)")
            );
            for key in ["summary", "description"] {
                if let Some(v) = a.annotations.get(key) {
                    let _ = writeln!(s, "  {}: {v}", capitalize(key));
                }
            }
            let _ = writeln!(s, "  Labels:");
            for (k, v) in a.labels.iter() {
                let _ = writeln!(s, "    {k} = {v}");
            }
            let others: Vec<_> = a
                .annotations
                .iter()
                .filter(|(k, _)| *k != "summary" && *k != "description")
                .collect();
            if !others.is_empty() {
                let _ = writeln!(s, "  Annotations:");
                for (k, v) in others {
                    let _ = writeln!(s, "    {k} = {v}");
                }
            }
            let _ = writeln!(s, "  Started: {}", rfc3339(a.starts_at_ms));
            if let Some(end) = a.ends_at_ms {
                let _ = writeln!(s, "  Ended: {}", rfc3339(end));
            }
            if !a.generator_url.is_empty() {
                let _ = writeln!(s, "  Source: {}", a.generator_url);
            }
        }
    }
    let _ = writeln!(s, "\nSent by Vigie: {}", n.external_url);
    s
}

/// The HTML body.
pub fn html_body(n: &Notification) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "<!DOCTYPE html>\n<html><body>");
    let _ = writeln!(s, "<h2>{}</h2>", esc(&subject(n)));
    let _ = writeln!(
        s,
        "<p>Receiver: {}<br>\nGroup: <code>{}</code></p>",
        esc(&n.receiver),
        esc(&n.group_labels.to_string())
    );
    if let Some(line) = n.incident.as_ref().and_then(|i| i.summary_line()) {
        let _ = writeln!(s, "<p><b>{}</b></p>", esc(&line));
    }
    for status in [GroupStatus::Firing, GroupStatus::Resolved] {
        let alerts = section(n, status);
        if alerts.is_empty() {
            continue;
        }
        let _ = writeln!(s, "<h3>{} alerts ({})</h3>", title(status), alerts.len());
        for a in alerts {
            let _ = writeln!(
                s,
                "<h4>{}</h4>",
                esc(a.labels.get("alertname").unwrap_or("(no alertname)"))
            );
            for key in ["summary", "description"] {
                if let Some(v) = a.annotations.get(key) {
                    let _ = writeln!(s, "<p><b>{}</b>: {}</p>", capitalize(key), esc(v));
                }
            }
            let _ = writeln!(s, "<ul>");
            for (k, v) in a.labels.iter() {
                let _ = writeln!(s, "<li>{} = {}</li>", esc(k), esc(v));
            }
            for (k, v) in a
                .annotations
                .iter()
                .filter(|(k, _)| *k != "summary" && *k != "description")
            {
                let _ = writeln!(s, "<li>{} = {}</li>", esc(k), esc(v));
            }
            let _ = writeln!(s, "</ul>");
            let _ = writeln!(s, "<p>Started: {}", rfc3339(a.starts_at_ms));
            if let Some(end) = a.ends_at_ms {
                let _ = write!(s, "<br>\nEnded: {}", rfc3339(end));
            }
            let _ = writeln!(s, "</p>");
            if !a.generator_url.is_empty() {
                let _ = writeln!(s, "<p><a href=\"{}\">Source</a></p>", esc(&a.generator_url));
            }
        }
    }
    let _ = writeln!(
        s,
        "<p>Sent by <a href=\"{}\">Vigie</a></p>\n</body></html>",
        esc(&n.external_url)
    );
    s
}

fn title(status: GroupStatus) -> &'static str {
    match status {
        GroupStatus::Firing => "Firing",
        GroupStatus::Resolved => "Resolved",
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
