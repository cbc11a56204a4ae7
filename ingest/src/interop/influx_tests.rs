use super::*;
use proptest::prelude::*;

fn one(line: &str) -> Point {
    let (mut points, errors) = parse(line, Precision::Ns);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(points.len(), 1);
    points.remove(0)
}

fn error(line: &str) -> String {
    let (points, errors) = parse(line, Precision::Ns);
    assert!(points.is_empty(), "{points:?}");
    assert_eq!(errors.len(), 1, "{errors:?}");
    errors[0].message.clone()
}

#[test]
fn parses_every_field_type_tags_and_timestamp() {
    let p = one(
        "cpu,host=a,cpu=cpu0 usage=12.5,n=3i,big=18446744073709551615u,ok=t,bad=FALSE,e=-1.5e3,msg=\"hi\" 1465839830100400200",
    );
    assert_eq!(p.measurement, "cpu");
    assert_eq!(
        p.tags,
        vec![("host".into(), "a".into()), ("cpu".into(), "cpu0".into())]
    );
    assert_eq!(
        p.fields,
        vec![
            ("usage".into(), FieldValue::Float(12.5)),
            ("n".into(), FieldValue::Integer(3)),
            ("big".into(), FieldValue::Unsigned(u64::MAX)),
            ("ok".into(), FieldValue::Boolean(true)),
            ("bad".into(), FieldValue::Boolean(false)),
            ("e".into(), FieldValue::Float(-1500.0)),
            ("msg".into(), FieldValue::String("hi".into())),
        ]
    );
    assert_eq!(p.ts_ms, Some(1_465_839_830_100));
}

#[test]
fn unescapes_names_values_and_strings() {
    let p =
        one(r#"my\ meas\,ure=x,tag\ key\,a\=b=tag\ val\,u\=e field\ k\=y="say \"hi\" \\ \n" 0"#);
    assert_eq!(p.measurement, "my meas,ure=x");
    assert_eq!(p.tags, vec![("tag key,a=b".into(), "tag val,u=e".into())]);
    assert_eq!(p.fields[0].0, "field k=y");
    assert_eq!(
        p.fields[0].1,
        FieldValue::String(r#"say "hi" \ \n"#.into()),
        "only \\\" and \\\\ are escapes in strings"
    );
    // A backslash before anything else is literal.
    assert_eq!(one(r"c\pu v=1").measurement, r"c\pu");
}

#[test]
fn precision_and_missing_timestamp() {
    assert_eq!(one("m v=1").ts_ms, None);
    assert_eq!(one("m v=1 -1").ts_ms, Some(-1), "rounded down");
    for (p, ts, ms) in [
        (Precision::Us, "1500", 1),
        (Precision::Ms, "1500", 1500),
        (Precision::S, "2", 2000),
    ] {
        let (points, _) = parse(&format!("m v=1 {ts}"), p);
        assert_eq!(points[0].ts_ms, Some(ms), "{p:?}");
    }
}

#[test]
fn many_lines_comments_crlf_and_a_bad_line_in_the_middle() {
    let text = "# a comment\r\nm v=1 1000000\r\n\n  m v=2 2000000\nm v=oops 3\nm v=\"multi\nline\",w=4 4000000\nm v=5\n";
    let (points, errors) = parse(text, Precision::Ns);
    let values: Vec<_> = points.iter().map(|p| p.fields[0].1.clone()).collect();
    assert_eq!(
        values,
        vec![
            FieldValue::Float(1.0),
            FieldValue::Float(2.0),
            FieldValue::String("multi\nline".into()),
            FieldValue::Float(5.0),
        ]
    );
    assert_eq!(points[2].fields[1], ("w".into(), FieldValue::Float(4.0)));
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].line, 5);
    assert!(errors[0].message.contains("`oops`"), "{errors:?}");
}

#[test]
fn rejects_malformed_lines_with_a_reason() {
    assert!(error("cpu").contains("missing field set"));
    assert!(error("cpu,host=a").contains("missing field set"));
    assert!(error("cpu,host= v=1").contains("empty value"));
    assert!(error("cpu,=a v=1").contains("empty tag key"));
    assert!(error("cpu,host v=1").contains("`=`"));
    assert!(error("cpu =1").contains("empty field key"));
    assert!(error("cpu v").contains("`=`"));
    assert!(error("cpu v=").contains("invalid value"));
    assert!(error("cpu v=inf").contains("invalid value"));
    assert!(error("cpu v=NaN").contains("invalid value"));
    assert!(error("cpu v=1e999").contains("invalid value"));
    assert!(error("cpu v=1.5i").contains("invalid value"));
    assert!(error("cpu v=-1u").contains("invalid value"));
    assert!(error("cpu v=99999999999999999999i").contains("invalid value"));
    assert!(error("cpu v=\"open").contains("unterminated"));
    assert!(error("cpu v=1 12x").contains("timestamp"));
    assert!(error("cpu v=1 1 2").contains("after the timestamp"));
    assert!(error(",a=b v=1").contains("empty measurement"));
}

fn name() -> impl Strategy<Value = String> {
    // Spaces, commas, equals signs and quotes need escapes; no backslash
    // (a name ending in one cannot be written unambiguously) and no
    // leading `#` (a comment) or blank.
    "[a-zA-Z0-9_][a-zA-Z0-9_ ,=\".:é-]{0,12}"
}

fn field_value() -> impl Strategy<Value = FieldValue> {
    prop_oneof![
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(FieldValue::Float),
        any::<i64>().prop_map(FieldValue::Integer),
        any::<u64>().prop_map(FieldValue::Unsigned),
        any::<bool>().prop_map(FieldValue::Boolean),
        "[^\\r]{0,16}".prop_map(FieldValue::String),
    ]
}

fn point() -> impl Strategy<Value = Point> {
    (
        name(),
        proptest::collection::vec((name(), name()), 0..4),
        proptest::collection::vec((name(), field_value()), 1..5),
        proptest::option::of(-9_000_000_000_000i64..9_000_000_000_000),
    )
        .prop_map(|(measurement, tags, fields, ts_ms)| Point {
            measurement,
            tags,
            fields,
            ts_ms,
        })
}

proptest! {
    #[test]
    fn never_panics_on_any_text(text in "\\PC{0,200}") {
        let _ = parse(&text, Precision::Ns);
    }

    #[test]
    fn never_panics_on_line_protocol_like_text(text in "[a-z,= \"\\\\#\n\r0-9.eitfu-]{0,120}") {
        let (points, errors) = parse(&text, Precision::S);
        prop_assert!(points.iter().all(|p| !p.fields.is_empty() && !p.measurement.is_empty()));
        prop_assert!(errors.iter().all(|e| e.line >= 1));
    }

    #[test]
    fn formatted_points_read_back_unchanged(points in proptest::collection::vec(point(), 1..5)) {
        let text: Vec<String> = points.iter().map(format_point).collect();
        let (got, errors) = parse(&text.join("\n"), Precision::Ns);
        prop_assert!(errors.is_empty(), "{:?} in {:?}", errors, text);
        prop_assert_eq!(got, points);
    }
}
