//! Shared harness of the end-to-end tests: the real `vigie` binary, real
//! HTTP targets and receivers (axum), a real SMTP server (aiosmtpd).
#![allow(dead_code)]

pub mod broker;
pub mod prometheus;

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde_json::Value;

/// The value of the first sample of the Prometheus text exposition at
/// `http://ADDR/metrics` whose line starts with `prefix` (a metric name,
/// with `{` or a space to pin it), or `None` when absent or unreachable.
pub async fn metric_value(addr: &str, prefix: &str) -> Option<f64> {
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The JSON body of `GET url`, or `None` when unreachable or not JSON (for
/// polling with [`wait_for`]).
pub async fn get_json(url: &str) -> Option<Value> {
    reqwest::get(url).await.ok()?.json().await.ok()
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A running `vigie run` process; SIGTERM and wait on drop.
pub struct Vigie {
    child: Child,
    pub addr: SocketAddr,
    pub dir: Arc<tempfile::TempDir>,
}

impl Vigie {
    /// Writes `config` (TOML; `{{listen}}` is replaced by the HTTP address)
    /// and `rules` into a temp dir and starts Vigie there.
    pub async fn start(config: &str, rules: &str) -> Vigie {
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        Self::start_in(dir, config, rules, &[]).await
    }

    /// Like [`Vigie::start`], in an existing directory (to restart on the
    /// same data) and with extra `vigie run` arguments such as `--roles`.
    pub async fn start_in(
        dir: Arc<tempfile::TempDir>,
        config: &str,
        rules: &str,
        args: &[&str],
    ) -> Vigie {
        Self::launch(dir, config, rules, args, false).await
    }

    /// Like [`Vigie::start`], with the host collector and self-scrape on
    /// (every 1 s), as `vigie run` has them by default.
    pub async fn start_with_host(config: &str, rules: &str) -> Vigie {
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        Self::launch(dir, config, rules, &[], true).await
    }

    async fn launch(
        dir: Arc<tempfile::TempDir>,
        config: &str,
        rules: &str,
        args: &[&str],
        host: bool,
    ) -> Vigie {
        std::fs::write(dir.path().join("rules.yml"), rules).expect("rules");
        // `free_port` lets the port go before Vigie binds it; another
        // socket may take it meanwhile. Then Vigie says so and exits, and
        // it is started again on another port.
        for attempt in 1.. {
            let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
            let config = format!(
                "self_scrape = {host}\n[http]\nlisten = \"{addr}\"\n[host]\nenabled = {host}\ninterval = \"1s\"\n[rules]\nfiles = [\"rules.yml\"]\ninterval = \"1s\"\n{config}"
            );
            std::fs::write(dir.path().join("vigie.toml"), config).expect("config");
            let log_path = dir.path().join("vigie.log");
            let logged_before = std::fs::metadata(&log_path).map_or(0, |m| m.len() as usize);
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .expect("log");
            let child = Command::new(env!("CARGO_BIN_EXE_vigie"))
                .args(["run", "--config", "vigie.toml"])
                .args(args)
                .current_dir(dir.path())
                .env("VIGIE_LOG", "info,vigie_analyzer=debug")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start vigie");
            let mut v = Vigie {
                child,
                addr,
                dir: dir.clone(),
            };
            let client = reqwest::Client::new();
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Ok(r) = client.get(format!("http://{addr}/healthz")).send().await
                    && r.status().is_success()
                {
                    return v;
                }
                if let Ok(Some(status)) = v.child.try_wait() {
                    let log = v.log();
                    let this_run = log.get(logged_before..).unwrap_or(&log);
                    if attempt < 3 && this_run.contains("Address already in use") {
                        break;
                    }
                    panic!("vigie exited early ({status}):\n{log}");
                }
                assert!(
                    Instant::now() < deadline,
                    "vigie did not start:\n{}",
                    v.log()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        unreachable!("the loop returns or panics")
    }

    /// Vigie's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("vigie.log")).unwrap_or_default()
    }

    /// `POST /api/v1/sql`; panics with the log on error.
    pub async fn sql(&self, query: &str) -> Value {
        let r = reqwest::Client::new()
            .post(format!("http://{}/api/v1/sql", self.addr))
            .json(&serde_json::json!({ "query": query }))
            .send()
            .await
            .expect("sql request");
        let status = r.status();
        let body: Value = r.json().await.expect("sql json");
        assert!(status.is_success(), "{query}: {status} {body}");
        body
    }

    /// The first cell of a one-row query, as i64.
    pub async fn count(&self, query: &str) -> i64 {
        self.sql(query).await["rows"][0][0].as_i64().unwrap_or(-1)
    }

    /// Vigie's own /metrics text.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.addr))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// Sends a signal (`HUP`, `TERM`, ...) to the process.
    pub fn signal(&self, name: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status();
    }

    /// Kills the process with SIGKILL, as a crash would.
    pub fn crash(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for a clean exit (flushes storage).
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return self.child.wait().expect("wait");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Vigie {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What a test target serves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// Valid exposition.
    Ok,
    /// Text that is not exposition format.
    Garbage,
    /// HTTP 404.
    NotFound,
}

/// A scrape target: a real HTTP server exposing `app_gauge` and `extra`
/// metrics `app_extra_<i>`.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub gauge: Arc<Mutex<f64>>,
    pub mode: Arc<Mutex<Mode>>,
    pub scrapes: Arc<Mutex<usize>>,
    /// Serve `Mode::NotFound` once this many good scrapes were served.
    pub max_scrapes: Arc<Mutex<Option<usize>>>,
}

async fn serve_metrics(State(t): State<(Target, usize)>) -> (StatusCode, String) {
    let (t, extra) = t;
    let mode = *t.mode.lock().expect("lock");
    let mut scrapes = t.scrapes.lock().expect("lock");
    if let Some(max) = *t.max_scrapes.lock().expect("lock")
        && *scrapes >= max
    {
        return (StatusCode::NOT_FOUND, "gone\n".into());
    }
    match mode {
        Mode::NotFound => (StatusCode::NOT_FOUND, "gone\n".into()),
        Mode::Garbage => (StatusCode::OK, "this is { not exposition\n".into()),
        Mode::Ok => {
            *scrapes += 1;
            let mut body = format!(
                "# HELP app_gauge A gauge the test moves.\n# TYPE app_gauge gauge\napp_gauge{{zone=\"a\"}} {}\n",
                t.gauge.lock().expect("lock")
            );
            for i in 0..extra {
                body.push_str(&format!("app_extra_{i} {i}\n"));
            }
            (StatusCode::OK, body)
        }
    }
}

impl Target {
    /// Starts a target exposing `app_gauge` plus `extra` constant metrics.
    pub async fn start(extra: usize) -> Target {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let t = Target {
            addr: listener.local_addr().expect("addr"),
            gauge: Arc::new(Mutex::new(1.0)),
            mode: Arc::new(Mutex::new(Mode::Ok)),
            scrapes: Arc::new(Mutex::new(0)),
            max_scrapes: Arc::new(Mutex::new(None)),
        };
        let app = Router::new()
            .route("/metrics", get(serve_metrics))
            .with_state((t.clone(), extra));
        tokio::spawn(async move { axum::serve(listener, app).await });
        t
    }

    pub fn set(&self, v: f64) {
        *self.gauge.lock().expect("lock") = v;
    }

    pub fn set_mode(&self, m: Mode) {
        *self.mode.lock().expect("lock") = m;
    }

    pub fn scrapes(&self) -> usize {
        *self.scrapes.lock().expect("lock")
    }
}

/// A webhook receiver: a real HTTP server recording every JSON body.
#[derive(Clone)]
pub struct Webhook {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Value>>>,
}

async fn record(State(w): State<Webhook>, body: axum::Json<Value>) -> StatusCode {
    w.received.lock().expect("lock").push(body.0);
    StatusCode::OK
}

impl Webhook {
    pub async fn start() -> Webhook {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let w = Webhook {
            addr: listener.local_addr().expect("addr"),
            received: Arc::new(Mutex::new(Vec::new())),
        };
        let app = Router::new()
            .route("/hook", post(record))
            .with_state(w.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        w
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Payloads received with `status` for `alertname`.
    pub fn with_status(&self, status: &str, alertname: &str) -> Vec<Value> {
        self.received
            .lock()
            .expect("lock")
            .iter()
            .filter(|p| p["status"] == status && p["groupLabels"]["alertname"] == alertname)
            .cloned()
            .collect()
    }
}

/// Debian's Python, which has python3-aiosmtpd (the `python3` on PATH may not).
pub const PYTHON: &str = "/usr/bin/python3";

/// The Python that runs aiosmtpd: `VIGIE_TEST_PYTHON` (set by scripts/test) or Debian's.
pub fn python() -> String {
    std::env::var("VIGIE_TEST_PYTHON").unwrap_or_else(|_| PYTHON.to_string())
}

/// A real SMTP server (aiosmtpd) writing mail into a Maildir.
pub struct Smtp {
    child: Child,
    pub port: u16,
    pub maildir: PathBuf,
    _dir: tempfile::TempDir,
}

impl Smtp {
    pub fn start() -> Smtp {
        let ok = Command::new(python())
            .args(["-c", "import aiosmtpd"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "{} cannot import aiosmtpd: run `apt-get install python3-aiosmtpd` (.ci/run does)",
            python()
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let maildir = dir.path().join("Maildir");
        let port = free_port();
        let child = Command::new(python())
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "aiosmtpd did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Smtp {
            child,
            port,
            maildir,
            _dir: dir,
        }
    }

    /// Every message delivered so far, raw.
    pub fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(entries) = std::fs::read_dir(self.maildir.join(sub)) {
                for e in entries.flatten() {
                    if let Ok(text) = std::fs::read_to_string(e.path()) {
                        out.push(text);
                    }
                }
            }
        }
        out
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The rule file used by the alert tests.
pub const GAUGE_RULES: &str = r#"
groups:
  - name: test
    rules:
      - alert: GaugeHigh
        expr: app_gauge > 100
        for: 2s
        labels: {severity: page}
        annotations:
          summary: "gauge on {{ $labels.instance }} is {{ $value }}"
          description: "app_gauge rose above 100"
          runbook_url: "https://example.invalid/runbook"
"#;

/// Reads a path relative to the workspace root.
pub fn root(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// Stops `target`, then waits until the analyzer stored every sample of
/// every served scrape (`per_scrape` app_* samples each, staleness markers
/// left out) and checks that no series has two rows at one timestamp.
pub async fn assert_stored_exactly_once(analyzer: &Vigie, target: &Target, per_scrape: i64) {
    assert_stored_exactly_once_except(analyzer, target, per_scrape, 0).await;
}

/// [`assert_stored_exactly_once`] for a run in which the collector dropped
/// (and counted) `lost_scrapes` whole scrapes: those are not expected.
pub async fn assert_stored_exactly_once_except(
    analyzer: &Vigie,
    target: &Target,
    per_scrape: i64,
    lost_scrapes: i64,
) {
    let served = target.scrapes();
    *target.max_scrapes.lock().expect("lock") = Some(served);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let served = target.scrapes() as i64 - lost_scrapes;
    let stored = wait_for("every sample stored", Duration::from_secs(90), || async {
        let n = analyzer
            .count(
                "SELECT count(*) FROM samples WHERE labels['job'] = 'app' \
                 AND metric LIKE 'app_%' AND NOT isnan(value)",
            )
            .await;
        (n >= served * per_scrape).then_some(n)
    })
    .await;
    assert_eq!(
        stored,
        served * per_scrape,
        "samples sent != samples stored"
    );
    // One query, one snapshot: the target is gone but `up` and `scrape_*`
    // of job "app" still get a row every scrape, so two counts taken one
    // after the other may differ without any row stored twice.
    let twice = analyzer
        .sql(
            "SELECT metric, series_id, ts, count(*) AS n FROM samples \
             WHERE labels['job'] = 'app' GROUP BY metric, series_id, ts \
             HAVING count(*) > 1 ORDER BY ts, metric LIMIT 40",
        )
        .await;
    assert_eq!(
        twice["rows"].as_array().map(Vec::len),
        Some(0),
        "a series has two rows at one timestamp: {twice}"
    );
}
