//! The values a template reads: Go's strings, numbers, booleans, maps,
//! slices, structs and `time.Time`, with the methods Alertmanager's data
//! types offer (`KV.SortedPairs`, `.Names`, `.Values`, `.Remove`,
//! `Alerts.Firing`, `.Resolved`, `Time.Format`, ...).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::DateTime;
use chrono_tz::Tz;

use crate::format::{go_float, go_time, go_time_format};

/// A template value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Go's `nil` (or a missing value).
    Nil,
    /// A boolean.
    Bool(bool),
    /// An integer (Go `int`).
    Int(i64),
    /// A float (Go `float64`).
    Float(f64),
    /// A string.
    Str(String),
    /// Trusted HTML (`safeHtml`): not escaped in HTML templates.
    Html(String),
    /// A point in time in a zone (Go `time.Time`).
    Time(DateTime<Tz>),
    /// A slice.
    List(Arc<Vec<Value>>),
    /// A map with string keys, printed and ranged in key order.
    Map(Arc<BTreeMap<String, Value>>),
    /// A struct: a Go type name and named fields.
    Struct(Arc<Struct>),
}

/// A struct value: fields in declaration order.
#[derive(Debug, Clone, PartialEq)]
pub struct Struct {
    /// Go's type name, for `printf "%T"` and error messages.
    pub type_name: String,
    /// `(field name, value)` in declaration order.
    pub fields: Vec<(String, Value)>,
}

impl Struct {
    /// A struct value of type `type_name` with `fields`.
    pub fn value(type_name: &str, fields: Vec<(&str, Value)>) -> Value {
        Value::Struct(Arc::new(Struct {
            type_name: type_name.to_string(),
            fields: fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        }))
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}

impl Value {
    /// A map of strings (Go `map[string]string`, Alertmanager's `KV`).
    pub fn string_map<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Value {
        Value::Map(Arc::new(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), Value::Str(v.to_string())))
                .collect(),
        ))
    }

    /// A slice of values.
    pub fn list(items: Vec<Value>) -> Value {
        Value::List(Arc::new(items))
    }

    /// Go's truth: false, 0, nil, and empty strings, slices and maps are false.
    pub fn truthy(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) | Value::Html(s) => !s.is_empty(),
            Value::Time(_) | Value::Struct(_) => true,
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.is_empty(),
        }
    }

    /// Go's type name (`string`, `float64`, `template.Data`, ...).
    pub fn type_name(&self) -> String {
        match self {
            Value::Nil => "<nil>".into(),
            Value::Bool(_) => "bool".into(),
            Value::Int(_) => "int".into(),
            Value::Float(_) => "float64".into(),
            Value::Str(_) => "string".into(),
            Value::Html(_) => "template.HTML".into(),
            Value::Time(_) => "time.Time".into(),
            Value::List(_) => "[]interface {}".into(),
            Value::Map(_) => "map[string]string".into(),
            Value::Struct(s) => s.type_name.clone(),
        }
    }

    /// Go's `%v`.
    pub fn print(&self) -> String {
        match self {
            Value::Nil => "<nil>".into(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => go_float(*f, 'g', None),
            Value::Str(s) | Value::Html(s) => s.clone(),
            Value::Time(t) => go_time(t),
            Value::List(l) => {
                let inner: Vec<String> = l.iter().map(Value::print).collect();
                format!("[{}]", inner.join(" "))
            }
            Value::Map(m) => {
                let inner: Vec<String> = m
                    .iter()
                    .map(|(k, v)| format!("{k}:{}", v.print()))
                    .collect();
                format!("map[{}]", inner.join(" "))
            }
            Value::Struct(s) => {
                let inner: Vec<String> = s.fields.iter().map(|(_, v)| v.print()).collect();
                format!("{{{}}}", inner.join(" "))
            }
        }
    }

    /// The value as a float, for numeric functions.
    pub fn to_float(&self) -> Result<f64, String> {
        match self {
            Value::Float(f) => Ok(*f),
            Value::Int(i) => Ok(*i as f64),
            Value::Str(s) => {
                parse_go_float(s).ok_or_else(|| format!("cannot convert {s:?} to float"))
            }
            other => Err(format!("cannot convert {} to float", other.type_name())),
        }
    }

    /// The strings of a slice (Go `[]string`).
    pub fn to_strings(&self) -> Result<Vec<String>, String> {
        match self {
            Value::List(l) => l
                .iter()
                .map(|v| match v {
                    Value::Str(s) | Value::Html(s) => Ok(s.clone()),
                    other => Err(format!("expected string; found {}", other.type_name())),
                })
                .collect(),
            other => Err(format!("expected []string; found {}", other.type_name())),
        }
    }

    /// `.name` on this value, with `args` for a method: a struct field, a
    /// map key (missing keys give ""), or a method of maps (`SortedPairs`,
    /// `Names`, `Values`, `Remove`), slices of alerts (`Firing`,
    /// `Resolved`) and times (`Format`, `Unix`, `UTC`, ...).
    pub fn field(&self, name: &str, args: &[Value]) -> Result<Value, String> {
        let no_args = |v: Value| {
            if args.is_empty() {
                Ok(v)
            } else {
                Err(format!(
                    "{name} has arguments but cannot be invoked as function"
                ))
            }
        };
        match self {
            Value::Struct(s) => match s.fields.iter().find(|(k, _)| k == name) {
                Some((_, v)) => no_args(v.clone()),
                None => Err(format!(
                    "can't evaluate field {name} in type {}",
                    s.type_name
                )),
            },
            Value::Map(m) => match name {
                "SortedPairs" => no_args(Value::list(
                    m.iter()
                        .map(|(k, v)| {
                            Struct::value(
                                "template.Pair",
                                vec![("Name", Value::Str(k.clone())), ("Value", v.clone())],
                            )
                        })
                        .collect(),
                )),
                "Names" => no_args(Value::list(
                    m.keys().map(|k| Value::Str(k.clone())).collect(),
                )),
                "Values" => no_args(Value::list(m.values().cloned().collect())),
                "Remove" => {
                    let [names] = args else {
                        return Err(format!(
                            "wrong number of args for Remove: want 1 got {}",
                            args.len()
                        ));
                    };
                    let names = names.to_strings()?;
                    let mut out = (**m).clone();
                    for n in names {
                        out.remove(&n);
                    }
                    Ok(Value::Map(Arc::new(out)))
                }
                key => no_args(m.get(key).cloned().unwrap_or(Value::Str(String::new()))),
            },
            Value::List(l) if matches!(name, "Firing" | "Resolved") => {
                let want = if name == "Firing" {
                    "firing"
                } else {
                    "resolved"
                };
                no_args(Value::list(
                    l.iter()
                        .filter(
                            |a| matches!(a.field("Status", &[]), Ok(Value::Str(s)) if s == want),
                        )
                        .cloned()
                        .collect(),
                ))
            }
            // Alertmanager's `Pairs` (from `SortedPairs`).
            Value::List(l) if matches!(name, "Names" | "Values") => {
                let field = if name == "Names" { "Name" } else { "Value" };
                no_args(Value::list(
                    l.iter()
                        .map(|p| p.field(field, &[]))
                        .collect::<Result<_, _>>()?,
                ))
            }
            Value::Time(t) => time_method(t, name, args),
            Value::Nil => Err(format!("nil pointer evaluating <nil>.{name}")),
            other => Err(format!(
                "can't evaluate field {name} in type {}",
                other.type_name()
            )),
        }
    }
}

fn time_method(t: &DateTime<Tz>, name: &str, args: &[Value]) -> Result<Value, String> {
    use chrono::{Datelike, Timelike};
    let n = |i: i64| Ok(Value::Int(i));
    match (name, args) {
        ("Format", [Value::Str(layout)]) => Ok(Value::Str(go_time_format(t, layout))),
        ("Unix", []) => n(t.timestamp()),
        ("UnixMilli", []) => n(t.timestamp_millis()),
        ("UTC", []) => Ok(Value::Time(t.with_timezone(&Tz::UTC))),
        ("Local", []) => Ok(Value::Time(t.with_timezone(&Tz::UTC))),
        ("IsZero", []) => Ok(Value::Bool(t.timestamp() == ZERO_TIME_UNIX)),
        ("Year", []) => n(i64::from(t.year())),
        ("Month", []) => n(i64::from(t.month())),
        ("Day", []) => n(i64::from(t.day())),
        ("Hour", []) => n(i64::from(t.hour())),
        ("Minute", []) => n(i64::from(t.minute())),
        ("Second", []) => n(i64::from(t.second())),
        ("String", []) => Ok(Value::Str(go_time(t))),
        _ => Err(format!("can't evaluate field {name} in type time.Time")),
    }
}

/// Go's zero time (`0001-01-01T00:00:00Z`) in Unix seconds.
pub const ZERO_TIME_UNIX: i64 = -62_135_596_800;

/// Parses a float as Go's `strconv.ParseFloat` (with `Inf`, `NaN`).
pub fn parse_go_float(s: &str) -> Option<f64> {
    match s.trim().to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => Some(f64::INFINITY),
        "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
        "nan" => Some(f64::NAN),
        t => t.parse().ok(),
    }
}
