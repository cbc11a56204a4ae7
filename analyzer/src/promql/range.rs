//! Range queries evaluated a node at a time, for every step at once.
//!
//! The step-by-step evaluator (module `eval`) walks the whole expression
//! at each step, building label sets, windows and groups again each time.
//! For the usual shapes of dashboard queries (selectors, range functions
//! over a matrix selector, aggregations, binary operators,
//! `histogram_quantile`), [`evaluate`] instead evaluates each node once
//! for all the steps: a node's value is a table of its series (labels and
//! delayed-name flag, computed once per series) and, for each step, its
//! samples as `(series, value)` in exactly the order the step-by-step
//! evaluator yields them. Every float is thus computed by the same code
//! from the same inputs in the same order, and the answers are identical;
//! only label work moves out of the step loop, and selector windows slide
//! over each series' sorted points instead of being searched and copied.
//!
//! Anything else (other functions, subqueries, `timestamp`, an error at
//! any step) makes [`evaluate`] return `None`: the query then runs step by
//! step, which also gives an error its message.

use std::collections::{HashMap, HashSet};

use promql_parser::parser::{
    AggregateExpr, BinaryExpr, Call, Expr, VectorMatchCardinality, VectorSelector,
};

use super::aggregate::{fold, group_key, rank_order};
use super::binary::{Matching, elem, is_comparison, scalar_elem};
use super::eval::Evaluator;
use super::functions::{
    RangeParams, bucket_quantile, counter_rate_without_resets, is_range_function, keeps_name,
    le_bucket, range_value,
};
use super::value::{LabelSet, NAME, Series, is_stale};

/// A series of a node's table.
type Id = u32;

/// An instant vector at every step.
struct Steps {
    /// Labels and delayed-name flag of each series.
    series: Vec<(LabelSet, bool)>,
    /// Step `i`'s samples are `samples[bounds[i]..bounds[i + 1]]`.
    bounds: Vec<usize>,
    samples: Vec<(Id, f64)>,
}

impl Steps {
    fn new(series: Vec<(LabelSet, bool)>) -> Self {
        Self {
            series,
            bounds: vec![0],
            samples: Vec::new(),
        }
    }

    fn push(&mut self, id: Id, v: f64) {
        self.samples.push((id, v));
    }

    fn end_step(&mut self) {
        self.bounds.push(self.samples.len());
    }

    fn at(&self, step: usize) -> &[(Id, f64)] {
        &self.samples[self.bounds[step]..self.bounds[step + 1]]
    }
}

/// A node's value at every step.
enum Rv {
    Scalar(Vec<f64>),
    Vector(Steps),
}

/// Interns label sets: the same labels, the same number.
#[derive(Default)]
struct Interner {
    ids: HashMap<LabelSet, Id>,
    labels: Vec<LabelSet>,
}

impl Interner {
    fn get(&mut self, labels: LabelSet) -> Id {
        if let Some(&id) = self.ids.get(&labels) {
            return id;
        }
        let id = self.labels.len() as Id;
        self.ids.insert(labels.clone(), id);
        self.labels.push(labels);
        id
    }
}

/// Members of each group at one step, groups in order of first member.
struct StepGroups<T> {
    /// Per group: the step it was last seen at (+1) and its position.
    slot: Vec<(usize, usize)>,
    /// Groups of this step, in order: group and members.
    order: Vec<(Id, Vec<T>)>,
    used: usize,
}

impl<T> StepGroups<T> {
    fn new(groups: usize) -> Self {
        Self {
            slot: vec![(0, 0); groups],
            order: Vec::new(),
            used: 0,
        }
    }

    /// Starts step `step` (counted from 0).
    fn start(&mut self) {
        self.used = 0;
    }

    fn add(&mut self, step: usize, group: Id, member: T) {
        let slot = &mut self.slot[group as usize];
        if slot.0 != step + 1 {
            *slot = (step + 1, self.used);
            if self.used == self.order.len() {
                self.order.push((group, Vec::new()));
            } else {
                self.order[self.used].0 = group;
                self.order[self.used].1.clear();
            }
            self.used += 1;
        }
        self.order[slot.1].1.push(member);
    }

    fn groups(&mut self) -> &mut [(Id, Vec<T>)] {
        &mut self.order[..self.used]
    }
}

/// Evaluates range query `expr` (already checked to be a scalar or an
/// instant vector) at `start, start + step, ... <= end` from `ev`'s fetched
/// series: the result matrix, sorted by labels, as the step-by-step loop
/// of [`super::Engine::range`] gives it, or `None` when this module does
/// not handle the expression (or some step fails).
pub(crate) fn evaluate(
    ev: &Evaluator,
    expr: &Expr,
    start: i64,
    end: i64,
    step: i64,
) -> Option<Vec<Series>> {
    let mut ts = Vec::new();
    let mut t = start;
    while t <= end {
        ts.push(t);
        t += step;
    }
    if ts.is_empty() {
        return None;
    }
    let ctx = Ctx { ev, ts: &ts };
    match ctx.eval(expr)? {
        Rv::Scalar(vals) => Some(vec![Series {
            metric: LabelSet::new(),
            points: ts.iter().copied().zip(vals).collect(),
            drop_name: false,
        }]),
        Rv::Vector(st) => finish(st, &ts),
    }
}

/// The result matrix: `__name__` dropped where delayed, series merged by
/// labels across steps; `None` when a step holds two samples with the
/// same labels (the step-by-step evaluator's error).
fn finish(st: Steps, ts: &[i64]) -> Option<Vec<Series>> {
    let mut index: HashMap<LabelSet, usize> = HashMap::new();
    let mut out: Vec<Series> = Vec::new();
    let mut final_of = Vec::with_capacity(st.series.len());
    for (labels, drop) in &st.series {
        let mut labels = labels.clone();
        if *drop {
            labels.remove(NAME);
        }
        let i = *index.entry(labels.clone()).or_insert_with(|| {
            out.push(Series {
                metric: labels,
                points: Vec::new(),
                drop_name: false,
            });
            out.len() - 1
        });
        final_of.push(i);
    }
    let mut seen = vec![0usize; out.len()];
    for (step, &t) in ts.iter().enumerate() {
        for &(id, v) in st.at(step) {
            let i = final_of[id as usize];
            if seen[i] == step + 1 {
                return None;
            }
            seen[i] = step + 1;
            out[i].points.push((t, v));
        }
    }
    out.retain(|s| !s.points.is_empty());
    out.sort_by(|a, b| a.metric.cmp(&b.metric));
    Some(out)
}

/// A node's steps from values computed series by series: `fill(i, row)`
/// sets `row[step]` to series `i`'s value at each step it has one. Each
/// step's samples come in series order, as the step-by-step evaluator
/// yields them; computing series by series reads each one's points in
/// order rather than a cache line of every series at every step.
fn by_series(
    series: Vec<(LabelSet, bool)>,
    steps: usize,
    mut fill: impl FnMut(usize, &mut [Option<f64>]),
) -> Steps {
    let n = series.len();
    let mut grid: Vec<Option<f64>> = vec![None; n * steps];
    for (i, row) in grid.chunks_mut(steps.max(1)).enumerate().take(n) {
        fill(i, row);
    }
    let mut st = Steps::new(series);
    for step in 0..steps {
        for i in 0..n {
            if let Some(v) = grid[i * steps + step] {
                st.push(i as Id, v);
            }
        }
        st.end_step();
    }
    st
}

struct Ctx<'a> {
    ev: &'a Evaluator,
    ts: &'a [i64],
}

impl Ctx<'_> {
    fn eval(&self, expr: &Expr) -> Option<Rv> {
        match expr {
            Expr::Paren(p) => self.eval(&p.expr),
            Expr::NumberLiteral(n) => Some(Rv::Scalar(vec![n.val; self.ts.len()])),
            Expr::VectorSelector(vs) => Some(Rv::Vector(self.selector(vs))),
            Expr::Unary(u) => Some(match self.eval(&u.expr)? {
                Rv::Scalar(v) => Rv::Scalar(v.into_iter().map(|x| -x).collect()),
                Rv::Vector(mut st) => {
                    for s in &mut st.series {
                        s.1 = true;
                    }
                    for s in &mut st.samples {
                        s.1 = -s.1;
                    }
                    Rv::Vector(st)
                }
            }),
            Expr::Call(c) => self.call(c),
            Expr::Aggregate(a) => self.aggregate(a),
            Expr::Binary(b) => self.binary(b),
            _ => None,
        }
    }

    fn scalar(&self, expr: &Expr) -> Option<Vec<f64>> {
        match self.eval(expr)? {
            Rv::Scalar(v) => Some(v),
            Rv::Vector(_) => None,
        }
    }

    fn vector(&self, expr: &Expr) -> Option<Steps> {
        match self.eval(expr)? {
            Rv::Vector(v) => Some(v),
            Rv::Scalar(_) => None,
        }
    }

    /// An instant selector: the newest non-stale sample of each series in
    /// the lookback window, a cursor per series sliding forward.
    fn selector(&self, vs: &VectorSelector) -> Steps {
        let ev = self.ev;
        let fetched = ev.fetched(vs);
        let refs: Vec<i64> = self
            .ts
            .iter()
            .map(|&t| ev.ref_time(&vs.at, &vs.offset, t))
            .collect();
        let series = fetched.iter().map(|(l, _)| (l.clone(), false)).collect();
        by_series(series, self.ts.len(), |i, row| {
            let points = &fetched[i].1;
            // The references never decrease: the offset and `@` are fixed.
            let mut c = points.partition_point(|p| p.0 <= refs[0]);
            for (step, &r) in refs.iter().enumerate() {
                while c < points.len() && points[c].0 <= r {
                    c += 1;
                }
                if c == 0 {
                    continue;
                }
                let (pt, pv) = points[c - 1];
                if pt <= r - ev.lookback || is_stale(pv) {
                    continue;
                }
                row[step] = Some(pv);
            }
        })
    }

    fn call(&self, c: &Call) -> Option<Rv> {
        let name = c.func.name;
        let args = &c.args.args;
        if super::predictive::FUNCTIONS.contains(&name) {
            return None;
        }
        if name == "histogram_quantile" {
            let q = self.scalar(args.first()?)?;
            let input = self.vector(args.get(1)?)?;
            return Some(Rv::Vector(self.histogram_quantile(&q, input)));
        }
        if !is_range_function(name) || name == "absent_over_time" {
            return None;
        }
        let matrix_idx = usize::from(name == "quantile_over_time");
        let mut arg: &Expr = args.get(matrix_idx)?;
        while let Expr::Paren(p) = arg {
            arg = &p.expr;
        }
        let Expr::MatrixSelector(ms) = arg else {
            return None;
        };
        let n = self.ts.len();
        let scalar_arg = |i: usize| self.scalar(args.get(i)?);
        let q = if name == "quantile_over_time" {
            scalar_arg(0)?
        } else {
            vec![0.0; n]
        };
        let duration = if name == "predict_linear" {
            scalar_arg(1)?
        } else {
            vec![0.0; n]
        };
        let (sf, tf) = if matches!(name, "holt_winters" | "double_exponential_smoothing") {
            let (sf, tf) = (scalar_arg(1)?, scalar_arg(2)?);
            let ok = |x: &f64| *x > 0.0 && *x < 1.0;
            if !sf.iter().all(ok) || !tf.iter().all(ok) {
                return None;
            }
            (sf, tf)
        } else {
            (vec![0.0; n], vec![0.0; n])
        };
        let ev = self.ev;
        let vs = &ms.vs;
        let range = ms.range.as_millis() as i64;
        let fetched = ev.fetched(vs);
        let drop = !keeps_name(name);
        let series: Vec<(LabelSet, bool)> =
            fetched.iter().map(|(l, _)| (l.clone(), drop)).collect();
        // Per series: whether it holds staleness markers (its windows are
        // then filtered) and, for rate and increase, the resets up to
        // each point, so that a window without any skips their scan.
        let stale: Vec<bool> = fetched
            .iter()
            .map(|(_, p)| p.iter().any(|x| is_stale(x.1)))
            .collect();
        let counter = matches!(name, "rate" | "increase");
        let resets: Vec<Vec<u32>> = fetched
            .iter()
            .zip(&stale)
            .map(|((_, p), &stale)| {
                if !counter || stale {
                    return Vec::new();
                }
                let mut n = 0u32;
                let mut out = Vec::with_capacity(p.len());
                out.push(0);
                for w in p.windows(2) {
                    n += u32::from(w[1].1 < w[0].1);
                    out.push(n);
                }
                out
            })
            .collect();
        // Per series: first point after the window start, first after its end.
        let ends: Vec<i64> = self
            .ts
            .iter()
            .map(|&t| ev.ref_time(&vs.at, &vs.offset, t))
            .collect();
        let params: Vec<RangeParams> = (0..n)
            .map(|step| RangeParams {
                q: q[step],
                duration: duration[step],
                sf: sf[step],
                tf: tf[step],
            })
            .collect();
        let mut fresh: Vec<(i64, f64)> = Vec::new();
        // Series by series, so each one's points are read in order.
        let st = by_series(series, n, |i, row| {
            let points = &fetched[i].1;
            // First point after the window start, first after its end.
            let mut l = points.partition_point(|p| p.0 <= ends[0] - range);
            let mut h = l;
            for (step, &end) in ends.iter().enumerate() {
                let start = end - range;
                while l < points.len() && points[l].0 <= start {
                    l += 1;
                }
                h = h.max(l);
                while h < points.len() && points[h].0 <= end {
                    h += 1;
                }
                let window = &points[l..h];
                if counter && !stale[i] && h - l >= 2 && resets[i][h - 1] == resets[i][l] {
                    row[step] = counter_rate_without_resets(start, end, window, name == "rate");
                    continue;
                }
                let pts = if stale[i] && window.iter().any(|p| is_stale(p.1)) {
                    fresh.clear();
                    fresh.extend(window.iter().copied().filter(|p| !is_stale(p.1)));
                    &fresh[..]
                } else {
                    window
                };
                if pts.is_empty() {
                    continue;
                }
                row[step] = range_value(name, pts, start, end, self.ts[step], &params[step]);
            }
        });
        Some(Rv::Vector(st))
    }

    fn histogram_quantile(&self, q: &[f64], input: Steps) -> Steps {
        let mut keys = Interner::default();
        let buckets: Vec<Option<(f64, Id)>> = input
            .series
            .iter()
            .map(|(labels, _)| le_bucket(labels).map(|(ub, key)| (ub, keys.get(key))))
            .collect();
        let mut st = Steps::new(keys.labels.into_iter().map(|l| (l, true)).collect());
        let mut groups: StepGroups<(f64, f64)> = StepGroups::new(st.series.len());
        for (step, &q) in q.iter().enumerate() {
            groups.start();
            for &(id, v) in input.at(step) {
                if let Some((ub, g)) = buckets[id as usize] {
                    groups.add(step, g, (ub, v));
                }
            }
            for (g, buckets) in groups.groups() {
                st.push(*g, bucket_quantile(q, buckets));
            }
            st.end_step();
        }
        st
    }

    fn aggregate(&self, a: &AggregateExpr) -> Option<Rv> {
        let op = a.op.to_string();
        let n = self.ts.len();
        let topk = matches!(op.as_str(), "topk" | "bottomk");
        if !topk
            && !matches!(
                op.as_str(),
                "sum"
                    | "avg"
                    | "count"
                    | "group"
                    | "min"
                    | "max"
                    | "stddev"
                    | "stdvar"
                    | "quantile"
            )
        {
            return None;
        }
        let param = if topk || op == "quantile" {
            let p = self.scalar(a.param.as_deref()?)?;
            if topk && p.iter().any(|k| k.is_nan()) {
                return None;
            }
            p
        } else {
            vec![0.0; n]
        };
        let input = self.vector(&a.expr)?;
        let mut keys = Interner::default();
        let group_of: Vec<Id> = input
            .series
            .iter()
            .map(|(labels, _)| keys.get(group_key(labels, &a.modifier)))
            .collect();
        let mut groups = StepGroups::new(keys.labels.len());
        if topk {
            let top = op == "topk";
            let mut st = Steps::new(input.series.clone());
            for (step, &k) in param.iter().enumerate() {
                let k = k as i64;
                if k >= 1 {
                    groups.start();
                    for &(id, v) in input.at(step) {
                        groups.add(step, group_of[id as usize], (id, v));
                    }
                    for (_, members) in groups.groups() {
                        members.sort_by(|x, y| rank_order(x.1, y.1, top));
                        members.truncate(usize::try_from(k).unwrap_or(usize::MAX));
                        for &(id, v) in members.iter() {
                            st.push(id, v);
                        }
                    }
                }
                st.end_step();
            }
            return Some(Rv::Vector(st));
        }
        // Group g is series 2g without and 2g + 1 with delayed name removal.
        let mut st = Steps::new(
            keys.labels
                .into_iter()
                .flat_map(|l| [(l.clone(), false), (l, true)])
                .collect(),
        );
        let mut vals: Vec<f64> = Vec::new();
        for (step, &q) in param.iter().enumerate() {
            groups.start();
            for &(id, v) in input.at(step) {
                groups.add(step, group_of[id as usize], (id, v));
            }
            for (g, members) in groups.groups() {
                vals.clear();
                vals.extend(members.iter().map(|m| m.1));
                let drop = members.iter().any(|m| input.series[m.0 as usize].1);
                let v = fold(&op, &vals, q).ok()?;
                st.push(*g * 2 + Id::from(drop), v);
            }
            st.end_step();
        }
        Some(Rv::Vector(st))
    }

    fn binary(&self, b: &BinaryExpr) -> Option<Rv> {
        let op = b.op.to_string();
        let return_bool = b.return_bool();
        let set_op = matches!(op.as_str(), "and" | "or" | "unless");
        if !set_op && elem(&op, 0.0, 0.0).is_err() {
            return None;
        }
        let lhs = self.eval(&b.lhs)?;
        let rhs = self.eval(&b.rhs)?;
        let matching = Matching::of(b, set_op);
        let cmp = is_comparison(&op);
        match (lhs, rhs) {
            (Rv::Scalar(l), Rv::Scalar(r)) => {
                if set_op {
                    return None;
                }
                let mut out = Vec::with_capacity(l.len());
                for (l, r) in l.into_iter().zip(r) {
                    let (v, keep) = elem(&op, l, r).ok()?;
                    out.push(if cmp { if keep { 1.0 } else { 0.0 } } else { v });
                }
                Some(Rv::Scalar(out))
            }
            (Rv::Vector(v), Rv::Scalar(s)) if !set_op => {
                Some(Rv::Vector(vector_scalar(&op, v, &s, false, return_bool)?))
            }
            (Rv::Scalar(s), Rv::Vector(v)) if !set_op => {
                Some(Rv::Vector(vector_scalar(&op, v, &s, true, return_bool)?))
            }
            (Rv::Vector(l), Rv::Vector(r)) if set_op => {
                Some(Rv::Vector(set_operation(&op, l, r, &matching)))
            }
            (Rv::Vector(l), Rv::Vector(r)) => Some(Rv::Vector(vector_vector(
                &op,
                l,
                r,
                &matching,
                return_bool,
                self.ts.len(),
            )?)),
            _ => None,
        }
    }
}

fn vector_scalar(
    op: &str,
    mut v: Steps,
    scalar: &[f64],
    swap: bool,
    return_bool: bool,
) -> Option<Steps> {
    let cmp = is_comparison(op);
    for s in &mut v.series {
        s.1 = s.1 || return_bool || !cmp;
    }
    let mut out = Steps::new(v.series);
    for (step, &sc) in scalar.iter().enumerate() {
        for &(id, x) in &v.samples[v.bounds[step]..v.bounds[step + 1]] {
            if let Some(value) = scalar_elem(op, x, sc, swap, return_bool).ok()? {
                out.push(id, value);
            }
        }
        out.end_step();
    }
    Some(out)
}

/// The match signature of each series of both sides, as numbers.
fn signatures(m: &Matching<'_>, l: &Steps, r: &Steps) -> (Vec<usize>, Vec<usize>, usize) {
    let mut ids: HashMap<Vec<(String, String)>, usize> = HashMap::new();
    let mut sig = |labels: &LabelSet| {
        let n = ids.len();
        *ids.entry(m.sig(labels)).or_insert(n)
    };
    let ls = l.series.iter().map(|s| sig(&s.0)).collect();
    let rs = r.series.iter().map(|s| sig(&s.0)).collect();
    (ls, rs, ids.len())
}

fn set_operation(op: &str, l: Steps, r: Steps, m: &Matching<'_>) -> Steps {
    let (lsig, rsig, n) = signatures(m, &l, &r);
    let offset = l.series.len() as Id;
    let mut series = l.series.clone();
    series.extend(r.series.iter().cloned());
    let mut out = Steps::new(series);
    let mut present = vec![0usize; n];
    for step in 0..l.bounds.len() - 1 {
        let (lv, rv) = (l.at(step), r.at(step));
        match op {
            "or" => {
                for &(id, v) in lv {
                    present[lsig[id as usize]] = step + 1;
                    out.push(id, v);
                }
                for &(id, v) in rv {
                    if present[rsig[id as usize]] != step + 1 {
                        out.push(id + offset, v);
                    }
                }
            }
            _ => {
                for &(id, _) in rv {
                    present[rsig[id as usize]] = step + 1;
                }
                let want = op == "and";
                for &(id, v) in lv {
                    if (present[lsig[id as usize]] == step + 1) == want {
                        out.push(id, v);
                    }
                }
            }
        }
        out.end_step();
    }
    out
}

fn vector_vector(
    op: &str,
    lhs: Steps,
    rhs: Steps,
    m: &Matching<'_>,
    return_bool: bool,
    steps: usize,
) -> Option<Steps> {
    let cmp = is_comparison(op);
    let one_to_many = matches!(m.card, VectorMatchCardinality::OneToMany(_));
    let one_to_one = matches!(m.card, VectorMatchCardinality::OneToOne);
    let (lhs, rhs) = if one_to_many { (rhs, lhs) } else { (lhs, rhs) };
    let (lsig, rsig, n) = signatures(m, &lhs, &rhs);
    let mut metrics = Interner::default();
    // (lhs series, rhs series) -> result labels; per lhs series, the
    // last pair (the same at every step, usually).
    let mut metric_of: HashMap<(Id, Id), Id> = HashMap::new();
    let mut last: Vec<(Id, Id)> = vec![(Id::MAX, 0); lhs.series.len()];
    // Per result labels, the output series without / with delayed name
    // removal.
    let mut out_id: Vec<[Id; 2]> = Vec::new();
    let mut series: Vec<(LabelSet, bool)> = Vec::new();
    let mut samples: Vec<(Id, f64)> = Vec::new();
    let mut bounds = vec![0usize];
    // Per signature: step (+1) its right sample was seen at, and which.
    let mut right = vec![(0usize, 0usize); n];
    let mut matched = vec![0usize; n];
    let mut seen: HashSet<(usize, Id)> = HashSet::new();
    for step in 0..steps {
        let (lv, rv) = (lhs.at(step), rhs.at(step));
        for (j, &(id, _)) in rv.iter().enumerate() {
            let slot = &mut right[rsig[id as usize]];
            if slot.0 == step + 1 {
                return None;
            }
            *slot = (step + 1, j);
        }
        seen.clear();
        for &(lid, lval) in lv {
            let sig = lsig[lid as usize];
            if right[sig].0 != step + 1 {
                continue;
            }
            let (rid, rval) = rv[right[sig].1];
            let metric = match last[lid as usize] {
                (r, metric) if r == rid => metric,
                _ => {
                    let metric = *metric_of.entry((lid, rid)).or_insert_with(|| {
                        metrics.get(m.result_metric(
                            &lhs.series[lid as usize].0,
                            &rhs.series[rid as usize].0,
                        ))
                    });
                    last[lid as usize] = (rid, metric);
                    metric
                }
            };
            if one_to_one {
                if matched[sig] == step + 1 {
                    return None;
                }
                matched[sig] = step + 1;
            } else if !seen.insert((sig, metric)) {
                return None;
            }
            let (fl, fr) = if one_to_many {
                (rval, lval)
            } else {
                (lval, rval)
            };
            let (mut value, keep) = elem(op, fl, fr).ok()?;
            if return_bool {
                value = if keep { 1.0 } else { 0.0 };
            } else if !keep {
                continue;
            }
            let drop = if cmp && !return_bool {
                if one_to_many {
                    rhs.series[rid as usize].1
                } else {
                    lhs.series[lid as usize].1
                }
            } else {
                true
            };
            if out_id.len() <= metric as usize {
                out_id.resize(metric as usize + 1, [Id::MAX; 2]);
            }
            let slot = &mut out_id[metric as usize][usize::from(drop)];
            if *slot == Id::MAX {
                series.push((metrics.labels[metric as usize].clone(), drop));
                *slot = (series.len() - 1) as Id;
            }
            let id = *slot;
            samples.push((id, value));
        }
        bounds.push(samples.len());
    }
    Some(Steps {
        series,
        bounds,
        samples,
    })
}
