//! Parsing: text and `{{ actions }}` into a tree, with `define`d templates
//! collected by name.

use crate::value::Value;

/// Where an action starts: 1-based line and column (in bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
}

/// An operand of a command.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    /// `$name.f.g`.
    Var(String, Vec<String>),
    /// `.f.g` (empty: `.`).
    Field(Vec<String>),
    /// A literal.
    Lit(Value),
    /// A function name.
    Ident(String),
    /// `(pipeline)` with an optional field chain: `(index .Alerts 0).Labels`.
    Sub(Pipeline, Vec<String>),
}

/// `$a, $b := cmd | cmd ...`.
#[derive(Debug, Clone)]
pub(crate) struct Pipeline {
    /// Declared (or assigned) variables.
    pub decl: Vec<String>,
    /// `=` rather than `:=`.
    pub assign: bool,
    /// The commands; each is its operands.
    pub cmds: Vec<Vec<Arg>>,
}

/// A node of a parsed template.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Text(String),
    Action(Pos, Pipeline),
    /// `if` / `with` chains: branches then `else`.
    If {
        pos: Pos,
        with: bool,
        branches: Vec<(Pipeline, Vec<Node>)>,
        otherwise: Vec<Node>,
    },
    Range {
        pos: Pos,
        pipe: Pipeline,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
    Template {
        pos: Pos,
        name: String,
        pipe: Option<Pipeline>,
    },
}

/// A parse error: position and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Where.
    pub pos: Pos,
    /// What is wrong.
    pub message: String,
}

type PResult<T> = Result<T, ParseError>;

enum Raw {
    Text(String),
    Action(Pos, String),
}

/// What parsing a source gives: its top-level nodes and its `define`s.
pub(crate) struct Parsed {
    pub body: Vec<Node>,
    pub defines: Vec<(String, Vec<Node>)>,
}

/// Parses `src`; `is_func` says which identifiers are functions.
pub(crate) fn parse(src: &str, is_func: &dyn Fn(&str) -> bool) -> PResult<Parsed> {
    let raws = lex(src)?;
    let mut p = Parser {
        raws,
        pos: 0,
        defines: Vec::new(),
        is_func,
    };
    let (body, end) = p.nodes()?;
    if let Some((pos, kw, _)) = end {
        return Err(ParseError {
            pos,
            message: format!("unexpected {{{{{kw}}}}}"),
        });
    }
    Ok(Parsed {
        body,
        defines: p.defines,
    })
}

fn pos_of(src: &str, offset: usize) -> Pos {
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let col = offset - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    Pos { line, col }
}

/// Splits text and actions, applying trim markers and dropping comments.
fn lex(src: &str) -> PResult<Vec<Raw>> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(rel) = src[at..].find("{{") {
        let start = at + rel;
        let mut text = &src[at..start];
        let mut inner_start = start + 2;
        let b = src.as_bytes();
        if b.get(inner_start) == Some(&b'-')
            && b.get(inner_start + 1).is_some_and(u8::is_ascii_whitespace)
        {
            text = text.trim_end();
            inner_start += 1;
        }
        if !text.is_empty() {
            out.push(Raw::Text(text.to_string()));
        }
        let pos = pos_of(src, start);
        let end = find_close(&src[inner_start..]).ok_or_else(|| ParseError {
            pos,
            message: "unclosed action".into(),
        })?;
        let mut inner = &src[inner_start..inner_start + end];
        at = inner_start + end + 2;
        if inner.ends_with('-')
            && inner[..inner.len() - 1].ends_with(|c: char| c.is_ascii_whitespace())
        {
            inner = &inner[..inner.len() - 1];
            at += src[at..].len() - src[at..].trim_start().len();
        }
        let inner = inner.trim();
        if inner.starts_with("/*") {
            if !inner.ends_with("*/") {
                return Err(ParseError {
                    pos,
                    message: "comment ends before closing delimiter".into(),
                });
            }
            continue;
        }
        out.push(Raw::Action(pos, inner.to_string()));
    }
    if at < src.len() {
        out.push(Raw::Text(src[at..].to_string()));
    }
    Ok(out)
}

/// Finds the `}}` closing an action, skipping quoted strings and comments.
fn find_close(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < b.len() && b[i] != b'`' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let end = s[i + 2..].find("*/")?;
                i += end + 3;
            }
            b'}' if b.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Pipe,
    Open,
    /// `)`, with the field chain right after it (`).Labels.x`).
    Close(Vec<String>),
    Decl,
    Assign,
    Comma,
}

fn tokens(s: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let word_char = |c: char| !c.is_whitespace() && !matches!(c, '|' | '(' | ')' | '"' | '`' | ',');
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '|' => {
                out.push(Tok::Pipe);
                i += 1;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            '(' => {
                out.push(Tok::Open);
                i += 1;
            }
            ')' => {
                i += 1;
                let mut chain = Vec::new();
                if chars.get(i) == Some(&'.') {
                    let start = i;
                    while i < chars.len() && word_char(chars[i]) {
                        i += 1;
                    }
                    let w: String = chars[start + 1..i].iter().collect();
                    chain = w.split('.').map(str::to_string).collect();
                }
                out.push(Tok::Close(chain));
            }
            ':' if chars.get(i + 1) == Some(&'=') => {
                out.push(Tok::Decl);
                i += 2;
            }
            '=' => {
                out.push(Tok::Assign);
                i += 1;
            }
            '"' => {
                let mut v = String::new();
                i += 1;
                loop {
                    let Some(&c) = chars.get(i) else {
                        return Err("unterminated quoted string".into());
                    };
                    i += 1;
                    match c {
                        '"' => break,
                        '\\' => {
                            let e = chars.get(i).copied().ok_or("bad escape")?;
                            i += 1;
                            v.push(match e {
                                'n' => '\n',
                                't' => '\t',
                                'r' => '\r',
                                other => other,
                            });
                        }
                        c => v.push(c),
                    }
                }
                out.push(Tok::Str(v));
            }
            '`' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&c| c == '`')
                    .ok_or("unterminated raw quoted string")?;
                out.push(Tok::Str(chars[i + 1..i + 1 + end].iter().collect()));
                i += end + 2;
            }
            _ => {
                let start = i;
                while i < chars.len()
                    && word_char(chars[i])
                    && (chars[i] != ':' || chars.get(i + 1) != Some(&'='))
                    && !(chars[i] == '=' && i > start)
                {
                    i += 1;
                }
                out.push(Tok::Word(chars[start..i].iter().collect()));
            }
        }
    }
    Ok(out)
}

struct Parser<'a> {
    raws: Vec<Raw>,
    pos: usize,
    defines: Vec<(String, Vec<Node>)>,
    is_func: &'a dyn Fn(&str) -> bool,
}

/// The action that ended a list of nodes: position, keyword, its tokens.
type End = Option<(Pos, String, Vec<Tok>)>;

impl Parser<'_> {
    fn err<T>(&self, pos: Pos, message: impl Into<String>) -> PResult<T> {
        Err(ParseError {
            pos,
            message: message.into(),
        })
    }

    /// Parses nodes until `end`/`else` (returned) or the end of input.
    fn nodes(&mut self) -> PResult<(Vec<Node>, End)> {
        let mut nodes = Vec::new();
        while self.pos < self.raws.len() {
            let (pos, action) = match &self.raws[self.pos] {
                Raw::Text(t) => {
                    nodes.push(Node::Text(t.clone()));
                    self.pos += 1;
                    continue;
                }
                Raw::Action(pos, a) => (*pos, a.clone()),
            };
            self.pos += 1;
            let toks = tokens(&action).map_err(|message| ParseError { pos, message })?;
            let kw = match toks.first() {
                Some(Tok::Word(w)) => w.as_str(),
                None => return self.err(pos, "missing value for command"),
                _ => "",
            };
            match kw {
                "end" | "else" => return Ok((nodes, Some((pos, kw.to_string(), toks)))),
                "if" | "with" => nodes.push(self.branches(pos, kw == "with", &toks[1..])?),
                "range" => {
                    let pipe = self.pipeline(pos, &toks[1..], true)?;
                    let (body, otherwise) = self.body_else(pos, "range")?;
                    nodes.push(Node::Range {
                        pos,
                        pipe,
                        body,
                        otherwise,
                    });
                }
                "define" | "block" => {
                    let Some(Tok::Str(name)) = toks.get(1) else {
                        return self.err(pos, format!("{kw} needs a quoted template name"));
                    };
                    let pipe = if kw == "block" {
                        Some(self.pipeline(pos, &toks[2..], false)?)
                    } else if toks.len() > 2 {
                        return self.err(pos, "unexpected arguments after define name");
                    } else {
                        None
                    };
                    let (body, end) = self.nodes()?;
                    match end {
                        Some((_, k, t)) if k == "end" && t.len() == 1 => {}
                        _ => return self.err(pos, format!("missing {{{{end}}}} of {kw} {name:?}")),
                    }
                    self.defines.push((name.clone(), body));
                    if kw == "block" {
                        nodes.push(Node::Template {
                            pos,
                            name: name.clone(),
                            pipe,
                        });
                    }
                }
                "template" => {
                    let Some(Tok::Str(name)) = toks.get(1) else {
                        return self.err(pos, "template needs a quoted template name");
                    };
                    let pipe = if toks.len() > 2 {
                        Some(self.pipeline(pos, &toks[2..], false)?)
                    } else {
                        None
                    };
                    nodes.push(Node::Template {
                        pos,
                        name: name.clone(),
                        pipe,
                    });
                }
                "break" | "continue" => {
                    return self.err(pos, format!("{{{{{kw}}}}} is not supported"));
                }
                _ => nodes.push(Node::Action(pos, self.pipeline(pos, &toks, false)?)),
            }
        }
        Ok((nodes, None))
    }

    /// A body, then `{{else}}` body, then `{{end}}`.
    fn body_else(&mut self, pos: Pos, kw: &str) -> PResult<(Vec<Node>, Vec<Node>)> {
        let (body, end) = self.nodes()?;
        match end {
            Some((_, k, t)) if k == "end" && t.len() == 1 => Ok((body, Vec::new())),
            Some((epos, k, t)) if k == "else" && t.len() == 1 => {
                let (otherwise, end) = self.nodes()?;
                match end {
                    Some((_, k, t)) if k == "end" && t.len() == 1 => Ok((body, otherwise)),
                    _ => self.err(
                        epos,
                        format!("expected {{{{end}}}} after {{{{else}}}} of {kw}"),
                    ),
                }
            }
            Some((epos, k, _)) => self.err(epos, format!("unexpected {{{{{k} ...}}}} in {kw}")),
            None => self.err(pos, format!("unexpected EOF: missing {{{{end}}}} of {kw}")),
        }
    }

    /// `if`/`with` with `else if`/`else with` chains.
    fn branches(&mut self, pos: Pos, with: bool, cond: &[Tok]) -> PResult<Node> {
        let kw = if with { "with" } else { "if" };
        let mut branches = vec![(self.pipeline(pos, cond, false)?, Vec::new())];
        let mut otherwise = Vec::new();
        loop {
            let (body, end) = self.nodes()?;
            if let Some(last) = branches.last_mut() {
                last.1 = body;
            }
            let Some((epos, k, etoks)) = end else {
                return self.err(pos, format!("unexpected EOF: missing {{{{end}}}} of {kw}"));
            };
            match (k.as_str(), etoks.get(1)) {
                ("end", None) => break,
                ("else", None) => {
                    let (body, end) = self.nodes()?;
                    otherwise = body;
                    match end {
                        Some((_, k, t)) if k == "end" && t.len() == 1 => break,
                        _ => {
                            return self.err(
                                epos,
                                format!("expected {{{{end}}}} after {{{{else}}}} of {kw}"),
                            );
                        }
                    }
                }
                ("else", Some(Tok::Word(w))) if w == kw => {
                    branches.push((self.pipeline(epos, &etoks[2..], false)?, Vec::new()));
                }
                _ => return self.err(epos, format!("unexpected {{{{{k} ...}}}} in {kw}")),
            }
        }
        Ok(Node::If {
            pos,
            with,
            branches,
            otherwise,
        })
    }

    fn pipeline(&self, pos: Pos, toks: &[Tok], range: bool) -> PResult<Pipeline> {
        let mut at = 0;
        let p = self
            .pipeline_at(toks, &mut at, range)
            .map_err(|message| ParseError { pos, message })?;
        if at != toks.len() {
            return self.err(pos, format!("unexpected {:?} in operand", toks[at]));
        }
        Ok(p)
    }

    fn pipeline_at(&self, toks: &[Tok], at: &mut usize, range: bool) -> Result<Pipeline, String> {
        let mut decl = Vec::new();
        let mut assign = false;
        // `$x :=`, `$x =`, and in range `$i, $e :=`.
        let var = |t: Option<&Tok>| matches!(t, Some(Tok::Word(w)) if w.starts_with('$') && !w.contains('.'));
        if var(toks.get(*at)) {
            match (toks.get(*at + 1), toks.get(*at + 2), toks.get(*at + 3)) {
                (Some(Tok::Decl | Tok::Assign), ..) => {
                    assign = toks.get(*at + 1) == Some(&Tok::Assign);
                    decl.push(word_text(&toks[*at]));
                    *at += 2;
                }
                (Some(Tok::Comma), w, Some(Tok::Decl | Tok::Assign)) if range && var(w) => {
                    assign = toks.get(*at + 3) == Some(&Tok::Assign);
                    decl.push(word_text(&toks[*at]));
                    decl.push(word_text(&toks[*at + 2]));
                    *at += 4;
                }
                _ => {}
            }
        }
        let mut cmds = Vec::new();
        let mut cmd = Vec::new();
        while let Some(t) = toks.get(*at) {
            match t {
                Tok::Close(_) => break,
                Tok::Pipe => {
                    if cmd.is_empty() {
                        return Err("missing command before |".into());
                    }
                    cmds.push(std::mem::take(&mut cmd));
                    *at += 1;
                }
                Tok::Open => {
                    *at += 1;
                    let sub = self.pipeline_at(toks, at, false)?;
                    let Some(Tok::Close(chain)) = toks.get(*at) else {
                        return Err("unclosed left paren".into());
                    };
                    *at += 1;
                    cmd.push(Arg::Sub(sub, chain.clone()));
                }
                Tok::Str(s) => {
                    cmd.push(Arg::Lit(Value::Str(s.clone())));
                    *at += 1;
                }
                Tok::Decl | Tok::Assign | Tok::Comma => {
                    return Err(format!("unexpected {t:?} in operand"));
                }
                Tok::Word(w) => {
                    cmd.push(self.word(w)?);
                    *at += 1;
                }
            }
        }
        if cmd.is_empty() {
            return Err("missing value for command".into());
        }
        cmds.push(cmd);
        Ok(Pipeline { decl, assign, cmds })
    }

    fn word(&self, w: &str) -> Result<Arg, String> {
        if let Some(rest) = w.strip_prefix('$') {
            let mut parts = rest.split('.');
            let name = format!("${}", parts.next().unwrap_or(""));
            return Ok(Arg::Var(name, parts.map(str::to_string).collect()));
        }
        if w == "." {
            return Ok(Arg::Field(Vec::new()));
        }
        if let Some(rest) = w.strip_prefix('.')
            && rest.starts_with(|c: char| c.is_alphabetic() || c == '_')
        {
            return Ok(Arg::Field(rest.split('.').map(str::to_string).collect()));
        }
        match w {
            "true" => return Ok(Arg::Lit(Value::Bool(true))),
            "false" => return Ok(Arg::Lit(Value::Bool(false))),
            "nil" => return Ok(Arg::Lit(Value::Nil)),
            _ => {}
        }
        if w.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+' || c == '.') {
            if let Ok(i) = w.parse::<i64>() {
                return Ok(Arg::Lit(Value::Int(i)));
            }
            if let Some(hex) = w.strip_prefix("0x")
                && let Ok(i) = i64::from_str_radix(hex, 16)
            {
                return Ok(Arg::Lit(Value::Int(i)));
            }
            if let Ok(f) = w.parse::<f64>() {
                return Ok(Arg::Lit(Value::Float(f)));
            }
            return Err(format!("bad number syntax: {w:?}"));
        }
        if w.chars().all(|c| c.is_alphanumeric() || c == '_') {
            if !(self.is_func)(w) {
                return Err(format!("function {w:?} not defined"));
            }
            return Ok(Arg::Ident(w.to_string()));
        }
        Err(format!("unexpected {w:?} in operand"))
    }
}

fn word_text(t: &Tok) -> String {
    match t {
        Tok::Word(w) => w.clone(),
        _ => String::new(),
    }
}
