//! `vigie check-config` with `[alerting] alertmanager_config`: an existing
//! alertmanager.yml is accepted, and its errors are reported with the file,
//! the key path and the line.

mod common;

use std::process::Command;

fn check_config(toml: &str, dir: &std::path::Path) -> (bool, String) {
    let file = dir.join("vigie.toml");
    std::fs::write(&file, toml).expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_vigie"))
        .arg("check-config")
        .arg(&file)
        .current_dir(dir)
        .output()
        .expect("run vigie");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn check_config_loads_the_fixture_alertmanager_yml() {
    let dir = tempfile::tempdir().expect("tempdir");
    let am = common::root("tests/fixtures/alertmanager.yml");
    let (ok, text) = check_config(
        &format!(
            "[rules]\nfiles = []\n[alerting]\nalertmanager_config = {:?}\n",
            am.display().to_string()
        ),
        dir.path(),
    );
    assert!(ok, "{text}");
    assert!(text.contains("7 receiver(s), 7 route(s)"), "{text}");
    // Templates are rendered now (the fixture's `templates:` glob matches
    // no file here, and its Slack title uses Alertmanager's defaults).
    assert!(!text.contains("not rendered"), "{text}");
}

#[test]
fn check_config_reports_alertmanager_errors_with_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("am.yml"),
        "route:\n  receiver: ops\n  routes:\n    - matchers: ['team=\"db\"']\n      receiver: ops\n      group_wiat: 1m\nreceivers:\n  - name: ops\n",
    )
    .expect("write am.yml");
    let (ok, text) = check_config(
        "[rules]\nfiles = []\n[alerting]\nalertmanager_config = \"am.yml\"\n[[alerting.receivers]]\nname = \"x\"\n",
        dir.path(),
    );
    assert!(!ok, "{text}");
    assert!(
        text.contains("`alerting.alertmanager_config`: am.yml:6:7: route.routes[0]: unknown field `group_wiat`"),
        "{text}"
    );
    assert!(
        text.contains("`alerting.receivers`: receivers come from am.yml"),
        "{text}"
    );
}
