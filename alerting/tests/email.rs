//! The email notifier against a real SMTP server (Debian's aiosmtpd).

mod common;

use std::collections::BTreeMap;

use common::smtp::{Smtp, SmtpOptions};
use common::{notification, notified};
use vigie_alerting::notify::email::EmailNotifier;
use vigie_alerting::{EmailConfig, GroupStatus, Notifier};

fn config(port: u16) -> EmailConfig {
    EmailConfig {
        to: vec!["oncall@example.com".into(), "lead@example.com".into()],
        from: "Vigie <vigie@example.com>".into(),
        smarthost: format!("127.0.0.1:{port}"),
        // aiosmtpd here speaks plain SMTP only.
        require_tls: false,
        send_resolved: true,
        headers: BTreeMap::from([("X-Team".to_string(), "storage".to_string())]),
        ..EmailConfig::default()
    }
}

#[tokio::test]
async fn firing_and_resolved_mails_reach_a_real_smtp_server() {
    let smtp = Smtp::start(&SmtpOptions::default());
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
    let mails = smtp.messages();
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
    let mails = smtp.messages();
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

#[tokio::test]
async fn require_tls_fails_when_the_server_offers_no_starttls() {
    let smtp = Smtp::start(&SmtpOptions::default());
    let mut c = config(smtp.port);
    c.require_tls = true;
    let notifier = EmailNotifier::new(&c).expect("notifier");
    let n = notification(
        GroupStatus::Firing,
        vec![notified("a", GroupStatus::Firing)],
    );
    let err = notifier.notify(&n).await.expect_err("no STARTTLS offered");
    common::assert_tls_failure(&err, "does not offer STARTTLS");
    assert!(smtp.messages().is_empty(), "nothing sent in plain text");
}
