//! Webhooks, PagerDuty events and Slack messages over https, against a
//! real HTTPS server holding a certificate from a throwaway CA.

mod common;

use std::time::Duration;

use common::https::Https;
use common::pki::pki;
use common::{notification, notified};
use vigie_alerting::config::{HttpConfig, TlsConfig};
use vigie_alerting::notify::pagerduty::PagerdutyNotifier;
use vigie_alerting::notify::slack::SlackNotifier;
use vigie_alerting::notify::webhook::WebhookNotifier;
use vigie_alerting::{
    GroupStatus, Notifier, NotifyError, PagerdutyConfig, SlackConfig, WebhookConfig,
};

fn tls(ca: &std::path::Path) -> HttpConfig {
    HttpConfig {
        tls_config: TlsConfig {
            ca_file: Some(ca.to_path_buf()),
            ..TlsConfig::default()
        },
    }
}

fn webhook(url: String, http_config: HttpConfig) -> WebhookNotifier {
    WebhookNotifier::new(&WebhookConfig {
        url,
        timeout: Duration::from_secs(5),
        http_config,
        ..WebhookConfig::default()
    })
    .expect("notifier")
}

fn firing() -> vigie_alerting::Notification {
    notification(
        GroupStatus::Firing,
        vec![notified("db1", GroupStatus::Firing)],
    )
}

#[tokio::test]
async fn webhook_pagerduty_and_slack_over_https_with_the_ca_configured() {
    let pki = pki();
    let server = Https::start(&pki.server_cert, &pki.server_key, None);
    let n = firing();

    webhook(format!("{}/hook", server.base), tls(&pki.ca))
        .notify(&n)
        .await
        .expect("webhook delivered");

    // By name (`localhost`) as well as by address.
    let pd: PagerdutyConfig = serde_json::from_value(serde_json::json!({
        "routing_key": "R0UT1NGKEY",
        "url": format!("https://localhost:{}/v2/enqueue", server.port),
        "timeout": "5s",
        "http_config": {"tls_config": {"ca_file": pki.ca}},
    }))
    .expect("config");
    let pd = PagerdutyNotifier::new(&pd).expect("notifier");
    pd.notify(&n).await.expect("pagerduty event delivered");

    let slack: SlackConfig = serde_json::from_value(serde_json::json!({
        "api_url": format!("{}/services/T0/B0/x", server.base),
        "channel": "#ops",
        "timeout": "5s",
        "http_config": {"tls_config": {"ca_file": pki.ca}},
    }))
    .expect("config");
    let slack = SlackNotifier::new(&slack).expect("notifier");
    slack.notify(&n).await.expect("slack message delivered");

    let requests = server.requests();
    assert_eq!(requests.len(), 3, "{requests:?}");
    let body = |i: usize| -> serde_json::Value {
        serde_json::from_str(requests[i]["body"].as_str().expect("body")).expect("json")
    };
    assert_eq!(requests[0]["path"], "/hook");
    assert_eq!(
        requests[0]["headers"]["idempotency-key"],
        n.idempotency_key().as_str()
    );
    assert_eq!(body(0)["version"], "4");
    assert_eq!(body(0)["alerts"][0]["labels"]["instance"], "db1");
    assert_eq!(requests[1]["path"], "/v2/enqueue");
    assert_eq!(body(1)["routing_key"], "R0UT1NGKEY");
    assert_eq!(body(1)["event_action"], "trigger");
    assert_eq!(requests[2]["path"], "/services/T0/B0/x");
    assert_eq!(body(2)["channel"], "#ops");
}

#[tokio::test]
async fn an_untrusted_certificate_fails_with_a_tls_reason() {
    let pki = pki();
    let server = Https::start(&pki.server_cert, &pki.server_key, None);
    let err = webhook(format!("{}/hook", server.base), tls(&pki.other_ca))
        .notify(&firing())
        .await
        .expect_err("untrusted");
    common::assert_tls_failure(&err, "UnknownIssuer");

    // The system's roots do not know the test CA either.
    let err = webhook(format!("{}/hook", server.base), HttpConfig::default())
        .notify(&firing())
        .await
        .expect_err("untrusted");
    assert_eq!(err.reason(), "tls", "{err:?}");
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn insecure_skip_verify_and_client_certificates() {
    let pki = pki();
    // The server wants a client certificate from the test CA.
    let server = Https::start(&pki.server_cert, &pki.server_key, Some(&pki.ca));
    let url = format!("{}/hook", server.base);
    let mut http = HttpConfig::default();
    http.tls_config.insecure_skip_verify = true;
    let err = webhook(url.clone(), http.clone())
        .notify(&firing())
        .await
        .expect_err("no client certificate");
    assert!(
        matches!(err, NotifyError::Tls { .. } | NotifyError::Transport(_)),
        "{err:?}"
    );

    http.tls_config.cert_file = Some(pki.client_cert.clone());
    http.tls_config.key_file = Some(pki.client_key.clone());
    webhook(url, http)
        .notify(&firing())
        .await
        .expect("delivered with a client certificate, server not verified");
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn unusable_tls_files_are_named() {
    let mut http = HttpConfig::default();
    http.tls_config.ca_file = Some("/nonexistent/ca.pem".into());
    let err = WebhookNotifier::new(&WebhookConfig {
        url: "https://127.0.0.1:1/hook".into(),
        http_config: http,
        ..WebhookConfig::default()
    })
    .err()
    .expect("refused");
    let text = err.to_string();
    assert!(
        text.contains("http_config.tls_config.ca_file") && text.contains("/nonexistent/ca.pem"),
        "{text}"
    );
}
