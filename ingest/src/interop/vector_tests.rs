use super::*;
use proptest::prelude::*;

fn samples(json: &str, totals: &mut Totals) -> Result<Vec<Sample>, InteropError> {
    to_samples(
        json.as_bytes(),
        &Labels::new().with("dc", "par1"),
        7,
        totals,
        &mut Skipped::default(),
    )
}

fn one(json: &str) -> Sample {
    let mut got = samples(json, &mut Totals::default()).expect(json);
    assert_eq!(got.len(), 1, "{got:?}");
    got.remove(0)
}

#[test]
fn absolute_counter_with_namespace_tags_and_time() {
    let s = one(
        r#"{"name":"cpu_seconds_total","namespace":"host","tags":{"cpu":"0","mode":["user","idle"],"bare":null},"timestamp":"2024-05-14T10:15:02.405Z","kind":"absolute","counter":{"value":42.5}}"#,
    );
    assert_eq!(s.series.metric, "host_cpu_seconds_total");
    assert_eq!(s.series.labels.get("cpu"), Some("0"));
    assert_eq!(
        s.series.labels.get("mode"),
        Some("idle"),
        "last value of a multi-valued tag"
    );
    assert_eq!(s.series.labels.get("bare"), None);
    assert_eq!(s.series.labels.get("dc"), Some("par1"));
    assert_eq!(s.ts_ms, 1_715_681_702_405);
    assert_eq!(s.value, 42.5);
}

#[test]
fn gauge_set_and_missing_timestamp() {
    let g = one(r#"{"name":"load.1","kind":"absolute","gauge":{"value":0.25}}"#);
    assert_eq!(
        (g.series.metric.as_str(), g.value, g.ts_ms),
        ("load_1", 0.25, 7)
    );
    let s = one(
        r#"{"name":"users","namespace":null,"kind":"absolute","set":{"values":["a","b","c"]}}"#,
    );
    assert_eq!((s.series.metric.as_str(), s.value), ("users", 3.0));
}

#[test]
fn incremental_counters_are_summed_per_series() {
    let mut totals = Totals::default();
    let inc = |host: &str, v: f64| {
        format!(
            r#"{{"name":"hits","tags":{{"host":"{host}"}},"kind":"incremental","counter":{{"value":{v}}}}}"#
        )
    };
    let mut values = Vec::new();
    for (host, v) in [("a", 1.0), ("a", 2.0), ("b", 5.0), ("a", 0.5)] {
        values.push(samples(&inc(host, v), &mut totals).expect("valid")[0].value);
    }
    assert_eq!(values, vec![1.0, 3.0, 5.0, 3.5]);
}

#[test]
fn aggregated_histogram_and_summary_as_prometheus_has_them() {
    let h = samples(
        r#"{"name":"rt","kind":"absolute","aggregated_histogram":{"buckets":[{"upper_limit":0.5,"count":2},{"upper_limit":1.0,"count":3},{"upper_limit":null,"count":1}],"count":6,"sum":4.2}}"#,
        &mut Totals::default(),
    )
    .expect("valid");
    let got: Vec<(String, Option<String>, f64)> = h
        .iter()
        .map(|s| {
            (
                s.series.metric.clone(),
                s.series.labels.get("le").map(String::from),
                s.value,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("rt_bucket".into(), Some("0.5".into()), 2.0),
            ("rt_bucket".into(), Some("1".into()), 5.0),
            ("rt_bucket".into(), Some("+Inf".into()), 6.0),
            ("rt_sum".into(), None, 4.2),
            ("rt_count".into(), None, 6.0),
        ]
    );
    let q = samples(
        r#"{"name":"rt","kind":"absolute","aggregated_summary":{"quantiles":[{"quantile":0.99,"value":0.8}],"count":6,"sum":4.2}}"#,
        &mut Totals::default(),
    )
    .expect("valid");
    assert_eq!(q[0].series.labels.get("quantile"), Some("0.99"));
    assert_eq!(q[0].value, 0.8);
    assert_eq!(q.len(), 3);
}

#[test]
fn rejects_with_a_reason() {
    let reason = |json: &str| {
        samples(json, &mut Totals::default())
            .expect_err(json)
            .reason()
    };
    assert_eq!(reason("{"), "json");
    assert_eq!(reason("3"), "shape");
    assert_eq!(
        reason(r#"{"kind":"absolute","gauge":{"value":1}}"#),
        "shape"
    );
    assert_eq!(reason(r#"{"name":"x","kind":"absolute"}"#), "shape");
    assert_eq!(
        reason(r#"{"name":"x","kind":"sideways","gauge":{"value":1}}"#),
        "shape"
    );
    assert_eq!(reason(r#"{"name":"x","gauge":{"value":"1"}}"#), "shape");
    assert_eq!(
        reason(r#"{"name":"x","gauge":{"value":1},"timestamp":"noon"}"#),
        "timestamp"
    );
    assert_eq!(
        reason(
            r#"{"name":"x","kind":"absolute","distribution":{"samples":[{"value":1,"rate":1}],"statistic":"histogram"}}"#
        ),
        "unsupported"
    );
    assert_eq!(
        reason(
            r#"{"name":"x","kind":"incremental","aggregated_histogram":{"buckets":[],"count":0,"sum":0}}"#
        ),
        "unsupported"
    );
    assert_eq!(reason(r#"{"name":"x","sketch":{}}"#), "unsupported");
}

proptest! {
    #[test]
    fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = to_samples(&bytes, &Labels::new(), 0, &mut Totals::default(), &mut Skipped::default());
    }

    #[test]
    fn never_panics_on_vector_like_json(
        kind in "(absolute|incremental|x)",
        value in "(counter|gauge|set|aggregated_histogram|aggregated_summary|distribution)",
        body in "[{}\\[\\]\":,a-z0-9.-]{0,60}",
    ) {
        let json = format!(r#"{{"name":"n","kind":"{kind}","{value}":{body}}}"#);
        let _ = to_samples(json.as_bytes(), &Labels::new(), 0, &mut Totals::default(), &mut Skipped::default());
    }

    #[test]
    fn gauges_read_back(v in any::<f64>().prop_filter("finite", |f| f.is_finite()), ms in 0i64..4_000_000_000_000) {
        let ts = chrono::DateTime::from_timestamp_millis(ms).expect("in range").to_rfc3339();
        let json = serde_json::json!({"name": "g", "kind": "absolute", "timestamp": ts, "gauge": {"value": v}});
        let s = one(&json.to_string());
        prop_assert_eq!(s.value, v);
        prop_assert_eq!(s.ts_ms, ms);
    }
}
