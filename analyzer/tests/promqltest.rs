//! Runs Prometheus' own PromQL conformance scripts (promqltest language)
//! against Vigie's PromQL engine over an in-memory store.
//!
//! Scripts: every `*.test` in `shared/data/promqltest` (or
//! `$VIGIE_SHARED_DATA/promqltest`). Statements that need native histograms
//! or experimental features are counted as skipped, with the reason.
//! `VIGIE_PROMQLTEST_VERBOSE=1` prints every failure.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use promql_parser::util::{parse_duration, unquote_string};
use vigie_analyzer::promql::{Engine, LabelSet, MemoryStore, Value, almost_equal};
use vigie_analyzer::rules::unittest::{expand_values, parse_number};

/// Pass rate (percent of non-skipped statements) below which the test fails:
/// the measured rate minus 2 points.
const FLOOR_PERCENT: f64 = 97.8;

const EPSILON: f64 = 0.000_001;

enum Outcome {
    Pass,
    Fail(String),
    Skip(String),
}

fn data_dir() -> PathBuf {
    match std::env::var("VIGIE_SHARED_DATA") {
        Ok(d) => PathBuf::from(d).join("promqltest"),
        Err(_) => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/data/promqltest"
        )),
    }
}

fn parse_time_ms(s: &str) -> Result<i64, String> {
    if let Ok(f) = s.parse::<f64>() {
        return Ok((f * 1000.0).round() as i64);
    }
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s),
    };
    if body.chars().all(|c| c == '0' || c.is_ascii_alphabetic()) {
        return Ok(0); // "0m", "0s": parse_duration refuses zero.
    }
    let d = parse_duration(body)?.as_millis() as i64;
    Ok(if neg { -d } else { d })
}

/// Reads a quoted string at the start of `s`; returns it and the rest.
fn quoted(s: &str) -> Result<(String, &str), String> {
    let q = s.chars().next().ok_or("expected a quoted string")?;
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        if escaped {
            escaped = false;
            continue;
        }
        if c == '\\' && q != '`' {
            escaped = true;
            continue;
        }
        if c == q {
            let raw = &s[..=i];
            let v = unquote_string(raw).unwrap_or_else(|_| raw[1..raw.len() - 1].to_string());
            return Ok((v, &s[i + 1..]));
        }
    }
    Err(format!("unterminated string in {s}"))
}

/// Parses `name{l="v", ...}` (either part optional) at the start of `line`.
fn parse_metric(line: &str) -> Result<(LabelSet, &str), String> {
    let mut labels = LabelSet::new();
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    if name_end > 0 {
        labels.insert("__name__".into(), line[..name_end].to_string());
    }
    let mut rest = &line[name_end..];
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        loop {
            rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let (key, r) = if rest.starts_with(['"', '\'', '`']) {
                quoted(rest)?
            } else {
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .ok_or("unterminated labels")?;
                (rest[..end].to_string(), &rest[end..])
            };
            let r = r.trim_start();
            if let Some(r) = r.strip_prefix('=') {
                let (v, r) = quoted(r.trim_start())?;
                if !v.is_empty() {
                    labels.insert(key, v);
                }
                rest = r;
            } else {
                labels.insert("__name__".into(), key);
                rest = r;
            }
        }
    }
    Ok((labels, rest))
}

fn parse_values(s: &str) -> Result<(Vec<Option<f64>>, bool), String> {
    if s.contains("{{") {
        return Ok((Vec::new(), true));
    }
    Ok((expand_values(s)?, false))
}

enum Expect {
    Scalar(f64),
    Series(Vec<(LabelSet, Vec<Option<f64>>)>),
}

struct Eval {
    expr: String,
    range: Option<(i64, i64, i64)>,
    at: i64,
    fail: bool,
    ordered: bool,
    string: Option<String>,
    range_vector: Option<(i64, i64, i64)>,
    expect: Expect,
    uses_native_histograms: bool,
}

fn parse_eval(line_no: usize, header: &str, block: &[&str]) -> Result<Eval, String> {
    let (cmd, rest) = header.split_once(' ').ok_or("bad eval line")?;
    let _ = line_no;
    let mut ev = Eval {
        expr: String::new(),
        range: None,
        at: 0,
        fail: cmd == "eval_fail",
        ordered: cmd == "eval_ordered",
        string: None,
        range_vector: None,
        expect: Expect::Series(Vec::new()),
        uses_native_histograms: header.contains("{{"),
    };
    let rest = rest.trim();
    if let Some(r) = rest.strip_prefix("instant at ") {
        let r = r.trim();
        let (t, expr) = r
            .split_once(char::is_whitespace)
            .ok_or("missing expression")?;
        ev.at = parse_time_ms(t)?;
        ev.expr = expr.trim().to_string();
    } else if let Some(r) = rest.strip_prefix("range from ") {
        let words: Vec<&str> = r.splitn(6, char::is_whitespace).collect();
        if words.len() < 6 || words[1] != "to" || words[3] != "step" {
            return Err(format!("bad range eval: {header}"));
        }
        ev.range = Some((
            parse_time_ms(words[0])?,
            parse_time_ms(words[2])?,
            parse_time_ms(words[4])?,
        ));
        ev.expr = words[5].trim().to_string();
    } else {
        return Err(format!("bad eval: {header}"));
    }
    let mut series = Vec::new();
    for l in block {
        if l.contains("{{") {
            ev.uses_native_histograms = true;
        }
        if let Some(d) = l.strip_prefix("expect ") {
            let d = d.trim();
            if d.starts_with("fail") {
                ev.fail = true;
            } else if d == "ordered" {
                ev.ordered = true;
            } else if let Some(s) = d.strip_prefix("string ") {
                ev.string = Some(quoted(s.trim())?.0);
            } else if let Some(r) = d.strip_prefix("range vector from ") {
                let w: Vec<&str> = r.split_whitespace().collect();
                if w.len() != 5 {
                    return Err(format!("bad expect range: {l}"));
                }
                ev.range_vector = Some((
                    parse_time_ms(w[0])?,
                    parse_time_ms(w[2])?,
                    parse_time_ms(w[4])?,
                ));
            }
            // warn / info / no_warn / no_info: annotations are not checked.
            continue;
        }
        if let Some(v) = parse_number(l) {
            ev.expect = Expect::Scalar(v);
            continue;
        }
        let (labels, rest) = parse_metric(l)?;
        let (vals, hist) = parse_values(rest)?;
        if hist {
            ev.uses_native_histograms = true;
        }
        series.push((labels, vals));
    }
    if !series.is_empty() {
        ev.expect = Expect::Series(series);
    }
    Ok(ev)
}

const EXPERIMENTAL: &[&str] = &[
    "limitk",
    "limit_ratio",
    "sort_by_label",
    "sort_by_label_desc",
    "info",
    "histogram_count",
    "histogram_sum",
    "histogram_avg",
    "histogram_fraction",
    "histogram_stddev",
    "histogram_stdvar",
    "histogram_quantiles",
];

fn idents(expr: &str) -> HashSet<&str> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| !w.is_empty())
        .collect()
}

fn labels_str(l: &LabelSet) -> String {
    let inner: Vec<String> = l.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

struct Runner {
    store: MemoryStore,
    hist_names: HashSet<String>,
    engine: Engine,
    rt: tokio::runtime::Runtime,
}

/// A matrix's labels and points with values as bits (NaNs told apart).
fn bit_exact(v: &Value) -> Vec<(String, Vec<(i64, u64)>)> {
    match v {
        Value::Matrix(m) => m
            .iter()
            .map(|s| {
                (
                    labels_str(&s.metric),
                    s.points.iter().map(|p| (p.0, p.1.to_bits())).collect(),
                )
            })
            .collect(),
        other => vec![(format!("{other:?}"), Vec::new())],
    }
}

impl Runner {
    fn run_eval(&self, ev: &Eval) -> Outcome {
        if ev.uses_native_histograms {
            return Outcome::Skip("native histograms".into());
        }
        let words = idents(&ev.expr);
        if let Some(w) = EXPERIMENTAL.iter().find(|w| words.contains(**w)) {
            return Outcome::Skip(format!("experimental or native-histogram function {w}"));
        }
        if let Some(n) = words.iter().find(|w| self.hist_names.contains(**w)) {
            return Outcome::Skip(format!("native histogram series {n}"));
        }
        let result = match ev.range {
            None => self
                .rt
                .block_on(self.engine.instant(&self.store, &ev.expr, ev.at)),
            Some((s, e, step)) => {
                let r = self
                    .rt
                    .block_on(self.engine.range(&self.store, &ev.expr, s, e, step));
                // The node-at-a-time evaluation must answer exactly as the
                // step-by-step one.
                let slow = Engine {
                    step_by_step: true,
                    ..self.engine
                };
                let want = self
                    .rt
                    .block_on(slow.range(&self.store, &ev.expr, s, e, step));
                let bits = |r: &Result<vigie_analyzer::promql::QueryResult, _>| match r {
                    Ok(r) => format!("{:?}", bit_exact(&r.value)),
                    Err(e) => format!("error: {e}"),
                };
                if bits(&r) != bits(&want) {
                    return Outcome::Fail(format!(
                        "range evaluation differs from step by step: {} vs {}",
                        bits(&r),
                        bits(&want)
                    ));
                }
                r
            }
        };
        let value = match (result, ev.fail) {
            (Err(_), true) => return Outcome::Pass,
            (Ok(r), true) => {
                return Outcome::Fail(format!("expected an error, got {:?}", r.value));
            }
            (Err(e), false) => return Outcome::Fail(format!("error: {e}")),
            (Ok(r), false) => r.value,
        };
        if let Some(s) = &ev.string {
            return match value {
                Value::String(got) if &got == s => Outcome::Pass,
                other => Outcome::Fail(format!("expected string {s:?}, got {other:?}")),
            };
        }
        match (&ev.expect, value) {
            (Expect::Scalar(want), Value::Scalar(got)) => {
                if almost_equal(*want, got, EPSILON) {
                    Outcome::Pass
                } else {
                    Outcome::Fail(format!("expected scalar {want}, got {got}"))
                }
            }
            (Expect::Scalar(want), other) => {
                Outcome::Fail(format!("expected scalar {want}, got {other:?}"))
            }
            (Expect::Series(want), Value::Vector(got)) => {
                if ev.range.is_some() {
                    return Outcome::Fail("range query returned a vector".into());
                }
                if got.len() != want.len() {
                    return Outcome::Fail(format!(
                        "expected {} samples, got {}: {}",
                        want.len(),
                        got.len(),
                        got.iter()
                            .map(|s| format!("{} {}", labels_str(&s.metric), s.v))
                            .collect::<Vec<_>>()
                            .join("; ")
                    ));
                }
                for (i, s) in got.iter().enumerate() {
                    let Some(pos) = want.iter().position(|(l, _)| *l == s.metric) else {
                        return Outcome::Fail(format!(
                            "unexpected sample {} {}",
                            labels_str(&s.metric),
                            s.v
                        ));
                    };
                    if ev.ordered && pos != i {
                        return Outcome::Fail(format!(
                            "sample {} at position {i}, expected at {pos}",
                            labels_str(&s.metric)
                        ));
                    }
                    let w = want[pos].1.first().copied().flatten();
                    match w {
                        Some(w) if almost_equal(w, s.v, EPSILON) => {}
                        _ => {
                            return Outcome::Fail(format!(
                                "{}: expected {w:?}, got {}",
                                labels_str(&s.metric),
                                s.v
                            ));
                        }
                    }
                }
                Outcome::Pass
            }
            (Expect::Series(want), Value::Matrix(got)) => {
                let (start, step) = match (ev.range, ev.range_vector) {
                    (Some((s, _, step)), _) => (s, step),
                    (None, Some((s, _, step))) => (s, step),
                    (None, None) => {
                        if want.is_empty() && got.is_empty() {
                            return Outcome::Pass;
                        }
                        return Outcome::Fail("instant query returned a matrix".into());
                    }
                };
                if got.len() != want.len() {
                    return Outcome::Fail(format!(
                        "expected {} series, got {}: {}",
                        want.len(),
                        got.len(),
                        got.iter()
                            .map(|s| format!("{} {:?}", labels_str(&s.metric), s.points))
                            .collect::<Vec<_>>()
                            .join("; ")
                    ));
                }
                for s in &got {
                    let Some((_, vals)) = want.iter().find(|(l, _)| *l == s.metric) else {
                        return Outcome::Fail(format!(
                            "unexpected series {} {:?}",
                            labels_str(&s.metric),
                            s.points
                        ));
                    };
                    let expected: Vec<(i64, f64)> = vals
                        .iter()
                        .enumerate()
                        .filter_map(|(i, v)| v.map(|v| (start + i as i64 * step, v)))
                        .collect();
                    let same = expected.len() == s.points.len()
                        && expected
                            .iter()
                            .zip(&s.points)
                            .all(|(a, b)| a.0 == b.0 && almost_equal(a.1, b.1, EPSILON));
                    if !same {
                        return Outcome::Fail(format!(
                            "{}: expected {expected:?}, got {:?}",
                            labels_str(&s.metric),
                            s.points
                        ));
                    }
                }
                Outcome::Pass
            }
            (Expect::Series(want), other) => {
                Outcome::Fail(format!("expected {} series, got {other:?}", want.len()))
            }
        }
    }

    fn load(&mut self, interval: i64, block: &[&str], nhcb: bool) -> Result<(), String> {
        for l in block {
            let (labels, rest) = parse_metric(l)?;
            let (vals, hist) = parse_values(rest)?;
            if hist || nhcb {
                if let Some(n) = labels.get("__name__") {
                    self.hist_names.insert(n.clone());
                }
                if hist {
                    continue;
                }
            }
            for (i, v) in vals.into_iter().enumerate() {
                if let Some(v) = v {
                    self.store.add(labels.clone(), i as i64 * interval, v);
                }
            }
        }
        Ok(())
    }
}

#[derive(Default)]
struct Tally {
    pass: usize,
    fail: usize,
    skip: usize,
}

#[test]
fn promqltest_conformance() {
    let dir = data_dir();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!(
            "SKIPPED: no promqltest scripts at {} (set VIGIE_SHARED_DATA)",
            dir.display()
        );
        return;
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    let verbose = std::env::var("VIGIE_PROMQLTEST_VERBOSE").is_ok_and(|v| v == "1");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut per_file: BTreeMap<String, Tally> = BTreeMap::new();
    let mut skip_reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut runner = Runner {
        store: MemoryStore::new(),
        hist_names: HashSet::new(),
        engine: Engine::default(),
        rt,
    };
    for file in &files {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = std::fs::read_to_string(file).expect("read script");
        // As Prometheus does: trim every line, comments become blank lines.
        let lines: Vec<&str> = text
            .lines()
            .map(|l| {
                let l = l.trim();
                if l.starts_with('#') { "" } else { l }
            })
            .collect();
        runner.store.clear();
        runner.hist_names.clear();
        let tally = per_file.entry(name.clone()).or_default();
        let mut i = 0;
        while i < lines.len() {
            let line = lines[i];
            let start = i;
            i += 1;
            if line.is_empty() {
                continue;
            }
            let mut block = Vec::new();
            while line != "clear" && i < lines.len() && !lines[i].is_empty() {
                block.push(lines[i]);
                i += 1;
            }
            let word = line.split_whitespace().next().unwrap_or("");
            match word {
                "clear" => {
                    runner.store.clear();
                    runner.hist_names.clear();
                }
                "load" | "load_with_nhcb" => {
                    let interval = line
                        .split_whitespace()
                        .nth(1)
                        .ok_or_else(|| "missing interval".to_string())
                        .and_then(parse_time_ms);
                    let res =
                        interval.and_then(|iv| runner.load(iv, &block, word == "load_with_nhcb"));
                    if let Err(e) = res {
                        panic!("{name}:{}: bad load: {e}", start + 1);
                    }
                }
                w if w.starts_with("eval") => {
                    let outcome = match parse_eval(start + 1, line, &block) {
                        Ok(ev) => runner.run_eval(&ev),
                        Err(e) => Outcome::Fail(format!("cannot parse statement: {e}")),
                    };
                    match outcome {
                        Outcome::Pass => tally.pass += 1,
                        Outcome::Fail(why) => {
                            tally.fail += 1;
                            if verbose {
                                eprintln!("FAIL {name}:{}: {line}\n     {why}", start + 1);
                            }
                        }
                        Outcome::Skip(why) => {
                            tally.skip += 1;
                            *skip_reasons.entry(why).or_default() += 1;
                        }
                    }
                }
                other => panic!("{name}:{}: unknown command {other}", start + 1),
            }
        }
    }
    let (mut pass, mut fail, mut skip) = (0, 0, 0);
    println!(
        "{:<26} {:>6} {:>6} {:>7}",
        "file", "passed", "failed", "skipped"
    );
    for (name, t) in &per_file {
        println!("{name:<26} {:>6} {:>6} {:>7}", t.pass, t.fail, t.skip);
        pass += t.pass;
        fail += t.fail;
        skip += t.skip;
    }
    let rate = 100.0 * pass as f64 / (pass + fail).max(1) as f64;
    println!("{:<26} {pass:>6} {fail:>6} {skip:>7}", "total");
    println!("pass rate (of non-skipped): {rate:.1}% (floor {FLOOR_PERCENT}%)");
    println!("skipped by reason:");
    let mut reasons: Vec<_> = skip_reasons.into_iter().collect();
    reasons.sort_by_key(|r| std::cmp::Reverse(r.1));
    for (why, n) in reasons {
        println!("  {n:>4}  {why}");
    }
    assert!(
        rate >= FLOOR_PERCENT,
        "promqltest pass rate {rate:.1}% fell below the floor {FLOOR_PERCENT}%"
    );
}

#[test]
fn expands_series_notation() {
    assert_eq!(
        expand_values("1+2x3").expect("ok"),
        vec![Some(1.0), Some(3.0), Some(5.0), Some(7.0)]
    );
    assert_eq!(
        expand_values("-1-1x2").expect("ok"),
        vec![Some(-1.0), Some(-2.0), Some(-3.0)]
    );
    assert_eq!(expand_values("_x2").expect("ok"), vec![None, None]);
    assert_eq!(
        expand_values("5x1").expect("ok"),
        vec![Some(5.0), Some(5.0)]
    );
    assert_eq!(
        expand_values("1e3+1e3x1").expect("ok"),
        vec![Some(1000.0), Some(2000.0)]
    );
    let (l, rest) = parse_metric(r#"foo{a="b", c="d\"e"} 1 2"#).expect("metric");
    assert_eq!(l.get("c").map(String::as_str), Some("d\"e"));
    assert_eq!(rest.trim(), "1 2");
}
