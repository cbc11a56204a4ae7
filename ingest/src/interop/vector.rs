//! Vector's metric events as its `json` codec writes them (Kafka sink,
//! `encoding.codec = "json"`):
//! `{"name":"cpu_seconds_total","namespace":"host","tags":{"cpu":"0"},"timestamp":"2024-05-14T10:15:02.405Z","kind":"absolute","counter":{"value":42.0}}`.
//!
//! The Prometheus name is `<namespace>_<name>` (sanitised), as Vector's
//! own `prometheus_exporter` names it. Values:
//!
//! | Vector | samples |
//! |---|---|
//! | `counter`, `gauge` | one; `incremental` ones are summed per series, as Vector's exporter does |
//! | `set` | one: the number of values |
//! | `aggregated_histogram` (absolute) | `_bucket{le}` (bucket counts made cumulative), `_bucket{le="+Inf"}`, `_sum`, `_count` |
//! | `aggregated_summary` (absolute) | `{quantile}`, `_sum`, `_count` |
//! | `distribution`, `sketch`, incremental histograms and summaries | rejected as unsupported |
//!
//! A tag with several values keeps its last one (Vector's single-value
//! view); a bare tag (`null`) is dropped.

use std::collections::HashMap;

use serde_json::{Map, Value};
use vigie_model::{Labels, Sample, SeriesKey};

use super::Skipped;
use super::names::metric_name;
use crate::error::InteropError;

/// Series whose incremental totals are kept, at most; beyond it every
/// total starts again from 0 (a counter reset to PromQL).
const MAX_TOTALS: usize = 1 << 20;

/// Running totals of incremental counters and gauges, per series.
#[derive(Debug, Default)]
pub struct Totals(HashMap<SeriesKey, f64>);

impl Totals {
    fn add(&mut self, series: &SeriesKey, delta: f64) -> f64 {
        if self.0.len() >= MAX_TOTALS && !self.0.contains_key(series) {
            self.0.clear();
        }
        let total = self.0.entry(series.clone()).or_insert(0.0);
        *total += delta;
        *total
    }
}

fn shape(what: &str) -> InteropError {
    InteropError::Shape(format!("not a Vector metric: {what}"))
}

fn number(o: &Map<String, Value>, key: &str, of: &str) -> Result<f64, InteropError> {
    o.get(key)
        .and_then(Value::as_f64)
        .ok_or_else(|| shape(&format!("`{of}.{key}` must be a number")))
}

fn object<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>, InteropError> {
    v.as_object()
        .ok_or_else(|| shape(&format!("`{what}` must be an object")))
}

/// The samples of one message; `extra` labels win over tags.
pub fn to_samples(
    payload: &[u8],
    extra: &Labels,
    now_ms: i64,
    totals: &mut Totals,
    skipped: &mut Skipped,
) -> Result<Vec<Sample>, InteropError> {
    let value: Value =
        serde_json::from_slice(payload).map_err(|e| InteropError::Json(e.to_string()))?;
    let m = object(&value, "the message")?;
    let name = match m.get("name") {
        Some(Value::String(s)) if !s.is_empty() => s.as_str(),
        _ => return Err(shape("`name` must be a non-empty string")),
    };
    let full = match m.get("namespace") {
        Some(Value::String(ns)) if !ns.is_empty() => format!("{ns}_{name}"),
        None | Some(Value::Null | Value::String(_)) => name.to_string(),
        Some(_) => return Err(shape("`namespace` must be a string")),
    };
    let metric = metric_name(&full)
        .ok_or_else(|| shape(&format!("`{full}` has no character of a metric name")))?;
    let labels = tags(m.get("tags"), extra, skipped)?;
    let ts = match m.get("timestamp") {
        None | Some(Value::Null) => now_ms,
        Some(Value::String(s)) => super::rfc3339_ms(s)?,
        Some(_) => return Err(InteropError::Timestamp("not an RFC 3339 string".into())),
    };
    let incremental = match m.get("kind").and_then(Value::as_str) {
        Some("absolute") | None => false,
        Some("incremental") => true,
        Some(other) => return Err(shape(&format!("unknown kind `{other}`"))),
    };
    let sample = |suffix: &str, labels: Labels, v: f64| {
        Sample::new(format!("{metric}{suffix}"), labels, ts, v)
    };
    if let Some(v) = m.get("counter").or_else(|| m.get("gauge")) {
        let kind = if m.contains_key("counter") {
            "counter"
        } else {
            "gauge"
        };
        let value = number(object(v, kind)?, "value", kind)?;
        let mut s = sample("", labels, value);
        if incremental {
            s.value = totals.add(&s.series, value);
        }
        return Ok(vec![s]);
    }
    if let Some(v) = m.get("set") {
        let values = object(v, "set")?
            .get("values")
            .and_then(Value::as_array)
            .ok_or_else(|| shape("`set.values` must be an array"))?;
        return Ok(vec![sample("", labels, values.len() as f64)]);
    }
    for kind in ["aggregated_histogram", "aggregated_summary"] {
        let Some(v) = m.get(kind) else { continue };
        if incremental {
            return Err(InteropError::Unsupported(format!("incremental {kind}")));
        }
        let o = object(v, kind)?;
        let (count, sum) = (number(o, "count", kind)?, number(o, "sum", kind)?);
        let mut out = if kind == "aggregated_histogram" {
            buckets(o, &labels, count, &sample)?
        } else {
            quantiles(o, &labels, &sample)?
        };
        out.push(sample("_sum", labels.clone(), sum));
        out.push(sample("_count", labels, count));
        return Ok(out);
    }
    for kind in ["distribution", "sketch"] {
        if m.contains_key(kind) {
            return Err(InteropError::Unsupported(kind.into()));
        }
    }
    Err(shape("no counter, gauge, set, histogram or summary value"))
}

fn tags(
    tags: Option<&Value>,
    extra: &Labels,
    skipped: &mut Skipped,
) -> Result<Labels, InteropError> {
    let mut pairs = Vec::new();
    match tags {
        None | Some(Value::Null) => {}
        Some(Value::Object(t)) => {
            for (k, v) in t {
                let value = match v {
                    Value::String(s) => Some(s.as_str()),
                    Value::Array(a) => a.iter().rev().find_map(Value::as_str),
                    _ => None,
                };
                match value {
                    Some(v) => pairs.push((k.as_str(), v)),
                    None => skipped.add("tag_type", 1),
                }
            }
        }
        Some(_) => return Err(shape("`tags` must be an object")),
    }
    Ok(super::names::labels(pairs, extra, skipped))
}

fn buckets(
    o: &Map<String, Value>,
    labels: &Labels,
    count: f64,
    sample: &dyn Fn(&str, Labels, f64) -> Sample,
) -> Result<Vec<Sample>, InteropError> {
    let list = o
        .get("buckets")
        .and_then(Value::as_array)
        .ok_or_else(|| shape("`aggregated_histogram.buckets` must be an array"))?;
    let mut out = Vec::with_capacity(list.len() + 3);
    let mut cumulative = 0.0;
    for b in list {
        let b = object(b, "aggregated_histogram.buckets[]")?;
        let n = number(b, "count", "aggregated_histogram.buckets[]")?;
        cumulative += n;
        // +Inf (JSON has no infinity: null) is the total count below.
        let Some(le) = b.get("upper_limit").and_then(Value::as_f64) else {
            continue;
        };
        out.push(sample(
            "_bucket",
            labels.clone().with("le", le.to_string()),
            cumulative,
        ));
    }
    out.push(sample("_bucket", labels.clone().with("le", "+Inf"), count));
    Ok(out)
}

fn quantiles(
    o: &Map<String, Value>,
    labels: &Labels,
    sample: &dyn Fn(&str, Labels, f64) -> Sample,
) -> Result<Vec<Sample>, InteropError> {
    let list = o
        .get("quantiles")
        .and_then(Value::as_array)
        .ok_or_else(|| shape("`aggregated_summary.quantiles` must be an array"))?;
    list.iter()
        .map(|q| {
            let q = object(q, "aggregated_summary.quantiles[]")?;
            let quantile = number(q, "quantile", "aggregated_summary.quantiles[]")?;
            let value = number(q, "value", "aggregated_summary.quantiles[]")?;
            Ok(sample(
                "",
                labels.clone().with("quantile", quantile.to_string()),
                value,
            ))
        })
        .collect()
}

#[cfg(test)]
#[path = "vector_tests.rs"]
mod tests;
