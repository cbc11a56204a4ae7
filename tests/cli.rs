//! The `vigie` command line: help and check-config.

mod common;

use std::process::Command;

fn vigie(args: &[&str], dir: &std::path::Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vigie"))
        .args(args)
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
fn help_documents_every_subcommand() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ok, text) = vigie(&["--help"], dir.path());
    assert!(ok);
    for sub in ["run", "check-config"] {
        assert!(text.contains(sub), "{text}");
    }
}

#[test]
fn check_config_accepts_the_readme_example() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ok, text) = vigie(
        &[
            "check-config",
            common::root("examples/vigie.toml").to_str().expect("path"),
        ],
        &common::root(""),
    );
    assert!(ok, "{text}");
    assert!(text.contains("OK"), "{text}");
    drop(dir);
}

#[test]
fn check_config_names_file_key_and_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "[[scrape]]\njob = \"x\"\ntargets = [\"no-port\"]\ninterval = \"5s\"\ntimeout = \"10s\"\n[bus]\nkind = \"kafka\"\n\
         [analyzer.storage]\nurl = \"s3://bucket/vigie\"\nendpoint = \"http://127.0.0.1:9000\"\n",
    )
    .expect("write");
    let (ok, text) = vigie(&["check-config", "bad.toml"], dir.path());
    assert!(!ok, "{text}");
    assert!(text.contains("bad.toml"), "{text}");
    assert!(text.contains("scrape[0].timeout"), "{text}");
    assert!(text.contains("scrape[0].targets"), "{text}");
    assert!(text.contains("bus.brokers"), "{text}");
    assert!(text.contains("analyzer.storage.allow_http"), "{text}");
    assert!(text.contains("allow_http = true"), "{text}");
}

#[test]
fn check_config_reports_unknown_keys_with_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("typo.toml"),
        "[analyzer]\nflush_intervall = \"5s\"\n",
    )
    .expect("write");
    let (ok, text) = vigie(&["check-config", "typo.toml"], dir.path());
    assert!(!ok);
    assert!(
        text.contains("typo.toml") && text.contains("flush_intervall"),
        "{text}"
    );
    assert!(text.contains("line 2"), "{text}");
}

#[test]
fn check_config_reports_bad_rules() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("r.yml"),
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: rate(x[5m] > 1\n",
    )
    .expect("write");
    std::fs::write(dir.path().join("c.toml"), "[rules]\nfiles = [\"r.yml\"]\n").expect("write");
    let (ok, text) = vigie(&["check-config", "c.toml"], dir.path());
    assert!(!ok);
    assert!(
        text.contains("r.yml") && text.contains("`g`") && text.contains("`A`"),
        "{text}"
    );
}
