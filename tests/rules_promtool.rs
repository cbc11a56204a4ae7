//! Differential test: every rule unit-test case under
//! `tests/fixtures/rules-unittest/<case>/test.yml` must get the same
//! verdict (pass or fail) from `promtool test rules` and `vigie rules test`.
//! Cases whose name ends in `-fail` are deliberately failing ones; both
//! tools must fail them.
//!
//! promtool comes with the Debian package `prometheus` (`scripts/test`
//! installs it); without it this test fails.

use std::path::{Path, PathBuf};
use std::process::Command;

const PROMTOOL: &str = "/usr/bin/promtool";

fn promtool() -> PathBuf {
    let path = std::env::var_os("PROMTOOL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(PROMTOOL));
    assert!(
        path.exists(),
        "promtool not found at {}: install the Debian package `prometheus` \
         (apt-get install prometheus) or set PROMTOOL",
        path.display()
    );
    path
}

/// Exit status of `tool ... test.yml` run from the case directory: true = pass.
fn verdict(cmd: &mut Command, case: &Path) -> bool {
    let out = cmd
        .current_dir(case)
        .arg("test.yml")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    match out.status.code() {
        Some(0) => true,
        Some(1) => false,
        other => panic!(
            "{cmd:?} in {} exited with {other:?}:\n{}{}",
            case.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

#[test]
fn vigie_and_promtool_agree_on_rule_unit_tests() {
    let promtool = promtool();
    let vigie = env!("CARGO_BIN_EXE_vigie");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rules-unittest");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("test.yml").is_file())
        .collect();
    cases.sort();
    assert!(cases.len() >= 30, "only {} cases", cases.len());
    let mut disagree = Vec::new();
    let (mut passing, mut failing) = (0, 0);
    for case in &cases {
        let name = case.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        let want_pass = !name.ends_with("-fail");
        let p = verdict(Command::new(&promtool).args(["test", "rules"]), case);
        let v = verdict(Command::new(vigie).args(["rules", "test"]), case);
        assert_eq!(
            p, want_pass,
            "{name}: promtool's verdict is not the one the case is written for"
        );
        if p {
            passing += 1;
        } else {
            failing += 1;
        }
        if p != v {
            let show = |b: bool| if b { "pass" } else { "fail" };
            disagree.push(format!("{name}: promtool {}, vigie {}", show(p), show(v)));
        }
    }
    println!(
        "rules differential: {} cases ({passing} passing, {failing} failing), {} verdicts equal",
        cases.len(),
        cases.len() - disagree.len()
    );
    assert!(
        disagree.is_empty(),
        "verdicts differ:\n{}",
        disagree.join("\n")
    );
}

/// Vigie's extensions (`resolve_expr`) have their own cases, run by
/// `vigie rules test` only (promtool rejects the key).
#[test]
fn vigie_extension_cases_pass() {
    let vigie = env!("CARGO_BIN_EXE_vigie");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rules-vigie");
    let mut n = 0;
    for entry in std::fs::read_dir(&root).unwrap_or_else(|e| panic!("{}: {e}", root.display())) {
        let case = entry.expect("dir entry").path();
        if !case.join("test.yml").is_file() {
            continue;
        }
        assert!(
            verdict(Command::new(vigie).args(["rules", "test"]), &case),
            "{} fails under vigie rules test",
            case.display()
        );
        let check = Command::new(vigie)
            .current_dir(&case)
            .args(["rules", "check", "rules.yml"])
            .output()
            .expect("vigie rules check");
        assert!(check.status.success(), "{check:?}");
        n += 1;
    }
    assert!(n > 0, "no case under {}", root.display());
}

#[test]
fn rules_check_reports_file_line_group_and_rule() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        "groups:\n  - name: g\n    rules:\n      - alert: Fine\n        expr: up == 0\n      - alert: Broken\n        expr: sum(rate(x[5m]) by\n      - record: not a name\n        expr: up\n",
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_vigie"))
        .args(["rules", "check"])
        .arg(&bad)
        .output()
        .expect("vigie rules check");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.yml:6: group \"g\", rule \"Broken\""),
        "{err}"
    );
    assert!(
        err.contains("bad.yml:8: group \"g\", rule \"not a name\""),
        "{err}"
    );
    let good = dir.path().join("good.yml");
    std::fs::write(
        &good,
        "groups:\n  - name: g\n    rules:\n      - alert: Fine\n        expr: up == 0\n",
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_vigie"))
        .args(["rules", "check"])
        .arg(&good)
        .output()
        .expect("vigie rules check");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("SUCCESS: 1 rules found"));
}
