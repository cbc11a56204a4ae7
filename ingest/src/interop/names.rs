//! Prometheus names for other tools' metrics, as Telegraf's `prometheus`
//! output spells them, and the point → sample mapping shared by the
//! Influx and Telegraf JSON formats.

use vigie_model::{Labels, Sample};

use super::Skipped;

/// One field value of a point (InfluxDB's data types).
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// `1.5`, `1`, `-2e3`.
    Float(f64),
    /// `1i`.
    Integer(i64),
    /// `1u`.
    Unsigned(u64),
    /// `t`, `true`, `F`, ...
    Boolean(bool),
    /// `"text"`; not a number, so never a sample.
    String(String),
}

/// One point: a measurement, its tags, its fields and an optional time.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Measurement name (Telegraf's metric name), unescaped.
    pub measurement: String,
    /// Tag pairs, unescaped, in message order.
    pub tags: Vec<(String, String)>,
    /// Field pairs, unescaped, in message order; at least one.
    pub fields: Vec<(String, FieldValue)>,
    /// Timestamp in milliseconds since the epoch, when the point has one.
    pub ts_ms: Option<i64>,
}

/// `name` in the charset of a metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`),
/// the way Telegraf's prometheus output sanitises it: a first character
/// outside the set is dropped, later ones become `_`, and `_` is trimmed
/// at both ends. `None` when nothing is left.
pub fn metric_name(name: &str) -> Option<String> {
    sanitize(name, true)
}

/// `name` in the charset of a label name (`[a-zA-Z_][a-zA-Z0-9_]*`), as
/// [`metric_name`] does it; the trim also keeps `__` names out.
pub fn label_name(name: &str) -> Option<String> {
    sanitize(name, false)
}

fn sanitize(name: &str, colon: bool) -> Option<String> {
    let first_ok = |c: char| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':');
    let rest_ok = |c: char| first_ok(c) || c.is_ascii_digit();
    let mut out = String::with_capacity(name.len());
    for (i, c) in name.chars().enumerate() {
        if i == 0 {
            if first_ok(c) {
                out.push(c);
            }
        } else {
            out.push(if rest_ok(c) { c } else { '_' });
        }
    }
    let trimmed = out.trim_matches('_');
    match trimmed.chars().next() {
        None => None,
        // "_1a" trimmed to "1a": keep one `_` so it stays a name.
        Some(c) if c.is_ascii_digit() => Some(format!("_{trimmed}")),
        Some(_) => Some(trimmed.to_string()),
    }
}

/// The metric name of field `field` of `measurement`: the measurement
/// alone for field `value`, else `<measurement>_<field>`, sanitised.
pub fn field_metric_name(measurement: &str, field: &str) -> Option<String> {
    if field == "value" {
        metric_name(measurement)
    } else {
        metric_name(&format!("{measurement}_{field}"))
    }
}

/// Labels from tag pairs (names sanitised, empty values dropped), then the
/// configured `extra` labels, which win on a clash.
pub fn labels<'a>(
    tags: impl IntoIterator<Item = (&'a str, &'a str)>,
    extra: &Labels,
    skipped: &mut Skipped,
) -> Labels {
    let mut labels = Labels::new();
    for (k, v) in tags {
        match label_name(k) {
            Some(k) => labels.insert(k, v),
            None => skipped.add("tag_name", 1),
        }
    }
    for (k, v) in extra.iter() {
        labels.insert(k, v);
    }
    labels
}

/// The samples of `points`: one per numeric or boolean field (bools are
/// 0/1); string fields and unusable names are counted in `skipped`.
pub fn points_to_samples(
    points: &[Point],
    extra: &Labels,
    now_ms: i64,
    skipped: &mut Skipped,
) -> Vec<Sample> {
    let mut out = Vec::new();
    for p in points {
        let tags = p.tags.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        let labels = labels(tags, extra, skipped);
        let ts = p.ts_ms.unwrap_or(now_ms);
        for (field, value) in &p.fields {
            let value = match value {
                FieldValue::Float(v) => *v,
                FieldValue::Integer(v) => *v as f64,
                FieldValue::Unsigned(v) => *v as f64,
                FieldValue::Boolean(b) => f64::from(u8::from(*b)),
                FieldValue::String(_) => {
                    skipped.add("string_field", 1);
                    continue;
                }
            };
            let Some(name) = field_metric_name(&p.measurement, field) else {
                skipped.add("metric_name", 1);
                continue;
            };
            out.push(Sample::new(name, labels.clone(), ts, value));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sanitises_like_telegraf() {
        assert_eq!(metric_name("cpu").as_deref(), Some("cpu"));
        assert_eq!(metric_name("disk.io-time").as_deref(), Some("disk_io_time"));
        assert_eq!(metric_name("1cpu").as_deref(), Some("cpu"));
        assert_eq!(metric_name("ns:m").as_deref(), Some("ns:m"));
        assert_eq!(label_name("ns:m").as_deref(), Some("ns_m"));
        assert_eq!(label_name("__name__").as_deref(), Some("name"));
        assert_eq!(metric_name("éé"), None);
        assert_eq!(metric_name("_1a").as_deref(), Some("_1a"));
        assert_eq!(label_name(""), None);
        assert_eq!(field_metric_name("mem", "value").as_deref(), Some("mem"));
        assert_eq!(
            field_metric_name("mem", "used percent").as_deref(),
            Some("mem_used_percent")
        );
    }

    #[test]
    fn maps_fields_and_tags() {
        let p = Point {
            measurement: "system".into(),
            tags: vec![("host".into(), "a".into()), ("empty".into(), String::new())],
            fields: vec![
                ("load1".into(), FieldValue::Float(0.5)),
                ("n_users".into(), FieldValue::Integer(3)),
                ("up".into(), FieldValue::Boolean(true)),
                ("uptime_format".into(), FieldValue::String("1 day".into())),
            ],
            ts_ms: None,
        };
        let mut skipped = Skipped::default();
        let extra = Labels::new().with("dc", "par1").with("host", "override");
        let got = points_to_samples(&[p], &extra, 42, &mut skipped);
        let names: Vec<_> = got.iter().map(|s| s.series.metric.as_str()).collect();
        assert_eq!(names, ["system_load1", "system_n_users", "system_up"]);
        assert_eq!(got[2].value, 1.0);
        assert!(got.iter().all(|s| s.ts_ms == 42));
        assert_eq!(got[0].series.labels.get("host"), Some("override"));
        assert_eq!(got[0].series.labels.get("empty"), None);
        assert_eq!(skipped.get("string_field"), 1);
    }

    proptest! {
        #[test]
        fn sanitised_names_are_valid(name in "\\PC{0,20}") {
            if let Some(m) = metric_name(&name) {
                prop_assert!(m.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':'));
                prop_assert!(m.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'));
            }
            if let Some(l) = label_name(&name) {
                prop_assert!(crate::config::is_valid_label_name(&l));
                prop_assert!(!l.starts_with("__"));
            }
        }
    }
}
