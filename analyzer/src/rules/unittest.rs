//! Rule unit tests in promtool's format (`promtool test rules`).
//!
//! A test file names rule files (relative to itself, globs allowed), an
//! `evaluation_interval` (default 1m) and test groups. Each group loads its
//! `input_series` (`interval` apart, expanding notation `1+1x10`, `_`,
//! `stale`) into an in-memory store, then evaluates every rule group from
//! time 0 to the largest `eval_time`, one `evaluation_interval` at a time,
//! exactly as promtool does: inputs become visible as time reaches them,
//! recorded series and `ALERTS` are written back, `alert_rule_test`
//! compares the **firing** alerts of the evaluation at or just before each
//! `eval_time`, and `promql_expr_test` queries the final store. Failures
//! are reported in promtool's words.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::file::{check_rule_file, duration};
use super::group::{EvalContext, RuleGroup, SharedMemoryStore, evaluate_group};
use super::template::go_float;
use crate::promql::value::{NAME, stale_nan};
use crate::promql::{Engine, LabelSet, Queryable, Value};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    #[serde(default)]
    rule_files: Vec<String>,
    evaluation_interval: Option<Scalar>,
    #[serde(default)]
    group_eval_order: Vec<String>,
    #[serde(default)]
    tests: Vec<TestGroup>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestGroup {
    interval: Option<Scalar>,
    #[serde(default)]
    input_series: Vec<SeriesDef>,
    #[serde(default)]
    alert_rule_test: Vec<AlertTest>,
    #[serde(default)]
    promql_expr_test: Vec<ExprTest>,
    #[serde(default)]
    external_labels: BTreeMap<String, Scalar>,
    #[serde(default)]
    external_url: String,
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeriesDef {
    series: String,
    #[serde(default)]
    values: Scalar,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertTest {
    #[serde(default)]
    eval_time: Scalar,
    #[serde(default)]
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<ExpAlert>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpAlert {
    #[serde(default)]
    exp_labels: BTreeMap<String, Scalar>,
    #[serde(default)]
    exp_annotations: BTreeMap<String, Scalar>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExprTest {
    expr: String,
    #[serde(default)]
    eval_time: Scalar,
    #[serde(default)]
    exp_samples: Vec<ExpSample>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpSample {
    #[serde(default)]
    labels: String,
    #[serde(default)]
    value: f64,
}

/// A YAML scalar read as text (Go's yaml decodes numbers into strings).
#[derive(Debug, Default, Clone)]
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_yaml::Value::deserialize(d)? {
            serde_yaml::Value::String(s) => Ok(Scalar(s)),
            serde_yaml::Value::Number(n) => Ok(Scalar(n.to_string())),
            serde_yaml::Value::Bool(b) => Ok(Scalar(b.to_string())),
            serde_yaml::Value::Null => Ok(Scalar(String::new())),
            _ => Err(serde::de::Error::custom("expected a scalar")),
        }
    }
}

/// Parses a Prometheus duration (`1m`, `1h30m`, `0`, `90s`) into ms.
fn duration_ms(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if s.is_empty() || s == "0" {
        return Ok(0);
    }
    duration(s).map(|d| d.as_millis() as i64)
}

/// Formats ms like Prometheus' `model.Duration` (`1h30m`, `90s` → `1m30s`, `0s`).
pub fn format_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = ms;
    if rest < 0 {
        out.push('-');
        rest = -rest;
    }
    for (unit, size) in [
        ("y", 365 * 86_400_000i64),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ] {
        if rest >= size {
            out.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    out
}

/// Go's `time.Duration.String()` for whole ms (`5m0s`, `1h0m0s`, `1.5s`).
fn go_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let (h, m, s, milli) = (
        ms / 3_600_000,
        (ms / 60_000) % 60,
        (ms / 1000) % 60,
        ms % 1000,
    );
    let secs = if milli == 0 {
        format!("{s}s")
    } else {
        let frac = format!("{milli:03}");
        format!("{s}.{}s", frac.trim_end_matches('0'))
    };
    if h > 0 {
        format!("{h}h{m}m{secs}")
    } else if m > 0 {
        format!("{m}m{secs}")
    } else if ms < 1000 {
        format!("{ms}ms")
    } else {
        secs
    }
}

/// A number of the series notation: decimal, `Inf`, `-Inf`, `NaN`.
pub fn parse_number(s: &str) -> Option<f64> {
    match s.to_ascii_lowercase().as_str() {
        "inf" | "+inf" => return Some(f64::INFINITY),
        "-inf" => return Some(f64::NEG_INFINITY),
        "nan" => return Some(f64::NAN),
        _ => {}
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
    {
        return None;
    }
    s.parse::<f64>().ok()
}

/// Expands one token of the series notation; `None` is a missing point.
fn expand_token(tok: &str) -> Result<Vec<Option<f64>>, String> {
    if tok == "_" {
        return Ok(vec![None]);
    }
    if tok == "stale" {
        return Ok(vec![Some(stale_nan())]);
    }
    if let Some(n) = tok.strip_prefix("_x") {
        let n: usize = n.parse().map_err(|_| format!("bad repeat in {tok:?}"))?;
        return Ok(vec![None; n]);
    }
    if let Some(v) = parse_number(tok) {
        return Ok(vec![Some(v)]);
    }
    let Some(xpos) = tok.rfind('x') else {
        return Err(format!("bad value {tok:?}"));
    };
    let (base, n) = (&tok[..xpos], &tok[xpos + 1..]);
    let n: usize = n.parse().map_err(|_| format!("bad repeat in {tok:?}"))?;
    if base == "stale" {
        return Ok(vec![Some(stale_nan()); n + 1]);
    }
    // Split "a+b" / "a-b" at the last sign that is not an exponent's nor the first char.
    let bytes = base.as_bytes();
    let split = (1..bytes.len())
        .rev()
        .find(|&i| (bytes[i] == b'+' || bytes[i] == b'-') && !matches!(bytes[i - 1], b'e' | b'E'));
    let (a, b) = match split {
        Some(i) => (
            parse_number(&base[..i]).ok_or_else(|| format!("bad start in {tok:?}"))?,
            parse_number(&base[i..]).ok_or_else(|| format!("bad step in {tok:?}"))?,
        ),
        None => (
            parse_number(base).ok_or_else(|| format!("bad value in {tok:?}"))?,
            0.0,
        ),
    };
    let mut out = Vec::with_capacity(n + 1);
    let mut v = a;
    for _ in 0..=n {
        out.push(Some(v));
        v += b;
    }
    Ok(out)
}

/// Expands a `values` string of the series notation (`1+1x3 _ stale 7`).
pub fn expand_values(s: &str) -> Result<Vec<Option<f64>>, String> {
    let mut out = Vec::new();
    for tok in s.split_whitespace() {
        out.extend(expand_token(tok)?);
    }
    Ok(out)
}

/// Parses a series written as a selector with equality matchers only
/// (`up{job="x"}`, `{__name__="up"}`) into its labels.
pub fn parse_metric(s: &str) -> Result<LabelSet, String> {
    use promql_parser::label::MatchOp;
    use promql_parser::parser::Expr;
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.is_empty() || compact == "{}" {
        return Ok(LabelSet::new());
    }
    let expr = promql_parser::parser::parse(s).map_err(|e| e.to_string())?;
    let Expr::VectorSelector(vs) = expr else {
        return Err(format!("{s:?} is not a series (name{{label=\"value\"}})"));
    };
    if vs.offset.is_some() || vs.at.is_some() || !vs.matchers.or_matchers.is_empty() {
        return Err(format!("{s:?} is not a series"));
    }
    let mut labels = LabelSet::new();
    if let Some(n) = vs.name {
        labels.insert(NAME.into(), n);
    }
    for m in vs.matchers.matchers {
        if m.op != MatchOp::Equal {
            return Err(format!("{s:?}: only `=` is allowed in a series"));
        }
        if !m.value.is_empty() {
            labels.insert(m.name, m.value);
        }
    }
    Ok(labels)
}

/// Prometheus' `labels.Labels.String()`: `{a="b", c="d"}`.
fn labels_string<'a>(l: impl IntoIterator<Item = (&'a String, &'a String)>) -> String {
    let inner: Vec<String> = l.into_iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

fn indent_lines(s: &str, indent: &str) -> String {
    s.split('\n')
        .enumerate()
        .map(|(i, l)| {
            if i > 0 {
                format!("{indent}{l}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

type LabelsAndAnnotations = Vec<(LabelSet, LabelSet)>;

fn la_string(la: &LabelsAndAnnotations) -> String {
    if la.is_empty() {
        return "[]".into();
    }
    let mut s = "[".to_string();
    for (i, (l, a)) in la.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let one = format!(
            "\nLabels:{}\nAnnotations:{}",
            labels_string(l),
            labels_string(a)
        );
        s.push_str(&format!("\n{i}:{}", indent_lines(&one, "  ")));
    }
    s.push_str("\n]");
    s
}

fn samples_string(s: &[(LabelSet, f64)]) -> String {
    if s.is_empty() {
        return "nil".into();
    }
    s.iter()
        .map(|(l, v)| format!("{} {}", labels_string(l), go_float(*v, 'E', None)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Expands rule file patterns relative to `base` (`*` and `?` in the last
/// path component are globs).
fn resolve_rule_files(base: &Path, files: &[String]) -> (Vec<PathBuf>, Vec<String>) {
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    for f in files {
        let p = if Path::new(f).is_absolute() {
            PathBuf::from(f)
        } else {
            base.join(f)
        };
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.contains(['*', '?']) {
            let dir = p.parent().unwrap_or(Path::new("."));
            let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
                .map(|rd| {
                    rd.filter_map(|e| e.ok())
                        .filter(|e| {
                            e.file_name()
                                .to_str()
                                .is_some_and(|n| glob_match(name.as_bytes(), n.as_bytes()))
                        })
                        .map(|e| e.path())
                        .collect()
                })
                .unwrap_or_default();
            found.sort();
            if found.is_empty() {
                warnings.push(format!("  WARNING: no file match pattern {}", p.display()));
            }
            out.extend(found);
        } else if p.exists() {
            out.push(p);
        } else {
            warnings.push(format!("  WARNING: no file match pattern {}", p.display()));
        }
    }
    (out, warnings)
}

fn glob_match(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob_match(&p[1..], s) || (!s.is_empty() && glob_match(p, &s[1..])),
        (Some(b'?'), Some(_)) => glob_match(&p[1..], &s[1..]),
        (Some(a), Some(b)) if a == b => glob_match(&p[1..], &s[1..]),
        _ => false,
    }
}

/// Runs one promtool unit-test file; `Ok` when every test passes, else
/// the failures in promtool's words. Warnings (unmatched rule file
/// patterns) go to `warn`.
pub async fn run_test_file(path: &Path, warn: &mut Vec<String>) -> Result<(), Vec<String>> {
    let text =
        std::fs::read_to_string(path).map_err(|e| vec![format!("{}: {e}", path.display())])?;
    let file: TestFile = serde_yaml::from_str(&text).map_err(|e| vec![e.to_string()])?;
    let base = path.parent().unwrap_or(Path::new("."));
    let (rule_files, warnings) = resolve_rule_files(base, &file.rule_files);
    warn.extend(warnings);
    let eval_ms = match &file.evaluation_interval {
        Some(s) => duration_ms(&s.0).map_err(|e| vec![e])?,
        None => 0,
    };
    let eval_ms = if eval_ms == 0 { 60_000 } else { eval_ms };
    let mut order: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, g) in file.group_eval_order.iter().enumerate() {
        if order.insert(g.as_str(), i).is_some() {
            return Err(vec![format!(
                "group name repeated in evaluation order: {g}"
            )]);
        }
    }
    let mut errs = Vec::new();
    for tg in &file.tests {
        errs.extend(run_group(tg, &rule_files, eval_ms, &order).await);
    }
    if errs.is_empty() { Ok(()) } else { Err(errs) }
}

fn load_groups(
    files: &[PathBuf],
    interval_ms: i64,
    order: &BTreeMap<&str, usize>,
) -> Result<Vec<RuleGroup>, Vec<String>> {
    let mut groups = Vec::new();
    let mut errs = Vec::new();
    for f in files {
        let text = match std::fs::read_to_string(f) {
            Ok(t) => t,
            Err(e) => {
                errs.push(format!("{}: {e}", f.display()));
                continue;
            }
        };
        let default = Duration::from_millis(interval_ms.max(0) as u64);
        match check_rule_file(f, &text, default) {
            Ok(g) => groups.extend(g),
            Err(problems) => errs.extend(problems.iter().map(ToString::to_string)),
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    groups.sort_by_key(|g| order.get(g.name()).copied().unwrap_or(0));
    Ok(groups)
}

async fn run_group(
    tg: &TestGroup,
    rule_files: &[PathBuf],
    eval_ms: i64,
    order: &BTreeMap<&str, usize>,
) -> Vec<String> {
    let interval_ms = match tg.interval.as_ref().map(|s| duration_ms(&s.0)) {
        Some(Ok(ms)) => ms,
        Some(Err(e)) => return vec![e],
        None => 0,
    };
    // Input series, loaded lazily as time passes (promtool's LazyLoader).
    let mut pending: Vec<(LabelSet, Vec<(i64, f64)>)> = Vec::new();
    for s in &tg.input_series {
        let labels = match parse_metric(&s.series) {
            Ok(l) => l,
            Err(e) => return vec![format!("error in input_series {:?}: {e}", s.series)],
        };
        let values = match expand_values(&s.values.0) {
            Ok(v) => v,
            Err(e) => return vec![format!("error in input_series {:?}: {e}", s.series)],
        };
        let mut points: Vec<(i64, f64)> = Vec::new();
        for (i, v) in values.into_iter().enumerate() {
            let t = i as i64 * interval_ms;
            // A second sample at the same time is a duplicate: the first stays.
            if let Some(v) = v
                && points.last().is_none_or(|p| p.0 != t)
            {
                points.push((t, v));
            }
        }
        pending.push((labels, points));
    }
    let mut groups = match load_groups(rule_files, interval_ms, order) {
        Ok(g) => g,
        Err(e) => return e,
    };
    let ctx = EvalContext {
        engine: Engine {
            subquery_step_ms: eval_ms,
            ..Engine::default()
        },
        external_labels: tg
            .external_labels
            .iter()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect(),
        external_url: tg.external_url.clone(),
        resend: Duration::from_secs(60),
    };

    let mut alert_tests: BTreeMap<i64, Vec<(&AlertTest, i64)>> = BTreeMap::new();
    let mut max_t = 0;
    for a in &tg.alert_rule_test {
        let t = match duration_ms(&a.eval_time.0) {
            Ok(t) => t,
            Err(e) => return vec![e],
        };
        if a.alertname.is_empty() {
            let in_group = if tg.name.is_empty() {
                String::new()
            } else {
                format!(" (in TestGroup {})", tg.name)
            };
            return vec![format!(
                "an item under alert_rule_test misses required attribute alertname at eval_time {}{in_group}",
                format_duration(t)
            )];
        }
        alert_tests.entry(t).or_default().push((a, t));
        max_t = max_t.max(t);
    }
    let mut expr_times = Vec::new();
    for e in &tg.promql_expr_test {
        match duration_ms(&e.eval_time.0) {
            Ok(t) => {
                max_t = max_t.max(t);
                expr_times.push(t);
            }
            Err(err) => return vec![err],
        }
    }
    let alert_times: Vec<i64> = alert_tests.keys().copied().collect();
    let store = SharedMemoryStore::default();
    let mut errs = Vec::new();
    let mut curr = 0;
    let mut ts = 0;
    while ts <= max_t {
        for (labels, points) in &mut pending {
            let n = points.partition_point(|p| p.0 <= ts);
            for (t, v) in points.drain(..n) {
                store.add(labels.clone(), t, v).await;
            }
        }
        let mut eval_errs = Vec::new();
        for g in &mut groups {
            let res = evaluate_group(g, &store, ts, &ctx).await;
            for (rule, e) in res.errors {
                eval_errs.push(format!(
                    "    rule: {rule}, time: {}, err: {e}",
                    go_duration(ts)
                ));
            }
        }
        if !eval_errs.is_empty() {
            errs.extend(eval_errs);
            return errs;
        }
        while curr < alert_times.len()
            && ts <= alert_times[curr]
            && alert_times[curr] < ts + eval_ms
        {
            let t = alert_times[curr];
            let wanted: BTreeSet<&str> = alert_tests[&t]
                .iter()
                .map(|(a, _)| a.alertname.as_str())
                .collect();
            let mut got: BTreeMap<&str, LabelsAndAnnotations> = BTreeMap::new();
            for g in &groups {
                for r in g.rules() {
                    if !wanted.contains(r.name()) {
                        continue;
                    }
                    let entry = got
                        .entry(wanted.get(r.name()).copied().unwrap_or(""))
                        .or_default();
                    for a in r.alerts() {
                        if a.state == vigie_model::AlertState::Firing {
                            entry.push((
                                a.labels
                                    .iter()
                                    .map(|(k, v)| (k.to_string(), v.to_string()))
                                    .collect(),
                                a.annotations
                                    .iter()
                                    .map(|(k, v)| (k.to_string(), v.to_string()))
                                    .collect(),
                            ));
                        }
                    }
                }
            }
            for (test, t) in &alert_tests[&t] {
                let mut got_alerts = got
                    .get(test.alertname.as_str())
                    .cloned()
                    .unwrap_or_default();
                let mut exp: LabelsAndAnnotations = test
                    .exp_alerts
                    .iter()
                    .map(|a| {
                        let mut l: LabelSet = a
                            .exp_labels
                            .iter()
                            .map(|(k, v)| (k.clone(), v.0.clone()))
                            .collect();
                        l.insert("alertname".into(), test.alertname.clone());
                        let an: LabelSet = a
                            .exp_annotations
                            .iter()
                            .map(|(k, v)| (k.clone(), v.0.clone()))
                            .collect();
                        (l, an)
                    })
                    .collect();
                got_alerts.sort();
                exp.sort();
                if got_alerts != exp {
                    let name = if tg.name.is_empty() {
                        String::new()
                    } else {
                        format!("    name: {},\n", tg.name)
                    };
                    let indent = "            ";
                    errs.push(format!(
                        "{name}    alertname: {}, time: {}, \n        exp:{}, \n        got:{}",
                        test.alertname,
                        format_duration(*t),
                        indent_lines(&la_string(&exp), indent),
                        indent_lines(&la_string(&got_alerts), indent)
                    ));
                }
            }
            curr += 1;
        }
        ts += eval_ms;
    }

    'tests: for (test, t) in tg.promql_expr_test.iter().zip(expr_times) {
        let time = format_duration(t);
        let q: &dyn Queryable = &store;
        let got = match ctx.engine.instant(q, &test.expr, t).await {
            Ok(r) => match r.value {
                Value::Vector(v) => v.into_iter().map(|s| (s.metric, s.v)).collect::<Vec<_>>(),
                Value::Scalar(v) => vec![(LabelSet::new(), v)],
                _ => {
                    errs.push(format!(
                        "    expr: {:?}, time: {time}, err: rule result is not a vector or scalar",
                        test.expr
                    ));
                    continue;
                }
            },
            Err(e) => {
                errs.push(format!("    expr: {:?}, time: {time}, err: {e}", test.expr));
                continue;
            }
        };
        let mut exp = Vec::new();
        for s in &test.exp_samples {
            match parse_metric(&s.labels) {
                Ok(l) => exp.push((l, s.value)),
                Err(e) => {
                    errs.push(format!(
                        "    expr: {:?}, time: {time}, err: labels {:?}: {e}",
                        test.expr, s.labels
                    ));
                    continue 'tests;
                }
            }
        }
        let mut got = got;
        got.sort_by(|a, b| a.0.cmp(&b.0));
        exp.sort_by(|a, b| a.0.cmp(&b.0));
        // Exact comparison, like Go's reflect.DeepEqual (NaN never equals).
        let equal =
            got.len() == exp.len() && got.iter().zip(&exp).all(|(g, e)| g.0 == e.0 && g.1 == e.1);
        if !equal {
            errs.push(format!(
                "    expr: {:?}, time: {time},\n        exp: {}\n        got: {}",
                test.expr,
                samples_string(&exp),
                samples_string(&got)
            ));
        }
    }
    errs
}

/// Runs promtool-format test files, printing like `promtool test rules`
/// (progress on stdout, failures on stderr); true when all passed.
pub async fn run_and_print(files: &[PathBuf]) -> bool {
    let mut ok = true;
    for f in files {
        println!("Unit Testing:  {}", f.display());
        let mut warnings = Vec::new();
        let res = run_test_file(f, &mut warnings).await;
        for w in warnings {
            eprintln!("{w}");
        }
        match res {
            Ok(()) => println!("  SUCCESS"),
            Err(errs) => {
                ok = false;
                eprintln!("  FAILED:");
                for e in errs {
                    eprintln!("{e}");
                    println!();
                }
            }
        }
        println!();
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_series_notation() {
        let v = expand_values("1+1x3 _ 10-2x2 _x2 stale 5x1").expect("values");
        let nums: Vec<Option<f64>> = v
            .iter()
            .map(|x| x.filter(|f| !crate::promql::value::is_stale(*f)))
            .collect();
        assert_eq!(
            nums,
            vec![
                Some(1.0),
                Some(2.0),
                Some(3.0),
                Some(4.0),
                None,
                Some(10.0),
                Some(8.0),
                Some(6.0),
                None,
                None,
                None,
                Some(5.0),
                Some(5.0)
            ]
        );
        assert!(crate::promql::value::is_stale(v[10].expect("stale")));
        assert_eq!(
            expand_values("-1+1x2").expect("neg"),
            [Some(-1.0), Some(0.0), Some(1.0)]
        );
        assert_eq!(
            expand_values("1e3 -2").expect("exp"),
            [Some(1000.0), Some(-2.0)]
        );
        assert!(expand_values("abc").is_err());
    }

    #[test]
    fn parses_series_and_durations() {
        let l = parse_metric(r#"up{job="a", instance="x:1"}"#).expect("metric");
        assert_eq!(l.get("__name__").map(String::as_str), Some("up"));
        assert_eq!(l.get("instance").map(String::as_str), Some("x:1"));
        assert!(parse_metric(r#"up{job=~"a"}"#).is_err());
        assert_eq!(format_duration(90_000), "1m30s");
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(3_600_000), "1h");
        assert_eq!(go_duration(300_000), "5m0s");
        assert_eq!(go_duration(3_600_000), "1h0m0s");
        assert_eq!(duration_ms("1h30m").expect("d"), 5_400_000);
        assert!(glob_match(b"*.yml", b"a.yml"));
        assert!(!glob_match(b"*.yml", b"a.yaml"));
    }

    #[tokio::test]
    async fn runs_a_promtool_test_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("rules.yml"),
            r#"
groups:
  - name: g
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
      - alert: Down
        expr: up == 0
        for: 2m
        labels: {severity: page}
        annotations:
          summary: "{{ $labels.instance }} down, value {{ $value }}"
"#,
        )
        .expect("write");
        let test = r#"
rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'up{job="a",instance="i1"}'
        values: '1 1 0 0 0 0 0'
      - series: 'up{job="a",instance="i2"}'
        values: '1x6'
    alert_rule_test:
      - eval_time: 3m
        alertname: Down
      - eval_time: 4m
        alertname: Down
        exp_alerts:
          - exp_labels: {severity: page, instance: i1, job: a}
            exp_annotations: {summary: "i1 down, value 0"}
    promql_expr_test:
      - expr: job:up:sum
        eval_time: 1m
        exp_samples:
          - labels: 'job:up:sum{job="a"}'
            value: 2
      - expr: ALERTS_FOR_STATE
        eval_time: 5m
        exp_samples:
          - labels: 'ALERTS_FOR_STATE{alertname="Down",instance="i1",job="a",severity="page"}'
            value: 120
"#;
        let path = dir.path().join("t.yml");
        std::fs::write(&path, test).expect("write");
        let mut w = Vec::new();
        assert_eq!(run_test_file(&path, &mut w).await, Ok(()));
        std::fs::write(&path, test.replace("value: 2\n", "value: 3\n")).expect("write");
        let errs = run_test_file(&path, &mut w).await.expect_err("fails");
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].contains("exp: {__name__=\"job:up:sum\", job=\"a\"} 3E+00"),
            "{errs:?}"
        );
        assert!(
            errs[0].contains("got: {__name__=\"job:up:sum\", job=\"a\"} 2E+00"),
            "{errs:?}"
        );
        std::fs::write(&path, test.replace("eval_time: 4m", "eval_time: 3m30s")).expect("write");
        let errs = run_test_file(&path, &mut w)
            .await
            .expect_err("not firing yet");
        assert!(errs[0].contains("alertname: Down, time: 3m30s"), "{errs:?}");
    }
}
