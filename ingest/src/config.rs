//! Collector configuration: `[[scrape]]` jobs and the `[host]` collector.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::relabel::RelabelConfig;
use crate::relabel::list_problems;

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

fn default_refresh_interval() -> Duration {
    Duration::from_secs(5)
}

/// `[[scrape.file_sd_configs]]` — Prometheus file-based service discovery.
///
/// Each file holds a list of target groups
/// (`[{"targets": ["host:port"], "labels": {"k": "v"}}]`), as JSON
/// (`.json`) or YAML (`.yml`, `.yaml`). The last path element may contain
/// `*`. Files are re-read every `refresh_interval`; a file that cannot be
/// read or parsed keeps its previous targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSdConfig {
    /// File paths or globs (`*` in the last element), relative to the
    /// working directory.
    pub files: Vec<String>,
    /// How often the files are checked for changes (default 5s).
    #[serde(default = "default_refresh_interval", with = "humantime_serde")]
    pub refresh_interval: Duration,
}

/// `[[scrape]]` — one Prometheus-style scrape job: static targets and/or
/// file-discovered ones, relabelled.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeConfig {
    /// The `job` label of every sample of this job.
    pub job: String,
    /// Static targets as `host:port`; each becomes `__address__` (and the
    /// `instance` label unless relabelling sets one).
    #[serde(default)]
    pub targets: Vec<String>,
    /// File-based service discovery.
    #[serde(default)]
    pub file_sd_configs: Vec<FileSdConfig>,
    /// Relabelling of discovered targets (`__address__`, `__meta_*`, ...).
    #[serde(default)]
    pub relabel_configs: Vec<RelabelConfig>,
    /// Relabelling of scraped samples, before they are stored.
    #[serde(default)]
    pub metric_relabel_configs: Vec<RelabelConfig>,
    /// Keep the exposed labels on a clash with target labels (default
    /// false: exposed ones are renamed `exported_<name>`).
    #[serde(default)]
    pub honor_labels: bool,
    /// Most samples a scrape may return after metric relabelling; above it
    /// the whole scrape fails (`up 0`). 0 means no limit.
    #[serde(default)]
    pub sample_limit: usize,
    /// URL query parameters of every scrape (`__param_<name>` overrides).
    #[serde(default)]
    pub params: BTreeMap<String, Vec<String>>,
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

impl Default for ScrapeConfig {
    /// An empty job with Prometheus' defaults (no targets, no name).
    fn default() -> Self {
        Self {
            job: String::new(),
            targets: Vec::new(),
            file_sd_configs: Vec::new(),
            relabel_configs: Vec::new(),
            metric_relabel_configs: Vec::new(),
            honor_labels: false,
            sample_limit: 0,
            params: BTreeMap::new(),
            interval: default_interval(),
            timeout: default_timeout(),
            metrics_path: default_metrics_path(),
            scheme: default_scheme(),
            labels: BTreeMap::new(),
        }
    }
}

/// True for a file_sd path Prometheus accepts: a JSON or YAML file, with
/// `*` only in the last path element.
fn is_valid_sd_path(path: &str) -> bool {
    let (dir, file) = path.rsplit_once('/').unwrap_or(("", path));
    let lower = file.to_ascii_lowercase();
    !dir.contains('*')
        && (lower.ends_with(".json") || lower.ends_with(".yml") || lower.ends_with(".yaml"))
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
    /// Where sysfs is mounted (default `/sys`): hwmon, clock sources,
    /// network `rx_nohandler`.
    pub sysfs: PathBuf,
    /// udev's database (default `/run/udev/data`), for `node_disk_info`.
    pub udev_data: PathBuf,
    /// The `instance` label; default: the host name.
    pub instance: Option<String>,
    /// Extra labels added to every host sample.
    pub labels: BTreeMap<String, String>,
    /// The `nvidia-smi` to run for GPU metrics (default `nvidia-smi`,
    /// looked up on `PATH`; an absolute path is used as is; `""` turns GPU
    /// metrics off). Absent: GPU metrics are off, with one info line.
    pub nvidia_smi: String,
    /// Longest one `nvidia-smi` run may take (default 5s, and never more
    /// than `interval`); a run that takes longer is killed and the round
    /// has no GPU metrics.
    #[serde(with = "humantime_serde")]
    pub nvidia_smi_timeout: Duration,
}

/// `[host] nvidia_smi`'s default: looked up on `PATH`.
pub const DEFAULT_NVIDIA_SMI: &str = "nvidia-smi";

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: default_interval(),
            procfs: PathBuf::from("/proc"),
            sysfs: PathBuf::from("/sys"),
            udev_data: PathBuf::from("/run/udev/data"),
            instance: None,
            labels: BTreeMap::new(),
            nvidia_smi: DEFAULT_NVIDIA_SMI.to_string(),
            nvidia_smi_timeout: Duration::from_secs(5),
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

pub(crate) fn label_problems(
    prefix: &str,
    labels: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
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
        if self.targets.is_empty() && self.file_sd_configs.is_empty() {
            out.push((
                format!("{p}.targets"),
                "list at least one target as \"host:port\", or add file_sd_configs".to_string(),
            ));
        }
        for (i, sd) in self.file_sd_configs.iter().enumerate() {
            let key = format!("{p}.file_sd_configs[{i}]");
            if sd.files.is_empty() {
                out.push((
                    format!("{key}.files"),
                    "list at least one file, e.g. \"targets/*.json\"".to_string(),
                ));
            }
            for (j, f) in sd.files.iter().enumerate() {
                if !is_valid_sd_path(f) {
                    out.push((
                        format!("{key}.files[{j}]"),
                        format!(
                            "`{f}` must end in .json, .yml or .yaml, with `*` only in the file name"
                        ),
                    ));
                }
            }
            if sd.refresh_interval.is_zero() {
                out.push((
                    format!("{key}.refresh_interval"),
                    "set a positive refresh_interval, e.g. \"5s\"".to_string(),
                ));
            }
        }
        out.extend(list_problems(
            &format!("{p}.relabel_configs"),
            &self.relabel_configs,
        ));
        out.extend(list_problems(
            &format!("{p}.metric_relabel_configs"),
            &self.metric_relabel_configs,
        ));
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
        let smi = Path::new(&self.nvidia_smi);
        if self.nvidia_smi.contains('/') && !smi.is_absolute() {
            out.push((
                "host.nvidia_smi".to_string(),
                format!(
                    "`{}` is a relative path: give an absolute path, a bare name looked up on PATH (default \"nvidia-smi\"), or \"\" to turn GPU metrics off",
                    self.nvidia_smi
                ),
            ));
        } else if smi.is_absolute() && !smi.is_file() {
            out.push((
                "host.nvidia_smi".to_string(),
                format!(
                    "`{}` does not exist or is not a file: fix the path, or set \"\" to turn GPU metrics off",
                    self.nvidia_smi
                ),
            ));
        }
        if self.nvidia_smi_timeout.is_zero() {
            out.push((
                "host.nvidia_smi_timeout".to_string(),
                "set a positive timeout, e.g. \"5s\"".to_string(),
            ));
        }
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
            ..ScrapeConfig::default()
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
    fn file_sd_and_relabel_configs_parse_from_toml_and_are_checked() {
        #[derive(Deserialize)]
        struct File {
            scrape: Vec<ScrapeConfig>,
        }
        let f: File = toml::from_str(
            r#"
[[scrape]]
job = "sd"
honor_labels = true
sample_limit = 1000
params = { module = ["http_2xx"] }
[[scrape.file_sd_configs]]
files = ["targets/*.json", "more.yml"]
refresh_interval = "30s"
[[scrape.relabel_configs]]
source_labels = ["__address__"]
regex = '(.*):\d+'
target_label = "host"
[[scrape.relabel_configs]]
action = "hashmod"
source_labels = ["__address__"]
target_label = "__tmp_shard"
modulus = 0
[[scrape.metric_relabel_configs]]
action = "drop"
source_labels = ["__name__"]
regex = "go_("
"#,
        )
        .expect("valid TOML");
        let j = &f.scrape[0];
        assert!(j.targets.is_empty());
        assert!(j.honor_labels);
        assert_eq!(j.sample_limit, 1000);
        assert_eq!(
            j.file_sd_configs[0].refresh_interval,
            Duration::from_secs(30)
        );
        assert_eq!(j.relabel_configs[0].replacement, "$1");
        assert_eq!(
            keys(&j.problems(2)),
            vec![
                "scrape[2].relabel_configs[1].modulus",
                "scrape[2].metric_relabel_configs[0].regex",
            ]
        );
        let mut bad = j.clone();
        bad.file_sd_configs[0].files = vec!["a/*/b.json".into(), "t.txt".into()];
        bad.file_sd_configs[0].refresh_interval = Duration::ZERO;
        bad.relabel_configs.clear();
        bad.metric_relabel_configs.clear();
        assert_eq!(
            keys(&bad.problems(0)),
            vec![
                "scrape[0].file_sd_configs[0].files[0]",
                "scrape[0].file_sd_configs[0].files[1]",
                "scrape[0].file_sd_configs[0].refresh_interval",
            ]
        );
        bad.file_sd_configs.clear();
        assert_eq!(keys(&bad.problems(0)), vec!["scrape[0].targets"]);
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
        // An absent default is fine (GPU metrics are off); an absent
        // explicit path, a relative one or a zero timeout are not.
        for (smi, timeout, problems) in [
            ("nvidia-smi-that-is-nowhere", 5, vec![]),
            ("", 5, vec![]),
            ("/bin/sh", 10, vec![]),
            ("/definitely/not/nvidia-smi", 5, vec!["host.nvidia_smi"]),
            ("bin/nvidia-smi", 5, vec!["host.nvidia_smi"]),
            ("nvidia-smi", 11, vec![]),
            ("nvidia-smi", 0, vec!["host.nvidia_smi_timeout"]),
        ] {
            let h = HostConfig {
                nvidia_smi: smi.to_string(),
                nvidia_smi_timeout: Duration::from_secs(timeout),
                ..HostConfig::default()
            };
            assert_eq!(keys(&h.problems()), problems, "{smi} {timeout}s");
        }
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
        assert_eq!(f.host.nvidia_smi, "nvidia-smi");
        assert_eq!(f.host.nvidia_smi_timeout, Duration::from_secs(5));
        let f: File = toml::from_str(
            "scrape = []\n[host]\ninterval = \"1m\"\nnvidia_smi = \"/usr/bin/nvidia-smi\"\nnvidia_smi_timeout = \"3s\"\n",
        )
        .expect("valid");
        assert_eq!(f.host.interval, Duration::from_secs(60));
        assert_eq!(f.host.nvidia_smi, "/usr/bin/nvidia-smi");
        assert_eq!(f.host.nvidia_smi_timeout, Duration::from_secs(3));
        assert!(
            toml::from_str::<File>("[[scrape]]\njob = \"a\"\ntargets = []\ntimout = \"1s\"\n")
                .is_err()
        );
        assert!(toml::from_str::<File>("scrape = []\n[host]\nenable = false\n").is_err());
    }
}
