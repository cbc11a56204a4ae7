//! Loads the shipped `rules/` directory through the real loader and checks
//! every rule carries what on-call needs: a severity, a summary, a
//! description and a runbook link whose anchor exists in `docs/runbooks.md`.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use vigie_analyzer::rules::load_paths;

const RUNBOOK_PREFIX: &str = "https://github.com/vigie-project/vigie/blob/main/docs/runbooks.md#";

/// GitHub's anchor for a Markdown heading: lower case, spaces to `-`,
/// punctuation other than `-` and `_` dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[test]
fn every_shipped_rule_loads_and_is_documented() {
    let groups = load_paths(
        &[PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../rules"
        ))],
        Duration::from_secs(15),
    )
    .expect("rules/ loads with the analyzer's loader");

    let runbooks =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/runbooks.md"))
            .expect("docs/runbooks.md exists");
    let anchors: HashSet<String> = runbooks
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(anchor)
        .collect();

    let mut names = HashSet::new();
    let mut count = 0;
    for g in &groups {
        for r in g.rules() {
            count += 1;
            let at = format!("{} ({}, group {})", r.name(), g.file().display(), g.name());
            assert!(
                names.insert(r.name().to_string()),
                "alert name used twice: {at}"
            );
            let severity = r.labels().get("severity").map(String::as_str);
            assert!(
                matches!(severity, Some("page" | "warning" | "info")),
                "{at}: severity must be page, warning or info, got {severity:?}"
            );
            for key in ["summary", "description", "runbook_url"] {
                let v = r
                    .annotations()
                    .get(key)
                    .map(|s| s.trim())
                    .unwrap_or_default();
                assert!(!v.is_empty(), "{at}: missing annotation `{key}`");
            }
            let url = &r.annotations()["runbook_url"];
            let frag = url
                .strip_prefix(RUNBOOK_PREFIX)
                .unwrap_or_else(|| panic!("{at}: runbook_url must start with {RUNBOOK_PREFIX}"));
            assert_eq!(
                frag,
                r.name().to_lowercase(),
                "{at}: anchor is the lower-case alert name"
            );
            assert!(
                anchors.contains(frag),
                "{at}: no `## {}` section in docs/runbooks.md",
                r.name()
            );
        }
    }
    assert!(
        count >= 6,
        "expected at least 6 rules in rules/, found {count}"
    );
}
