//! The email notifier against a real SMTP server (Debian's aiosmtpd).

mod common;

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{notification, notified};
use vigie_alerting::notify::email::EmailNotifier;
use vigie_alerting::{EmailConfig, GroupStatus, Notifier};

/// Debian's Python has python3-aiosmtpd; `VIGIE_TEST_PYTHON` (set by
/// scripts/test) names another interpreter that has aiosmtpd.
fn python() -> String {
    std::env::var("VIGIE_TEST_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".to_string())
}

/// Kills the SMTP server when the test ends, even on panic.
struct Smtp {
    child: Child,
    port: u16,
    maildir: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_smtp() -> Smtp {
    let probe = Command::new(python())
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    assert!(
        matches!(probe, Ok(s) if s.success()),
        "{} cannot import aiosmtpd: install it with `apt-get install python3-aiosmtpd` \
         (the email test needs a real SMTP server)",
        python()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let maildir = dir.path().join("Maildir");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let child = Command::new(python())
        .args(["-m", "aiosmtpd", "-n", "-l"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(&maildir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start aiosmtpd");
    let mut smtp = Smtp {
        child,
        port,
        maildir,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = smtp.child.try_wait() {
            panic!("aiosmtpd exited early: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "aiosmtpd did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    smtp
}

fn config(port: u16) -> EmailConfig {
    EmailConfig {
        to: vec!["oncall@example.com".into(), "lead@example.com".into()],
        from: "Vigie <vigie@example.com>".into(),
        smarthost: format!("127.0.0.1:{port}"),
        auth_username: None,
        auth_password: None,
        require_tls: false,
        send_resolved: true,
        headers: BTreeMap::from([("X-Team".to_string(), "storage".to_string())]),
    }
}

fn messages(maildir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(maildir.join("new")) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| std::fs::read_to_string(e.path()).expect("read mail"))
        .collect()
}

#[tokio::test]
async fn firing_and_resolved_mails_reach_a_real_smtp_server() {
    let smtp = start_smtp();
    let notifier = EmailNotifier::new(&config(smtp.port)).expect("notifier");
    assert_eq!(notifier.integration(), "email");

    let firing = notification(
        GroupStatus::Firing,
        vec![
            notified("a", GroupStatus::Firing),
            notified("bb", GroupStatus::Firing),
        ],
    );
    notifier.notify(&firing).await.expect("send firing");
    let mails = messages(&smtp.maildir);
    assert_eq!(mails.len(), 1, "one mail stored");
    let mail = &mails[0];
    assert!(
        mail.contains("Subject: [FIRING:2] HighLatency (page)"),
        "{mail}"
    );
    assert!(
        mail.contains("To: oncall@example.com, lead@example.com"),
        "{mail}"
    );
    assert!(mail.contains("From: Vigie <vigie@example.com>"), "{mail}");
    assert!(mail.contains("X-Team: storage"), "{mail}");
    assert!(mail.contains("multipart/alternative"), "{mail}");
    assert!(mail.contains("text/plain"), "{mail}");
    assert!(mail.contains("text/html"), "{mail}");
    assert!(mail.contains("Summary: Latency high on a"), "{mail}");
    assert!(mail.contains("Summary: Latency high on bb"), "{mail}");
    assert!(
        mail.contains("Description: p99 above 500ms for 5 minutes"),
        "{mail}"
    );
    assert!(mail.contains("instance = bb"), "{mail}");
    assert!(
        mail.contains("<a href=\"http://vigie.test/graph?g0.expr=latency\">Source</a>"),
        "{mail}"
    );

    let resolved = notification(
        GroupStatus::Resolved,
        vec![notified("a", GroupStatus::Resolved)],
    );
    notifier.notify(&resolved).await.expect("send resolved");
    let mails = messages(&smtp.maildir);
    assert_eq!(mails.len(), 2);
    let mail = mails
        .iter()
        .find(|m| m.contains("Subject: [RESOLVED]"))
        .expect("resolved mail");
    assert!(
        mail.contains("Subject: [RESOLVED] HighLatency (a page)"),
        "{mail}"
    );
    assert!(mail.contains("Ended: 2023-11-14T22:23:20Z"), "{mail}");
}

#[tokio::test]
async fn unreachable_smtp_server_is_a_retriable_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let notifier = EmailNotifier::new(&config(port)).expect("notifier");
    let n = notification(
        GroupStatus::Firing,
        vec![notified("a", GroupStatus::Firing)],
    );
    let err = notifier.notify(&n).await.expect_err("nobody listens");
    assert!(err.retriable(), "{err:?}");
}

#[test]
fn require_tls_is_refused_for_now() {
    let mut c = config(25);
    c.require_tls = true;
    let err = EmailNotifier::new(&c).err().expect("refused");
    assert!(err.to_string().contains("not built yet"), "{err}");
}
