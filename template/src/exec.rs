//! Execution: walks a parsed tree with the data (`.`), variables and the
//! named templates of a [`crate::Templates`] set.

use std::collections::HashMap;
use std::sync::Arc;

use crate::format::html_escape;
use crate::funcs::call;
use crate::parse::{Arg, Node, Pipeline, Pos};
use crate::value::Value;
use crate::{Dialect, Escape};

/// How deep `{{ template }}` calls may nest (recursive templates).
const MAX_DEPTH: usize = 200;

/// Most bytes one execution may write: a runaway template stops here.
const MAX_OUTPUT: usize = 8 << 20;

pub(crate) struct Exec<'a> {
    pub set: &'a HashMap<String, Arc<Vec<Node>>>,
    pub dialect: Dialect,
    pub escape: Escape,
    pub out: String,
    pub depth: usize,
    /// The template being executed, for error messages.
    pub name: String,
    /// Inside an HTML comment (elided in [`Escape::Html`], as
    /// `html/template` does).
    pub in_comment: bool,
}

type Vars = Vec<(String, Value)>;

impl Exec<'_> {
    fn locate(&self, pos: Pos, message: String) -> String {
        format!(
            "{}:{}:{}: executing {:?}: {message}",
            self.name, pos.line, pos.col, self.name
        )
    }

    /// Runs `nodes` with `dot`; errors are located (`name:line:col: ...`).
    pub fn nodes(&mut self, nodes: &[Node], dot: &Value, vars: &mut Vars) -> Result<(), String> {
        for n in nodes {
            if self.out.len() > MAX_OUTPUT {
                return Err(format!(
                    "{}: output larger than {MAX_OUTPUT} bytes",
                    self.name
                ));
            }
            match n {
                Node::Text(t) => self.text(t),
                Node::Action(pos, p) => {
                    let v = self
                        .pipeline(p, dot, vars)
                        .map_err(|m| self.locate(*pos, m))?;
                    if p.decl.is_empty() {
                        self.print(&v);
                    }
                }
                Node::If {
                    pos,
                    with,
                    branches,
                    otherwise,
                } => {
                    let mark = vars.len();
                    let mut done = false;
                    for (cond, body) in branches {
                        let v = self
                            .pipeline(cond, dot, vars)
                            .map_err(|m| self.locate(*pos, m))?;
                        if v.truthy() {
                            let inner = if *with { &v } else { dot };
                            self.nodes(body, inner, vars)?;
                            done = true;
                            break;
                        }
                    }
                    if !done {
                        self.nodes(otherwise, dot, vars)?;
                    }
                    vars.truncate(mark);
                }
                Node::Range {
                    pos,
                    pipe,
                    body,
                    otherwise,
                } => {
                    let mark = vars.len();
                    let plain = Pipeline {
                        decl: Vec::new(),
                        assign: false,
                        cmds: pipe.cmds.clone(),
                    };
                    let v = self
                        .pipeline(&plain, dot, vars)
                        .map_err(|m| self.locate(*pos, m))?;
                    let items: Vec<(Value, Value)> = match &v {
                        Value::List(l) => l
                            .iter()
                            .enumerate()
                            .map(|(i, e)| (Value::Int(i as i64), e.clone()))
                            .collect(),
                        Value::Map(m) => m
                            .iter()
                            .map(|(k, e)| (Value::Str(k.clone()), e.clone()))
                            .collect(),
                        Value::Int(n) => (0..*n).map(|i| (Value::Int(i), Value::Int(i))).collect(),
                        Value::Nil => Vec::new(),
                        other => {
                            return Err(self.locate(
                                *pos,
                                format!("range can't iterate over {}", other.print()),
                            ));
                        }
                    };
                    if items.is_empty() {
                        self.nodes(otherwise, dot, vars)?;
                    }
                    for (key, elem) in items {
                        match pipe.decl.as_slice() {
                            [e] => vars.push((e.clone(), elem.clone())),
                            [k, e] => {
                                vars.push((k.clone(), key));
                                vars.push((e.clone(), elem.clone()));
                            }
                            _ => {}
                        }
                        self.nodes(body, &elem, vars)?;
                        vars.truncate(mark);
                    }
                }
                Node::Template { pos, name, pipe } => {
                    let data = match pipe {
                        Some(p) => self
                            .pipeline(p, dot, vars)
                            .map_err(|m| self.locate(*pos, m))?,
                        None => Value::Nil,
                    };
                    let Some(body) = self.set.get(name).cloned() else {
                        return Err(self.locate(*pos, format!("template {name:?} not defined")));
                    };
                    if self.depth >= MAX_DEPTH {
                        return Err(self.locate(
                            *pos,
                            format!("exceeded maximum template depth ({MAX_DEPTH})"),
                        ));
                    }
                    let outer = std::mem::replace(&mut self.name, name.clone());
                    self.depth += 1;
                    let mut inner_vars = vec![("$".to_string(), data.clone())];
                    let r = self.nodes(&body, &data, &mut inner_vars);
                    self.depth -= 1;
                    self.name = outer;
                    r?;
                }
            }
        }
        Ok(())
    }

    fn text(&mut self, t: &str) {
        if self.escape == Escape::Text {
            self.out.push_str(t);
            return;
        }
        let mut rest = t;
        loop {
            if self.in_comment {
                match rest.find("-->") {
                    Some(i) => {
                        rest = &rest[i + 3..];
                        self.in_comment = false;
                    }
                    None => return,
                }
            } else {
                match rest.find("<!--") {
                    Some(i) => {
                        self.out.push_str(&rest[..i]);
                        rest = &rest[i + 4..];
                        self.in_comment = true;
                    }
                    None => {
                        self.out.push_str(rest);
                        return;
                    }
                }
            }
        }
    }

    fn print(&mut self, v: &Value) {
        if self.in_comment {
            return;
        }
        let s = match v {
            Value::Nil => "<no value>".to_string(),
            other => other.print(),
        };
        match (self.escape, v) {
            (Escape::Html, Value::Html(_)) | (Escape::Text, _) => self.out.push_str(&s),
            (Escape::Html, _) => self.out.push_str(&html_escape(&s)),
        }
    }

    fn pipeline(&mut self, p: &Pipeline, dot: &Value, vars: &mut Vars) -> Result<Value, String> {
        let mut prev: Option<Value> = None;
        for cmd in &p.cmds {
            prev = Some(self.command(cmd, prev.take(), dot, vars)?);
        }
        let v = prev.unwrap_or(Value::Nil);
        if let [name] = p.decl.as_slice() {
            if p.assign {
                let slot = vars
                    .iter_mut()
                    .rev()
                    .find(|(n, _)| n == name)
                    .ok_or_else(|| format!("undefined variable: {name}"))?;
                slot.1 = v.clone();
            } else {
                vars.push((name.clone(), v.clone()));
            }
        }
        Ok(v)
    }

    fn var(name: &str, vars: &Vars) -> Result<Value, String> {
        vars.iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| format!("undefined variable: {name}"))
    }

    fn chain(v: Value, path: &[String], args: &[Value]) -> Result<Value, String> {
        let Some((last, init)) = path.split_last() else {
            return Ok(v);
        };
        let mut v = v;
        for name in init {
            v = v.field(name, &[])?;
        }
        v.field(last, args)
    }

    fn arg(&mut self, a: &Arg, dot: &Value, vars: &mut Vars) -> Result<Value, String> {
        match a {
            Arg::Lit(v) => Ok(v.clone()),
            Arg::Var(name, path) => Self::chain(Self::var(name, vars)?, path, &[]),
            Arg::Field(path) => Self::chain(dot.clone(), path, &[]),
            Arg::Sub(p, path) => {
                let v = self.pipeline(p, dot, vars)?;
                Self::chain(v, path, &[])
            }
            Arg::Ident(name) => call(self.dialect, name, Vec::new()),
        }
    }

    fn command(
        &mut self,
        cmd: &[Arg],
        prev: Option<Value>,
        dot: &Value,
        vars: &mut Vars,
    ) -> Result<Value, String> {
        let Some((head, rest)) = cmd.split_first() else {
            return Err("empty command".into());
        };
        let mut args = Vec::with_capacity(rest.len() + 1);
        for a in rest {
            args.push(self.arg(a, dot, vars)?);
        }
        args.extend(prev);
        match head {
            Arg::Ident(name) => {
                call(self.dialect, name, args).map_err(|e| format!("error calling {name}: {e}"))
            }
            Arg::Field(path) if !path.is_empty() => Self::chain(dot.clone(), path, &args),
            Arg::Var(name, path) if !path.is_empty() => {
                Self::chain(Self::var(name, vars)?, path, &args)
            }
            Arg::Sub(p, path) if !path.is_empty() => {
                let v = self.pipeline(p, dot, vars)?;
                Self::chain(v, path, &args)
            }
            other => {
                if !args.is_empty() {
                    return Err("can't give argument to non-function".into());
                }
                self.arg(other, dot, vars)
            }
        }
    }
}
