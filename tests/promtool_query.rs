//! A real client against Vigie's query API: `promtool query instant` and
//! `promtool query range` give the same answers from Vigie as from a real
//! Prometheus holding the same samples.
//!
//! A test target serves a fixed exposition whose counters, gauges and
//! histogram advance deterministically per scrape (one counter resets);
//! Prometheus (Debian's `prometheus`) scrapes it every second and
//! remote-writes every sample, `up` and `scrape_*` included, to Vigie, so
//! both hold exactly the same points. Then the target is taken away, and
//! once Prometheus has sent everything, each expression is asked of both
//! servers with promtool (`-o json`) at fixed past times: label sets must
//! be identical and values equal within 1e-9 relative.

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use common::{Vigie, free_port, wait_for};
use serde_json::Value;

const PROMTOOL: &str = "/usr/bin/promtool";
const PROMETHEUS: &str = "/usr/bin/prometheus";

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The exposition of scrape `n` (0, 1, 2, ...): every value a function of `n`.
fn exposition(n: u64) -> String {
    let f = n as f64;
    let mut out = String::new();
    out.push_str("# TYPE app_requests_total counter\n");
    let ok = 5 * n + n * n / 7;
    let err = n / 3;
    // Restarts at scrape 25: a counter reset.
    let posts = if n < 25 { 2 * n } else { n - 25 };
    out.push_str(&format!(
        "app_requests_total{{code=\"200\",method=\"get\"}} {ok}\n\
         app_requests_total{{code=\"500\",method=\"get\"}} {err}\n\
         app_requests_total{{code=\"404\",method=\"post\"}} {posts}\n"
    ));
    out.push_str("# TYPE app_temperature gauge\n");
    out.push_str(&format!(
        "app_temperature{{room=\"a\"}} {}\napp_temperature{{room=\"b\"}} {}\napp_temperature{{room=\"c\"}} {}\n",
        20.0 + 5.0 * (f / 5.0).sin(),
        18 + n % 7,
        21.5 - f / 8.0
    ));
    out.push_str(&format!(
        "# TYPE app_jobs_queued gauge\napp_jobs_queued {}\n",
        (n * 3) % 17 + n / 10
    ));
    // A histogram: observations per scrape spread over the buckets.
    out.push_str("# TYPE app_latency_seconds histogram\n");
    let mut cumulative = 0;
    let per_bucket = [n * 4, n * 3 + n / 2, n * 2, n + n / 4, n / 3];
    for (le, c) in ["0.05", "0.1", "0.25", "0.5", "1"].iter().zip(per_bucket) {
        cumulative += c;
        out.push_str(&format!(
            "app_latency_seconds_bucket{{le=\"{le}\"}} {cumulative}\n"
        ));
    }
    cumulative += n / 5;
    out.push_str(&format!(
        "app_latency_seconds_bucket{{le=\"+Inf\"}} {cumulative}\n\
         app_latency_seconds_sum {}\napp_latency_seconds_count {cumulative}\n",
        f * 1.375 + f * f / 100.0
    ));
    out
}

async fn serve(State(n): State<Arc<AtomicU64>>) -> String {
    exposition(n.fetch_add(1, Ordering::SeqCst))
}

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

fn same_number(a: &str, b: &str) -> bool {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) if x.is_nan() || y.is_nan() => x.is_nan() && y.is_nan(),
        (Ok(x), Ok(y)) if x.is_infinite() || y.is_infinite() => x == y,
        (Ok(x), Ok(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1e-300),
        _ => a == b,
    }
}

/// `[t, "v"]` pairs equal: same timestamp, values within 1e-9 relative.
fn same_point(a: &Value, b: &Value) -> bool {
    a[0].as_f64() == b[0].as_f64()
        && a[0].as_f64().is_some()
        && match (a[1].as_str(), b[1].as_str()) {
            (Some(x), Some(y)) => same_number(x, y),
            _ => false,
        }
}

/// Compares two promtool JSON results; `Err` says how they differ.
fn compare(prom: &Value, vigie: &Value) -> Result<(), String> {
    match (prom, vigie) {
        // Vector or matrix: series keyed by their label set.
        (Value::Array(p), Value::Array(v))
            if p.iter().chain(v).all(|s| s.get("metric").is_some()) =>
        {
            let key = |s: &Value| s["metric"].to_string();
            let pm: BTreeMap<String, &Value> = p.iter().map(|s| (key(s), s)).collect();
            let vm: BTreeMap<String, &Value> = v.iter().map(|s| (key(s), s)).collect();
            if pm.len() != p.len() || vm.len() != v.len() {
                return Err("a label set appears twice".into());
            }
            let pk: Vec<&String> = pm.keys().collect();
            let vk: Vec<&String> = vm.keys().collect();
            if pk != vk {
                return Err(format!(
                    "label sets differ: prometheus {pk:?}, vigie {vk:?}"
                ));
            }
            for (k, ps) in &pm {
                let vs = vm[k];
                if let Some(pv) = ps.get("value") {
                    if !same_point(pv, &vs["value"]) {
                        return Err(format!("{k}: prometheus {pv}, vigie {}", vs["value"]));
                    }
                } else {
                    let empty = Vec::new();
                    let pvs = ps["values"].as_array().unwrap_or(&empty);
                    let vvs = vs["values"].as_array().unwrap_or(&empty);
                    if pvs.len() != vvs.len() || pvs.iter().zip(vvs).any(|(a, b)| !same_point(a, b))
                    {
                        return Err(format!(
                            "{k}: prometheus {} points {}, vigie {} points {}",
                            pvs.len(),
                            ps["values"],
                            vvs.len(),
                            vs["values"]
                        ));
                    }
                }
            }
            Ok(())
        }
        // Scalar or string: `[t, "v"]`.
        (Value::Array(_), Value::Array(_)) if same_point(prom, vigie) => Ok(()),
        _ if prom == vigie => Ok(()),
        _ => Err(format!("prometheus {prom}, vigie {vigie}")),
    }
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
    // Not `holt_winters`: Prometheus 3 renamed it double_exponential_smoothing
    // and Vigie's parser knows only the new name, which Debian's 2.42 lacks.
    "group by (code) (app_requests_total)",
    "app_temperature % 3 ^ 2",
    "ln(app_jobs_queued)",
    "sqrt(18 - app_temperature)",
    "minute(timestamp(app_jobs_queued))",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_gets_the_same_answers_from_vigie_and_prometheus() {
    for bin in [PROMTOOL, PROMETHEUS] {
        assert!(
            std::path::Path::new(bin).exists(),
            "{bin} is missing: apt-get install prometheus (scripts/test does)"
        );
    }
    let vigie = Vigie::start("", "groups: []\n").await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let target = listener.local_addr().expect("addr");
    let scrapes = Arc::new(AtomicU64::new(0));
    let app = Router::new()
        .route("/metrics", get(serve))
        .with_state(scrapes.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().expect("tempdir");
    let sd = dir.path().join("targets.json");
    std::fs::write(
        &sd,
        format!(r#"[{{"targets": ["{target}"], "labels": {{"job": "app"}}}}]"#),
    )
    .expect("sd file");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: app\n    file_sd_configs:\n      - files: ['{}']\n        refresh_interval: 1s\n\
             remote_write:\n  - url: http://{}/api/v1/write\n    queue_config:\n      batch_send_deadline: 1s\n",
            sd.display(),
            vigie.addr
        ),
    )
    .expect("prometheus config");
    let prom_port = free_port();
    let prom_addr = format!("127.0.0.1:{prom_port}");
    let log = dir.path().join("prometheus.log");
    let _prom = Proc(
        Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={prom_addr}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("start prometheus"),
    );

    // 45 scrapes: enough for 40 s windows and the reset at scrape 25.
    wait_for("45 scrapes", Duration::from_secs(120), || async {
        (scrapes.load(Ordering::SeqCst) >= 45).then_some(())
    })
    .await;
    // Take the target away; Prometheus marks its series stale and then
    // has nothing more to send.
    std::fs::write(&sd, "[]").expect("empty sd");
    let sent = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("prometheus_remote_storage_samples_total"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    let mut last = -1.0;
    let mut settled = false;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let text = match reqwest::get(format!("http://{prom_addr}/metrics")).await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => continue,
        };
        let now = sent(&text).unwrap_or(-1.0);
        if now > 0.0 && now == last {
            settled = true;
            break;
        }
        last = now;
    }
    assert!(
        settled,
        "Prometheus never finished sending; log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    // The span of the data, from Prometheus: first and last scrape.
    let span = promtool(
        &prom_addr,
        &[
            "instant".into(),
            format!("--time={}", chrono_now()),
            r#"min_over_time(timestamp(up{job="app"})[10m:1s])"#.into(),
        ],
    );
    let first = span.ok().and_then(|v| {
        v[0]["value"][1]
            .as_str()
            .and_then(|s| s.parse::<f64>().ok())
    });
    let last_scrape = promtool(
        &prom_addr,
        &[
            "instant".into(),
            format!("--time={}", chrono_now()),
            r#"max_over_time(timestamp(app_jobs_queued)[10m:1s])"#.into(),
        ],
    )
    .ok()
    .and_then(|v| {
        v[0]["value"][1]
            .as_str()
            .and_then(|s| s.parse::<f64>().ok())
    });
    let (first, last_scrape) = match (first, last_scrape) {
        (Some(a), Some(b)) => (a.ceil(), b.floor()),
        other => panic!("no data span from Prometheus: {other:?}"),
    };
    assert!(last_scrape - first >= 40.0, "{first}..{last_scrape}");

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
                (Ok(p), Ok(v)) => compare(p, v),
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

fn chrono_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

#[test]
fn the_comparison_sees_differences() {
    let v = |s: &str| serde_json::from_str::<Value>(s).expect("json");
    let a = v(r#"[{"metric": {"job": "a"}, "value": [10, "1.5"]}]"#);
    assert!(compare(&a, &a).is_ok());
    assert!(
        compare(
            &a,
            &v(r#"[{"metric": {"job": "a"}, "value": [10, "1.5000000000001"]}]"#)
        )
        .is_ok()
    );
    assert!(
        compare(
            &a,
            &v(r#"[{"metric": {"job": "a"}, "value": [10, "1.5001"]}]"#)
        )
        .is_err()
    );
    assert!(
        compare(
            &a,
            &v(r#"[{"metric": {"job": "a"}, "value": [11, "1.5"]}]"#)
        )
        .is_err()
    );
    assert!(
        compare(
            &a,
            &v(r#"[{"metric": {"job": "b"}, "value": [10, "1.5"]}]"#)
        )
        .is_err()
    );
    assert!(compare(&a, &v("[]")).is_err());
    let m = v(r#"[{"metric": {}, "values": [[1, "NaN"], [2, "+Inf"]]}]"#);
    assert!(compare(&m, &m).is_ok());
    assert!(compare(&m, &v(r#"[{"metric": {}, "values": [[1, "NaN"]]}]"#)).is_err());
    assert!(compare(&v(r#"[5, "1"]"#), &v(r#"[5, "2"]"#)).is_err());
    assert!(compare(&v(r#"[5, "1"]"#), &v(r#"[5, "1"]"#)).is_ok());
}
