//! Alerting configuration, named after Alertmanager's.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::tls::{HttpConfig, TlsConfig};

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
    /// Dependency-aware suppression (`[alerting.dependencies]`): alerts of
    /// what depends on a down parent are not notified ([`crate::depends`]).
    pub dependencies: crate::depends::DependencyConfig,
    /// Incidents with root-cause hints (`[alerting.incidents]`,
    /// [`crate::incident`]).
    pub incidents: crate::incident::IncidentConfig,
    /// High availability (`[alerting.ha]`): several alerting processes,
    /// one of which sends ([`crate::ha`]).
    pub ha: crate::ha::HaConfig,
    /// Alertmanager template files (globs, wildcards in the file name;
    /// relative to the working directory) whose `{{ define }}`d templates
    /// receiver fields may use ([`crate::templates`]). With
    /// `alertmanager_config`, that file's `templates` are used instead.
    pub templates: Vec<String>,
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
            dependencies: crate::depends::DependencyConfig::default(),
            incidents: crate::incident::IncidentConfig::default(),
            ha: crate::ha::HaConfig::default(),
            templates: Vec::new(),
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
    /// Templated `payload.summary` ([`crate::templates`]); Alertmanager's
    /// default subject when absent.
    #[serde(default)]
    pub description: Option<String>,
    /// Templated `client`; `Vigie` when absent.
    #[serde(default)]
    pub client: Option<String>,
    /// Templated `client_url`; the external URL when absent.
    #[serde(default)]
    pub client_url: Option<String>,
    /// Templated `payload.source`; the common `instance` label when absent.
    #[serde(default)]
    pub source: Option<String>,
    /// Templated `payload.class`, `component` and `group`.
    #[serde(default)]
    pub class: Option<String>,
    /// See `class`.
    #[serde(default)]
    pub component: Option<String>,
    /// See `class`.
    #[serde(default)]
    pub group: Option<String>,
    /// Templated `payload.custom_details`, replacing Vigie's structured
    /// lists of alerts when set.
    #[serde(default)]
    pub details: BTreeMap<String, String>,
    /// Whether to resolve the incident when every alert has resolved.
    #[serde(default = "yes")]
    pub send_resolved: bool,
    /// Timeout of one request.
    #[serde(default = "ten_seconds", with = "humantime_serde")]
    pub timeout: Duration,
    /// TLS settings (`http_config.tls_config`).
    #[serde(default)]
    pub http_config: HttpConfig,
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
    /// The incoming webhook URL (`http://` or `https://`).
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
    /// Templated attachment `pretext` ([`crate::templates`]).
    #[serde(default)]
    pub pretext: Option<String>,
    /// Templated `fallback`; `<title> | <external URL>` when absent.
    #[serde(default)]
    pub fallback: Option<String>,
    /// Templated `title_link`.
    #[serde(default)]
    pub title_link: Option<String>,
    /// Templated `footer`.
    #[serde(default)]
    pub footer: Option<String>,
    /// Whether to notify about resolved alerts (off, as in Alertmanager).
    #[serde(default)]
    pub send_resolved: bool,
    /// Timeout of one request.
    #[serde(default = "ten_seconds", with = "humantime_serde")]
    pub timeout: Duration,
    /// TLS settings (`http_config.tls_config`).
    #[serde(default)]
    pub http_config: HttpConfig,
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
    /// The URL to POST to (`http://` or `https://`).
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
    /// TLS settings (`http_config.tls_config`).
    #[serde(default)]
    pub http_config: HttpConfig,
}

impl Default for WebhookConfig {
    /// No URL; resolved alerts sent, 10 s timeout, every alert.
    fn default() -> Self {
        Self {
            url: String::new(),
            send_resolved: true,
            timeout: ten_seconds(),
            max_alerts: 0,
            http_config: HttpConfig::default(),
        }
    }
}

/// Email over SMTP, with Alertmanager's field names.
///
/// Transport security: a smarthost on port 465 (or `implicit_tls = true`)
/// speaks TLS from the first byte; otherwise `require_tls` (default true,
/// as in Alertmanager) demands STARTTLS and fails when the server does not
/// offer it; with `require_tls = false` the mail goes in plain text (as
/// Alertmanager does). Servers are verified as `tls_config` says. AUTH
/// (PLAIN, else LOGIN) is used when `auth_username` is set and the server
/// offers it.
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
    /// A file holding the SMTP AUTH password (read at start-up, surrounding
    /// whitespace trimmed), instead of `auth_password`.
    #[serde(default)]
    pub auth_password_file: Option<PathBuf>,
    /// The PLAIN authorization identity; empty (the default) acts as
    /// `auth_username` itself.
    #[serde(default)]
    pub auth_identity: Option<String>,
    /// Require STARTTLS (default true, as in Alertmanager): without TLS
    /// the notification fails. False sends plain SMTP, never STARTTLS.
    #[serde(default = "yes")]
    pub require_tls: bool,
    /// TLS from the first byte (SMTPS). By default: when the smarthost's
    /// port is 465, as in Alertmanager. A Vigie extension.
    #[serde(default)]
    pub implicit_tls: Option<bool>,
    /// How to verify the server (and which client certificate to show).
    #[serde(default)]
    pub tls_config: TlsConfig,
    /// Whether to notify about resolved alerts (off, as in Alertmanager).
    #[serde(default)]
    pub send_resolved: bool,
    /// Extra headers; `Subject` replaces the default subject.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Templated HTML body ([`crate::templates`]); Vigie's when absent.
    #[serde(default)]
    pub html: Option<String>,
    /// Templated plain-text body; Vigie's when absent.
    #[serde(default)]
    pub text: Option<String>,
}

impl Default for EmailConfig {
    /// No addresses; Alertmanager's defaults otherwise (STARTTLS required,
    /// no resolved notifications).
    fn default() -> Self {
        Self {
            to: Vec::new(),
            from: String::new(),
            smarthost: String::new(),
            auth_username: None,
            auth_password: None,
            auth_password_file: None,
            auth_identity: None,
            require_tls: true,
            implicit_tls: None,
            tls_config: TlsConfig::default(),
            send_resolved: false,
            headers: BTreeMap::new(),
            html: None,
            text: None,
        }
    }
}

impl EmailConfig {
    /// Whether the connection is TLS from the first byte: `implicit_tls`,
    /// else whether the smarthost's port is 465.
    pub fn uses_implicit_tls(&self) -> bool {
        self.implicit_tls.unwrap_or_else(|| {
            split_smarthost(&self.smarthost).is_some_and(|(_, port)| port == 465)
        })
    }

    /// The AUTH password: `auth_password`, else the content of
    /// `auth_password_file` (trimmed); `Ok(None)` when neither is set.
    pub fn password(&self) -> Result<Option<String>, String> {
        if let Some(p) = &self.auth_password {
            return Ok(Some(p.clone()));
        }
        let Some(path) = &self.auth_password_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let pass = text.trim();
        if pass.is_empty() {
            return Err(format!(
                "{} is empty; write the SMTP password in it",
                path.display()
            ));
        }
        Ok(Some(pass.to_string()))
    }
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
            .field("auth_password_file", &self.auth_password_file)
            .field("auth_identity", &self.auth_identity)
            .field("require_tls", &self.require_tls)
            .field("implicit_tls", &self.implicit_tls)
            .field("tls_config", &self.tls_config)
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
            crate::templates::load(std::path::Path::new(""), &self.templates)
                .map_err(crate::alertmanager::AlertmanagerError::from)?;
            return Ok(Resolved {
                config: self.clone(),
                routing: crate::route::Routing::from_config(self),
                warnings: Vec::new(),
            });
        };
        let loaded = crate::alertmanager::load(path)?;
        let mut config = self.clone();
        // Template globs are relative to the alertmanager.yml, and must parse.
        let dir = path.parent().unwrap_or(std::path::Path::new(""));
        config.templates = loaded
            .templates
            .iter()
            .map(|g| dir.join(g).display().to_string())
            .collect();
        crate::templates::load(dir, &loaded.templates)
            .map_err(crate::alertmanager::AlertmanagerError::from)?;
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
        let mut out = self.ha.problems();
        out.extend(self.dependencies.problems());
        out.extend(self.routing_problems());
        out
    }

    /// [`AlertingConfig::problems`] of grouping, timing and receivers.
    fn routing_problems(&self) -> Vec<(String, String)> {
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
                http_config_problems(&k, &slack.http_config, &mut bad);
            }
        }
        out
    }
}

fn webhook_problems(k: &str, hook: &WebhookConfig, bad: &mut impl FnMut(String, String)) {
    http_url_problems(&format!("{k}.url"), &hook.url, bad);
    timeout_problems(k, hook.timeout, bad);
    http_config_problems(k, &hook.http_config, bad);
}

/// Reports unusable `http_config.tls_config` files of the integration at `k`.
fn http_config_problems(k: &str, http: &HttpConfig, bad: &mut impl FnMut(String, String)) {
    for (key, m) in http
        .tls_config
        .problems(&format!("{k}.http_config.tls_config"))
    {
        bad(key, m);
    }
}

/// Reports `url` at `key` unless it is an `http://` or `https://` URL
/// with a host.
fn http_url_problems(key: &str, url: &str, bad: &mut impl FnMut(String, String)) {
    match reqwest::Url::parse(url) {
        Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host().is_some() => {}
        Ok(_) => bad(
            key.to_string(),
            format!("{url:?} is not an http:// or https:// URL with a host"),
        ),
        Err(e) => bad(
            key.to_string(),
            format!("{url:?} is not a valid URL ({e}); e.g. \"https://hooks.example.com/alerts\""),
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
    http_url_problems(&format!("{k}.url"), &pd.url, bad);
    http_config_problems(k, &pd.http_config, bad);
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
    let has_password = mail.auth_password.is_some() || mail.auth_password_file.is_some();
    if mail.auth_password.is_some() && mail.auth_password_file.is_some() {
        bad(
            format!("{k}.auth_password_file"),
            "auth_password and auth_password_file are both set; keep one".into(),
        );
    } else if let Err(e) = mail.password() {
        bad(format!("{k}.auth_password_file"), e);
    }
    match (&mail.auth_username, has_password) {
        (Some(_), false) => bad(
            format!("{k}.auth_password"),
            "auth_username is set without auth_password (or auth_password_file); set both or neither".into(),
        ),
        (None, true) => bad(
            format!("{k}.auth_username"),
            "a password is set without auth_username; set both or neither".into(),
        ),
        _ => {}
    }
    if mail.auth_identity.is_some() && mail.auth_username.is_none() {
        bad(
            format!("{k}.auth_identity"),
            "auth_identity needs auth_username and a password; remove it or set them".into(),
        );
    }
    for (key, m) in mail.tls_config.problems(&format!("{k}.tls_config")) {
        bad(key, m);
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
            require_tls: false,
            ..EmailConfig::default()
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
                "webhook_configs":[{"url":"https://127.0.0.1:5001/"}],
                "email_configs":[{"to":["a@b.c"],"from":"v@b.c","smarthost":"mail:25"},
                    {"to":["a@b.c"],"from":"v@b.c","smarthost":"mail:465"}]}]}"#,
        )
        .expect("parse");
        assert_eq!(c.group_wait, Duration::from_secs(10));
        let r = &c.receivers[0];
        assert!(r.webhook_configs[0].send_resolved);
        assert_eq!(r.webhook_configs[0].timeout, Duration::from_secs(10));
        assert!(r.webhook_configs[0].http_config.tls_config.is_default());
        // Alertmanager's email defaults: STARTTLS required, no resolved.
        let mail = &r.email_configs[0];
        assert!(mail.require_tls);
        assert!(!mail.send_resolved);
        assert!(!mail.uses_implicit_tls());
        assert!(r.email_configs[1].uses_implicit_tls());
        assert!(c.problems().is_empty(), "{:?}", c.problems());
    }

    #[test]
    fn unknown_fields_are_rejected() {
        assert!(serde_json::from_str::<AlertingConfig>(r#"{"group_wiat":"1s"}"#).is_err());
        let tls_typo = r#"{"receivers":[{"name":"x","email_configs":[{"to":["a@b.c"],
            "from":"v@b.c","smarthost":"m:25","tls_config":{"ca_fil":"x"}}]}]}"#;
        assert!(serde_json::from_str::<AlertingConfig>(tls_typo).is_err());
    }

    #[test]
    fn reports_problems_with_keys() {
        let mut bad_mail = email();
        bad_mail.smarthost = "mail.example.com".into();
        bad_mail.auth_username = Some("u".into());
        bad_mail.tls_config.ca_file = Some("/nonexistent/ca.pem".into());
        let mut two_passwords = email();
        two_passwords.auth_username = Some("u".into());
        two_passwords.auth_password = Some("p".into());
        two_passwords.auth_password_file = Some("/nonexistent/pass".into());
        let c = AlertingConfig {
            receivers: vec![
                ReceiverConfig {
                    name: "ops".into(),
                    webhook_configs: vec![WebhookConfig {
                        url: "ftp://hooks.example.com/x".into(),
                        http_config: HttpConfig {
                            tls_config: TlsConfig {
                                cert_file: Some("/nonexistent/c.pem".into()),
                                ..TlsConfig::default()
                            },
                        },
                        ..WebhookConfig::default()
                    }],
                    email_configs: vec![bad_mail, two_passwords],
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
        assert_eq!(
            keys,
            [
                "alerting.receivers[0].webhook_configs[0].url",
                "alerting.receivers[0].webhook_configs[0].http_config.tls_config.key_file",
                "alerting.receivers[0].email_configs[0].smarthost",
                "alerting.receivers[0].email_configs[0].auth_password",
                "alerting.receivers[0].email_configs[0].tls_config.ca_file",
                "alerting.receivers[0].email_configs[1].auth_password_file",
                "alerting.receivers[1].name",
            ],
            "{problems:?}"
        );
        assert!(
            problems[4].1.contains("/nonexistent/ca.pem"),
            "{problems:?}"
        );
    }

    #[test]
    fn password_file_is_read_and_checked() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("pass");
        std::fs::write(&file, "s3cret\n").expect("write");
        let mut m = email();
        m.auth_username = Some("u".into());
        m.auth_password_file = Some(file.clone());
        assert_eq!(m.password(), Ok(Some("s3cret".into())));
        std::fs::write(&file, " \n").expect("write");
        let c = AlertingConfig {
            receivers: vec![ReceiverConfig {
                name: "mail".into(),
                email_configs: vec![m],
                ..ReceiverConfig::default()
            }],
            ..AlertingConfig::default()
        };
        let problems = c.problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(
            problems[0].0,
            "alerting.receivers[0].email_configs[0].auth_password_file"
        );
        assert!(problems[0].1.contains("is empty"), "{problems:?}");
    }

    #[test]
    fn pagerduty_and_slack_defaults_and_problems() {
        let c: AlertingConfig = serde_json::from_str(
            r#"{"receivers":[{"name":"pd",
                "pagerduty_configs":[{"routing_key":"k"},
                    {"routing_key":" ","url":"http://relay:8080/v2/enqueue","severity":"page"}],
                "slack_configs":[{"api_url":"https://hooks.slack.com/services/x"},
                    {"api_url":"mattermost:8065/hooks/x","channel":"ops"}]}]}"#,
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
                "alerting.receivers[0].pagerduty_configs[1].routing_key",
                "alerting.receivers[0].pagerduty_configs[1].severity",
                "alerting.receivers[0].slack_configs[1].api_url",
            ],
            "{problems:?}"
        );
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
