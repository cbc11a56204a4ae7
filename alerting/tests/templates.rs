//! Alertmanager notification templates end to end: an `alertmanager.yml`
//! with a `templates` file and templated receiver fields, an alert posted
//! to a running alerting, and the rendered email (real SMTP server,
//! aiosmtpd) and Slack payload (real HTTP server).

mod common;

use axum::http::StatusCode;
use common::smtp::{Smtp, SmtpOptions};
use common::{Running, eventually, json_server};
use serde_json::json;

const TEMPLATES: &str = r#"{{ define "team.subject" }}[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }} on {{ range $i, $a := .Alerts }}{{ if $i }}, {{ end }}{{ $a.Labels.instance }}{{ end }}{{ end }}
{{ define "team.text" }}{{ range .Alerts.Firing }}* {{ .Annotations.summary }} ({{ .Labels.SortedPairs.Values | join "/" }})
{{ end }}{{ end }}
"#;

/// Decodes a quoted-printable body enough to search it.
fn unqp(s: &str) -> String {
    let s = s.replace("=\r\n", "").replace("=\n", "");
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'='
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn templated_email_and_slack_fields_render_like_alertmanager() {
    let smtp = Smtp::start(&SmtpOptions::default());
    let (slack, seen) = json_server(StatusCode::OK, json!("ok")).await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("templates")).expect("mkdir");
    std::fs::write(dir.path().join("templates/team.tmpl"), TEMPLATES).expect("write");
    let yml = format!(
        r#"
route:
  receiver: team
  group_by: [alertname]
  group_wait: 100ms
  group_interval: 1m
receivers:
  - name: team
    email_configs:
      - to: oncall@example.com
        from: vigie@example.com
        smarthost: {smarthost}
        require_tls: false
        headers:
          Subject: '{{{{ template "team.subject" . }}}}'
        text: '{{{{ template "team.text" . }}}}'
    slack_configs:
      - api_url: {slack}/hooks/x
        title: '[{{{{ .Status | toUpper }}}}{{{{ if eq .Status "firing" }}}}:{{{{ .Alerts.Firing | len }}}}{{{{ end }}}}] {{{{ .CommonLabels.alertname }}}}'
        text: "{{{{ range .Alerts }}}}{{{{ .Annotations.summary }}}}\n{{{{ end }}}}"
        pretext: '{{{{ template "team.subject" . }}}}'
templates:
  - templates/*.tmpl
"#,
        smarthost = smtp.smarthost(),
    );
    let file = dir.path().join("alertmanager.yml");
    std::fs::write(&file, yml).expect("write");
    let config = vigie_alerting::AlertingConfig {
        alertmanager_config: Some(file),
        ..vigie_alerting::AlertingConfig::default()
    };
    assert_eq!(config.problems(), Vec::<(String, String)>::new());

    let data = tempfile::tempdir().expect("data");
    let mut running = Running::start(config, data.path()).await;
    let now = chrono::Utc::now();
    let alerts: Vec<_> = ["db-1:9100", "db-2:9100"]
        .iter()
        .map(|i| {
            json!({
                "labels": {"alertname": "DiskFull", "instance": i, "severity": "page"},
                "annotations": {"summary": format!("disk full on {i}")},
                "startsAt": (now - chrono::Duration::minutes(1)).to_rfc3339(),
                "endsAt": (now + chrono::Duration::hours(1)).to_rfc3339(),
            })
        })
        .collect();
    let (status, body) = running.post("/api/v2/alerts", &json!(alerts)).await;
    assert_eq!(status, 200, "{body}");

    eventually("the email and the Slack message", || {
        !smtp.messages().is_empty() && !seen.requests.lock().expect("lock").is_empty()
    })
    .await;
    running.stop().await;

    // Vigie's alert order within a group is its own: accept either.
    let (a, b) = ("db-1:9100", "db-2:9100");
    let either = |f: &dyn Fn(&str, &str) -> String, hay: &str| {
        hay.contains(&f(a, b)) || hay.contains(&f(b, a))
    };
    let mail = smtp.messages().remove(0);
    assert!(
        either(
            &|x, y| format!("Subject: [FIRING] DiskFull on {x}, {y}"),
            &mail
        ),
        "{mail}"
    );
    let body = unqp(&mail).replace("\r\n", "\n");
    assert!(
        either(
            &|x, y| format!(
                "* disk full on {x} (DiskFull/{x}/page)\n* disk full on {y} (DiskFull/{y}/page)\n"
            ),
            &body
        ),
        "{body}"
    );
    // html left at its default: Alertmanager's email.default.html.
    assert!(body.contains("text/html"), "{body}");
    assert!(body.contains("2 alerts for"), "{body}");
    assert!(body.contains("alertname=DiskFull"), "{body}");
    assert!(body.contains("instance = db-2:9100"), "{body}");

    let requests = seen.requests.lock().expect("lock").clone();
    let attachment = &requests[0].1["attachments"][0];
    assert_eq!(requests[0].0, "/hooks/x");
    assert_eq!(attachment["title"], "[FIRING:2] DiskFull");
    let text = attachment["text"].as_str().unwrap_or_default();
    assert!(
        either(
            &|x, y| format!("disk full on {x}\ndisk full on {y}\n"),
            text
        ),
        "{text}"
    );
    let pretext = attachment["pretext"].as_str().unwrap_or_default();
    assert!(
        either(&|x, y| format!("[FIRING] DiskFull on {x}, {y}"), pretext),
        "{pretext}"
    );
}

#[tokio::test]
async fn a_broken_template_file_is_a_start_up_error_with_its_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("bad.tmpl"),
        "{{ define \"a\" }}ok{{ end }}\n\n  {{ define \"b\" }}{{ .X | nosuch }}{{ end }}\n",
    )
    .expect("write");
    let file = dir.path().join("alertmanager.yml");
    std::fs::write(
        &file,
        "route:\n  receiver: r\nreceivers:\n  - name: r\ntemplates: ['*.tmpl']\n",
    )
    .expect("write");
    let config = vigie_alerting::AlertingConfig {
        alertmanager_config: Some(file),
        ..vigie_alerting::AlertingConfig::default()
    };
    let e = config.resolve().expect_err("bad template").to_string();
    assert!(e.contains("bad.tmpl:3:19:"), "{e}");
    assert!(e.contains("function \"nosuch\" not defined"), "{e}");
    assert!(
        config
            .problems()
            .iter()
            .any(|(_, m)| m.contains("bad.tmpl:3:19")),
        "{:?}",
        config.problems()
    );
    // Before any notification, alerting refuses to start.
    let bus = vigie_bus::memory::MemoryBus::new(4);
    let started = vigie_alerting::start(
        config,
        None,
        Box::new(bus.subscribe(&[vigie_model::topics::ALERTS])),
        tokio_util::sync::CancellationToken::new(),
    );
    assert!(started.is_err());
}
