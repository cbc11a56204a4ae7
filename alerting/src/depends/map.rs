//! The static dependency map: a YAML or TOML file that maps each parent
//! name to the names of its children, for what alert labels do not carry.
//!
//! ```yaml
//! hv-3: [vm-1, vm-2]   # VMs on hypervisor hv-3
//! vm-1: [db-primary]   # a service on vm-1
//! ```
//!
//! A file ending in `.toml` is read as TOML (`hv-3 = ["vm-1", "vm-2"]`),
//! any other as YAML. Chains are transitive (db-primary depends on vm-1
//! and hv-3); a cycle is an error. [`MapFile`] re-reads the file when its
//! modification time or size changes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// What is wrong with a dependency map file; each message names the file,
/// the key and the fix.
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    /// The file cannot be read.
    #[error(
        "{file}: cannot read the dependency map: {source}; check the path (relative to the working directory) and its permissions"
    )]
    Read {
        /// The file.
        file: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a map of names to lists of names.
    #[error(
        "{file}: {message}; the file maps each parent to the list of its children, e.g. `hv-3: [vm-1, vm-2]` (TOML: `hv-3 = [\"vm-1\", \"vm-2\"]`)"
    )]
    Syntax {
        /// The file.
        file: String,
        /// The parser's message (with line and column).
        message: String,
    },
    /// The map is readable but not usable.
    #[error("{file}: key {key:?}: {message}")]
    Invalid {
        /// The file.
        file: String,
        /// The parent name at fault.
        key: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}

/// A parsed, checked dependency map: for each child name, every ancestor.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DependencyMap {
    ancestors: BTreeMap<String, BTreeSet<String>>,
    edges: usize,
}

impl DependencyMap {
    /// Parses `text` of `file` (TOML when `file` ends in `.toml`, else
    /// YAML) and checks it: no empty name, no cycle.
    pub fn parse(text: &str, file: &str) -> Result<Self, MapError> {
        let syntax = |message: String| MapError::Syntax {
            file: file.to_string(),
            message,
        };
        let children: BTreeMap<String, Vec<String>> = if file.ends_with(".toml") {
            toml::from_str(text).map_err(|e| syntax(e.to_string().trim().to_string()))?
        } else {
            // An empty file (or only comments) is an empty map.
            serde_yaml::from_str::<Option<BTreeMap<String, Vec<String>>>>(text)
                .map_err(|e| syntax(e.to_string()))?
                .unwrap_or_default()
        };
        Self::from_children(children, file)
    }

    /// A map from parent → children pairs, checked like [`DependencyMap::parse`].
    pub fn from_children(
        children: BTreeMap<String, Vec<String>>,
        file: &str,
    ) -> Result<Self, MapError> {
        let invalid = |key: &str, message: String| MapError::Invalid {
            file: file.to_string(),
            key: key.to_string(),
            message,
        };
        let mut parents: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        let mut edges = 0;
        for (parent, kids) in &children {
            if parent.trim().is_empty() {
                return Err(invalid(
                    parent,
                    "empty parent name; remove the entry".into(),
                ));
            }
            for kid in kids {
                if kid.trim().is_empty() {
                    return Err(invalid(
                        parent,
                        "an empty child name in the list; remove it".into(),
                    ));
                }
                if kid == parent {
                    return Err(invalid(
                        parent,
                        format!("{parent:?} lists itself as a child; remove it from its own list"),
                    ));
                }
                if parents.entry(kid).or_default().insert(parent) {
                    edges += 1;
                }
            }
        }
        if let Some(cycle) = find_cycle(&parents) {
            return Err(invalid(
                &cycle[0],
                format!(
                    "dependency cycle {}; a parent cannot depend on its own children: remove one of these edges",
                    cycle.join(" → ")
                ),
            ));
        }
        let mut ancestors = BTreeMap::new();
        for kid in parents.keys() {
            let mut seen = BTreeSet::new();
            let mut stack: Vec<&str> = vec![kid];
            while let Some(n) = stack.pop() {
                for p in parents.get(n).into_iter().flatten() {
                    if seen.insert(p.to_string()) {
                        stack.push(p);
                    }
                }
            }
            ancestors.insert(kid.to_string(), seen);
        }
        Ok(Self { ancestors, edges })
    }

    /// Every ancestor of `name` (its parents, theirs, ...), none if the map
    /// does not list it as a child.
    pub fn ancestors(&self, name: &str) -> impl Iterator<Item = &str> {
        self.ancestors
            .get(name)
            .into_iter()
            .flatten()
            .map(String::as_str)
    }

    /// Number of parent → child edges.
    pub fn edges(&self) -> usize {
        self.edges
    }
}

/// A cycle in the child → parents graph, as parent names from the top
/// down (first name repeated at the end), if there is one.
fn find_cycle(parents: &BTreeMap<&str, BTreeSet<&str>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    let mut marks: BTreeMap<&str, Mark> = BTreeMap::new();
    for &start in parents.keys() {
        if marks.contains_key(start) {
            continue;
        }
        // Iterative depth-first search; `path` is the current chain.
        let mut path: Vec<&str> = vec![start];
        let mut iters = vec![parents.get(start).into_iter().flatten()];
        marks.insert(start, Mark::Open);
        while let Some(it) = iters.last_mut() {
            match it.next() {
                Some(&p) => match marks.get(p) {
                    Some(Mark::Open) => {
                        // p → ... → current → p, shown parent first.
                        let at = path.iter().position(|n| *n == p).unwrap_or(0);
                        let mut cycle: Vec<String> =
                            path[at..].iter().rev().map(|s| s.to_string()).collect();
                        cycle.rotate_right(1);
                        cycle.push(cycle[0].clone());
                        return Some(cycle);
                    }
                    Some(Mark::Done) => {}
                    None => {
                        marks.insert(p, Mark::Open);
                        path.push(p);
                        iters.push(parents.get(p).into_iter().flatten());
                    }
                },
                None => {
                    iters.pop();
                    if let Some(n) = path.pop() {
                        marks.insert(n, Mark::Done);
                    }
                }
            }
        }
    }
    None
}

/// A dependency map file and the map last read from it.
#[derive(Debug)]
pub struct MapFile {
    path: PathBuf,
    /// Modification time and size at the last read attempt.
    stamp: Option<(SystemTime, u64)>,
    map: DependencyMap,
}

impl MapFile {
    /// Reads and checks the file.
    pub fn load(path: &Path) -> Result<Self, MapError> {
        let stamp = stamp(path);
        let map = read(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            stamp,
            map,
        })
    }

    /// The map in effect.
    pub fn map(&self) -> &DependencyMap {
        &self.map
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Re-reads the file if its modification time or size changed since
    /// the last attempt: `None` when unchanged, else whether the new map
    /// was taken. A file that cannot be read or is invalid leaves the
    /// previous map in effect, and is reported once per change.
    pub fn refresh(&mut self) -> Option<Result<(), MapError>> {
        let now = stamp(&self.path);
        if now == self.stamp {
            return None;
        }
        self.stamp = now;
        Some(read(&self.path).map(|map| self.map = map))
    }
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

fn read(path: &Path) -> Result<DependencyMap, MapError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| MapError::Read {
        file: file.clone(),
        source,
    })?;
    DependencyMap::parse(&text, &file)
}
