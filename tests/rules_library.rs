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

/// Alert names and their rule text (up to the next rule) in a rule file.
fn alerts(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("- alert: ") {
        let after = &rest[i + "- alert: ".len()..];
        let name = after.lines().next().unwrap_or("").trim().to_string();
        let end = [after.find("- alert: "), after.find("- record: ")]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(after.len());
        out.push((name, after[..end].to_string()));
        rest = &after[end..];
    }
    out
}

/// The library's conventions (docs/rules.md): every alert has `summary`,
/// `description` and a `runbook_url` whose anchor is a section of
/// docs/runbooks.md, a `severity` of critical|warning|info, and unit tests
/// that expect it both firing and not firing.
#[test]
fn every_shipped_alert_is_documented_and_tested_both_ways() {
    let runbooks = std::fs::read_to_string(common::root("docs/runbooks.md")).expect("runbooks");
    let tests: Vec<String> = files("rules/tests")
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("test file"))
        .collect();
    // (alertname, expects firing) for every alert_rule_test case.
    let mut cases = Vec::new();
    for t in &tests {
        let lines: Vec<&str> = t.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        for (i, l) in lines.iter().enumerate() {
            if let Some(name) = l.strip_prefix("alertname: ") {
                let next = lines.get(i + 1).copied().unwrap_or("");
                cases.push((name.trim().to_string(), next != "exp_alerts: []"));
            }
        }
    }
    let mut problems = Vec::new();
    let mut count = 0;
    for file in files("rules") {
        let text = std::fs::read_to_string(&file).expect("rule file");
        for (name, rule) in alerts(&text) {
            count += 1;
            let at = format!("{}: {name}", file.display());
            for key in ["summary:", "description:"] {
                if !rule.contains(key) {
                    problems.push(format!("{at}: no {key} annotation"));
                }
            }
            let url = format!(
                "runbook_url: https://github.com/vigie-project/vigie/blob/main/docs/runbooks.md#{}",
                name.to_lowercase()
            );
            if !rule.contains(&url) {
                problems.push(format!("{at}: expected `{url}`"));
            }
            if !runbooks.contains(&format!("\n## {name}\n")) {
                problems.push(format!("{at}: no `## {name}` section in docs/runbooks.md"));
            }
            if !["critical", "warning", "info"]
                .iter()
                .any(|s| rule.contains(&format!("severity: {s}\n")))
            {
                problems.push(format!("{at}: severity must be critical, warning or info"));
            }
            for (firing, what) in [(true, "firing"), (false, "not firing")] {
                if !cases.iter().any(|(n, f)| *n == name && *f == firing) {
                    problems.push(format!("{at}: no unit test expecting it {what}"));
                }
            }
        }
    }
    assert!(count > 0, "no alerts found in rules/");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
