//! Checks every `dashboards/*.json`: valid JSON, unique panel ids, every
//! target has a PromQL `expr` that parses, and every datasource reference
//! goes through the `${datasource}` template variable.

use std::collections::HashSet;
use std::path::PathBuf;

use serde_json::Value;

fn dashboards() -> Vec<(PathBuf, Value)> {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../dashboards"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("dashboards/ exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no dashboards in {}", dir.display());
    files
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).expect("readable");
            let v: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: invalid JSON: {e}", f.display()));
            (f, v)
        })
        .collect()
}

/// Panels, including those nested in collapsed rows.
fn panels(dash: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    let mut stack: Vec<&Value> = dash["panels"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    while let Some(p) = stack.pop() {
        if let Some(inner) = p["panels"].as_array() {
            stack.extend(inner);
        }
        out.push(p);
    }
    out
}

fn uses_variable(ds: &Value) -> bool {
    let uid = match ds {
        Value::String(s) => s.as_str(),
        Value::Object(o) => o.get("uid").and_then(Value::as_str).unwrap_or(""),
        _ => "",
    };
    uid == "${datasource}" || uid == "$datasource"
}

#[test]
fn dashboards_are_well_formed() {
    for (file, dash) in dashboards() {
        let f = file.display();
        assert!(dash["uid"].is_string(), "{f}: no uid");
        let has_var = dash["templating"]["list"].as_array().is_some_and(|l| {
            l.iter().any(|v| {
                v["type"] == "datasource" && v["name"] == "datasource" && v["query"] == "prometheus"
            })
        });
        assert!(
            has_var,
            "{f}: no `datasource` template variable of type prometheus"
        );

        let mut ids = HashSet::new();
        let mut exprs = 0;
        for p in panels(&dash) {
            let id = p["id"]
                .as_u64()
                .unwrap_or_else(|| panic!("{f}: panel without numeric id: {}", p["title"]));
            assert!(ids.insert(id), "{f}: panel id {id} used twice");
            if p["type"] == "row" {
                continue;
            }
            let title = p["title"].as_str().unwrap_or("?");
            assert!(
                uses_variable(&p["datasource"]),
                "{f}: panel `{title}` datasource is not ${{datasource}}"
            );
            let targets = p["targets"]
                .as_array()
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| panic!("{f}: panel `{title}` has no targets"));
            for t in targets {
                let expr = t["expr"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{f}: panel `{title}` target without expr"));
                if !t["datasource"].is_null() {
                    assert!(
                        uses_variable(&t["datasource"]),
                        "{f}: panel `{title}` target datasource is not ${{datasource}}"
                    );
                }
                // Grafana's interval variables are not PromQL; substitute before parsing.
                let promql = expr
                    .replace("$__rate_interval", "5m")
                    .replace("$__interval", "1m");
                promql_parser::parser::parse(&promql).unwrap_or_else(|e| {
                    panic!("{f}: panel `{title}`: `{expr}` does not parse: {e}")
                });
                exprs += 1;
            }
        }
        assert!(exprs > 0, "{f}: no queries");
    }
}
