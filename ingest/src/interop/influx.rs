//! InfluxDB line protocol, as Telegraf's Kafka output writes it by default.
//!
//! `measurement[,tag=value...] field=value[,field=value...] [timestamp]`,
//! one point per line (`\n`; a trailing `\r` is ignored), `#` comment
//! lines and blank lines skipped. Field values: floats (`1`, `-1.5e3`),
//! integers (`1i`), unsigned integers (`1u`), booleans (`t`, `true`,
//! `F`, `FALSE`, ...) and double-quoted strings. Escapes: `\,` and `\ `
//! in the measurement; `\,`, `\=` and `\ ` in tag keys, tag values and
//! field keys; `\"` and `\\` in string values; a backslash before any
//! other character is literal. The timestamp is an integer in the
//! configured precision (nanoseconds unless told otherwise); without one
//! the point gets the receive time.

use serde::{Deserialize, Serialize};

use super::names::{FieldValue, Point};

/// The unit of line-protocol timestamps (`precision` in `[[interop]]`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Nanoseconds (InfluxDB's and Telegraf's default).
    #[default]
    Ns,
    /// Microseconds.
    Us,
    /// Milliseconds.
    Ms,
    /// Seconds.
    S,
}

impl Precision {
    /// `ts` in this unit, as milliseconds (rounded down).
    pub fn to_ms(self, ts: i64) -> i64 {
        match self {
            Precision::Ns => ts.div_euclid(1_000_000),
            Precision::Us => ts.div_euclid(1_000),
            Precision::Ms => ts,
            Precision::S => ts.saturating_mul(1_000),
        }
    }
}

/// A line that is not line protocol: its 1-based number and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// Line number in the message, from 1.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Parses every line of `text`: the points of the good lines, and an
/// error for each bad one (a bad line never stops the others).
pub fn parse(text: &str, precision: Precision) -> (Vec<Point>, Vec<LineError>) {
    let mut c = Cursor {
        b: text.as_bytes(),
        pos: 0,
        line: 1,
    };
    let (mut points, mut errors) = (Vec::new(), Vec::new());
    while c.pos < c.b.len() {
        c.skip(b" \t\r");
        match c.peek() {
            None => break,
            Some(b'\n') => {
                c.next_line();
                continue;
            }
            Some(b'#') => {
                c.skip_line();
                continue;
            }
            Some(_) => {}
        }
        let line = c.line;
        match c.point(precision) {
            Ok(p) => points.push(p),
            Err(message) => {
                errors.push(LineError { line, message });
                c.skip_line();
            }
        }
    }
    (points, errors)
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
    line: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn skip(&mut self, set: &[u8]) {
        while self.peek().is_some_and(|c| set.contains(&c)) {
            self.pos += 1;
        }
    }

    fn next_line(&mut self) {
        self.pos += 1;
        self.line += 1;
    }

    /// Moves past the next newline (or to the end).
    fn skip_line(&mut self) {
        while let Some(c) = self.peek() {
            if c == b'\n' {
                self.next_line();
                return;
            }
            self.pos += 1;
        }
    }

    /// Reads up to an unescaped byte of `stops` or a newline; `\x` for
    /// `x` in `escapes` is `x`.
    fn escaped(&mut self, stops: &[u8], escapes: &[u8]) -> String {
        let mut out = Vec::new();
        while let Some(c) = self.peek() {
            if c == b'\\'
                && let Some(&n) = self.b.get(self.pos + 1)
                && escapes.contains(&n)
            {
                out.push(n);
                self.pos += 2;
                continue;
            }
            if c == b'\n' || stops.contains(&c) {
                break;
            }
            out.push(c);
            self.pos += 1;
        }
        // Only ASCII backslashes were removed, before ASCII bytes: still UTF-8.
        String::from_utf8_lossy(&out).into_owned()
    }

    fn expect(&mut self, byte: u8, what: &str) -> Result<(), String> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("expected {what}"))
        }
    }

    fn point(&mut self, precision: Precision) -> Result<Point, String> {
        let measurement = self.escaped(b", ", b", ");
        if measurement.is_empty() {
            return Err("empty measurement".into());
        }
        let mut tags = Vec::new();
        while self.peek() == Some(b',') {
            self.pos += 1;
            let key = self.escaped(b",= ", b",= ");
            if key.is_empty() {
                return Err("empty tag key".into());
            }
            self.expect(b'=', "`=` after a tag key")?;
            let value = self.escaped(b", ", b",= ");
            if value.is_empty() {
                return Err(format!("tag `{key}` has an empty value"));
            }
            tags.push((key, value));
        }
        if self.peek() != Some(b' ') {
            return Err("missing field set".into());
        }
        self.skip(b" ");
        let mut fields = Vec::new();
        loop {
            let key = self.escaped(b",= ", b",= ");
            if key.is_empty() {
                return Err("empty field key".into());
            }
            self.expect(b'=', "`=` after a field key")?;
            let value = self.field_value(&key)?;
            fields.push((key, value));
            if self.peek() == Some(b',') {
                self.pos += 1;
            } else {
                break;
            }
        }
        self.skip(b" \t");
        let ts_ms = match self.peek() {
            None | Some(b'\n' | b'\r') => None,
            Some(_) => {
                let token = self.token(b" \t\r");
                let ts: i64 = parse_int(token).ok_or_else(|| {
                    format!("invalid timestamp `{}`", String::from_utf8_lossy(token))
                })?;
                Some(precision.to_ms(ts))
            }
        };
        self.skip(b" \t\r");
        match self.peek() {
            None => {}
            Some(b'\n') => self.next_line(),
            Some(_) => return Err("unexpected text after the timestamp".into()),
        }
        Ok(Point {
            measurement,
            tags,
            fields,
            ts_ms,
        })
    }

    /// Bytes up to one of `stops`, a newline, or the end.
    fn token(&mut self, stops: &[u8]) -> &[u8] {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c != b'\n' && !stops.contains(&c))
        {
            self.pos += 1;
        }
        &self.b[start..self.pos]
    }

    fn field_value(&mut self, key: &str) -> Result<FieldValue, String> {
        if self.peek() == Some(b'"') {
            self.pos += 1;
            let mut out = Vec::new();
            loop {
                match self.peek() {
                    None => return Err(format!("field `{key}`: unterminated string")),
                    Some(b'"') => {
                        self.pos += 1;
                        break;
                    }
                    Some(b'\\') if matches!(self.b.get(self.pos + 1), Some(b'"' | b'\\')) => {
                        out.push(self.b[self.pos + 1]);
                        self.pos += 2;
                    }
                    Some(c) => {
                        if c == b'\n' {
                            self.line += 1;
                        }
                        out.push(c);
                        self.pos += 1;
                    }
                }
            }
            return Ok(FieldValue::String(
                String::from_utf8_lossy(&out).into_owned(),
            ));
        }
        let token = self.token(b", \t\r");
        scalar(token).ok_or_else(|| {
            format!(
                "field `{key}`: invalid value `{}`",
                String::from_utf8_lossy(token)
            )
        })
    }
}

/// `-?[0-9]+` as i64.
fn parse_int(token: &[u8]) -> Option<i64> {
    let digits = token.strip_prefix(b"-").unwrap_or(token);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(token).ok()?.parse().ok()
}

/// A number or boolean field value.
fn scalar(token: &[u8]) -> Option<FieldValue> {
    match token {
        b"t" | b"T" | b"true" | b"True" | b"TRUE" => return Some(FieldValue::Boolean(true)),
        b"f" | b"F" | b"false" | b"False" | b"FALSE" => return Some(FieldValue::Boolean(false)),
        _ => {}
    }
    if let Some(body) = token.strip_suffix(b"i") {
        return parse_int(body).map(FieldValue::Integer);
    }
    if let Some(body) = token.strip_suffix(b"u") {
        if body.is_empty() || !body.iter().all(u8::is_ascii_digit) {
            return None;
        }
        return std::str::from_utf8(body)
            .ok()?
            .parse()
            .ok()
            .map(FieldValue::Unsigned);
    }
    // Only digits, sign, point and exponent: Rust would also take "inf"/"NaN".
    let numeric = |c: &u8| c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E');
    if !token.iter().all(numeric) || !token.iter().any(u8::is_ascii_digit) {
        return None;
    }
    let v: f64 = std::str::from_utf8(token).ok()?.parse().ok()?;
    v.is_finite().then_some(FieldValue::Float(v))
}

/// Writes `point` as one line of line protocol (nanosecond timestamp),
/// escaping what needs it; [`parse`] reads it back unchanged.
pub fn format_point(point: &Point) -> String {
    let esc = |s: &str, special: &[char]| {
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            if special.contains(&c) {
                out.push('\\');
            }
            out.push(c);
        }
        out
    };
    let mut line = esc(&point.measurement, &[',', ' ']);
    for (k, v) in &point.tags {
        line.push(',');
        line.push_str(&esc(k, &[',', '=', ' ']));
        line.push('=');
        line.push_str(&esc(v, &[',', '=', ' ']));
    }
    for (i, (k, v)) in point.fields.iter().enumerate() {
        line.push(if i == 0 { ' ' } else { ',' });
        line.push_str(&esc(k, &[',', '=', ' ']));
        line.push('=');
        match v {
            FieldValue::Float(f) => line.push_str(&f.to_string()),
            FieldValue::Integer(n) => line.push_str(&format!("{n}i")),
            FieldValue::Unsigned(n) => line.push_str(&format!("{n}u")),
            FieldValue::Boolean(b) => line.push_str(if *b { "true" } else { "false" }),
            FieldValue::String(s) => {
                line.push('"');
                line.push_str(&esc(s, &['\\', '"']));
                line.push('"');
            }
        }
    }
    if let Some(ts) = point.ts_ms {
        line.push_str(&format!(" {}", i128::from(ts) * 1_000_000));
    }
    line
}

#[cfg(test)]
#[path = "influx_tests.rs"]
mod tests;
