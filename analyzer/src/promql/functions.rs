//! PromQL functions.

use chrono::{DateTime, Datelike, Timelike, Utc};
use promql_parser::label::MatchOp;
use promql_parser::parser::{Call, Expr};
use regex::Regex;

use super::eval::{Evaluator, RangeArg};
use super::value::{LabelSet, NAME, Sample, Value, bad, exec};
use crate::AnalyzerError;

/// Neumaier-compensated summation step: returns the new sum and compensation.
pub(crate) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Compensated sum.
pub(crate) fn kahan_sum(values: impl IntoIterator<Item = f64>) -> f64 {
    let (mut s, mut c) = (0.0, 0.0);
    for v in values {
        (s, c) = kahan_inc(v, s, c);
    }
    if s.is_infinite() { s } else { s + c }
}

/// Mean as Prometheus computes it: direct compensated sum, switching to an
/// incremental mean if the sum would overflow.
pub(crate) fn mean(values: &[f64]) -> f64 {
    let Some(&first) = values.first() else {
        return f64::NAN;
    };
    let (mut sum, mut c, mut m) = (first, 0.0, 0.0);
    let mut incremental = false;
    let mut count = 1.0;
    for (i, &v) in values[1..].iter().enumerate() {
        count = (i + 2) as f64;
        if !incremental {
            let (ns, nc) = kahan_inc(v, sum, c);
            if !ns.is_infinite() {
                (sum, c) = (ns, nc);
                continue;
            }
            incremental = true;
            m = sum / (count - 1.0);
            c /= count - 1.0;
        }
        let q = (count - 1.0) / count;
        (m, c) = kahan_inc(v / count, q * m, q * c);
    }
    if incremental {
        m + c
    } else {
        sum / count + c / count
    }
}

/// Population variance (Welford with compensation).
pub(crate) fn variance(values: &[f64]) -> f64 {
    let (mut count, mut m, mut cm, mut aux, mut caux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &v in values {
        count += 1.0;
        let delta = v - (m + cm);
        (m, cm) = kahan_inc(delta / count, m, cm);
        (aux, caux) = kahan_inc(delta * (v - (m + cm)), aux, caux);
    }
    (aux + caux) / count
}

/// Quantile of values (NaN sorts first), as Prometheus' `quantile`.
pub(crate) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.total_cmp(b),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

fn linear_regression(points: &[(i64, f64)], intercept_t: i64) -> (f64, f64) {
    let (mut n, mut sx, mut cx, mut sy, mut cy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sxy, mut cxy, mut sx2, mut cx2) = (0.0, 0.0, 0.0, 0.0);
    let init_y = points[0].1;
    let mut const_y = true;
    for (i, &(t, v)) in points.iter().enumerate() {
        if const_y && i > 0 && v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (t - intercept_t) as f64 / 1e3;
        (sx, cx) = kahan_inc(x, sx, cx);
        (sy, cy) = kahan_inc(v, sy, cy);
        (sxy, cxy) = kahan_inc(x * v, sxy, cxy);
        (sx2, cx2) = kahan_inc(x * x, sx2, cx2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    let (sx, sy, sxy, sx2) = (sx + cx, sy + cy, sxy + cxy, sx2 + cx2);
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    (slope, sy / n - slope * sx / n)
}

fn extrapolated_rate(
    arg_start: i64,
    arg_end: i64,
    pts: &[(i64, f64)],
    counter: bool,
    rate: bool,
) -> Option<f64> {
    extrapolated(arg_start, arg_end, pts, counter, rate, true)
}

/// `rate` (or `increase` when `rate` is false) of counter points known to
/// hold no reset (no value below the one before): the same value as
/// [`range_value`] gives, without scanning for resets.
pub(crate) fn counter_rate_without_resets(
    arg_start: i64,
    arg_end: i64,
    pts: &[(i64, f64)],
    rate: bool,
) -> Option<f64> {
    extrapolated(arg_start, arg_end, pts, true, rate, false)
}

fn extrapolated(
    arg_start: i64,
    arg_end: i64,
    pts: &[(i64, f64)],
    counter: bool,
    rate: bool,
    scan_resets: bool,
) -> Option<f64> {
    if pts.len() < 2 {
        return None;
    }
    let n1 = pts.len() - 1;
    let (first_t, first_v) = pts[0];
    let last_t = pts[n1].0;
    let mut result = pts[n1].1 - first_v;
    if counter && scan_resets {
        let mut prev = first_v;
        for &(_, v) in &pts[1..] {
            if v < prev {
                result += prev;
            }
            prev = v;
        }
    }
    let mut to_start = (first_t - arg_start) as f64 / 1000.0;
    let mut to_end = (arg_end - last_t) as f64 / 1000.0;
    let sampled = (last_t - first_t) as f64 / 1000.0;
    let avg = sampled / n1 as f64;
    let threshold = avg * 1.1;
    if to_start >= threshold {
        to_start = avg / 2.0;
    }
    if counter && result > 0.0 && first_v >= 0.0 {
        let to_zero = sampled * (first_v / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = avg / 2.0;
    }
    let mut factor = (sampled + to_start + to_end) / sampled;
    if rate {
        factor /= (arg_end - arg_start) as f64 / 1000.0;
    }
    Some(result * factor)
}

fn instant_value(pts: &[(i64, f64)], rate: bool) -> Option<f64> {
    if pts.len() < 2 {
        return None;
    }
    let (lt, lv) = pts[pts.len() - 1];
    let (pt, pv) = pts[pts.len() - 2];
    let mut r = lv - pv;
    if rate && lv < pv {
        r = lv;
    }
    let dt = lt - pt;
    if dt == 0 {
        return None;
    }
    if rate {
        r /= dt as f64 / 1000.0;
    }
    Some(r)
}

fn double_exp_smoothing(pts: &[(i64, f64)], sf: f64, tf: f64) -> Option<f64> {
    if pts.len() < 2 {
        return None;
    }
    let mut s0 = 0.0;
    let mut s1 = pts[0].1;
    let mut b = pts[1].1 - pts[0].1;
    for (i, &(_, v)) in pts.iter().enumerate().skip(1) {
        let x = sf * v;
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        (s0, s1) = (s1, x + y);
    }
    Some(s1)
}

fn values(pts: &[(i64, f64)]) -> Vec<f64> {
    pts.iter().map(|p| p.1).collect()
}

/// Labels `absent()` gives its result: the selector's equality matchers.
fn absent_labels(expr: &Expr) -> LabelSet {
    let vs = match expr {
        Expr::Paren(p) => return absent_labels(&p.expr),
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return LabelSet::new(),
    };
    let mut out = LabelSet::new();
    let mut has = std::collections::HashSet::new();
    for m in &vs.matchers.matchers {
        if m.name == NAME {
            continue;
        }
        if m.op == MatchOp::Equal && !has.contains(&m.name) {
            out.insert(m.name.clone(), m.value.clone());
            has.insert(m.name.clone());
        } else {
            out.remove(&m.name);
        }
    }
    out.retain(|_, v| !v.is_empty());
    out
}

/// True for the functions over a range vector (`rate`, `*_over_time`, ...).
pub(crate) fn is_range_function(name: &str) -> bool {
    matches!(
        name,
        "rate"
            | "irate"
            | "increase"
            | "delta"
            | "idelta"
            | "deriv"
            | "predict_linear"
            | "holt_winters"
            | "double_exponential_smoothing"
            | "resets"
            | "changes"
            | "avg_over_time"
            | "min_over_time"
            | "max_over_time"
            | "sum_over_time"
            | "count_over_time"
            | "last_over_time"
            | "first_over_time"
            | "present_over_time"
            | "stddev_over_time"
            | "stdvar_over_time"
            | "quantile_over_time"
            | "mad_over_time"
            | "absent_over_time"
            | "ts_of_min_over_time"
            | "ts_of_max_over_time"
            | "ts_of_last_over_time"
            | "ts_of_first_over_time"
    )
}

fn range_function(
    ev: &Evaluator,
    name: &str,
    args: &[Box<Expr>],
    t: i64,
) -> Result<Option<Value>, AnalyzerError> {
    let matrix_idx = usize::from(name == "quantile_over_time");
    let is_range = is_range_function(name);
    if !is_range {
        return Ok(None);
    }
    let arg_expr = args
        .get(matrix_idx)
        .ok_or_else(|| bad(format!("{name}: missing range vector argument")))?;
    let scalar_arg = |i: usize| -> Result<f64, AnalyzerError> {
        let e = args
            .get(i)
            .ok_or_else(|| bad(format!("{name}: missing argument {}", i + 1)))?;
        ev.eval_scalar(e, t)
    };
    let RangeArg { series, start, end } = ev.range_arg(arg_expr, t)?;
    if name == "absent_over_time" {
        let out = if series.is_empty() {
            vec![Sample {
                metric: absent_labels(arg_expr),
                t,
                v: 1.0,
                drop_name: false,
            }]
        } else {
            Vec::new()
        };
        return Ok(Some(Value::Vector(out)));
    }
    let q = if name == "quantile_over_time" {
        scalar_arg(0)?
    } else {
        0.0
    };
    let duration = if name == "predict_linear" {
        scalar_arg(1)?
    } else {
        0.0
    };
    let (sf, tf) = if matches!(name, "holt_winters" | "double_exponential_smoothing") {
        let (sf, tf) = (scalar_arg(1)?, scalar_arg(2)?);
        if !(sf > 0.0 && sf < 1.0) {
            return Err(exec(format!(
                "invalid smoothing factor. Expected: 0 < sf < 1, got: {sf}"
            )));
        }
        if !(tf > 0.0 && tf < 1.0) {
            return Err(exec(format!(
                "invalid trend factor. Expected: 0 < tf < 1, got: {tf}"
            )));
        }
        (sf, tf)
    } else {
        (0.0, 0.0)
    };
    let params = RangeParams {
        q,
        duration,
        sf,
        tf,
    };
    let keeps_name = keeps_name(name);
    let mut out = Vec::with_capacity(series.len());
    for s in series {
        let v = range_value(name, &s.points, start, end, t, &params);
        if let Some(v) = v {
            out.push(Sample {
                metric: s.metric,
                t,
                v,
                drop_name: s.drop_name || !keeps_name,
            });
        }
    }
    Ok(Some(Value::Vector(out)))
}

/// True for the range functions whose result keeps `__name__`.
pub(crate) fn keeps_name(name: &str) -> bool {
    matches!(name, "last_over_time" | "first_over_time")
}

/// The scalar arguments of a range function (0 where it has none).
pub(crate) struct RangeParams {
    /// `quantile_over_time`'s quantile.
    pub q: f64,
    /// `predict_linear`'s duration in seconds.
    pub duration: f64,
    /// `double_exponential_smoothing`'s smoothing factor.
    pub sf: f64,
    /// `double_exponential_smoothing`'s trend factor.
    pub tf: f64,
}

/// The value of range function `name` over the non-empty, stale-free
/// points `p` of one series in the window `(start, end]`, evaluated at
/// `t`; `None` when it has none. `absent_over_time` is not handled here.
pub(crate) fn range_value(
    name: &str,
    p: &[(i64, f64)],
    start: i64,
    end: i64,
    t: i64,
    params: &RangeParams,
) -> Option<f64> {
    let &RangeParams {
        q,
        duration,
        sf,
        tf,
    } = params;
    match name {
        "rate" => extrapolated_rate(start, end, p, true, true),
        "increase" => extrapolated_rate(start, end, p, true, false),
        "delta" => extrapolated_rate(start, end, p, false, false),
        "irate" => instant_value(p, true),
        "idelta" => instant_value(p, false),
        "deriv" => (p.len() >= 2).then(|| linear_regression(p, p[0].0).0),
        "predict_linear" => (p.len() >= 2).then(|| {
            let (slope, intercept) = linear_regression(p, t);
            slope * duration + intercept
        }),
        "holt_winters" | "double_exponential_smoothing" => double_exp_smoothing(p, sf, tf),
        "resets" => Some(p.windows(2).filter(|w| w[1].1 < w[0].1).count() as f64),
        "changes" => Some(
            p.windows(2)
                .filter(|w| !(w[0].1 == w[1].1 || (w[0].1.is_nan() && w[1].1.is_nan())))
                .count() as f64,
        ),
        "avg_over_time" => Some(mean(&values(p))),
        "sum_over_time" => Some(kahan_sum(p.iter().map(|x| x.1))),
        "count_over_time" => Some(p.len() as f64),
        "present_over_time" => Some(1.0),
        "last_over_time" => p.last().map(|x| x.1),
        "first_over_time" => p.first().map(|x| x.1),
        "ts_of_last_over_time" => p.last().map(|x| x.0 as f64 / 1000.0),
        "ts_of_first_over_time" => p.first().map(|x| x.0 as f64 / 1000.0),
        "min_over_time" | "max_over_time" | "ts_of_min_over_time" | "ts_of_max_over_time" => {
            let want_max = name.contains("max");
            let mut best = p[0];
            for &x in &p[1..] {
                let better = if want_max {
                    x.1 > best.1 || best.1.is_nan()
                } else {
                    x.1 < best.1 || best.1.is_nan()
                };
                if better || (name.starts_with("ts_of") && x.1 == best.1) {
                    best = x;
                }
            }
            Some(if name.starts_with("ts_of") {
                best.0 as f64 / 1000.0
            } else {
                best.1
            })
        }
        "stddev_over_time" => Some(variance(&values(p)).sqrt()),
        "stdvar_over_time" => Some(variance(&values(p))),
        "quantile_over_time" => Some(quantile(q, &mut values(p))),
        "mad_over_time" if p.iter().any(|x| x.1.is_nan()) => Some(f64::NAN),
        "mad_over_time" => {
            let mut vs = values(p);
            let median = quantile(0.5, &mut vs);
            let mut dev: Vec<f64> = vs.iter().map(|v| (v - median).abs()).collect();
            Some(quantile(0.5, &mut dev))
        }
        _ => None,
    }
}

fn map_values(input: Vec<Sample>, t: i64, f: impl Fn(f64) -> f64) -> Value {
    Value::Vector(
        input
            .into_iter()
            .map(|s| Sample {
                v: f(s.v),
                t,
                drop_name: true,
                ..s
            })
            .collect(),
    )
}

fn check_unique(v: &[Sample]) -> Result<(), AnalyzerError> {
    let mut seen = std::collections::HashSet::with_capacity(v.len());
    for s in v {
        if !seen.insert(&s.metric) {
            return Err(exec("vector cannot contain metrics with the same labelset"));
        }
    }
    Ok(())
}

/// True for a label name Prometheus 3 accepts (any non-empty valid UTF-8).
pub(crate) fn valid_utf8_label_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('\u{FFFD}')
}

fn date_fn(name: &str, secs: f64) -> Option<f64> {
    if !secs.is_finite() {
        return None;
    }
    let d: DateTime<Utc> = DateTime::from_timestamp(secs.floor() as i64, 0)?;
    Some(match name {
        "minute" => f64::from(d.minute()),
        "hour" => f64::from(d.hour()),
        "day_of_week" => f64::from(d.weekday().num_days_from_sunday()),
        "day_of_month" => f64::from(d.day()),
        "day_of_year" => f64::from(d.ordinal()),
        "month" => f64::from(d.month()),
        "year" => f64::from(d.year()),
        _ => {
            // days_in_month
            let (y, m) = (d.year(), d.month());
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            let first = chrono::NaiveDate::from_ymd_opt(y, m, 1)?;
            let next = chrono::NaiveDate::from_ymd_opt(ny, nm, 1)?;
            (next - first).num_days() as f64
        }
    })
}

/// Bucket quantile over classic histogram buckets `(upper bound, count)`.
pub(crate) fn bucket_quantile(q: f64, buckets: &mut [(f64, f64)]) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    match buckets.last() {
        Some(b) if b.0 == f64::INFINITY => {}
        _ => return f64::NAN,
    }
    // Coalesce equal bounds.
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for &(ub, c) in buckets.iter() {
        match merged.last_mut() {
            Some(last) if last.0 == ub => last.1 += c,
            _ => merged.push((ub, c)),
        }
    }
    // Monotonicity, ignoring tiny float differences.
    let mut prev = merged[0].1;
    for b in merged.iter_mut().skip(1) {
        let curr = b.1;
        if curr == prev {
            continue;
        }
        if almost_equal(prev, curr, 1e-12) || curr < prev {
            b.1 = prev;
            continue;
        }
        prev = curr;
    }
    if merged.len() < 2 {
        return f64::NAN;
    }
    let observations = merged[merged.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let b = merged[..merged.len() - 1].partition_point(|x| x.1 < rank);
    if b == merged.len() - 1 {
        return merged[merged.len() - 2].0;
    }
    if b == 0 && merged[0].0 <= 0.0 {
        return merged[0].0;
    }
    let (mut start, end, mut count) = (0.0, merged[b].0, merged[b].1);
    if b > 0 {
        start = merged[b - 1].0;
        count -= merged[b - 1].1;
        rank -= merged[b - 1].1;
    }
    start + (end - start) * (rank / count)
}

/// Relative float comparison as Prometheus' `almost.Equal`.
pub fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < epsilon * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < epsilon
}

/// A classic histogram bucket's upper bound (its `le` label) and the
/// labels of its histogram (without `le`); `None` for other series.
pub(crate) fn le_bucket(metric: &LabelSet) -> Option<(f64, LabelSet)> {
    let ub = metric.get("le")?.trim().parse::<f64>().ok()?;
    let mut key = metric.clone();
    key.remove("le");
    Some((ub, key))
}

fn histogram_quantile(q: f64, input: Vec<Sample>, t: i64) -> Vec<Sample> {
    let mut index: std::collections::HashMap<LabelSet, usize> = std::collections::HashMap::new();
    let mut groups: Vec<(LabelSet, Vec<(f64, f64)>)> = Vec::new();
    for s in input {
        let Some((ub, key)) = le_bucket(&s.metric) else {
            continue;
        };
        let i = *index.entry(key.clone()).or_insert_with(|| {
            groups.push((key, Vec::new()));
            groups.len() - 1
        });
        groups[i].1.push((ub, s.v));
    }
    groups
        .into_iter()
        .map(|(metric, mut buckets)| Sample {
            metric,
            t,
            v: bucket_quantile(q, &mut buckets),
            drop_name: true,
        })
        .collect()
}

fn sort_by_value(mut v: Vec<Sample>, desc: bool, t: i64) -> Vec<Sample> {
    v.sort_by(|a, b| match (a.v.is_nan(), b.v.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ if desc => b.v.total_cmp(&a.v),
        _ => a.v.total_cmp(&b.v),
    });
    for s in &mut v {
        s.t = t;
    }
    v
}

/// Evaluates a function call at `t`.
pub(crate) fn call(ev: &Evaluator, c: &Call, t: i64) -> Result<Value, AnalyzerError> {
    let name = c.func.name;
    let args = &c.args.args;
    if super::predictive::FUNCTIONS.contains(&name) {
        return super::predictive::call(ev, c, t);
    }
    if let Some(v) = range_function(ev, name, args, t)? {
        return Ok(v);
    }
    let arg = |i: usize| -> Result<&Expr, AnalyzerError> {
        args.get(i)
            .map(|b| b.as_ref())
            .ok_or_else(|| bad(format!("{name}: missing argument {}", i + 1)))
    };
    let vector = |i: usize| ev.eval_vector(arg(i)?, t);
    let scalar = |i: usize| ev.eval_scalar(arg(i)?, t);
    let string = |i: usize| ev.eval_string(arg(i)?, t);
    let unary =
        |f: fn(f64) -> f64| -> Result<Value, AnalyzerError> { Ok(map_values(vector(0)?, t, f)) };
    match name {
        "time" => Ok(Value::Scalar(t as f64 / 1000.0)),
        "pi" => Ok(Value::Scalar(std::f64::consts::PI)),
        "start" => Ok(Value::Scalar(ev.start as f64 / 1000.0)),
        "end" => Ok(Value::Scalar(ev.end as f64 / 1000.0)),
        "range" => Ok(Value::Scalar((ev.end - ev.start) as f64 / 1000.0)),
        "step" => Ok(Value::Scalar(ev.step as f64 / 1000.0)),
        "min_of" | "max_of" => {
            let (a, b) = (scalar(0)?, scalar(1)?);
            // Go's math.Min/Max: NaN wins.
            Ok(Value::Scalar(if a.is_nan() || b.is_nan() {
                f64::NAN
            } else if name == "min_of" {
                a.min(b)
            } else {
                a.max(b)
            }))
        }
        "vector" => Ok(Value::Vector(vec![Sample {
            metric: LabelSet::new(),
            t,
            v: scalar(0)?,
            drop_name: false,
        }])),
        "scalar" => {
            let v = vector(0)?;
            Ok(Value::Scalar(if v.len() == 1 { v[0].v } else { f64::NAN }))
        }
        "timestamp" => {
            let mut inner = arg(0)?;
            while let Expr::Paren(p) = inner {
                inner = &p.expr;
            }
            let own_time = matches!(inner, Expr::VectorSelector(_));
            let v = vector(0)?;
            Ok(Value::Vector(
                v.into_iter()
                    .map(|s| Sample {
                        v: if own_time { s.t } else { t } as f64 / 1000.0,
                        t,
                        drop_name: true,
                        ..s
                    })
                    .collect(),
            ))
        }
        "abs" => unary(f64::abs),
        "ceil" => unary(f64::ceil),
        "floor" => unary(f64::floor),
        "exp" => unary(f64::exp),
        "ln" => unary(f64::ln),
        "log2" => unary(f64::log2),
        "log10" => unary(f64::log10),
        "sqrt" => unary(f64::sqrt),
        "sin" => unary(f64::sin),
        "cos" => unary(f64::cos),
        "tan" => unary(f64::tan),
        "asin" => unary(f64::asin),
        "acos" => unary(f64::acos),
        "atan" => unary(f64::atan),
        "sinh" => unary(f64::sinh),
        "cosh" => unary(f64::cosh),
        "tanh" => unary(f64::tanh),
        "asinh" => unary(f64::asinh),
        "acosh" => unary(f64::acosh),
        "atanh" => unary(f64::atanh),
        "deg" => unary(f64::to_degrees),
        "rad" => unary(f64::to_radians),
        "sgn" => unary(|v| {
            if v > 0.0 {
                1.0
            } else if v < 0.0 {
                -1.0
            } else {
                v
            }
        }),
        "round" => {
            let to_nearest = if args.len() > 1 { scalar(1)? } else { 1.0 };
            let inv = 1.0 / to_nearest;
            Ok(map_values(vector(0)?, t, |v| (v * inv + 0.5).floor() / inv))
        }
        "clamp" => {
            let (lo, hi) = (scalar(1)?, scalar(2)?);
            if hi < lo {
                return Ok(Value::Vector(Vec::new()));
            }
            Ok(map_values(vector(0)?, t, |v| lo.max(hi.min(v))))
        }
        "clamp_min" => {
            let lo = scalar(1)?;
            Ok(map_values(vector(0)?, t, |v| lo.max(v)))
        }
        "clamp_max" => {
            let hi = scalar(1)?;
            Ok(map_values(vector(0)?, t, |v| hi.min(v)))
        }
        "minute" | "hour" | "day_of_week" | "day_of_month" | "day_of_year" | "days_in_month"
        | "month" | "year" => {
            let input = if args.is_empty() {
                vec![Sample {
                    metric: LabelSet::new(),
                    t,
                    v: t as f64 / 1000.0,
                    drop_name: false,
                }]
            } else {
                vector(0)?
            };
            Ok(Value::Vector(
                input
                    .into_iter()
                    .filter_map(|s| {
                        date_fn(name, s.v).map(|v| Sample {
                            v,
                            t,
                            drop_name: true,
                            ..s
                        })
                    })
                    .collect(),
            ))
        }
        "label_replace" => {
            let input = vector(0)?;
            let (dst, repl, src, re) = (string(1)?, string(2)?, string(3)?, string(4)?);
            // Arguments are checked when the call runs: like Prometheus,
            // an execution error (HTTP 422), not bad_data.
            let regex = Regex::new(&format!("^(?s:{re})$")).map_err(|_| {
                exec(format!(
                    "invalid regular expression in label_replace(): {re}"
                ))
            })?;
            if !valid_utf8_label_name(&dst) {
                return Err(exec(format!(
                    "invalid destination label name in label_replace(): {dst}"
                )));
            }
            let mut out = Vec::with_capacity(input.len());
            for mut s in input {
                let src_val = s.metric.get(&src).cloned().unwrap_or_default();
                if let Some(caps) = regex.captures(&src_val) {
                    let mut res = String::new();
                    caps.expand(&repl, &mut res);
                    if res.is_empty() {
                        s.metric.remove(&dst);
                    } else {
                        s.metric.insert(dst.clone(), res);
                    }
                    if dst == NAME {
                        s.drop_name = false;
                    }
                }
                s.t = t;
                out.push(s);
            }
            check_unique(&out)?;
            Ok(Value::Vector(out))
        }
        "label_join" => {
            let input = vector(0)?;
            let (dst, sep) = (string(1)?, string(2)?);
            let mut srcs = Vec::new();
            for i in 3..args.len() {
                srcs.push(string(i)?);
            }
            if !valid_utf8_label_name(&dst) {
                return Err(exec(format!(
                    "invalid destination label name in label_join(): {dst}"
                )));
            }
            let mut out = Vec::with_capacity(input.len());
            for mut s in input {
                let joined = srcs
                    .iter()
                    .map(|l| s.metric.get(l).map(String::as_str).unwrap_or(""))
                    .collect::<Vec<_>>()
                    .join(&sep);
                if joined.is_empty() {
                    s.metric.remove(&dst);
                } else {
                    s.metric.insert(dst.clone(), joined);
                }
                if dst == NAME {
                    s.drop_name = false;
                }
                s.t = t;
                out.push(s);
            }
            check_unique(&out)?;
            Ok(Value::Vector(out))
        }
        "histogram_quantile" => {
            let q = scalar(0)?;
            Ok(Value::Vector(histogram_quantile(q, vector(1)?, t)))
        }
        "absent" => {
            let v = vector(0)?;
            Ok(Value::Vector(if v.is_empty() {
                vec![Sample {
                    metric: absent_labels(arg(0)?),
                    t,
                    v: 1.0,
                    drop_name: false,
                }]
            } else {
                Vec::new()
            }))
        }
        "sort" => Ok(Value::Vector(sort_by_value(vector(0)?, false, t))),
        "sort_desc" => Ok(Value::Vector(sort_by_value(vector(0)?, true, t))),
        other => Err(bad(format!("unsupported function: {other}()"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_reset_is_compensated() {
        // 0 10 20 | reset | 5 15 at 10s intervals, window (0, 40s].
        let pts = [
            (10_000, 10.0),
            (20_000, 20.0),
            (30_000, 5.0),
            (40_000, 15.0),
        ];
        let inc = extrapolated_rate(0, 40_000, &pts, true, false).expect("value");
        // Raw increase 5 + 20 (the reset) = 25 over 30s, extrapolated 10s back.
        assert!((inc - 25.0 * 40.0 / 30.0).abs() < 1e-9, "{inc}");
    }

    #[test]
    fn bad_label_function_arguments_are_execution_errors() {
        // Prometheus checks them when the call runs: errorType
        // "execution" (HTTP 422), not "bad_data".
        let mut store = super::super::MemoryStore::new();
        let labels: LabelSet = [("__name__", "up"), ("job", "a")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        store.add(labels, 0, 1.0);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        for q in [
            r#"label_replace(up, "x", "$1", "job", "(")"#,
            r#"label_replace(up, "", "x", "job", ".*")"#,
            r#"label_join(up, "", "-", "job")"#,
        ] {
            let err = rt
                .block_on(super::super::Engine::default().instant(&store, q, 0))
                .expect_err(q);
            assert!(
                matches!(
                    err,
                    AnalyzerError::PromQl {
                        execution: true,
                        ..
                    }
                ),
                "{q}: {err:?}"
            );
        }
        let ok = rt.block_on(super::super::Engine::default().instant(
            &store,
            r#"label_replace(up, "x", "$1", "job", "(.*)")"#,
            0,
        ));
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[test]
    fn bucket_quantile_interpolates() {
        let mut b = vec![(0.1, 10.0), (0.5, 20.0), (f64::INFINITY, 20.0)];
        let q = bucket_quantile(0.5, &mut b);
        assert!((q - 0.1).abs() < 1e-12, "{q}");
        let mut b = vec![(1.0, 0.0), (2.0, 10.0), (f64::INFINITY, 10.0)];
        assert!((bucket_quantile(0.5, &mut b) - 1.5).abs() < 1e-12);
    }

    #[test]
    fn quantile_and_mean() {
        assert_eq!(quantile(0.5, &mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(mean(&[1.0, 2.0, 3.0, 4.0]), 2.5);
        assert_eq!(variance(&[2.0, 4.0]), 1.0);
    }
}
