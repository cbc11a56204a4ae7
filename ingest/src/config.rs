//! Collector configuration: `[[scrape]]` jobs and the `[host]` collector.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

fn default_interval() -> Duration {
    Duration::from_secs(10)
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_metrics_path() -> String {
    "/metrics".to_string()
}

fn default_scheme() -> String {
    "http".to_string()
}

/// `[[scrape]]` — one Prometheus-style scrape job with static targets.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeConfig {
    /// The `job` label of every sample of this job.
    pub job: String,
    /// Targets as `host:port`; each becomes the `instance` label.
    pub targets: Vec<String>,
    /// Time between scrapes of one target (default 10s).
    #[serde(default = "default_interval", with = "humantime_serde")]
    pub interval: Duration,
    /// Time allowed for one scrape (default 5s, at most `interval`).
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Path of the metrics endpoint (default `/metrics`).
    #[serde(default = "default_metrics_path")]
    pub metrics_path: String,
    /// URL scheme; only `http` is supported for now.
    #[serde(default = "default_scheme")]
    pub scheme: String,
    /// Extra labels added to every sample of this job.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `[host]` — the built-in host collector.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostConfig {
    /// Whether the host collector runs (default true).
    pub enabled: bool,
    /// Time between collections (default 10s).
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Where procfs is mounted (default `/proc`).
    pub procfs: PathBuf,
    /// The `instance` label; default: the host name.
    pub instance: Option<String>,
    /// Extra labels added to every host sample.
    pub labels: BTreeMap<String, String>,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: default_interval(),
            procfs: PathBuf::from("/proc"),
            instance: None,
            labels: BTreeMap::new(),
        }
    }
}

/// True for a valid Prometheus label name (`[a-zA-Z_][a-zA-Z0-9_]*`).
pub fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Why `target` is not a `host:port`, if it is not.
fn target_problem(target: &str) -> Option<&'static str> {
    let Some((host, port)) = target.rsplit_once(':') else {
        return Some("is not host:port (missing `:port`)");
    };
    if host.is_empty() {
        return Some("has an empty host");
    }
    if host.contains(['/', '?', '#', '@', ' ']) || target.contains("://") {
        return Some("must be a bare host:port, without scheme, path or credentials");
    }
    if host.starts_with('[') != host.ends_with(']') {
        return Some("has an unbalanced IPv6 bracket");
    }
    if !host.starts_with('[') && host.contains(':') {
        return Some("is an IPv6 address without brackets (write `[addr]:port`)");
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Some("has a port that is not a number in 1-65535"),
        Ok(_) => None,
    }
}

fn label_problems(prefix: &str, labels: &BTreeMap<String, String>) -> Vec<(String, String)> {
    labels
        .keys()
        .filter_map(|name| {
            if !is_valid_label_name(name) {
                Some((
                    format!("{prefix}.labels.{name}"),
                    format!("label name `{name}` must match [a-zA-Z_][a-zA-Z0-9_]*; rename it"),
                ))
            } else if name.starts_with("__") {
                Some((
                    format!("{prefix}.labels.{name}"),
                    format!("label names starting with `__` are reserved; rename `{name}`"),
                ))
            } else {
                None
            }
        })
        .collect()
}

impl ScrapeConfig {
    /// Everything wrong with this job, as (key, message saying the fix);
    /// `index` is the job's position in the `[[scrape]]` list.
    pub fn problems(&self, index: usize) -> Vec<(String, String)> {
        let p = format!("scrape[{index}]");
        let mut out = Vec::new();
        if self.job.trim().is_empty() {
            out.push((format!("{p}.job"), "set a non-empty job name".to_string()));
        }
        if self.targets.is_empty() {
            out.push((
                format!("{p}.targets"),
                "list at least one target as \"host:port\"".to_string(),
            ));
        }
        for (i, target) in self.targets.iter().enumerate() {
            if let Some(why) = target_problem(target) {
                out.push((
                    format!("{p}.targets[{i}]"),
                    format!("target `{target}` {why}; write it as \"host:port\""),
                ));
            }
        }
        if self.interval.is_zero() {
            out.push((
                format!("{p}.interval"),
                "set a positive interval, e.g. \"10s\"".to_string(),
            ));
        }
        if self.timeout.is_zero() {
            out.push((
                format!("{p}.timeout"),
                "set a positive timeout, e.g. \"5s\"".to_string(),
            ));
        } else if self.timeout > self.interval {
            out.push((
                format!("{p}.timeout"),
                format!(
                    "timeout ({}) is longer than interval ({}); lower it to at most the interval",
                    humantime_serde::re::humantime::format_duration(self.timeout),
                    humantime_serde::re::humantime::format_duration(self.interval)
                ),
            ));
        }
        if !self.metrics_path.starts_with('/') {
            out.push((
                format!("{p}.metrics_path"),
                format!(
                    "`{}` must start with `/`, e.g. \"/metrics\"",
                    self.metrics_path
                ),
            ));
        }
        if self.scheme != "http" {
            out.push((
                format!("{p}.scheme"),
                format!("scheme `{}` is not supported; use \"http\"", self.scheme),
            ));
        }
        out.extend(label_problems(&p, &self.labels));
        out
    }
}

impl HostConfig {
    /// Everything wrong with the host collector's settings, as (key, message
    /// saying the fix).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.interval.is_zero() {
            out.push((
                "host.interval".to_string(),
                "set a positive interval, e.g. \"10s\"".to_string(),
            ));
        }
        if self.procfs.as_os_str().is_empty() {
            out.push((
                "host.procfs".to_string(),
                "set the procfs mount point, usually \"/proc\"".to_string(),
            ));
        }
        if self
            .instance
            .as_deref()
            .is_some_and(|i| i.trim().is_empty())
        {
            out.push((
                "host.instance".to_string(),
                "set a non-empty instance or remove it to use the host name".to_string(),
            ));
        }
        out.extend(label_problems("host", &self.labels));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> ScrapeConfig {
        ScrapeConfig {
            job: "node".into(),
            targets: vec!["localhost:9100".into(), "[::1]:9100".into()],
            interval: default_interval(),
            timeout: default_timeout(),
            metrics_path: default_metrics_path(),
            scheme: default_scheme(),
            labels: BTreeMap::new(),
        }
    }

    fn keys(problems: &[(String, String)]) -> Vec<&str> {
        problems.iter().map(|(k, _)| k.as_str()).collect()
    }

    #[test]
    fn valid_job_has_no_problems() {
        assert!(job().problems(0).is_empty(), "{:?}", job().problems(0));
    }

    #[test]
    fn each_mistake_is_reported_under_its_key() {
        let mut j = job();
        j.job = " ".into();
        j.targets = vec![
            "localhost".into(),
            "http://a:1".into(),
            "a:0".into(),
            "a:9".into(),
        ];
        j.timeout = Duration::from_secs(30);
        j.scheme = "https".into();
        j.labels.insert("bad-name".into(), "x".into());
        j.labels.insert("ok_name".into(), "x".into());
        let p = j.problems(3);
        assert_eq!(
            keys(&p),
            vec![
                "scrape[3].job",
                "scrape[3].targets[0]",
                "scrape[3].targets[1]",
                "scrape[3].targets[2]",
                "scrape[3].timeout",
                "scrape[3].scheme",
                "scrape[3].labels.bad-name",
            ]
        );
        assert!(p[4].1.contains("at most the interval"), "{}", p[4].1);
    }

    #[test]
    fn zero_interval_and_no_targets() {
        let mut j = job();
        j.targets.clear();
        j.interval = Duration::ZERO;
        let p = j.problems(0);
        assert!(keys(&p).contains(&"scrape[0].targets"));
        assert!(keys(&p).contains(&"scrape[0].interval"));
    }

    #[test]
    fn label_name_rule() {
        assert!(is_valid_label_name("_a1"));
        assert!(is_valid_label_name("Ab_9"));
        assert!(!is_valid_label_name(""));
        assert!(!is_valid_label_name("1a"));
        assert!(!is_valid_label_name("a:b"));
        assert!(!is_valid_label_name("é"));
    }

    #[test]
    fn host_defaults_and_problems() {
        let h = HostConfig::default();
        assert!(h.enabled);
        assert_eq!(h.interval, Duration::from_secs(10));
        assert!(h.problems().is_empty());
        let bad = HostConfig {
            interval: Duration::ZERO,
            instance: Some(String::new()),
            labels: BTreeMap::from([("x y".to_string(), "1".to_string())]),
            ..HostConfig::default()
        };
        assert_eq!(
            keys(&bad.problems()),
            vec!["host.interval", "host.instance", "host.labels.x y"]
        );
    }

    #[test]
    fn deserializes_with_defaults_and_rejects_unknown_fields() {
        #[derive(Deserialize)]
        struct File {
            scrape: Vec<ScrapeConfig>,
            #[serde(default)]
            host: HostConfig,
        }
        let f: File =
            toml::from_str("[[scrape]]\njob = \"app\"\ntargets = [\"a:1\"]\ninterval = \"30s\"\n")
                .expect("valid");
        let j = &f.scrape[0];
        assert_eq!(j.interval, Duration::from_secs(30));
        assert_eq!(j.timeout, Duration::from_secs(5));
        assert_eq!(j.metrics_path, "/metrics");
        assert_eq!(j.scheme, "http");
        assert!(f.host.enabled);
        assert_eq!(f.host.procfs, PathBuf::from("/proc"));
        let f: File = toml::from_str("scrape = []\n[host]\ninterval = \"1m\"\n").expect("valid");
        assert_eq!(f.host.interval, Duration::from_secs(60));
        assert!(
            toml::from_str::<File>("[[scrape]]\njob = \"a\"\ntargets = []\ntimout = \"1s\"\n")
                .is_err()
        );
        assert!(toml::from_str::<File>("scrape = []\n[host]\nenable = false\n").is_err());
    }
}
