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

use common::prometheus::{PROMTOOL, PromPair, compare};
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
    "max_over_time(rate(app_requests_total[5s])[20s300ms:2s])",
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_gets_the_same_answers_from_vigie_and_prometheus() {
    // 45 scrapes: enough for 40 s windows and the reset at scrape 25.
    let pair = PromPair::start(45).await;
    let (first, last_scrape) = (pair.first, pair.last_scrape);
    let prom_addr = pair.prom_addr.clone();
    let vigie = &pair.vigie;

    // Fixed instants inside the data (the reset is ~25 s after the first
    // scrape), one just after the last scrape (staleness), and ranges.
    let instants = [
        first + 12.5,
        first + 27.0,
        first + 41.0,
        last_scrape - 0.25,
        last_scrape + 30.0,
    ];
    let ranges = [
        (first, last_scrape, "1s"),
        (first + 3.0, last_scrape + 20.0, "5s"),
        (first + 0.5, last_scrape - 2.0, "2500ms"),
    ];
    let mut passed = 0;
    let mut asked = 0;
    let mut with_data = 0;
    let mut failures = Vec::new();
    for expr in EXPRS {
        let mut cases: Vec<Vec<String>> = instants
            .iter()
            .map(|t| vec!["instant".into(), format!("--time={t}"), expr.to_string()])
            .collect();
        cases.extend(ranges.iter().map(|(s, e, step)| {
            vec![
                "range".into(),
                format!("--start={s}"),
                format!("--end={e}"),
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
            format!("--time={}", first + 27.0),
            "app_requests_total".into(),
        ],
    )
    .expect("vigie answers");
    assert_eq!(p.as_array().map(Vec::len), Some(3), "{p}");
}
