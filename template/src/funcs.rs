//! Functions: Go's builtins, Prometheus' rule template functions and
//! Alertmanager's notification template functions.

use std::sync::Arc;

use crate::Dialect;
use crate::format::{
    html_escape, humanize, humanize_duration, humanize_timestamp, humanize1024, query_escape,
    sprintf, title,
};
use crate::value::Value;

/// Go's `text/template` builtins.
const BUILTINS: &[&str] = &[
    "and", "or", "not", "len", "index", "eq", "ne", "lt", "le", "gt", "ge", "print", "printf",
    "println", "html", "urlquery",
];

/// Prometheus' rule template functions (`query` is reported at run time).
const PROMETHEUS: &[&str] = &[
    "humanize",
    "humanize1024",
    "humanizeDuration",
    "humanizePercentage",
    "humanizeTimestamp",
    "toUpper",
    "toLower",
    "title",
    "stripPort",
    "reReplaceAll",
    "match",
    "safeHtml",
    "query",
];

/// Alertmanager's notification template functions.
const ALERTMANAGER: &[&str] = &[
    "toUpper",
    "toLower",
    "title",
    "trimSpace",
    "join",
    "match",
    "safeHtml",
    "reReplaceAll",
    "stringSlice",
    "date",
    "tz",
    "since",
    "humanizeDuration",
    "toJson",
    "urlUnescape",
];

/// Whether `name` is a function of `dialect`.
pub(crate) fn is_func(dialect: Dialect, name: &str) -> bool {
    BUILTINS.contains(&name)
        || match dialect {
            Dialect::Prometheus => PROMETHEUS.contains(&name),
            Dialect::Alertmanager => ALERTMANAGER.contains(&name),
        }
}

fn one(name: &str, args: &[Value]) -> Result<Value, String> {
    match args {
        [v] => Ok(v.clone()),
        _ => Err(format!(
            "wrong number of args for {name}: want 1 got {}",
            args.len()
        )),
    }
}

fn string(v: &Value) -> Result<String, String> {
    match v {
        Value::Str(s) | Value::Html(s) => Ok(s.clone()),
        other => Err(format!("expected string; found {}", other.type_name())),
    }
}

fn ordering(name: &str, a: &Value, b: &Value) -> Result<Option<std::cmp::Ordering>, String> {
    let incompatible = || Err("incompatible types for comparison".to_string());
    Ok(match (a, b) {
        (Value::Str(x) | Value::Html(x), Value::Str(y) | Value::Html(y)) => x.partial_cmp(y),
        (Value::Bool(x), Value::Bool(y)) if matches!(name, "eq" | "ne") => x.partial_cmp(y),
        (Value::Int(x), Value::Int(y)) => x.partial_cmp(y),
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
            a.to_float()?.partial_cmp(&b.to_float()?)
        }
        (Value::Time(x), Value::Time(y)) if matches!(name, "eq" | "ne") => x.partial_cmp(y),
        (Value::Nil, Value::Nil) if matches!(name, "eq" | "ne") => Some(std::cmp::Ordering::Equal),
        _ => return incompatible(),
    })
}

fn compare(name: &str, args: &[Value]) -> Result<Value, String> {
    use std::cmp::Ordering::*;
    let Some((a, rest)) = args.split_first() else {
        return Err(format!("wrong number of args for {name}: want 2"));
    };
    if rest.is_empty() || (name != "eq" && rest.len() != 1) {
        return Err(format!("wrong number of args for {name}: want 2"));
    }
    if name == "eq" {
        for b in rest {
            if ordering(name, a, b)? == Some(Equal) {
                return Ok(Value::Bool(true));
            }
        }
        return Ok(Value::Bool(false));
    }
    let ord = ordering(name, a, &rest[0])?;
    Ok(Value::Bool(match name {
        "ne" => ord != Some(Equal),
        "lt" => ord == Some(Less),
        "le" => matches!(ord, Some(Less | Equal)),
        "gt" => ord == Some(Greater),
        _ => matches!(ord, Some(Greater | Equal)),
    }))
}

fn regex(pattern: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(pattern).map_err(|e| format!("bad regular expression: {e}"))
}

/// Go's `fmt.Sprint`: spaces between operands when neither is a string.
fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        let is_str = |v: &Value| matches!(v, Value::Str(_) | Value::Html(_));
        if i > 0 && !is_str(a) && !is_str(&args[i - 1]) {
            out.push(' ');
        }
        out.push_str(&a.print());
    }
    out
}

/// Calls function `name` of `dialect` with `args`.
pub(crate) fn call(dialect: Dialect, name: &str, args: Vec<Value>) -> Result<Value, String> {
    if !is_func(dialect, name) {
        return Err(format!("function {name:?} not defined"));
    }
    let f = |args: &[Value]| one(name, args).and_then(|v| v.to_float());
    let s = |args: &[Value]| one(name, args).map(|v| v.print());
    Ok(match name {
        // Go's builtins.
        "not" => Value::Bool(!one(name, &args)?.truthy()),
        "and" => args
            .iter()
            .find(|a| !a.truthy())
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Nil),
        "or" => args
            .iter()
            .find(|a| a.truthy())
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Nil),
        "eq" | "ne" | "lt" | "le" | "gt" | "ge" => compare(name, &args)?,
        "len" => match one(name, &args)? {
            Value::Str(s) | Value::Html(s) => Value::Int(s.len() as i64),
            Value::Map(m) => Value::Int(m.len() as i64),
            Value::List(l) => Value::Int(l.len() as i64),
            other => return Err(format!("len of type {}", other.type_name())),
        },
        "index" => {
            let Some((first, keys)) = args.split_first() else {
                return Err("wrong number of args for index: want at least 1 got 0".into());
            };
            let mut v = first.clone();
            for k in keys {
                v = match (&v, k) {
                    (Value::Map(m), Value::Str(k)) => {
                        m.get(k).cloned().unwrap_or(Value::Str(String::new()))
                    }
                    (Value::List(l), Value::Int(i)) => l
                        .get(usize::try_from(*i).unwrap_or(usize::MAX))
                        .cloned()
                        .ok_or_else(|| format!("index out of range: {i}"))?,
                    (v, k) => {
                        return Err(format!(
                            "can't index item of type {} with {}",
                            v.type_name(),
                            k.type_name()
                        ));
                    }
                };
            }
            v
        }
        "print" => Value::Str(sprint(&args)),
        "println" => {
            let parts: Vec<String> = args.iter().map(Value::print).collect();
            Value::Str(format!("{}\n", parts.join(" ")))
        }
        "printf" => {
            let Some((fmt, rest)) = args.split_first() else {
                return Err("wrong number of args for printf: want at least 1 got 0".into());
            };
            Value::Str(sprintf(&string(fmt)?, rest))
        }
        "html" => Value::Str(html_escape(&sprint(&args))),
        "urlquery" => Value::Str(query_escape(&sprint(&args))),

        // Shared by Prometheus and Alertmanager.
        "toUpper" => Value::Str(s(&args)?.to_uppercase()),
        "toLower" => Value::Str(s(&args)?.to_lowercase()),
        "title" => Value::Str(title(&s(&args)?)),
        "safeHtml" => Value::Html(s(&args)?),
        "reReplaceAll" => {
            let [pat, repl, text] = args.as_slice() else {
                return Err("reReplaceAll needs (pattern, replacement, text)".into());
            };
            let re = regex(&string(pat)?)?;
            Value::Str(
                re.replace_all(&string(text)?, string(repl)?.as_str())
                    .into_owned(),
            )
        }
        "match" => {
            let [pat, text] = args.as_slice() else {
                return Err("match needs (pattern, text)".into());
            };
            Value::Bool(regex(&string(pat)?)?.is_match(&string(text)?))
        }
        "humanizeDuration" => Value::Str(humanize_duration(f(&args)?)),

        // Prometheus.
        "humanize" => Value::Str(humanize(f(&args)?)),
        "humanize1024" => Value::Str(humanize1024(f(&args)?)),
        "humanizePercentage" => Value::Str(format!(
            "{}%",
            crate::format::go_float(f(&args)? * 100.0, 'g', Some(4))
        )),
        "humanizeTimestamp" => Value::Str(humanize_timestamp(f(&args)?)),
        "stripPort" => {
            let v = s(&args)?;
            Value::Str(match v.rsplit_once(':') {
                Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
                _ => v,
            })
        }
        "query" => return Err("the query function is not supported in Vigie's templates".into()),

        // Alertmanager.
        "trimSpace" => Value::Str(s(&args)?.trim().to_string()),
        "join" => {
            let [sep, list] = args.as_slice() else {
                return Err("join needs (separator, list)".into());
            };
            Value::Str(list.to_strings()?.join(&string(sep)?))
        }
        "stringSlice" => Value::List(Arc::new(
            args.iter()
                .map(|a| string(a).map(Value::Str))
                .collect::<Result<_, _>>()?,
        )),
        "date" => {
            let [layout, Value::Time(t)] = args.as_slice() else {
                return Err("date needs (layout, time)".into());
            };
            Value::Str(crate::format::go_time_format(t, &string(layout)?))
        }
        "tz" => {
            let [zone, Value::Time(t)] = args.as_slice() else {
                return Err("tz needs (zone name, time)".into());
            };
            let zone = string(zone)?;
            let tz: chrono_tz::Tz = zone
                .parse()
                .map_err(|_| format!("unknown time zone {zone:?}"))?;
            Value::Time(t.with_timezone(&tz))
        }
        "since" => {
            let Value::Time(t) = one(name, &args)? else {
                return Err("since needs a time".into());
            };
            let d = chrono::Utc::now().signed_duration_since(t.to_utc());
            Value::Str(go_duration(d.num_milliseconds() as f64 / 1000.0))
        }
        "toJson" => Value::Str(to_json(&one(name, &args)?).to_string()),
        "urlUnescape" => Value::Str(url_unescape(&s(&args)?)?),
        other => return Err(format!("function {other:?} not defined")),
    })
}

/// Go's `time.Duration.String()` for `secs` seconds (millisecond precision).
fn go_duration(secs: f64) -> String {
    if secs == 0.0 {
        return "0s".into();
    }
    let sign = if secs < 0.0 { "-" } else { "" };
    let ms = (secs.abs() * 1000.0).round() as u64;
    if ms < 1000 {
        return format!("{sign}{ms}ms");
    }
    let (h, m) = (ms / 3_600_000, (ms / 60_000) % 60);
    let s = (ms % 60_000) as f64 / 1000.0;
    let mut out = sign.to_string();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&format!("{s}s"));
    out
}

fn to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Nil => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        Value::Str(s) | Value::Html(s) => J::String(s.clone()),
        Value::Time(t) => J::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
        Value::List(l) => J::Array(l.iter().map(to_json).collect()),
        Value::Map(m) => J::Object(m.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
        Value::Struct(s) => J::Object(
            s.fields
                .iter()
                .map(|(k, v)| (k.clone(), to_json(v)))
                .collect(),
        ),
    }
}

/// Go's `url.QueryUnescape`.
fn url_unescape(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        format!("invalid URL escape {:?}", &s[i..(i + 3).min(s.len())])
                    })?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|e| e.to_string())
}
