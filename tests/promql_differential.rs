//! Differential correctness against the real Prometheus: one data set in
//! Prometheus 2.42 (Debian's package) and in Vigie
//! ([`common::prometheus::PromPair`]: Prometheus scrapes a deterministic
//! target and remote-writes every sample to Vigie), then every query of
//! [`QUERIES`] is asked of both over HTTP, as instant queries at three
//! fixed past times and as a range query over a fixed span.
//!
//! Answers agree when both fail with the same `errorType`, or both have the
//! same result type, the same label sets, and values within 1e-9 relative
//! (NaN equals NaN); series order counts only for instant `sort`,
//! `sort_desc`, `topk` and `bottomk`, and only as the order of values.
//!
//! A query agrees when all four of its answers agree. The test prints
//! `promql differential: N/M passed`, every failing query with both
//! answers, and fails when a query not listed in
//! `tests/fixtures/promql-known-differences.txt` differs, or when a listed
//! query agrees (remove it from the list, and from docs/promql-compat.md).
//!
//! Evaluation times sit half a scrape interval away from the scrapes, and
//! every window and subquery step is a whole number of seconds, so no
//! window boundary falls on a sample: Prometheus 2.42's closed windows
//! (`[t - range, t]`) and Prometheus 3's left-open ones, which Vigie
//! follows, then select the same samples.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use common::prometheus::{PromPair, compare, get_json};
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// The known differences: one entry per paragraph, the query on its first
/// line, the reason below.
const KNOWN: &str = include_str!("fixtures/promql-known-differences.txt");
const DOC: &str = include_str!("../docs/promql-compat.md");

/// The queries. `{mid}` stands for a fixed time inside the data (for `@`),
/// `{sub_offset}` for [`PromPair::subquery_offset`].
///
/// Data (every series also has `job="app"` and `instance`): counters
/// `app_requests_total{code, method}` (code 404 resets at scrape 25),
/// gauges `app_temperature{room}` (a, b, c), `app_jobs_queued`,
/// `app_limit{method}`, `app_build_info{version, branch}`,
/// `app_sessions{user}` (alice leaves after scrape 29, bob arrives at
/// 10), `app_ratio` (NaN every 11th scrape), histogram
/// `app_latency_seconds`, and Prometheus' `up` and `scrape_*`.
const QUERIES: &[&str] = &[
    // --- selectors: every matcher type, offset, @, lookback and staleness
    "up",
    "app_requests_total",
    r#"app_requests_total{code="200"}"#,
    r#"app_requests_total{code!="200"}"#,
    r#"app_requests_total{code=~"5..|4.."}"#,
    r#"app_requests_total{code!~"2.*", method="get"}"#,
    r#"app_requests_total{method=~"get|post", code=~"[245]00"}"#,
    r#"{__name__="app_temperature"}"#,
    r#"{__name__=~"app_temp.*", room!="c"}"#,
    r#"{__name__=~"app_(limit|build_info)"}"#,
    r#"app_temperature{room=~"A"}"#,
    r#"app_temperature{room=~"(?i)A"}"#,
    r#"app_temperature{nonexistent=""}"#,
    r#"app_temperature{room!=""}"#,
    r#"app_latency_seconds_bucket{le="+Inf"}"#,
    "nonexistent_metric",
    "app_temperature offset 7s",
    "app_temperature offset -4s",
    "app_requests_total offset 30s",
    "app_sessions",
    "app_sessions offset 15s",
    "app_ratio",
    "app_jobs_queued @ start()",
    "app_jobs_queued @ end()",
    "app_temperature @ {mid}",
    "app_temperature @ {mid} offset 5s",
    "app_temperature[30s]",
    "app_requests_total[10s] offset 5s",
    "scrape_samples_scraped",
    "timestamp(app_sessions)",
    r#"{__name__=~".+_total"}"#,
    r#"app_requests_total{code=~"2.*|"}"#,
    r#"app_requests_total{method=~".*"}"#,
    r#"{job="app", __name__=~"app_l.*"}"#,
    "app_temperature @ 100",
    "app_jobs_queued offset 1m",
    "last_over_time(app_temperature[10m] @ end())",
    "timestamp(app_sessions offset 20s)",
    r#"{__name__=~"app_requests_total|app_limit", method=~"g.t"}"#,
    r#"app_temperature{nonexistent!~".+"}"#,
    r#"app_temperature{nonexistent=~".*"}"#,
    r#"app_temperature{nonexistent!=""}"#,
    r#"app_latency_seconds_bucket{le=~"0.(05|1)"}"#,
    "timestamp(app_jobs_queued @ {mid})",
    // --- counters and gauges over ranges
    "rate(app_requests_total[10s])",
    "rate(app_requests_total[1m])",
    "irate(app_requests_total[5s])",
    "increase(app_requests_total[20s])",
    "increase(app_requests_total[7s] offset 3s)",
    "delta(app_temperature[15s])",
    "idelta(app_temperature[5s])",
    "deriv(app_jobs_queued[20s])",
    "deriv(app_temperature[1m])",
    "predict_linear(app_jobs_queued[20s], 60)",
    "predict_linear(app_temperature[30s], -10)",
    "holt_winters(app_jobs_queued[20s], 0.5, 0.5)",
    "holt_winters(app_temperature[30s], 0.1, 0.9)",
    "resets(app_requests_total[40s])",
    "resets(app_requests_total[1m])",
    "changes(app_temperature[30s])",
    "changes(app_sessions[1m])",
    "rate(app_latency_seconds_count[15s])",
    "rate(app_requests_total[10s] @ end())",
    "irate(app_requests_total[1m] @ {mid})",
    "rate(app_sessions[20s])",
    "rate(app_ratio[10s])",
    "delta(app_ratio[10s])",
    "irate(app_ratio[5s])",
    "deriv(app_ratio[20s])",
    "predict_linear(app_ratio[20s], 10)",
    "changes(app_ratio[20s])",
    "resets(app_ratio[20s])",
    "irate(app_sessions[10s])",
    "delta(app_jobs_queued[20s] @ end())",
    "increase(app_latency_seconds_bucket[20s])",
    "rate(app_requests_total[1s])",
    "increase(app_requests_total[2s])",
    "resets(app_sessions[30s])",
    "idelta(app_sessions[3s])",
    // --- *_over_time
    "avg_over_time(app_temperature[10s])",
    "min_over_time(app_temperature[30s])",
    "max_over_time(app_temperature[30s] offset 5s)",
    "sum_over_time(app_jobs_queued[15s])",
    "count_over_time(up[30s])",
    "count_over_time(app_sessions[20s])",
    "quantile_over_time(0.5, app_temperature[20s])",
    "quantile_over_time(0.9, app_jobs_queued[30s])",
    "quantile_over_time(1.5, app_jobs_queued[30s])",
    "stddev_over_time(app_temperature[20s])",
    "stdvar_over_time(app_temperature[20s])",
    "last_over_time(app_temperature[1m])",
    "last_over_time(app_sessions[1m])",
    "present_over_time(app_jobs_queued[10s])",
    "present_over_time(app_sessions[5s])",
    "absent_over_time(nonexistent_metric[1m])",
    r#"absent_over_time(app_sessions{user="alice"}[5s])"#,
    "absent_over_time(app_temperature[1m])",
    "max_over_time(app_ratio[20s])",
    "min_over_time(app_ratio[20s])",
    "avg_over_time(app_ratio[20s])",
    "sum_over_time(app_ratio[20s])",
    "stddev_over_time(app_ratio[20s])",
    "quantile_over_time(0.5, app_ratio[20s])",
    "present_over_time(app_ratio[5s])",
    "max_over_time(app_sessions[10s])",
    "sum_over_time(app_temperature[2s])",
    "absent_over_time(app_sessions[3s])",
    "last_over_time(app_ratio[3s])",
    "quantile_over_time(0.5, app_sessions[1m])",
    // --- math
    "abs(app_temperature - 20)",
    "ceil(app_temperature)",
    "floor(app_temperature)",
    "round(app_temperature)",
    "round(app_temperature, 0.5)",
    "sqrt(app_jobs_queued)",
    "sqrt(18 - app_temperature)",
    "exp(app_ratio)",
    "ln(app_jobs_queued)",
    "log2(app_jobs_queued)",
    "log10(app_temperature)",
    "sgn(app_temperature - 20)",
    "-app_temperature",
    "sin(app_ratio)",
    "acos(app_ratio * 3)",
    "asinh(app_temperature)",
    "deg(app_ratio)",
    "rad(app_temperature)",
    "app_ratio atan2 0.5",
    "clamp(app_temperature, 19, 22)",
    "clamp_min(app_temperature, 20)",
    "clamp_max(app_jobs_queued, 5)",
    "clamp(app_temperature, 22, 19)",
    "round(app_ratio, 0.1)",
    "abs(-app_ratio)",
    "exp(app_temperature * 40)",
    "ln(-app_jobs_queued)",
    "-2 ^ 2",
    "1 - app_ratio",
    // --- time and conversions
    "time()",
    "timestamp(app_jobs_queued)",
    "timestamp(app_temperature offset 10s)",
    "vector(1)",
    "vector(time())",
    "scalar(app_jobs_queued)",
    "scalar(app_temperature)",
    "minute(timestamp(app_jobs_queued))",
    "hour()",
    "year()",
    "days_in_month(vector(1709251200))",
    "month(vector(1700000000))",
    "day_of_week(vector(1700000000))",
    "time() - timestamp(app_jobs_queued)",
    "timestamp(sum(app_jobs_queued))",
    "scalar(sum(app_sessions))",
    "day_of_month(timestamp(app_jobs_queued))",
    "day_of_year(vector(1700000000))",
    // --- labels
    r#"label_replace(up, "host", "$1", "instance", "(.*):.*")"#,
    r#"label_replace(app_temperature, "room", "room-$1", "room", "(.*)")"#,
    r#"label_replace(app_temperature, "x", "$1", "room", "nomatch(.*)")"#,
    r#"label_replace(app_temperature, "room", "", "room", ".*")"#,
    r#"label_join(app_requests_total, "key", "-", "code", "method")"#,
    r#"label_join(app_temperature, "room", "", "job")"#,
    r#"label_replace(app_temperature, "__name__", "temp_$1", "room", "(.*)")"#,
    r#"label_join(up, "x", ",", "job", "instance", "nonexistent")"#,
    r#"label_replace(up, "port", "$2", "instance", "(.*):(\\d+)")"#,
    r#"label_replace(app_temperature, "x", "${1}_suffix", "room", "(.)")"#,
    r#"label_replace(app_temperature, "x", "$1x", "room", "(.)")"#,
    r#"label_replace(app_temperature, "x", "y", "room", "a|b")"#,
    r#"label_join(app_limit, "name", "/", "__name__", "method")"#,
    r#"label_replace(up, "invalid-name", "x", "job", ".*")"#,
    r#"label_replace(rate(app_requests_total[10s]), "name", "$1", "__name__", "(.*)")"#,
    // --- histograms
    "histogram_quantile(0.9, sum by (le) (rate(app_latency_seconds_bucket[15s])))",
    "histogram_quantile(0.5, rate(app_latency_seconds_bucket[10s]))",
    "histogram_quantile(0.99, app_latency_seconds_bucket)",
    "histogram_quantile(0, app_latency_seconds_bucket)",
    "histogram_quantile(1.5, app_latency_seconds_bucket)",
    "histogram_quantile(0.5, sum by (le, job) (app_latency_seconds_bucket))",
    "rate(app_latency_seconds_sum[15s]) / rate(app_latency_seconds_count[15s])",
    "histogram_quantile(0.9, sum by (le) (increase(app_latency_seconds_bucket[30s])))",
    "sum by (le) (app_latency_seconds_bucket)",
    r#"histogram_quantile(0.5, app_latency_seconds_bucket{le!="+Inf"})"#,
    "histogram_quantile(0.5, app_temperature)",
    // --- absent
    "absent(nonexistent_metric)",
    r#"absent(up{job="nope"})"#,
    "absent(up)",
    r#"absent(nonexistent{job="x", instance=~"y"})"#,
    "absent(sum(nonexistent_metric))",
    r#"absent(app_sessions{user="alice"})"#,
    r#"absent(nonexistent_metric{job="a"} offset 1m)"#,
    // --- sorting
    "sort(app_temperature)",
    "sort_desc(app_temperature)",
    "sort(rate(app_requests_total[10s]))",
    "sort_desc(app_requests_total)",
    "sort_desc(sum by (code) (app_requests_total))",
    "sort(app_ratio or app_jobs_queued)",
    "sort_desc(app_ratio or app_jobs_queued)",
    // --- aggregations
    "sum(app_requests_total)",
    "sum by (code) (rate(app_requests_total[15s]))",
    "sum without (method) (app_requests_total)",
    "avg by (method) (app_requests_total)",
    "min(app_temperature)",
    "max by (job) (app_temperature)",
    "count(app_requests_total)",
    "count by (job) (up)",
    "count without (room) (app_temperature)",
    "stddev(app_temperature)",
    "stdvar by (job) (app_temperature)",
    "topk(1, app_requests_total)",
    "topk(2, rate(app_requests_total[10s]))",
    "topk by (method) (1, app_requests_total)",
    "bottomk(1, app_temperature)",
    "bottomk(2, rate(app_requests_total[10s]))",
    "quantile(0.75, app_temperature)",
    "quantile by (method) (0.5, app_requests_total)",
    r#"count_values("v", app_jobs_queued)"#,
    r#"count_values("temp", round(app_temperature))"#,
    "group by (code) (app_requests_total)",
    "group(app_temperature)",
    "sum(app_ratio)",
    "max(app_ratio)",
    "avg(app_sessions)",
    "sum by (user) (app_sessions)",
    r#"sum by (__name__) ({__name__=~"app_temperature|app_jobs_queued"})"#,
    "sum(rate(app_requests_total[10s])) by (method)",
    "count(count by (method) (app_requests_total))",
    "topk(1, sum by (method) (app_requests_total))",
    "sum without (instance, job) (app_temperature)",
    "stddev by (method) (rate(app_requests_total[10s]))",
    "quantile(0, app_temperature)",
    "quantile(2, app_temperature)",
    "quantile(0.5, app_ratio)",
    "group without (code) (app_requests_total)",
    "sum(app_requests_total) by (nonexistent)",
    r#"count_values("code", app_requests_total)"#,
    "topk(1, app_ratio or app_jobs_queued)",
    "bottomk(1, app_ratio)",
    "stddev(app_ratio)",
    r#"count_values("v", app_ratio)"#,
    "count(app_sessions) or vector(0)",
    // --- arithmetic and comparisons
    "app_temperature > 20",
    "app_temperature > bool 20",
    "app_temperature == 18",
    "app_temperature != bool 18",
    "app_temperature <= 19",
    "20 < app_temperature",
    "2 * app_jobs_queued + 1",
    "app_temperature % 3 ^ 2",
    "app_temperature ^ 2",
    "app_jobs_queued / 0",
    "-app_jobs_queued % 5",
    "1 + 2 * 3",
    "2 ^ 3 ^ 2",
    "5 > bool 3",
    "(app_temperature > 19) * 2",
    "sum(app_requests_total) / count(app_requests_total)",
    "app_temperature / app_temperature offset 10s",
    "rate(app_requests_total[10s]) > bool 1",
    "app_jobs_queued > 5 and app_jobs_queued < 15",
    "app_ratio > 0",
    "app_ratio == app_ratio",
    "app_ratio == bool app_ratio",
    // --- set operators and vector matching
    "app_requests_total and on (method) app_limit",
    r#"app_requests_total{code="200"} and on (method) app_requests_total{code="500"}"#,
    r#"app_temperature unless app_temperature{room="a"}"#,
    "app_temperature unless on (job) app_jobs_queued",
    "app_temperature or app_jobs_queued",
    r#"app_sessions{user="alice"} or vector(0)"#,
    "app_requests_total / on (instance, job) group_left sum by (instance, job) (app_requests_total)",
    "app_requests_total / ignoring (code) group_left app_limit",
    "app_limit * on (method) group_right app_requests_total",
    "app_requests_total * on (instance, job) group_left (version) app_build_info",
    "app_temperature - on () group_left app_jobs_queued",
    "app_temperature > on (job) group_left app_jobs_queued",
    "app_requests_total + ignoring (code, method) group_left app_jobs_queued",
    "app_requests_total / app_limit",
    "app_limit / on (method) app_requests_total",
    r#"vector(1) and on () app_sessions{user="alice"}"#,
    "app_temperature > scalar(app_jobs_queued)",
    "app_requests_total > bool on (method) group_left app_limit",
    "app_requests_total or app_requests_total offset 10s",
    "avg_over_time(app_requests_total[1m]) unless on (code) app_requests_total{code=\"200\"}",
    "app_requests_total * on (method) app_requests_total",
    // --- subqueries
    "max_over_time(rate(app_requests_total[5s]{sub_offset})[20s:2s])",
    "avg_over_time(app_temperature[30s:5s])",
    "rate(app_requests_total[10s:1s])",
    "min_over_time(sum(app_requests_total)[15s:3s] offset 5s)",
    "sum_over_time(app_jobs_queued[20s:])",
    "max_over_time(deriv(app_temperature[10s]{sub_offset})[30s:5s])",
    "count_over_time(app_sessions[40s:4s])",
    "last_over_time(app_jobs_queued[1m:10s] @ end())",
    "avg_over_time(app_temperature[20s:3s] @ {mid})",
    "quantile_over_time(0.5, sum(app_requests_total)[30s:2s])",
    "max_over_time(max_over_time(app_jobs_queued[5s]{sub_offset})[20s:5s])",
    "rate(app_requests_total[10s]{sub_offset})[30s:5s]",
    "min_over_time(app_temperature[30s:2s] @ start())",
    "max_over_time(app_jobs_queued[20s:5s] offset 10s)",
    "min_over_time(timestamp(app_jobs_queued)[30s:1s])",
    // errors: both must fail, with the same errorType
    "rate(app_jobs_queued)",
    "1 > 2",
    r#"label_replace(up, "x", "$1", "job", "(")"#,
    r#"label_join(up, "", "-", "job")"#,
];

/// Queries whose instant answer has an order to check.
fn ordered(query: &str) -> bool {
    ["sort(", "sort_desc(", "topk(", "bottomk("]
        .iter()
        .any(|p| query.starts_with(p))
}

/// The known differences: query → reason.
fn known() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for para in KNOWN.split("\n\n") {
        let lines: Vec<&str> = para.lines().filter(|l| !l.starts_with('#')).collect();
        if let Some((query, reason)) = lines.split_first() {
            out.insert(query.to_string(), reason.join(" ").trim().to_string());
        }
    }
    out
}

/// One evaluation: where and when a query is asked.
enum Eval {
    Instant(f64),
    Range(f64, f64, u32),
}

impl Eval {
    fn params(&self, query: &str) -> (&'static str, Vec<(&'static str, String)>) {
        let q = ("query", query.to_string());
        match self {
            Eval::Instant(t) => ("/api/v1/query", vec![q, ("time", format!("{t:.3}"))]),
            Eval::Range(s, e, step) => (
                "/api/v1/query_range",
                vec![
                    q,
                    ("start", format!("{s:.3}")),
                    ("end", format!("{e:.3}")),
                    ("step", step.to_string()),
                ],
            ),
        }
    }
}

/// Compares two API answers (`{"status", "data" | "errorType"}`).
fn compare_answers(prom: &Value, vigie: &Value, ordered: bool) -> Result<(), String> {
    match (prom["status"].as_str(), vigie["status"].as_str()) {
        (Some("success"), Some("success")) => {
            let (pt, vt) = (&prom["data"]["resultType"], &vigie["data"]["resultType"]);
            if pt != vt {
                return Err(format!("result type: prometheus {pt}, vigie {vt}"));
            }
            compare(&prom["data"]["result"], &vigie["data"]["result"], ordered)
        }
        (Some("error"), Some("error")) if prom["errorType"] == vigie["errorType"] => Ok(()),
        _ => Err("one failed".into()),
    }
}

/// A short form of an answer for the failure list.
fn brief(v: &Value) -> String {
    let s = if v["status"] == "success" {
        v["data"].to_string()
    } else {
        v.to_string()
    };
    let n = s.chars().count();
    if n > 1500 {
        format!(
            "{}... ({n} chars)",
            s.chars().take(1500).collect::<String>()
        )
    } else {
        s
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vigie_answers_promql_as_prometheus_does() {
    // 50 scrapes: 40 s windows, the reset at 25, alice leaving at 30.
    let pair = PromPair::start(50).await;
    // Half a scrape interval after the scrapes (kept away from whole
    // seconds, where the subquery grid is), from the second scrape on:
    // at the first every counter is 0, and `topk` ties may break either
    // way (Prometheus' range queries break them in map order).
    let mut base = pair.first_ts + 0.5;
    if !(0.1..=0.9).contains(&base.fract()) {
        base += 0.3;
    }
    let after = base + (pair.last_ts - base).ceil() + 30.0;
    let evals = [
        Eval::Instant(base + 12.0),
        Eval::Instant(base + 27.0),
        Eval::Instant(base + 41.0),
        // Into the time after the target went away: staleness markers end
        // every series.
        Eval::Range(base + 1.0, after, 1),
    ];
    let mid = format!("{:.3}", base + 20.0);
    let sub_offset = pair.subquery_offset();

    let known = known();
    let listed: BTreeSet<&str> = QUERIES.iter().copied().collect();
    assert_eq!(listed.len(), QUERIES.len(), "a query is listed twice");
    for q in known.keys() {
        assert!(
            listed.contains(q.as_str()),
            "known difference {q:?} is not a query of the test"
        );
    }

    // Every (query, evaluation) pair asked of both servers, a few at a time.
    let client = reqwest::Client::new();
    let vigie_addr = pair.vigie.addr.to_string();
    let permits = Arc::new(Semaphore::new(4));
    let asked_at = std::time::Instant::now();
    let mut tasks = JoinSet::new();
    for (qi, template) in QUERIES.iter().enumerate() {
        let query = template
            .replace("{mid}", &mid)
            .replace("{sub_offset}", sub_offset);
        for (ei, eval) in evals.iter().enumerate() {
            let (path, params) = eval.params(&query);
            let order = matches!(eval, Eval::Instant(_)) && ordered(&query);
            let (client, prom, vigie) =
                (client.clone(), pair.prom_addr.clone(), vigie_addr.clone());
            let permits = permits.clone();
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await.expect("semaphore");
                let clock = std::time::Instant::now();
                let p = get_json(&client, &prom, path, &params).await;
                let prom_time = clock.elapsed();
                let v = get_json(&client, &vigie, path, &params).await;
                let times = (prom_time, clock.elapsed() - prom_time);
                (qi, ei, params, order, p, v, times)
            });
        }
    }
    let mut results: BTreeMap<(usize, usize), _> = BTreeMap::new();
    let (mut prom_time, mut vigie_time) = (Duration::ZERO, Duration::ZERO);
    while let Some(done) = tasks.join_next().await {
        let (qi, ei, params, order, p, v, times) = done.expect("query task");
        prom_time += times.0;
        vigie_time += times.1;
        let p = p.unwrap_or_else(|e| panic!("prometheus: {e}\n{}", pair.prom_log()));
        let v = v.unwrap_or_else(|e| panic!("vigie: {e}\n{}", pair.vigie.log()));
        results.insert((qi, ei), (params, order, p, v));
    }

    println!(
        "asked {} queries x {} evaluations in {:.1} s (answering: prometheus {:.1} s, vigie {:.1} s)",
        QUERIES.len(),
        evals.len(),
        asked_at.elapsed().as_secs_f64(),
        prom_time.as_secs_f64(),
        vigie_time.as_secs_f64()
    );
    let mut passed = 0;
    let mut answers = 0;
    let mut with_data = 0;
    let mut unexpected = Vec::new();
    let mut fixed = Vec::new();
    let mut report = Vec::new();
    for (qi, template) in QUERIES.iter().enumerate() {
        let query = template
            .replace("{mid}", &mid)
            .replace("{sub_offset}", sub_offset);
        let mut diffs = Vec::new();
        for ((_, _), (params, order, p, v)) in results.range((qi, 0)..(qi + 1, 0)) {
            answers += 1;
            if p["data"]["result"].as_array().is_none_or(|r| !r.is_empty()) {
                with_data += 1;
            }
            if let Err(e) = compare_answers(p, v, *order) {
                diffs.push(format!(
                    "  {}: {e}\n    prometheus: {}\n    vigie:      {}",
                    params
                        .iter()
                        .skip(1)
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(" "),
                    brief(p),
                    brief(v)
                ));
            }
        }
        let reason = known.get(*template);
        match (diffs.is_empty(), reason) {
            (true, None) => passed += 1,
            (true, Some(_)) => fixed.push(*template),
            (false, reason) => {
                report.push(format!(
                    "DIFFERS {query}{}\n{}",
                    reason
                        .map(|r| format!("  (known: {r})"))
                        .unwrap_or_default(),
                    diffs.join("\n")
                ));
                if reason.is_none() {
                    unexpected.push(*template);
                }
            }
        }
    }
    for r in &report {
        println!("{r}");
    }
    println!(
        "promql differential: {passed}/{} passed ({} known differences; {answers} answers, \
         {with_data} with data)",
        QUERIES.len(),
        known.len()
    );
    assert!(
        unexpected.is_empty(),
        "{} queries differ and are not known differences: {unexpected:#?}",
        unexpected.len()
    );
    assert!(
        fixed.is_empty(),
        "these known differences now agree: remove them from \
         tests/fixtures/promql-known-differences.txt and docs/promql-compat.md: {fixed:#?}"
    );
    // The comparison saw real data, not mostly two empty answers.
    assert!(
        with_data * 10 >= answers * 8,
        "only {with_data} of {answers} answers held data"
    );
}

#[test]
fn the_known_differences_are_in_the_doc() {
    let known = known();
    assert!(!known.is_empty() || !DOC.contains("Known differences"));
    for (query, reason) in &known {
        assert!(!reason.is_empty(), "{query:?} has no reason");
        assert!(
            DOC.contains(&format!("`{query}`")),
            "docs/promql-compat.md does not list the known difference `{query}`"
        );
    }
    assert!(QUERIES.len() >= 150, "{} queries", QUERIES.len());
}

#[test]
fn the_comparison_sees_differences() {
    let v = |s: &str| serde_json::from_str::<Value>(s).expect("json");
    let a = v(r#"[{"metric": {"job": "a"}, "value": [10, "1.5"]}]"#);
    assert!(compare(&a, &a, false).is_ok());
    let close = v(r#"[{"metric": {"job": "a"}, "value": [10, "1.5000000000001"]}]"#);
    assert!(compare(&a, &close, false).is_ok());
    for other in [
        r#"[{"metric": {"job": "a"}, "value": [10, "1.5001"]}]"#,
        r#"[{"metric": {"job": "a"}, "value": [11, "1.5"]}]"#,
        r#"[{"metric": {"job": "b"}, "value": [10, "1.5"]}]"#,
        "[]",
    ] {
        assert!(compare(&a, &v(other), false).is_err(), "{other}");
    }
    let m = v(r#"[{"metric": {}, "values": [[1, "NaN"], [2, "+Inf"]]}]"#);
    assert!(compare(&m, &m, false).is_ok());
    assert!(compare(&m, &v(r#"[{"metric": {}, "values": [[1, "NaN"]]}]"#), false).is_err());
    assert!(compare(&v(r#"[5, "1"]"#), &v(r#"[5, "2"]"#), false).is_err());
    assert!(compare(&v(r#"[5, "1"]"#), &v(r#"[5, "1"]"#), false).is_ok());
    // Order: only with `ordered`, and only the order of values.
    let ab = v(
        r#"[{"metric": {"r": "a"}, "value": [1, "1"]}, {"metric": {"r": "b"}, "value": [1, "2"]}]"#,
    );
    let ba = v(
        r#"[{"metric": {"r": "b"}, "value": [1, "2"]}, {"metric": {"r": "a"}, "value": [1, "1"]}]"#,
    );
    assert!(compare(&ab, &ba, false).is_ok());
    assert!(compare(&ab, &ba, true).is_err());
    let tie1 = v(
        r#"[{"metric": {"r": "a"}, "value": [1, "1"]}, {"metric": {"r": "b"}, "value": [1, "1"]}]"#,
    );
    let tie2 = v(
        r#"[{"metric": {"r": "b"}, "value": [1, "1"]}, {"metric": {"r": "a"}, "value": [1, "1"]}]"#,
    );
    assert!(compare(&tie1, &tie2, true).is_ok());
    // Whole answers: errors agree by type, result types must match.
    let err = |t: &str| {
        v(&format!(
            r#"{{"status": "error", "errorType": "{t}", "error": "x"}}"#
        ))
    };
    assert!(compare_answers(&err("bad_data"), &err("bad_data"), false).is_ok());
    assert!(compare_answers(&err("bad_data"), &err("execution"), false).is_err());
    let ok = |t: &str| {
        v(&format!(
            r#"{{"status": "success", "data": {{"resultType": "{t}", "result": []}}}}"#
        ))
    };
    assert!(compare_answers(&ok("vector"), &ok("vector"), false).is_ok());
    assert!(compare_answers(&ok("vector"), &ok("matrix"), false).is_err());
    assert!(compare_answers(&ok("vector"), &err("bad_data"), false).is_err());
}
