//! Loading an existing `alertmanager.yml`, unchanged, for the subset Vigie
//! supports: `global` (SMTP, Slack and PagerDuty defaults, `http_config`,
//! `smtp_tls_config`, `resolve_timeout`), the `route` tree (`receiver`, `matchers` and the
//! legacy `match`/`match_re`, `continue`, `group_by`, `group_wait`,
//! `group_interval`, `repeat_interval`, `mute_time_intervals`,
//! `active_time_intervals`, `routes`), `inhibit_rules` (`source_matchers`,
//! `target_matchers`, legacy `source_match[_re]`/`target_match[_re]`,
//! `equal`), `receivers` (webhook, email, PagerDuty, Slack, with their
//! `http_config.tls_config` and email `tls_config`), `time_intervals`
//! and `mute_time_intervals`, and `templates`.
//!
//! Every key outside that subset is rejected with the file, the key path
//! and the line and column ([`load`]). Go templates in receiver fields are
//! rendered at notification time ([`crate::templates`]); fields left unset
//! get Alertmanager's defaults (email `Subject` and `html`, Slack `title`
//! and `text`, PagerDuty `description`), so they render as Alertmanager
//! renders them; PagerDuty `details` stay Vigie's structured lists of
//! alerts unless set.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{
    EmailConfig, GROUP_BY_ALL, PAGERDUTY_EVENTS_URL, PagerdutyConfig, ReceiverConfig, SlackConfig,
    WebhookConfig,
};
use crate::route::{InhibitRule, Range, RouteNode, Routing, TimeInterval, route_key};
use crate::silence::{Matcher, valid_label_name};
use crate::tls::{HttpConfig, TlsConfig};

/// Alertmanager's default `resolve_timeout`.
pub const DEFAULT_RESOLVE_TIMEOUT: Duration = Duration::from_secs(5 * 60);
const DEFAULT_GROUP_WAIT: Duration = Duration::from_secs(30);
const DEFAULT_GROUP_INTERVAL: Duration = Duration::from_secs(5 * 60);
const DEFAULT_REPEAT_INTERVAL: Duration = Duration::from_secs(4 * 3600);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why an `alertmanager.yml` could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlertmanagerError {
    /// The file could not be read.
    #[error("{file}: cannot read: {message}")]
    Read {
        /// The file.
        file: String,
        /// The I/O error.
        message: String,
    },
    /// The YAML is malformed, or a key is unknown or unsupported.
    #[error("{file}:{line}:{column}: {message}")]
    Syntax {
        /// The file.
        file: String,
        /// 1-based line (0 when the parser gave no position).
        line: usize,
        /// 1-based column.
        column: usize,
        /// The key path and what is wrong, e.g.
        /// ``route.routes[0]: unknown field `foo` ...``.
        message: String,
    },
    /// The file parses but does not make sense (unknown receiver, ...);
    /// each problem is `(key path, message)`.
    #[error("{file}: {}", .problems.iter().map(|(k, m)| format!("{k}: {m}")).collect::<Vec<_>>().join("; "))]
    Invalid {
        /// The file.
        file: String,
        /// `(key path, what to fix)`.
        problems: Vec<(String, String)>,
    },
}

/// What an `alertmanager.yml` configures.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The receivers, as Vigie's receiver configuration.
    pub receivers: Vec<ReceiverConfig>,
    /// The routing tree, inhibition rules and time intervals.
    pub routing: Routing,
    /// `global.resolve_timeout`.
    pub resolve_timeout: Duration,
    /// The `templates` globs, as written (relative to the file's folder).
    pub templates: Vec<String>,
    /// Things accepted but not honoured exactly, to log.
    pub warnings: Vec<String>,
}

/// Keys Alertmanager knows that Vigie does not support yet.
const UNSUPPORTED: &[&str] = &[
    "url_file",
    "smtp_hello",
    "smtp_auth_secret",
    "auth_secret",
    "hello",
    "basic_auth",
    "authorization",
    "oauth2",
    "proxy_url",
    "follow_redirects",
    "enable_http2",
    "min_version",
    "max_version",
    "service_key",
    "routing_key_file",
    "api_url_file",
    "images",
    "links",
    "icon_emoji",
    "icon_url",
    "color",
    "fields",
    "actions",
    "mrkdwn_in",
    "callback_id",
    "short_fields",
    "link_names",
    "image_url",
    "thumb_url",
    "opsgenie_configs",
    "victorops_configs",
    "pushover_configs",
    "wechat_configs",
    "telegram_configs",
    "sns_configs",
    "webex_configs",
    "discord_configs",
    "msteams_configs",
    "slack_app_token",
    "opsgenie_api_key",
    "opsgenie_api_url",
    "victorops_api_key",
    "victorops_api_url",
    "wechat_api_url",
    "telegram_api_url",
    "webex_api_url",
];

/// Reads and converts the `alertmanager.yml` at `path`.
pub fn load(path: &Path) -> Result<Loaded, AlertmanagerError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| AlertmanagerError::Read {
        file: file.clone(),
        message: e.to_string(),
    })?;
    let mut loaded = parse(&text, &file)?;
    // Relative TLS and password files are relative to the file, as in
    // Alertmanager.
    let dir = path.parent().unwrap_or(Path::new("."));
    for r in &mut loaded.receivers {
        for w in &mut r.webhook_configs {
            w.http_config.tls_config.resolve_paths(dir);
        }
        for p in &mut r.pagerduty_configs {
            p.http_config.tls_config.resolve_paths(dir);
        }
        for s in &mut r.slack_configs {
            s.http_config.tls_config.resolve_paths(dir);
        }
        for m in &mut r.email_configs {
            m.tls_config.resolve_paths(dir);
            if let Some(f) = &mut m.auth_password_file
                && f.is_relative()
            {
                *f = dir.join(&*f);
            }
        }
    }
    Ok(loaded)
}

/// Parses and converts `alertmanager.yml` text; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Loaded, AlertmanagerError> {
    let raw: AmFile = serde_yaml::from_str(text).map_err(|e| syntax_error(&e, file))?;
    convert(raw).map_err(|problems| AlertmanagerError::Invalid {
        file: file.to_string(),
        problems,
    })
}

fn syntax_error(e: &serde_yaml::Error, file: &str) -> AlertmanagerError {
    let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
    let mut message = e.to_string();
    // serde_yaml appends " at line L column C"; the position leads instead.
    if let Some(cut) = message.rfind(" at line ") {
        message.truncate(cut);
    }
    if let Some(rest) = message.split("unknown field `").nth(1)
        && let Some(key) = rest.split('`').next()
        && UNSUPPORTED.contains(&key)
    {
        message = format!(
            "{}: `{key}` is an Alertmanager key that Vigie does not support yet; remove it or use Alertmanager for this receiver",
            message.split(": unknown field").next().unwrap_or("")
        );
    }
    AlertmanagerError::Syntax {
        file: file.to_string(),
        line,
        column,
        message,
    }
}

// ---- the YAML schema (Alertmanager's names) --------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AmFile {
    #[serde(default)]
    global: AmGlobal,
    route: AmRoute,
    #[serde(default)]
    receivers: Vec<AmReceiver>,
    #[serde(default)]
    inhibit_rules: Vec<AmInhibitRule>,
    #[serde(default)]
    time_intervals: Vec<AmTimeIntervals>,
    #[serde(default)]
    mute_time_intervals: Vec<AmTimeIntervals>,
    #[serde(default)]
    templates: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AmGlobal {
    resolve_timeout: Option<PromDuration>,
    smtp_from: Option<String>,
    smtp_smarthost: Option<String>,
    smtp_auth_username: Option<String>,
    smtp_auth_password: Option<String>,
    smtp_auth_password_file: Option<PathBuf>,
    smtp_auth_identity: Option<String>,
    smtp_require_tls: Option<bool>,
    smtp_tls_config: Option<TlsConfig>,
    http_config: Option<HttpConfig>,
    slack_api_url: Option<String>,
    pagerduty_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AmRoute {
    receiver: Option<String>,
    group_by: Option<Vec<String>>,
    #[serde(default, rename = "continue")]
    continue_matching: bool,
    #[serde(default)]
    matchers: Vec<MatcherList>,
    #[serde(default, rename = "match")]
    match_eq: BTreeMap<String, String>,
    #[serde(default)]
    match_re: BTreeMap<String, RegexValue>,
    group_wait: Option<PromDuration>,
    group_interval: Option<PromDuration>,
    repeat_interval: Option<PromDuration>,
    #[serde(default)]
    mute_time_intervals: Vec<String>,
    #[serde(default)]
    active_time_intervals: Vec<String>,
    #[serde(default)]
    routes: Vec<AmRoute>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AmReceiver {
    name: String,
    #[serde(default)]
    webhook_configs: Vec<AmWebhook>,
    #[serde(default)]
    email_configs: Vec<AmEmail>,
    #[serde(default)]
    pagerduty_configs: Vec<AmPagerduty>,
    #[serde(default)]
    slack_configs: Vec<AmSlack>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AmWebhook {
    url: String,
    send_resolved: Option<bool>,
    #[serde(default)]
    max_alerts: usize,
    http_config: Option<HttpConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AmEmail {
    to: String,
    from: Option<String>,
    smarthost: Option<String>,
    auth_username: Option<String>,
    auth_password: Option<String>,
    auth_password_file: Option<PathBuf>,
    auth_identity: Option<String>,
    require_tls: Option<bool>,
    tls_config: Option<TlsConfig>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    html: Option<String>,
    text: Option<String>,
    send_resolved: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AmPagerduty {
    routing_key: String,
    url: Option<String>,
    severity: Option<String>,
    description: Option<String>,
    client: Option<String>,
    client_url: Option<String>,
    source: Option<String>,
    class: Option<String>,
    component: Option<String>,
    group: Option<String>,
    #[serde(default)]
    details: BTreeMap<String, String>,
    send_resolved: Option<bool>,
    http_config: Option<HttpConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AmSlack {
    api_url: Option<String>,
    channel: Option<String>,
    username: Option<String>,
    title: Option<String>,
    text: Option<String>,
    pretext: Option<String>,
    fallback: Option<String>,
    title_link: Option<String>,
    footer: Option<String>,
    send_resolved: Option<bool>,
    http_config: Option<HttpConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AmInhibitRule {
    #[serde(default)]
    source_matchers: Vec<MatcherList>,
    #[serde(default)]
    target_matchers: Vec<MatcherList>,
    #[serde(default)]
    source_match: BTreeMap<String, String>,
    #[serde(default)]
    source_match_re: BTreeMap<String, RegexValue>,
    #[serde(default)]
    target_match: BTreeMap<String, String>,
    #[serde(default)]
    target_match_re: BTreeMap<String, RegexValue>,
    #[serde(default)]
    equal: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AmTimeIntervals {
    name: String,
    #[serde(default)]
    time_intervals: Vec<AmTimeInterval>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AmTimeInterval {
    #[serde(default)]
    times: Vec<AmTimes>,
    #[serde(default)]
    weekdays: Vec<WeekdayRange>,
    #[serde(default)]
    days_of_month: Vec<DayRange>,
    #[serde(default)]
    months: Vec<MonthRange>,
    #[serde(default)]
    years: Vec<YearRange>,
    location: Option<Location>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawTimes")]
struct AmTimes(u32, u32);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimes {
    start_time: String,
    end_time: String,
}

impl TryFrom<RawTimes> for AmTimes {
    type Error = String;
    fn try_from(r: RawTimes) -> Result<Self, String> {
        let start = clock(&r.start_time, false)?;
        let end = clock(&r.end_time, true)?;
        if start >= end {
            return Err(format!(
                "start_time {:?} must be before end_time {:?}",
                r.start_time, r.end_time
            ));
        }
        Ok(AmTimes(start, end))
    }
}

/// `HH:MM` as minutes of the day; `24:00` only as an end.
fn clock(s: &str, end: bool) -> Result<u32, String> {
    let bad = || format!("{s:?} is not a time of day HH:MM (00:00 to 24:00)");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if m > 59 || h > 24 || (h == 24 && (m != 0 || !end)) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// A Prometheus duration (`30s`, `5m`, `1h30m`, `1d`, `1w`, `1y`).
#[derive(Debug, Clone, Copy)]
struct PromDuration(Duration);

impl TryFrom<String> for PromDuration {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        parse_duration(&s).map(PromDuration)
    }
}

/// Parses a Prometheus duration: one or more `<number><unit>` with units
/// `ms`, `s`, `m`, `h`, `d`, `w`, `y` (365 days), largest first.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration like \"30s\", \"5m\" or \"1h30m\"");
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total: u64 = 0;
    let mut rest = s;
    let mut last_unit = u64::MAX;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit_ms: u64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "y" => 365 * 86_400_000,
            _ => return Err(bad()),
        };
        if unit_ms >= last_unit {
            return Err(bad());
        }
        last_unit = unit_ms;
        total = n
            .checked_mul(unit_ms)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        rest = &rest[unit_len..];
    }
    Ok(Duration::from_millis(total))
}

/// One `matchers:` entry: one or more matchers, `a="b"`, `c=~"d", e!=f`
/// or `{a="b", c="d"}`.
#[derive(Debug, Clone)]
struct MatcherList(Vec<Matcher>);

impl TryFrom<String> for MatcherList {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        parse_matchers(&s).map(MatcherList)
    }
}

/// Parses Alertmanager's matcher list syntax: comma-separated matchers,
/// optionally in braces; values may be quoted (commas inside quotes kept).
pub fn parse_matchers(s: &str) -> Result<Vec<Matcher>, String> {
    let t = s.trim();
    let t = t
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .unwrap_or(t);
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in t.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if quoted {
        return Err(format!("unterminated quoted value in matchers {s:?}"));
    }
    parts.push(current);
    let parts: Vec<&str> = parts
        .iter()
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .collect();
    if parts.is_empty() {
        return Err(format!("no matcher in {s:?}"));
    }
    parts
        .into_iter()
        .map(|p| Matcher::parse(p).map_err(|e| format!("{e} (in {s:?})")))
        .collect()
}

/// A legacy `match_re` value: a regular expression, anchored.
#[derive(Debug, Clone)]
struct RegexValue(String);

impl TryFrom<String> for RegexValue {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        regex::Regex::new(&format!("^(?:{s})$"))
            .map(|_| RegexValue(s.clone()))
            .map_err(|e| format!("invalid regular expression {s:?}: {e}"))
    }
}

const WEEKDAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];
const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

fn range_of(s: &str, what: &str, one: impl Fn(&str) -> Option<i32>) -> Result<Range, String> {
    let bad = || format!("{s:?} is not a {what} or a range of them (`a:b`)");
    let (a, b) = match s.split_once(':') {
        Some((a, b)) => (a, b),
        None => (s, s),
    };
    let begin = one(a.trim()).ok_or_else(bad)?;
    let end = one(b.trim()).ok_or_else(bad)?;
    Ok(Range { begin, end })
}

fn named(names: &[&str], s: &str, offset: i32) -> Option<i32> {
    let lower = s.to_ascii_lowercase();
    names
        .iter()
        .position(|n| *n == lower)
        .map(|i| i as i32 + offset)
}

#[derive(Debug, Clone, Copy)]
struct WeekdayRange(Range);

impl TryFrom<String> for WeekdayRange {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let r = range_of(&s, "weekday name", |x| named(&WEEKDAYS, x, 0))?;
        if r.begin > r.end {
            return Err(format!("weekday range {s:?} ends before it begins"));
        }
        Ok(WeekdayRange(r))
    }
}

#[derive(Debug, Clone, Copy)]
struct DayRange(Range);

impl TryFrom<String> for DayRange {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let r = range_of(&s, "day of the month (1..31 or -31..-1)", |x| {
            x.parse::<i32>()
                .ok()
                .filter(|d| (1..=31).contains(d) || (-31..=-1).contains(d))
        })?;
        if (r.begin > 0) == (r.end > 0) && r.begin > r.end {
            return Err(format!("day range {s:?} ends before it begins"));
        }
        Ok(DayRange(r))
    }
}

#[derive(Debug, Clone, Copy)]
struct MonthRange(Range);

impl TryFrom<String> for MonthRange {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let r = range_of(&s, "month (name or 1..12)", |x| {
            named(&MONTHS, x, 1).or_else(|| x.parse::<i32>().ok().filter(|m| (1..=12).contains(m)))
        })?;
        if r.begin > r.end {
            return Err(format!("month range {s:?} ends before it begins"));
        }
        Ok(MonthRange(r))
    }
}

#[derive(Debug, Clone, Copy)]
struct YearRange(Range);

impl TryFrom<String> for YearRange {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let r = range_of(&s, "year", |x| {
            x.parse::<i32>().ok().filter(|y| (1..=9999).contains(y))
        })?;
        if r.begin > r.end {
            return Err(format!("year range {s:?} ends before it begins"));
        }
        Ok(YearRange(r))
    }
}

#[derive(Debug, Clone, Copy)]
struct Location(Option<chrono_tz::Tz>);

impl TryFrom<String> for Location {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "" | "UTC" => Ok(Location(None)),
            "Local" => Err(
                "location \"Local\" depends on the machine; name the zone, e.g. \"Europe/Paris\""
                    .into(),
            ),
            _ => chrono_tz::Tz::from_str(&s)
                .map(|tz| Location(Some(tz)))
                .map_err(|_| {
                    format!("{s:?} is not a time zone of the IANA database, e.g. \"Europe/Paris\"")
                }),
        }
    }
}

/// Deserializes a string through `TryFrom<String>` inside the visitor, so
/// that serde_yaml reports the error at the value's own line and column.
struct StrVisitor<T>(std::marker::PhantomData<T>);

impl<T: TryFrom<String, Error = String>> serde::de::Visitor<'_> for StrVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
        T::try_from(v.to_string()).map_err(E::custom)
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<T, E> {
        self.visit_str(&v.to_string())
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<T, E> {
        self.visit_str(&v.to_string())
    }
}

macro_rules! deserialize_via_str {
    ($($t:ty),*) => {$(
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_str(StrVisitor(std::marker::PhantomData))
            }
        }
    )*};
}

deserialize_via_str!(
    PromDuration,
    MatcherList,
    RegexValue,
    WeekdayRange,
    DayRange,
    MonthRange,
    YearRange,
    Location
);

// ---- conversion ------------------------------------------------------------

type Problems = Vec<(String, String)>;

/// Alertmanager's default email `Subject` header.
const DEFAULT_EMAIL_SUBJECT: &str = r#"{{ template "email.default.subject" . }}"#;
/// Alertmanager's default email `html`.
const DEFAULT_EMAIL_HTML: &str = r#"{{ template "email.default.html" . }}"#;
/// Alertmanager's default Slack `title`.
const DEFAULT_SLACK_TITLE: &str = r#"{{ template "slack.default.title" . }}"#;
/// Alertmanager's default Slack `text`.
const DEFAULT_SLACK_TEXT: &str = r#"{{ template "slack.default.text" . }}"#;
/// Alertmanager's default PagerDuty `description`.
const DEFAULT_PAGERDUTY_DESCRIPTION: &str = r#"{{ template "pagerduty.default.description" .}}"#;

/// An email's headers with Alertmanager's default `Subject` when unset.
fn email_headers(own: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut h = own.clone();
    if !h.keys().any(|k| k.eq_ignore_ascii_case("subject")) {
        h.insert("Subject".into(), DEFAULT_EMAIL_SUBJECT.into());
    }
    h
}

fn convert(raw: AmFile) -> Result<Loaded, Problems> {
    let mut problems: Problems = Vec::new();
    let warnings = Vec::new();
    let g = &raw.global;
    // A receiver's own `http_config`, else the global one (as Alertmanager).
    let http_config = |own: &Option<HttpConfig>| {
        own.clone()
            .or_else(|| g.http_config.clone())
            .unwrap_or_default()
    };

    // Time intervals (both spellings share one namespace).
    let mut time_intervals = BTreeMap::new();
    for (list, key) in [
        (&raw.time_intervals, "time_intervals"),
        (&raw.mute_time_intervals, "mute_time_intervals"),
    ] {
        for (i, set) in list.iter().enumerate() {
            let intervals = set
                .time_intervals
                .iter()
                .map(|ti| TimeInterval {
                    times: ti.times.iter().map(|t| (t.0, t.1)).collect(),
                    weekdays: ti.weekdays.iter().map(|r| r.0).collect(),
                    days_of_month: ti.days_of_month.iter().map(|r| r.0).collect(),
                    months: ti.months.iter().map(|r| r.0).collect(),
                    years: ti.years.iter().map(|r| r.0).collect(),
                    location: ti.location.and_then(|l| l.0),
                })
                .collect();
            if set.name.is_empty() {
                problems.push((format!("{key}[{i}].name"), "needs a name".into()));
            } else if time_intervals.insert(set.name.clone(), intervals).is_some() {
                problems.push((
                    format!("{key}[{i}].name"),
                    format!("time interval {:?} is defined twice", set.name),
                ));
            }
        }
    }

    // Receivers.
    let mut receivers = Vec::new();
    let mut names = HashSet::new();
    for (r, am) in raw.receivers.iter().enumerate() {
        let rk = format!("receivers[{r}]");
        if !names.insert(am.name.clone()) {
            problems.push((
                format!("{rk}.name"),
                format!("receiver {:?} is defined twice", am.name),
            ));
        }
        let mut recv = ReceiverConfig {
            name: am.name.clone(),
            ..ReceiverConfig::default()
        };
        for w in &am.webhook_configs {
            recv.webhook_configs.push(WebhookConfig {
                url: w.url.clone(),
                send_resolved: w.send_resolved.unwrap_or(true),
                timeout: DEFAULT_TIMEOUT,
                max_alerts: w.max_alerts,
                http_config: http_config(&w.http_config),
            });
        }
        for (e, m) in am.email_configs.iter().enumerate() {
            let ek = format!("{rk}.email_configs[{e}]");
            let from = m.from.clone().or_else(|| g.smtp_from.clone());
            let smarthost = m.smarthost.clone().or_else(|| g.smtp_smarthost.clone());
            if from.is_none() {
                problems.push((
                    format!("{ek}.from"),
                    "no sender: set `from` here or `smtp_from` in `global`".into(),
                ));
            }
            if smarthost.is_none() {
                problems.push((
                    format!("{ek}.smarthost"),
                    "no SMTP server: set `smarthost` here or `smtp_smarthost` in `global`".into(),
                ));
            }
            // As Alertmanager: the global password (or file) only when the
            // receiver sets neither.
            let (auth_password, auth_password_file) =
                if m.auth_password.is_none() && m.auth_password_file.is_none() {
                    (
                        g.smtp_auth_password.clone(),
                        g.smtp_auth_password_file.clone(),
                    )
                } else {
                    (m.auth_password.clone(), m.auth_password_file.clone())
                };
            recv.email_configs.push(EmailConfig {
                to: m
                    .to
                    .split(',')
                    .map(|a| a.trim().to_string())
                    .filter(|a| !a.is_empty())
                    .collect(),
                from: from.unwrap_or_default(),
                smarthost: smarthost.unwrap_or_default(),
                auth_username: m
                    .auth_username
                    .clone()
                    .or_else(|| g.smtp_auth_username.clone()),
                auth_password,
                auth_password_file,
                auth_identity: m
                    .auth_identity
                    .clone()
                    .or_else(|| g.smtp_auth_identity.clone()),
                // Alertmanager's default is true.
                require_tls: m.require_tls.or(g.smtp_require_tls).unwrap_or(true),
                // Alertmanager decides by the port alone (465: implicit TLS).
                implicit_tls: None,
                tls_config: m
                    .tls_config
                    .clone()
                    .or_else(|| g.smtp_tls_config.clone())
                    .unwrap_or_default(),
                send_resolved: m.send_resolved.unwrap_or(false),
                headers: email_headers(&m.headers),
                html: Some(
                    m.html
                        .clone()
                        .unwrap_or_else(|| DEFAULT_EMAIL_HTML.to_string()),
                ),
                text: m.text.clone(),
            });
        }
        for pd in &am.pagerduty_configs {
            let severity = pd.severity.clone();
            // Without `details`, Vigie's structured lists of alerts (JSON
            // labels and annotations) stand for Alertmanager's text ones.
            let details = pd.details.clone();
            recv.pagerduty_configs.push(PagerdutyConfig {
                description: Some(
                    pd.description
                        .clone()
                        .unwrap_or_else(|| DEFAULT_PAGERDUTY_DESCRIPTION.to_string()),
                ),
                client: pd.client.clone(),
                client_url: pd.client_url.clone(),
                source: pd.source.clone(),
                class: pd.class.clone(),
                component: pd.component.clone(),
                group: pd.group.clone(),
                details,
                routing_key: pd.routing_key.clone(),
                url: pd
                    .url
                    .clone()
                    .or_else(|| g.pagerduty_url.clone())
                    .unwrap_or_else(|| PAGERDUTY_EVENTS_URL.to_string()),
                severity,
                send_resolved: pd.send_resolved.unwrap_or(true),
                timeout: DEFAULT_TIMEOUT,
                http_config: http_config(&pd.http_config),
            });
        }
        for (s, sl) in am.slack_configs.iter().enumerate() {
            let sk = format!("{rk}.slack_configs[{s}]");
            let or = |v: &Option<String>, default: &str| {
                Some(v.clone().unwrap_or_else(|| default.to_string()))
            };
            let title = or(&sl.title, DEFAULT_SLACK_TITLE);
            let text = or(&sl.text, DEFAULT_SLACK_TEXT);
            let Some(api_url) = sl.api_url.clone().or_else(|| g.slack_api_url.clone()) else {
                problems.push((
                    format!("{sk}.api_url"),
                    "no webhook URL: set `api_url` here or `slack_api_url` in `global`".into(),
                ));
                continue;
            };
            recv.slack_configs.push(SlackConfig {
                api_url,
                channel: sl.channel.clone(),
                username: sl.username.clone(),
                title,
                text,
                pretext: sl.pretext.clone(),
                fallback: sl.fallback.clone(),
                title_link: sl.title_link.clone(),
                footer: sl.footer.clone(),
                send_resolved: sl.send_resolved.unwrap_or(false),
                timeout: DEFAULT_TIMEOUT,
                http_config: http_config(&sl.http_config),
            });
        }
        receivers.push(recv);
    }

    // Routes.
    let mut routes = Vec::new();
    let r = &raw.route;
    if r.receiver.is_none() {
        problems.push((
            "route.receiver".into(),
            "the root route needs a default receiver".into(),
        ));
    }
    if !r.matchers.is_empty() || !r.match_eq.is_empty() || !r.match_re.is_empty() {
        problems.push((
            "route".into(),
            "the root route must not have matchers: it catches every alert".into(),
        ));
    }
    if r.continue_matching {
        problems.push((
            "route.continue".into(),
            "the root route cannot have `continue`".into(),
        ));
    }
    if !r.mute_time_intervals.is_empty() || !r.active_time_intervals.is_empty() {
        problems.push((
            "route".into(),
            "the root route cannot have mute_time_intervals or active_time_intervals".into(),
        ));
    }
    let root_defaults = RouteNode {
        key: String::new(),
        matchers: Vec::new(),
        continue_matching: false,
        receiver: None,
        group_by: Vec::new(),
        group_wait: DEFAULT_GROUP_WAIT,
        group_interval: DEFAULT_GROUP_INTERVAL,
        repeat_interval: DEFAULT_REPEAT_INTERVAL,
        mute_time_intervals: Vec::new(),
        active_time_intervals: Vec::new(),
        children: Vec::new(),
    };
    add_route(
        r,
        &root_defaults,
        None,
        "route",
        &names,
        &time_intervals,
        &mut routes,
        &mut problems,
    );

    // Inhibition rules.
    let mut inhibit_rules = Vec::new();
    for (i, ir) in raw.inhibit_rules.iter().enumerate() {
        let k = format!("inhibit_rules[{i}]");
        let source = legacy_matchers(
            &ir.source_matchers,
            &ir.source_match,
            &ir.source_match_re,
            &format!("{k}.source_match"),
            &mut problems,
        );
        let target = legacy_matchers(
            &ir.target_matchers,
            &ir.target_match,
            &ir.target_match_re,
            &format!("{k}.target_match"),
            &mut problems,
        );
        for (e, l) in ir.equal.iter().enumerate() {
            if !valid_label_name(l) {
                problems.push((
                    format!("{k}.equal[{e}]"),
                    format!("{l:?} is not a label name"),
                ));
            }
        }
        inhibit_rules.push(InhibitRule {
            source,
            target,
            equal: ir.equal.clone(),
        });
    }

    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Loaded {
        receivers,
        routing: Routing {
            routes,
            inhibit_rules,
            time_intervals,
        },
        resolve_timeout: g.resolve_timeout.map_or(DEFAULT_RESOLVE_TIMEOUT, |d| d.0),
        templates: raw.templates,
        warnings,
    })
}

fn legacy_matchers(
    matchers: &[MatcherList],
    eq: &BTreeMap<String, String>,
    re: &BTreeMap<String, RegexValue>,
    key: &str,
    problems: &mut Problems,
) -> Vec<Matcher> {
    let mut out: Vec<Matcher> = matchers.iter().flat_map(|l| l.0.clone()).collect();
    for (name, value) in eq {
        match Matcher::new(name, value, false, true) {
            Ok(m) => out.push(m),
            Err(e) => problems.push((format!("{key}.{name}"), e.to_string())),
        }
    }
    for (name, value) in re {
        match Matcher::new(name, &value.0, true, true) {
            Ok(m) => out.push(m),
            Err(e) => problems.push((format!("{key}_re.{name}"), e.to_string())),
        }
    }
    out
}

/// Adds `r` (and its children) under `parent`, inheriting its settings;
/// returns the index of the new route.
#[allow(clippy::too_many_arguments)]
fn add_route(
    r: &AmRoute,
    parent: &RouteNode,
    parent_key: Option<&str>,
    path: &str,
    receivers: &HashSet<String>,
    intervals: &BTreeMap<String, Vec<TimeInterval>>,
    routes: &mut Vec<RouteNode>,
    problems: &mut Problems,
) -> usize {
    let matchers = legacy_matchers(
        &r.matchers,
        &r.match_eq,
        &r.match_re,
        &format!("{path}.match"),
        problems,
    );
    if let Some(name) = &r.receiver
        && !receivers.contains(name)
    {
        problems.push((
            format!("{path}.receiver"),
            format!("receiver {name:?} is not defined in `receivers`"),
        ));
    }
    let group_by = r
        .group_by
        .clone()
        .unwrap_or_else(|| parent.group_by.clone());
    if group_by.iter().any(|l| l == GROUP_BY_ALL) && group_by.len() > 1 {
        problems.push((
            format!("{path}.group_by"),
            "'...' groups by all labels and cannot be combined with other labels".into(),
        ));
    }
    for (i, l) in group_by.iter().enumerate() {
        if l != GROUP_BY_ALL && !valid_label_name(l) {
            problems.push((
                format!("{path}.group_by[{i}]"),
                format!("{l:?} is not a label name"),
            ));
        }
    }
    for (field, names) in [
        ("mute_time_intervals", &r.mute_time_intervals),
        ("active_time_intervals", &r.active_time_intervals),
    ] {
        for (i, n) in names.iter().enumerate() {
            if !intervals.contains_key(n) {
                problems.push((
                    format!("{path}.{field}[{i}]"),
                    format!("time interval {n:?} is not defined in `time_intervals`"),
                ));
            }
        }
    }
    let group_interval = r.group_interval.map_or(parent.group_interval, |d| d.0);
    if group_interval.is_zero() {
        problems.push((
            format!("{path}.group_interval"),
            "must be greater than zero".into(),
        ));
    }
    let repeat_interval = r.repeat_interval.map_or(parent.repeat_interval, |d| d.0);
    if repeat_interval.is_zero() {
        problems.push((
            format!("{path}.repeat_interval"),
            "must be greater than zero".into(),
        ));
    }
    let key = match parent_key {
        None => "{}".to_string(),
        Some(p) => route_key(Some(p), &matchers),
    };
    let node = RouteNode {
        key: key.clone(),
        matchers,
        continue_matching: r.continue_matching,
        receiver: r.receiver.clone().or_else(|| parent.receiver.clone()),
        group_by,
        group_wait: r.group_wait.map_or(parent.group_wait, |d| d.0),
        group_interval,
        repeat_interval,
        mute_time_intervals: r.mute_time_intervals.clone(),
        active_time_intervals: r.active_time_intervals.clone(),
        children: Vec::new(),
    };
    let idx = routes.len();
    routes.push(node);
    for (i, child) in r.routes.iter().enumerate() {
        let inherited = routes[idx].clone();
        let c = add_route(
            child,
            &inherited,
            Some(&key),
            &format!("{path}.routes[{i}]"),
            receivers,
            intervals,
            routes,
            problems,
        );
        routes[idx].children.push(c);
    }
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "route:\n  receiver: a\nreceivers:\n  - name: a\n";

    #[test]
    fn durations_follow_prometheus() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("5m1h").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn matcher_lists() {
        let m = parse_matchers(r#"{a="b, c", d=~"e|f"}"#).expect("parse");
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].value, "b, c");
        assert!(m[1].is_regex);
        let m = parse_matchers("severity!=info").expect("parse");
        assert!(!m[0].is_equal);
        assert!(parse_matchers("a=\"b").is_err());
    }

    #[test]
    fn minimal_file_defaults() {
        let l = parse(MINIMAL, "am.yml").expect("load");
        let root = &l.routing.routes[0];
        assert_eq!(root.key, "{}");
        assert_eq!(root.receiver.as_deref(), Some("a"));
        assert!(root.group_by.is_empty());
        assert_eq!(root.group_wait, Duration::from_secs(30));
        assert_eq!(l.resolve_timeout, DEFAULT_RESOLVE_TIMEOUT);
    }

    #[test]
    fn unknown_key_has_path_line_and_column() {
        let text = "route:\n  receiver: a\n  routes:\n    - matchers: ['x=\"y\"']\n      recevier: a\nreceivers:\n  - name: a\n";
        let err = parse(text, "am.yml").expect_err("unknown key");
        match &err {
            AlertmanagerError::Syntax {
                line,
                column,
                message,
                ..
            } => {
                assert_eq!((*line, *column), (5, 7), "{err}");
                assert!(message.contains("route.routes[0]"), "{message}");
                assert!(message.contains("recevier"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().starts_with("am.yml:5:7: "), "{err}");
    }

    #[test]
    fn unsupported_alertmanager_key_says_so() {
        let text = "route:\n  receiver: a\nreceivers:\n  - name: a\n    opsgenie_configs:\n      - api_key: x\n";
        let err = parse(text, "am.yml").expect_err("unsupported");
        let s = err.to_string();
        assert!(s.starts_with("am.yml:5:5: receivers[0]"), "{s}");
        assert!(
            s.contains("`opsgenie_configs` is an Alertmanager key that Vigie does not support yet"),
            "{s}"
        );
    }

    #[test]
    fn bad_values_have_positions() {
        let text = "route:\n  receiver: a\n  group_wait: 30\nreceivers:\n  - name: a\n";
        let s = parse(text, "am.yml").expect_err("bad duration").to_string();
        assert!(s.starts_with("am.yml:3:"), "{s}");
        assert!(s.contains("route.group_wait"), "{s}");
        let text = "route:\n  receiver: a\nreceivers:\n  - name: a\ntime_intervals:\n  - name: t\n    time_intervals:\n      - weekdays: ['funday']\n";
        let s = parse(text, "am.yml").expect_err("bad weekday").to_string();
        assert!(s.starts_with("am.yml:8:"), "{s}");
        assert!(s.contains("funday"), "{s}");
    }

    #[test]
    fn semantic_problems_are_listed_together() {
        let text = "route:\n  receiver: nobody\n  routes:\n    - receiver: ghost\n      mute_time_intervals: [never]\nreceivers:\n  - name: a\n";
        match parse(text, "am.yml").expect_err("invalid") {
            AlertmanagerError::Invalid { problems, .. } => {
                let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
                assert_eq!(
                    keys,
                    [
                        "route.receiver",
                        "route.routes[0].receiver",
                        "route.routes[0].mute_time_intervals[0]"
                    ]
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn inheritance_and_globals() {
        let text = r#"
global:
  resolve_timeout: 1m
  smtp_from: am@example.com
  smtp_smarthost: mail:25
  smtp_require_tls: false
route:
  receiver: mail
  group_by: [alertname]
  group_wait: 10s
  routes:
    - match: {team: db}
      group_by: ['...']
      routes:
        - match_re: {severity: crit.*}
          receiver: mail
receivers:
  - name: mail
    email_configs:
      - to: 'a@example.com, b@example.com'
"#;
        let l = parse(text, "am.yml").expect("load");
        assert_eq!(l.resolve_timeout, Duration::from_secs(60));
        let leaf = &l.routing.routes[2];
        assert_eq!(leaf.group_by, ["..."]);
        assert_eq!(leaf.group_wait, Duration::from_secs(10));
        assert_eq!(leaf.receiver.as_deref(), Some("mail"));
        assert_eq!(leaf.key, r#"{}/{team="db"}/{severity=~"crit.*"}"#);
        let mail = &l.receivers[0].email_configs[0];
        assert_eq!(mail.to, ["a@example.com", "b@example.com"]);
        assert_eq!(mail.from, "am@example.com");
        assert!(!mail.require_tls);
        assert!(!mail.send_resolved);
    }
}
