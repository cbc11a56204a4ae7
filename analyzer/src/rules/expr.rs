//! The rule expressions supported so far: `selector <op> number`.

use promql_parser::label::Matcher;
use promql_parser::parser::{self, Expr};
use vigie_model::{METRIC_NAME_LABEL, SeriesKey};

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl Comparison {
    fn from_token(token: &str) -> Option<Self> {
        Some(match token {
            "==" => Self::Eq,
            "!=" => Self::Ne,
            "<" => Self::Lt,
            "<=" => Self::Le,
            ">" => Self::Gt,
            ">=" => Self::Ge,
            _ => return None,
        })
    }

    /// The operator with its operands swapped (`5 < x` is `x > 5`).
    fn flipped(self) -> Self {
        match self {
            Self::Lt => Self::Gt,
            Self::Le => Self::Ge,
            Self::Gt => Self::Lt,
            Self::Ge => Self::Le,
            other => other,
        }
    }

    /// Applies the comparison; NaN compares false, as in Prometheus.
    pub fn holds(self, lhs: f64, rhs: f64) -> bool {
        match self {
            Self::Eq => lhs == rhs,
            Self::Ne => lhs != rhs,
            Self::Lt => lhs < rhs,
            Self::Le => lhs <= rhs,
            Self::Gt => lhs > rhs,
            Self::Ge => lhs >= rhs,
        }
    }
}

/// `selector <op> threshold`.
#[derive(Debug, Clone)]
pub struct ThresholdExpr {
    matchers: Vec<Matcher>,
    /// The comparison, with the selector on the left.
    pub op: Comparison,
    /// The number compared with.
    pub threshold: f64,
}

fn unparen(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => unparen(&p.expr),
        other => other,
    }
}

fn selector_matchers(e: &Expr) -> Result<Vec<Matcher>, String> {
    let Expr::VectorSelector(vs) = unparen(e) else {
        return Err(format!("`{e}` is not an instant vector selector"));
    };
    if vs.offset.is_some() || vs.at.is_some() {
        return Err("`offset` and `@` are not supported in rules yet".into());
    }
    if !vs.matchers.or_matchers.is_empty() {
        return Err("`or` inside label matchers is not supported yet".into());
    }
    let mut matchers = vs.matchers.matchers.clone();
    if let Some(name) = &vs.name {
        matchers.push(Matcher::new(
            promql_parser::label::MatchOp::Equal,
            METRIC_NAME_LABEL,
            name,
        ));
    }
    Ok(matchers)
}

fn number(e: &Expr) -> Option<f64> {
    match unparen(e) {
        Expr::NumberLiteral(n) => Some(n.val),
        Expr::Unary(u) => number(&u.expr).map(|v| -v),
        _ => None,
    }
}

impl ThresholdExpr {
    /// Parses PromQL and accepts only `selector <op> number` (either order,
    /// without `bool`). The error says what is unsupported.
    pub fn parse(source: &str) -> Result<Self, String> {
        let expr = parser::parse(source).map_err(|e| format!("invalid PromQL: {e}"))?;
        let Expr::Binary(b) = unparen(&expr) else {
            return Err(format!(
                "`{source}` is not supported yet: rules accept `selector <op> number` \
                 (e.g. `node_load1 > 4`); full PromQL comes later"
            ));
        };
        let op = Comparison::from_token(&b.op.to_string()).ok_or_else(|| {
            format!(
                "operator `{}` is not a comparison (use ==, !=, <, <=, >, >=)",
                b.op
            )
        })?;
        if b.return_bool() {
            return Err("the `bool` modifier is not supported in rules yet".into());
        }
        if let Some(threshold) = number(&b.rhs) {
            Ok(Self {
                matchers: selector_matchers(&b.lhs)?,
                op,
                threshold,
            })
        } else if let Some(threshold) = number(&b.lhs) {
            Ok(Self {
                matchers: selector_matchers(&b.rhs)?,
                op: op.flipped(),
                threshold,
            })
        } else {
            Err(format!(
                "`{source}` compares two expressions; only `selector <op> number` is supported yet"
            ))
        }
    }

    /// True when the series matches every label matcher.
    pub fn selects(&self, series: &SeriesKey) -> bool {
        self.matchers.iter().all(|m| {
            let value = if m.name == METRIC_NAME_LABEL {
                series.metric.as_str()
            } else {
                series.labels.get(&m.name).unwrap_or("")
            };
            m.is_match(value)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigie_model::Labels;

    fn key(metric: &str, mount: &str) -> SeriesKey {
        SeriesKey::new(metric, Labels::new().with("mountpoint", mount))
    }

    #[test]
    fn selector_then_number() {
        let e = ThresholdExpr::parse(r#"node_filesystem_avail_bytes{mountpoint="/"} < 1e9"#)
            .expect("parse");
        assert_eq!(e.op, Comparison::Lt);
        assert_eq!(e.threshold, 1e9);
        assert!(e.selects(&key("node_filesystem_avail_bytes", "/")));
        assert!(!e.selects(&key("node_filesystem_avail_bytes", "/boot")));
        assert!(!e.selects(&key("other", "/")));
    }

    #[test]
    fn number_then_selector_flips() {
        let e = ThresholdExpr::parse("0.9 < vigie_anomaly_score").expect("parse");
        assert_eq!(e.op, Comparison::Gt);
        assert!(e.op.holds(0.95, e.threshold));
    }

    #[test]
    fn regex_matchers() {
        let e = ThresholdExpr::parse(r#"{__name__=~"node_.*", mountpoint!~"/boot.*"} > 0"#)
            .expect("parse");
        assert!(e.selects(&key("node_x", "/")));
        assert!(!e.selects(&key("node_x", "/boot/efi")));
    }

    #[test]
    fn rejects_what_is_not_supported_with_a_reason() {
        for bad in [
            "rate(x[5m]) > 1",
            "x > y",
            "x + 1",
            "x > bool 1",
            "x offset 5m > 1",
            "x >",
        ] {
            let err = ThresholdExpr::parse(bad).expect_err(bad);
            assert!(!err.is_empty());
        }
    }

    #[test]
    fn nan_never_compares_true() {
        assert!(!Comparison::Gt.holds(f64::NAN, 0.0));
        assert!(!Comparison::Eq.holds(f64::NAN, f64::NAN));
    }
}
