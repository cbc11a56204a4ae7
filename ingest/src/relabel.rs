//! Prometheus relabelling: `relabel_configs` (on discovered targets) and
//! `metric_relabel_configs` (on scraped samples), with Prometheus'
//! semantics.
//!
//! Regexes are fully anchored (`^(?s:<regex>)$`); `replacement` and
//! `target_label` expand `$1`, `${1}`, `$name`, `${name}` (and `$$` for a
//! literal `$`) as Go's `Regexp.Expand` does. Setting a label to the empty
//! string deletes it. `hashmod` takes the MD5 of the joined source values,
//! reads its last 8 bytes as a big-endian integer and keeps the remainder by
//! `modulus`, which is what Prometheus computes.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use md5::{Digest, Md5};
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::config::is_valid_label_name;

/// A label set being relabelled; `__name__` is a label like any other.
pub type LabelSet = BTreeMap<String, String>;

/// What a relabel rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Sets `target_label` to the expanded `replacement` when `regex`
    /// matches the joined `source_labels` (the default).
    #[default]
    Replace,
    /// Drops the label set unless `regex` matches the joined source values.
    Keep,
    /// Drops the label set when `regex` matches the joined source values.
    Drop,
    /// Drops the label set unless the joined source values equal
    /// `target_label`'s value.
    KeepEqual,
    /// Drops the label set when the joined source values equal
    /// `target_label`'s value.
    DropEqual,
    /// Sets `target_label` to the MD5 of the joined source values modulo
    /// `modulus`.
    HashMod,
    /// Copies every label whose name matches `regex` to the name given by
    /// `replacement`.
    LabelMap,
    /// Removes every label whose name matches `regex`.
    LabelDrop,
    /// Removes every label whose name does not match `regex`.
    LabelKeep,
    /// Sets `target_label` to the joined source values, lowercased.
    Lowercase,
    /// Sets `target_label` to the joined source values, uppercased.
    Uppercase,
}

impl Action {
    /// The name used in configuration files.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Replace => "replace",
            Action::Keep => "keep",
            Action::Drop => "drop",
            Action::KeepEqual => "keepequal",
            Action::DropEqual => "dropequal",
            Action::HashMod => "hashmod",
            Action::LabelMap => "labelmap",
            Action::LabelDrop => "labeldrop",
            Action::LabelKeep => "labelkeep",
            Action::Lowercase => "lowercase",
            Action::Uppercase => "uppercase",
        }
    }
}

/// The default `separator`.
pub const DEFAULT_SEPARATOR: &str = ";";
/// The default `regex`.
pub const DEFAULT_REGEX: &str = "(.*)";
/// The default `replacement`.
pub const DEFAULT_REPLACEMENT: &str = "$1";

fn default_separator() -> String {
    DEFAULT_SEPARATOR.to_string()
}

fn default_regex() -> String {
    DEFAULT_REGEX.to_string()
}

fn default_replacement() -> String {
    DEFAULT_REPLACEMENT.to_string()
}

/// One relabel rule, as written in `relabel_configs` or
/// `metric_relabel_configs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelabelConfig {
    /// Labels whose values are joined with `separator` and matched.
    #[serde(default)]
    pub source_labels: Vec<String>,
    /// Joins the source values (default `;`).
    #[serde(default = "default_separator")]
    pub separator: String,
    /// Regular expression, fully anchored (default `(.*)`).
    #[serde(default = "default_regex")]
    pub regex: String,
    /// Modulus of `hashmod`.
    #[serde(default)]
    pub modulus: u64,
    /// The label written by `replace`, `hashmod`, `lowercase`, `uppercase`,
    /// or compared by `keepequal`/`dropequal`.
    #[serde(default)]
    pub target_label: String,
    /// What `replace` and `labelmap` write (default `$1`).
    #[serde(default = "default_replacement")]
    pub replacement: String,
    /// The action (default `replace`).
    #[serde(default)]
    pub action: Action,
}

impl Default for RelabelConfig {
    fn default() -> Self {
        Self {
            source_labels: Vec::new(),
            separator: default_separator(),
            regex: default_regex(),
            modulus: 0,
            target_label: String::new(),
            replacement: default_replacement(),
            action: Action::Replace,
        }
    }
}

/// Names that may contain `$1`/`${name}` references (Prometheus'
/// `relabelTarget`).
static TEMPLATE_NAME: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$").ok());

fn is_template_name(s: &str) -> bool {
    TEMPLATE_NAME.as_ref().is_some_and(|r| r.is_match(s))
}

fn anchored(regex: &str) -> Result<Regex, regex::Error> {
    Regex::new(&format!("^(?s:{regex})$"))
}

impl RelabelConfig {
    /// Everything wrong with this rule, as (key, message saying the fix);
    /// `prefix` is its key, e.g. `scrape[0].relabel_configs[1]`.
    pub fn problems(&self, prefix: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let action = self.action.as_str();
        let mut push = |field: &str, msg: String| out.push((format!("{prefix}.{field}"), msg));
        if anchored(&self.regex).is_err() {
            // Report the error against the regex as written, on one line.
            let why = Regex::new(&self.regex).err().map_or_else(
                || "it cannot be anchored".to_string(),
                |e| {
                    let text = e.to_string();
                    text.lines()
                        .last()
                        .unwrap_or_default()
                        .trim_start_matches("error: ")
                        .to_string()
                },
            );
            push(
                "regex",
                format!(
                    "`{}` is not a valid regular expression ({why}); fix it",
                    self.regex
                ),
            );
        }
        for (i, name) in self.source_labels.iter().enumerate() {
            if !is_valid_label_name(name) {
                push(
                    &format!("source_labels[{i}]"),
                    format!("`{name}` is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)"),
                );
            }
        }
        let writes_target = matches!(
            self.action,
            Action::Replace
                | Action::HashMod
                | Action::Lowercase
                | Action::Uppercase
                | Action::KeepEqual
                | Action::DropEqual
        );
        let templated = self.target_label.contains('$');
        if writes_target && self.target_label.is_empty() {
            push(
                "target_label",
                format!("action `{action}` needs a target_label; set one"),
            );
        } else if writes_target {
            let ok = if self.action == Action::Replace && templated {
                is_template_name(&self.target_label)
            } else {
                is_valid_label_name(&self.target_label)
            };
            if !ok {
                push(
                    "target_label",
                    format!(
                        "`{}` is not a valid target_label for action `{action}`; use a label name{}",
                        self.target_label,
                        if self.action == Action::Replace {
                            " (it may contain $1 or ${name})"
                        } else {
                            ""
                        }
                    ),
                );
            }
        }
        if self.action == Action::HashMod && self.modulus == 0 {
            push(
                "modulus",
                "action `hashmod` needs a modulus greater than 0".to_string(),
            );
        }
        if matches!(
            self.action,
            Action::Lowercase | Action::Uppercase | Action::KeepEqual | Action::DropEqual
        ) && self.replacement != DEFAULT_REPLACEMENT
        {
            push(
                "replacement",
                format!("action `{action}` takes no replacement; remove it"),
            );
        }
        if self.action == Action::LabelMap && !is_template_name(&self.replacement) {
            push(
                "replacement",
                format!(
                    "`{}` is not a valid label name template for `labelmap`; e.g. \"$1\" or \"k8s_$1\"",
                    self.replacement
                ),
            );
        }
        if matches!(self.action, Action::KeepEqual | Action::DropEqual)
            && (self.regex != DEFAULT_REGEX
                || self.modulus != 0
                || self.separator != DEFAULT_SEPARATOR)
        {
            push(
                "action",
                format!(
                    "action `{action}` uses only source_labels and target_label; remove regex, modulus and separator"
                ),
            );
        }
        if matches!(self.action, Action::LabelDrop | Action::LabelKeep)
            && (!self.source_labels.is_empty()
                || !self.target_label.is_empty()
                || self.modulus != 0
                || self.separator != DEFAULT_SEPARATOR
                || self.replacement != DEFAULT_REPLACEMENT)
        {
            push(
                "action",
                format!("action `{action}` uses only regex; remove the other fields"),
            );
        }
        out
    }
}

/// Everything wrong with a list of rules; `prefix` is the list's key, e.g.
/// `scrape[0].relabel_configs`.
pub fn list_problems(prefix: &str, rules: &[RelabelConfig]) -> Vec<(String, String)> {
    rules
        .iter()
        .enumerate()
        .flat_map(|(i, r)| r.problems(&format!("{prefix}[{i}]")))
        .collect()
}

/// A relabel rule with its regex compiled.
#[derive(Debug, Clone)]
pub struct Relabeler {
    config: RelabelConfig,
    regex: Regex,
    /// `replace` fast path: default regex and no `$` in target/replacement.
    plain_replace: bool,
}

impl Relabeler {
    /// Compiles a rule; the error is the regex's.
    pub fn new(config: &RelabelConfig) -> Result<Self, regex::Error> {
        Ok(Self {
            regex: anchored(&config.regex)?,
            plain_replace: config.regex == DEFAULT_REGEX
                && !config.target_label.contains('$')
                && !config.replacement.contains('$'),
            config: config.clone(),
        })
    }

    /// Applies the rule; false means the label set is dropped.
    pub fn apply(&self, labels: &mut LabelSet) -> bool {
        let c = &self.config;
        let joined = || -> String {
            let values: Vec<&str> = c
                .source_labels
                .iter()
                .map(|n| labels.get(n).map_or("", String::as_str))
                .collect();
            values.join(&c.separator)
        };
        match c.action {
            Action::Drop => !self.regex.is_match(&joined()),
            Action::Keep => self.regex.is_match(&joined()),
            Action::DropEqual => {
                let val = joined();
                labels.get(&c.target_label).map_or("", String::as_str) != val
            }
            Action::KeepEqual => {
                let val = joined();
                labels.get(&c.target_label).map_or("", String::as_str) == val
            }
            Action::Replace => {
                let val = joined();
                if val.is_empty() && self.plain_replace {
                    set(labels, &c.target_label, c.replacement.clone());
                    return true;
                }
                let Some(caps) = self.regex.captures(&val) else {
                    return true;
                };
                let mut target = String::new();
                caps.expand(&c.target_label, &mut target);
                if !is_valid_label_name(&target) {
                    return true;
                }
                let mut res = String::new();
                caps.expand(&c.replacement, &mut res);
                set(labels, &target, res);
                true
            }
            Action::Lowercase => {
                let val = joined().to_lowercase();
                set(labels, &c.target_label, val);
                true
            }
            Action::Uppercase => {
                let val = joined().to_uppercase();
                set(labels, &c.target_label, val);
                true
            }
            Action::HashMod => {
                let digest = Md5::digest(joined().as_bytes());
                let mut last = [0u8; 8];
                last.copy_from_slice(&digest[8..16]);
                let m = u64::from_be_bytes(last) % c.modulus.max(1);
                set(labels, &c.target_label, m.to_string());
                true
            }
            Action::LabelMap => {
                let snapshot: Vec<(String, String)> =
                    labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                for (name, value) in snapshot {
                    if self.regex.is_match(&name) {
                        let new = self
                            .regex
                            .replace_all(&name, c.replacement.as_str())
                            .into_owned();
                        if is_valid_label_name(&new) {
                            set(labels, &new, value);
                        }
                    }
                }
                true
            }
            Action::LabelDrop => {
                labels.retain(|name, _| !self.regex.is_match(name));
                true
            }
            Action::LabelKeep => {
                labels.retain(|name, _| self.regex.is_match(name));
                true
            }
        }
    }
}

/// Sets a label; an empty value deletes it (Prometheus' `labels.Builder`).
fn set(labels: &mut LabelSet, name: &str, value: String) {
    if value.is_empty() {
        labels.remove(name);
    } else {
        labels.insert(name.to_string(), value);
    }
}

/// Compiles a list of rules; the error names the first rule that does not
/// compile.
pub fn compile(rules: &[RelabelConfig]) -> Result<Vec<Relabeler>, (usize, regex::Error)> {
    rules
        .iter()
        .enumerate()
        .map(|(i, r)| Relabeler::new(r).map_err(|e| (i, e)))
        .collect()
}

/// Applies `rules` in order. Returns false when a rule dropped the label
/// set or when it ended up empty (both mean: drop).
pub fn process(rules: &[Relabeler], labels: &mut LabelSet) -> bool {
    for rule in rules {
        if !rule.apply(labels) {
            return false;
        }
    }
    !labels.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ls(pairs: &[(&str, &str)]) -> LabelSet {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn rule(yaml: &str) -> Relabeler {
        let c: RelabelConfig = serde_yaml::from_str(yaml).expect("valid rule");
        assert!(c.problems("r").is_empty(), "{:?}", c.problems("r"));
        Relabeler::new(&c).expect("compiles")
    }

    fn run(yaml: &str, pairs: &[(&str, &str)]) -> Option<LabelSet> {
        let mut l = ls(pairs);
        process(&[rule(yaml)], &mut l).then_some(l)
    }

    #[test]
    fn replace_with_capture_groups() {
        // Prometheus docs: extract the host from __address__.
        let out = run(
            "source_labels: [__address__]\nregex: '(.*):(\\d+)'\ntarget_label: host\nreplacement: '${1}_port_$2'",
            &[("__address__", "db1:9100")],
        )
        .expect("kept");
        assert_eq!(out.get("host").map(String::as_str), Some("db1_port_9100"));
    }

    #[test]
    fn replace_is_fully_anchored_and_no_match_changes_nothing() {
        let yaml = "source_labels: [env]\nregex: prod\ntarget_label: tier\nreplacement: gold";
        let out = run(yaml, &[("env", "preprod")]).expect("kept");
        assert_eq!(out.get("tier"), None, "unanchored match must not count");
        let out = run(yaml, &[("env", "prod")]).expect("kept");
        assert_eq!(out.get("tier").map(String::as_str), Some("gold"));
    }

    #[test]
    fn replace_joins_with_separator_and_empty_result_deletes() {
        let out = run(
            "source_labels: [a, b]\nseparator: '-'\ntarget_label: ab",
            &[("a", "x"), ("b", "y")],
        )
        .expect("kept");
        assert_eq!(out.get("ab").map(String::as_str), Some("x-y"));
        // `(.*)` on an empty value writes the empty `$1`: deletes the label.
        let out = run(
            "source_labels: [missing]\nregex: '(.*)'\ntarget_label: t\nreplacement: '$1'",
            &[("t", "old"), ("other", "1")],
        )
        .expect("kept");
        assert_eq!(out.get("t"), None);
        // Fast path: a constant replacement is set even from no sources.
        let out = run("target_label: team\nreplacement: infra", &[("x", "1")]).expect("kept");
        assert_eq!(out.get("team").map(String::as_str), Some("infra"));
    }

    #[test]
    fn replace_with_templated_target_and_invalid_target_is_ignored() {
        let out = run(
            "source_labels: [k]\nregex: '(\\w+)=(\\w+)'\ntarget_label: 'x_$1'\nreplacement: '$2'",
            &[("k", "color=red")],
        )
        .expect("kept");
        assert_eq!(out.get("x_color").map(String::as_str), Some("red"));
        let mut l = ls(&[("k", "1bad")]);
        let r = Relabeler::new(&RelabelConfig {
            source_labels: vec!["k".into()],
            target_label: "${1}".into(),
            ..RelabelConfig::default()
        })
        .expect("compiles");
        assert!(r.apply(&mut l));
        assert_eq!(l, ls(&[("k", "1bad")]), "`1bad` is no label name");
    }

    #[test]
    fn keep_and_drop() {
        let keep = "source_labels: [__meta_role]\nregex: web|api\naction: keep";
        assert!(run(keep, &[("__meta_role", "web")]).is_some());
        assert!(run(keep, &[("__meta_role", "webx")]).is_none());
        assert!(run(keep, &[("x", "1")]).is_none(), "missing label is ''");
        let drop = "source_labels: [__name__]\nregex: 'go_.*'\naction: drop";
        assert!(run(drop, &[("__name__", "go_goroutines")]).is_none());
        assert!(run(drop, &[("__name__", "http_go_x")]).is_some());
    }

    #[test]
    fn keepequal_and_dropequal() {
        let keep = "source_labels: [__meta_port]\ntarget_label: __port\naction: keepequal";
        assert!(run(keep, &[("__meta_port", "80"), ("__port", "80")]).is_some());
        assert!(run(keep, &[("__meta_port", "80"), ("__port", "81")]).is_none());
        let drop = "source_labels: [a]\ntarget_label: b\naction: dropequal";
        assert!(run(drop, &[("a", "1"), ("b", "1")]).is_none());
        assert!(run(drop, &[("a", "1"), ("b", "2")]).is_some());
    }

    #[test]
    fn labelmap_copies_meta_labels() {
        // Prometheus docs: map Kubernetes labels to target labels.
        let out = run(
            "regex: __meta_kubernetes_pod_label_(.+)\naction: labelmap",
            &[
                ("__meta_kubernetes_pod_label_app", "shop"),
                ("__meta_kubernetes_pod_label_tier", "front"),
                ("__address__", "a:1"),
            ],
        )
        .expect("kept");
        assert_eq!(out.get("app").map(String::as_str), Some("shop"));
        assert_eq!(out.get("tier").map(String::as_str), Some("front"));
        assert_eq!(
            out.get("__meta_kubernetes_pod_label_app")
                .map(String::as_str),
            Some("shop"),
            "labelmap copies, it does not move"
        );
        let out = run(
            "regex: 'team_(.+)'\nreplacement: 'owner_$1'\naction: labelmap",
            &[("team_x", "a")],
        )
        .expect("kept");
        assert_eq!(out.get("owner_x").map(String::as_str), Some("a"));
    }

    #[test]
    fn labeldrop_and_labelkeep() {
        let out = run(
            "regex: 'tmp_.*'\naction: labeldrop",
            &[("tmp_a", "1"), ("tmp_b", "2"), ("keep", "3")],
        )
        .expect("kept");
        assert_eq!(out, ls(&[("keep", "3")]));
        let out = run(
            "regex: '__name__|job|instance'\naction: labelkeep",
            &[
                ("__name__", "up"),
                ("job", "j"),
                ("pod", "p"),
                ("instance", "i"),
            ],
        )
        .expect("kept");
        assert_eq!(
            out,
            ls(&[("__name__", "up"), ("instance", "i"), ("job", "j")])
        );
        assert!(
            run("regex: '.*'\naction: labeldrop", &[("a", "1")]).is_none(),
            "an empty label set is dropped"
        );
    }

    #[test]
    fn hashmod_matches_prometheus() {
        // md5("a:1") = 9ef12b2e76052ea01bf394a79518fe90; its last 8 bytes
        // 1bf394a79518fe90 = 2014116905846636176, % 10 = 6, % 7 = 5.
        let digest = Md5::digest(b"a:1");
        assert_eq!(
            digest
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
            "9ef12b2e76052ea01bf394a79518fe90"
        );
        let yaml = |m: u64| {
            format!(
                "source_labels: [__address__]\nmodulus: {m}\ntarget_label: __tmp_hash\naction: hashmod"
            )
        };
        let out = run(&yaml(10), &[("__address__", "a:1")]).expect("kept");
        assert_eq!(out.get("__tmp_hash").map(String::as_str), Some("6"));
        let out = run(&yaml(7), &[("__address__", "a:1")]).expect("kept");
        assert_eq!(out.get("__tmp_hash").map(String::as_str), Some("5"));
        // Prometheus docs' sharding: keep only the shard of this process.
        let rules = [
            rule(&yaml(2)),
            rule("source_labels: [__tmp_hash]\nregex: '1'\naction: keep"),
        ];
        let kept: usize = (0..100)
            .filter(|i| {
                let mut l = ls(&[("__address__", &format!("h{i}:9100"))]);
                process(&rules, &mut l)
            })
            .count();
        assert!((30..=70).contains(&kept), "{kept} of 100 in shard 1");
    }

    #[test]
    fn lowercase_and_uppercase() {
        let out = run(
            "source_labels: [Env]\ntarget_label: env\naction: lowercase",
            &[("Env", "PROD")],
        )
        .expect("kept");
        assert_eq!(out.get("env").map(String::as_str), Some("prod"));
        let out = run(
            "source_labels: [env]\ntarget_label: ENV\naction: uppercase",
            &[("env", "prod")],
        )
        .expect("kept");
        assert_eq!(out.get("ENV").map(String::as_str), Some("PROD"));
    }

    #[test]
    fn dot_matches_newline_and_dollar_dollar_is_literal() {
        let out = run(
            "source_labels: [m]\nregex: '(.*)'\ntarget_label: t\nreplacement: '$$$1'",
            &[("m", "a\nb")],
        )
        .expect("kept");
        assert_eq!(out.get("t").map(String::as_str), Some("$a\nb"));
    }

    #[test]
    fn problems_are_reported_under_their_keys() {
        let bad = |yaml: &str| -> Vec<String> {
            let c: RelabelConfig = serde_yaml::from_str(yaml).expect("parses");
            c.problems("scrape[0].relabel_configs[1]")
                .into_iter()
                .map(|(k, _)| k)
                .collect()
        };
        assert_eq!(
            bad("regex: '('\naction: keep"),
            ["scrape[0].relabel_configs[1].regex"]
        );
        let c: RelabelConfig = serde_yaml::from_str("regex: 'a('").expect("parses");
        let msg = &c.problems("r")[0].1;
        assert!(
            msg.contains("unclosed group") && !msg.contains('\n'),
            "{msg}"
        );
        assert_eq!(
            bad("action: replace"),
            ["scrape[0].relabel_configs[1].target_label"]
        );
        assert_eq!(
            bad("action: hashmod\ntarget_label: t"),
            ["scrape[0].relabel_configs[1].modulus"]
        );
        assert_eq!(
            bad("action: labeldrop\nregex: x\ntarget_label: t"),
            ["scrape[0].relabel_configs[1].action"]
        );
        assert_eq!(
            bad("action: lowercase\ntarget_label: 'a-b'"),
            ["scrape[0].relabel_configs[1].target_label"]
        );
        assert_eq!(
            bad("source_labels: ['a b']\naction: keep"),
            ["scrape[0].relabel_configs[1].source_labels[0]"]
        );
        assert!(bad("action: labelmap\nregex: 'x_(.*)'").is_empty());
        assert!(serde_yaml::from_str::<RelabelConfig>("action: explode").is_err());
        assert!(serde_yaml::from_str::<RelabelConfig>("regexp: x").is_err());
    }

    fn action() -> impl Strategy<Value = Action> {
        prop::sample::select(vec![
            Action::Replace,
            Action::Keep,
            Action::Drop,
            Action::KeepEqual,
            Action::DropEqual,
            Action::HashMod,
            Action::LabelMap,
            Action::LabelDrop,
            Action::LabelKeep,
            Action::Lowercase,
            Action::Uppercase,
        ])
    }

    proptest! {
        #[test]
        fn relabelling_never_panics(
            labels in prop::collection::btree_map("[a-z_]{1,4}", ".{1,6}", 0..6),
            regex in "[a-z_.*+?()|$^\\\\1]{0,8}",
            sources in prop::collection::vec("[a-z_]{1,4}", 0..3),
            separator in ".{0,2}",
            target in "[a-z_$1{}]{0,5}",
            replacement in "[a-z_$1{}]{0,6}",
            modulus in 0u64..5,
            action in action(),
        ) {
            let config = RelabelConfig {
                source_labels: sources,
                separator,
                regex,
                modulus,
                target_label: target,
                replacement,
                action,
            };
            if let Ok(r) = Relabeler::new(&config) {
                let mut l = labels.clone();
                let kept = process(std::slice::from_ref(&r), &mut l);
                prop_assert!(l.values().all(|v| !v.is_empty()), "no empty value: {l:?}");
                if matches!(action, Action::LabelDrop | Action::LabelKeep) {
                    prop_assert!(l.keys().all(|k| labels.contains_key(k)));
                }
                if kept {
                    prop_assert!(!l.is_empty());
                }
            }
        }
    }
}
