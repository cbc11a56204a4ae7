//! Vigie's configuration file (TOML): one plain struct per section, with
//! defaults, checked once at start-up.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use vigie_alerting::AlertingConfig;
use vigie_analyzer::{AnalyzerConfig, RulesConfig};
use vigie_bus::{BusConfig, BusKind};
use vigie_ingest::{HostConfig, InteropConfig, LogConfig, ScrapeConfig, SyslogConfig};

/// Which stages run in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Collectors: scrape and host metrics, publishing to the bus.
    Collect,
    /// Analyzer: consume, store, score, evaluate rules, serve queries.
    Analyze,
    /// Alerting: group alerts and notify.
    Alert,
}

/// `[http]`: Vigie's HTTP server (API, `/metrics`, `/healthz`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
        }
    }
}

/// `[api]`: protection of the HTTP endpoints that change state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// A file holding the bearer token that state-changing requests
    /// (silences, posted alerts, `/-/reload`, remote-write, ...) must
    /// send. Without it, Vigie listens on 127.0.0.1 only.
    pub token_file: Option<PathBuf>,
}

/// The whole configuration file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where Parquet files and state live.
    pub data_dir: PathBuf,
    /// Stages this process runs (all three by default).
    pub roles: Vec<Role>,
    /// Scrape Vigie's own `/metrics` as job `vigie`.
    pub self_scrape: bool,
    /// HTTP server.
    pub http: HttpConfig,
    /// API protection.
    pub api: ApiConfig,
    /// Message bus.
    pub bus: BusConfig,
    /// Built-in host collector.
    pub host: HostConfig,
    /// Scrape jobs.
    pub scrape: Vec<ScrapeConfig>,
    /// Log files to follow (`[[logs]]`), published to `vigie.logs`.
    #[serde(default)]
    pub logs: Vec<LogConfig>,
    /// Syslog receivers (`[[syslog]]`), published to `vigie.logs`.
    #[serde(default)]
    pub syslog: Vec<SyslogConfig>,
    /// Kafka topics other tools write metrics to (`[[interop]]`: InfluxDB
    /// line protocol, Telegraf JSON, Vector JSON); needs the Kafka bus.
    #[serde(default)]
    pub interop: Vec<InteropConfig>,
    /// Storage and detection.
    pub analyzer: AnalyzerConfig,
    /// Rule files.
    pub rules: RulesConfig,
    /// Notification.
    pub alerting: AlertingConfig,
    /// Remediation actions (`[[action]]`), run by the alert role.
    #[serde(default)]
    pub action: Vec<vigie_alerting::actions::ActionConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("vigie-data"),
            roles: vec![Role::Collect, Role::Analyze, Role::Alert],
            self_scrape: true,
            http: HttpConfig::default(),
            api: ApiConfig::default(),
            bus: BusConfig::default(),
            host: HostConfig::default(),
            scrape: Vec::new(),
            logs: Vec::new(),
            syslog: Vec::new(),
            interop: Vec::new(),
            analyzer: AnalyzerConfig::default(),
            rules: RulesConfig::default(),
            alerting: AlertingConfig::default(),
            action: Vec::new(),
        }
    }
}

impl Config {
    /// Reads and parses a TOML file (syntax and unknown keys only; see
    /// [`Config::problems`] for the rest).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        Self::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    /// Parses TOML text.
    pub fn parse(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// Runs a role in this process?
    pub fn runs(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Every problem in the configuration, as `(key, what to fix)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.roles.is_empty() {
            out.push((
                "roles".into(),
                "name at least one of \"collect\", \"analyze\", \"alert\"".into(),
            ));
        }
        if self.bus.kind == BusKind::Memory && self.roles.len() < 3 {
            out.push((
                "roles".into(),
                "with the memory bus every role must run in this process; set [bus] kind = \"kafka\" to split roles".into(),
            ));
        }
        if self.data_dir.as_os_str().is_empty() {
            out.push((
                "data_dir".into(),
                "must not be empty, e.g. \"vigie-data\"".into(),
            ));
        }
        out.extend(self.bus.problems());
        out.extend(self.host.problems());
        let mut jobs = std::collections::HashSet::new();
        for (i, s) in self.scrape.iter().enumerate() {
            out.extend(s.problems(i));
            if !jobs.insert(s.job.as_str()) {
                out.push((
                    format!("scrape[{i}].job"),
                    format!("job `{}` is defined twice", s.job),
                ));
            }
            if self.self_scrape && s.job == "vigie" {
                out.push((
                    format!("scrape[{i}].job"),
                    "job `vigie` is reserved for self_scrape; rename it or set self_scrape = false"
                        .into(),
                ));
            }
        }
        for (i, l) in self.logs.iter().enumerate() {
            out.extend(l.problems(i));
        }
        for (i, s) in self.syslog.iter().enumerate() {
            out.extend(s.problems(i));
        }
        out.extend(vigie_ingest::interop::problems(&self.interop, &self.bus));
        out.extend(self.analyzer.problems());
        out.extend(self.rules.problems());
        if let Some(path) = &self.api.token_file
            && let Err(e) = vigie_alerting::ApiToken::from_file(path)
        {
            out.push(("api.token_file".into(), e.to_string()));
        }
        out.extend(self.alerting.problems());
        if self.alerting.ha.enabled && self.bus.kind == BusKind::Memory {
            out.push((
                "alerting.ha.enabled".into(),
                "high availability elects the sending process through Kafka; set [bus] kind = \"kafka\" or remove [alerting.ha]".into(),
            ));
        }
        out.extend(vigie_alerting::actions::problems(&self.action));
        out
    }

    /// The scrape jobs, plus Vigie's own `/metrics` when `self_scrape` is on.
    pub fn scrape_jobs(&self) -> Vec<ScrapeConfig> {
        let mut jobs = self.scrape.clone();
        if self.self_scrape && self.runs(Role::Collect) {
            let interval = self.host.interval;
            jobs.push(ScrapeConfig {
                job: "vigie".into(),
                targets: vec![self.http.listen.to_string()],
                interval,
                timeout: interval.min(std::time::Duration::from_secs(5)),
                metrics_path: "/metrics".into(),
                scheme: "http".into(),
                labels: Default::default(),
                ..ScrapeConfig::default()
            });
        }
        jobs
    }
}

/// Loads and checks a file; the error lists every problem with the file,
/// the key and the fix.
pub fn load_checked(path: &Path) -> anyhow::Result<Config> {
    let config = Config::load(path)?;
    check(&config, &path.display().to_string())?;
    Ok(config)
}

/// Fails with every problem of `config`, each prefixed by `origin`.
pub fn check(config: &Config, origin: &str) -> anyhow::Result<()> {
    let problems = config.problems();
    if problems.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = problems
        .iter()
        .map(|(key, fix)| format!("  {origin}: `{key}`: {fix}"))
        .collect();
    anyhow::bail!(
        "{} problem(s) in the configuration:\n{}",
        problems.len(),
        lines.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_without_rules_dir_check() {
        let mut c = Config::default();
        c.rules.files.clear();
        assert!(c.problems().is_empty(), "{:?}", c.problems());
        assert_eq!(c.http.listen.port(), 9464);
        assert!(c.scrape_jobs().iter().any(|j| j.job == "vigie"));
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::parse("[bus]\nkindd = \"kafka\"\n").expect_err("unknown key");
        assert!(err.to_string().contains("kindd"), "{err}");
    }

    #[test]
    fn kafka_without_brokers_is_a_problem() {
        let c = Config::parse("[bus]\nkind = \"kafka\"\n[rules]\nfiles = []\n").expect("parse");
        let p = c.problems();
        assert!(p.iter().any(|(k, _)| k == "bus.brokers"), "{p:?}");
    }

    #[test]
    fn logs_entries_parse_with_defaults() {
        let c = Config::parse(
            "[[logs]]\npath = \"/var/log/app.log\"\nlabels = { app = \"x\" }\n[rules]\nfiles = []\n",
        )
        .expect("parse");
        assert_eq!(c.logs.len(), 1);
        assert_eq!(c.logs[0].poll_interval, std::time::Duration::from_secs(1));
        assert!(c.problems().is_empty(), "{:?}", c.problems());
        let c = Config::parse("[[logs]]\npath = \"\"\n[rules]\nfiles = []\n").expect("parse");
        assert!(c.problems().iter().any(|(k, _)| k == "logs[0].path"));
        let c = Config::parse(
            "[[logs]]\npath = \"a.log\"\nmultiline = { start = \"^\\\\d\", timeout = \"5s\" }\n[rules]\nfiles = []\n",
        )
        .expect("parse");
        let m = c.logs[0].multiline.as_ref().expect("multiline");
        assert_eq!((m.max_lines, m.timeout.as_secs()), (500, 5));
        assert!(c.problems().is_empty(), "{:?}", c.problems());
        let c = Config::parse(
            "[[logs]]\npath = \"a.log\"\nmultiline = { start = \"(\" }\n[rules]\nfiles = []\n",
        )
        .expect("parse");
        assert!(
            c.problems()
                .iter()
                .any(|(k, _)| k == "logs[0].multiline.start")
        );
    }

    #[test]
    fn syslog_entries_parse_and_are_checked() {
        let c = Config::parse(
            "[[syslog]]\nudp = \"127.0.0.1:5514\"\ntcp = \"127.0.0.1:5514\"\nlabels = { dc = \"par1\" }\n[rules]\nfiles = []\n",
        )
        .expect("parse");
        assert_eq!(c.syslog.len(), 1);
        assert!(c.problems().is_empty(), "{:?}", c.problems());
        let c = Config::parse("[[syslog]]\n[rules]\nfiles = []\n").expect("parse");
        assert!(c.problems().iter().any(|(k, _)| k == "syslog[0]"));
    }

    #[test]
    fn interop_entries_parse_and_need_kafka() {
        let text = "[[interop]]\ntopic = \"telegraf\"\nformat = \"influx\"\n[rules]\nfiles = []\n";
        let c = Config::parse(text).expect("parse");
        assert_eq!(c.interop.len(), 1);
        assert!(c.problems().iter().any(|(k, _)| k == "interop"));
        let c = Config::parse(&format!(
            "[bus]\nkind = \"kafka\"\nbrokers = \"127.0.0.1:9092\"\n{text}"
        ))
        .expect("parse");
        assert!(c.problems().is_empty(), "{:?}", c.problems());
    }

    #[test]
    fn action_blocks_parse_and_are_checked() {
        let c = Config::parse(
            "[[action]]\nname = \"evacuate\"\nmatchers = '{alertname=\"HypervisorFailing\"}'\nurl = \"http://127.0.0.1:8080/evacuate\"\nrate_limit = { max = 3, per = \"1h\" }\nblast_radius = { max_targets = 2, window = \"10m\" }\ncooldown = \"30m\"\nverify_within = \"5m\"\n[rules]\nfiles = []\n",
        )
        .expect("parse");
        assert_eq!(c.action.len(), 1);
        assert_eq!(c.action[0].target_label, "instance");
        assert!(c.problems().is_empty(), "{:?}", c.problems());
        let c = Config::parse(
            "[[action]]\nname = \"x\"\nmatchers = \"{\"\nurl = \"nope\"\nsecret_file = \"/nonexistent/secret\"\n[rules]\nfiles = []\n",
        )
        .expect("parse");
        let keys: Vec<String> = c.problems().into_iter().map(|(k, _)| k).collect();
        for k in ["action[0].url", "action[0].secret_file"] {
            assert!(keys.iter().any(|x| x == k), "{k} not in {keys:?}");
        }
    }

    #[test]
    fn split_roles_need_kafka() {
        let c = Config::parse("roles = [\"analyze\"]\n[rules]\nfiles = []\n").expect("parse");
        assert!(c.problems().iter().any(|(k, _)| k == "roles"));
    }
}
