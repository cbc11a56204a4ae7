//! A real Prometheus and Vigie holding the same samples, for tests that
//! ask both the same PromQL and compare the answers.
//!
//! A test target serves a fixed exposition whose counters, gauges and
//! histogram advance deterministically per scrape (one counter resets, one
//! series disappears, one appears late, one gauge is sometimes NaN);
//! Prometheus (Debian's `prometheus`, 2.42) scrapes it every second and
//! remote-writes every sample, `up` and `scrape_*` included, to Vigie, so
//! both hold exactly the same points. Then the target is taken away
//! (Prometheus writes staleness markers) and, once Prometheus has sent
//! everything, [`PromPair::start`] returns.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde_json::Value;

use super::{Vigie, free_port, wait_for};

pub const PROMTOOL: &str = "/usr/bin/promtool";
pub const PROMETHEUS: &str = "/usr/bin/prometheus";

/// A child process killed on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Writes a Prometheus configuration into `dir` that scrapes job `job`
/// every second from a file_sd file (`targets.json`, holding `target`, so
/// a test can take the target away by emptying it) and remote-writes
/// everything to Vigie at `vigie`. Returns the file_sd and config paths.
pub fn remote_write_config(
    dir: &std::path::Path,
    job: &str,
    target: &str,
    vigie: std::net::SocketAddr,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let sd = dir.join("targets.json");
    std::fs::write(
        &sd,
        format!(r#"[{{"targets": ["{target}"], "labels": {{"job": "{job}"}}}}]"#),
    )
    .expect("sd file");
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: {job}\n    file_sd_configs:\n      - files: ['{}']\n        refresh_interval: 1s\n\
             remote_write:\n  - url: http://{vigie}/api/v1/write\n    queue_config:\n      batch_send_deadline: 1s\n",
            sd.display(),
        ),
    )
    .expect("prometheus config");
    (sd, config)
}

/// The exposition of scrape `n` (0, 1, 2, ...): every value a function of `n`.
pub fn exposition(n: u64) -> String {
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
    // One-to-many material: a limit per method, and an info metric.
    out.push_str(
        "# TYPE app_limit gauge\napp_limit{method=\"get\"} 100\napp_limit{method=\"post\"} 40\n\
         # TYPE app_build_info gauge\napp_build_info{version=\"1.4.2\",branch=\"main\"} 1\n",
    );
    // Churn: alice leaves after scrape 29 (a staleness marker inside the
    // data), bob arrives at scrape 10.
    out.push_str("# TYPE app_sessions gauge\n");
    if n < 30 {
        out.push_str(&format!("app_sessions{{user=\"alice\"}} {}\n", n % 4));
    }
    if n >= 10 {
        out.push_str(&format!("app_sessions{{user=\"bob\"}} {}\n", (n * 7) % 5));
    }
    // A gauge that is NaN every 11th scrape.
    let ratio = if n % 11 == 5 {
        "NaN".to_string()
    } else {
        format!("{}", (f / 50.0) - 0.3)
    };
    out.push_str(&format!("# TYPE app_ratio gauge\napp_ratio {ratio}\n"));
    out
}

async fn serve(State(n): State<Arc<AtomicU64>>) -> String {
    exposition(n.fetch_add(1, Ordering::SeqCst))
}

/// GET `http://{server}{path}` with `params` URL-encoded; the parsed JSON.
pub async fn get_json(
    client: &reqwest::Client,
    server: &str,
    path: &str,
    params: &[(&str, String)],
) -> Result<Value, String> {
    let query = serde_urlencoded::to_string(params).map_err(|e| format!("encode: {e}"))?;
    let resp = client
        .get(format!("http://{server}{path}?{query}"))
        .send()
        .await
        .map_err(|e| format!("GET {path}: {e}"))?;
    let status = resp.status();
    let body = resp.text().await.map_err(|e| format!("read body: {e}"))?;
    serde_json::from_str(&body).map_err(|e| format!("HTTP {status}, not JSON ({e}): {body}"))
}

/// A Prometheus and a Vigie holding the same samples.
pub struct PromPair {
    pub vigie: Vigie,
    /// `host:port` of Prometheus' HTTP API.
    pub prom_addr: String,
    /// Time (s, to the millisecond) of the first and the last scrape.
    pub first_ts: f64,
    pub last_ts: f64,
    log: std::path::PathBuf,
    _prom: Proc,
    _dir: tempfile::TempDir,
}

impl PromPair {
    /// Starts both, lets Prometheus scrape the target `scrapes` times
    /// (every second), removes the target and waits until Prometheus has
    /// sent everything to Vigie.
    pub async fn start(scrapes: u64) -> PromPair {
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
        let served = Arc::new(AtomicU64::new(0));
        let app = Router::new()
            .route("/metrics", get(serve))
            .with_state(served.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });

        let dir = tempfile::tempdir().expect("tempdir");
        let (sd, config) = remote_write_config(dir.path(), "app", &target.to_string(), vigie.addr);
        let prom_addr = format!("127.0.0.1:{}", free_port());
        let log = dir.path().join("prometheus.log");
        let prom = Proc(
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

        wait_for(
            &format!("{scrapes} scrapes"),
            Duration::from_secs(60 + 2 * scrapes),
            || async { (served.load(Ordering::SeqCst) >= scrapes).then_some(()) },
        )
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
        let client = reqwest::Client::new();
        let mut last = -1.0;
        let mut settled = false;
        for _ in 0..45 {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let text = match client
                .get(format!("http://{prom_addr}/metrics"))
                .send()
                .await
            {
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
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs_f64();
        let mut span = Vec::new();
        for expr in [
            r#"min_over_time(timestamp(up{job="app"})[10m:1s])"#,
            r#"max_over_time(timestamp(app_jobs_queued)[10m:1s])"#,
        ] {
            let v = get_json(
                &client,
                &prom_addr,
                "/api/v1/query",
                &[("query", expr.to_string()), ("time", format!("{now:.3}"))],
            )
            .await;
            span.push(v.ok().and_then(|v| {
                v["data"]["result"][0]["value"][1]
                    .as_str()
                    .and_then(|s| s.parse::<f64>().ok())
            }));
        }
        let (first_ts, last_ts) = match (span[0], span[1]) {
            (Some(a), Some(b)) => (a, b),
            other => panic!("no data span from Prometheus: {other:?}"),
        };
        assert!(
            last_ts - first_ts >= scrapes as f64 - 6.0,
            "{first_ts}..{last_ts}"
        );
        PromPair {
            vigie,
            prom_addr,
            first_ts,
            last_ts,
            log,
            _prom: prom,
            _dir: dir,
        }
    }

    /// An `offset` for a subquery's inner range selector (`rate(x[5s]
    /// {offset})[20s:2s]`), to keep its windows from starting on a sample.
    ///
    /// Subquery steps fall on whole seconds, so the inner windows start on
    /// whole seconds. Debian's Prometheus 2.42 counts a sample exactly at a
    /// window's start; Prometheus 3 and Vigie do not. Scrapes fall at
    /// `first_ts + n` s, to the millisecond, at a phase Prometheus draws
    /// from a hash of the target: when that phase is within a quarter
    /// second of a whole second, the windows are moved half a second back.
    pub fn subquery_offset(&self) -> &'static str {
        subquery_offset(self.first_ts)
    }

    /// Prometheus' log so far.
    pub fn prom_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn same_number(a: &str, b: &str) -> bool {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) if x.is_nan() || y.is_nan() => x.is_nan() && y.is_nan(),
        (Ok(x), Ok(y)) if x.is_infinite() || y.is_infinite() => x == y,
        (Ok(x), Ok(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1e-300),
        _ => a == b,
    }
}

/// `[t, "v"]` pairs equal: same timestamp, values within 1e-9 relative
/// (NaN equals NaN).
fn same_point(a: &Value, b: &Value) -> bool {
    a[0].as_f64() == b[0].as_f64()
        && a[0].as_f64().is_some()
        && match (a[1].as_str(), b[1].as_str()) {
            (Some(x), Some(y)) => same_number(x, y),
            _ => false,
        }
}

/// Compares two query results (the API's `data.result`, as promtool's
/// `-o json` prints it); `Err` says how they differ. Series are matched by
/// label set whatever their order; with `ordered`, the sequence of values
/// of an instant vector must also agree (for `sort`, `topk`, ...: ties may
/// come in either order).
pub fn compare(prom: &Value, vigie: &Value, ordered: bool) -> Result<(), String> {
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
            let instant = p.iter().all(|s| s.get("value").is_some());
            if ordered
                && instant
                && p.iter()
                    .zip(v)
                    .any(|(a, b)| !same_point(&a["value"], &b["value"]))
            {
                let values =
                    |s: &[Value]| s.iter().map(|x| x["value"][1].clone()).collect::<Vec<_>>();
                return Err(format!(
                    "order differs: prometheus {:?}, vigie {:?}",
                    values(p),
                    values(v)
                ));
            }
            Ok(())
        }
        // Scalar or string: `[t, "v"]`.
        (Value::Array(_), Value::Array(_)) if same_point(prom, vigie) => Ok(()),
        _ if prom == vigie => Ok(()),
        _ => Err(format!("prometheus {prom}, vigie {vigie}")),
    }
}

/// [`PromPair::subquery_offset`] for scrapes at `first_ts + n` s.
pub fn subquery_offset(first_ts: f64) -> &'static str {
    if (0.25..0.75).contains(&first_ts.rem_euclid(1.0)) {
        ""
    } else {
        " offset 500ms"
    }
}
