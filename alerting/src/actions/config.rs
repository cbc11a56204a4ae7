//! `[[action]]`: one remediation action and its guardrails.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::alertmanager::parse_matchers;
use crate::silence::Matcher;

/// `rate_limit = { max = N, per = "1h" }`: at most `max` runs (dry runs
/// included) of the action in any `per`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Runs allowed in one window.
    pub max: usize,
    /// The sliding window.
    #[serde(with = "humantime_serde")]
    pub per: Duration,
}

/// `blast_radius = { max_targets = N, window = "10m" }`: acting on more
/// than `max_targets` distinct targets within `window` stops the action
/// and pages a human instead.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BlastRadius {
    /// Distinct targets allowed in one window.
    pub max_targets: usize,
    /// The sliding window.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
}

/// One `[[action]]` block.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActionConfig {
    /// Unique name, used in the audit log and the API.
    pub name: String,
    /// Alertmanager matchers on the alert's labels, e.g.
    /// `{alertname="HypervisorFailing", severity=~"critical|page"}`.
    pub matchers: String,
    /// The `http://` or `https://` URL called with a JSON POST.
    pub url: String,
    /// A file holding the HMAC-SHA256 key; the body's signature goes in
    /// header `X-Vigie-Signature: sha256=<hex>`. Without it, no signature.
    pub secret_file: Option<PathBuf>,
    /// Timeout of one HTTP attempt.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Further attempts after a failed one (connection error, timeout,
    /// 429 or 5xx), with back-off from 500 ms doubling.
    pub retries: u32,
    /// The label naming the target acted on.
    pub target_label: String,
    /// Record what would run (`dry_run`) instead of calling the URL.
    pub dry_run: bool,
    /// Runs allowed per window, if limited.
    pub rate_limit: Option<RateLimit>,
    /// No new run on a target acted on less than this ago.
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
    /// Runs in flight at once, at most (0: unlimited).
    pub max_concurrent: usize,
    /// The blast-radius cap, if any.
    pub blast_radius: Option<BlastRadius>,
    /// Runs wait for `POST /api/v1/actions/{id}/approve`.
    pub require_approval: bool,
    /// If set, an alert not resolved this long after a successful run is
    /// escalated to the route's receiver.
    #[serde(with = "humantime_serde")]
    pub verify_within: Option<Duration>,
    /// TLS settings of an https `url` (`http_config.tls_config`).
    pub http_config: crate::tls::HttpConfig,
}

impl Default for ActionConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            matchers: String::new(),
            url: String::new(),
            secret_file: None,
            timeout: Duration::from_secs(10),
            retries: 2,
            target_label: "instance".into(),
            dry_run: false,
            rate_limit: None,
            cooldown: Duration::ZERO,
            max_concurrent: 1,
            blast_radius: None,
            require_approval: false,
            verify_within: None,
            http_config: crate::tls::HttpConfig::default(),
        }
    }
}

impl ActionConfig {
    /// The parsed matchers.
    pub fn parsed_matchers(&self) -> Result<Vec<Matcher>, String> {
        parse_matchers(&self.matchers)
    }

    /// Reads the HMAC key (`secret_file`, surrounding whitespace trimmed).
    pub fn read_secret(&self) -> Result<Option<Vec<u8>>, String> {
        let Some(path) = &self.secret_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let key = text.trim();
        if key.is_empty() {
            return Err(format!(
                "{} is empty; write the shared secret in it",
                path.display()
            ));
        }
        Ok(Some(key.as_bytes().to_vec()))
    }
}

/// Every problem of the `[[action]]` blocks, as `(key, what to fix)`.
pub fn problems(actions: &[ActionConfig]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut names = std::collections::HashSet::new();
    for (i, a) in actions.iter().enumerate() {
        let key = |k: &str| format!("action[{i}].{k}");
        if a.name.is_empty() {
            out.push((
                key("name"),
                "give the action a name, e.g. \"evacuate\"".into(),
            ));
        } else if !names.insert(a.name.as_str()) {
            out.push((key("name"), format!("action `{}` is defined twice", a.name)));
        }
        if a.matchers.trim().is_empty() {
            out.push((
                key("matchers"),
                "name the alerts to act on, e.g. '{alertname=\"HypervisorFailing\"}'".into(),
            ));
        } else if let Err(e) = a.parsed_matchers() {
            out.push((key("matchers"), e));
        }
        match reqwest::Url::parse(&a.url) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
            Ok(_) | Err(_) => out.push((
                key("url"),
                format!("{:?} is not an http:// or https:// URL", a.url),
            )),
        }
        if let Err(e) = a.read_secret() {
            out.push((key("secret_file"), e));
        }
        out.extend(
            a.http_config
                .tls_config
                .problems(&key("http_config.tls_config")),
        );
        if a.timeout.is_zero() {
            out.push((key("timeout"), "must be more than 0, e.g. \"10s\"".into()));
        }
        if a.target_label.is_empty() {
            out.push((
                key("target_label"),
                "name a label, e.g. \"instance\"".into(),
            ));
        }
        if let Some(r) = &a.rate_limit
            && (r.max == 0 || r.per.is_zero())
        {
            out.push((
                key("rate_limit"),
                "max and per must be more than 0, e.g. { max = 3, per = \"1h\" }".into(),
            ));
        }
        if let Some(b) = &a.blast_radius
            && (b.max_targets == 0 || b.window.is_zero())
        {
            out.push((
                key("blast_radius"),
                "max_targets and window must be more than 0, e.g. { max_targets = 2, window = \"10m\" }"
                    .into(),
            ));
        }
        if a.verify_within.is_some_and(|d| d.is_zero()) {
            out.push((
                key("verify_within"),
                "must be more than 0, e.g. \"5m\"".into(),
            ));
        }
    }
    out
}
