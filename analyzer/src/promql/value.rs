//! PromQL values: scalars, strings, instant vectors and range vectors.

use std::collections::BTreeMap;
use std::fmt;

use crate::AnalyzerError;

/// A label set as PromQL sees it: every label, `__name__` included.
pub type LabelSet = BTreeMap<String, String>;

/// The label holding the metric name.
pub const NAME: &str = "__name__";

/// Prometheus' staleness marker: a NaN with this exact bit pattern.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The staleness marker as a float.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// True when `v` is a staleness marker (not any NaN: only that bit pattern).
pub fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Labels, `__name__` included.
    pub metric: LabelSet,
    /// Timestamp in ms: the sample's own time for a selector, else the evaluation time.
    pub t: i64,
    /// Value.
    pub v: f64,
    /// Delayed name removal: `__name__` is dropped from the final result.
    pub drop_name: bool,
}

/// One series of a range vector (or of a range query's result).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Labels, `__name__` included.
    pub metric: LabelSet,
    /// Points `(ms, value)` in time order.
    pub points: Vec<(i64, f64)>,
    /// Delayed name removal: `__name__` is dropped from the final result.
    pub drop_name: bool,
}

/// The value of a PromQL expression at one evaluation time, or of a query.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A number.
    Scalar(f64),
    /// A string literal.
    String(String),
    /// An instant vector.
    Vector(Vec<Sample>),
    /// A range vector (or the result of a range query).
    Matrix(Vec<Series>),
}

impl Value {
    /// Prometheus' name of the type (`scalar`, `string`, `vector`, `matrix`).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar(_) => "scalar",
            Value::String(_) => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}

/// The result of a query, as the HTTP API returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    /// Evaluation time of an instant query (ms); the end of a range query.
    pub t: i64,
    /// The value, with `__name__` already dropped where Prometheus drops it.
    pub value: Value,
}

/// A bad or unsupported query (HTTP 400 `bad_data`).
pub fn bad(message: impl Into<String>) -> AnalyzerError {
    AnalyzerError::PromQl {
        message: message.into(),
        execution: false,
    }
}

/// A query whose evaluation failed (HTTP 422 `execution`).
pub fn exec(message: impl Into<String>) -> AnalyzerError {
    AnalyzerError::PromQl {
        message: message.into(),
        execution: true,
    }
}

/// Formats a float as Prometheus does (Go's `FormatFloat(f, 'f', -1, 64)`).
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// Displays a label set the way Prometheus prints it in messages.
pub struct DisplayLabels<'a>(pub &'a LabelSet);

impl fmt::Display for DisplayLabels<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{k}={v:?}")?;
        }
        f.write_str("}")
    }
}

/// True for a valid (legacy) label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_marker_is_a_specific_nan() {
        assert!(is_stale(stale_nan()));
        assert!(!is_stale(f64::NAN));
        assert!(stale_nan().is_nan());
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format_value(1.0), "1");
        assert_eq!(format_value(0.25), "0.25");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(1e21), "1000000000000000000000");
    }
}
