//! The evaluator: walks a parsed expression at one evaluation time.
//!
//! A query runs in two passes. [`Engine`] first walks the expression to find
//! every selector and the time span it can read (through `offset`, `@`,
//! ranges, subqueries and the lookback window), and fetches each selector's
//! series once through [`Queryable::select`]. Then it evaluates the
//! expression at each step from those fetched points, synchronously.

use std::collections::{HashMap, HashSet};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use promql_parser::label::{MatchOp, Matcher, Matchers};
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{self, AtModifier, Expr, Offset, VectorSelector};

use super::value::{LabelSet, NAME, QueryResult, Sample, Series, Value, bad, exec, is_stale};
use super::{aggregate, binary, functions};
use crate::AnalyzerError;

/// Series as a [`Queryable`] returns them: labels (with `__name__`) and
/// points `(ms, value)`; staleness markers included.
pub type Selected = Vec<(LabelSet, Vec<(i64, f64)>)>;

/// The evaluator's data seam: where series come from.
#[async_trait]
pub trait Queryable: Send + Sync {
    /// Every series matching `matchers` (the metric name is a `__name__`
    /// matcher), with its points in `[start_ms, end_ms]`, in time order.
    /// Series without points in the span may be left out.
    async fn select(
        &self,
        matchers: &Matchers,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Selected, AnalyzerError>;
}

/// True when `labels` satisfies every matcher (a missing label is `""`).
pub fn matches(matchers: &Matchers, labels: &LabelSet) -> bool {
    let get = |name: &str| labels.get(name).map(String::as_str).unwrap_or("");
    let all = |ms: &[Matcher]| ms.iter().all(|m| m.is_match(get(&m.name)));
    all(&matchers.matchers)
        && (matchers.or_matchers.is_empty() || matchers.or_matchers.iter().any(|g| all(g)))
}

/// The equality matcher on `__name__`, if the selector has one.
pub fn name_equal(matchers: &Matchers) -> Option<&str> {
    if !matchers.or_matchers.is_empty() {
        return None;
    }
    matchers
        .matchers
        .iter()
        .find(|m| m.name == NAME && m.op == MatchOp::Equal)
        .map(|m| m.value.as_str())
}

/// A selector's matchers with its metric name as a `__name__` matcher.
pub fn selector_matchers(vs: &VectorSelector) -> Matchers {
    let mut m = vs.matchers.clone();
    if let Some(name) = &vs.name {
        let has = m
            .matchers
            .iter()
            .chain(m.or_matchers.iter().flatten())
            .any(|x| x.name == NAME);
        if !has {
            let matcher = Matcher::new(MatchOp::Equal, NAME, name);
            m.matchers.push(matcher.clone());
            for g in &mut m.or_matchers {
                g.push(matcher.clone());
            }
        }
    }
    m
}

/// An in-memory [`Queryable`]: the promqltest runner's store, and handy in tests.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    series: HashMap<LabelSet, Vec<(i64, f64)>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a point (labels include `__name__`); points may come in any order.
    pub fn add(&mut self, labels: LabelSet, t_ms: i64, v: f64) {
        self.series.entry(labels).or_default().push((t_ms, v));
    }

    /// Drops every series.
    pub fn clear(&mut self) {
        self.series.clear();
    }

    /// Number of series.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// True when no series is stored.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
}

#[async_trait]
impl Queryable for MemoryStore {
    async fn select(
        &self,
        matchers: &Matchers,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Selected, AnalyzerError> {
        let mut out = Vec::new();
        for (labels, points) in &self.series {
            if !matches(matchers, labels) {
                continue;
            }
            let mut pts: Vec<(i64, f64)> = points
                .iter()
                .copied()
                .filter(|(t, _)| *t >= start_ms && *t <= end_ms)
                .collect();
            if pts.is_empty() {
                continue;
            }
            pts.sort_by_key(|p| p.0);
            out.push((labels.clone(), pts));
        }
        Ok(out)
    }
}

/// Query settings.
#[derive(Debug, Clone, Copy)]
pub struct Engine {
    /// How far back an instant selector looks for a sample (Prometheus: 5m).
    pub lookback_ms: i64,
    /// Step of a subquery written without one (`[10m:]`).
    pub subquery_step_ms: i64,
    /// Most steps a range query may have.
    pub max_points: i64,
    /// Evaluate range queries step by step only, never a node at a time
    /// for all steps (module `range`); both give the same answers.
    pub step_by_step: bool,
}

impl Default for Engine {
    fn default() -> Self {
        Self {
            lookback_ms: 5 * 60 * 1000,
            subquery_step_ms: 60 * 1000,
            max_points: 11_000,
            step_by_step: false,
        }
    }
}

/// Parses a query, mapping the parser's message to a `bad_data` error.
/// Vigie's [`super::predictive`] functions are known to the parser and
/// rewritten to read the analyzer's outputs.
pub fn parse(query: &str) -> Result<Expr, AnalyzerError> {
    super::predictive::register();
    let expr = parser::parse(query).map_err(|e| bad(format!("parse error: {e}")))?;
    super::predictive::rewrite(expr)
}

impl Engine {
    /// Evaluates `query` at `t_ms`.
    pub async fn instant(
        &self,
        store: &dyn Queryable,
        query: &str,
        t_ms: i64,
    ) -> Result<QueryResult, AnalyzerError> {
        let expr = parse(query)?;
        let ev = self.prepare(store, &expr, t_ms, t_ms, 0).await?;
        let value = match ev.eval(&expr, t_ms)? {
            Value::Vector(v) => Value::Vector(finish_vector(v)?),
            Value::Matrix(m) => Value::Matrix(finish_matrix(m)?),
            other => other,
        };
        Ok(QueryResult { t: t_ms, value })
    }

    /// Evaluates `query` at every step from `start_ms` to `end_ms`; the
    /// result is a matrix.
    pub async fn range(
        &self,
        store: &dyn Queryable,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<QueryResult, AnalyzerError> {
        let expr = parse(query)?;
        match expr.value_type() {
            ValueType::Scalar | ValueType::Vector => {}
            t => {
                return Err(bad(format!(
                    "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                    if t == ValueType::Matrix {
                        "range vector".to_string()
                    } else {
                        t.to_string()
                    }
                )));
            }
        }
        if step_ms <= 0 {
            return Err(bad(
                "zero or negative query resolution step widths are not accepted. Try a positive integer",
            ));
        }
        if end_ms < start_ms {
            return Err(bad("end timestamp must not be before start time"));
        }
        if (end_ms - start_ms) / step_ms >= self.max_points {
            return Err(bad(format!(
                "exceeded maximum resolution of {} points per timeseries. Try decreasing the query resolution (?step=XX)",
                self.max_points
            )));
        }
        let ev = self
            .prepare(store, &expr, start_ms, end_ms, step_ms)
            .await?;
        if !self.step_by_step
            && let Some(m) = super::range::evaluate(&ev, &expr, start_ms, end_ms, step_ms)
        {
            return Ok(QueryResult {
                t: end_ms,
                value: Value::Matrix(m),
            });
        }
        let mut index: HashMap<LabelSet, usize> = HashMap::new();
        let mut out: Vec<Series> = Vec::new();
        let mut t = start_ms;
        while t <= end_ms {
            let samples = match ev.eval(&expr, t)? {
                Value::Scalar(v) => vec![Sample {
                    metric: LabelSet::new(),
                    t,
                    v,
                    drop_name: false,
                }],
                Value::Vector(v) => finish_vector(v)?,
                other => {
                    return Err(bad(format!(
                        "range query over an expression of type {}",
                        other.type_name()
                    )));
                }
            };
            for s in samples {
                // The labels are cloned for a new series only.
                let i = match index.get(&s.metric) {
                    Some(&i) => i,
                    None => {
                        index.insert(s.metric.clone(), out.len());
                        out.push(Series {
                            metric: s.metric,
                            points: Vec::new(),
                            drop_name: false,
                        });
                        out.len() - 1
                    }
                };
                out[i].points.push((t, s.v));
            }
            t += step_ms;
        }
        out.sort_by(|a, b| a.metric.cmp(&b.metric));
        Ok(QueryResult {
            t: end_ms,
            value: Value::Matrix(out),
        })
    }

    async fn prepare(
        &self,
        store: &dyn Queryable,
        expr: &Expr,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<Evaluator, AnalyzerError> {
        let mut ev = Evaluator {
            data: HashMap::new(),
            start,
            end,
            step,
            lookback: self.lookback_ms,
            sub_step: self.subquery_step_ms,
        };
        let mut spans: Vec<(usize, &VectorSelector, i64, i64)> = Vec::new();
        ev.walk(expr, start, end, &mut spans)?;
        let mut merged: HashMap<usize, (&VectorSelector, i64, i64)> = HashMap::new();
        for (key, vs, lo, hi) in spans {
            let e = merged.entry(key).or_insert((vs, lo, hi));
            e.1 = e.1.min(lo);
            e.2 = e.2.max(hi);
        }
        for (key, (vs, lo, hi)) in merged {
            let mut series = store.select(&selector_matchers(vs), lo, hi).await?;
            for (_, points) in &mut series {
                if !points.is_sorted_by_key(|p| p.0) {
                    points.sort_by_key(|p| p.0);
                }
            }
            series.sort_by(|a, b| a.0.cmp(&b.0));
            ev.data.insert(key, series);
        }
        Ok(ev)
    }
}

/// Drops `__name__` where delayed name removal asks for it, then checks
/// that no two samples share a label set.
pub(crate) fn finish_vector(mut v: Vec<Sample>) -> Result<Vec<Sample>, AnalyzerError> {
    let mut seen = HashSet::with_capacity(v.len());
    for s in &mut v {
        if s.drop_name {
            s.metric.remove(NAME);
            s.drop_name = false;
        }
        if !seen.insert(s.metric.clone()) {
            return Err(exec("vector cannot contain metrics with the same labelset"));
        }
    }
    Ok(v)
}

fn finish_matrix(mut m: Vec<Series>) -> Result<Vec<Series>, AnalyzerError> {
    let mut seen = HashSet::with_capacity(m.len());
    for s in &mut m {
        if s.drop_name {
            s.metric.remove(NAME);
            s.drop_name = false;
        }
        if !seen.insert(s.metric.clone()) {
            return Err(exec("vector cannot contain metrics with the same labelset"));
        }
    }
    Ok(m)
}

fn key(vs: &VectorSelector) -> usize {
    std::ptr::from_ref(vs) as usize
}

/// Milliseconds of an `offset` (negative offsets look ahead).
pub(crate) fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => d.as_millis() as i64,
        Some(Offset::Neg(d)) => -(d.as_millis() as i64),
    }
}

fn system_ms(t: &SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

/// A range vector argument with the window it was cut from.
pub(crate) struct RangeArg {
    /// The series (only those with points in the window).
    pub series: Vec<Series>,
    /// Window start (exclusive), ms.
    pub start: i64,
    /// Window end (inclusive), ms.
    pub end: i64,
}

/// Evaluation state shared by every step of one query.
pub(crate) struct Evaluator {
    data: HashMap<usize, Selected>,
    /// Query start (for `@ start()`).
    pub start: i64,
    /// Query end (for `@ end()`).
    pub end: i64,
    /// Query step (0 for an instant query), for `step()`.
    pub step: i64,
    pub(super) lookback: i64,
    sub_step: i64,
}

impl Evaluator {
    fn at_ms(&self, at: &AtModifier) -> i64 {
        match at {
            AtModifier::Start => self.start,
            AtModifier::End => self.end,
            AtModifier::At(t) => system_ms(t),
        }
    }

    /// The time a selector reads at when evaluated at `t`.
    pub(super) fn ref_time(&self, at: &Option<AtModifier>, offset: &Option<Offset>, t: i64) -> i64 {
        let base = at.as_ref().map_or(t, |a| self.at_ms(a));
        base - offset_ms(offset)
    }

    fn walk<'e>(
        &self,
        expr: &'e Expr,
        lo: i64,
        hi: i64,
        out: &mut Vec<(usize, &'e VectorSelector, i64, i64)>,
    ) -> Result<(), AnalyzerError> {
        match expr {
            Expr::VectorSelector(vs) => {
                let (a, b) = (
                    self.ref_time(&vs.at, &vs.offset, lo),
                    self.ref_time(&vs.at, &vs.offset, hi),
                );
                out.push((key(vs), vs, a - self.lookback, b));
            }
            Expr::MatrixSelector(ms) => {
                let vs = &ms.vs;
                let (a, b) = (
                    self.ref_time(&vs.at, &vs.offset, lo),
                    self.ref_time(&vs.at, &vs.offset, hi),
                );
                out.push((key(vs), vs, a - ms.range.as_millis() as i64, b));
            }
            Expr::Subquery(sq) => {
                let (a, b) = (
                    self.ref_time(&sq.at, &sq.offset, lo),
                    self.ref_time(&sq.at, &sq.offset, hi),
                );
                self.walk(&sq.expr, a - sq.range.as_millis() as i64, b, out)?;
            }
            Expr::Paren(p) => self.walk(&p.expr, lo, hi, out)?,
            Expr::Unary(u) => self.walk(&u.expr, lo, hi, out)?,
            Expr::Binary(b) => {
                self.walk(&b.lhs, lo, hi, out)?;
                self.walk(&b.rhs, lo, hi, out)?;
            }
            Expr::Aggregate(a) => {
                if let Some(p) = &a.param {
                    self.walk(p, lo, hi, out)?;
                }
                self.walk(&a.expr, lo, hi, out)?;
            }
            Expr::Call(c) => {
                for arg in &c.args.args {
                    self.walk(arg, lo, hi, out)?;
                }
            }
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) => {}
            Expr::Extension(e) => {
                return Err(bad(format!(
                    "unsupported expression: extension {}",
                    e.expr.name()
                )));
            }
        }
        Ok(())
    }

    pub(super) fn fetched(&self, vs: &VectorSelector) -> &[(LabelSet, Vec<(i64, f64)>)] {
        self.data.get(&key(vs)).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Evaluates `expr` at `t` (ms).
    pub fn eval(&self, expr: &Expr, t: i64) -> Result<Value, AnalyzerError> {
        match expr {
            Expr::NumberLiteral(n) => Ok(Value::Scalar(n.val)),
            Expr::StringLiteral(s) => Ok(Value::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, t),
            Expr::Unary(u) => match self.eval(&u.expr, t)? {
                Value::Scalar(v) => Ok(Value::Scalar(-v)),
                Value::Vector(v) => Ok(Value::Vector(
                    v.into_iter()
                        .map(|s| Sample {
                            v: -s.v,
                            t,
                            drop_name: true,
                            ..s
                        })
                        .collect(),
                )),
                other => Err(bad(format!(
                    "unary expression only allowed on expressions of type scalar or instant vector, got {}",
                    other.type_name()
                ))),
            },
            Expr::VectorSelector(vs) => Ok(Value::Vector(self.instant_selector(vs, t))),
            Expr::MatrixSelector(_) | Expr::Subquery(_) => {
                Ok(Value::Matrix(self.range_arg(expr, t)?.series))
            }
            Expr::Call(c) => functions::call(self, c, t),
            Expr::Aggregate(a) => aggregate::aggregate(self, a, t),
            Expr::Binary(b) => binary::binary(self, b, t),
            Expr::Extension(e) => Err(bad(format!(
                "unsupported expression: extension {}",
                e.expr.name()
            ))),
        }
    }

    /// Evaluates an expression that must be an instant vector.
    pub fn eval_vector(&self, expr: &Expr, t: i64) -> Result<Vec<Sample>, AnalyzerError> {
        match self.eval(expr, t)? {
            Value::Vector(v) => Ok(v),
            other => Err(bad(format!(
                "expected an instant vector, got {}",
                other.type_name()
            ))),
        }
    }

    /// Evaluates an expression that must be a scalar.
    pub fn eval_scalar(&self, expr: &Expr, t: i64) -> Result<f64, AnalyzerError> {
        match self.eval(expr, t)? {
            Value::Scalar(v) => Ok(v),
            other => Err(bad(format!("expected a scalar, got {}", other.type_name()))),
        }
    }

    /// Evaluates an expression that must be a string.
    pub fn eval_string(&self, expr: &Expr, t: i64) -> Result<String, AnalyzerError> {
        match self.eval(expr, t)? {
            Value::String(s) => Ok(s),
            other => Err(bad(format!("expected a string, got {}", other.type_name()))),
        }
    }

    /// The newest non-stale sample of each series within the lookback window.
    fn instant_selector(&self, vs: &VectorSelector, t: i64) -> Vec<Sample> {
        let r = self.ref_time(&vs.at, &vs.offset, t);
        let mut out = Vec::new();
        for (labels, points) in self.fetched(vs) {
            let i = points.partition_point(|p| p.0 <= r);
            if i == 0 {
                continue;
            }
            let (pt, pv) = points[i - 1];
            if pt <= r - self.lookback || is_stale(pv) {
                continue;
            }
            out.push(Sample {
                metric: labels.clone(),
                t: pt,
                v: pv,
                drop_name: false,
            });
        }
        out
    }

    /// Evaluates a range vector (a matrix selector or a subquery, maybe in
    /// parentheses) at `t`.
    pub(crate) fn range_arg(&self, expr: &Expr, t: i64) -> Result<RangeArg, AnalyzerError> {
        match expr {
            Expr::Paren(p) => self.range_arg(&p.expr, t),
            Expr::MatrixSelector(ms) => {
                let vs = &ms.vs;
                let end = self.ref_time(&vs.at, &vs.offset, t);
                let start = end - ms.range.as_millis() as i64;
                let mut series = Vec::new();
                for (labels, points) in self.fetched(vs) {
                    let lo = points.partition_point(|p| p.0 <= start);
                    let hi = points.partition_point(|p| p.0 <= end);
                    let pts: Vec<(i64, f64)> = points[lo..hi]
                        .iter()
                        .copied()
                        .filter(|p| !is_stale(p.1))
                        .collect();
                    if !pts.is_empty() {
                        series.push(Series {
                            metric: labels.clone(),
                            points: pts,
                            drop_name: false,
                        });
                    }
                }
                Ok(RangeArg { series, start, end })
            }
            Expr::Subquery(sq) => {
                let end = self.ref_time(&sq.at, &sq.offset, t);
                let range = sq.range.as_millis() as i64;
                let start = end - range;
                let step = sq
                    .step
                    .map_or(self.sub_step, |s| s.as_millis() as i64)
                    .max(1);
                let mut ts = start.div_euclid(step) * step;
                if ts <= start {
                    ts += step;
                }
                let mut index: HashMap<LabelSet, usize> = HashMap::new();
                let mut series: Vec<Series> = Vec::new();
                while ts <= end {
                    let samples = match self.eval(&sq.expr, ts)? {
                        Value::Scalar(v) => vec![Sample {
                            metric: LabelSet::new(),
                            t: ts,
                            v,
                            drop_name: false,
                        }],
                        Value::Vector(v) => v,
                        other => {
                            return Err(bad(format!(
                                "subquery is only allowed on instant vector, got {}",
                                other.type_name()
                            )));
                        }
                    };
                    for s in samples {
                        let i = match index.get(&s.metric) {
                            Some(&i) => i,
                            None => {
                                index.insert(s.metric.clone(), series.len());
                                series.push(Series {
                                    metric: s.metric,
                                    points: Vec::new(),
                                    drop_name: false,
                                });
                                series.len() - 1
                            }
                        };
                        series[i].points.push((ts, s.v));
                        series[i].drop_name |= s.drop_name;
                    }
                    ts += step;
                }
                Ok(RangeArg { series, start, end })
            }
            other => Err(bad(format!(
                "expected a range vector, got {}",
                other.value_type()
            ))),
        }
    }
}
