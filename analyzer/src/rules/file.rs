//! Reading Prometheus rule files.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::group::{AlertingRule, RecordingRule, RuleGroup};
use crate::AnalyzerError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDef {
    groups: Vec<GroupDef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupDef {
    name: String,
    interval: Option<String>,
    #[serde(default)]
    rules: Vec<RuleDef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDef {
    alert: Option<String>,
    record: Option<String>,
    expr: String,
    #[serde(rename = "for")]
    for_: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

fn duration(s: &str) -> Result<Duration, String> {
    promql_parser::util::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration ({e}); use e.g. 30s, 5m, 1h"))
}

/// Checks that `expr` is PromQL returning an instant vector or a scalar.
fn check_expr(expr: &str) -> Result<(), String> {
    use promql_parser::parser::value::ValueType;
    let parsed = promql_parser::parser::parse(expr).map_err(|e| format!("invalid PromQL: {e}"))?;
    match parsed.value_type() {
        ValueType::Vector | ValueType::Scalar => Ok(()),
        other => Err(format!(
            "`{expr}` returns a {other}; a rule needs an instant vector (e.g. wrap a range in rate())"
        )),
    }
}

fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses one rule file's text; `default_interval` applies to groups without one.
pub fn parse_rule_file(
    path: &Path,
    text: &str,
    default_interval: Duration,
) -> Result<Vec<RuleGroup>, AnalyzerError> {
    let def: FileDef = serde_yaml::from_str(text).map_err(|e| AnalyzerError::RuleFile {
        file: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut groups = Vec::new();
    let mut names = std::collections::HashSet::new();
    for g in def.groups {
        let rule_err = |rule: &str, message: String| AnalyzerError::Rule {
            file: path.to_path_buf(),
            group: g.name.clone(),
            rule: rule.to_string(),
            message,
        };
        if !names.insert(g.name.clone()) {
            return Err(AnalyzerError::RuleFile {
                file: path.to_path_buf(),
                message: format!("group name `{}` is used twice", g.name),
            });
        }
        let interval = match &g.interval {
            Some(i) => duration(i).map_err(|m| rule_err("", m))?,
            None => default_interval,
        };
        let mut rules = Vec::new();
        let mut recording = Vec::new();
        for r in &g.rules {
            let name = match (&r.alert, &r.record) {
                (Some(a), None) | (None, Some(a)) => a.clone(),
                _ => {
                    return Err(rule_err(
                        r.alert.as_deref().or(r.record.as_deref()).unwrap_or("?"),
                        "a rule needs exactly one of `alert` or `record`".into(),
                    ));
                }
            };
            check_expr(&r.expr).map_err(|m| rule_err(&name, m))?;
            if r.record.is_some() {
                if r.for_.is_some() || !r.annotations.is_empty() {
                    return Err(rule_err(
                        &name,
                        "a recording rule takes no `for` or `annotations`".into(),
                    ));
                }
                if !valid_metric_name(&name) {
                    return Err(rule_err(
                        &name,
                        "`record` must be a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)".into(),
                    ));
                }
                recording.push(RecordingRule::new(name, r.expr.clone(), r.labels.clone()));
                continue;
            }
            let for_ = match &r.for_ {
                Some(f) => duration(f).map_err(|m| rule_err(&name, m))?,
                None => Duration::ZERO,
            };
            rules.push(AlertingRule::new(
                name,
                r.expr.clone(),
                for_,
                r.labels.clone(),
                r.annotations.clone(),
            ));
        }
        groups.push(RuleGroup::new(
            g.name.clone(),
            path.to_path_buf(),
            interval,
            rules,
            recording,
        ));
    }
    Ok(groups)
}

/// Loads rule files; a directory contributes every `*.yml`/`*.yaml` in it.
pub fn load_paths(
    paths: &[PathBuf],
    default_interval: Duration,
) -> Result<Vec<RuleGroup>, AnalyzerError> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let entries = fs::read_dir(p).map_err(|source| AnalyzerError::Io {
                path: p.clone(),
                source,
            })?;
            let mut inside: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| matches!(f.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")))
                .collect();
            inside.sort();
            files.extend(inside);
        } else {
            files.push(p.clone());
        }
    }
    let mut groups = Vec::new();
    for f in files {
        let text = fs::read_to_string(&f).map_err(|source| AnalyzerError::Io {
            path: f.clone(),
            source,
        })?;
        groups.extend(parse_rule_file(&f, &text, default_interval)?);
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
groups:
  - name: host
    interval: 30s
    rules:
      - alert: DiskFull
        expr: node_filesystem_avail_bytes{mountpoint="/"} < 1e9
        for: 5m
        labels: {severity: page}
        annotations: {summary: "disk {{ $labels.mountpoint }} low"}
"#;

    #[test]
    fn parses_a_group() {
        let groups =
            parse_rule_file(Path::new("r.yml"), GOOD, Duration::from_secs(15)).expect("parse");
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].interval(), Duration::from_secs(30));
        assert_eq!(groups[0].rules()[0].name(), "DiskFull");
    }

    #[test]
    fn errors_name_file_group_and_rule() {
        let bad = GOOD.replace("< 1e9", "< rate(x[5m]");
        let err = parse_rule_file(Path::new("r.yml"), &bad, Duration::from_secs(15))
            .expect_err("unsupported expr");
        let msg = err.to_string();
        assert!(
            msg.contains("r.yml") && msg.contains("host") && msg.contains("DiskFull"),
            "{msg}"
        );
    }

    #[test]
    fn full_promql_and_recording_rules_load() {
        let text = r#"
groups:
  - name: g
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
      - alert: Down
        expr: job:up:sum == 0 and on(job) rate(x_total[5m]) > 0
"#;
        let groups =
            parse_rule_file(Path::new("r.yml"), text, Duration::from_secs(15)).expect("parse");
        assert_eq!(groups[0].rules().len(), 1);
        assert_eq!(groups[0].recording_rules().len(), 1);
        let range = text.replace("sum by (job) (up)", "up[5m]");
        let msg = parse_rule_file(Path::new("r.yml"), &range, Duration::from_secs(15))
            .expect_err("range vector")
            .to_string();
        assert!(msg.contains("instant vector"), "{msg}");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let bad = GOOD.replace("for: 5m", "fro: 5m");
        assert!(parse_rule_file(Path::new("r.yml"), &bad, Duration::from_secs(15)).is_err());
    }

    #[test]
    fn bad_duration_is_rejected() {
        let bad = GOOD.replace("for: 5m", "for: soon");
        let msg = parse_rule_file(Path::new("r.yml"), &bad, Duration::from_secs(15))
            .expect_err("bad for")
            .to_string();
        assert!(msg.contains("soon"), "{msg}");
    }
}
