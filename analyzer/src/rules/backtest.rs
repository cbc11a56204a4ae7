//! Rule backtesting: evaluate rule groups over history and report when
//! each alert would have gone pending, fired and resolved.
//!
//! The caller loads the history the rules read into a
//! [`SharedMemoryStore`] ([`selectors`] says which series over which span),
//! then [`backtest`] steps every group on its interval from `from` to `to`
//! exactly as the live rule manager would (same [`evaluate_group`]), with
//! recorded series and `ALERTS` written into the same store, and turns the
//! alert states after each step into [`Episode`]s.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use promql_parser::parser::{Expr, Offset, VectorSelector};
use serde::Serialize;
use vigie_model::AlertState;

use super::group::{EvalContext, RuleGroup, SharedMemoryStore, evaluate_group};
use crate::AnalyzerError;
use crate::promql::parse;

/// One alert's life: pending, maybe firing, maybe resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Episode {
    /// The alerting rule.
    pub alertname: String,
    /// The alert's labels (rule labels included).
    pub labels: BTreeMap<String, String>,
    /// When the condition first held (ms).
    pub pending_at_ms: i64,
    /// When it fired, if it did (ms).
    pub fired_at_ms: Option<i64>,
    /// When it resolved or, if it never fired, stopped pending (ms); `None`
    /// when still active at the end of the backtest.
    pub ended_at_ms: Option<i64>,
}

/// Per-rule figures of a backtest.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RuleSummary {
    /// Episodes that fired.
    pub fired: usize,
    /// Episodes that went pending and never fired.
    pub pending_only: usize,
    /// Total firing time (ms), episodes still firing counted to the end.
    pub firing_ms: i64,
    /// Median time from pending to firing (ms) of the episodes that fired.
    pub median_pending_ms: Option<i64>,
}

/// What a backtest found.
#[derive(Debug, Clone, Serialize)]
pub struct BacktestReport {
    /// Start of the backtest (ms).
    pub from_ms: i64,
    /// End of the backtest (ms).
    pub to_ms: i64,
    /// Group evaluations run.
    pub evaluations: usize,
    /// Every episode, in order of `pending_at_ms`.
    pub episodes: Vec<Episode>,
    /// Figures per alerting rule (every rule, also those that never fired).
    pub rules: BTreeMap<String, RuleSummary>,
    /// Rule evaluation errors: (rule, first error, count).
    pub errors: Vec<(String, String, usize)>,
}

fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => d.as_millis() as i64,
        Some(Offset::Neg(d)) => -(d.as_millis() as i64),
    }
}

/// The selector's text without `offset` and `@` (those are applied when
/// evaluating over the loaded data).
fn plain(vs: &VectorSelector) -> String {
    VectorSelector {
        offset: None,
        at: None,
        ..vs.clone()
    }
    .to_string()
}

fn walk(expr: &Expr, extent: i64, out: &mut Vec<(String, i64)>) {
    match expr {
        Expr::VectorSelector(vs) => out.push((plain(vs), extent + offset_ms(&vs.offset))),
        Expr::MatrixSelector(ms) => out.push((
            plain(&ms.vs),
            extent + ms.range.as_millis() as i64 + offset_ms(&ms.vs.offset),
        )),
        Expr::Subquery(sq) => walk(
            &sq.expr,
            extent + sq.range.as_millis() as i64 + offset_ms(&sq.offset),
            out,
        ),
        Expr::Paren(p) => walk(&p.expr, extent, out),
        Expr::Unary(u) => walk(&u.expr, extent, out),
        Expr::Binary(b) => {
            walk(&b.lhs, extent, out);
            walk(&b.rhs, extent, out);
        }
        Expr::Aggregate(a) => {
            if let Some(p) = &a.param {
                walk(p, extent, out);
            }
            walk(&a.expr, extent, out);
        }
        Expr::Call(c) => c.args.args.iter().for_each(|a| walk(a, extent, out)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// The series every rule of `groups` reads: each selector (PromQL text,
/// without `offset`/`@`) and how far before an evaluation time it looks
/// (lookback, ranges, offsets and the groups' `query_offset`, in ms).
/// Load each over `[from - extent, to]` before [`backtest`].
pub fn selectors(
    groups: &[RuleGroup],
    ctx: &EvalContext,
) -> Result<Vec<(String, i64)>, AnalyzerError> {
    let mut out = Vec::new();
    let lookback = ctx.engine.lookback_ms;
    for g in groups {
        let base = lookback + g.query_offset().as_millis() as i64;
        let exprs = g
            .rules()
            .iter()
            .flat_map(|r| std::iter::once(r.expr()).chain(r.resolve_expr()))
            .chain(g.recording_rules().iter().map(|r| r.expr()));
        for e in exprs {
            walk(&parse(e)?, base, &mut out);
        }
    }
    Ok(out)
}

/// Evaluates `groups` over `store` from `from_ms` to `to_ms` (each on its
/// interval, or every `step` when given) and reports the alerts' episodes.
/// `progress(done, total)` is called after each step.
pub async fn backtest(
    groups: &mut [RuleGroup],
    store: &SharedMemoryStore,
    ctx: &EvalContext,
    from_ms: i64,
    to_ms: i64,
    step: Option<Duration>,
    progress: &mut dyn FnMut(u64, u64),
) -> BacktestReport {
    let interval = |g: &RuleGroup| step.unwrap_or(g.interval()).as_millis().max(1) as i64;
    let mut next: Vec<i64> = groups.iter().map(|_| from_ms).collect();
    let total: u64 = groups
        .iter()
        .map(|g| ((to_ms - from_ms) / interval(g) + 1).max(0) as u64)
        .sum();
    let mut open: HashMap<(String, String), Episode> = HashMap::new();
    let mut done: Vec<Episode> = Vec::new();
    let mut errors: BTreeMap<String, (String, usize)> = BTreeMap::new();
    let mut evaluations = 0usize;
    // The group due first goes next, so groups interleave in time.
    while let Some(gi) = (0..groups.len())
        .filter(|&i| next[i] <= to_ms)
        .min_by_key(|&i| next[i])
    {
        let t = next[gi];
        next[gi] += interval(&groups[gi]);
        let group = &mut groups[gi];
        let result = evaluate_group(group, store, t, ctx).await;
        evaluations += 1;
        for (rule, e) in result.errors {
            errors.entry(rule).or_insert((e, 0)).1 += 1;
        }
        for rule in group.rules() {
            let mut active = std::collections::HashSet::new();
            for a in rule.alerts() {
                let key = (rule.name().to_string(), a.fingerprint());
                active.insert(key.clone());
                let ep = open.entry(key).or_insert_with(|| Episode {
                    alertname: rule.name().to_string(),
                    labels: a
                        .labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    pending_at_ms: a.active_at_ms,
                    fired_at_ms: None,
                    ended_at_ms: None,
                });
                if a.state == AlertState::Firing && ep.fired_at_ms.is_none() {
                    ep.fired_at_ms = a.fired_at_ms.or(Some(t));
                }
            }
            let ended: Vec<(String, String)> = open
                .keys()
                .filter(|k| k.0 == rule.name() && !active.contains(*k))
                .cloned()
                .collect();
            for k in ended {
                if let Some(mut ep) = open.remove(&k) {
                    ep.ended_at_ms = Some(t);
                    done.push(ep);
                }
            }
        }
        progress(evaluations as u64, total);
    }
    done.extend(open.into_values());
    done.sort_by(|a, b| {
        (a.pending_at_ms, &a.alertname, &a.labels).cmp(&(b.pending_at_ms, &b.alertname, &b.labels))
    });
    let mut rules: BTreeMap<String, RuleSummary> = groups
        .iter()
        .flat_map(|g| {
            g.rules()
                .iter()
                .map(|r| (r.name().to_string(), RuleSummary::default()))
        })
        .collect();
    let mut pendings: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for ep in &done {
        let s = rules.entry(ep.alertname.clone()).or_default();
        match ep.fired_at_ms {
            Some(f) => {
                s.fired += 1;
                s.firing_ms += ep.ended_at_ms.unwrap_or(to_ms) - f;
                pendings
                    .entry(ep.alertname.clone())
                    .or_default()
                    .push(f - ep.pending_at_ms);
            }
            None => s.pending_only += 1,
        }
    }
    for (name, mut p) in pendings {
        p.sort_unstable();
        if let Some(s) = rules.get_mut(&name) {
            s.median_pending_ms = p.get(p.len() / 2).copied();
        }
    }
    BacktestReport {
        from_ms,
        to_ms,
        evaluations,
        episodes: done,
        rules,
        errors: errors
            .into_iter()
            .map(|(rule, (e, n))| (rule, e, n))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promql::MemoryStore;
    use crate::rules::parse_rule_file;

    const RULES: &str = r#"
groups:
  - name: t
    interval: 1m
    rules:
      - record: job:x:max
        expr: max by (job) (x)
      - alert: High
        expr: job:x:max > 10
        for: 3m
"#;

    fn labels(pairs: &[(&str, &str)]) -> crate::promql::LabelSet {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[tokio::test]
    async fn reports_pending_firing_and_resolved() {
        let path = std::path::Path::new("r.yml");
        let mut groups = parse_rule_file(path, RULES, Duration::from_secs(60)).expect("rules");
        let ctx = EvalContext::default();
        let sel = selectors(&groups, &ctx).expect("selectors");
        let texts: Vec<&str> = sel.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(texts, ["job:x:max", "x"]);
        assert!(sel.iter().all(|(_, extent)| *extent == 300_000));

        let mut mem = MemoryStore::new();
        // x: 0 for 10 min, 20 for 10 min (fires after 3 min pending),
        // 0 for 10 min, 20 for 2 min (pending only), then 0.
        for i in 0..=40 {
            let v = match i {
                10..20 | 30..32 => 20.0,
                _ => 0.0,
            };
            mem.add(labels(&[("__name__", "x"), ("job", "a")]), i * 60_000, v);
        }
        let store = SharedMemoryStore::new(mem);
        let mut calls = 0;
        let report = backtest(
            &mut groups,
            &store,
            &ctx,
            0,
            40 * 60_000,
            None,
            &mut |d, t| {
                calls += 1;
                assert!(d <= t);
            },
        )
        .await;
        assert_eq!(report.evaluations, 41);
        assert_eq!(calls, 41);
        assert_eq!(report.episodes.len(), 2, "{:?}", report.episodes);
        let first = &report.episodes[0];
        assert_eq!(first.alertname, "High");
        assert_eq!(first.labels.get("job").map(String::as_str), Some("a"));
        assert_eq!(first.pending_at_ms, 10 * 60_000);
        assert_eq!(first.fired_at_ms, Some(13 * 60_000));
        assert_eq!(first.ended_at_ms, Some(20 * 60_000));
        let second = &report.episodes[1];
        assert_eq!(second.fired_at_ms, None);
        assert_eq!(second.ended_at_ms, Some(32 * 60_000));
        let s = &report.rules["High"];
        assert_eq!(s.fired, 1);
        assert_eq!(s.pending_only, 1);
        assert_eq!(s.firing_ms, 7 * 60_000);
        assert_eq!(s.median_pending_ms, Some(3 * 60_000));
        assert!(report.errors.is_empty());
    }
}
