//! Vigie's Go `text/template` engine, shared by the analyzer (Prometheus
//! rule labels and annotations) and alerting (Alertmanager notification
//! templates).
//!
//! Data flow: template sources are parsed ([`Templates::add`] for files of
//! `{{ define "name" }}` blocks, [`Templates::render`] for one field) into a
//! tree, then executed against a [`Value`] (the data `.`) and variables.
//! [`Escape::Html`] escapes what actions print, as `html/template` does for
//! text (an approximation: no per-attribute contexts).
//!
//! Supported: text and `{{ actions }}` with `{{-`/`-}}` trim markers and
//! `{{/* comments */}}`; pipelines; variables (`$x := ...`, `$x = ...`,
//! `$` the data); fields, map keys and methods with arguments
//! (`.CommonLabels.Remove .GroupLabels.Names`, `.StartsAt.Format "..."`,
//! `(index .Alerts 0).Labels`); `if`/`else if`/`else`; `range` (with
//! `$i, $e :=` and `else`, over slices, maps and integers); `with`/`else`;
//! `define`, `template`, `block`; string (`"..."`, raw), number and boolean
//! literals.
//!
//! Functions: Go's builtins (`and or not len index eq ne lt le gt ge print
//! printf println html urlquery`), then per [`Dialect`]: Prometheus'
//! (`humanize*`, `toUpper`, `toLower`, `title`, `stripPort`,
//! `reReplaceAll`, `match`, `safeHtml`) or Alertmanager's (`toUpper`,
//! `toLower`, `title`, `trimSpace`, `join`, `match`, `safeHtml`,
//! `reReplaceAll`, `stringSlice`, `date`, `tz`, `since`,
//! `humanizeDuration`, `toJson`, `urlUnescape`). An unknown function is a
//! parse error, as in Go. Not supported: `break`/`continue`, `slice`,
//! `call`, `js`, `query`.

mod exec;
mod format;
mod funcs;
mod parse;
mod value;

use std::collections::HashMap;
use std::sync::Arc;

pub use format::{go_float, go_time, go_time_format, html_escape};
pub use parse::Pos;
pub use value::{Struct, Value, ZERO_TIME_UNIX, parse_go_float};

/// Which functions templates may call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Prometheus' rule templates (`humanize`, ...).
    Prometheus,
    /// Alertmanager's notification templates (`join`, `stringSlice`, ...).
    Alertmanager,
}

/// How printed values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// As they are (`text/template`).
    Text,
    /// HTML-escaped unless made with `safeHtml` (`html/template`, roughly).
    Html,
}

/// A template error: the template (file or field) name, the position when
/// known, and what is wrong; prints like Go's `template: name:line:col: ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// Name of the template (a file name, or the field being rendered).
    pub name: String,
    /// Where, for parse errors.
    pub pos: Option<Pos>,
    /// What is wrong (execution errors carry their position inside).
    pub message: String,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.pos {
            Some(p) => write!(
                f,
                "template: {}:{}:{}: {}",
                self.name, p.line, p.col, self.message
            ),
            None => write!(f, "template: {}", self.message),
        }
    }
}

impl std::error::Error for Error {}

/// A set of named templates (from `{{ define }}` blocks) and the dialect
/// of functions they use. Cloning is cheap.
#[derive(Debug, Clone)]
pub struct Templates {
    dialect: Dialect,
    defined: HashMap<String, Arc<Vec<parse::Node>>>,
}

impl Templates {
    /// An empty set.
    pub fn new(dialect: Dialect) -> Self {
        Self {
            dialect,
            defined: HashMap::new(),
        }
    }

    /// Parses `src` (named `name` in errors) and adds its `define`d
    /// templates, replacing same-named ones; the text outside `define`
    /// blocks is kept under `name`.
    pub fn add(&mut self, name: &str, src: &str) -> Result<(), Error> {
        let parsed = self.parse(name, src)?;
        for (n, body) in parsed.defines {
            self.defined.insert(n, Arc::new(body));
        }
        self.defined.insert(name.to_string(), Arc::new(parsed.body));
        Ok(())
    }

    /// Whether a template `name` is defined.
    pub fn has(&self, name: &str) -> bool {
        self.defined.contains_key(name)
    }

    /// The names of the defined templates, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.defined.keys().cloned().collect();
        v.sort();
        v
    }

    fn parse(&self, name: &str, src: &str) -> Result<parse::Parsed, Error> {
        let dialect = self.dialect;
        parse::parse(src, &|f| funcs::is_func(dialect, f)).map_err(|e| Error {
            name: name.to_string(),
            pos: Some(e.pos),
            message: e.message,
        })
    }

    /// Checks that `src` parses (a configuration check).
    pub fn check(&self, name: &str, src: &str) -> Result<(), Error> {
        self.parse(name, src).map(|_| ())
    }

    /// Parses and executes `src` with data `dot` and extra variables
    /// (`$` is `dot`); `name` names it in errors. Templates it defines are
    /// visible to itself only.
    pub fn render(
        &self,
        name: &str,
        src: &str,
        dot: &Value,
        vars: &[(&str, Value)],
        escape: Escape,
    ) -> Result<String, Error> {
        if !src.contains("{{") {
            return Ok(src.to_string());
        }
        let parsed = self.parse(name, src)?;
        let extended;
        let set = if parsed.defines.is_empty() {
            &self.defined
        } else {
            let mut all = self.defined.clone();
            for (n, body) in parsed.defines {
                all.insert(n, Arc::new(body));
            }
            extended = all;
            &extended
        };
        self.run(set, name, &parsed.body, dot, vars, escape)
    }

    /// Executes the defined template `name` with data `dot`.
    pub fn execute(&self, name: &str, dot: &Value, escape: Escape) -> Result<String, Error> {
        let body = self.defined.get(name).cloned().ok_or_else(|| Error {
            name: name.to_string(),
            pos: None,
            message: format!("no template {name:?}"),
        })?;
        self.run(&self.defined, name, &body, dot, &[], escape)
    }

    fn run(
        &self,
        set: &HashMap<String, Arc<Vec<parse::Node>>>,
        name: &str,
        body: &[parse::Node],
        dot: &Value,
        vars: &[(&str, Value)],
        escape: Escape,
    ) -> Result<String, Error> {
        let mut ex = exec::Exec {
            set,
            dialect: self.dialect,
            escape,
            out: String::new(),
            depth: 0,
            name: name.to_string(),
            in_comment: false,
        };
        let mut all_vars: Vec<(String, Value)> = vec![("$".to_string(), dot.clone())];
        all_vars.extend(vars.iter().map(|(k, v)| (k.to_string(), v.clone())));
        ex.nodes(body, dot, &mut all_vars)
            .map_err(|message| Error {
                name: name.to_string(),
                pos: None,
                message,
            })?;
        Ok(ex.out)
    }
}

#[cfg(test)]
mod tests;
