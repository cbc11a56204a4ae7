//! Aggregation operators (`sum by (job) (...)` and friends).

use std::collections::HashMap;

use promql_parser::label::Labels as ParserLabels;
use promql_parser::parser::{AggregateExpr, LabelModifier};

use super::eval::Evaluator;
use super::functions::{kahan_inc, mean, quantile, valid_utf8_label_name};
use super::value::{LabelSet, NAME, Sample, Value, bad, exec, format_value};
use crate::AnalyzerError;

/// The labels an aggregation groups by.
pub(crate) fn group_key(metric: &LabelSet, modifier: &Option<LabelModifier>) -> LabelSet {
    match modifier {
        None => LabelSet::new(),
        Some(LabelModifier::Include(ParserLabels { labels })) => metric
            .iter()
            .filter(|(k, _)| labels.iter().any(|l| l == *k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        Some(LabelModifier::Exclude(ParserLabels { labels })) => metric
            .iter()
            .filter(|(k, _)| k.as_str() != NAME && !labels.iter().any(|l| l == *k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

fn groups(input: Vec<Sample>, modifier: &Option<LabelModifier>) -> Vec<(LabelSet, Vec<Sample>)> {
    let mut index: HashMap<LabelSet, usize> = HashMap::new();
    let mut out: Vec<(LabelSet, Vec<Sample>)> = Vec::new();
    for s in input {
        let key = group_key(&s.metric, modifier);
        // Cloned only for a new group, not for every member.
        let i = match index.get(&key) {
            Some(&i) => i,
            None => {
                index.insert(key.clone(), out.len());
                out.push((key, Vec::new()));
                out.len() - 1
            }
        };
        out[i].1.push(s);
    }
    out
}

/// Orders for topk (descending) and bottomk (ascending); NaN always last.
pub(crate) fn rank_order(a: f64, b: f64, top: bool) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Equal,
        (true, false) => Greater,
        (false, true) => Less,
        _ if top => b.total_cmp(&a),
        _ => a.total_cmp(&b),
    }
}

/// Evaluates an aggregation at `t`.
pub(crate) fn aggregate(ev: &Evaluator, a: &AggregateExpr, t: i64) -> Result<Value, AnalyzerError> {
    let op = a.op.to_string();
    let param = |what: &str| {
        a.param
            .as_deref()
            .ok_or_else(|| bad(format!("{op}: missing {what} parameter")))
    };
    match op.as_str() {
        "limitk" | "limit_ratio" => {
            return Err(bad(format!("unsupported aggregation: {op} (experimental)")));
        }
        "topk" | "bottomk" => {
            let k = ev.eval_scalar(param("k")?, t)?;
            if k.is_nan() {
                return Err(exec("Parameter value is NaN"));
            }
            let input = ev.eval_vector(&a.expr, t)?;
            let k = k as i64;
            if k < 1 {
                return Ok(Value::Vector(Vec::new()));
            }
            let top = op == "topk";
            let mut out = Vec::new();
            for (_, mut members) in groups(input, &a.modifier) {
                members.sort_by(|x, y| rank_order(x.v, y.v, top));
                members.truncate(usize::try_from(k).unwrap_or(usize::MAX));
                out.extend(members.into_iter().map(|s| Sample { t, ..s }));
            }
            return Ok(Value::Vector(out));
        }
        "count_values" => {
            let label = ev.eval_string(param("label")?, t)?;
            if !valid_utf8_label_name(&label) {
                return Err(bad(format!("invalid label name {label:?}")));
            }
            let input = ev.eval_vector(&a.expr, t)?;
            let mut index: HashMap<LabelSet, usize> = HashMap::new();
            let mut out: Vec<Sample> = Vec::new();
            for s in input {
                let mut key = group_key(&s.metric, &a.modifier);
                key.insert(label.clone(), format_value(s.v));
                let i = *index.entry(key.clone()).or_insert_with(|| {
                    out.push(Sample {
                        metric: key,
                        t,
                        v: 0.0,
                        drop_name: false,
                    });
                    out.len() - 1
                });
                out[i].v += 1.0;
            }
            return Ok(Value::Vector(out));
        }
        _ => {}
    }
    let q = if op == "quantile" {
        ev.eval_scalar(param("quantile")?, t)?
    } else {
        0.0
    };
    let input = ev.eval_vector(&a.expr, t)?;
    let mut out = Vec::new();
    for (metric, members) in groups(input, &a.modifier) {
        let drop_name = members.iter().any(|s| s.drop_name);
        let vals: Vec<f64> = members.iter().map(|s| s.v).collect();
        let v = fold(op.as_str(), &vals, q)?;
        out.push(Sample {
            metric,
            t,
            v,
            drop_name,
        });
    }
    Ok(Value::Vector(out))
}

/// The value of aggregation `op` (`sum`, `avg`, ..., `quantile` with `q`)
/// over a group's values, in the group's order (not empty).
pub(crate) fn fold(op: &str, vals: &[f64], q: f64) -> Result<f64, AnalyzerError> {
    Ok(match op {
        "sum" => {
            let (mut s, mut c) = (0.0, 0.0);
            for &v in vals {
                (s, c) = kahan_inc(v, s, c);
            }
            if s.is_infinite() { s } else { s + c }
        }
        "avg" => mean(vals),
        "count" => vals.len() as f64,
        "group" => 1.0,
        "min" | "max" => {
            let mut best = vals[0];
            for &v in &vals[1..] {
                let better = if op == "max" { v > best } else { v < best };
                if better || best.is_nan() {
                    best = v;
                }
            }
            best
        }
        "stddev" | "stdvar" => {
            let (mut count, mut m, mut acc) = (1.0, vals[0], 0.0);
            for &v in &vals[1..] {
                count += 1.0;
                let delta = v - m;
                m += delta / count;
                acc += delta * (v - m);
            }
            let var = acc / count;
            if vals[0].is_infinite() || vals.iter().any(|v| v.is_nan() || v.is_infinite()) {
                f64::NAN
            } else if op == "stddev" {
                var.sqrt()
            } else {
                var
            }
        }
        "quantile" => quantile(q, &mut vals.to_vec()),
        other => return Err(bad(format!("unsupported aggregation: {other}"))),
    })
}
