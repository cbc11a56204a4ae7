//! Evaluator basics over the in-memory store.

use super::value::{LabelSet, Value, stale_nan};
use super::{Engine, MemoryStore};

fn labels(pairs: &[(&str, &str)]) -> LabelSet {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Loads `values` at `step_s` intervals from 0 (None = missing point).
fn load(store: &mut MemoryStore, l: &[(&str, &str)], step_s: i64, values: &[Option<f64>]) {
    for (i, v) in values.iter().enumerate() {
        if let Some(v) = v {
            store.add(labels(l), i as i64 * step_s * 1000, *v);
        }
    }
}

fn instant(store: &MemoryStore, q: &str, t_s: i64) -> Vec<(LabelSet, f64)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let res = rt
        .block_on(Engine::default().instant(store, q, t_s * 1000))
        .expect("query");
    match res.value {
        Value::Vector(v) => {
            let mut out: Vec<_> = v.into_iter().map(|s| (s.metric, s.v)).collect();
            out.sort_by(|a, b| a.0.cmp(&b.0));
            out
        }
        Value::Scalar(v) => vec![(LabelSet::new(), v)],
        other => panic!("unexpected {other:?}"),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn rate_handles_a_counter_reset() {
    let mut s = MemoryStore::new();
    // 0 10 20 30 then reset to 5, 15 at 60s intervals.
    let vals = [0.0, 10.0, 20.0, 30.0, 5.0, 15.0].map(Some);
    load(&mut s, &[("__name__", "c"), ("job", "a")], 60, &vals);
    let r = instant(&s, "increase(c[5m])", 300);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].0, labels(&[("job", "a")]), "rate drops the name");
    // Points at 60..300 (left-open window): 10 20 30 5 15 → 5+30 = 35 over 240s,
    // extrapolated by 60s at the start (the zero point is further away).
    assert!(close(r[0].1, 35.0 * 300.0 / 240.0), "{}", r[0].1);
    let r = instant(&s, "rate(c[5m])", 300);
    assert!(close(r[0].1, 35.0 / 240.0), "{}", r[0].1);
    let r = instant(&s, "resets(c[10m])", 300);
    assert_eq!(r[0].1, 1.0);
}

#[test]
fn sum_by_groups_and_drops_other_labels() {
    let mut s = MemoryStore::new();
    for (job, inst, v) in [("a", "1", 1.0), ("a", "2", 2.0), ("b", "1", 4.0)] {
        load(
            &mut s,
            &[("__name__", "up"), ("job", job), ("instance", inst)],
            60,
            &[Some(v)],
        );
    }
    let r = instant(&s, "sum by (job) (up)", 30);
    assert_eq!(
        r,
        vec![
            (labels(&[("job", "a")]), 3.0),
            (labels(&[("job", "b")]), 4.0)
        ]
    );
    let r = instant(&s, "count without (instance) (up)", 30);
    assert_eq!(r[0], (labels(&[("job", "a")]), 2.0));
    let r = instant(&s, "topk(1, up)", 30);
    assert_eq!(r[0].1, 4.0);
    assert_eq!(r[0].0.get("__name__").map(String::as_str), Some("up"));
}

#[test]
fn binary_on_group_left_copies_labels() {
    let mut s = MemoryStore::new();
    load(
        &mut s,
        &[("__name__", "req"), ("job", "a"), ("path", "/x")],
        60,
        &[Some(10.0)],
    );
    load(
        &mut s,
        &[("__name__", "req"), ("job", "a"), ("path", "/y")],
        60,
        &[Some(30.0)],
    );
    load(
        &mut s,
        &[("__name__", "info"), ("job", "a"), ("team", "t1")],
        60,
        &[Some(2.0)],
    );
    let r = instant(&s, "req * on (job) group_left (team) info", 30);
    assert_eq!(
        r,
        vec![
            (
                labels(&[("job", "a"), ("path", "/x"), ("team", "t1")]),
                20.0
            ),
            (
                labels(&[("job", "a"), ("path", "/y"), ("team", "t1")]),
                60.0
            ),
        ]
    );
    // Without group_left the many side is an error.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let err = rt
        .block_on(Engine::default().instant(&s, "info * on (job) req", 30_000))
        .expect_err("many-to-many");
    assert!(err.to_string().contains("duplicate series"), "{err}");
    let r = instant(&s, "req > bool 15", 30);
    assert_eq!(r[1], (labels(&[("job", "a"), ("path", "/y")]), 1.0));
}

#[test]
fn offset_reads_the_past() {
    let mut s = MemoryStore::new();
    load(
        &mut s,
        &[("__name__", "m")],
        60,
        &[Some(1.0), Some(2.0), Some(3.0)],
    );
    assert_eq!(instant(&s, "m", 120)[0].1, 3.0);
    assert_eq!(instant(&s, "m offset 1m", 120)[0].1, 2.0);
    assert_eq!(instant(&s, "m @ 60", 1000)[0].1, 2.0);
    assert_eq!(instant(&s, "timestamp(m offset 2m)", 150)[0].1, 0.0);
}

#[test]
fn lookback_and_staleness_end_a_series() {
    let mut s = MemoryStore::new();
    load(&mut s, &[("__name__", "a")], 60, &[Some(1.0)]);
    load(
        &mut s,
        &[("__name__", "b")],
        60,
        &[Some(1.0), Some(stale_nan())],
    );
    // Within 5 minutes: present; at exactly 5 minutes: gone (left-open).
    assert_eq!(instant(&s, "a", 299).len(), 1);
    assert!(instant(&s, "a", 300).is_empty());
    // A staleness marker ends the series at once.
    assert_eq!(instant(&s, "b", 30).len(), 1);
    assert!(instant(&s, "b", 60).is_empty());
    assert_eq!(instant(&s, "count_over_time(b[5m])", 120)[0].1, 1.0);
}

#[test]
fn range_query_steps() {
    let mut s = MemoryStore::new();
    load(
        &mut s,
        &[("__name__", "m")],
        30,
        &[Some(1.0), Some(2.0), Some(3.0), Some(4.0), Some(5.0)],
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let res = rt
        .block_on(Engine::default().range(&s, "m * 2", 0, 120_000, 60_000))
        .expect("range");
    let Value::Matrix(m) = res.value else {
        panic!("matrix expected");
    };
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].points, vec![(0, 2.0), (60_000, 6.0), (120_000, 10.0)]);
    assert!(m[0].metric.is_empty());
}

/// A store holding `node_filesystem_avail_bytes` for two mounts and the
/// analyzer's outputs for them, as the analyzer writes them.
fn predictive_store() -> MemoryStore {
    let mut s = MemoryStore::new();
    for (mount, now, score, ttt) in [
        ("/", 1000.0, 0.2, Some(9000.0)),
        ("/var", 500.0, 0.99, None),
    ] {
        let src = [
            ("__name__", "node_filesystem_avail_bytes"),
            ("mountpoint", mount),
        ];
        s.add(labels(&src), 60_000, now);
        let out = |name: &str, extra: &[(&str, &str)]| {
            let mut l = labels(&[
                ("__name__", name),
                ("for", "node_filesystem_avail_bytes"),
                ("mountpoint", mount),
            ]);
            l.extend(labels(extra));
            l
        };
        s.add(out("vigie_anomaly_score", &[]), 60_000, score);
        for (h, drop) in [("15m", 100.0), ("1h", 400.0), ("4h", 1600.0)] {
            for (q, spread) in [("0.1", -50.0), ("0.5", 0.0), ("0.9", 50.0)] {
                s.add(
                    out("vigie_forecast", &[("horizon", h), ("quantile", q)]),
                    60_000,
                    now - drop + spread,
                );
            }
        }
        if let Some(ttt) = ttt {
            s.add(
                out("vigie_time_to_threshold_seconds", &[("threshold", "0")]),
                60_000,
                ttt,
            );
        }
    }
    s
}

#[test]
fn anomaly_score_reads_the_stored_scores() {
    let s = predictive_store();
    let r = instant(&s, "anomaly_score(node_filesystem_avail_bytes)", 90);
    assert_eq!(
        r,
        vec![
            (labels(&[("mountpoint", "/")]), 0.2),
            (labels(&[("mountpoint", "/var")]), 0.99)
        ]
    );
    let r = instant(
        &s,
        r#"anomaly_score({__name__=~"node_filesystem_.*", mountpoint="/var"}) > 0.9"#,
        90,
    );
    assert_eq!(r, vec![(labels(&[("mountpoint", "/var")]), 0.99)]);
    // Past the lookback there is nothing.
    assert!(instant(&s, "anomaly_score(node_filesystem_avail_bytes)", 60 + 301).is_empty());
}

#[test]
fn forecast_picks_horizon_and_quantile() {
    let s = predictive_store();
    let r = instant(
        &s,
        r#"forecast(node_filesystem_avail_bytes{mountpoint="/"}, "1h", 0.9)"#,
        90,
    );
    assert_eq!(
        r,
        vec![(labels(&[("mountpoint", "/")]), 1000.0 - 400.0 + 50.0)]
    );
    let r = instant(
        &s,
        r#"forecast(node_filesystem_avail_bytes, "4h", 0.5) < -1000"#,
        90,
    );
    assert_eq!(r, vec![(labels(&[("mountpoint", "/var")]), 500.0 - 1600.0)]);
}

#[test]
fn time_to_threshold_prefers_the_analyzer_then_the_forecast() {
    let s = predictive_store();
    let r = instant(&s, "time_to_threshold(node_filesystem_avail_bytes, 0)", 90);
    // "/" has the analyzer's estimate; "/var" falls from 500 to 100 at 1 h
    // and -1100 at 4 h: crosses 0 a twelfth of the way into 1h..4h.
    let var = 3600.0 + 100.0 / 1200.0 * 10800.0;
    assert_eq!(r.len(), 2, "{r:?}");
    assert_eq!(r[0], (labels(&[("mountpoint", "/")]), 9000.0));
    assert!(close(r[1].1, var), "{r:?}");
    // A threshold without a configured limit comes from the forecast.
    let r = instant(
        &s,
        r#"time_to_threshold(node_filesystem_avail_bytes{mountpoint="/"}, 950)"#,
        90,
    );
    assert!(close(r[0].1, 450.0), "{r:?}");
}

#[test]
fn predictive_functions_reject_what_they_cannot_answer() {
    let s = predictive_store();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    for (q, needle) in [
        ("anomaly_score(rate(x[5m]))", "vector selector"),
        (r#"forecast(x, "2h", 0.5)"#, "\"15m\", \"1h\" or \"4h\""),
        (r#"forecast(x, "1h", 0.7)"#, "0.1, 0.5 or 0.9"),
        ("time_to_threshold(x, scalar(y))", "number literal"),
    ] {
        let err = rt
            .block_on(Engine::default().instant(&s, q, 90_000))
            .expect_err(q)
            .to_string();
        assert!(err.contains(needle), "{q}: {err}");
    }
}

#[test]
fn holt_winters_is_double_exponential_smoothing() {
    let mut s = MemoryStore::new();
    let vals: Vec<Option<f64>> = (0..10).map(|i| Some((i * i) as f64)).collect();
    load(&mut s, &[("__name__", "g")], 60, &vals);
    let old = instant(&s, "holt_winters(g[10m], 0.5, 0.5)", 540);
    let new = instant(&s, "double_exponential_smoothing(g[10m], 0.5, 0.5)", 540);
    assert_eq!(old.len(), 1);
    assert_eq!(old, new);
}
