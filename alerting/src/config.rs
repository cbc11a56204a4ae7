//! Alerting configuration, named after Alertmanager's.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The `group_by` value that groups by every label.
pub const GROUP_BY_ALL: &str = "...";

/// Grouping, timing and receivers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertingConfig {
    /// Labels whose values make a group; `["..."]` groups by all labels.
    pub group_by: Vec<String>,
    /// How long a new group waits before its first notification.
    #[serde(with = "humantime_serde")]
    pub group_wait: Duration,
    /// How long to wait before notifying about changes in a group.
    #[serde(with = "humantime_serde")]
    pub group_interval: Duration,
    /// How long before an unchanged, still firing group is notified again.
    #[serde(with = "humantime_serde")]
    pub repeat_interval: Duration,
    /// A firing alert not re-sent by the analyzer for this long is resolved.
    #[serde(with = "humantime_serde")]
    pub resolve_timeout: Duration,
    /// The URL at which Vigie is reachable, put in notifications.
    pub external_url: String,
    /// Receivers; without `alertmanager_config`, every alert goes to every
    /// receiver.
    pub receivers: Vec<ReceiverConfig>,
    /// An existing `alertmanager.yml` (relative to the working directory):
    /// its route tree, inhibition rules, time intervals and receivers are
    /// used instead of `group_by`, the timing keys, `resolve_timeout` and
    /// `receivers` here ([`crate::alertmanager`]).
    pub alertmanager_config: Option<PathBuf>,
    /// Flap detection (`[alerting.flapping]`): alerts changing state too
    /// often are held firing and notified once ([`crate::flap`]).
    pub flapping: crate::flap::FlapConfig,
    /// Incidents with root-cause hints (`[alerting.incidents]`,
    /// [`crate::incident`]).
    pub incidents: crate::incident::IncidentConfig,
}

impl Default for AlertingConfig {
    fn default() -> Self {
        Self {
            group_by: vec!["alertname".to_string()],
            group_wait: Duration::from_secs(30),
            group_interval: Duration::from_secs(5 * 60),
            repeat_interval: Duration::from_secs(4 * 3600),
            resolve_timeout: Duration::from_secs(5 * 60),
            external_url: "http://127.0.0.1:9464".to_string(),
            receivers: Vec::new(),
            alertmanager_config: None,
            flapping: crate::flap::FlapConfig::default(),
            incidents: crate::incident::IncidentConfig::default(),
        }
    }
}

/// A named set of integrations that all receive every notification.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    /// Unique name, reported in notifications and metrics.
    pub name: String,
    /// Webhooks to POST to.
    #[serde(default)]
    pub webhook_configs: Vec<WebhookConfig>,
    /// Email recipients.
    #[serde(default)]
    pub email_configs: Vec<EmailConfig>,
    /// PagerDuty Events API v2 services.
    #[serde(default)]
    pub pagerduty_configs: Vec<PagerdutyConfig>,
    /// Slack or Mattermost incoming webhooks.
    #[serde(default)]
    pub slack_configs: Vec<SlackConfig>,
}

/// PagerDuty's Events API v2 endpoint, the default `url`.
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// The severities PagerDuty accepts.
pub const PAGERDUTY_SEVERITIES: [&str; 4] = ["critical", "error", "warning", "info"];

/// A PagerDuty service, through the Events API v2.
///
/// Vigie is built without TLS for now, so the default `url`
/// ([`PAGERDUTY_EVENTS_URL`], https) is reported by
/// [`AlertingConfig::problems`]: set `url` to an `http://` relay that
/// forwards to PagerDuty until TLS support lands.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerdutyConfig {
    /// The integration key of the service (Events API v2).
    pub routing_key: String,
    /// The Events API v2 URL.
    #[serde(default = "pagerduty_url")]
    pub url: String,
    /// `critical`, `error`, `warning` or `info`; by default mapped from the
    /// alerts' `severity` label (`error` when absent or unknown).
    #[serde(default)]
    pub severity: Option<String>,
    /// Whether to resolve the incident when every alert has resolved.
    #[serde(default = "yes")]
    pub send_resolved: bool,
    /// Timeout of one request.
    #[serde(default = "ten_seconds", with = "humantime_serde")]
    pub timeout: Duration,
}

impl fmt::Debug for PagerdutyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PagerdutyConfig")
            .field("routing_key", &"<redacted>")
            .field("url", &self.url)
            .field("severity", &self.severity)
            .field("send_resolved", &self.send_resolved)
            .field("timeout", &self.timeout)
            .finish()
    }
}

fn pagerduty_url() -> String {
    PAGERDUTY_EVENTS_URL.to_string()
}

/// A Slack (or Mattermost) incoming webhook.
///
/// `title` and `text` are used literally (no templates yet); when absent,
/// the title is Alertmanager's default subject and the text lists the
/// alerts' summaries.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// The incoming webhook URL (`http://` only for now).
    pub api_url: String,
    /// Channel to post to, instead of the webhook's own.
    #[serde(default)]
    pub channel: Option<String>,
    /// User name to post as, instead of the webhook's own.
    #[serde(default)]
    pub username: Option<String>,
    /// Attachment title; Alertmanager's default subject when absent.
    #[serde(default)]
    pub title: Option<String>,
    /// Attachment text; one line per alert when absent.
    #[serde(default)]
    pub text: Option<String>,
    /// Whether to notify about resolved alerts (off, as in Alertmanager).
    #[serde(default)]
    pub send_resolved: bool,
    /// Timeout of one request.
    #[serde(default = "ten_seconds", with = "humantime_serde")]
    pub timeout: Duration,
}

impl fmt::Debug for SlackConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The webhook URL is a secret: whoever has it can post.
        f.debug_struct("SlackConfig")
            .field("api_url", &"<redacted>")
            .field("channel", &self.channel)
            .field("username", &self.username)
            .field("title", &self.title)
            .field("text", &self.text)
            .field("send_resolved", &self.send_resolved)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// An Alertmanager-compatible webhook.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The URL to POST to (`http://` only for now).
    pub url: String,
    /// Whether to notify about resolved alerts.
    #[serde(default = "yes")]
    pub send_resolved: bool,
    /// Timeout of one request.
    #[serde(default = "ten_seconds", with = "humantime_serde")]
    pub timeout: Duration,
    /// Send at most this many alerts per notification (0: all); the
    /// payload's `truncatedAlerts` counts those left out.
    #[serde(default)]
    pub max_alerts: usize,
}

/// Email over SMTP.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// Recipient addresses.
    pub to: Vec<String>,
    /// Sender address.
    pub from: String,
    /// SMTP server as `host:port`.
    pub smarthost: String,
    /// SMTP AUTH user name.
    #[serde(default)]
    pub auth_username: Option<String>,
    /// SMTP AUTH password.
    #[serde(default)]
    pub auth_password: Option<String>,
    /// Require STARTTLS. Not supported yet: must be false.
    #[serde(default)]
    pub require_tls: bool,
    /// Whether to notify about resolved alerts.
    #[serde(default = "yes")]
    pub send_resolved: bool,
    /// Extra headers; `Subject` replaces the default subject.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

impl fmt::Debug for EmailConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailConfig")
            .field("to", &self.to)
            .field("from", &self.from)
            .field("smarthost", &self.smarthost)
            .field("auth_username", &self.auth_username)
            .field(
                "auth_password",
                &self.auth_password.as_ref().map(|_| "<redacted>"),
            )
            .field("require_tls", &self.require_tls)
            .field("send_resolved", &self.send_resolved)
            .field("headers", &self.headers)
            .finish()
    }
}

fn yes() -> bool {
    true
}

fn ten_seconds() -> Duration {
    Duration::from_secs(10)
}

/// Splits `host:port` (or `[v6]:port`) into host and port.
pub(crate) fn split_smarthost(smarthost: &str) -> Option<(String, u16)> {
    let (host, port) = smarthost.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return None;
    }
    let port: u16 = port.parse().ok()?;
    (port != 0).then(|| (host.to_string(), port))
}

/// A configuration ready to run: the receivers and timing in effect and
/// the routing tree, from Vigie's TOML alone or from its
/// `alertmanager_config` file.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The configuration in effect (receivers and `resolve_timeout` taken
    /// from the Alertmanager file when there is one).
    pub config: AlertingConfig,
    /// Routes, inhibition rules and time intervals.
    pub routing: crate::route::Routing,
    /// Things accepted but not honoured exactly, to log at start-up.
    pub warnings: Vec<String>,
}

impl AlertingConfig {
    /// Loads the `alertmanager_config` file, if any, and returns what runs.
    /// Does not check receivers (see [`AlertingConfig::problems`]).
    pub fn resolve(&self) -> Result<Resolved, crate::alertmanager::AlertmanagerError> {
        let Some(path) = &self.alertmanager_config else {
            return Ok(Resolved {
                config: self.clone(),
                routing: crate::route::Routing::from_config(self),
                warnings: Vec::new(),
            });
        };
        let loaded = crate::alertmanager::load(path)?;
        let mut config = self.clone();
        config.receivers = loaded.receivers;
        config.resolve_timeout = loaded.resolve_timeout;
        let root = &loaded.routing.routes[0];
        config.group_by = root.group_by.clone();
        config.group_wait = root.group_wait;
        config.group_interval = root.group_interval;
        config.repeat_interval = root.repeat_interval;
        Ok(Resolved {
            config,
            routing: loaded.routing,
            warnings: loaded.warnings,
        })
    }

    /// Everything wrong with this configuration, as `(key, message)` pairs
    /// where the message says how to fix it. Empty when usable. With
    /// `alertmanager_config`, the file is read: its syntax errors come with
    /// line and column, its other problems with their key path.
    pub fn problems(&self) -> Vec<(String, String)> {
        let Some(path) = &self.alertmanager_config else {
            return self.own_problems();
        };
        let key = "alerting.alertmanager_config".to_string();
        let file = path.display().to_string();
        let mut out = Vec::new();
        let defaults = AlertingConfig::default();
        if !self.receivers.is_empty() {
            out.push((
                "alerting.receivers".into(),
                format!(
                    "receivers come from {file} when alertmanager_config is set; define them there"
                ),
            ));
        }
        for (name, differs) in [
            ("group_by", self.group_by != defaults.group_by),
            ("group_wait", self.group_wait != defaults.group_wait),
            (
                "group_interval",
                self.group_interval != defaults.group_interval,
            ),
            (
                "repeat_interval",
                self.repeat_interval != defaults.repeat_interval,
            ),
            (
                "resolve_timeout",
                self.resolve_timeout != defaults.resolve_timeout,
            ),
        ] {
            if differs {
                out.push((
                    format!("alerting.{name}"),
                    format!("comes from {file} when alertmanager_config is set (`route.{name}`, or `global.resolve_timeout`); remove it here"),
                ));
            }
        }
        match self.resolve() {
            Err(crate::alertmanager::AlertmanagerError::Invalid { file, problems }) => {
                out.extend(
                    problems
                        .into_iter()
                        .map(|(k, m)| (key.clone(), format!("{file}: {k}: {m}"))),
                );
            }
            Err(e) => out.push((key, e.to_string())),
            Ok(resolved) => {
                // Receiver problems, named by their place in the YAML file.
                let prefix = "alerting.receivers[";
                for (k, m) in resolved.config.own_problems() {
                    let k = match k.strip_prefix(prefix) {
                        Some(rest) => format!("receivers[{rest}"),
                        None => k,
                    };
                    let m = if k.ends_with(".require_tls") {
                        "TLS (STARTTLS) is not built into Vigie yet, and Alertmanager requires it by default; set `require_tls: false` (or `global.smtp_require_tls: false`) to send plain SMTP to a relay on a trusted network".to_string()
                    } else {
                        m
                    };
                    out.push((key.clone(), format!("{file}: {k}: {m}")));
                }
            }
        }
        out
    }

    fn own_problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut bad = |key: String, msg: String| out.push((key, msg));

        if self.group_by.iter().any(|l| l == GROUP_BY_ALL) && self.group_by.len() > 1 {
            bad(
                "alerting.group_by".into(),
                "\"...\" groups by all labels and cannot be combined with other labels; use [\"...\"] alone".into(),
            );
        }
        for (i, l) in self.group_by.iter().enumerate() {
            if l.is_empty() {
                bad(
                    format!("alerting.group_by[{i}]"),
                    "empty label name; remove it".into(),
                );
            }
        }
        for (key, d) in [
            ("alerting.group_interval", self.group_interval),
            ("alerting.repeat_interval", self.repeat_interval),
            ("alerting.resolve_timeout", self.resolve_timeout),
        ] {
            if d.is_zero() {
                bad(key.into(), "must be greater than zero, e.g. \"5m\"".into());
            }
        }
        for (key, msg) in self.incidents.problems() {
            bad(key, msg);
        }
        if self.flapping.changes > 0 {
            for (key, d) in [
                ("alerting.flapping.window", self.flapping.window),
                ("alerting.flapping.quiet", self.flapping.quiet),
            ] {
                if d.is_zero() {
                    bad(
                        key.into(),
                        "must be greater than zero, e.g. \"10m\" (or set changes = 0 to turn flap detection off)".into(),
                    );
                }
            }
        }
        if !(self.external_url.starts_with("http://") || self.external_url.starts_with("https://"))
        {
            bad(
                "alerting.external_url".into(),
                format!(
                    "{:?} is not an http(s) URL; set it to the URL people open Vigie at, e.g. \"http://vigie.example:9464\"",
                    self.external_url
                ),
            );
        }

        let mut names = HashSet::new();
        for (r, recv) in self.receivers.iter().enumerate() {
            let rk = format!("alerting.receivers[{r}]");
            if recv.name.trim().is_empty() {
                bad(
                    format!("{rk}.name"),
                    "a receiver needs a non-empty name".into(),
                );
            } else if !names.insert(recv.name.as_str()) {
                bad(
                    format!("{rk}.name"),
                    format!(
                        "receiver name {:?} is used twice; names must be unique",
                        recv.name
                    ),
                );
            }
            for (w, hook) in recv.webhook_configs.iter().enumerate() {
                let k = format!("{rk}.webhook_configs[{w}]");
                webhook_problems(&k, hook, &mut bad);
            }
            for (e, mail) in recv.email_configs.iter().enumerate() {
                let k = format!("{rk}.email_configs[{e}]");
                email_problems(&k, mail, &mut bad);
            }
            for (p, pd) in recv.pagerduty_configs.iter().enumerate() {
                let k = format!("{rk}.pagerduty_configs[{p}]");
                pagerduty_problems(&k, pd, &mut bad);
            }
            for (s, slack) in recv.slack_configs.iter().enumerate() {
                let k = format!("{rk}.slack_configs[{s}]");
                http_url_problems(&format!("{k}.api_url"), &slack.api_url, &mut bad);
                timeout_problems(&k, slack.timeout, &mut bad);
            }
        }
        out
    }
}

fn webhook_problems(k: &str, hook: &WebhookConfig, bad: &mut impl FnMut(String, String)) {
    http_url_problems(&format!("{k}.url"), &hook.url, bad);
    timeout_problems(k, hook.timeout, bad);
}

/// Reports `url` at `key` unless it is an `http://` URL with a host.
fn http_url_problems(key: &str, url: &str, bad: &mut impl FnMut(String, String)) {
    match reqwest::Url::parse(url) {
        Ok(u) if u.scheme() == "http" && u.host().is_some() => {}
        Ok(u) if u.scheme() == "https" => bad(
            key.to_string(),
            "https URLs are not supported yet (TLS support is not built into Vigie); use an http:// URL, e.g. through a local proxy".into(),
        ),
        Ok(_) => bad(
            key.to_string(),
            format!("{url:?} is not an http:// URL with a host"),
        ),
        Err(e) => bad(
            key.to_string(),
            format!("{url:?} is not a valid URL ({e}); e.g. \"http://127.0.0.1:5001/hook\""),
        ),
    }
}

fn timeout_problems(k: &str, timeout: Duration, bad: &mut impl FnMut(String, String)) {
    if timeout.is_zero() {
        bad(
            format!("{k}.timeout"),
            "must be greater than zero, e.g. \"10s\"".into(),
        );
    }
}

fn pagerduty_problems(k: &str, pd: &PagerdutyConfig, bad: &mut impl FnMut(String, String)) {
    if pd.routing_key.trim().is_empty() {
        bad(
            format!("{k}.routing_key"),
            "needs the integration key of a PagerDuty service (Events API v2)".into(),
        );
    }
    if pd.url == PAGERDUTY_EVENTS_URL {
        bad(
            format!("{k}.url"),
            format!(
                "the default {PAGERDUTY_EVENTS_URL} needs TLS, which is not built into Vigie yet; set url to an http:// relay that forwards to it"
            ),
        );
    } else {
        http_url_problems(&format!("{k}.url"), &pd.url, bad);
    }
    if let Some(sev) = &pd.severity
        && !PAGERDUTY_SEVERITIES.contains(&sev.as_str())
    {
        bad(
            format!("{k}.severity"),
            format!(
                "{sev:?} is not one of critical, error, warning, info; or leave it out to map the alerts' severity label"
            ),
        );
    }
    timeout_problems(k, pd.timeout, bad);
}

fn email_problems(k: &str, mail: &EmailConfig, bad: &mut impl FnMut(String, String)) {
    if mail.to.is_empty() {
        bad(
            format!("{k}.to"),
            "needs at least one recipient address".into(),
        );
    }
    for (i, to) in mail.to.iter().enumerate() {
        if to.parse::<lettre::message::Mailbox>().is_err() {
            bad(
                format!("{k}.to[{i}]"),
                format!("{to:?} is not an email address, e.g. \"oncall@example.com\""),
            );
        }
    }
    if mail.from.parse::<lettre::message::Mailbox>().is_err() {
        bad(
            format!("{k}.from"),
            format!(
                "{:?} is not an email address, e.g. \"vigie@example.com\" or \"Vigie <vigie@example.com>\"",
                mail.from
            ),
        );
    }
    if split_smarthost(&mail.smarthost).is_none() {
        bad(
            format!("{k}.smarthost"),
            format!(
                "{:?} is not host:port; set the SMTP server, e.g. \"smtp.example.com:25\"",
                mail.smarthost
            ),
        );
    }
    match (&mail.auth_username, &mail.auth_password) {
        (Some(_), None) => bad(
            format!("{k}.auth_password"),
            "auth_username is set without auth_password; set both or neither".into(),
        ),
        (None, Some(_)) => bad(
            format!("{k}.auth_username"),
            "auth_password is set without auth_username; set both or neither".into(),
        ),
        _ => {}
    }
    if mail.require_tls {
        bad(
            format!("{k}.require_tls"),
            "TLS (STARTTLS) support is not built yet: only plain SMTP works; set require_tls = false and use a relay on a trusted network".into(),
        );
    }
    for name in mail.headers.keys() {
        let lower = name.to_ascii_lowercase();
        if lower == "to" || lower == "from" {
            bad(
                format!("{k}.headers.{name}"),
                format!("set `{lower}` in the email config instead of as a header"),
            );
        } else if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
            bad(
                format!("{k}.headers.{name}"),
                "not a valid header name (printable ASCII without ':' or spaces)".into(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email() -> EmailConfig {
        EmailConfig {
            to: vec!["ops@example.com".into()],
            from: "vigie@example.com".into(),
            smarthost: "127.0.0.1:25".into(),
            auth_username: None,
            auth_password: None,
            require_tls: false,
            send_resolved: true,
            headers: BTreeMap::new(),
        }
    }

    #[test]
    fn defaults_are_alertmanager_like_and_valid() {
        let c: AlertingConfig = serde_json::from_str("{}").expect("parse");
        assert_eq!(c.group_by, vec!["alertname"]);
        assert_eq!(c.group_wait, Duration::from_secs(30));
        assert_eq!(c.repeat_interval, Duration::from_secs(4 * 3600));
        assert!(c.problems().is_empty(), "{:?}", c.problems());
    }

    #[test]
    fn parses_receivers_with_defaults() {
        let c: AlertingConfig = serde_json::from_str(
            r#"{"group_wait":"10s","receivers":[{"name":"ops",
                "webhook_configs":[{"url":"http://127.0.0.1:5001/"}],
                "email_configs":[{"to":["a@b.c"],"from":"v@b.c","smarthost":"mail:25"}]}]}"#,
        )
        .expect("parse");
        assert_eq!(c.group_wait, Duration::from_secs(10));
        let r = &c.receivers[0];
        assert!(r.webhook_configs[0].send_resolved);
        assert_eq!(r.webhook_configs[0].timeout, Duration::from_secs(10));
        assert!(!r.email_configs[0].require_tls);
        assert!(c.problems().is_empty(), "{:?}", c.problems());
    }

    #[test]
    fn unknown_fields_are_rejected() {
        assert!(serde_json::from_str::<AlertingConfig>(r#"{"group_wiat":"1s"}"#).is_err());
    }

    #[test]
    fn reports_problems_with_keys() {
        let mut bad_mail = email();
        bad_mail.smarthost = "mail.example.com".into();
        bad_mail.require_tls = true;
        bad_mail.auth_username = Some("u".into());
        let c = AlertingConfig {
            receivers: vec![
                ReceiverConfig {
                    name: "ops".into(),
                    webhook_configs: vec![WebhookConfig {
                        url: "https://hooks.example.com/x".into(),
                        send_resolved: true,
                        timeout: Duration::from_secs(1),
                        max_alerts: 0,
                    }],
                    email_configs: vec![bad_mail],
                    ..ReceiverConfig::default()
                },
                ReceiverConfig {
                    name: "ops".into(),
                    webhook_configs: vec![],
                    email_configs: vec![email()],
                    ..ReceiverConfig::default()
                },
            ],
            ..AlertingConfig::default()
        };
        let problems = c.problems();
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert!(keys.contains(&"alerting.receivers[0].webhook_configs[0].url"));
        assert!(keys.contains(&"alerting.receivers[0].email_configs[0].smarthost"));
        assert!(keys.contains(&"alerting.receivers[0].email_configs[0].auth_password"));
        assert!(keys.contains(&"alerting.receivers[1].name"));
        let tls = problems
            .iter()
            .find(|(k, _)| k == "alerting.receivers[0].email_configs[0].require_tls")
            .expect("require_tls reported");
        assert!(tls.1.contains("not built yet"), "{}", tls.1);
        assert_eq!(problems.len(), 5, "{problems:?}");
    }

    #[test]
    fn pagerduty_and_slack_defaults_and_problems() {
        let c: AlertingConfig = serde_json::from_str(
            r#"{"receivers":[{"name":"pd",
                "pagerduty_configs":[{"routing_key":"k"},
                    {"routing_key":" ","url":"http://relay:8080/v2/enqueue","severity":"page"}],
                "slack_configs":[{"api_url":"https://hooks.slack.com/services/x"},
                    {"api_url":"http://mattermost:8065/hooks/x","channel":"ops"}]}]}"#,
        )
        .expect("parse");
        let r = &c.receivers[0];
        assert_eq!(r.pagerduty_configs[0].url, PAGERDUTY_EVENTS_URL);
        assert!(r.pagerduty_configs[0].send_resolved);
        assert_eq!(r.pagerduty_configs[0].severity, None);
        assert!(!r.slack_configs[0].send_resolved);
        assert!(!format!("{r:?}").contains("hooks.slack.com"));
        let problems = c.problems();
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "alerting.receivers[0].pagerduty_configs[0].url",
                "alerting.receivers[0].pagerduty_configs[1].routing_key",
                "alerting.receivers[0].pagerduty_configs[1].severity",
                "alerting.receivers[0].slack_configs[0].api_url",
            ],
            "{problems:?}"
        );
        assert!(problems[0].1.contains("TLS"), "{}", problems[0].1);
    }

    #[test]
    fn password_is_not_debug_printed() {
        let mut m = email();
        m.auth_username = Some("u".into());
        m.auth_password = Some("hunter2".into());
        assert!(!format!("{m:?}").contains("hunter2"));
    }

    #[test]
    fn smarthost_split() {
        assert_eq!(split_smarthost("a:25"), Some(("a".into(), 25)));
        assert_eq!(split_smarthost("[::1]:2525"), Some(("::1".into(), 2525)));
        assert_eq!(split_smarthost("a"), None);
        assert_eq!(split_smarthost(":25"), None);
    }
}
