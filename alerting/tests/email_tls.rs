//! Email over STARTTLS and implicit TLS with AUTH, against a real aiosmtpd
//! holding a certificate from a throwaway CA.

mod common;

use std::time::Duration;

use common::pki::{Pki, pki};
use common::smtp::{Smtp, SmtpOptions, SmtpTls};
use common::{Running, eventually, notification, notified};
use serde_json::json;
use vigie_alerting::notify::email::EmailNotifier;
use vigie_alerting::{
    AlertingConfig, EmailConfig, GroupStatus, Notifier, NotifyError, ReceiverConfig,
};

const USER: &str = "vigie";
const PASSWORD: &str = "correct horse";

fn server(pki: &Pki, tls: SmtpTls, mechanisms: &'static str) -> Smtp {
    Smtp::start(&SmtpOptions {
        tls,
        cert: Some((pki.server_cert.clone(), pki.server_key.clone())),
        auth: Some((USER.into(), PASSWORD.into())),
        mechanisms,
    })
}

/// STARTTLS required (the default), AUTH as `vigie`, the test CA trusted.
fn config(smtp: &Smtp, pki: &Pki) -> EmailConfig {
    let mut c = EmailConfig {
        to: vec!["oncall@example.com".into()],
        from: "Vigie <vigie@example.com>".into(),
        smarthost: smtp.smarthost(),
        auth_username: Some(USER.into()),
        auth_password: Some(PASSWORD.into()),
        ..EmailConfig::default()
    };
    c.tls_config.ca_file = Some(pki.ca.clone());
    c
}

fn firing() -> vigie_alerting::Notification {
    notification(
        GroupStatus::Firing,
        vec![notified("db1", GroupStatus::Firing)],
    )
}

fn assert_delivered(smtp: &Smtp) {
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1, "one mail stored");
    let mail = &mails[0];
    assert!(
        mail.contains("Subject: [FIRING:1] HighLatency (db1 page)"),
        "{mail}"
    );
    assert!(mail.contains("Summary: Latency high on db1"), "{mail}");
    assert!(mail.contains("To: oncall@example.com"), "{mail}");
}

#[tokio::test]
async fn starttls_and_auth_plain_deliver_with_the_ca_configured() {
    let pki = pki();
    let smtp = server(&pki, SmtpTls::StartTls, "PLAIN,LOGIN");
    let c = config(&smtp, &pki);
    assert!(c.require_tls, "STARTTLS is required by default");
    let notifier = EmailNotifier::new(&c).expect("notifier");
    notifier.notify(&firing()).await.expect("delivered");
    assert_delivered(&smtp);
}

#[tokio::test]
async fn auth_login_and_password_file_and_identity() {
    let pki = pki();
    // Only LOGIN offered.
    let smtp = server(&pki, SmtpTls::StartTls, "LOGIN");
    let pass_file = pki.dir.join("smtp-password");
    std::fs::write(&pass_file, format!("{PASSWORD}\n")).expect("write");
    let mut c = config(&smtp, &pki);
    c.auth_password = None;
    c.auth_password_file = Some(pass_file);
    EmailNotifier::new(&c)
        .expect("notifier")
        .notify(&firing())
        .await
        .expect("delivered with LOGIN");
    assert_delivered(&smtp);

    // PLAIN with an authorization identity (aiosmtpd checks the user and
    // password that follow it).
    let smtp = server(&pki, SmtpTls::StartTls, "PLAIN");
    let mut c = config(&smtp, &pki);
    c.auth_identity = Some("admin".into());
    EmailNotifier::new(&c)
        .expect("notifier")
        .notify(&firing())
        .await
        .expect("delivered with PLAIN and an identity");
    assert_delivered(&smtp);
}

#[tokio::test]
async fn wrong_password_fails_with_an_auth_reason() {
    let pki = pki();
    let smtp = server(&pki, SmtpTls::StartTls, "PLAIN,LOGIN");
    let mut c = config(&smtp, &pki);
    c.auth_password = Some("wrong".into());
    let err = EmailNotifier::new(&c)
        .expect("notifier")
        .notify(&firing())
        .await
        .expect_err("refused");
    assert!(matches!(err, NotifyError::Auth { .. }), "{err:?}");
    assert_eq!(err.reason(), "auth");
    assert!(!err.retriable(), "a wrong password is not retried: {err:?}");
    let text = err.to_string();
    assert!(text.contains("535") && text.contains("\"vigie\""), "{text}");
    assert!(
        !text.contains("wrong"),
        "the password is not logged: {text}"
    );
    assert!(smtp.messages().is_empty());
}

#[tokio::test]
async fn an_untrusted_certificate_fails_with_a_tls_reason() {
    let pki = pki();
    let smtp = server(&pki, SmtpTls::StartTls, "PLAIN,LOGIN");
    let mut c = config(&smtp, &pki);
    c.tls_config.ca_file = Some(pki.other_ca.clone());
    let err = EmailNotifier::new(&c)
        .expect("notifier")
        .notify(&firing())
        .await
        .expect_err("untrusted");
    common::assert_tls_failure(&err, "UnknownIssuer");

    // The right CA but another name than the certificate's.
    let mut c = config(&smtp, &pki);
    c.tls_config.server_name = Some("mail.example.com".into());
    let err = EmailNotifier::new(&c)
        .expect("notifier")
        .notify(&firing())
        .await
        .expect_err("wrong name");
    assert_eq!(err.reason(), "tls", "{err:?}");
    assert!(err.to_string().contains("not valid for name"), "{err}");
    assert!(smtp.messages().is_empty());
}

#[tokio::test]
async fn insecure_skip_verify_delivers_without_the_ca() {
    let pki = pki();
    let smtp = server(&pki, SmtpTls::StartTls, "PLAIN,LOGIN");
    let mut c = config(&smtp, &pki);
    c.tls_config.ca_file = None;
    c.tls_config.insecure_skip_verify = true;
    EmailNotifier::new(&c)
        .expect("notifier")
        .notify(&firing())
        .await
        .expect("delivered");
    assert_delivered(&smtp);
}

#[tokio::test]
async fn implicit_tls_delivers() {
    let pki = pki();
    let smtp = server(&pki, SmtpTls::Implicit, "PLAIN,LOGIN");
    let mut c = config(&smtp, &pki);
    c.implicit_tls = Some(true);
    EmailNotifier::new(&c)
        .expect("notifier")
        .notify(&firing())
        .await
        .expect("delivered over SMTPS");
    assert_delivered(&smtp);
}

#[test]
fn unreadable_tls_files_are_named() {
    let mut c = EmailConfig {
        to: vec!["oncall@example.com".into()],
        from: "vigie@example.com".into(),
        smarthost: "127.0.0.1:25".into(),
        ..EmailConfig::default()
    };
    c.tls_config.ca_file = Some("/nonexistent/ca.pem".into());
    let err = EmailNotifier::new(&c).err().expect("refused");
    assert!(matches!(err, NotifyError::Build(_)), "{err:?}");
    assert!(
        err.to_string().contains("tls_config.ca_file")
            && err.to_string().contains("/nonexistent/ca.pem"),
        "{err}"
    );
}

/// Through the whole pipeline: a refused AUTH is counted with reason
/// `auth` and recorded in the history with the server's answer.
#[tokio::test]
async fn a_refused_auth_is_counted_and_recorded() {
    let pki = pki();
    let smtp = server(&pki, SmtpTls::StartTls, "PLAIN,LOGIN");
    let mut mail = config(&smtp, &pki);
    mail.auth_password = Some("wrong".into());
    let data = tempfile::tempdir().expect("tmp");
    let receiver = "mail-auth-refused";
    let config = AlertingConfig {
        group_wait: Duration::from_millis(100),
        group_interval: Duration::from_secs(2),
        receivers: vec![ReceiverConfig {
            name: receiver.into(),
            email_configs: vec![mail],
            ..ReceiverConfig::default()
        }],
        ..AlertingConfig::default()
    };
    let failed = || {
        vigie_alerting::metrics::NOTIFICATIONS_FAILED
            .with_label_values(&[receiver, "email", "auth"])
            .get()
    };
    let mut alerting = Running::start(config, data.path()).await;
    alerting
        .post_alert(
            json!({"alertname": "DiskFull", "instance": "db1"}),
            Duration::from_secs(3600),
        )
        .await;
    eventually("the refused AUTH is counted", || failed() > 0).await;
    let history = alerting.history("status=failed").await;
    alerting.stop().await;
    assert!(!history.is_empty());
    let text = history[0].to_string();
    assert!(text.contains("535"), "{text}");
    assert!(smtp.messages().is_empty());
}
