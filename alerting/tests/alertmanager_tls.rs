//! TLS and SMTP AUTH keys of an unchanged `alertmanager.yml`: Alertmanager's
//! names, defaults and inheritance from `global`; relative files follow the
//! YAML file; unreadable files are problems naming the key.

use std::path::PathBuf;

use vigie_alerting::AlertingConfig;
use vigie_alerting::alertmanager::load;

const YAML: &str = r#"
global:
  smtp_from: am@example.com
  smtp_smarthost: mail.example.com:587
  smtp_auth_username: am
  smtp_auth_password_file: smtp.pass
  smtp_auth_identity: admin
  smtp_tls_config:
    ca_file: ca.pem
    server_name: mail.internal
  http_config:
    tls_config:
      ca_file: /etc/ssl/private-ca.pem
      insecure_skip_verify: true
route:
  receiver: all
receivers:
  - name: all
    email_configs:
      - to: a@example.com
      - to: b@example.com
        smarthost: smtps.example.com:465
        auth_password: inline
        require_tls: false
        tls_config:
          insecure_skip_verify: true
    webhook_configs:
      - url: https://hooks.example.com/a
      - url: https://hooks.example.com/b
        http_config:
          tls_config:
            cert_file: client.pem
            key_file: client.key
    pagerduty_configs:
      - routing_key: k
"#;

#[test]
fn tls_and_auth_keys_map_with_alertmanager_defaults() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("alertmanager.yml");
    std::fs::write(&file, YAML).expect("write");
    let loaded = load(&file).expect("loads");
    let r = &loaded.receivers[0];

    let a = &r.email_configs[0];
    assert!(a.require_tls, "Alertmanager's default");
    assert!(!a.send_resolved, "Alertmanager's default for email");
    assert!(!a.uses_implicit_tls());
    assert_eq!(a.auth_username.as_deref(), Some("am"));
    assert_eq!(a.auth_identity.as_deref(), Some("admin"));
    assert_eq!(a.auth_password_file, Some(dir.path().join("smtp.pass")));
    assert_eq!(a.tls_config.ca_file, Some(dir.path().join("ca.pem")));
    assert_eq!(a.tls_config.server_name.as_deref(), Some("mail.internal"));

    let b = &r.email_configs[1];
    assert!(b.uses_implicit_tls(), "port 465");
    assert!(!b.require_tls);
    assert_eq!(b.auth_password.as_deref(), Some("inline"));
    assert_eq!(b.auth_password_file, None, "its own password wins");
    assert!(b.tls_config.insecure_skip_verify);
    assert_eq!(
        b.tls_config.ca_file, None,
        "its own tls_config replaces the global one"
    );

    let global_ca = Some(PathBuf::from("/etc/ssl/private-ca.pem"));
    assert_eq!(
        r.webhook_configs[0].http_config.tls_config.ca_file,
        global_ca
    );
    assert!(
        r.webhook_configs[0]
            .http_config
            .tls_config
            .insecure_skip_verify
    );
    let own = &r.webhook_configs[1].http_config.tls_config;
    assert_eq!(own.ca_file, None);
    assert_eq!(own.cert_file, Some(dir.path().join("client.pem")));
    assert_eq!(
        r.pagerduty_configs[0].http_config.tls_config.ca_file,
        global_ca
    );

    // None of those files exist: check-config names each key.
    let config = AlertingConfig {
        alertmanager_config: Some(file.clone()),
        ..AlertingConfig::default()
    };
    let problems: Vec<String> = config.problems().into_iter().map(|(_, m)| m).collect();
    for key in [
        "receivers[0].email_configs[0].auth_password_file",
        "receivers[0].email_configs[0].tls_config.ca_file",
        "receivers[0].webhook_configs[0].http_config.tls_config.ca_file",
        "receivers[0].webhook_configs[1].http_config.tls_config.cert_file",
        "receivers[0].pagerduty_configs[0].http_config.tls_config.ca_file",
    ] {
        assert!(
            problems.iter().any(|m| m.contains(key)),
            "{key} not reported: {problems:#?}"
        );
    }
}

#[test]
fn unsupported_http_config_keys_say_so() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("alertmanager.yml");
    std::fs::write(
        &file,
        "route:\n  receiver: w\nreceivers:\n  - name: w\n    webhook_configs:\n      - url: https://x.example/\n        http_config:\n          basic_auth:\n            username: u\n",
    )
    .expect("write");
    let err = load(&file).expect_err("refused").to_string();
    assert!(
        err.contains("basic_auth") && err.contains("does not support"),
        "{err}"
    );
}
