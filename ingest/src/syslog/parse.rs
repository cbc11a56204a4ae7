//! Syslog message parser: RFC 5424 and RFC 3164 (BSD).
//!
//! [`parse`] never fails: a message it cannot read is returned with
//! [`Format::Raw`], its whole text as the body and the reason in
//! [`Syslog::defect`], so the receiver keeps it and counts it.
//!
//! RFC 3164 timestamps (`Mmm dd hh:mm:ss`) carry neither a year nor a
//! time zone: they are read in the time zone of `now` (the receiver passes
//! the local time of the Vigie host), in the year of `now`, or the year
//! before when that would put the message more than 31 days in the future
//! (a December message received in January). An ISO 8601 timestamp in
//! place of the BSD one (rsyslog's high-precision format) is accepted too.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone};

/// Which syntax a message was read with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// RFC 5424 (`<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG`).
    Rfc5424,
    /// RFC 3164 (`<PRI>Mmm dd hh:mm:ss HOST TAG[PID]: MSG`), or a bare
    /// `<PRI>MSG`.
    Rfc3164,
    /// Not readable; the body is the message as received.
    Raw,
}

/// One RFC 5424 structured-data element: its id and parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdElement {
    /// SD-ID, e.g. `timeQuality` or `exampleSDID@32473`.
    pub id: String,
    /// Parameters in order, values unescaped.
    pub params: Vec<(String, String)>,
}

/// A parsed syslog message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Syslog {
    /// The syntax it was read with.
    pub format: Format,
    /// Facility (0..=23), from PRI.
    pub facility: Option<u8>,
    /// Severity (0 emergency ..= 7 debug), from PRI.
    pub severity: Option<u8>,
    /// Message time, milliseconds since the Unix epoch.
    pub ts_ms: Option<i64>,
    /// HOSTNAME.
    pub hostname: Option<String>,
    /// APP-NAME (RFC 5424) or TAG (RFC 3164).
    pub app_name: Option<String>,
    /// PROCID, or the `[pid]` of a BSD tag.
    pub procid: Option<String>,
    /// MSGID (RFC 5424).
    pub msgid: Option<String>,
    /// STRUCTURED-DATA (RFC 5424).
    pub structured_data: Vec<SdElement>,
    /// MSG (BOM removed), or the whole message for [`Format::Raw`].
    pub body: String,
    /// Why the message could not be read (`pri`, `rfc5424_timestamp`, ...);
    /// `None` when it was.
    pub defect: Option<&'static str>,
}

/// Facility names, by number (RFC 5424, table 1).
pub const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

/// Severity keywords, by number (RFC 5424, table 2).
pub const SEVERITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// The [`vigie_model::LogRecord`] level of a syslog severity: 0–3 are
/// `error`, 4 `warn`, 5–6 `info`, 7 `debug` (the words the file tail
/// guesses).
pub fn level(severity: u8) -> &'static str {
    match severity {
        0..=3 => "error",
        4 => "warn",
        5 | 6 => "info",
        _ => "debug",
    }
}

const BOM: &[u8] = b"\xEF\xBB\xBF";
const NIL: &[u8] = b"-";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Parses one message (a datagram or a frame, without its trailing
/// newline). `now` gives the receive time and, for RFC 3164, the year and
/// the time zone of the timestamp.
pub fn parse<Tz: TimeZone>(raw: &[u8], now: &DateTime<Tz>) -> Syslog {
    let mut out = Syslog {
        format: Format::Raw,
        facility: None,
        severity: None,
        ts_ms: None,
        hostname: None,
        app_name: None,
        procid: None,
        msgid: None,
        structured_data: Vec::new(),
        body: String::new(),
        defect: None,
    };
    let Some((pri, rest)) = pri(raw) else {
        out.body = text(raw);
        out.defect = Some("pri");
        return out;
    };
    out.facility = Some(pri / 8);
    out.severity = Some(pri % 8);
    if rest.starts_with(b"1 ") {
        match rfc5424(rest, &mut out) {
            Ok(()) => out.format = Format::Rfc5424,
            Err(defect) => {
                out.format = Format::Raw;
                out.hostname = None;
                out.app_name = None;
                out.procid = None;
                out.msgid = None;
                out.structured_data.clear();
                out.ts_ms = None;
                out.body = text(rest);
                out.defect = Some(defect);
            }
        }
        return out;
    }
    out.format = Format::Rfc3164;
    rfc3164(rest, now, &mut out);
    out
}

/// `<PRI>`: 1 to 3 digits, at most 191.
fn pri(raw: &[u8]) -> Option<(u8, &[u8])> {
    let rest = raw.strip_prefix(b"<")?;
    let end = rest.iter().take(4).position(|b| *b == b'>')?;
    let digits = &rest[..end];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let value: u16 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    let value = u8::try_from(value).ok().filter(|v| *v <= 191)?;
    Some((value, &rest[end + 1..]))
}

/// Splits off the next space-terminated token.
fn token(rest: &[u8]) -> (&[u8], &[u8]) {
    match rest.iter().position(|b| *b == b' ') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[]),
    }
}

/// A header field: NIL or 1..=max printable US-ASCII characters.
fn field(bytes: &[u8], max: usize, defect: &'static str) -> Result<Option<String>, &'static str> {
    if bytes == NIL {
        return Ok(None);
    }
    if bytes.is_empty() || bytes.len() > max || !bytes.iter().all(|b| (33..=126).contains(b)) {
        return Err(defect);
    }
    Ok(Some(text(bytes)))
}

fn rfc5424(rest: &[u8], out: &mut Syslog) -> Result<(), &'static str> {
    // The caller checked the version: `1 `.
    let rest = &rest[2..];
    let (ts, rest) = token(rest);
    if ts != NIL {
        let ts = std::str::from_utf8(ts).map_err(|_| "rfc5424_timestamp")?;
        let parsed = DateTime::parse_from_rfc3339(ts).map_err(|_| "rfc5424_timestamp")?;
        out.ts_ms = Some(parsed.timestamp_millis());
    }
    let (host, rest) = token(rest);
    out.hostname = field(host, 255, "rfc5424_hostname")?;
    let (app, rest) = token(rest);
    out.app_name = field(app, 48, "rfc5424_app_name")?;
    let (procid, rest) = token(rest);
    out.procid = field(procid, 128, "rfc5424_procid")?;
    let (msgid, rest) = token(rest);
    out.msgid = field(msgid, 32, "rfc5424_msgid")?;
    let rest = if let Some(r) = rest.strip_prefix(NIL) {
        r
    } else {
        structured_data(rest, &mut out.structured_data)?
    };
    let msg = match rest {
        [] => rest,
        [b' ', msg @ ..] => msg,
        _ => return Err("rfc5424_structured_data"),
    };
    out.body = text(msg.strip_prefix(BOM).unwrap_or(msg));
    Ok(())
}

/// An SD-NAME: 1..=32 printable characters except `=`, SP, `]` and `"`.
fn sd_name(rest: &[u8]) -> Result<(String, &[u8]), &'static str> {
    let end = rest
        .iter()
        .position(|b| !(33..=126).contains(b) || matches!(b, b'=' | b']' | b'"'))
        .unwrap_or(rest.len());
    if end == 0 || end > 32 {
        return Err("rfc5424_structured_data");
    }
    Ok((text(&rest[..end]), &rest[end..]))
}

/// One or more `[ID PARAM="VALUE" ...]` elements; returns what follows.
fn structured_data<'a>(
    mut rest: &'a [u8],
    elements: &mut Vec<SdElement>,
) -> Result<&'a [u8], &'static str> {
    const BAD: &str = "rfc5424_structured_data";
    if !rest.starts_with(b"[") {
        return Err(BAD);
    }
    while let Some(r) = rest.strip_prefix(b"[") {
        let (id, mut r) = sd_name(r)?;
        let mut params = Vec::new();
        loop {
            match r {
                [b']', after @ ..] => {
                    r = after;
                    break;
                }
                [b' ', after @ ..] => {
                    let (name, after) = sd_name(after)?;
                    let after = after.strip_prefix(b"=\"").ok_or(BAD)?;
                    let (value, after) = sd_value(after)?;
                    params.push((name, value));
                    r = after;
                }
                _ => return Err(BAD),
            }
        }
        elements.push(SdElement { id, params });
        rest = r;
    }
    Ok(rest)
}

/// A PARAM-VALUE after its opening quote: `\"`, `\\` and `\]` are
/// unescaped, any other backslash is kept. Returns what follows the
/// closing quote.
fn sd_value(rest: &[u8]) -> Result<(String, &[u8]), &'static str> {
    let mut value = Vec::new();
    let mut i = 0;
    while i < rest.len() {
        match rest[i] {
            b'\\' if matches!(rest.get(i + 1), Some(b'"' | b'\\' | b']')) => {
                value.push(rest[i + 1]);
                i += 2;
            }
            b'"' => return Ok((text(&value), &rest[i + 1..])),
            b => {
                value.push(b);
                i += 1;
            }
        }
    }
    Err("rfc5424_structured_data")
}

const MONTHS: [&[u8]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

fn two_digits(b: &[u8]) -> Option<u32> {
    match b {
        [a, b] if a.is_ascii_digit() && b.is_ascii_digit() => {
            Some(u32::from(a - b'0') * 10 + u32::from(b - b'0'))
        }
        _ => None,
    }
}

/// Month, day, hour, minute, second of a BSD timestamp.
type BsdParts = (u32, u32, u32, u32, u32);

/// `Mmm dd hh:mm:ss ` (day space- or zero-padded): its parts and what
/// follows.
fn bsd_timestamp(rest: &[u8]) -> Option<(BsdParts, &[u8])> {
    let head = rest.get(..16)?;
    let month = MONTHS.iter().position(|m| *m == &head[..3])?;
    if head[3] != b' ' || head[6] != b' ' || head[9] != b':' || head[12] != b':' {
        return None;
    }
    let day = match &head[4..6] {
        [b' ', d] if d.is_ascii_digit() => u32::from(d - b'0'),
        d => two_digits(d)?,
    };
    let h = two_digits(&head[7..9])?;
    let m = two_digits(&head[10..12])?;
    let s = two_digits(&head[13..15])?;
    if head[15] != b' ' {
        return None;
    }
    let month = u32::try_from(month).ok()? + 1;
    Some(((month, day, h, m, s), &rest[16..]))
}

/// The BSD timestamp as milliseconds: in `now`'s zone and year, or the
/// year before if that is more than 31 days ahead of `now`.
fn bsd_time<Tz: TimeZone>(parts: BsdParts, now: &DateTime<Tz>) -> Option<i64> {
    let (month, day, h, m, s) = parts;
    let at = |year: i32| {
        let naive = NaiveDate::from_ymd_opt(year, month, day)?.and_hms_opt(h, m, s)?;
        now.timezone()
            .from_local_datetime(&naive)
            .earliest()
            .map(|t| t.timestamp_millis())
    };
    let now_ms = now.timestamp_millis();
    match at(now.year()) {
        Some(t) if t - now_ms <= 31 * 86_400_000 => Some(t),
        // Feb 29 of a leap year, received in a non-leap one, also lands here.
        _ => at(now.year() - 1),
    }
}

fn rfc3164<Tz: TimeZone>(rest: &[u8], now: &DateTime<Tz>, out: &mut Syslog) {
    let mut rest = rest;
    if let Some((parts, after)) = bsd_timestamp(rest) {
        out.ts_ms = bsd_time(parts, now);
        if out.ts_ms.is_none() {
            out.defect = Some("rfc3164_timestamp");
        }
        rest = after;
    } else if rest.first().is_some_and(u8::is_ascii_digit) {
        let (ts, after) = token(rest);
        if let Some(t) = std::str::from_utf8(ts)
            .ok()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        {
            out.ts_ms = Some(t.timestamp_millis());
            rest = after;
        }
    }
    if out.ts_ms.is_some() || out.defect.is_some() {
        // HOSTNAME, unless the next word is already the tag.
        let (word, after) = token(rest);
        let is_tag = word.ends_with(b":") || word.contains(&b'[');
        if !word.is_empty() && !is_tag && word.iter().all(|b| (33..=126).contains(b)) {
            out.hostname = Some(text(word));
            rest = after;
        }
    }
    // TAG: up to 48 characters followed by `[pid]` and/or `:`.
    let end = rest
        .iter()
        .take(49)
        .position(|b| matches!(b, b'[' | b':' | b' '));
    if let Some(end) = end.filter(|e| *e > 0) {
        let mut after = &rest[end..];
        let mut pid = None;
        if let Some(r) = after.strip_prefix(b"[")
            && let Some(close) = r.iter().take(129).position(|b| *b == b']')
        {
            pid = Some(text(&r[..close]));
            after = &r[close + 1..];
        }
        let colon = after.strip_prefix(b":");
        if colon.is_some() || pid.is_some() {
            out.app_name = Some(text(&rest[..end]));
            out.procid = pid;
            let after = colon.unwrap_or(after);
            rest = after.strip_prefix(b" ").unwrap_or(after);
        }
    }
    out.body = text(rest);
}

#[cfg(test)]
mod tests;
