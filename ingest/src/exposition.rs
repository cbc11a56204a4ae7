//! A strict parser for the Prometheus text exposition format (0.0.4).
//!
//! Each sample line becomes one [`Sample`], as Prometheus stores it: a
//! histogram is its `_bucket{le=...}`, `_sum` and `_count` lines, a summary
//! its `{quantile=...}`, `_sum` and `_count` lines. As in Prometheus 3, the
//! `le` of histogram buckets and the `quantile` of summaries are normalized
//! to float formatting (`le="1"` becomes `le="1.0"`).
//!
//! Any line that is not empty, a comment, or `name{labels} value [timestamp]`
//! makes the whole body invalid, so a scrape of garbage reports `up 0`.
//! (`prometheus-parse` is not used here: it skips lines it does not
//! understand and splits label values on `,` and `=`.)

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use vigie_model::{Labels, Sample};

/// Why an exposition body was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpositionError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with the line.
    pub message: String,
}

impl fmt::Display for ExpositionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ExpositionError {}

/// A metric family type from a `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    /// `counter`
    Counter,
    /// `gauge`
    Gauge,
    /// `histogram`
    Histogram,
    /// `summary`
    Summary,
    /// `untyped`
    Untyped,
}

/// One parsed sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleLine<'a> {
    /// Metric name.
    pub name: &'a str,
    /// Label pairs in line order, values unescaped (borrowed from the line
    /// unless they had escapes).
    pub labels: Vec<(&'a str, Cow<'a, str>)>,
    /// Value (NaN and infinities allowed).
    pub value: f64,
    /// Timestamp in ms, if the line has one.
    pub timestamp_ms: Option<i64>,
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn is_metric_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b':'
}

fn is_metric_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b':'
}

fn is_label_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_label_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Parses a float as Prometheus does (`NaN`, `+Inf`, `-Inf`, decimals).
pub fn parse_float(s: &str) -> Option<f64> {
    // Rust accepts "inf"/"infinity"/"nan" in any case with an optional
    // sign, like Go's ParseFloat; it does not accept hex floats or `_`.
    s.parse::<f64>().ok()
}

struct Cursor<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn skip_blanks(&mut self) -> bool {
        let start = self.i;
        while self.peek().is_some_and(is_blank) {
            self.i += 1;
        }
        self.i > start
    }

    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a str {
        let start = self.i;
        while self.peek().is_some_and(&f) {
            self.i += 1;
        }
        &self.s[start..self.i]
    }

    fn expect(&mut self, c: u8, what: &str) -> Result<(), String> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("expected {what}"))
        }
    }

    /// Reads a quoted label value after its opening quote; borrowed from
    /// the line when it has no escape.
    fn label_value(&mut self) -> Result<Cow<'a, str>, String> {
        let start = self.i;
        let rest = &self.b[start..];
        match rest.iter().position(|&b| b == b'"' || b == b'\\') {
            None => Err("unterminated label value".to_string()),
            Some(n) if rest[n] == b'"' => {
                self.i = start + n + 1;
                Ok(Cow::Borrowed(&self.s[start..start + n]))
            }
            Some(_) => self.escaped_label_value(start).map(Cow::Owned),
        }
    }

    /// [`Cursor::label_value`] for a value with escapes.
    fn escaped_label_value(&mut self, mut start: usize) -> Result<String, String> {
        let mut out = String::new();
        self.i = start;
        loop {
            match self.peek() {
                None => return Err("unterminated label value".to_string()),
                Some(b'"') => {
                    out.push_str(&self.s[start..self.i]);
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    out.push_str(&self.s[start..self.i]);
                    self.i += 1;
                    match self.peek() {
                        Some(b'\\') => out.push('\\'),
                        Some(b'"') => out.push('"'),
                        Some(b'n') => out.push('\n'),
                        None => return Err("unterminated label value".to_string()),
                        // Other escapes are kept verbatim, as Prometheus does.
                        Some(_) => {
                            out.push('\\');
                            start = self.i;
                            continue;
                        }
                    }
                    self.i += 1;
                    start = self.i;
                }
                Some(_) => self.i += 1,
            }
        }
    }
}

/// Parses one sample line (not empty, not a comment).
pub fn parse_sample_line(line: &str) -> Result<SampleLine<'_>, String> {
    let mut labels = Vec::new();
    let (name, value, timestamp_ms) = parse_line_into(line, &mut labels)?;
    Ok(SampleLine {
        name,
        labels,
        value,
        timestamp_ms,
    })
}

/// A sample line's name, value and timestamp; its labels go to `labels`
/// (cleared first), a buffer the caller reuses from line to line.
type LineParts<'a> = (&'a str, f64, Option<i64>);

fn parse_line_into<'a>(
    line: &'a str,
    labels: &mut Vec<(&'a str, Cow<'a, str>)>,
) -> Result<LineParts<'a>, String> {
    labels.clear();
    let line = line.trim_matches(|c| c == ' ' || c == '\t' || c == '\r');
    let mut c = Cursor {
        s: line,
        b: line.as_bytes(),
        i: 0,
    };
    if !c.peek().is_some_and(is_metric_start) {
        return Err("expected a metric name".to_string());
    }
    let name = c.take_while(is_metric_char);
    let mut blank = c.skip_blanks();
    if c.peek() == Some(b'{') {
        c.i += 1;
        loop {
            c.skip_blanks();
            if c.peek() == Some(b'}') {
                c.i += 1;
                break;
            }
            if !c.peek().is_some_and(is_label_start) {
                return Err("expected a label name or `}`".to_string());
            }
            let lname = c.take_while(is_label_char);
            c.skip_blanks();
            c.expect(b'=', "`=` after a label name")?;
            c.skip_blanks();
            c.expect(b'"', "a quoted label value")?;
            let value = c.label_value()?;
            if labels.iter().any(|(n, _)| *n == lname) {
                return Err(format!("duplicate label `{lname}`"));
            }
            labels.push((lname, value));
            c.skip_blanks();
            match c.peek() {
                Some(b',') => c.i += 1,
                Some(b'}') => {
                    c.i += 1;
                    break;
                }
                _ => return Err("expected `,` or `}` after a label".to_string()),
            }
        }
        blank = c.skip_blanks();
    }
    if !blank {
        return Err(match c.peek() {
            None => "missing value".to_string(),
            Some(_) => "unexpected character in the metric name".to_string(),
        });
    }
    let value_text = c.take_while(|b| !is_blank(b));
    if value_text.is_empty() {
        return Err("missing value".to_string());
    }
    let value = parse_float(value_text).ok_or_else(|| format!("`{value_text}` is not a number"))?;
    c.skip_blanks();
    let timestamp_ms = if c.peek().is_some() {
        let ts = c.take_while(|b| !is_blank(b));
        let ts = ts
            .parse::<i64>()
            .map_err(|_| format!("`{ts}` is not a timestamp in milliseconds"))?;
        c.skip_blanks();
        if c.peek().is_some() {
            return Err("unexpected text after the timestamp".to_string());
        }
        Some(ts)
    } else {
        None
    };
    Ok((name, value, timestamp_ms))
}

/// Checks one line of an exposition body: empty, a comment, or a sample.
pub fn validate_line(line: &str) -> Result<(), String> {
    match classify(line)? {
        Line::Sample(line) => parse_sample_line(line).map(|_| ()),
        Line::Empty | Line::Comment | Line::Type(..) => Ok(()),
    }
}

enum Line<'a> {
    Empty,
    Comment,
    Type(&'a str, MetricType),
    /// A sample line, trimmed, not parsed yet.
    Sample(&'a str),
}

fn classify(line: &str) -> Result<Line<'_>, String> {
    let trimmed = line.trim_matches(|c| c == ' ' || c == '\t' || c == '\r');
    if trimmed.is_empty() {
        return Ok(Line::Empty);
    }
    let Some(comment) = trimmed.strip_prefix('#') else {
        return Ok(Line::Sample(trimmed));
    };
    let mut words = comment.split([' ', '\t']).filter(|w| !w.is_empty());
    if words.next() != Some("TYPE") {
        return Ok(Line::Comment);
    }
    let (Some(name), Some(kind), None) = (words.next(), words.next(), words.next()) else {
        return Err("a TYPE line needs a metric name and a type".to_string());
    };
    if !name.bytes().next().is_some_and(is_metric_start) || !name.bytes().all(is_metric_char) {
        return Err(format!("invalid metric name `{name}` in TYPE line"));
    }
    let kind = match kind {
        "counter" => MetricType::Counter,
        "gauge" => MetricType::Gauge,
        "histogram" => MetricType::Histogram,
        "summary" => MetricType::Summary,
        "untyped" => MetricType::Untyped,
        other => return Err(format!("unknown metric type `{other}`")),
    };
    Ok(Line::Type(name, kind))
}

/// Formats a float as Go's `strconv.FormatFloat(f, 'g', -1, 64)`, plus
/// `.0` for integers: Prometheus' normalized `le`/`quantile` values.
pub fn format_openmetrics_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.to_string();
    }
    // Shortest round-trip digits and decimal exponent, e.g. "1.5e6".
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if f < 0.0 { "-" } else { "" };
    // strconv's shortest 'g' switches to %e below 1e-4 and from 1e6 up.
    let s = if !(-4..6).contains(&exp) {
        go_exp_format(&digits, exp)
    } else if exp >= 0 {
        let exp = exp as usize;
        if digits.len() > exp + 1 {
            format!("{}.{}", &digits[..=exp], &digits[exp + 1..])
        } else {
            format!("{digits}{}", "0".repeat(exp + 1 - digits.len()))
        }
    } else {
        format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
    };
    let s = format!("{sign}{s}");
    if s.contains(['.', 'e']) {
        s
    } else {
        format!("{s}.0")
    }
}

/// Go's `%e` form for shortest digits: `d.ddde±XX`.
fn go_exp_format(digits: &str, exp: i32) -> String {
    let (first, rest) = digits.split_at(1.min(digits.len()));
    let mantissa = if rest.is_empty() {
        first.to_string()
    } else {
        format!("{first}.{rest}")
    };
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
}

/// Parses a whole exposition body into samples; `default_ts_ms` is used for
/// lines without a timestamp.
pub fn parse(text: &str, default_ts_ms: i64) -> Result<Vec<Sample>, ExpositionError> {
    let mut types: HashMap<&str, MetricType> = HashMap::new();
    let mut out = Vec::new();
    let mut scratch = Vec::new();
    // The normalized label of the previous sample's metric: lines of one
    // family follow each other, so this spares the type lookups.
    let mut last: Option<(&str, Option<&str>)> = None;
    for (n, line) in text.split('\n').enumerate() {
        let err = |message: String| ExpositionError {
            line: n + 1,
            message,
        };
        let line = match classify(line).map_err(err)? {
            Line::Empty | Line::Comment => continue,
            Line::Type(name, kind) => {
                types.insert(name, kind);
                last = None;
                continue;
            }
            Line::Sample(line) => line,
        };
        let (name, value, ts) = parse_line_into(line, &mut scratch).map_err(err)?;
        let normalize = match last {
            Some((last_name, normalize)) if last_name == name => normalize,
            _ => {
                let normalize = normalized_label(&types, name);
                last = Some((name, normalize));
                normalize
            }
        };
        let mut labels = Labels::with_capacity(scratch.len());
        for (k, v) in scratch.drain(..) {
            match normalize {
                Some(l) if l == k => match parse_float(&v) {
                    Some(f) => labels.insert(k, format_openmetrics_float(f)),
                    None => labels.insert(k, &v),
                },
                _ => labels.insert(k, &v),
            }
        }
        out.push(Sample::new(
            name,
            labels,
            ts.unwrap_or(default_ts_ms),
            value,
        ));
    }
    Ok(out)
}

/// The label Prometheus normalizes to float formatting on a sample of
/// `name`: `quantile` of a summary, `le` of a histogram's buckets.
fn normalized_label(types: &HashMap<&str, MetricType>, name: &str) -> Option<&'static str> {
    if types.get(name) == Some(&MetricType::Summary) {
        Some("quantile")
    } else if name
        .strip_suffix("_bucket")
        .and_then(|base| types.get(base))
        == Some(&MetricType::Histogram)
    {
        Some("le")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_labels_values_and_timestamps() {
        let s = parse_sample_line(r#"http_requests_total{method="post",path="/a,b=c", msg="say \"hi\"\n\x"} 1027 1395066363000"#)
            .expect("valid");
        assert_eq!(s.name, "http_requests_total");
        assert_eq!(
            s.labels,
            vec![
                ("method", Cow::Borrowed("post")),
                ("path", Cow::Borrowed("/a,b=c")),
                ("msg", Cow::Owned("say \"hi\"\n\\x".to_string())),
            ]
        );
        assert_eq!(s.value, 1027.0);
        assert_eq!(s.timestamp_ms, Some(1_395_066_363_000));
        assert!(parse_sample_line("x NaN").expect("nan").value.is_nan());
        assert_eq!(
            parse_sample_line("x +Inf").expect("inf").value,
            f64::INFINITY
        );
        assert_eq!(
            parse_sample_line("x{} -Inf").expect("-inf").value,
            f64::NEG_INFINITY
        );
        assert_eq!(
            parse_sample_line("x{a=\"b\",} 1e3")
                .expect("trailing comma")
                .value,
            1000.0
        );
    }

    #[test]
    fn rejects_malformed_lines() {
        for bad in [
            "this is { not exposition",
            "x",
            "x{a=\"b\"}",
            "x{a=b} 1",
            "x{a=\"b} 1",
            "x{a=\"1\",a=\"2\"} 1",
            "x 1 2 3",
            "x one",
            "x 1 1.5",
            "1x 2",
            "x-y 2",
            "x{1a=\"b\"} 1",
            "x{a=\"b\"}1",
            "# TYPE x",
            "# TYPE x countr",
        ] {
            assert!(validate_line(bad).is_err(), "accepted {bad:?}");
        }
        for good in [
            "",
            "   ",
            "# HELP x anything at all {",
            "# random comment",
            "# TYPE x counter",
            "x 1\r",
        ] {
            assert!(validate_line(good).is_ok(), "rejected {good:?}");
        }
    }

    #[test]
    fn body_error_names_the_line() {
        let e = parse("a 1\nb 2\n<html>\n", 0).expect_err("garbage");
        assert_eq!(e.line, 3);
    }

    #[test]
    fn histogram_and_summary_become_lines_with_normalized_bounds() {
        let text = "\
# HELP rpc_seconds RPC latency.
# TYPE rpc_seconds histogram
rpc_seconds_bucket{le=\"0.1\"} 3
rpc_seconds_bucket{le=\"1\"} 5
rpc_seconds_bucket{le=\"+Inf\"} 6
rpc_seconds_sum 2.5
rpc_seconds_count 6
# TYPE gc_seconds summary
gc_seconds{quantile=\"0.5\"} 0.01
gc_seconds_sum 1 1000
gc_seconds_count 9
other{le=\"1\"} 1
";
        let samples = parse(text, 42).expect("valid");
        let got: Vec<String> = samples
            .iter()
            .map(|s| format!("{} {} {}", s.series, s.value, s.ts_ms))
            .collect();
        assert_eq!(
            got,
            vec![
                "rpc_seconds_bucket{le=\"0.1\"} 3 42",
                "rpc_seconds_bucket{le=\"1.0\"} 5 42",
                "rpc_seconds_bucket{le=\"+Inf\"} 6 42",
                "rpc_seconds_sum{} 2.5 42",
                "rpc_seconds_count{} 6 42",
                "gc_seconds{quantile=\"0.5\"} 0.01 42",
                "gc_seconds_sum{} 1 1000",
                "gc_seconds_count{} 9 42",
                "other{le=\"1\"} 1 42",
            ]
        );
    }

    #[test]
    fn go_float_formatting() {
        for (f, want) in [
            (1.0, "1.0"),
            (0.25, "0.25"),
            (100000.0, "100000.0"),
            (1e6, "1e+06"),
            (1.5e7, "1.5e+07"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5, "-2.5"),
            (f64::INFINITY, "+Inf"),
            (f64::NAN, "NaN"),
        ] {
            assert_eq!(format_openmetrics_float(f), want, "{f}");
        }
    }

    /// prometheus-parse as an oracle on input it handles correctly (no `,`
    /// or `=` in label values): same series, values and timestamps.
    #[test]
    fn agrees_with_prometheus_parse_on_simple_input() {
        let text =
            "# TYPE c counter\nc{a=\"x\",b=\"y\"} 3\n# TYPE g gauge\ng 1.5 1000\nu{z=\"1\"} -2\n";
        let ours = parse(text, 7).expect("valid");
        let theirs = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
            .expect("parse");
        assert_eq!(ours.len(), theirs.samples.len());
        for (o, t) in ours.iter().zip(&theirs.samples) {
            assert_eq!(o.series.metric, t.metric);
            let their_labels: Labels = t
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            assert_eq!(o.series.labels, their_labels);
            let v = match t.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            };
            assert_eq!(o.value, v);
        }
        assert_eq!(ours[1].ts_ms, 1000);
        assert_eq!(ours[0].ts_ms, 7);
    }

    fn escape(v: &str) -> String {
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_text(s in ".*") {
            let _ = validate_line(&s);
            let _ = parse(&s, 0);
        }

        #[test]
        fn never_panics_on_exposition_like_text(s in "[a-z_{}=\",\\\\ .0-9#\t\n+-]{0,60}") {
            let _ = parse(&s, 0);
        }

        #[test]
        fn generated_valid_lines_round_trip(
            name in "[a-zA-Z_:][a-zA-Z0-9_:]{0,20}",
            labels in proptest::collection::btree_map("[a-zA-Z_][a-zA-Z0-9_]{0,10}", ".{0,12}", 0..5),
            value in prop_oneof![any::<f64>(), Just(f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY)],
            ts in proptest::option::of(any::<i64>()),
            space in "[ \t]{1,3}",
        ) {
            let value_text = if value.is_nan() {
                "NaN".to_string()
            } else if value == f64::INFINITY {
                "+Inf".to_string()
            } else if value == f64::NEG_INFINITY {
                "-Inf".to_string()
            } else {
                format!("{value:e}")
            };
            let label_text: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
            let mut line = format!("{name}{{{}}}{space}{value_text}", label_text.join(","));
            if let Some(ts) = ts {
                line.push_str(&format!("{space}{ts}"));
            }
            let parsed = parse_sample_line(&line);
            prop_assert!(parsed.is_ok(), "{:?} rejected: {:?}", line, parsed);
            let parsed = parsed.expect("checked");
            prop_assert_eq!(parsed.name, name.as_str());
            let got: Vec<(String, String)> = parsed.labels.iter().map(|(k, v)| ((*k).to_string(), v.to_string())).collect();
            let want: Vec<(String, String)> = labels.into_iter().collect();
            prop_assert_eq!(got, want);
            prop_assert!(parsed.value == value || (value.is_nan() && parsed.value.is_nan()));
            prop_assert_eq!(parsed.timestamp_ms, ts);
        }
    }
}
