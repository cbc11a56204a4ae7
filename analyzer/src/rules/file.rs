//! Reading Prometheus rule files.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::group::{AlertingRule, RecordingRule, RuleGroup, RuleRef};
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
    query_offset: Option<String>,
    #[serde(default)]
    limit: usize,
    #[serde(default)]
    rules: Vec<RuleDef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDef {
    alert: Option<String>,
    record: Option<String>,
    #[serde(default)]
    expr: String,
    #[serde(rename = "for")]
    for_: Option<String>,
    keep_firing_for: Option<String>,
    /// Vigie extension: hysteresis (see docs/rules.md).
    resolve_expr: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// Parses a Prometheus duration (`30s`, `1h30m`, `0s`).
pub(super) fn duration(s: &str) -> Result<Duration, String> {
    // parse_duration refuses zero ("0s", "0m").
    let mut digits = s.chars().filter(char::is_ascii_digit).peekable();
    if digits.peek().is_some()
        && digits.all(|c| c == '0')
        && s.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return Ok(Duration::ZERO);
    }
    promql_parser::util::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration ({e}); use e.g. 30s, 5m, 1h"))
}

/// Checks that `expr` is PromQL returning an instant vector or a scalar.
fn check_expr(expr: &str) -> Result<(), String> {
    use promql_parser::parser::value::ValueType;
    if expr.trim().is_empty() {
        return Err("field `expr` must be set in rule".into());
    }
    let parsed = crate::promql::parse(expr).map_err(|e| format!("invalid PromQL: {e}"))?;
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

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// One problem in a rule file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleProblem {
    /// The file.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The group, when the problem is inside one.
    pub group: Option<String>,
    /// The rule (alert or record name), when the problem is inside one.
    pub rule: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for RuleProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        write!(f, ":")?;
        if let Some(g) = &self.group {
            write!(f, " group \"{g}\",")?;
        }
        if let Some(r) = &self.rule {
            write!(f, " rule \"{r}\":")?;
        }
        write!(f, " {}", self.message)
    }
}

impl From<RuleProblem> for AnalyzerError {
    fn from(p: RuleProblem) -> Self {
        let message = match p.line {
            Some(l) => format!("{} (line {l})", p.message),
            None => p.message,
        };
        match (p.group, p.rule) {
            (Some(group), rule) => AnalyzerError::Rule {
                file: p.file,
                group,
                rule: rule.unwrap_or_default(),
                message,
            },
            (None, _) => AnalyzerError::RuleFile {
                file: p.file,
                message,
            },
        }
    }
}

/// The line of `needle` (a `key: value` line, quotes optional) at or after `from`.
fn find_line(text: &str, from: usize, key: &str, value: &str) -> Option<usize> {
    text.lines().enumerate().skip(from).find_map(|(i, l)| {
        let l = l.trim_start().trim_start_matches("- ").trim();
        let rest = l.strip_prefix(key)?.trim_start().strip_prefix(':')?.trim();
        let rest = rest.trim_matches(|c| c == '"' || c == '\'');
        (rest == value).then_some(i + 1)
    })
}

/// Line of the `serde_yaml` error, if it has one.
fn yaml_line(e: &serde_yaml::Error) -> Option<usize> {
    e.location().map(|l| l.line())
}

/// Checks one rule file's text and builds its groups; on failure, every
/// problem found (file, line, group, rule, message).
pub fn check_rule_file(
    path: &Path,
    text: &str,
    default_interval: Duration,
) -> Result<Vec<RuleGroup>, Vec<RuleProblem>> {
    let problem = |line, group: Option<&str>, rule: Option<&str>, message: String| RuleProblem {
        file: path.to_path_buf(),
        line,
        group: group.map(str::to_string),
        rule: rule.map(str::to_string),
        message,
    };
    let def: FileDef = match serde_yaml::from_str(text) {
        Ok(d) => d,
        Err(e) => {
            let msg = e.to_string();
            return Err(vec![problem(yaml_line(&e), None, None, msg)]);
        }
    };
    let mut problems = Vec::new();
    let mut groups = Vec::new();
    let mut names = std::collections::HashSet::new();
    for g in def.groups {
        let gline = find_line(text, 0, "name", &g.name);
        let gname = Some(g.name.as_str());
        if g.name.is_empty() {
            problems.push(problem(
                gline,
                gname,
                None,
                "group name must not be empty".into(),
            ));
        }
        if !names.insert(g.name.clone()) {
            problems.push(problem(
                gline,
                gname,
                None,
                format!("group name `{}` is used twice", g.name),
            ));
        }
        let interval = match g.interval.as_deref().map(duration) {
            Some(Ok(d)) => d,
            Some(Err(m)) => {
                problems.push(problem(gline, gname, None, format!("interval: {m}")));
                default_interval
            }
            None => default_interval,
        };
        let query_offset = match g.query_offset.as_deref().map(duration) {
            Some(Ok(d)) => d,
            Some(Err(m)) => {
                problems.push(problem(gline, gname, None, format!("query_offset: {m}")));
                Duration::ZERO
            }
            None => Duration::ZERO,
        };
        let mut rules = Vec::new();
        let mut recording = Vec::new();
        let mut order = Vec::new();
        for r in &g.rules {
            let name = match (&r.alert, &r.record) {
                (Some(a), None) | (None, Some(a)) => a.clone(),
                _ => {
                    let n = r.alert.as_deref().or(r.record.as_deref()).unwrap_or("?");
                    problems.push(problem(
                        gline,
                        gname,
                        Some(n),
                        "a rule needs exactly one of `alert` or `record`".into(),
                    ));
                    continue;
                }
            };
            let key = if r.alert.is_some() { "alert" } else { "record" };
            let line = find_line(text, gline.unwrap_or(1) - 1, key, &name).or(gline);
            let mut errs = Vec::new();
            if let Err(m) = check_expr(&r.expr) {
                errs.push(m);
            }
            for k in r.labels.keys() {
                if !valid_label_name(k) || k == "__name__" {
                    errs.push(format!("invalid label name: {k}"));
                }
            }
            for k in r.annotations.keys() {
                if !valid_label_name(k) {
                    errs.push(format!("invalid annotation name: {k}"));
                }
            }
            for (what, t) in r.labels.iter().chain(r.annotations.iter()) {
                if let Err(m) = super::template::check(t) {
                    errs.push(format!("template of `{what}`: {m}"));
                }
            }
            if r.record.is_some() {
                if r.for_.is_some()
                    || r.keep_firing_for.is_some()
                    || r.resolve_expr.is_some()
                    || !r.annotations.is_empty()
                {
                    errs.push(
                        "a recording rule takes no `for`, `keep_firing_for`, `resolve_expr` or `annotations`"
                            .into(),
                    );
                }
                if !valid_metric_name(&name) {
                    errs.push(
                        "`record` must be a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)".into(),
                    );
                }
                if errs.is_empty() {
                    order.push(RuleRef::Record(recording.len()));
                    recording.push(RecordingRule::new(
                        name.clone(),
                        r.expr.clone(),
                        r.labels.clone(),
                    ));
                }
            } else {
                let mut dur = |v: &Option<String>, key: &str| match v.as_deref().map(duration) {
                    Some(Ok(d)) => d,
                    Some(Err(m)) => {
                        errs.push(format!("{key}: {m}"));
                        Duration::ZERO
                    }
                    None => Duration::ZERO,
                };
                let for_ = dur(&r.for_, "for");
                let keep = dur(&r.keep_firing_for, "keep_firing_for");
                if let Some(e) = &r.resolve_expr
                    && let Err(m) = check_expr(e)
                {
                    errs.push(format!("resolve_expr: {m}"));
                }
                if errs.is_empty() {
                    order.push(RuleRef::Alert(rules.len()));
                    rules.push(
                        AlertingRule::new(
                            name.clone(),
                            r.expr.clone(),
                            for_,
                            r.labels.clone(),
                            r.annotations.clone(),
                        )
                        .with_keep_firing_for(keep)
                        .with_resolve_expr(r.resolve_expr.clone()),
                    );
                }
            }
            for m in errs {
                problems.push(problem(line, gname, Some(&name), m));
            }
        }
        groups.push(
            RuleGroup::new(
                g.name.clone(),
                path.to_path_buf(),
                interval,
                rules,
                recording,
            )
            .with_order(order)
            .with_limit(g.limit)
            .with_query_offset(query_offset),
        );
    }
    if problems.is_empty() {
        Ok(groups)
    } else {
        Err(problems)
    }
}

/// Parses one rule file's text; `default_interval` applies to groups
/// without one. The error is the first problem found.
pub fn parse_rule_file(
    path: &Path,
    text: &str,
    default_interval: Duration,
) -> Result<Vec<RuleGroup>, AnalyzerError> {
    check_rule_file(path, text, default_interval).map_err(|mut p| p.swap_remove(0).into())
}

/// `vigie rules check`: checks each file like `promtool check rules`,
/// printing `Checking FILE` then `  SUCCESS: N rules found` or
/// `  FAILED:` and every problem (file:line: group, rule: message) on
/// stderr; true when every file is valid.
pub fn check_files(files: &[PathBuf]) -> bool {
    let mut ok = true;
    for f in files {
        println!("Checking {}", f.display());
        let result = fs::read_to_string(f)
            .map_err(|e| {
                vec![RuleProblem {
                    file: f.clone(),
                    line: None,
                    group: None,
                    rule: None,
                    message: e.to_string(),
                }]
            })
            .and_then(|text| check_rule_file(f, &text, Duration::from_secs(60)));
        match result {
            Ok(groups) => {
                let n: usize = groups.iter().map(|g| g.rule_count()).sum();
                println!("  SUCCESS: {n} rules found");
            }
            Err(problems) => {
                ok = false;
                eprintln!("  FAILED:");
                for p in problems {
                    eprintln!("{p}");
                }
            }
        }
        println!();
    }
    ok
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
