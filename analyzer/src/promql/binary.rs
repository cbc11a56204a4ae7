//! Binary operators: arithmetic, comparison and set operators, with vector
//! matching (`on`, `ignoring`, `group_left`, `group_right`).

use std::collections::{HashMap, HashSet};

use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};

use super::eval::Evaluator;
use super::value::{DisplayLabels, LabelSet, NAME, Sample, Value, bad, exec};
use crate::AnalyzerError;

pub(crate) fn is_comparison(op: &str) -> bool {
    matches!(op, "==" | "!=" | ">" | "<" | ">=" | "<=")
}

/// `x op scalar` (`scalar op x` when `swap`) for one sample: its value,
/// or `None` when a comparison without `bool` drops it. A comparison keeps
/// the vector side's value.
pub(crate) fn scalar_elem(
    op: &str,
    x: f64,
    scalar: f64,
    swap: bool,
    return_bool: bool,
) -> Result<Option<f64>, AnalyzerError> {
    let (l, r) = if swap { (scalar, x) } else { (x, scalar) };
    let (mut value, keep) = elem(op, l, r)?;
    if is_comparison(op) && swap {
        value = r;
    }
    Ok(if return_bool {
        Some(if keep { 1.0 } else { 0.0 })
    } else {
        keep.then_some(value)
    })
}

/// Applies `op`; returns the value and, for comparisons, whether it holds.
pub(crate) fn elem(op: &str, l: f64, r: f64) -> Result<(f64, bool), AnalyzerError> {
    Ok(match op {
        "+" => (l + r, true),
        "-" => (l - r, true),
        "*" => (l * r, true),
        "/" => (l / r, true),
        "%" => (l % r, true),
        "^" => (l.powf(r), true),
        "atan2" => (l.atan2(r), true),
        "==" => (l, l == r),
        "!=" => (l, l != r),
        ">" => (l, l > r),
        "<" => (l, l < r),
        ">=" => (l, l >= r),
        "<=" => (l, l <= r),
        other => return Err(bad(format!("unsupported binary operator: {other}"))),
    })
}

/// How a binary operator matches the series of its two sides.
pub(crate) struct Matching<'a> {
    /// Cardinality (one-to-one, group_left, group_right, many-to-many).
    pub card: &'a VectorMatchCardinality,
    /// `on(...)` (else `ignoring(...)`, or no modifier).
    pub on: bool,
    /// The labels of `on` or `ignoring`.
    pub labels: &'a [String],
}

static ONE_TO_ONE: VectorMatchCardinality = VectorMatchCardinality::OneToOne;
static MANY_TO_MANY: VectorMatchCardinality = VectorMatchCardinality::ManyToMany;

impl<'a> Matching<'a> {
    /// The vector matching of `b`: its modifier's, or by default one-to-one
    /// on every label (many-to-many for `and`, `or` and `unless`).
    pub(crate) fn of(b: &'a BinaryExpr, set_op: bool) -> Self {
        match &b.modifier {
            Some(m) => Matching {
                card: &m.card,
                on: matches!(m.matching, Some(LabelModifier::Include(_))),
                labels: m
                    .matching
                    .as_ref()
                    .map(|x| x.labels().labels.as_slice())
                    .unwrap_or(&[]),
            },
            None => Matching {
                card: if set_op { &MANY_TO_MANY } else { &ONE_TO_ONE },
                on: false,
                labels: &[],
            },
        }
    }
}

impl Matching<'_> {
    /// The match signature of a series.
    pub(crate) fn sig(&self, m: &LabelSet) -> Vec<(String, String)> {
        m.iter()
            .filter(|(k, _)| {
                let listed = self.labels.iter().any(|l| l == *k);
                if self.on {
                    listed
                } else {
                    !listed && k.as_str() != NAME
                }
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The labels of a vector/vector result from its matched series: the
    /// "many" side's (`lhs`, after swapping for group_right) and the
    /// `group_x(...)` labels of the "one" side (`rhs`).
    pub(crate) fn result_metric(&self, lhs: &LabelSet, rhs: &LabelSet) -> LabelSet {
        let include: &[String] = match self.card {
            VectorMatchCardinality::ManyToOne(l) | VectorMatchCardinality::OneToMany(l) => {
                &l.labels
            }
            _ => &[],
        };
        let mut metric = lhs.clone();
        if matches!(self.card, VectorMatchCardinality::OneToOne) {
            if self.on {
                metric.retain(|k, _| self.labels.iter().any(|l| l == k));
            } else {
                metric.retain(|k, _| !self.labels.iter().any(|l| l == k));
            }
        }
        for l in include {
            match rhs.get(l) {
                Some(v) if !v.is_empty() => {
                    metric.insert(l.clone(), v.clone());
                }
                _ => {
                    metric.remove(l);
                }
            }
        }
        metric
    }

    fn sig_labels(&self, m: &LabelSet) -> LabelSet {
        self.sig(m).into_iter().collect()
    }
}

/// Evaluates a binary expression at `t`.
pub(crate) fn binary(ev: &Evaluator, b: &BinaryExpr, t: i64) -> Result<Value, AnalyzerError> {
    let op = b.op.to_string();
    let return_bool = b.return_bool();
    let lhs = ev.eval(&b.lhs, t)?;
    let rhs = ev.eval(&b.rhs, t)?;
    let matching = Matching::of(b, matches!(op.as_str(), "and" | "or" | "unless"));
    match (lhs, rhs) {
        (Value::Scalar(l), Value::Scalar(r)) => {
            let (v, keep) = elem(&op, l, r)?;
            Ok(Value::Scalar(if is_comparison(&op) {
                if keep { 1.0 } else { 0.0 }
            } else {
                v
            }))
        }
        (Value::Vector(l), Value::Scalar(r)) => vector_scalar(&op, l, r, false, return_bool, t),
        (Value::Scalar(l), Value::Vector(r)) => vector_scalar(&op, r, l, true, return_bool, t),
        (Value::Vector(l), Value::Vector(r)) => match op.as_str() {
            "and" => {
                let right: HashSet<_> = r.iter().map(|s| matching.sig(&s.metric)).collect();
                Ok(Value::Vector(
                    l.into_iter()
                        .filter(|s| right.contains(&matching.sig(&s.metric)))
                        .map(|s| Sample { t, ..s })
                        .collect(),
                ))
            }
            "unless" => {
                let right: HashSet<_> = r.iter().map(|s| matching.sig(&s.metric)).collect();
                Ok(Value::Vector(
                    l.into_iter()
                        .filter(|s| !right.contains(&matching.sig(&s.metric)))
                        .map(|s| Sample { t, ..s })
                        .collect(),
                ))
            }
            "or" => {
                let left: HashSet<_> = l.iter().map(|s| matching.sig(&s.metric)).collect();
                let mut out: Vec<Sample> = l.into_iter().map(|s| Sample { t, ..s }).collect();
                out.extend(
                    r.into_iter()
                        .filter(|s| !left.contains(&matching.sig(&s.metric)))
                        .map(|s| Sample { t, ..s }),
                );
                Ok(Value::Vector(out))
            }
            _ => vector_vector(&op, l, r, &matching, return_bool, t),
        },
        (l, r) => Err(bad(format!(
            "binary expression between {} and {} is not supported",
            l.type_name(),
            r.type_name()
        ))),
    }
}

fn vector_scalar(
    op: &str,
    v: Vec<Sample>,
    scalar: f64,
    swap: bool,
    return_bool: bool,
    t: i64,
) -> Result<Value, AnalyzerError> {
    let cmp = is_comparison(op);
    let mut out = Vec::with_capacity(v.len());
    for s in v {
        let Some(value) = scalar_elem(op, s.v, scalar, swap, return_bool)? else {
            continue;
        };
        out.push(Sample {
            v: value,
            t,
            drop_name: s.drop_name || return_bool || !cmp,
            metric: s.metric,
        });
    }
    Ok(Value::Vector(out))
}

fn vector_vector(
    op: &str,
    lhs: Vec<Sample>,
    rhs: Vec<Sample>,
    m: &Matching<'_>,
    return_bool: bool,
    t: i64,
) -> Result<Value, AnalyzerError> {
    let cmp = is_comparison(op);
    let one_to_many = matches!(m.card, VectorMatchCardinality::OneToMany(_));
    let one_to_one = matches!(m.card, VectorMatchCardinality::OneToOne);
    let (lhs, rhs) = if one_to_many { (rhs, lhs) } else { (lhs, rhs) };
    let mut right: HashMap<Vec<(String, String)>, &Sample> = HashMap::with_capacity(rhs.len());
    for rs in &rhs {
        let sig = m.sig(&rs.metric);
        if let Some(dup) = right.get(&sig) {
            let side = if one_to_many { "left" } else { "right" };
            return Err(exec(format!(
                "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                DisplayLabels(&m.sig_labels(&rs.metric)),
                DisplayLabels(&rs.metric),
                DisplayLabels(&dup.metric),
            )));
        }
        right.insert(sig, rs);
    }
    let mut matched: HashMap<Vec<(String, String)>, HashSet<LabelSet>> = HashMap::new();
    let mut out = Vec::new();
    for ls in &lhs {
        let sig = m.sig(&ls.metric);
        let Some(rs) = right.get(&sig) else {
            continue;
        };
        let metric = m.result_metric(&ls.metric, &rs.metric);
        let seen = matched.entry(sig).or_default();
        if one_to_one {
            if !seen.is_empty() {
                return Err(exec(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
                ));
            }
            seen.insert(LabelSet::new());
        } else if !seen.insert(metric.clone()) {
            return Err(exec(format!(
                "multiple matches for matching labels {}, to avoid this use group_left/group_right",
                DisplayLabels(&m.sig_labels(&ls.metric))
            )));
        }
        let (fl, fr) = if one_to_many {
            (rs.v, ls.v)
        } else {
            (ls.v, rs.v)
        };
        let (mut value, keep) = elem(op, fl, fr)?;
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
        } else if !keep {
            continue;
        }
        let keeps_name = cmp && !return_bool;
        let drop_name = if keeps_name {
            if one_to_many {
                rs.drop_name
            } else {
                ls.drop_name
            }
        } else {
            true
        };
        out.push(Sample {
            metric,
            t,
            v: value,
            drop_name,
        });
    }
    Ok(Value::Vector(out))
}
