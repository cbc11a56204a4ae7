//! `[api] token_file` on the real binary: state-changing endpoints (rule
//! reload, posted alerts, silences, remote-write) answer 401 without the
//! token or with a wrong one; queries stay open. Without a token, Vigie
//! listens on 127.0.0.1 only and says so.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Vigie, free_port};

const TOKEN: &str = "7c1d0e5f9a3b4c2d8e6f0a1b2c3d4e5f";

#[tokio::test]
async fn state_changing_endpoints_need_the_token() {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    std::fs::write(dir.path().join("token"), format!("{TOKEN}\n")).expect("token");
    let vigie = Vigie::start_in(dir, "[api]\ntoken_file = \"token\"\n", "groups: []\n", &[]).await;
    let base = format!("http://{}", vigie.addr);
    let client = reqwest::Client::new();
    for (method, path) in [
        ("POST", "/-/reload"),
        ("POST", "/api/v2/alerts"),
        ("POST", "/api/v2/silences"),
        ("DELETE", "/api/v2/silence/x"),
        ("POST", "/api/v1/write"),
    ] {
        let method: reqwest::Method = method.parse().expect("method");
        let missing = client
            .request(method.clone(), format!("{base}{path}"))
            .send()
            .await
            .expect("send");
        assert_eq!(missing.status(), 401, "{method} {path} without a token");
        let wrong = client
            .request(method.clone(), format!("{base}{path}"))
            .bearer_auth("not-the-token")
            .send()
            .await
            .expect("send");
        assert_eq!(wrong.status(), 401, "{method} {path} with a wrong token");
    }
    let reload = client
        .post(format!("{base}/-/reload"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("send");
    assert_eq!(reload.status(), 200, "{}", vigie.log());
    // Grafana's form-posted queries and plain reads need no token.
    let query = client
        .post(format!("{base}/api/v1/query"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("query=1%2B1")
        .send()
        .await
        .expect("send");
    assert_eq!(query.status(), 200);
    let alerts = client
        .get(format!("{base}/api/v2/alerts"))
        .send()
        .await
        .expect("send");
    assert_eq!(alerts.status(), 200);
}

#[tokio::test]
async fn without_a_token_vigie_listens_on_loopback_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    std::fs::write(
        dir.path().join("vigie.toml"),
        format!("self_scrape = false\n[http]\nlisten = \"0.0.0.0:{port}\"\n[host]\nenabled = false\n[rules]\nfiles = []\n"),
    )
    .expect("config");
    let log = std::fs::File::create(dir.path().join("vigie.log")).expect("log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigie"))
        .args(["run", "--config", "vigie.toml"])
        .current_dir(dir.path())
        // tracing writes to stderr.
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start vigie");
    let read_log = || std::fs::read_to_string(dir.path().join("vigie.log")).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await
            && r.status().is_success()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "vigie did not start:\n{}",
            read_log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sockets = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    // 0100007F is 127.0.0.1; 00000000 would be 0.0.0.0.
    let listening: Vec<&str> = sockets
        .lines()
        .filter(|l| {
            l.contains(&format!(":{port:04X} ")) && l.split_whitespace().nth(3) == Some("0A")
        })
        .collect();
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
    assert_eq!(listening.len(), 1, "{listening:?}");
    assert!(
        listening[0].contains(&format!("0100007F:{port:04X}")),
        "{listening:?}"
    );
    let text = read_log();
    assert!(text.contains("listening on 127.0.0.1 only"), "{text}");
}
