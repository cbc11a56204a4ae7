//! A real client against Vigie's query API: `promtool query instant` and
//! `promtool query range` give the same answers from Vigie as from a real
//! Prometheus holding the same samples.
//!
//! The data: [`common::prometheus::PromPair`] (a deterministic target
//! scraped by Prometheus 2.42, which remote-writes every sample to Vigie).
//! Each expression is asked of both servers with promtool (`-o json`) at
//! fixed past times: label sets must be identical and values equal within
//! 1e-9 relative. `tests/promql_differential.rs` asks many more queries
//! over HTTP; this test pins the promtool client path.

mod common;

use std::process::Command;

use common::prometheus::{self, PROMTOOL, PromPair, compare};
use serde_json::Value;

/// `promtool query <args[0]> -o json <flags> <server> <expr>`, where
/// `args` is the subcommand, its flags, then the expression: the parsed
/// result.
fn promtool(server: &str, args: &[String]) -> Result<Value, String> {
    let (expr, rest) = args.split_last().expect("expression");
    let out = Command::new(PROMTOOL)
        .arg("query")
        .arg(&rest[0])
        .args(["-o", "json"])
        .args(&rest[1..])
        .arg(format!("http://{server}"))
        .arg(expr)
        .output()
        .map_err(|e| format!("run promtool: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "promtool exit {}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "promtool output not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Expressions asked of both servers.
const EXPRS: &[&str] = &[
    // selectors
    "up",
    "app_requests_total",
    r#"app_requests_total{code=~"5..|4..", method!="put"}"#,
    r#"{__name__=~"app_temp.*", room!="c"}"#,
    "app_temperature offset 7s",
    "app_temperature offset -4s",
    // rates and friends, across the counter reset
    "rate(app_requests_total[10s])",
    "irate(app_requests_total[5s])",
    "increase(app_requests_total[20s])",
    "resets(app_requests_total[40s])",
    "changes(app_temperature[30s])",
    "deriv(app_jobs_queued[20s])",
    "predict_linear(app_jobs_queued[20s], 60)",
    "delta(app_temperature[15s])",
    // aggregation
    "sum by (code) (rate(app_requests_total[15s]))",
    "sum without (method) (app_requests_total)",
    "topk(2, app_requests_total)",
    "bottomk(1, app_temperature)",
    "count by (job) (up)",
    "avg(app_temperature)",
    "stddev(app_temperature)",
    "quantile(0.75, app_temperature)",
    r#"count_values("v", app_jobs_queued)"#,
    // over time
    "avg_over_time(app_temperature[10s])",
    "max_over_time(app_temperature[30s] offset 5s)",
    "quantile_over_time(0.5, app_temperature[20s])",
    "count_over_time(up[30s])",
    // histograms
    "histogram_quantile(0.9, sum by (le) (rate(app_latency_seconds_bucket[15s])))",
    "histogram_quantile(0.5, rate(app_latency_seconds_bucket[10s]))",
    "rate(app_latency_seconds_sum[15s]) / rate(app_latency_seconds_count[15s])",
    // binary operators and comparisons
    "app_temperature > 20",
    "app_temperature > bool 20",
    "app_temperature - on () group_left app_jobs_queued",
    "app_requests_total / on (instance, job) group_left sum by (instance, job) (app_requests_total)",
    r#"app_requests_total{code="200"} and on (method) app_requests_total{code="500"}"#,
    r#"app_temperature unless app_temperature{room="a"}"#,
    "2 * app_jobs_queued + 1",
    // absent and scalars
    "absent(nonexistent_metric)",
    r#"absent(up{job="nope"})"#,
    "absent(up)",
    "scalar(app_jobs_queued)",
    "time()",
    "vector(1) + scalar(app_jobs_queued)",
    // label functions
    r#"label_replace(up, "host", "$1", "instance", "(.*):.*")"#,
    r#"label_join(app_requests_total, "key", "-", "code", "method")"#,
    // math
    "abs(app_temperature - 20)",
    "clamp(app_temperature, 19, 22)",
    "round(app_temperature, 0.5)",
    "sort_desc(app_temperature)",
    "timestamp(app_jobs_queued)",
    // subqueries, @, and edge values
    // A range that is not a multiple of the subquery step: Debian's
    // Prometheus 2.42 counts a point exactly at the window's start,
    // Prometheus 3 and Vigie do not, and a subquery grid always has one there.
    // `{sub_offset}` keeps the inner windows from starting on a scrape:
    // see `PromPair::subquery_offset`.
    "max_over_time(rate(app_requests_total[5s]{sub_offset})[20s300ms:2s])",
    "rate(app_requests_total[10s] @ end())",
    "app_jobs_queued @ start()",
    "absent_over_time(nonexistent_metric[1m])",
    "last_over_time(app_temperature[1m])",
    "present_over_time(app_jobs_queued[10s])",
    "idelta(app_temperature[5s])",
    "stdvar_over_time(app_temperature[20s])",
    // Prometheus 2's name; Prometheus 3 calls it double_exponential_smoothing.
    "holt_winters(app_jobs_queued[20s], 0.5, 0.5)",
    "group by (code) (app_requests_total)",
    "app_temperature % 3 ^ 2",
    "ln(app_jobs_queued)",
    "sqrt(18 - app_temperature)",
    "minute(timestamp(app_jobs_queued))",
];

/// Where the queries are asked, chosen from where the scrapes fell.
///
/// Debian's Prometheus 2.42 counts a sample exactly at a range's start;
/// Prometheus 3 and Vigie do not. Scrapes fall on `first_ts + n` seconds
/// (to the millisecond), and every range start the test asks about is a
/// query time minus a multiple of a quarter second, so the query times are
/// put a tenth of a second or more off that grid: no window starts on a
/// sample, whatever phase Prometheus gave the target.
struct QueryTimes {
    /// The first query time, `first_ts` plus 0.1 or 0.15 s.
    base: f64,
    /// The last time a whole number of seconds after `base` and not after
    /// the last scrape.
    last: f64,
}

impl QueryTimes {
    fn new(first_ts: f64, last_ts: f64) -> QueryTimes {
        // The subquery's own window, `t - 20.3 s`, must not start exactly
        // on its grid (even seconds) either; of two offsets 50 ms apart at
        // most one puts it within 10 ms of a quarter second.
        let near_quarter = |t: f64| {
            let r = t.rem_euclid(0.25);
            r.min(0.25 - r) < 0.01
        };
        let delta = if near_quarter(first_ts + 0.1 + 0.7) {
            0.15
        } else {
            0.1
        };
        let base = first_ts + delta;
        let last = base + (last_ts - base).floor();
        QueryTimes { base, last }
    }
}

#[test]
fn query_times_stay_off_the_scrapes() {
    for ms in 0..1000 {
        let first_ts = 1_795_951_172.0 + f64::from(ms) / 1000.0;
        let q = QueryTimes::new(first_ts, first_ts + 44.0);
        // Every query time is base + k/4 s; every range start the test asks
        // about is that minus whole seconds (or quarters): 50 ms or more
        // from a scrape.
        let off = (q.base - first_ts).rem_euclid(0.25);
        assert!(off.min(0.25 - off) >= 0.05, "ms {ms}: {off}");
        assert_eq!(q.last - q.base, 43.0, "ms {ms}");
        // The subquery's own window never starts on its grid.
        let start = (q.base - 20.3).rem_euclid(0.25);
        assert!(start.min(0.25 - start) >= 0.01 - 1e-6, "ms {ms}: {start}");
    }
}

#[test]
fn subquery_windows_start_off_the_scrapes() {
    for ms in 0..1000 {
        let first_ts = 1_795_951_172.0 + f64::from(ms) / 1000.0;
        let shift = if prometheus::subquery_offset(first_ts).is_empty() {
            0.0
        } else {
            0.5
        };
        // Inner windows start at whole seconds minus the shift.
        let d = (first_ts + shift).rem_euclid(1.0);
        assert!(d.min(1.0 - d) >= 0.25 - 1e-6, "ms {ms}: {d}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_gets_the_same_answers_from_vigie_and_prometheus() {
    // 45 scrapes: enough for 40 s windows and the reset at scrape 25.
    let pair = PromPair::start(45).await;
    let QueryTimes { base, last } = QueryTimes::new(pair.first_ts, pair.last_ts);
    let sub_offset = pair.subquery_offset();
    let prom_addr = pair.prom_addr.clone();
    let vigie = &pair.vigie;

    // Fixed instants inside the data (the reset is ~25 s after the first
    // scrape), one just after the last scrape (staleness), and ranges.
    let instants = [
        base + 12.5,
        base + 27.0,
        base + 41.0,
        last - 0.25,
        last + 30.0,
    ];
    let ranges = [
        (base, last, "1s"),
        (base + 3.0, last + 20.0, "5s"),
        (base + 0.5, last - 2.0, "2500ms"),
    ];
    let mut passed = 0;
    let mut asked = 0;
    let mut with_data = 0;
    let mut failures = Vec::new();
    for expr in EXPRS {
        let expr = &expr.replace("{sub_offset}", sub_offset);
        let mut cases: Vec<Vec<String>> = instants
            .iter()
            .map(|t| vec!["instant".into(), format!("--time={t:.3}"), expr.to_string()])
            .collect();
        cases.extend(ranges.iter().map(|(s, e, step)| {
            vec![
                "range".into(),
                format!("--start={s:.3}"),
                format!("--end={e:.3}"),
                format!("--step={step}"),
                expr.to_string(),
            ]
        }));
        for args in cases {
            asked += 1;
            let p = promtool(&prom_addr, &args);
            let v = promtool(&vigie.addr.to_string(), &args);
            let outcome = match (&p, &v) {
                (Ok(p), Ok(v)) => compare(p, v, false),
                (Err(p), Err(_)) => Err(format!("both failed; prometheus: {p}")),
                (Err(p), Ok(_)) => Err(format!("prometheus failed: {p}")),
                (Ok(_), Err(v)) => Err(format!("vigie failed: {v}")),
            };
            if let Ok(p) = &p
                && p.as_array().is_none_or(|a| !a.is_empty())
            {
                with_data += 1;
            }
            match outcome {
                Ok(()) => passed += 1,
                Err(e) => failures.push(format!("{}: {e}", args.join(" "))),
            }
        }
    }
    println!(
        "promtool: {passed} of {asked} queries ({} expressions) gave the same answer; \
         {with_data} answers held data",
        EXPRS.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {asked} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The comparison saw real data, not mostly two empty answers.
    assert!(
        with_data * 10 >= asked * 8,
        "only {with_data} of {asked} answers held data"
    );
    let p = promtool(
        &vigie.addr.to_string(),
        &[
            "instant".into(),
            format!("--time={:.3}", base + 27.0),
            "app_requests_total".into(),
        ],
    )
    .expect("vigie answers");
    assert_eq!(p.as_array().map(Vec::len), Some(3), "{p}");
}
