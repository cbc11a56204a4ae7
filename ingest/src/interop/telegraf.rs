//! Telegraf's JSON serializer (`data_format = "json"` in its Kafka output):
//! `{"fields":{"usage":12.5},"name":"cpu","tags":{"host":"a"},"timestamp":1458229140}`,
//! or, with `use_batch_format`, `{"metrics":[...]}`. The timestamp is an
//! integer in `json_timestamp_units` (seconds by default) or, with
//! `json_timestamp_format`, an RFC 3339 string. Fields map as in line
//! protocol ([`super::names`]).

use std::time::Duration;

use serde_json::Value;

use super::Skipped;
use super::names::{FieldValue, Point};
use crate::error::InteropError;

/// The points of one message.
pub fn parse(
    payload: &[u8],
    units: Duration,
    skipped: &mut Skipped,
) -> Result<Vec<Point>, InteropError> {
    let value: Value =
        serde_json::from_slice(payload).map_err(|e| InteropError::Json(e.to_string()))?;
    let metrics = match &value {
        Value::Object(o) if o.contains_key("metrics") && !o.contains_key("fields") => {
            match &o["metrics"] {
                Value::Array(a) => a.iter().collect(),
                _ => return Err(shape("`metrics` must be an array")),
            }
        }
        Value::Object(_) => vec![&value],
        _ => return Err(shape("expected a JSON object")),
    };
    metrics
        .into_iter()
        .map(|m| point(m, units, skipped))
        .collect()
}

fn shape(what: &str) -> InteropError {
    InteropError::Shape(format!("not a Telegraf JSON metric: {what}"))
}

fn point(m: &Value, units: Duration, skipped: &mut Skipped) -> Result<Point, InteropError> {
    let Value::Object(m) = m else {
        return Err(shape("a metric must be an object"));
    };
    let measurement = match m.get("name") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err(shape("`name` must be a non-empty string")),
    };
    let tags = match m.get("tags") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(t)) => t
            .iter()
            .filter_map(|(k, v)| match v {
                Value::String(s) => Some((k.clone(), s.clone())),
                Value::Number(n) => Some((k.clone(), n.to_string())),
                Value::Bool(b) => Some((k.clone(), b.to_string())),
                _ => {
                    skipped.add("tag_type", 1);
                    None
                }
            })
            .collect(),
        Some(_) => return Err(shape("`tags` must be an object")),
    };
    let Some(Value::Object(f)) = m.get("fields") else {
        return Err(shape("`fields` must be an object"));
    };
    let mut fields = Vec::with_capacity(f.len());
    for (k, v) in f {
        let value = match v {
            Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => FieldValue::Integer(i),
                (None, Some(u), _) => FieldValue::Unsigned(u),
                (None, None, Some(x)) => FieldValue::Float(x),
                (None, None, None) => {
                    skipped.add("field_type", 1);
                    continue;
                }
            },
            Value::Bool(b) => FieldValue::Boolean(*b),
            Value::String(s) => FieldValue::String(s.clone()),
            _ => {
                skipped.add("field_type", 1);
                continue;
            }
        };
        fields.push((k.clone(), value));
    }
    let ts_ms = match m.get("timestamp") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(scaled_ms(n, units)?),
        Some(Value::String(s)) => Some(super::rfc3339_ms(s)?),
        Some(_) => return Err(InteropError::Timestamp("not a number or a string".into())),
    };
    Ok(Point {
        measurement,
        tags,
        fields,
        ts_ms,
    })
}

/// `n` units as milliseconds since the epoch.
fn scaled_ms(n: &serde_json::Number, units: Duration) -> Result<i64, InteropError> {
    let unit_ns = units.as_nanos().max(1);
    let out_of_range = || InteropError::Timestamp(format!("{n} is out of range"));
    if let Some(i) = n.as_i64() {
        let ns = i128::from(i) * i128::try_from(unit_ns).map_err(|_| out_of_range())?;
        return i64::try_from(ns.div_euclid(1_000_000)).map_err(|_| out_of_range());
    }
    let ms = n.as_f64().unwrap_or(f64::NAN) * unit_ns as f64 / 1e6;
    if ms.is_finite() && ms.abs() < 9.0e15 {
        Ok(ms.floor() as i64)
    } else {
        Err(out_of_range())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn points(json: &str, units: Duration) -> Result<Vec<Point>, InteropError> {
        parse(json.as_bytes(), units, &mut Skipped::default())
    }

    #[test]
    fn reads_telegrafs_documented_example() {
        let p = points(
            r#"{"fields":{"field_1":30,"field_2":4,"field_N":59,"n_images":660},"name":"docker","tags":{"host":"raynor"},"timestamp":1458229140}"#,
            Duration::from_secs(1),
        )
        .expect("valid");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].measurement, "docker");
        assert_eq!(p[0].tags, vec![("host".into(), "raynor".into())]);
        assert_eq!(p[0].fields.len(), 4);
        assert_eq!(p[0].ts_ms, Some(1_458_229_140_000));
    }

    #[test]
    fn batch_format_units_and_rfc3339() {
        let json = r#"{"metrics":[
            {"fields":{"v":1.5},"name":"a","tags":{},"timestamp":1458229140123},
            {"fields":{"v":true,"s":"x"},"name":"b","tags":{"n":3},"timestamp":"2016-03-17T15:39:00.5Z"}]}"#;
        let p = points(json, Duration::from_millis(1)).expect("valid");
        assert_eq!(p[0].ts_ms, Some(1_458_229_140_123));
        assert_eq!(p[0].fields, vec![("v".into(), FieldValue::Float(1.5))]);
        assert_eq!(p[1].ts_ms, Some(1_458_229_140_500));
        assert_eq!(p[1].tags, vec![("n".into(), "3".into())]);
        let ns = points(
            r#"{"fields":{"v":1},"name":"a","timestamp":1458229140123456789}"#,
            Duration::from_nanos(1),
        )
        .expect("valid");
        assert_eq!(ns[0].ts_ms, Some(1_458_229_140_123));
    }

    #[test]
    fn rejects_what_is_not_a_telegraf_metric() {
        let s = Duration::from_secs(1);
        let reason = |json: &str| points(json, s).expect_err(json).reason();
        assert_eq!(reason("not json"), "json");
        assert_eq!(reason("[1,2]"), "shape");
        assert_eq!(reason(r#"{"fields":{"v":1}}"#), "shape");
        assert_eq!(reason(r#"{"name":"a"}"#), "shape");
        assert_eq!(reason(r#"{"name":"a","fields":[]}"#), "shape");
        assert_eq!(reason(r#"{"name":"a","fields":{},"tags":1}"#), "shape");
        assert_eq!(reason(r#"{"metrics":{}}"#), "shape");
        assert_eq!(
            reason(r#"{"name":"a","fields":{"v":1},"timestamp":1e300}"#),
            "timestamp"
        );
        assert_eq!(
            reason(r#"{"name":"a","fields":{"v":1},"timestamp":"yesterday"}"#),
            "timestamp"
        );
        assert_eq!(
            reason(r#"{"name":"a","fields":{"v":1},"timestamp":9223372036854775807}"#),
            "timestamp"
        );
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse(&bytes, Duration::from_secs(1), &mut Skipped::default());
        }

        #[test]
        fn never_panics_on_json_like_text(text in "[{}\\[\\]\":,a-z0-9.eE-]{0,120}") {
            let _ = parse(text.as_bytes(), Duration::from_nanos(1), &mut Skipped::default());
        }

        #[test]
        fn reads_back_what_telegraf_would_write(
            name in "[a-z][a-z_]{0,8}",
            v in any::<i64>(),
            f in any::<f64>().prop_filter("finite", |f| f.is_finite()),
            ts in 0i64..4_000_000_000,
        ) {
            let json = serde_json::json!({"name": name, "fields": {"i": v, "f": f}, "tags": {"h": "x"}, "timestamp": ts});
            let p = points(&json.to_string(), Duration::from_secs(1)).expect("valid");
            prop_assert_eq!(&p[0].measurement, &name);
            prop_assert_eq!(p[0].ts_ms, Some(ts * 1000));
            prop_assert!(p[0].fields.contains(&("i".into(), FieldValue::Integer(v))));
            let got_f = p[0].fields.iter().find(|(k, _)| k == "f").map(|(_, v)| v.clone());
            let as_f = match got_f {
                Some(FieldValue::Float(x)) => x,
                Some(FieldValue::Integer(i)) => i as f64,
                Some(FieldValue::Unsigned(u)) => u as f64,
                other => panic!("{other:?}"),
            };
            prop_assert_eq!(as_f, f);
        }
    }
}
