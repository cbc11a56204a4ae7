use super::*;
use chrono::{FixedOffset, Utc};
use proptest::prelude::*;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2003, 10, 12, 0, 0, 0)
        .single()
        .expect("valid")
}

fn ms(rfc3339: &str) -> i64 {
    DateTime::parse_from_rfc3339(rfc3339)
        .expect("valid")
        .timestamp_millis()
}

#[test]
fn rfc5424_example_1_with_bom() {
    let m = parse(
        b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \xEF\xBB\xBF'su root' failed for lonvick on /dev/pts/8",
        &now(),
    );
    assert_eq!(m.format, Format::Rfc5424);
    assert_eq!(m.defect, None);
    assert_eq!((m.facility, m.severity), (Some(4), Some(2)));
    assert_eq!(m.ts_ms, Some(ms("2003-10-11T22:14:15.003Z")));
    assert_eq!(m.hostname.as_deref(), Some("mymachine.example.com"));
    assert_eq!(m.app_name.as_deref(), Some("su"));
    assert_eq!(m.procid, None);
    assert_eq!(m.msgid.as_deref(), Some("ID47"));
    assert!(m.structured_data.is_empty());
    assert_eq!(m.body, "'su root' failed for lonvick on /dev/pts/8");
}

#[test]
fn rfc5424_example_2_offset_and_microseconds() {
    let m = parse(
        b"<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.",
        &now(),
    );
    assert_eq!(m.format, Format::Rfc5424);
    assert_eq!((m.facility, m.severity), (Some(20), Some(5)));
    assert_eq!(m.ts_ms, Some(ms("2003-08-24T12:14:15Z")));
    assert_eq!(m.hostname.as_deref(), Some("192.0.2.1"));
    assert_eq!(m.procid.as_deref(), Some("8710"));
    assert_eq!(m.msgid, None);
    assert_eq!(m.body, "%% It's time to make the do-nuts.");
}

#[test]
fn rfc5424_examples_3_and_4_structured_data() {
    let m = parse(
        b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"] \xEF\xBB\xBFAn application event log entry...",
        &now(),
    );
    assert_eq!(m.format, Format::Rfc5424, "{m:?}");
    assert_eq!(m.structured_data.len(), 1);
    assert_eq!(m.structured_data[0].id, "exampleSDID@32473");
    assert_eq!(
        m.structured_data[0].params,
        vec![
            ("iut".to_string(), "3".to_string()),
            ("eventSource".into(), "Application".into()),
            ("eventID".into(), "1011".into()),
        ]
    );
    assert_eq!(m.body, "An application event log entry...");

    let m = parse(
        b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"][examplePriority@32473 class=\"high\"]",
        &now(),
    );
    assert_eq!(m.format, Format::Rfc5424, "{m:?}");
    assert_eq!(m.structured_data.len(), 2);
    assert_eq!(m.structured_data[1].id, "examplePriority@32473");
    assert_eq!(m.body, "");
}

#[test]
fn rfc5424_escapes_and_nil_timestamp() {
    let m = parse(br#"<14>1 - - - - - [a@1 v="x\"y\]z\\w\n"] hi"#, &now());
    assert_eq!(m.format, Format::Rfc5424, "{m:?}");
    assert_eq!(m.ts_ms, None);
    assert_eq!(m.hostname, None);
    assert_eq!(m.structured_data[0].params[0].1, r#"x"y]z\w\n"#);
    assert_eq!(m.body, "hi");
}

#[test]
fn broken_rfc5424_is_kept_raw_with_a_reason() {
    let cases: [(&[u8], &str); 4] = [
        (b"<14>1 yesterday host app - - - msg", "rfc5424_timestamp"),
        (
            b"<14>1 - host app - - [broken msg",
            "rfc5424_structured_data",
        ),
        (b"<14>1 - host app - - x msg", "rfc5424_structured_data"),
        (
            b"<14>1 - host app-name-that-is-far-too-long-for-rfc-5424-limits - - - m",
            "rfc5424_app_name",
        ),
    ];
    for (raw, reason) in cases {
        let m = parse(raw, &now());
        assert_eq!(m.format, Format::Raw);
        assert_eq!(m.defect, Some(reason), "{}", String::from_utf8_lossy(raw));
        assert_eq!(m.severity, Some(6), "PRI is still read");
        assert_eq!(
            m.body.as_bytes(),
            &raw[4..],
            "body is the message after PRI"
        );
    }
}

#[test]
fn no_pri_is_raw() {
    for raw in [&b"hello"[..], b"<192>x", b"<1x>y", b"<>z", b"<1234>w", b""] {
        let m = parse(raw, &now());
        assert_eq!(m.format, Format::Raw);
        assert_eq!(m.defect, Some("pri"));
        assert_eq!(m.severity, None);
        assert_eq!(m.body.as_bytes(), raw);
    }
}

#[test]
fn rfc3164_examples() {
    let m = parse(
        b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
        &now(),
    );
    assert_eq!(m.format, Format::Rfc3164);
    assert_eq!(m.defect, None);
    assert_eq!(m.ts_ms, Some(ms("2003-10-11T22:14:15Z")));
    assert_eq!(m.hostname.as_deref(), Some("mymachine"));
    assert_eq!(m.app_name.as_deref(), Some("su"));
    assert_eq!(m.body, "'su root' failed for lonvick on /dev/pts/8");

    let m = parse(b"<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!", &now());
    assert_eq!(m.hostname.as_deref(), Some("10.0.0.99"));
    assert_eq!(m.app_name, None);
    assert_eq!(m.body, "Use the BFG!");
    assert_eq!(m.ts_ms, Some(ms("2003-02-05T17:32:18Z")));

    let m = parse(b"<30>Oct  9 08:01:02 web1 nginx[1234]: GET / 200", &now());
    assert_eq!(m.app_name.as_deref(), Some("nginx"));
    assert_eq!(m.procid.as_deref(), Some("1234"));
    assert_eq!(m.body, "GET / 200");
    assert_eq!((m.facility, m.severity), (Some(3), Some(6)));
}

#[test]
fn rfc3164_without_hostname_or_timestamp() {
    let m = parse(b"<13>Oct 11 22:14:15 cron[99]: job done", &now());
    assert_eq!(m.hostname, None);
    assert_eq!(m.app_name.as_deref(), Some("cron"));
    assert_eq!(m.procid.as_deref(), Some("99"));
    assert_eq!(m.body, "job done");

    let m = parse(b"<13>just text", &now());
    assert_eq!(m.format, Format::Rfc3164);
    assert_eq!((m.ts_ms, m.hostname.as_deref()), (None, None));
    assert_eq!(m.body, "just text");

    let m = parse(
        b"<0>1990 Oct 22 10:52:01 TZ-6 scapegoat sched[0]: That's All",
        &now(),
    );
    assert_eq!(m.format, Format::Rfc3164);
    assert_eq!(
        m.body,
        "1990 Oct 22 10:52:01 TZ-6 scapegoat sched[0]: That's All"
    );
}

#[test]
fn rfc3164_iso_timestamp() {
    let m = parse(b"<13>2024-03-05T10:00:00.123+01:00 host app: x", &now());
    assert_eq!(m.ts_ms, Some(ms("2024-03-05T09:00:00.123Z")));
    assert_eq!(m.hostname.as_deref(), Some("host"));
    assert_eq!(m.body, "x");
}

#[test]
fn rfc3164_year_and_zone_inference() {
    let new_year = Utc
        .with_ymd_and_hms(2024, 1, 2, 0, 0, 0)
        .single()
        .expect("valid");
    let m = parse(b"<13>Dec 31 23:59:59 h a: x", &new_year);
    assert_eq!(m.ts_ms, Some(ms("2023-12-31T23:59:59Z")), "last year");
    let m = parse(b"<13>Jan 20 00:00:00 h a: x", &new_year);
    assert_eq!(m.ts_ms, Some(ms("2024-01-20T00:00:00Z")), "a little ahead");

    let paris = FixedOffset::east_opt(2 * 3600)
        .expect("offset")
        .with_ymd_and_hms(2003, 10, 12, 0, 0, 0)
        .single()
        .expect("valid");
    let m = parse(b"<13>Oct 11 22:14:15 h a: x", &paris);
    assert_eq!(
        m.ts_ms,
        Some(ms("2003-10-11T20:14:15Z")),
        "read in now's zone"
    );

    let m = parse(b"<13>Feb 30 00:00:00 h a: x", &now());
    assert_eq!(m.defect, Some("rfc3164_timestamp"));
    assert_eq!(m.ts_ms, None);
    assert_eq!(m.body, "x");
}

#[test]
fn levels() {
    let got: Vec<&str> = (0..8).map(level).collect();
    assert_eq!(
        got,
        [
            "error", "error", "error", "error", "warn", "info", "info", "debug"
        ]
    );
}

fn printable(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[!-~]{{1,{max}}}")).expect("regex")
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let m = parse(&bytes, &now());
        // Nothing is lost: a raw message keeps every byte.
        if m.format == Format::Raw && m.defect == Some("pri") {
            prop_assert_eq!(m.body, String::from_utf8_lossy(&bytes));
        }
    }

    #[test]
    fn pri_prefixed_noise_never_panics(pri in 0u8..=191, rest in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut raw = format!("<{pri}>").into_bytes();
        raw.extend_from_slice(&rest);
        let m = parse(&raw, &now());
        prop_assert_eq!(m.severity, Some(pri % 8));
        prop_assert_eq!(m.facility, Some(pri / 8));
    }

    #[test]
    fn rfc5424_round_trips(
        pri in 0u8..=191,
        host in printable(255),
        app in printable(48),
        procid in printable(128),
        value in "[ -~]{0,40}",
        msg in "[^\u{0}\u{feff}]{0,80}",
    ) {
        let escaped = value.replace('\\', "\\\\").replace('"', "\\\"").replace(']', "\\]");
        let raw = format!(
            "<{pri}>1 2020-01-02T03:04:05.678+02:00 {host} {app} {procid} - [id@1 k=\"{escaped}\"] {msg}"
        );
        let m = parse(raw.as_bytes(), &now());
        prop_assert_eq!(m.format, Format::Rfc5424);
        let nil = |s: &str| (s != "-").then(|| s.to_string());
        prop_assert_eq!(m.hostname, nil(&host));
        prop_assert_eq!(m.app_name, nil(&app));
        prop_assert_eq!(m.procid, nil(&procid));
        prop_assert_eq!(&m.structured_data[0].params[0].1, &value);
        prop_assert_eq!(m.body, msg);
        prop_assert_eq!(m.ts_ms, Some(ms("2020-01-02T01:04:05.678Z")));
    }
}
