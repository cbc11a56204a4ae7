//! The shipped rule library (`rules/`) passes its unit tests
//! (`rules/tests/*.yml`) under both `vigie rules test` and Prometheus'
//! `promtool test rules`, and both checkers accept every rule file.

mod common;

use std::path::PathBuf;
use std::process::Command;

fn files(dir: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(common::root(dir))
        .expect("rules dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("yml"))
        .collect();
    out.sort();
    out
}

fn run(bin: &str, args: &[&str], files: &[PathBuf]) -> (bool, String) {
    let out = Command::new(bin)
        .args(args)
        .args(files)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {bin}: {e} (promtool comes with Debian's `prometheus` package; scripts/test installs it)")
        });
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
fn shipped_rules_pass_their_unit_tests_in_vigie_and_promtool() {
    let tests = files("rules/tests");
    assert!(!tests.is_empty(), "no unit tests in rules/tests");
    let (ok, out) = run(env!("CARGO_BIN_EXE_vigie"), &["rules", "test"], &tests);
    assert!(ok, "vigie rules test failed:\n{out}");
    let (ok, out) = run("/usr/bin/promtool", &["test", "rules"], &tests);
    assert!(ok, "promtool test rules failed:\n{out}");
}

#[test]
fn shipped_rule_files_pass_both_checkers() {
    let rules = files("rules");
    assert!(rules.len() >= 3, "rules/ should hold the rule library");
    let (ok, out) = run(env!("CARGO_BIN_EXE_vigie"), &["rules", "check"], &rules);
    assert!(ok, "vigie rules check failed:\n{out}");
    let (ok, out) = run("/usr/bin/promtool", &["check", "rules"], &rules);
    assert!(ok, "promtool check rules failed:\n{out}");
}
