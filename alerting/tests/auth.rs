//! The API token: state-changing endpoints answer 401 without it or with a
//! wrong one, read-only ones stay open, and the real `amtool` gets through
//! with its `--http.config.file` carrying the token.

use std::process::Command;

use tokio_util::sync::CancellationToken;
use vigie_alerting::{AlertingConfig, ApiToken, protect};
use vigie_bus::memory::MemoryBus;
use vigie_model::topics;

const TOKEN: &str = "0f3b9c1e7a2d4f6a8b0c2e4f6a8b0c2e";

async fn serve(bus: &MemoryBus, shutdown: CancellationToken) -> String {
    let (router, _task) = vigie_alerting::start(
        AlertingConfig::default(),
        None,
        Box::new(bus.subscribe(&[topics::ALERTS])),
        shutdown,
    )
    .expect("start");
    let app = protect(router, ApiToken::new(TOKEN));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn alert_body() -> serde_json::Value {
    serde_json::json!([{"labels": {"alertname": "Auth", "instance": "a"}}])
}

#[tokio::test]
async fn missing_or_wrong_token_is_401_and_the_right_one_passes() {
    let bus = MemoryBus::new(16);
    let shutdown = CancellationToken::new();
    let base = serve(&bus, shutdown.clone()).await;
    let client = reqwest::Client::new();
    let post = |token: Option<&str>| {
        let mut r = client
            .post(format!("{base}/api/v2/alerts"))
            .json(&alert_body());
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    let missing = post(None).await.expect("send");
    assert_eq!(missing.status(), 401);
    assert_eq!(
        missing.headers()["www-authenticate"],
        "Bearer realm=\"vigie\""
    );
    assert_eq!(post(Some("wrong")).await.expect("send").status(), 401);
    assert_eq!(
        post(Some(&TOKEN[..TOKEN.len() - 1]))
            .await
            .expect("send")
            .status(),
        401
    );
    // Nothing got in.
    let alerts: serde_json::Value = client
        .get(format!("{base}/api/v2/alerts"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(alerts, serde_json::json!([]), "reads stay open");
    assert_eq!(post(Some(TOKEN)).await.expect("send").status(), 200);
    let alerts: serde_json::Value = client
        .get(format!("{base}/api/v2/alerts"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(alerts.as_array().map(Vec::len), Some(1));
    let delete = client
        .delete(format!("{base}/api/v2/silence/0000"))
        .send()
        .await
        .expect("delete");
    assert_eq!(delete.status(), 401);
    shutdown.cancel();
}

fn amtool(base: &str, http_config: Option<&std::path::Path>, args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new("amtool");
    cmd.arg(format!("--alertmanager.url={base}"));
    if let Some(file) = http_config {
        cmd.arg(format!("--http.config.file={}", file.display()));
    }
    let out = cmd.args(args).output().unwrap_or_else(|e| {
        panic!("cannot run amtool ({e}): apt-get install prometheus-alertmanager")
    });
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

// amtool runs as a blocking child process: the server needs other threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amtool_with_the_token_in_its_http_config() {
    let bus = MemoryBus::new(16);
    let shutdown = CancellationToken::new();
    let base = serve(&bus, shutdown.clone()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let credentials = dir.path().join("token");
    std::fs::write(&credentials, format!("{TOKEN}\n")).expect("token");
    let http_config = dir.path().join("http.yml");
    std::fs::write(
        &http_config,
        format!(
            "authorization:\n  credentials_file: {}\n",
            credentials.display()
        ),
    )
    .expect("http config");
    let add = [
        "silence",
        "add",
        "alertname=Auth",
        "--comment=maintenance",
        "--duration=1h",
    ];
    let (ok, text) = amtool(&base, None, &add);
    assert!(!ok, "a silence without the token must be refused: {text}");
    let (ok, text) = amtool(&base, Some(&http_config), &add);
    assert!(ok, "{text}");
    let id = text.lines().next().unwrap_or("").trim().to_string();
    assert_eq!(id.len(), 36, "{text}");
    // Reading needs no token.
    let (ok, text) = amtool(&base, None, &["silence", "query", "-q"]);
    assert!(ok, "{text}");
    assert_eq!(
        text.lines().next().map(str::trim),
        Some(id.as_str()),
        "{text}"
    );
    let (ok, _) = amtool(&base, None, &["silence", "expire", &id]);
    assert!(!ok, "expiring without the token must be refused");
    let (ok, text) = amtool(&base, Some(&http_config), &["silence", "expire", &id]);
    assert!(ok, "{text}");
    let (_, text) = amtool(&base, None, &["silence", "query", "-q"]);
    assert!(!text.contains(&id), "expired: {text}");
    shutdown.cancel();
}
