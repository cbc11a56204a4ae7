//! Every shipped Grafana dashboard against a live Vigie, as Grafana would
//! drive it: the provisioning YAML parses and names the data source every
//! panel uses; each template variable is resolved through Vigie's
//! Prometheus API (`label_values(...)` → `/api/v1/label/.../values`) and
//! a real value substituted; then every variable query and every panel
//! target runs as `/api/v1/query_range` (and `/api/v1/query` for instant
//! targets) against Vigie holding host metrics, self metrics, log
//! templates, anomaly scores, forecasts and firing and pending alerts.
//!
//! The YAML is read with Debian's Python and PyYAML (`python3-yaml`).

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{PYTHON, Vigie, root, wait_for};
use serde_json::Value;

/// A YAML file as JSON, parsed by PyYAML (`yaml.safe_load`).
fn yaml(path: &Path) -> Value {
    let out = std::process::Command::new(PYTHON)
        .args([
            "-c",
            "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)",
        ])
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("run {PYTHON}: {e}"));
    assert!(
        out.status.success(),
        "{} does not parse as YAML (or python3-yaml is missing: apt-get install python3-yaml):\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("PyYAML output is JSON")
}

fn dashboards() -> Vec<(PathBuf, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root("dashboards"))
        .expect("dashboards dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let v = serde_json::from_str(&std::fs::read_to_string(&p).expect("read"))
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, v)
        })
        .collect()
}

/// Every panel, including those nested in rows.
fn panels(dash: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    let mut stack: Vec<&Value> = dash["panels"].as_array().into_iter().flatten().collect();
    while let Some(p) = stack.pop() {
        stack.extend(p["panels"].as_array().into_iter().flatten());
        out.push(p);
    }
    out
}

/// The data source uid a panel or target names (`{"uid": ..}` or a bare string).
fn ds_uid(ds: &Value) -> Option<&str> {
    match ds {
        Value::String(s) => Some(s),
        Value::Object(o) => o.get("uid").and_then(Value::as_str),
        _ => None,
    }
}

/// A template variable, as far as the test needs it.
struct Var {
    name: String,
    kind: String,
    query: String,
    /// Multi-value or "All": Grafana regex-escapes the value it substitutes.
    regex_escaped: bool,
    all_value: Option<String>,
}

fn variables(dash: &Value) -> Vec<Var> {
    dash["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            let query = match &v["query"] {
                Value::String(s) => s.clone(),
                q => q["query"].as_str().unwrap_or_default().to_string(),
            };
            let include_all = v["includeAll"].as_bool().unwrap_or(false);
            Var {
                name: v["name"].as_str().expect("variable name").to_string(),
                kind: v["type"].as_str().expect("variable type").to_string(),
                query,
                regex_escaped: include_all || v["multi"].as_bool().unwrap_or(false),
                all_value: include_all.then(|| v["allValue"].as_str().unwrap_or(".*").to_string()),
            }
        })
        .collect()
}

/// Grafana's escaping of a variable value in a Prometheus query: regex
/// metacharacters get two backslashes (one survives the PromQL string) for
/// multi-value and "All" variables; single values only escape backslashes.
fn escape(value: &str, regex: bool) -> String {
    let mut out = String::new();
    for c in value.chars() {
        if c == '\\' {
            out.push_str(if regex { "\\\\\\\\" } else { "\\\\" });
        } else if regex && "$^*{}[]'+?.()|".contains(c) {
            out.push_str("\\\\");
            out.push(c);
        } else {
            out.push(c);
        }
    }
    out
}

/// Replaces `${name}`, `$name` and `[[name]]`; longer names first so
/// `$instance` does not eat the start of `$instances`.
fn interpolate(text: &str, values: &BTreeMap<String, String>) -> String {
    let mut names: Vec<&String> = values.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    let mut out = text.to_string();
    for n in names {
        let v = &values[n];
        out = out
            .replace(&format!("${{{n}}}"), v)
            .replace(&format!("[[{n}]]"), v)
            .replace(&format!("${n}"), v);
    }
    out
}

/// Vigie's HTTP API, called the way Grafana's Prometheus data source calls
/// it (`httpMethod: POST` sends queries as form bodies).
struct Api<'a> {
    vigie: &'a Vigie,
    post: bool,
}

impl Api<'_> {
    async fn call(&self, path: &str, params: &[(&str, String)], post: bool) -> Value {
        let client = reqwest::Client::new();
        let url = format!("http://{}{path}", self.vigie.addr);
        let body = serde_urlencoded::to_string(params).expect("form");
        let r = if post {
            client
                .post(url)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(body)
        } else {
            client.get(format!("{url}?{body}"))
        }
        .send()
        .await
        .expect("request");
        let status = r.status();
        r.json()
            .await
            .unwrap_or_else(|e| panic!("{path} {params:?}: {status}: not JSON: {e}"))
    }

    async fn query_range(&self, q: &str, w: &Window) -> Value {
        let params = [
            ("query", q.to_string()),
            ("start", w.start.to_string()),
            ("end", w.end.to_string()),
            ("step", w.step.to_string()),
        ];
        self.call("/api/v1/query_range", &params, self.post).await
    }

    async fn query(&self, q: &str, t: f64) -> Value {
        let params = [("query", q.to_string()), ("time", t.to_string())];
        self.call("/api/v1/query", &params, self.post).await
    }

    /// What Grafana does with a variable query (`label_values(sel, label)`,
    /// `label_values(label)`, `label_names()`,
    /// `query_result(expr)`): the values, checking each API answer.
    async fn resolve(&self, query: &str, w: &Window) -> Vec<String> {
        let span = [("start", w.start.to_string()), ("end", w.end.to_string())];
        let inner = |f: &str| {
            query
                .trim()
                .strip_prefix(f)
                .and_then(|r| r.trim_start().strip_prefix('('))
                .and_then(|r| r.strip_suffix(')'))
                .map(str::trim)
                .map(str::to_string)
        };
        let v = if let Some(args) = inner("label_values") {
            let (selector, label) = match args.rsplit_once(',') {
                Some((s, l)) => (Some(s.trim().to_string()), l.trim().to_string()),
                None => (None, args),
            };
            let mut params = span.to_vec();
            if let Some(s) = selector {
                params.push(("match[]", s));
            }
            self.call(&format!("/api/v1/label/{label}/values"), &params, false)
                .await
        } else if inner("label_names").is_some() {
            self.call("/api/v1/labels", &span, self.post).await
        } else if let Some(expr) = inner("query_result") {
            let v = self.query(&expr, w.end).await;
            assert_eq!(v["status"], "success", "query_result({expr}): {v}");
            let lines: Vec<Value> = v["data"]["result"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| Value::String(format!("{} {}", s["metric"], s["value"][1])))
                .collect();
            serde_json::json!({"status": "success", "data": lines})
        } else {
            panic!("variable query `{query}` is not one Grafana's Prometheus data source knows");
        };
        assert_eq!(v["status"], "success", "variable query `{query}`: {v}");
        v["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    }
}

/// The time range and step of one dashboard, as Grafana computes them.
struct Window {
    start: f64,
    end: f64,
    step: f64,
    /// Grafana's `$__interval`, `$__rate_interval`, `$__range`, ...
    builtins: BTreeMap<String, String>,
}

/// `now`, `now-6h`, `now+1h` → seconds relative to now.
fn relative(t: &str) -> f64 {
    let rest = t
        .strip_prefix("now")
        .unwrap_or_else(|| panic!("time {t:?}"));
    if rest.is_empty() {
        return 0.0;
    }
    let (sign, d) = rest.split_at(1);
    let (n, unit) = d.split_at(d.len() - 1);
    let n: f64 = n.parse().unwrap_or_else(|_| panic!("time {t:?}"));
    let secs = n * match unit {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        _ => panic!("time unit in {t:?}"),
    };
    if sign == "-" { -secs } else { secs }
}

impl Window {
    /// Grafana's step: range / max data points (about 1000 for a wide
    /// panel), at least the data source's `timeInterval`;
    /// `$__rate_interval` = max(`$__interval` + timeInterval, 4 × timeInterval).
    fn new(dash: &Value, now: f64, time_interval: f64) -> Window {
        let from = relative(dash["time"]["from"].as_str().unwrap_or("now-6h"));
        let to = relative(dash["time"]["to"].as_str().unwrap_or("now"));
        let range = to - from;
        let step = (range / 1000.0).ceil().max(time_interval);
        let rate = (step + time_interval).max(4.0 * time_interval);
        let mut builtins = BTreeMap::new();
        for (k, v) in [
            ("__interval", format!("{step}s")),
            ("__interval_ms", format!("{}", step * 1000.0)),
            ("__rate_interval", format!("{rate}s")),
            ("__range", format!("{range}s")),
            ("__range_s", format!("{range}")),
            ("__range_ms", format!("{}", range * 1000.0)),
        ] {
            builtins.insert(k.to_string(), v);
        }
        Window {
            start: now + from,
            end: now + to,
            step,
            builtins,
        }
    }
}

fn seconds(d: &str) -> f64 {
    let (n, unit) = d.split_at(d.len() - 1);
    let n: f64 = n.parse().unwrap_or_else(|_| panic!("duration {d:?}"));
    match unit {
        "s" => n,
        "m" => n * 60.0,
        _ => panic!("duration unit in {d:?}"),
    }
}

/// Which variable values a pass substitutes.
#[derive(Clone, Copy, Debug)]
enum Pick {
    First,
    Last,
    All,
}

/// Rules that give the dashboards a firing alert, a pending one and a
/// recorded series.
const RULES: &str = r#"
groups:
  - name: dashboards
    rules:
      - alert: HostReporting
        expr: node_load1 >= 0
        for: 1s
        labels: {severity: info}
        annotations: {summary: "{{ $labels.instance }} reports its load"}
      - alert: HostReportingForAnHour
        expr: node_load1 >= 0
        for: 1h
        labels: {severity: warning}
      - record: instance:node_cpu_seconds:rate1m
        expr: sum by (instance) (rate(node_cpu_seconds_total[1m]))
"#;

fn append(path: &Path, lines: &[String]) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open log");
    for l in lines {
        writeln!(f, "{l}").expect("write log");
    }
}

#[test]
fn provisioning_names_the_data_source_every_panel_uses() {
    let ds = yaml(&root("dashboards/provisioning/datasources/vigie.yaml"));
    assert_eq!(ds["apiVersion"], 1, "{ds}");
    let sources = ds["datasources"].as_array().expect("datasources list");
    let prom: Vec<&Value> = sources
        .iter()
        .filter(|d| d["type"] == "prometheus")
        .collect();
    assert_eq!(prom.len(), 1, "one Prometheus data source: {ds}");
    let prom = prom[0];
    let uid = prom["uid"].as_str().expect("a fixed uid");
    let name = prom["name"].as_str().expect("a name");
    assert_eq!(uid, "vigie");
    assert_eq!(prom["access"], "proxy");
    assert_eq!(
        prom["url"], "http://127.0.0.1:9464",
        "Vigie's default [http] listen"
    );
    assert_eq!(prom["isDefault"], true);
    // Vigie serves every query endpoint Grafana POSTs to.
    assert_eq!(prom["jsonData"]["httpMethod"], "POST");
    seconds(
        prom["jsonData"]["timeInterval"]
            .as_str()
            .expect("timeInterval"),
    );
    let am_uid = prom["jsonData"]["alertmanagerUid"]
        .as_str()
        .expect("am uid");
    assert!(
        sources
            .iter()
            .any(|d| d["type"] == "alertmanager" && d["uid"] == am_uid && d["url"] == prom["url"]),
        "alertmanagerUid names the Alertmanager data source on Vigie: {ds}"
    );

    let providers = yaml(&root("dashboards/provisioning/dashboards/vigie.yaml"));
    let p = &providers["providers"][0];
    assert_eq!(p["type"], "file", "{providers}");
    let path = p["options"]["path"].as_str().expect("provider path");
    let guide = std::fs::read_to_string(root("docs/grafana.md")).expect("docs/grafana.md");
    assert!(
        guide.contains(&format!("dashboards:{path}")),
        "docs/grafana.md mounts dashboards/ at the provider's path {path}"
    );

    let dashes = dashboards();
    assert!(
        dashes.len() >= 6,
        "fleet, host, anomalies, logs, alerts, health"
    );
    let mut uids = std::collections::HashSet::new();
    for (file, dash) in &dashes {
        let f = file.display();
        assert!(uids.insert(dash["uid"].to_string()), "{f}: uid used twice");
        assert_eq!(dash["schemaVersion"], 39, "{f}");
        let vars = dash["templating"]["list"].as_array().expect("templating");
        let dsvar = vars
            .iter()
            .find(|v| v["type"] == "datasource")
            .unwrap_or_else(|| panic!("{f}: no datasource variable"));
        assert_eq!(dsvar["query"], "prometheus", "{f}");
        assert_eq!(
            dsvar["current"]["value"], uid,
            "{f}: the datasource variable defaults to the provisioned uid"
        );
        let via_var = |u: Option<&str>| {
            u == Some(uid)
                || u.is_some_and(|u| {
                    u.trim_start_matches('$')
                        .trim_matches(|c| c == '{' || c == '}')
                        == dsvar["name"].as_str().unwrap_or_default()
                })
        };
        for v in vars.iter().filter(|v| v["type"] == "query") {
            assert!(
                via_var(ds_uid(&v["datasource"])),
                "{f}: variable {}",
                v["name"]
            );
        }
        for panel in panels(dash) {
            let title = panel["title"].as_str().unwrap_or("?");
            if panel["type"] == "row" {
                continue;
            }
            assert!(
                via_var(ds_uid(&panel["datasource"])),
                "{f}: panel `{title}` does not use data source {uid}"
            );
            for t in panel["targets"].as_array().into_iter().flatten() {
                if !t["datasource"].is_null() {
                    assert!(via_var(ds_uid(&t["datasource"])), "{f}: `{title}` target");
                }
            }
            if panel["type"] == "alertlist" {
                assert_eq!(
                    panel["options"]["datasource"], name,
                    "{f}: `{title}` lists the rules of the provisioned data source"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_query_succeeds_on_live_data() {
    // The log file lives outside Vigie's directory, as /var/log would.
    let logs = tempfile::tempdir().expect("tempdir");
    let log = logs.path().join("app.log");
    std::fs::write(&log, "").expect("log file");
    let config = format!(
        "[[logs]]\npath = \"{}\"\npoll_interval = \"200ms\"\n",
        log.display()
    );
    let vigie = Vigie::start_with_host(&config, RULES).await;
    let started = std::time::Instant::now();
    wait_for(
        "the tailer to follow app.log",
        Duration::from_secs(60),
        || {
            append(&log, &["INFO probe the tailer".to_string()]);
            async {
                let n = vigie.count("SELECT count(*) FROM logs").await;
                (n > 0).then_some(())
            }
        },
    )
    .await;
    // A live log: a login line every 200 ms, an error every second, for
    // as long as the test runs, so rates over the log counters have points.
    let writer = {
        let log = log.clone();
        tokio::spawn(async move {
            for i in 0u64.. {
                let mut lines = vec![format!(
                    "INFO user {} logged in from 10.0.0.{}",
                    100 + i * 7,
                    i % 250
                )];
                if i % 5 == 0 {
                    lines.push(format!("ERROR disk {i} full on /dev/sda{}", i % 9));
                }
                append(&log, &lines);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };

    let api = Api {
        vigie: &vigie,
        post: true,
    };
    // Wait until every kind of series the dashboards show exists.
    for name in [
        "node_cpu_seconds_total",
        "vigie_samples_ingested_total",
        "vigie_anomaly_score",
        "vigie_forecast",
        "vigie_time_to_threshold_seconds",
        "vigie_log_lines_total",
        "vigie_log_new_template",
        "ALERTS",
        "ALERTS_FOR_STATE",
    ] {
        wait_for(name, Duration::from_secs(120), || async {
            let v = api.query(&format!("count({name})"), now()).await;
            v["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
                .then_some(())
        })
        .await;
    }
    wait_for(
        "a pending and a firing alert",
        Duration::from_secs(60),
        || async {
            let v = api.query("count by (alertstate) (ALERTS)", now()).await;
            (v["data"]["result"].as_array().map(Vec::len) == Some(2)).then_some(())
        },
    )
    .await;
    // Give the series a history a few steps long: a 6 h dashboard steps
    // by 22 s, and rate() over $__rate_interval needs two points.
    let history = Duration::from_secs(90);
    tokio::time::sleep(history.saturating_sub(started.elapsed())).await;

    let ds = yaml(&root("dashboards/provisioning/datasources/vigie.yaml"));
    let time_interval = seconds(
        ds["datasources"][0]["jsonData"]["timeInterval"]
            .as_str()
            .expect("timeInterval"),
    );
    let mut checked = 0;
    let mut with_data: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    let t0 = now();
    for (path, dash) in dashboards() {
        let file = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .to_string();
        let w = Window::new(&dash, t0, time_interval);
        let vars = variables(&dash);
        let mut targets = Vec::new();
        for p in panels(&dash) {
            for t in p["targets"].as_array().into_iter().flatten() {
                let expr = t["expr"].as_str().unwrap_or_default();
                if !expr.is_empty() && t["hide"] != true {
                    let title = p["title"].as_str().unwrap_or("?").to_string();
                    targets.push((title, expr.to_string(), t["instant"] == true));
                }
            }
        }
        assert!(!targets.is_empty(), "{file}: no panel queries");
        let mut dash_data = 0;
        // A query the same in two passes (no variable in it, or one with a
        // single value) runs once.
        let mut seen = std::collections::HashSet::new();
        for pick in [Pick::First, Pick::Last, Pick::All] {
            // Resolve the variables in order, each seeing the previous ones.
            let mut values = w.builtins.clone();
            values.insert("datasource".into(), "vigie".into());
            for v in &vars {
                let value = match v.kind.as_str() {
                    "datasource" | "constant" | "textbox" | "interval" | "adhoc" => continue,
                    "custom" => {
                        let opts: Vec<&str> = v.query.split(',').map(str::trim).collect();
                        match pick {
                            Pick::Last => opts[opts.len() - 1].to_string(),
                            _ => opts[0].to_string(),
                        }
                    }
                    "query" => {
                        let q = interpolate(&v.query, &values);
                        let found = api.resolve(&q, &w).await;
                        checked += 1;
                        assert!(
                            !found.is_empty(),
                            "{file}: variable {} (`{q}`) has no value on live data",
                            v.name
                        );
                        match (pick, &v.all_value) {
                            (Pick::All, Some(all)) => all.clone(),
                            (Pick::Last, _) => escape(&found[found.len() - 1], v.regex_escaped),
                            _ => escape(&found[0], v.regex_escaped),
                        }
                    }
                    other => panic!("{file}: variable {} of type {other}", v.name),
                };
                values.insert(v.name.clone(), value);
            }
            for (title, expr, instant) in &targets {
                let q = interpolate(expr, &values);
                assert!(
                    !q.contains('$'),
                    "{file}: `{title}`: unresolved variable in {q}"
                );
                if !seen.insert(q.clone()) {
                    continue;
                }
                let mut answers = vec![api.query_range(&q, &w).await];
                if *instant {
                    answers.push(api.query(&q, w.end.min(now())).await);
                }
                for v in answers {
                    checked += 1;
                    if v["status"] != "success" {
                        failures.push(format!("{file} `{title}` ({pick:?}): {q}\n    {v}"));
                        continue;
                    }
                    if std::env::var_os("VIGIE_TEST_VERBOSE").is_some() {
                        println!(
                            "  {pick:?} {q}: {} series ({} {} {})",
                            v["data"]["result"].as_array().map_or(0, Vec::len),
                            w.start,
                            w.end,
                            w.step
                        );
                    }
                    if v["data"]["result"]
                        .as_array()
                        .is_some_and(|r| !r.is_empty())
                    {
                        dash_data += 1;
                        *with_data.entry(expr.clone()).or_default() += 1;
                    }
                }
            }
        }
        println!(
            "{file}: {} panel queries, {dash_data} answers with data",
            targets.len()
        );
        if dash_data == 0 {
            failures.push(format!("{file}: no panel shows any data"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} queries failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Panels over each kind of series Vigie writes show data.
    for needle in [
        "node_cpu_seconds_total",
        "vigie_anomaly_score",
        "vigie_forecast",
        "vigie_time_to_threshold_seconds",
        "vigie_log_lines_total",
        "vigie_log_new_template",
        "ALERTS{",
        "ALERTS_FOR_STATE",
        "vigie_samples_ingested_total",
        "up{job=\"vigie\"",
    ] {
        assert!(
            with_data.keys().any(|e| e.contains(needle)),
            "no panel over {needle} returned data"
        );
    }
    // The alert list panel reads these.
    let rules = api.call("/api/v1/rules", &[], false).await;
    assert_eq!(rules["status"], "success", "{rules}");
    let alerts = api.call("/api/v1/alerts", &[], false).await;
    let states: Vec<&str> = alerts["data"]["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["state"].as_str())
        .collect();
    assert!(
        states.contains(&"firing") && states.contains(&"pending"),
        "{alerts}"
    );
    writer.abort();
    println!("{checked} panel and variable queries succeeded");
    assert!(checked >= 100, "only {checked} queries checked");
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}
