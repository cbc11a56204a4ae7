//! Vigie's predictive PromQL functions, backed by the analyzer's stored
//! outputs:
//!
//! - `anomaly_score(v)`: the anomaly score in `[0, 1]` of each series of
//!   the selector `v` (from `vigie_anomaly_score{for="<metric>", ...}`);
//! - `forecast(v, "1h", 0.9)`: the forecast of each series at now +
//!   horizon (`"15m"`, `"1h"`, `"4h"`) for quantile `0.1`, `0.5` or `0.9`
//!   (from `vigie_forecast`);
//! - `time_to_threshold(v, 0)`: seconds until each series is forecast to
//!   reach the threshold: the analyzer's own estimate
//!   (`vigie_time_to_threshold_seconds{threshold="0"}`) where the threshold
//!   is a configured limit, otherwise the first crossing of the line through
//!   the current value and the median forecasts at 15m, 1h and 4h (extended
//!   past 4h with its last slope); +Inf when the forecast does not head
//!   there.
//!
//! Results carry the input series' labels without the metric name, like
//! any PromQL function. `v` must be a vector selector (the analyzer scores
//! stored series; counters are scored and forecast on their per-second
//! rate). `rewrite` turns each call into a call over the output series'
//! selector right after parsing, so fetching and `offset`/`@` work as for
//! any selector; `call` evaluates the rewritten call.

use std::collections::HashMap;
use std::sync::Once;

use promql_parser::label::{MatchOp, Matcher, Matchers};
use promql_parser::parser::function::{Function, register_extra_functions};
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{Call, Expr, NumberLiteral, VectorSelector};

use super::eval::Evaluator;
use super::value::{LabelSet, NAME, Sample, Value, bad, format_value};
use crate::AnalyzerError;
use crate::forecast::{FORECAST, HORIZONS, QUANTILES, TIME_TO_THRESHOLD};
use crate::score::{ANOMALY_SCORE, FOR_LABEL};

/// Names of the predictive functions.
pub const FUNCTIONS: [&str; 3] = ["anomaly_score", "forecast", "time_to_threshold"];

/// Teaches the parser the predictive functions, and `holt_winters`
/// (Prometheus 2's name of `double_exponential_smoothing`, still used by
/// dashboards written for Prometheus 2), once per process.
pub(crate) fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = register_extra_functions(vec![
            Function::new(
                "holt_winters",
                vec![ValueType::Matrix, ValueType::Scalar, ValueType::Scalar],
                0,
                ValueType::Vector,
                false,
            ),
            Function::new(
                "anomaly_score",
                vec![ValueType::Vector],
                0,
                ValueType::Vector,
                false,
            ),
            Function::new(
                "forecast",
                vec![ValueType::Vector, ValueType::String, ValueType::Scalar],
                0,
                ValueType::Vector,
                false,
            ),
            Function::new(
                "time_to_threshold",
                vec![ValueType::Vector, ValueType::Scalar],
                0,
                ValueType::Vector,
                false,
            ),
        ]);
    });
}

/// The selector of `metric` for the series `vs` selects: `__name__`
/// matchers become `for` matchers, `extra` equality matchers are added.
fn output_selector(vs: &VectorSelector, metric: &str, extra: &[(&str, &str)]) -> VectorSelector {
    let rename = |ms: &[Matcher]| -> Vec<Matcher> {
        ms.iter()
            .map(|m| Matcher {
                op: m.op.clone(),
                name: if m.name == NAME {
                    FOR_LABEL.to_string()
                } else {
                    m.name.clone()
                },
                value: m.value.clone(),
            })
            .collect()
    };
    let mut matchers = rename(&vs.matchers.matchers);
    if let Some(name) = &vs.name {
        matchers.push(Matcher::new(MatchOp::Equal, FOR_LABEL, name));
    }
    for (k, v) in extra {
        matchers.push(Matcher::new(MatchOp::Equal, k, v));
    }
    let or_matchers = vs.matchers.or_matchers.iter().map(|o| rename(o)).collect();
    VectorSelector {
        name: Some(metric.to_string()),
        matchers: Matchers {
            matchers,
            or_matchers,
        },
        offset: vs.offset.clone(),
        at: vs.at.clone(),
    }
}

fn selector<'e>(name: &str, arg: &'e Expr) -> Result<&'e VectorSelector, AnalyzerError> {
    match arg {
        Expr::VectorSelector(vs) => Ok(vs),
        Expr::Paren(p) => selector(name, &p.expr),
        _ => Err(bad(format!(
            "{name}() takes a vector selector such as node_load1{{instance=\"a\"}}: \
             it reads the analyzer's outputs for stored series"
        ))),
    }
}

fn number(name: &str, what: &str, arg: &Expr) -> Result<f64, AnalyzerError> {
    match arg {
        Expr::NumberLiteral(n) => Ok(n.val),
        Expr::Paren(p) => number(name, what, &p.expr),
        Expr::Unary(u) => number(name, what, &u.expr).map(|v| -v),
        _ => Err(bad(format!("{name}(): {what} must be a number literal"))),
    }
}

fn string(name: &str, what: &str, arg: &Expr) -> Result<String, AnalyzerError> {
    match arg {
        Expr::StringLiteral(s) => Ok(s.val.clone()),
        Expr::Paren(p) => string(name, what, &p.expr),
        _ => Err(bad(format!("{name}(): {what} must be a string literal"))),
    }
}

fn rewrite_call(c: &Call) -> Result<Expr, AnalyzerError> {
    let name = c.func.name;
    let args = &c.args.args;
    let sel = selector(name, &args[0])?;
    let new_args: Vec<Expr> = match name {
        "anomaly_score" => vec![Expr::VectorSelector(output_selector(
            sel,
            ANOMALY_SCORE,
            &[],
        ))],
        "forecast" => {
            let horizon = string(name, "the horizon", &args[1])?;
            if !HORIZONS.iter().any(|(_, h)| *h == horizon) {
                return Err(bad(format!(
                    "forecast(): horizon {horizon:?} is not forecast; use \"15m\", \"1h\" or \"4h\""
                )));
            }
            let q = number(name, "the quantile", &args[2])?;
            let Some((_, quantile)) = QUANTILES.iter().find(|(v, _)| *v == q) else {
                return Err(bad(format!(
                    "forecast(): quantile {q} is not forecast; use 0.1, 0.5 or 0.9"
                )));
            };
            vec![Expr::VectorSelector(output_selector(
                sel,
                FORECAST,
                &[("horizon", &horizon), ("quantile", quantile)],
            ))]
        }
        "time_to_threshold" => {
            let threshold = number(name, "the threshold", &args[1])?;
            if !threshold.is_finite() {
                return Err(bad("time_to_threshold(): the threshold must be finite"));
            }
            let label = format_value(threshold);
            vec![
                Expr::VectorSelector(output_selector(
                    sel,
                    TIME_TO_THRESHOLD,
                    &[("threshold", &label)],
                )),
                Expr::VectorSelector(output_selector(sel, FORECAST, &[("quantile", "0.5")])),
                Expr::VectorSelector(sel.clone()),
                Expr::NumberLiteral(NumberLiteral { val: threshold }),
            ]
        }
        _ => unreachable!("only predictive functions are rewritten"),
    };
    Ok(Expr::Call(Call {
        func: c.func.clone(),
        args: promql_parser::parser::FunctionArgs {
            args: new_args.into_iter().map(Box::new).collect(),
        },
    }))
}

/// Replaces every predictive call in `expr` by a call over the output
/// series it reads.
pub(crate) fn rewrite(expr: Expr) -> Result<Expr, AnalyzerError> {
    Ok(match expr {
        Expr::Call(c) if FUNCTIONS.contains(&c.func.name) => rewrite_call(&c)?,
        Expr::Call(mut c) => {
            c.args.args = c
                .args
                .args
                .into_iter()
                .map(|a| rewrite(*a).map(Box::new))
                .collect::<Result<_, _>>()?;
            Expr::Call(c)
        }
        Expr::Aggregate(mut a) => {
            a.expr = Box::new(rewrite(*a.expr)?);
            a.param = a.param.map(|p| rewrite(*p).map(Box::new)).transpose()?;
            Expr::Aggregate(a)
        }
        Expr::Unary(mut u) => {
            u.expr = Box::new(rewrite(*u.expr)?);
            Expr::Unary(u)
        }
        Expr::Binary(mut b) => {
            b.lhs = Box::new(rewrite(*b.lhs)?);
            b.rhs = Box::new(rewrite(*b.rhs)?);
            Expr::Binary(b)
        }
        Expr::Paren(mut p) => {
            p.expr = Box::new(rewrite(*p.expr)?);
            Expr::Paren(p)
        }
        Expr::Subquery(mut s) => {
            s.expr = Box::new(rewrite(*s.expr)?);
            Expr::Subquery(s)
        }
        other => other,
    })
}

/// The input series' labels of an output sample: without the name and
/// the labels the output added.
fn source_labels(metric: &LabelSet, added: &[&str]) -> LabelSet {
    metric
        .iter()
        .filter(|(k, _)| *k != NAME && *k != FOR_LABEL && !added.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn output(metric: LabelSet, t: i64, v: f64) -> Sample {
    Sample {
        metric,
        t,
        v,
        drop_name: false,
    }
}

/// Evaluates a call produced by [`rewrite`].
pub(crate) fn call(ev: &Evaluator, c: &Call, t: i64) -> Result<Value, AnalyzerError> {
    let args = &c.args.args;
    let vector = |i: usize| ev.eval_vector(&args[i], t);
    match c.func.name {
        "anomaly_score" => Ok(Value::Vector(
            vector(0)?
                .into_iter()
                .map(|s| output(source_labels(&s.metric, &[]), t, s.v))
                .collect(),
        )),
        "forecast" => Ok(Value::Vector(
            vector(0)?
                .into_iter()
                .map(|s| output(source_labels(&s.metric, &["horizon", "quantile"]), t, s.v))
                .collect(),
        )),
        "time_to_threshold" => {
            let threshold = ev.eval_scalar(&args[3], t)?;
            let mut out: HashMap<LabelSet, f64> = vector(0)?
                .into_iter()
                .map(|s| (source_labels(&s.metric, &["threshold"]), s.v))
                .collect();
            let mut medians: HashMap<LabelSet, [Option<f64>; 3]> = HashMap::new();
            for s in vector(1)? {
                let h = s.metric.get("horizon").map(String::as_str);
                if let Some(i) = HORIZONS.iter().position(|(_, name)| Some(*name) == h) {
                    let key = source_labels(&s.metric, &["horizon", "quantile"]);
                    medians.entry(key).or_default()[i] = Some(s.v);
                }
            }
            for s in vector(2)? {
                let key = source_labels(&s.metric, &[]);
                if out.contains_key(&key) {
                    continue;
                }
                if let Some([Some(a), Some(b), Some(c)]) = medians.get(&key) {
                    out.insert(key, crossing(s.v, [*a, *b, *c], threshold));
                }
            }
            Ok(Value::Vector(
                out.into_iter().map(|(m, v)| output(m, t, v)).collect(),
            ))
        }
        other => Err(bad(format!("{other}() is not a predictive function"))),
    }
}

/// Seconds until the line through `now` and the median forecasts at the
/// [`HORIZONS`] first reaches `threshold`; past the last horizon the last
/// segment's slope is extended; +Inf when it never gets there.
pub fn crossing(now: f64, medians: [f64; 3], threshold: f64) -> f64 {
    let mut points = vec![(0.0, now)];
    points.extend(
        HORIZONS
            .iter()
            .zip(medians)
            .map(|((ms, _), v)| (*ms as f64 / 1000.0, v)),
    );
    if now == threshold {
        return 0.0;
    }
    for w in points.windows(2) {
        let ((t0, v0), (t1, v1)) = (w[0], w[1]);
        if (v0 - threshold).signum() != (v1 - threshold).signum() || v1 == threshold {
            return t0 + (threshold - v0) / (v1 - v0) * (t1 - t0);
        }
    }
    let ((t0, v0), (t1, v1)) = (points[2], points[3]);
    let slope = (v1 - v0) / (t1 - t0);
    let gap = threshold - v1;
    if slope == 0.0 || slope.signum() != gap.signum() {
        return f64::INFINITY;
    }
    t1 + gap / slope
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crossing_interpolates_and_extends() {
        // Falls 100 per 15 min from 1000: crosses 0 at 2.5 h.
        let medians = [900.0, 600.0, -600.0];
        assert!((crossing(1000.0, medians, 0.0) - 9000.0).abs() < 1e-6);
        // Within the first segment.
        assert!((crossing(1000.0, medians, 950.0) - 450.0).abs() < 1e-6);
        // Past 4 h: extends the 1h→4h slope (-1200 per 3 h).
        let t = crossing(1000.0, medians, -1800.0);
        assert!((t - (14400.0 + 1200.0 / (1200.0 / 10800.0))).abs() < 1e-6);
        // Heading away.
        assert_eq!(
            crossing(1000.0, [1100.0, 1200.0, 1300.0], 0.0),
            f64::INFINITY
        );
        assert_eq!(crossing(5.0, [5.0, 5.0, 5.0], 0.0), f64::INFINITY);
        assert_eq!(crossing(0.0, medians, 0.0), 0.0);
    }
}
