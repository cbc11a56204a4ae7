//! Go's formatting: numbers (`strconv.FormatFloat`), `fmt.Sprintf` verbs,
//! `time.Time` layouts, and Prometheus' `humanize*` helpers.

use chrono::DateTime;
use chrono_tz::Tz;

use crate::value::Value;

// ------------------------------------------------------ Prometheus helpers

pub(crate) fn humanize(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return go_float(v, 'g', Some(4));
    }
    let mut v = v;
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", go_float(v, 'g', Some(4)))
}

pub(crate) fn humanize1024(v: f64) -> String {
    if v.abs() <= 1.0 || !v.is_finite() {
        return go_float(v, 'g', Some(4));
    }
    let mut v = v;
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", go_float(v, 'g', Some(4)))
}

/// Go's `int64(f)` on amd64: out-of-range values become `i64::MIN`.
fn go_int64(f: f64) -> i64 {
    if f.is_finite() && f > -9.223_372_036_854_776e18 && f < 9.223_372_036_854_776e18 {
        f as i64
    } else {
        i64::MIN
    }
}

pub(crate) fn humanize_duration(v: f64) -> String {
    if !v.is_finite() {
        return go_float(v, 'g', Some(4));
    }
    if v == 0.0 {
        return format!("{}s", go_float(v, 'g', Some(4)));
    }
    if v.abs() >= 1.0 {
        let (sign, v) = if v < 0.0 { ("-", -v) } else { ("", v) };
        let d = go_int64(v);
        let (seconds, minutes, hours, days) = (d % 60, (d / 60) % 60, (d / 3600) % 24, d / 86400);
        if days != 0 {
            return format!("{sign}{days}d {hours}h {minutes}m {seconds}s");
        }
        if hours != 0 {
            return format!("{sign}{hours}h {minutes}m {seconds}s");
        }
        if minutes != 0 {
            return format!("{sign}{minutes}m {seconds}s");
        }
        return format!("{sign}{}s", go_float(v, 'g', Some(4)));
    }
    let mut v = v;
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", go_float(v, 'g', Some(4)))
}

pub(crate) fn humanize_timestamp(v: f64) -> String {
    if !v.is_finite() {
        return go_float(v, 'g', Some(4));
    }
    let secs = v.floor();
    let nanos = ((v - secs) * 1e9).round() as u32;
    match chrono::DateTime::from_timestamp(secs as i64, nanos.min(999_999_999)) {
        Some(t) => {
            // Go's time.String(): fractional seconds without trailing zeros.
            let frac = format!("{:09}", t.timestamp_subsec_nanos());
            let frac = frac.trim_end_matches('0');
            let dot = if frac.is_empty() { "" } else { "." };
            format!("{}{dot}{frac} +0000 UTC", t.format("%Y-%m-%d %H:%M:%S"))
        }
        None => go_float(v, 'g', Some(4)),
    }
}

/// Go's `strings.Title`: upper-cases the first letter of each word; word
/// characters are letters, digits, `_` and `'`.
pub(crate) fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_sep = true;
    for c in s.chars() {
        if prev_sep {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_sep = !(c.is_alphanumeric() || c == '_' || c == '\'');
    }
    out
}

// ------------------------------------------------------- Go number format

/// Significant digits (no trailing zeros) and decimal-point position of a
/// finite non-zero `v`, shortest (None) or rounded to `sig` digits.
fn digits(v: f64, sig: Option<usize>) -> (String, i32) {
    let s = match sig {
        None => format!("{:e}", v.abs()),
        Some(p) => format!("{:.*e}", p.max(1) - 1, v.abs()),
    };
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut d: String = mant.chars().filter(char::is_ascii_digit).collect();
    while d.len() > 1 && d.ends_with('0') {
        d.pop();
    }
    (d, exp + 1)
}

fn fmt_e(neg: bool, d: &str, dp: i32, frac: usize, upper: bool) -> String {
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    out.push_str(&d[..1]);
    if frac > 0 {
        out.push('.');
        let rest = &d[1..];
        for i in 0..frac {
            out.push(rest.as_bytes().get(i).map_or('0', |&b| b as char));
        }
    }
    let exp = if d == "0" { 0 } else { dp - 1 };
    out.push(if upper { 'E' } else { 'e' });
    out.push(if exp < 0 { '-' } else { '+' });
    out.push_str(&format!("{:02}", exp.abs()));
    out
}

fn fmt_f(neg: bool, d: &str, dp: i32, frac: usize) -> String {
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if dp <= 0 {
        out.push('0');
    } else {
        for i in 0..dp as usize {
            out.push(d.as_bytes().get(i).map_or('0', |&b| b as char));
        }
    }
    if frac > 0 {
        out.push('.');
        for i in 0..frac as i32 {
            let idx = dp + i;
            out.push(if idx < 0 {
                '0'
            } else {
                d.as_bytes().get(idx as usize).map_or('0', |&b| b as char)
            });
        }
    }
    out
}

/// Formats `v` like Go's `strconv.FormatFloat(v, verb, prec, 64)` for
/// verbs `g`, `e`, `f` and `G`, `E` (`None` = shortest), with `+Inf`/`-Inf`/`NaN` as
/// `fmt` prints them.
pub fn go_float(v: f64, verb: char, prec: Option<usize>) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let neg = v.is_sign_negative();
    let upper = verb.is_ascii_uppercase();
    match verb.to_ascii_lowercase() {
        'f' => match prec {
            Some(p) => format!("{v:.p$}"),
            None => format!("{v}"),
        },
        'e' => {
            if v == 0.0 {
                return fmt_e(neg, "0", 1, prec.unwrap_or(0), upper);
            }
            let (d, dp) = digits(v, prec.map(|p| p + 1));
            let p = prec.unwrap_or(d.len() - 1);
            fmt_e(neg, &d, dp, p, upper)
        }
        _ => {
            let (d, dp) = if v == 0.0 {
                ("0".to_string(), 1)
            } else {
                digits(v, prec.map(|p| p.max(1)))
            };
            let nd = d.len() as i32;
            let (mut p, shortest) = match prec {
                None => (nd, true),
                Some(p) => (p.max(1) as i32, false),
            };
            let mut eprec = p;
            if eprec > nd && nd >= dp {
                eprec = nd;
            }
            if shortest {
                eprec = 6;
            }
            let exp = dp - 1;
            if d != "0" && (exp < -4 || exp >= eprec) {
                if p > nd {
                    p = nd;
                }
                return fmt_e(neg, &d, dp, (p - 1).max(0) as usize, upper);
            }
            if p > dp {
                p = nd;
            }
            fmt_f(neg, &d, dp, (p - dp).max(0) as usize)
        }
    }
}

/// Go's `fmt.Sprintf` for the verbs templates use.
pub(crate) fn sprintf(fmt: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let chars: Vec<char> = fmt.chars().collect();
    let mut i = 0;
    let mut argi = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if c != '%' {
            out.push(c);
            continue;
        }
        let (mut minus, mut plus, mut zero, mut space) = (false, false, false, false);
        while let Some(&f) = chars.get(i) {
            match f {
                '-' => minus = true,
                '+' => plus = true,
                '0' => zero = true,
                ' ' => space = true,
                '#' => {}
                _ => break,
            }
            i += 1;
        }
        let mut width = None;
        while let Some(d) = chars.get(i).and_then(|c| c.to_digit(10)) {
            width = Some(width.unwrap_or(0) * 10 + d as usize);
            i += 1;
        }
        let mut prec = None;
        if chars.get(i) == Some(&'.') {
            i += 1;
            let mut p = 0;
            while let Some(d) = chars.get(i).and_then(|c| c.to_digit(10)) {
                p = p * 10 + d as usize;
                i += 1;
            }
            prec = Some(p);
        }
        let Some(&verb) = chars.get(i) else {
            out.push_str("%!(NOVERB)");
            break;
        };
        i += 1;
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(argi) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        argi += 1;
        let bad = || format!("%!{verb}({}={})", arg.type_name(), arg.print());
        let sign = |s: String, nonneg: bool| {
            if nonneg && plus {
                format!("+{s}")
            } else if nonneg && space {
                format!(" {s}")
            } else {
                s
            }
        };
        let (body, numeric) = match (verb, arg) {
            ('v', Value::Float(f)) => (sign(go_float(*f, 'g', prec), *f >= 0.0), f.is_finite()),
            ('v', Value::Int(n)) | ('d', Value::Int(n)) => (sign(n.to_string(), *n >= 0), true),
            ('T', other) => (other.type_name(), false),
            ('v' | 's', Value::Str(s) | Value::Html(s)) => (
                match prec {
                    Some(p) => s.chars().take(p).collect(),
                    None => s.clone(),
                },
                false,
            ),
            ('v', other) => (other.print(), false),
            ('s', Value::List(_) | Value::Map(_) | Value::Struct(_) | Value::Time(_)) => {
                (arg.print(), false)
            }
            ('f' | 'F' | 'e' | 'E' | 'g' | 'G', Value::Float(f)) => {
                let p = match verb {
                    'g' | 'G' => prec,
                    _ => Some(prec.unwrap_or(6)),
                };
                let s = go_float(*f, verb, p);
                let s = if f.is_infinite() && *f > 0.0 && !plus {
                    s
                } else {
                    sign(s, *f >= 0.0 && !f.is_infinite())
                };
                (s, f.is_finite())
            }
            ('q', Value::Str(s)) => (format!("{s:?}"), false),
            ('x', Value::Int(n)) => (format!("{n:x}"), true),
            ('X', Value::Int(n)) => (format!("{n:X}"), true),
            ('x', Value::Str(s)) => (s.bytes().map(|b| format!("{b:02x}")).collect(), false),
            ('t', Value::Bool(b)) => (b.to_string(), false),
            _ => (bad(), false),
        };
        let len = body.chars().count();
        match width {
            Some(w) if w > len => {
                let pad = w - len;
                if minus {
                    out.push_str(&body);
                    out.extend(std::iter::repeat_n(' ', pad));
                } else if zero && numeric {
                    let (s, digits) = match body.strip_prefix(['-', '+', ' ']) {
                        Some(d) => (&body[..1], d),
                        None => ("", body.as_str()),
                    };
                    out.push_str(s);
                    out.extend(std::iter::repeat_n('0', pad));
                    out.push_str(digits);
                } else {
                    out.extend(std::iter::repeat_n(' ', pad));
                    out.push_str(&body);
                }
            }
            _ => out.push_str(&body),
        }
    }
    if argi < args.len() {
        let extra: Vec<String> = args[argi..]
            .iter()
            .map(|a| format!("{}={}", a.type_name(), a.print()))
            .collect();
        out.push_str(&format!("%!(EXTRA {})", extra.join(", ")));
    }
    out
}

/// Go's `time.Time.String()`: `2006-01-02 15:04:05.999999999 -0700 MST`.
pub fn go_time(t: &DateTime<Tz>) -> String {
    go_time_format(t, "2006-01-02 15:04:05.999999999 -0700 MST")
}

/// Formats `t` with a Go reference layout (`2006-01-02T15:04:05Z07:00`).
pub fn go_time_format(t: &DateTime<Tz>, layout: &str) -> String {
    use chrono::{Datelike, Offset, Timelike};
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DAYS: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    let month = MONTHS[t.month0() as usize];
    let day = DAYS[t.weekday().num_days_from_monday() as usize];
    let offset = t.offset().fix().local_minus_utc();
    let zone = |colon: bool, secs: bool, z: bool, hours_only: bool| {
        if z && offset == 0 {
            return "Z".to_string();
        }
        let sign = if offset < 0 { '-' } else { '+' };
        let o = offset.abs();
        let (h, m, s) = (o / 3600, (o / 60) % 60, o % 60);
        let sep = if colon { ":" } else { "" };
        let mut out = format!("{sign}{h:02}");
        if !hours_only {
            out.push_str(&format!("{sep}{m:02}"));
        }
        if secs {
            out.push_str(&format!("{sep}{s:02}"));
        }
        out
    };
    let hour12 = |h: u32| if h.is_multiple_of(12) { 12 } else { h % 12 };
    // Longest tokens first, as Go's nextStdChunk recognises them.
    let tokens: &[&str] = &[
        "January",
        "Jan",
        "Monday",
        "Mon",
        "MST",
        "2006",
        "002",
        "01",
        "02",
        "03",
        "04",
        "05",
        "06",
        "15",
        "_2",
        "1",
        "2",
        "3",
        "4",
        "5",
        "PM",
        "pm",
        "-07:00:00",
        "-070000",
        "-07:00",
        "-0700",
        "-07",
        "Z07:00:00",
        "Z070000",
        "Z07:00",
        "Z0700",
        "Z07",
    ];
    let mut out = String::new();
    let mut rest = layout;
    'outer: while !rest.is_empty() {
        // Fractional seconds: .000 / .999 (or with a comma).
        if let Some(stripped) = rest.strip_prefix(['.', ',']) {
            let n0 = stripped.chars().take_while(|&c| c == '0').count();
            let n9 = stripped.chars().take_while(|&c| c == '9').count();
            let n = n0.max(n9);
            let after = &stripped[n..];
            if n > 0 && !after.starts_with(|c: char| c.is_ascii_digit()) {
                let digits = format!("{:09}", t.nanosecond() % 1_000_000_000);
                let mut frac = digits[..n.min(9)].to_string();
                if n9 > 0 {
                    frac = frac.trim_end_matches('0').to_string();
                }
                if !frac.is_empty() {
                    out.push_str(&rest[..1]);
                    out.push_str(&frac);
                }
                rest = after;
                continue;
            }
        }
        for tok in tokens {
            if let Some(after) = rest.strip_prefix(tok) {
                // "Jan"/"Mon" inside a word are literal only in odd layouts; ignore.
                let s = match *tok {
                    "January" => month.to_string(),
                    "Jan" => month[..3].to_string(),
                    "Monday" => day.to_string(),
                    "Mon" => day[..3].to_string(),
                    "MST" => t.format("%Z").to_string(),
                    "2006" => format!("{:04}", t.year()),
                    "002" => format!("{:03}", t.ordinal()),
                    "01" => format!("{:02}", t.month()),
                    "02" => format!("{:02}", t.day()),
                    "03" => format!("{:02}", hour12(t.hour())),
                    "04" => format!("{:02}", t.minute()),
                    "05" => format!("{:02}", t.second()),
                    "06" => format!("{:02}", t.year() % 100),
                    "15" => format!("{:02}", t.hour()),
                    "_2" => format!("{:>2}", t.day()),
                    "1" => t.month().to_string(),
                    "2" => t.day().to_string(),
                    "3" => hour12(t.hour()).to_string(),
                    "4" => t.minute().to_string(),
                    "5" => t.second().to_string(),
                    "PM" => (if t.hour() >= 12 { "PM" } else { "AM" }).to_string(),
                    "pm" => (if t.hour() >= 12 { "pm" } else { "am" }).to_string(),
                    "-07:00:00" => zone(true, true, false, false),
                    "-070000" => zone(false, true, false, false),
                    "-07:00" => zone(true, false, false, false),
                    "-0700" => zone(false, false, false, false),
                    "-07" => zone(false, false, false, true),
                    "Z07:00:00" => zone(true, true, true, false),
                    "Z070000" => zone(false, true, true, false),
                    "Z07:00" => zone(true, false, true, false),
                    "Z0700" => zone(false, false, true, false),
                    _ => zone(false, false, true, true),
                };
                out.push_str(&s);
                rest = after;
                continue 'outer;
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            out.push(c);
        }
        rest = chars.as_str();
    }
    out
}

/// Go's `html.EscapeString` as `text/template`'s `html` function and
/// `html/template` escape text: `<>&'"` and `+` become entities.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Go's `url.QueryEscape`.
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
