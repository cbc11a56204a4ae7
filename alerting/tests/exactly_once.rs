//! Exactly once while a receiver is down: the SMTP server (real aiosmtpd)
//! is down for a while, then up; the page arrives once, carrying the
//! notification's idempotency key as its Message-ID.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Running;
use serde_json::json;
use vigie_alerting::{AlertingConfig, EmailConfig, ReceiverConfig};

fn python() -> String {
    std::env::var("VIGIE_TEST_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".to_string())
}

/// aiosmtpd on a given port, writing into a Maildir; killed on drop.
struct Smtp {
    child: Child,
    maildir: PathBuf,
}

impl Smtp {
    fn start(port: u16, dir: &Path) -> Smtp {
        let maildir = dir.join("Maildir");
        let child = Command::new(python())
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd (apt-get install python3-aiosmtpd)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "aiosmtpd did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Smtp { child, maildir }
    }

    fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            for e in std::fs::read_dir(self.maildir.join(sub))
                .into_iter()
                .flatten()
                .flatten()
            {
                out.push(std::fs::read_to_string(e.path()).unwrap_or_default());
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

#[tokio::test]
async fn smtp_down_for_a_while_then_up_pages_once() {
    let data = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let config = AlertingConfig {
        group_wait: Duration::from_millis(100),
        group_interval: Duration::from_secs(2),
        receivers: vec![ReceiverConfig {
            name: "mail".into(),
            email_configs: vec![EmailConfig {
                to: vec!["oncall@example.com".into()],
                from: "vigie@example.com".into(),
                smarthost: format!("127.0.0.1:{port}"),
                auth_username: None,
                auth_password: None,
                require_tls: false,
                send_resolved: true,
                headers: BTreeMap::new(),
            }],
            ..ReceiverConfig::default()
        }],
        ..AlertingConfig::default()
    };
    let mut alerting = Running::start(config, data.path()).await;
    alerting
        .post_alert(
            json!({"alertname": "DiskFull", "instance": "db1"}),
            Duration::from_secs(3600),
        )
        .await;

    // Down long enough for retries to give up and the group to be
    // notified again at a later flush.
    let deadline = Instant::now() + Duration::from_secs(30);
    while alerting.history("status=failed").await.len() < 2 {
        assert!(Instant::now() < deadline, "no failed attempts recorded");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let smtp = Smtp::start(port, data.path());
    let deadline = Instant::now() + Duration::from_secs(30);
    while smtp.messages().is_empty() {
        assert!(Instant::now() < deadline, "the page never arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Two more group intervals: nothing else is due.
    tokio::time::sleep(Duration::from_secs(5)).await;
    alerting.stop().await;

    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "exactly one page");
    assert!(
        messages[0].contains("[FIRING:1] DiskFull"),
        "{}",
        messages[0]
    );
    let sent = Running::start(AlertingConfig::default(), data.path())
        .await
        .history("status=sent")
        .await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    let key = sent[0]["idempotency_key"].as_str().expect("key");
    assert!(
        messages[0].contains(&format!("Message-ID: <{key}@vigie>")),
        "{}",
        messages[0]
    );
}
