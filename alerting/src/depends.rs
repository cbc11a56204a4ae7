//! Dependency-aware suppression: one failing hypervisor pages once, not
//! once per VM.
//!
//! `[alerting.dependencies]` ([`DependencyConfig`]) says which alerts
//! depend on which, two ways that combine:
//!
//! - by labels, as levels ([`LevelConfig`]): "the child's label X names
//!   the parent whose label Y equals it", e.g. a VM alert's
//!   `hypervisor="hv-3"` names the hypervisor whose alerts carry
//!   `host="hv-3"` (or `instance="hv-3:9100"`, with `strip_port`);
//! - by a static map file of parent → children names ([`map`]), for what
//!   labels do not carry, re-read when it changes.
//!
//! A firing alert that matches `parent_matchers` (by default
//! `severity="critical"`) is *down*. While an alert depends, directly or
//! through a chain of down alerts (host → hypervisor → instance →
//! service), on a down alert, it is suppressed: left out of
//! notifications and recorded once in the history as `suppressed`, the
//! detail naming the parent alert at the top of the chain. That parent's
//! notification carries how many dependents it suppresses (annotation
//! [`ANNOTATION`], the webhook's `dependentsSuppressed`, a line of the
//! email and Slack text). Alerts that depend on each other (a cycle in
//! the labels) never suppress each other.
//!
//! When the parent resolves, dependents still firing are notified at their
//! group's next flush, once. The resolution of a suppressed alert is sent
//! only to targets that were told it fired (before its parent went down),
//! as with inhibition.

pub mod map;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use regex::Regex;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};
use vigie_model::Labels;

use crate::alertmanager::parse_matchers;
use crate::metrics::DEPENDENCY_MAP_ERRORS;
use crate::notify::{GroupStatus, Notification};
use crate::silence::{Matcher, all_match, valid_label_name};
use map::MapFile;

/// The annotation added to a notified alert that suppresses dependents:
/// their number.
pub const ANNOTATION: &str = "dependents_suppressed";

/// The default `parent_matchers`: Vigie's rules page on `critical`.
pub const DEFAULT_PARENT_MATCHERS: &str = "severity=\"critical\"";

/// `[alerting.dependencies]`: which alerts depend on which.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DependencyConfig {
    /// Matchers (Alertmanager syntax, every one must hold) a firing alert
    /// must satisfy to count as its entity being down and suppress the
    /// dependents; `[]`: any firing alert.
    pub parent_matchers: Vec<String>,
    /// Label levels, child to parent (`[[alerting.dependencies.levels]]`).
    pub levels: Vec<LevelConfig>,
    /// A static map file, parent → children names (YAML, or TOML when it
    /// ends in `.toml`), relative to the working directory; re-read when
    /// it changes.
    pub map_file: Option<PathBuf>,
    /// The labels that name an alert's entity in `map_file`: the first
    /// one the alert carries.
    pub map_labels: Vec<String>,
    /// Whether a `:port` suffix is cut from `map_labels` values
    /// (`instance="vm-1:9100"` names `vm-1`).
    pub map_strip_port: bool,
}

impl DependencyConfig {
    /// Everything wrong with this configuration and its map file, as
    /// `(key, message)` pairs whose message says how to fix it.
    pub fn problems(&self) -> Vec<(String, String)> {
        Dependencies::build(self).err().unwrap_or_default()
    }
}

impl Default for DependencyConfig {
    fn default() -> Self {
        Self {
            parent_matchers: vec![DEFAULT_PARENT_MATCHERS.to_string()],
            levels: Vec::new(),
            map_file: None,
            map_labels: vec!["host".to_string(), "instance".to_string()],
            map_strip_port: true,
        }
    }
}

/// One level of the dependency chain: alerts whose `child_label` (after
/// `child_regex` and `strip_port`) equals the `parent_label` (after
/// `parent_regex` and `strip_port`) of a down alert depend on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelConfig {
    /// The child's label that names its parent, e.g. `hypervisor`.
    pub child_label: String,
    /// A regular expression (anchored) the child's value must match; its
    /// first capture group, else the whole match, is the parent's name.
    #[serde(default)]
    pub child_regex: Option<String>,
    /// The parent's label holding its name, e.g. `host`.
    pub parent_label: String,
    /// Like `child_regex`, for the parent's value.
    #[serde(default)]
    pub parent_regex: Option<String>,
    /// Whether a `:port` suffix is cut from both values
    /// (`instance="hv-3:9100"` is `hv-3`).
    #[serde(default)]
    pub strip_port: bool,
    /// Only alerts matching these are children at this level (`[]`: every
    /// alert carrying `child_label`).
    #[serde(default)]
    pub child_matchers: Vec<String>,
    /// Replaces `parent_matchers` for the parents of this level.
    #[serde(default)]
    pub parent_matchers: Option<Vec<String>>,
}

/// Cuts a `:port` suffix: `hv-3:9100` → `hv-3`, `[::1]:9100` → `::1`;
/// values without a port (`hv-3`, a bare IPv6 address) are kept.
pub fn strip_port(v: &str) -> &str {
    let is_port = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if let Some(rest) = v.strip_prefix('[') {
        return match rest.split_once("]:") {
            Some((host, port)) if is_port(port) => host,
            _ => v,
        };
    }
    match v.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !host.contains(':') && is_port(port) => host,
        _ => v,
    }
}

/// How a name is read from one label.
#[derive(Debug, Clone)]
struct Extract {
    label: String,
    regex: Option<Regex>,
    strip_port: bool,
}

impl Extract {
    fn name<'a>(&self, labels: &'a Labels) -> Option<&'a str> {
        let mut v = labels.get(&self.label)?;
        if let Some(re) = &self.regex {
            let caps = re.captures(v)?;
            v = caps.get(1).or_else(|| caps.get(0))?.as_str();
        }
        if self.strip_port {
            v = strip_port(v);
        }
        (!v.is_empty()).then_some(v)
    }
}

#[derive(Debug, Clone)]
struct Level {
    child: Extract,
    parent: Extract,
    child_matchers: Vec<Matcher>,
    down: Vec<Matcher>,
}

/// What the last [`Dependencies::observe`] found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct View {
    /// Suppressed firing alerts (fingerprint) and why.
    pub suppressed: BTreeMap<String, String>,
    /// Per alert at the top of a chain, how many alerts it suppresses.
    pub dependents: BTreeMap<String, usize>,
}

/// The compiled dependency rules, the static map, and which alerts they
/// suppress.
#[derive(Debug, Default)]
pub struct Dependencies {
    down: Vec<Matcher>,
    levels: Vec<Level>,
    map: Option<MapFile>,
    map_names: Vec<Extract>,
    view: View,
    /// Alerts seen suppressed while firing, and why: their resolution is
    /// sent only to targets told they fired.
    seen: BTreeMap<String, String>,
}

impl Dependencies {
    /// Compiles `config` and reads its map file; every problem as
    /// `(key, message)`, the message saying how to fix it.
    pub fn build(config: &DependencyConfig) -> Result<Self, Vec<(String, String)>> {
        const KEY: &str = "alerting.dependencies";
        let mut problems = Vec::new();
        let down = matchers(
            format!("{KEY}.parent_matchers"),
            &config.parent_matchers,
            &mut problems,
        );
        let mut levels = Vec::new();
        for (i, l) in config.levels.iter().enumerate() {
            let k = format!("{KEY}.levels[{i}]");
            let child = extract_at(
                format!("{k}.child_label"),
                &l.child_label,
                l.child_regex.as_ref(),
                l.strip_port,
                &mut problems,
            );
            let parent = extract_at(
                format!("{k}.parent_label"),
                &l.parent_label,
                l.parent_regex.as_ref(),
                l.strip_port,
                &mut problems,
            );
            let child_matchers = matchers(
                format!("{k}.child_matchers"),
                &l.child_matchers,
                &mut problems,
            );
            let level_down = match &l.parent_matchers {
                Some(list) => matchers(format!("{k}.parent_matchers"), list, &mut problems),
                None => down.clone(),
            };
            levels.push(Level {
                child,
                parent,
                child_matchers,
                down: level_down,
            });
        }
        let mut map = None;
        let mut map_names = Vec::new();
        if let Some(path) = &config.map_file {
            if config.map_labels.is_empty() {
                problems.push((
                    format!("{KEY}.map_labels"),
                    "map_file needs at least one label naming an alert's entity, e.g. [\"host\", \"instance\"]".into(),
                ));
            }
            for (i, label) in config.map_labels.iter().enumerate() {
                map_names.push(extract_at(
                    format!("{KEY}.map_labels[{i}]"),
                    label,
                    None,
                    config.map_strip_port,
                    &mut problems,
                ));
            }
            match MapFile::load(path) {
                Ok(m) => map = Some(m),
                Err(e) => problems.push((format!("{KEY}.map_file"), e.to_string())),
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self {
            down,
            levels,
            map,
            map_names,
            view: View::default(),
            seen: BTreeMap::new(),
        })
    }

    /// [`Dependencies::build`], logging the problems and suppressing
    /// nothing if there are any (start-up checks them first, see
    /// [`crate::AlertingConfig::problems`]).
    pub fn from_config(config: &DependencyConfig) -> Self {
        match Self::build(config) {
            Ok(d) => {
                if d.is_active() {
                    info!(
                        levels = d.levels.len(),
                        map_edges = d.map.as_ref().map_or(0, |m| m.map().edges()),
                        "dependency-aware suppression on"
                    );
                }
                d
            }
            Err(problems) => {
                for (key, message) in problems {
                    DEPENDENCY_MAP_ERRORS.inc();
                    warn!(%key, %message, "dependency configuration unusable; nothing is suppressed by dependency");
                }
                Self::default()
            }
        }
    }

    /// Whether any level or a map is configured.
    pub fn is_active(&self) -> bool {
        !self.levels.is_empty() || self.map.is_some()
    }

    /// Re-reads the map file if it changed, then works out which of the
    /// `firing` alerts (fingerprint → labels) are suppressed and by what.
    pub fn observe(&mut self, firing: &BTreeMap<String, Labels>) {
        if !self.is_active() {
            return;
        }
        if let Some(m) = &mut self.map {
            match m.refresh() {
                None => {}
                Some(Ok(())) => info!(
                    file = %m.path().display(),
                    edges = m.map().edges(),
                    "dependency map reloaded"
                ),
                Some(Err(error)) => {
                    DEPENDENCY_MAP_ERRORS.inc();
                    warn!(%error, "dependency map not reloaded; the previous one stays in effect");
                }
            }
        }
        self.view = self.compute(firing);
        for (fp, why) in &self.view.suppressed {
            self.seen.insert(fp.clone(), why.clone());
        }
    }

    /// The last [`Dependencies::observe`]'s findings.
    pub fn view(&self) -> &View {
        &self.view
    }

    /// Why the alert `fp` is left out of notifications, if it is: while
    /// firing, because something it depends on is down; once resolved,
    /// because it was suppressed while it fired.
    pub fn suppressed(&self, fp: &str, resolved: bool) -> Option<&str> {
        let why = if resolved {
            self.seen.get(fp)
        } else {
            self.view.suppressed.get(fp)
        };
        why.map(String::as_str)
    }

    /// How many alerts the firing alert `fp` suppresses.
    pub fn dependents(&self, fp: &str) -> usize {
        self.view.dependents.get(fp).copied().unwrap_or(0)
    }

    /// `annotations` of alert `fp`, with [`ANNOTATION`] added when it fires
    /// and suppresses dependents.
    pub fn annotate(&self, fp: &str, firing: bool, annotations: Labels) -> Labels {
        match self.dependents(fp) {
            n if firing && n > 0 => annotations.with(ANNOTATION, n.to_string()),
            _ => annotations,
        }
    }

    /// Forgets the alerts seen suppressed that are no longer `held`.
    pub fn forget(&mut self, held: impl Fn(&str) -> bool) {
        self.seen.retain(|fp, _| held(fp));
    }

    /// The name of an alert in the static map.
    fn map_name<'a>(&self, labels: &'a Labels) -> Option<&'a str> {
        self.map_names.iter().find_map(|e| e.name(labels))
    }

    fn compute(&self, firing: &BTreeMap<String, Labels>) -> View {
        // Down alerts by the name they go by, per level and in the map.
        let mut by_level: Vec<HashMap<&str, Vec<&str>>> = vec![HashMap::new(); self.levels.len()];
        for (level, index) in self.levels.iter().zip(by_level.iter_mut()) {
            for (fp, labels) in firing {
                if all_match(&level.down, labels)
                    && let Some(name) = level.parent.name(labels)
                {
                    index.entry(name).or_default().push(fp);
                }
            }
        }
        let mut by_name: HashMap<&str, Vec<&str>> = HashMap::new();
        if self.map.is_some() {
            for (fp, labels) in firing {
                if all_match(&self.down, labels)
                    && let Some(name) = self.map_name(labels)
                {
                    by_name.entry(name).or_default().push(fp);
                }
            }
        }
        // Each alert's direct parents.
        let mut parents: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for (fp, labels) in firing {
            let mut ps: BTreeSet<&str> = BTreeSet::new();
            for (level, index) in self.levels.iter().zip(&by_level) {
                if all_match(&level.child_matchers, labels)
                    && let Some(name) = level.child.name(labels)
                    && let Some(found) = index.get(name)
                {
                    ps.extend(found);
                }
            }
            if let (Some(m), Some(name)) = (&self.map, self.map_name(labels)) {
                for ancestor in m.map().ancestors(name) {
                    if let Some(found) = by_name.get(ancestor) {
                        ps.extend(found);
                    }
                }
            }
            ps.remove(fp.as_str());
            if !ps.is_empty() {
                parents.insert(fp, ps);
            }
        }
        // Transitive ancestors.
        let mut ancestors: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for &fp in parents.keys() {
            let mut seen: BTreeSet<&str> = BTreeSet::new();
            let mut stack: Vec<&str> = vec![fp];
            while let Some(n) = stack.pop() {
                for &p in parents.get(n).into_iter().flatten() {
                    if seen.insert(p) {
                        stack.push(p);
                    }
                }
            }
            ancestors.insert(fp, seen);
        }
        let empty = BTreeSet::new();
        let anc = |fp: &str| ancestors.get(fp).unwrap_or(&empty);
        // Suppressing ancestors: those that do not depend back on the alert.
        let above = |fp: &str| -> Vec<&str> {
            anc(fp)
                .iter()
                .copied()
                .filter(|p| !anc(p).contains(fp))
                .collect()
        };
        let suppressed: BTreeSet<&str> = ancestors
            .keys()
            .copied()
            .filter(|fp| !above(fp).is_empty())
            .collect();
        let mut view = View::default();
        for &fp in &suppressed {
            // The top of the chain: suppressing ancestors not suppressed.
            let roots: Vec<&str> = above(fp)
                .into_iter()
                .filter(|p| !suppressed.contains(p))
                .collect();
            let named: Vec<String> = roots
                .iter()
                .map(|p| self.describe(p, firing.get(*p)))
                .collect();
            for p in roots {
                *view.dependents.entry(p.to_string()).or_default() += 1;
            }
            view.suppressed
                .insert(fp.to_string(), format!("depends on {}", named.join(", ")));
        }
        view
    }

    /// `alertname{label="value"} (fingerprint)`, the label being the first
    /// parent or map label the alert carries.
    fn describe(&self, fp: &str, labels: Option<&Labels>) -> String {
        let Some(labels) = labels else {
            return fp.to_string();
        };
        let name = labels.get("alertname").unwrap_or("alert");
        let key = self
            .levels
            .iter()
            .map(|l| &l.parent.label)
            .chain(self.map_names.iter().map(|e| &e.label))
            .find_map(|k| labels.get(k).map(|v| format!("{{{k}={v:?}}}")))
            .unwrap_or_default();
        format!("{name}{key} ({fp})")
    }
}

/// Parses the matcher lists of `list` (key `key`), reporting bad ones.
fn matchers(key: String, list: &[String], problems: &mut Vec<(String, String)>) -> Vec<Matcher> {
    let mut out = Vec::new();
    for (i, s) in list.iter().enumerate() {
        match parse_matchers(s) {
            Ok(ms) => out.extend(ms),
            Err(e) => problems.push((
                format!("{key}[{i}]"),
                format!("{e}; write matchers as in Alertmanager, e.g. 'severity=\"critical\"'"),
            )),
        }
    }
    out
}

/// Compiles how a name is read from `label` (at `key`, a `*_label` key).
fn extract_at(
    key: String,
    label: &str,
    regex: Option<&String>,
    strip_port: bool,
    problems: &mut Vec<(String, String)>,
) -> Extract {
    if !valid_label_name(label) {
        problems.push((
            key.clone(),
            format!(
                "{label:?} is not a label name (letters, digits and _, not starting with a digit)"
            ),
        ));
    }
    let regex = regex.and_then(|re| match Regex::new(&format!("^(?:{re})$")) {
        Ok(r) => Some(r),
        Err(e) => {
            problems.push((
                key.replace("_label", "_regex"),
                format!("invalid regular expression {re:?}: {e}; e.g. \"(.+):[0-9]+\" keeps what precedes the port"),
            ));
            None
        }
    });
    Extract {
        label: label.to_string(),
        regex,
        strip_port,
    }
}

/// The number of dependents a notification's firing alerts suppress
/// (the sum of their [`ANNOTATION`]s).
pub fn dependents_suppressed(n: &Notification) -> u64 {
    n.alerts
        .iter()
        .filter(|a| a.status == GroupStatus::Firing)
        .filter_map(|a| a.annotations.get(ANNOTATION)?.parse::<u64>().ok())
        .sum()
}

/// The line the email and Slack texts carry, if any dependents are
/// suppressed: `20 dependents suppressed`.
pub fn dependents_line(n: &Notification) -> Option<String> {
    match dependents_suppressed(n) {
        0 => None,
        1 => Some("1 dependent suppressed".to_string()),
        k => Some(format!("{k} dependents suppressed")),
    }
}

#[cfg(test)]
mod tests;
