//! Target discovery: static targets and Prometheus file_sd files, turned
//! into scrape targets by `relabel_configs` as Prometheus does.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use regex::Regex;
use serde::Deserialize;

use crate::config::{FileSdConfig, ScrapeConfig, is_valid_label_name};
use crate::relabel::{LabelSet, Relabeler, process};

/// Label holding the target's `host:port`.
pub const ADDRESS: &str = "__address__";
/// Label holding the URL scheme.
pub const SCHEME: &str = "__scheme__";
/// Label holding the metrics path.
pub const METRICS_PATH: &str = "__metrics_path__";
/// Prefix of labels that become URL query parameters.
pub const PARAM_PREFIX: &str = "__param_";
/// The file a file_sd target came from.
pub const META_FILEPATH: &str = "__meta_filepath";

/// A Prometheus target group: `{"targets": [...], "labels": {...}}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct TargetGroup {
    /// Addresses (`host:port`).
    #[serde(default)]
    pub targets: Vec<String>,
    /// Labels of every target of the group.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Parses a file_sd file: JSON for `.json`, YAML otherwise.
pub fn parse_groups(path: &Path, text: &str) -> Result<Vec<TargetGroup>, String> {
    let json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let groups: Vec<TargetGroup> = if json {
        serde_json::from_str(text).map_err(|e| e.to_string())?
    } else if text.trim().is_empty() {
        Vec::new()
    } else {
        serde_yaml::from_str(text).map_err(|e| e.to_string())?
    };
    for g in &groups {
        for name in g.labels.keys() {
            if !is_valid_label_name(name) {
                return Err(format!("`{name}` is not a valid label name"));
            }
        }
    }
    Ok(groups)
}

/// The files a pattern names: itself, or the files matching a `*` in its
/// last element, sorted.
pub fn expand(pattern: &str) -> Vec<PathBuf> {
    let path = Path::new(pattern);
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Vec::new();
    };
    if !name.contains('*') {
        return vec![path.to_path_buf()];
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let re = name
        .split('*')
        .map(regex::escape)
        .collect::<Vec<_>>()
        .join(".*");
    let Ok(re) = Regex::new(&format!("^{re}$")) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_str().is_some_and(|n| re.is_match(n)))
        .map(|e| dir.join(e.file_name()))
        .collect();
    out.sort();
    out
}

/// The file_sd side of one job: the files' last good target groups.
#[derive(Debug, Default)]
pub struct FileSd {
    configs: Vec<FileSdConfig>,
    cache: HashMap<PathBuf, Vec<TargetGroup>>,
}

impl FileSd {
    /// Discovery over `configs`.
    pub fn new(configs: &[FileSdConfig]) -> Self {
        Self {
            configs: configs.to_vec(),
            cache: HashMap::new(),
        }
    }

    /// Re-reads every file; returns each group with the file it came from.
    /// A file that cannot be read or parsed keeps its previous groups; a
    /// file that no longer exists has none.
    pub fn refresh(&mut self) -> Vec<(PathBuf, TargetGroup)> {
        let mut seen: Vec<PathBuf> = Vec::new();
        for c in &self.configs {
            for pattern in &c.files {
                for path in expand(pattern) {
                    if !seen.contains(&path) {
                        seen.push(path);
                    }
                }
            }
        }
        let mut next = HashMap::new();
        let mut out = Vec::new();
        for path in seen {
            let groups = match std::fs::read_to_string(&path) {
                Ok(text) => match parse_groups(&path, &text) {
                    Ok(groups) => Some(groups),
                    Err(error) => {
                        tracing::warn!(file = %path.display(), %error, "cannot parse file_sd file; keeping its previous targets");
                        self.cache.get(&path).cloned()
                    }
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(error) => {
                    tracing::warn!(file = %path.display(), %error, "cannot read file_sd file; keeping its previous targets");
                    self.cache.get(&path).cloned()
                }
            };
            if let Some(groups) = groups {
                out.extend(groups.iter().cloned().map(|g| (path.clone(), g)));
                next.insert(path, groups);
            }
        }
        self.cache = next;
        out
    }
}

/// The discovered label sets of a job: its static targets, then the
/// file_sd groups, each target with its group's labels, `__address__`,
/// and the job's defaults (`job`, `__scheme__`, `__metrics_path__`,
/// `__param_*`, the job's `labels`) where the group does not set them.
pub fn discovered(job: &ScrapeConfig, file_groups: &[(PathBuf, TargetGroup)]) -> Vec<LabelSet> {
    let mut out = Vec::new();
    let mut add = |group_labels: &BTreeMap<String, String>, address: &str, file: Option<&Path>| {
        let mut l: LabelSet = group_labels.clone();
        l.insert(ADDRESS.to_string(), address.to_string());
        if let Some(file) = file {
            l.insert(META_FILEPATH.to_string(), file.display().to_string());
        }
        let mut default = |k: &str, v: &str| {
            l.entry(k.to_string()).or_insert_with(|| v.to_string());
        };
        default("job", &job.job);
        default(SCHEME, &job.scheme);
        default(METRICS_PATH, &job.metrics_path);
        for (k, values) in &job.params {
            if let Some(first) = values.first() {
                default(&format!("{PARAM_PREFIX}{k}"), first);
            }
        }
        for (k, v) in &job.labels {
            default(k, v);
        }
        out.push(l);
    };
    let none = BTreeMap::new();
    for t in &job.targets {
        add(&none, t, None);
    }
    for (file, g) in file_groups {
        for t in &g.targets {
            add(&g.labels, t, Some(file));
        }
    }
    out
}

/// A target after relabelling.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedTarget {
    /// Labels before relabelling.
    pub discovered: LabelSet,
    /// Labels of every sample: relabelled, `instance` defaulted to the
    /// address, `__` labels removed.
    pub labels: LabelSet,
    /// The URL to scrape.
    pub url: String,
}

/// Relabels one discovered label set. `Ok(None)`: dropped by relabelling;
/// `Err`: the result is not a scrapable target (also dropped, with a
/// reason to log).
pub fn resolve(
    job: &ScrapeConfig,
    rules: &[Relabeler],
    discovered: LabelSet,
) -> Result<Option<ResolvedTarget>, String> {
    let mut l = discovered.clone();
    if !process(rules, &mut l) {
        return Ok(None);
    }
    let Some(address) = l.get(ADDRESS).cloned() else {
        return Err("no __address__ label after relabelling".to_string());
    };
    let scheme = l.get(SCHEME).cloned().unwrap_or_else(|| job.scheme.clone());
    let path = l
        .get(METRICS_PATH)
        .cloned()
        .unwrap_or_else(|| job.metrics_path.clone());
    let mut url = reqwest::Url::parse(&format!("{scheme}://{address}{path}"))
        .map_err(|e| format!("invalid scrape URL from `{scheme}://{address}{path}`: {e}"))?;
    let mut params: BTreeMap<String, Vec<String>> = job.params.clone();
    for (k, v) in &l {
        if let Some(name) = k.strip_prefix(PARAM_PREFIX) {
            params.insert(name.to_string(), vec![v.clone()]);
        }
    }
    if !params.is_empty() {
        let mut q = url.query_pairs_mut();
        for (k, values) in &params {
            for v in values {
                q.append_pair(k, v);
            }
        }
    }
    l.entry("instance".to_string()).or_insert(address);
    l.retain(|k, _| !k.starts_with("__"));
    if let Some(bad) = l.keys().find(|k| !is_valid_label_name(k)) {
        return Err(format!("invalid label name `{bad}`"));
    }
    Ok(Some(ResolvedTarget {
        discovered,
        labels: l,
        url: url.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relabel::{RelabelConfig, compile};

    fn job() -> ScrapeConfig {
        ScrapeConfig {
            job: "node".into(),
            targets: vec!["a:1".into()],
            labels: BTreeMap::from([("dc".into(), "par1".into())]),
            ..ScrapeConfig::default()
        }
    }

    #[test]
    fn parses_json_and_yaml_groups() {
        let j = parse_groups(
            Path::new("x.json"),
            r#"[{"targets":["h:1","h:2"],"labels":{"env":"prod"}},{"targets":["h:3"]}]"#,
        )
        .expect("json");
        assert_eq!(j.len(), 2);
        assert_eq!(j[0].targets, ["h:1", "h:2"]);
        assert_eq!(j[0].labels.get("env").map(String::as_str), Some("prod"));
        let y = parse_groups(
            Path::new("x.yml"),
            "- targets: ['h:1']\n  labels:\n    env: prod\n",
        )
        .expect("yaml");
        assert_eq!(y[0].targets, ["h:1"]);
        assert!(parse_groups(Path::new("x.json"), "{not json").is_err());
        assert!(parse_groups(Path::new("x.yaml"), "- labels: {'a-b': x}\n  targets: []").is_err());
        assert!(
            parse_groups(Path::new("x.yaml"), "")
                .expect("empty")
                .is_empty()
        );
    }

    #[test]
    fn globs_match_the_last_element_and_bad_files_keep_old_groups() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a.json");
        std::fs::write(&a, r#"[{"targets":["h:1"]}]"#).expect("write");
        std::fs::write(dir.path().join("b.yml"), "- targets: ['h:2']\n").expect("write");
        std::fs::write(dir.path().join("c.txt"), "").expect("write");
        let pattern = format!("{}/*.json", dir.path().display());
        assert_eq!(expand(&pattern), vec![a.clone()]);
        let mut sd = FileSd::new(&[FileSdConfig {
            files: vec![pattern, format!("{}/b.yml", dir.path().display())],
            refresh_interval: std::time::Duration::from_secs(1),
        }]);
        let groups = sd.refresh();
        let addrs: Vec<&str> = groups
            .iter()
            .flat_map(|(_, g)| g.targets.iter().map(String::as_str))
            .collect();
        assert_eq!(addrs, ["h:1", "h:2"]);
        std::fs::write(&a, "[{broken").expect("write");
        assert_eq!(sd.refresh().len(), 2, "a broken file keeps its targets");
        std::fs::remove_file(&a).expect("rm");
        assert_eq!(sd.refresh().len(), 1, "a removed file has none");
    }

    #[test]
    fn defaults_relabelling_and_instance() {
        let groups = vec![(
            PathBuf::from("sd.json"),
            TargetGroup {
                targets: vec!["b:2".into()],
                labels: BTreeMap::from([
                    ("__meta_role".into(), "db".into()),
                    ("dc".into(), "ams".into()),
                ]),
            },
        )];
        let mut job = job();
        job.params = BTreeMap::from([("module".into(), vec!["http_2xx".into()])]);
        let d = discovered(&job, &groups);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].get("dc").map(String::as_str), Some("par1"));
        assert_eq!(
            d[1].get("dc").map(String::as_str),
            Some("ams"),
            "group labels win"
        );
        assert_eq!(d[1].get(META_FILEPATH).map(String::as_str), Some("sd.json"));
        assert_eq!(
            d[1].get("__param_module").map(String::as_str),
            Some("http_2xx")
        );

        let rules = compile(&[
            RelabelConfig {
                source_labels: vec!["__meta_role".into()],
                target_label: "role".into(),
                ..RelabelConfig::default()
            },
            RelabelConfig {
                source_labels: vec!["__address__".into()],
                target_label: "__param_target".into(),
                ..RelabelConfig::default()
            },
            RelabelConfig {
                target_label: "__metrics_path__".into(),
                replacement: "/probe".into(),
                ..RelabelConfig::default()
            },
        ])
        .expect("compile");
        let t = resolve(&job, &rules, d[1].clone())
            .expect("valid")
            .expect("kept");
        assert_eq!(t.url, "http://b:2/probe?module=http_2xx&target=b%3A2");
        assert_eq!(t.labels.get("instance").map(String::as_str), Some("b:2"));
        assert_eq!(t.labels.get("role").map(String::as_str), Some("db"));
        assert_eq!(t.labels.get("job").map(String::as_str), Some("node"));
        assert!(
            t.labels.keys().all(|k| !k.starts_with("__")),
            "{:?}",
            t.labels
        );
        assert_eq!(t.discovered, d[1]);

        // Instance set by relabelling is kept; dropping works.
        let rules = compile(&[
            RelabelConfig {
                target_label: "instance".into(),
                replacement: "db-main".into(),
                ..RelabelConfig::default()
            },
            RelabelConfig {
                source_labels: vec!["dc".into()],
                regex: "ams".into(),
                action: crate::relabel::Action::Drop,
                ..RelabelConfig::default()
            },
        ])
        .expect("compile");
        let t = resolve(&job, &rules, d[0].clone())
            .expect("valid")
            .expect("kept");
        assert_eq!(
            t.labels.get("instance").map(String::as_str),
            Some("db-main")
        );
        assert_eq!(resolve(&job, &rules, d[1].clone()), Ok(None));
    }
}
