//! Alert templates: the subset of Go's `text/template` that Prometheus rule
//! labels and annotations use, with Prometheus' functions.
//!
//! Supported: text with `{{ ... }}` actions (and the `{{-`/`-}}` trim
//! markers, `{{/* comments */}}`); pipelines (`{{ $value | humanize }}`);
//! variables `$labels`, `$value`, `$externalLabels`, `$externalURL` and the
//! fields `.Labels`, `.Value`, `.ExternalLabels`, `.ExternalURL`; field
//! access `$labels.instance`; `$x := pipeline`; `if`/`else if`/`else`/`end`;
//! string, number and boolean literals; parentheses.
//!
//! Functions: `humanize`, `humanize1024`, `humanizeDuration`,
//! `humanizePercentage`, `humanizeTimestamp`, `printf` (Go verbs `%s %d %f
//! %e %g %v %q %x %%` with flags, width and precision, Go's `%!d(float64=…)`
//! for mismatches), `print`, `toUpper`, `toLower`, `title`, `reReplaceAll`,
//! `match`, `stripPort`, `len`, `index`, `not`, `and`, `or`, `eq`, `ne`,
//! `lt`, `le`, `gt`, `ge`. Values print like Go (`1.234567e+06`, `+Inf`,
//! `map[a:b]`). `query`, `range` and `with` are not supported (an error).

use std::collections::BTreeMap;

/// What a template can read: the alert's series labels (with `__name__`
/// when the expression kept it), the value, and the external labels and URL.
#[derive(Debug, Clone, Copy)]
pub struct TemplateData<'a> {
    /// Labels of the series that produced the alert.
    pub labels: &'a BTreeMap<String, String>,
    /// `external_labels` of the configuration or unit test.
    pub external_labels: &'a BTreeMap<String, String>,
    /// The external URL.
    pub external_url: &'a str,
    /// The sample value.
    pub value: f64,
}

/// Expands `template` with `data`; an error says what is wrong.
pub fn expand(template: &str, data: &TemplateData<'_>) -> Result<String, String> {
    let nodes = parse(template)?;
    let mut vars: Vec<(String, Val)> = vec![
        ("$labels".into(), Val::Map(data.labels.clone())),
        (
            "$externalLabels".into(),
            Val::Map(data.external_labels.clone()),
        ),
        (
            "$externalURL".into(),
            Val::Str(data.external_url.to_string()),
        ),
        ("$value".into(), Val::Float(data.value)),
    ];
    let mut out = String::new();
    exec(&nodes, data, &mut vars, &mut out)?;
    Ok(out)
}

/// Checks that `template` parses (a rule file check).
pub fn check(template: &str) -> Result<(), String> {
    parse(template).map(|_| ())
}

/// Expands like Prometheus: an error becomes the text
/// `<error expanding template: …>`.
pub fn expand_or_error(template: &str, data: &TemplateData<'_>) -> String {
    if !template.contains("{{") {
        return template.to_string();
    }
    expand(template, data).unwrap_or_else(|e| format!("<error expanding template: {e}>"))
}

/// A template value.
#[derive(Debug, Clone, PartialEq)]
enum Val {
    Str(String),
    Float(f64),
    Int(i64),
    Bool(bool),
    Map(BTreeMap<String, String>),
    Nil,
}

impl Val {
    fn truthy(&self) -> bool {
        match self {
            Val::Str(s) => !s.is_empty(),
            Val::Float(f) => *f != 0.0,
            Val::Int(i) => *i != 0,
            Val::Bool(b) => *b,
            Val::Map(m) => !m.is_empty(),
            Val::Nil => false,
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Val::Str(_) => "string",
            Val::Float(_) => "float64",
            Val::Int(_) => "int",
            Val::Bool(_) => "bool",
            Val::Map(_) => "map[string]string",
            Val::Nil => "<nil>",
        }
    }

    /// Go's `%v`.
    fn print(&self) -> String {
        match self {
            Val::Str(s) => s.clone(),
            Val::Float(f) => go_float(*f, 'g', None),
            Val::Int(i) => i.to_string(),
            Val::Bool(b) => b.to_string(),
            Val::Map(m) => {
                let inner: Vec<String> = m.iter().map(|(k, v)| format!("{k}:{v}")).collect();
                format!("map[{}]", inner.join(" "))
            }
            Val::Nil => "<no value>".into(),
        }
    }

    fn to_float(&self) -> Result<f64, String> {
        match self {
            Val::Float(f) => Ok(*f),
            Val::Int(i) => Ok(*i as f64),
            Val::Str(s) => {
                parse_go_float(s).ok_or_else(|| format!("cannot convert {s:?} to float"))
            }
            other => Err(format!("cannot convert {} to float", other.type_name())),
        }
    }
}

fn parse_go_float(s: &str) -> Option<f64> {
    match s.trim().to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => Some(f64::INFINITY),
        "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
        "nan" => Some(f64::NAN),
        t => t.parse().ok(),
    }
}

// ---------------------------------------------------------------- parsing

#[derive(Debug, Clone)]
enum Arg {
    Var(String, Vec<String>),
    Field(Vec<String>),
    Lit(Val),
    Ident(String),
    Sub(Pipeline),
}

#[derive(Debug, Clone)]
struct Pipeline {
    decl: Option<String>,
    cmds: Vec<Vec<Arg>>,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipeline),
    If(Vec<(Pipeline, Vec<Node>)>, Vec<Node>),
}

#[derive(Debug)]
enum Raw {
    Text(String),
    Action(String),
}

/// Splits text and actions, applying trim markers and dropping comments.
fn lex(src: &str) -> Result<Vec<Raw>, String> {
    let mut out = Vec::new();
    let mut rest = src;
    while let Some(start) = rest.find("{{") {
        let mut text = rest[..start].to_string();
        let mut inner_start = start + 2;
        if rest[inner_start..].starts_with("- ") || rest[inner_start..].starts_with("-\t") {
            text = text.trim_end().to_string();
            inner_start += 1;
        }
        if !text.is_empty() {
            out.push(Raw::Text(text));
        }
        let after = &rest[inner_start..];
        let end = find_close(after).ok_or("unclosed action")?;
        let mut inner = &after[..end];
        let mut next = &after[end + 2..];
        if inner.ends_with(" -") || inner.ends_with("\t-") {
            inner = &inner[..inner.len() - 1];
            next = next.trim_start();
        }
        let inner = inner.trim();
        if !(inner.starts_with("/*") && inner.ends_with("*/")) {
            out.push(Raw::Action(inner.to_string()));
        }
        rest = next;
    }
    if !rest.is_empty() {
        out.push(Raw::Text(rest.to_string()));
    }
    Ok(out)
}

/// Finds the `}}` closing an action, skipping quoted strings.
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
    Close,
    Decl,
}

fn tokens(s: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '|' => {
                out.push(Tok::Pipe);
                i += 1;
            }
            '(' => {
                out.push(Tok::Open);
                i += 1;
            }
            ')' => {
                out.push(Tok::Close);
                i += 1;
            }
            ':' if chars.get(i + 1) == Some(&'=') => {
                out.push(Tok::Decl);
                i += 2;
            }
            '=' => {
                out.push(Tok::Decl);
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
                    .ok_or("unterminated raw string")?;
                out.push(Tok::Str(chars[i + 1..i + 1 + end].iter().collect()));
                i += end + 2;
            }
            _ => {
                let start = i;
                while i < chars.len()
                    && !chars[i].is_whitespace()
                    && !matches!(chars[i], '|' | '(' | ')' | '"' | '`')
                    && (chars[i] != ':' || chars.get(i + 1) != Some(&'='))
                {
                    i += 1;
                }
                out.push(Tok::Word(chars[start..i].iter().collect()));
            }
        }
    }
    Ok(out)
}

fn parse_pipeline(toks: &[Tok]) -> Result<Pipeline, String> {
    let mut pos = 0;
    let p = pipeline_at(toks, &mut pos)?;
    if pos != toks.len() {
        return Err(format!("unexpected {:?} in action", toks[pos]));
    }
    Ok(p)
}

fn pipeline_at(toks: &[Tok], pos: &mut usize) -> Result<Pipeline, String> {
    let mut decl = None;
    if let (Some(Tok::Word(w)), Some(Tok::Decl)) = (toks.get(*pos), toks.get(*pos + 1))
        && w.starts_with('$')
    {
        decl = Some(w.clone());
        *pos += 2;
    }
    let mut cmds = Vec::new();
    let mut cmd = Vec::new();
    while let Some(t) = toks.get(*pos) {
        match t {
            Tok::Close => break,
            Tok::Pipe => {
                if cmd.is_empty() {
                    return Err("missing command before |".into());
                }
                cmds.push(std::mem::take(&mut cmd));
                *pos += 1;
            }
            Tok::Open => {
                *pos += 1;
                let sub = pipeline_at(toks, pos)?;
                if toks.get(*pos) != Some(&Tok::Close) {
                    return Err("unclosed left paren".into());
                }
                *pos += 1;
                cmd.push(Arg::Sub(sub));
            }
            Tok::Str(s) => {
                cmd.push(Arg::Lit(Val::Str(s.clone())));
                *pos += 1;
            }
            Tok::Decl => return Err("unexpected := in action".into()),
            Tok::Word(w) => {
                cmd.push(word(w)?);
                *pos += 1;
            }
        }
    }
    if cmd.is_empty() {
        return Err("missing value for command".into());
    }
    cmds.push(cmd);
    Ok(Pipeline { decl, cmds })
}

fn word(w: &str) -> Result<Arg, String> {
    if let Some(rest) = w.strip_prefix('$') {
        let mut parts = rest.split('.');
        let name = format!("${}", parts.next().unwrap_or(""));
        return Ok(Arg::Var(name, parts.map(str::to_string).collect()));
    }
    if w == "." {
        return Ok(Arg::Field(Vec::new()));
    }
    if let Some(rest) = w.strip_prefix('.') {
        return Ok(Arg::Field(rest.split('.').map(str::to_string).collect()));
    }
    match w {
        "true" => return Ok(Arg::Lit(Val::Bool(true))),
        "false" => return Ok(Arg::Lit(Val::Bool(false))),
        "nil" => return Ok(Arg::Lit(Val::Nil)),
        _ => {}
    }
    if w.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+' || c == '.') {
        if let Ok(i) = w.parse::<i64>() {
            return Ok(Arg::Lit(Val::Int(i)));
        }
        if let Ok(f) = w.parse::<f64>() {
            return Ok(Arg::Lit(Val::Float(f)));
        }
        return Err(format!("bad number syntax: {w:?}"));
    }
    if w.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return Ok(Arg::Ident(w.to_string()));
    }
    Err(format!("unexpected {w:?} in operand"))
}

fn parse(src: &str) -> Result<Vec<Node>, String> {
    let raws = lex(src)?;
    let mut pos = 0;
    let (nodes, end) = parse_nodes(&raws, &mut pos)?;
    match end {
        None => Ok(nodes),
        Some(kw) => Err(format!("unexpected {{{{{kw}}}}}")),
    }
}

/// Parses nodes until `end`/`else` (returned) or the end of input (None).
fn parse_nodes(raws: &[Raw], pos: &mut usize) -> Result<(Vec<Node>, Option<String>), String> {
    let mut nodes = Vec::new();
    while let Some(raw) = raws.get(*pos) {
        *pos += 1;
        match raw {
            Raw::Text(t) => nodes.push(Node::Text(t.clone())),
            Raw::Action(a) => {
                let toks = tokens(a)?;
                match toks.first() {
                    Some(Tok::Word(w)) if w == "end" || w == "else" => {
                        return Ok((nodes, Some(a.clone())));
                    }
                    Some(Tok::Word(w)) if w == "if" => {
                        let mut branches = vec![(parse_pipeline(&toks[1..])?, Vec::new())];
                        let mut otherwise = Vec::new();
                        loop {
                            let (body, end) = parse_nodes(raws, pos)?;
                            let end = end.ok_or("unexpected EOF: missing {{end}}")?;
                            let etoks = tokens(&end)?;
                            let in_else = branches.is_empty();
                            if in_else {
                                otherwise = body;
                            } else if let Some(last) = branches.last_mut() {
                                last.1 = body;
                            }
                            match etoks.as_slice() {
                                [Tok::Word(w)] if w == "end" => break,
                                [Tok::Word(w)] if w == "else" => {
                                    let (body, end) = parse_nodes(raws, pos)?;
                                    otherwise = body;
                                    match end.as_deref().map(str::trim) {
                                        Some("end") => break,
                                        _ => return Err("expected {{end}} after {{else}}".into()),
                                    }
                                }
                                [Tok::Word(w), Tok::Word(i), rest @ ..]
                                    if w == "else" && i == "if" =>
                                {
                                    branches.push((parse_pipeline(rest)?, Vec::new()));
                                }
                                _ => return Err(format!("unexpected {{{{{end}}}}}")),
                            }
                        }
                        nodes.push(Node::If(branches, otherwise));
                    }
                    Some(Tok::Word(w))
                        if matches!(
                            w.as_str(),
                            "range" | "with" | "define" | "template" | "block"
                        ) =>
                    {
                        return Err(format!("{{{{{w}}}}} is not supported in Vigie's templates"));
                    }
                    None => return Err("missing value for command".into()),
                    _ => nodes.push(Node::Action(parse_pipeline(&toks)?)),
                }
            }
        }
    }
    Ok((nodes, None))
}

// -------------------------------------------------------------- execution

fn exec(
    nodes: &[Node],
    data: &TemplateData<'_>,
    vars: &mut Vec<(String, Val)>,
    out: &mut String,
) -> Result<(), String> {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Action(p) => {
                let v = eval_pipeline(p, data, vars)?;
                if p.decl.is_none() {
                    out.push_str(&v.print());
                }
            }
            Node::If(branches, otherwise) => {
                let mut done = false;
                for (cond, body) in branches {
                    if eval_pipeline(cond, data, vars)?.truthy() {
                        exec(body, data, vars, out)?;
                        done = true;
                        break;
                    }
                }
                if !done {
                    exec(otherwise, data, vars, out)?;
                }
            }
        }
    }
    Ok(())
}

fn eval_pipeline(
    p: &Pipeline,
    data: &TemplateData<'_>,
    vars: &mut Vec<(String, Val)>,
) -> Result<Val, String> {
    let mut prev: Option<Val> = None;
    for cmd in &p.cmds {
        prev = Some(eval_command(cmd, prev.take(), data, vars)?);
    }
    let v = prev.unwrap_or(Val::Nil);
    if let Some(name) = &p.decl {
        vars.push((name.clone(), v.clone()));
    }
    Ok(v)
}

fn field(v: Val, path: &[String]) -> Result<Val, String> {
    let mut v = v;
    for f in path {
        v = match v {
            Val::Map(m) => m
                .get(f)
                .cloned()
                .map(Val::Str)
                .unwrap_or(Val::Str(String::new())),
            other => {
                return Err(format!(
                    "can't evaluate field {f} in type {}",
                    other.type_name()
                ));
            }
        };
    }
    Ok(v)
}

fn eval_arg(
    a: &Arg,
    data: &TemplateData<'_>,
    vars: &mut Vec<(String, Val)>,
) -> Result<Val, String> {
    match a {
        Arg::Lit(v) => Ok(v.clone()),
        Arg::Var(name, path) => {
            let v = vars
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| format!("undefined variable \"{name}\""))?;
            field(v, path)
        }
        Arg::Field(path) => {
            let Some((first, rest)) = path.split_first() else {
                return Err("the data `.` cannot be printed".into());
            };
            let v = match first.as_str() {
                "Labels" => Val::Map(data.labels.clone()),
                "ExternalLabels" => Val::Map(data.external_labels.clone()),
                "ExternalURL" => Val::Str(data.external_url.to_string()),
                "Value" => Val::Float(data.value),
                other => return Err(format!("can't evaluate field {other}")),
            };
            field(v, rest)
        }
        Arg::Sub(p) => eval_pipeline(p, data, vars),
        Arg::Ident(name) => call(name, Vec::new()),
    }
}

fn eval_command(
    cmd: &[Arg],
    prev: Option<Val>,
    data: &TemplateData<'_>,
    vars: &mut Vec<(String, Val)>,
) -> Result<Val, String> {
    let Some((head, rest)) = cmd.split_first() else {
        return Err("empty command".into());
    };
    if let Arg::Ident(name) = head {
        let mut args = Vec::with_capacity(rest.len() + 1);
        for a in rest {
            args.push(eval_arg(a, data, vars)?);
        }
        args.extend(prev);
        return call(name, args);
    }
    if !rest.is_empty() || prev.is_some() {
        return Err("can't give argument to non-function".into());
    }
    eval_arg(head, data, vars)
}

fn one(name: &str, args: &[Val]) -> Result<Val, String> {
    match args {
        [v] => Ok(v.clone()),
        _ => Err(format!(
            "wrong number of args for {name}: want 1 got {}",
            args.len()
        )),
    }
}

fn compare(name: &str, args: &[Val]) -> Result<Val, String> {
    let [a, b] = args else {
        return Err(format!("wrong number of args for {name}: want 2"));
    };
    let ord = match (a, b) {
        (Val::Str(x), Val::Str(y)) => x.partial_cmp(y),
        (Val::Bool(x), Val::Bool(y)) if matches!(name, "eq" | "ne") => x.partial_cmp(y),
        (x, y) => match (x.to_float(), y.to_float()) {
            (Ok(x), Ok(y)) if !matches!(a, Val::Str(_)) && !matches!(b, Val::Str(_)) => {
                x.partial_cmp(&y)
            }
            _ => return Err(format!("incompatible types for comparison in {name}")),
        },
    };
    use std::cmp::Ordering::*;
    Ok(Val::Bool(match name {
        "eq" => ord == Some(Equal),
        "ne" => ord != Some(Equal),
        "lt" => ord == Some(Less),
        "le" => matches!(ord, Some(Less | Equal)),
        "gt" => ord == Some(Greater),
        _ => matches!(ord, Some(Greater | Equal)),
    }))
}

fn call(name: &str, args: Vec<Val>) -> Result<Val, String> {
    let f = |args: &[Val]| one(name, args).and_then(|v| v.to_float());
    let s = |args: &[Val]| one(name, args).map(|v| v.print());
    Ok(match name {
        "humanize" => Val::Str(humanize(f(&args)?)),
        "humanize1024" => Val::Str(humanize1024(f(&args)?)),
        "humanizeDuration" => Val::Str(humanize_duration(f(&args)?)),
        "humanizePercentage" => Val::Str(format!("{}%", go_float(f(&args)? * 100.0, 'g', Some(4)))),
        "humanizeTimestamp" => Val::Str(humanize_timestamp(f(&args)?)),
        "toUpper" => Val::Str(s(&args)?.to_uppercase()),
        "toLower" => Val::Str(s(&args)?.to_lowercase()),
        "title" => Val::Str(title(&s(&args)?)),
        "stripPort" => {
            let v = s(&args)?;
            Val::Str(match v.rsplit_once(':') {
                Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
                _ => v,
            })
        }
        "printf" => {
            let Some((Val::Str(fmt), rest)) = args.split_first() else {
                return Err("printf needs a format string".into());
            };
            Val::Str(sprintf(fmt, rest))
        }
        "print" => {
            let mut out = String::new();
            for (i, a) in args.iter().enumerate() {
                let is_str = |v: &Val| matches!(v, Val::Str(_));
                if i > 0 && !is_str(a) && !is_str(&args[i - 1]) {
                    out.push(' ');
                }
                out.push_str(&a.print());
            }
            Val::Str(out)
        }
        "reReplaceAll" => {
            let [Val::Str(pat), Val::Str(repl), Val::Str(text)] = args.as_slice() else {
                return Err("reReplaceAll needs (pattern, replacement, text)".into());
            };
            let re = regex::Regex::new(pat).map_err(|e| e.to_string())?;
            Val::Str(re.replace_all(text, repl.as_str()).into_owned())
        }
        "match" => {
            let [Val::Str(pat), Val::Str(text)] = args.as_slice() else {
                return Err("match needs (pattern, text)".into());
            };
            let re = regex::Regex::new(pat).map_err(|e| e.to_string())?;
            Val::Bool(re.is_match(text))
        }
        "len" => match one(name, &args)? {
            Val::Str(s) => Val::Int(s.len() as i64),
            Val::Map(m) => Val::Int(m.len() as i64),
            other => return Err(format!("len of type {}", other.type_name())),
        },
        "index" => match args.as_slice() {
            [Val::Map(m), Val::Str(k)] => Val::Str(m.get(k).cloned().unwrap_or_default()),
            _ => return Err("index needs (map, key)".into()),
        },
        "not" => Val::Bool(!one(name, &args)?.truthy()),
        "and" => args
            .iter()
            .find(|a| !a.truthy())
            .or(args.last())
            .cloned()
            .unwrap_or(Val::Nil),
        "or" => args
            .iter()
            .find(|a| a.truthy())
            .or(args.last())
            .cloned()
            .unwrap_or(Val::Nil),
        "eq" | "ne" | "lt" | "le" | "gt" | "ge" => compare(name, &args)?,
        "query" => return Err("the query function is not supported in Vigie's templates".into()),
        other => return Err(format!("function \"{other}\" not defined")),
    })
}

// ------------------------------------------------------ Prometheus helpers

fn humanize(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return go_float(v, 'g', Some(4));
    }
    let mut v = v;
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", go_float(v, 'g', Some(4)))
}

fn humanize1024(v: f64) -> String {
    if v.abs() <= 1.0 || !v.is_finite() {
        return go_float(v, 'g', Some(4));
    }
    let mut v = v;
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", go_float(v, 'g', Some(4)))
}

/// Go's `int64(f)` on amd64: out-of-range values become `i64::MIN`.
fn go_int64(f: f64) -> i64 {
    if f.is_finite() && f > -9.223_372_036_854_776e18 && f < 9.223_372_036_854_776e18 {
        f as i64
    } else {
        i64::MIN
    }
}

fn humanize_duration(v: f64) -> String {
    if !v.is_finite() {
        return go_float(v, 'g', Some(4));
    }
    if v == 0.0 {
        return format!("{}s", go_float(v, 'g', Some(4)));
    }
    if v.abs() >= 1.0 {
        let (sign, v) = if v < 0.0 { ("-", -v) } else { ("", v) };
        let d = go_int64(v);
        let (seconds, minutes, hours, days) = (d % 60, (d / 60) % 60, (d / 3600) % 24, d / 86400);
        if days != 0 {
            return format!("{sign}{days}d {hours}h {minutes}m {seconds}s");
        }
        if hours != 0 {
            return format!("{sign}{hours}h {minutes}m {seconds}s");
        }
        if minutes != 0 {
            return format!("{sign}{minutes}m {seconds}s");
        }
        return format!("{sign}{}s", go_float(v, 'g', Some(4)));
    }
    let mut v = v;
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", go_float(v, 'g', Some(4)))
}

fn humanize_timestamp(v: f64) -> String {
    if !v.is_finite() {
        return go_float(v, 'g', Some(4));
    }
    let secs = v.floor();
    let nanos = ((v - secs) * 1e9).round() as u32;
    match chrono::DateTime::from_timestamp(secs as i64, nanos.min(999_999_999)) {
        Some(t) => {
            // Go's time.String(): fractional seconds without trailing zeros.
            let frac = format!("{:09}", t.timestamp_subsec_nanos());
            let frac = frac.trim_end_matches('0');
            let dot = if frac.is_empty() { "" } else { "." };
            format!("{}{dot}{frac} +0000 UTC", t.format("%Y-%m-%d %H:%M:%S"))
        }
        None => go_float(v, 'g', Some(4)),
    }
}

/// Go's `strings.Title`: upper-cases the first letter of each word; word
/// characters are letters, digits, `_` and `'`.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_sep = true;
    for c in s.chars() {
        if prev_sep {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_sep = !(c.is_alphanumeric() || c == '_' || c == '\'');
    }
    out
}

// ------------------------------------------------------- Go number format

/// Significant digits (no trailing zeros) and decimal-point position of a
/// finite non-zero `v`, shortest (None) or rounded to `sig` digits.
fn digits(v: f64, sig: Option<usize>) -> (String, i32) {
    let s = match sig {
        None => format!("{:e}", v.abs()),
        Some(p) => format!("{:.*e}", p.max(1) - 1, v.abs()),
    };
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut d: String = mant.chars().filter(char::is_ascii_digit).collect();
    while d.len() > 1 && d.ends_with('0') {
        d.pop();
    }
    (d, exp + 1)
}

fn fmt_e(neg: bool, d: &str, dp: i32, frac: usize, upper: bool) -> String {
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    out.push_str(&d[..1]);
    if frac > 0 {
        out.push('.');
        let rest = &d[1..];
        for i in 0..frac {
            out.push(rest.as_bytes().get(i).map_or('0', |&b| b as char));
        }
    }
    let exp = if d == "0" { 0 } else { dp - 1 };
    out.push(if upper { 'E' } else { 'e' });
    out.push(if exp < 0 { '-' } else { '+' });
    out.push_str(&format!("{:02}", exp.abs()));
    out
}

fn fmt_f(neg: bool, d: &str, dp: i32, frac: usize) -> String {
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if dp <= 0 {
        out.push('0');
    } else {
        for i in 0..dp as usize {
            out.push(d.as_bytes().get(i).map_or('0', |&b| b as char));
        }
    }
    if frac > 0 {
        out.push('.');
        for i in 0..frac as i32 {
            let idx = dp + i;
            out.push(if idx < 0 {
                '0'
            } else {
                d.as_bytes().get(idx as usize).map_or('0', |&b| b as char)
            });
        }
    }
    out
}

/// Formats `v` like Go's `strconv.FormatFloat(v, verb, prec, 64)` for
/// verbs `g`, `e`, `f` and `G`, `E` (`None` = shortest), with `+Inf`/`-Inf`/`NaN` as
/// `fmt` prints them.
pub fn go_float(v: f64, verb: char, prec: Option<usize>) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let neg = v.is_sign_negative();
    let upper = verb.is_ascii_uppercase();
    match verb.to_ascii_lowercase() {
        'f' => match prec {
            Some(p) => format!("{v:.p$}"),
            None => format!("{v}"),
        },
        'e' => {
            if v == 0.0 {
                return fmt_e(neg, "0", 1, prec.unwrap_or(0), upper);
            }
            let (d, dp) = digits(v, prec.map(|p| p + 1));
            let p = prec.unwrap_or(d.len() - 1);
            fmt_e(neg, &d, dp, p, upper)
        }
        _ => {
            let (d, dp) = if v == 0.0 {
                ("0".to_string(), 1)
            } else {
                digits(v, prec.map(|p| p.max(1)))
            };
            let nd = d.len() as i32;
            let (mut p, shortest) = match prec {
                None => (nd, true),
                Some(p) => (p.max(1) as i32, false),
            };
            let mut eprec = p;
            if eprec > nd && nd >= dp {
                eprec = nd;
            }
            if shortest {
                eprec = 6;
            }
            let exp = dp - 1;
            if d != "0" && (exp < -4 || exp >= eprec) {
                if p > nd {
                    p = nd;
                }
                return fmt_e(neg, &d, dp, (p - 1).max(0) as usize, upper);
            }
            if p > dp {
                p = nd;
            }
            fmt_f(neg, &d, dp, (p - dp).max(0) as usize)
        }
    }
}

/// Go's `fmt.Sprintf` for the verbs templates use.
fn sprintf(fmt: &str, args: &[Val]) -> String {
    let mut out = String::new();
    let chars: Vec<char> = fmt.chars().collect();
    let mut i = 0;
    let mut argi = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if c != '%' {
            out.push(c);
            continue;
        }
        let (mut minus, mut plus, mut zero, mut space) = (false, false, false, false);
        while let Some(&f) = chars.get(i) {
            match f {
                '-' => minus = true,
                '+' => plus = true,
                '0' => zero = true,
                ' ' => space = true,
                '#' => {}
                _ => break,
            }
            i += 1;
        }
        let mut width = None;
        while let Some(d) = chars.get(i).and_then(|c| c.to_digit(10)) {
            width = Some(width.unwrap_or(0) * 10 + d as usize);
            i += 1;
        }
        let mut prec = None;
        if chars.get(i) == Some(&'.') {
            i += 1;
            let mut p = 0;
            while let Some(d) = chars.get(i).and_then(|c| c.to_digit(10)) {
                p = p * 10 + d as usize;
                i += 1;
            }
            prec = Some(p);
        }
        let Some(&verb) = chars.get(i) else {
            out.push_str("%!(NOVERB)");
            break;
        };
        i += 1;
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(argi) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        argi += 1;
        let bad = || format!("%!{verb}({}={})", arg.type_name(), arg.print());
        let sign = |s: String, nonneg: bool| {
            if nonneg && plus {
                format!("+{s}")
            } else if nonneg && space {
                format!(" {s}")
            } else {
                s
            }
        };
        let (body, numeric) = match (verb, arg) {
            ('v', Val::Float(f)) => (sign(go_float(*f, 'g', prec), *f >= 0.0), f.is_finite()),
            ('v', Val::Int(n)) | ('d', Val::Int(n)) => (sign(n.to_string(), *n >= 0), true),
            ('v' | 's', Val::Str(s)) => (
                match prec {
                    Some(p) => s.chars().take(p).collect(),
                    None => s.clone(),
                },
                false,
            ),
            ('v', other) => (other.print(), false),
            ('f' | 'F' | 'e' | 'E' | 'g' | 'G', Val::Float(f)) => {
                let p = match verb {
                    'g' | 'G' => prec,
                    _ => Some(prec.unwrap_or(6)),
                };
                let s = go_float(*f, verb, p);
                let s = if f.is_infinite() && *f > 0.0 && !plus {
                    s
                } else {
                    sign(s, *f >= 0.0 && !f.is_infinite())
                };
                (s, f.is_finite())
            }
            ('q', Val::Str(s)) => (format!("{s:?}"), false),
            ('x', Val::Int(n)) => (format!("{n:x}"), true),
            ('X', Val::Int(n)) => (format!("{n:X}"), true),
            ('x', Val::Str(s)) => (s.bytes().map(|b| format!("{b:02x}")).collect(), false),
            ('t', Val::Bool(b)) => (b.to_string(), false),
            _ => (bad(), false),
        };
        let len = body.chars().count();
        match width {
            Some(w) if w > len => {
                let pad = w - len;
                if minus {
                    out.push_str(&body);
                    out.extend(std::iter::repeat_n(' ', pad));
                } else if zero && numeric {
                    let (s, digits) = match body.strip_prefix(['-', '+', ' ']) {
                        Some(d) => (&body[..1], d),
                        None => ("", body.as_str()),
                    };
                    out.push_str(s);
                    out.extend(std::iter::repeat_n('0', pad));
                    out.push_str(digits);
                } else {
                    out.extend(std::iter::repeat_n(' ', pad));
                    out.push_str(&body);
                }
            }
            _ => out.push_str(&body),
        }
    }
    if argi < args.len() {
        let extra: Vec<String> = args[argi..]
            .iter()
            .map(|a| format!("{}={}", a.type_name(), a.print()))
            .collect();
        out.push_str(&format!("%!(EXTRA {})", extra.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(t: &str, labels: &[(&str, &str)], value: f64) -> String {
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let ext = BTreeMap::from([
            ("dc".to_string(), "par1".to_string()),
            ("env".to_string(), "prod".to_string()),
        ]);
        let data = TemplateData {
            labels: &labels,
            external_labels: &ext,
            external_url: "",
            value,
        };
        expand(t, &data).unwrap_or_else(|e| format!("ERR {e}"))
    }

    // Expected strings are promtool 2.42's output for the same templates.
    #[test]
    fn matches_prometheus_on_values() {
        let l = [("__name__", "x"), ("i", "1")];
        let d = "{{ humanize $value }}|{{ $value | humanize1024 }}|{{ humanizeDuration $value }}|{{ humanizePercentage $value }}";
        let e = r#"{{ printf "%d|%s|%.2f|%v|%5.1f|%-6s|%q" $value $value $value $value $value "ab" "q" }}"#;
        let g = r#"{{ printf "%d" 3 }} {{ printf "%e" $value }} {{ printf "%g" $value }} {{ printf "%x" 255 }} {{ printf "%.3g" $value }} {{ printf "%08.3f" $value}} {{ printf "%+d" 5 }} {{printf "%d"}} {{ printf "%d" 1 2 }}"#;
        let cases: &[(f64, &str, &str, &str, &str)] = &[
            (
                1234567.0,
                "1.234567e+06",
                "1.235M|1.177Mi|14d 6h 56m 7s|1.235e+08%",
                "%!d(float64=1.234567e+06)|%!s(float64=1.234567e+06)|1234567.00|1.234567e+06|1234567.0|ab    |\"q\"",
                "3 1.234567e+06 1.234567e+06 ff 1.23e+06 1234567.000 +5 %!d(MISSING) 1%!(EXTRA int=2)",
            ),
            (
                1023.99,
                "1023.99",
                "1.024k|1024|17m 3s|1.024e+05%",
                "%!d(float64=1023.99)|%!s(float64=1023.99)|1023.99|1023.99|1024.0|ab    |\"q\"",
                "3 1.023990e+03 1023.99 ff 1.02e+03 1023.990 +5 %!d(MISSING) 1%!(EXTRA int=2)",
            ),
            (
                0.000123,
                "0.000123",
                "123u|0.000123|123us|0.0123%",
                "%!d(float64=0.000123)|%!s(float64=0.000123)|0.00|0.000123|  0.0|ab    |\"q\"",
                "3 1.230000e-04 0.000123 ff 0.000123 0000.000 +5 %!d(MISSING) 1%!(EXTRA int=2)",
            ),
            (
                -5.5,
                "-5.5",
                "-5.5|-5.5|-5.5s|-550%",
                "%!d(float64=-5.5)|%!s(float64=-5.5)|-5.50|-5.5| -5.5|ab    |\"q\"",
                "3 -5.500000e+00 -5.5 ff -5.5 -005.500 +5 %!d(MISSING) 1%!(EXTRA int=2)",
            ),
            (
                1e21,
                "1e+21",
                "1Z|867.4Ei|-106751991167300d -15h -30m -8s|1e+23%",
                "%!d(float64=1e+21)|%!s(float64=1e+21)|1000000000000000000000.00|1e+21|1000000000000000000000.0|ab    |\"q\"",
                "3 1.000000e+21 1e+21 ff 1e+21 1000000000000000000000.000 +5 %!d(MISSING) 1%!(EXTRA int=2)",
            ),
            (
                90061.5,
                "90061.5",
                "90.06k|87.95ki|1d 1h 1m 1s|9.006e+06%",
                "%!d(float64=90061.5)|%!s(float64=90061.5)|90061.50|90061.5|90061.5|ab    |\"q\"",
                "3 9.006150e+04 90061.5 ff 9.01e+04 90061.500 +5 %!d(MISSING) 1%!(EXTRA int=2)",
            ),
            (
                f64::NAN,
                "NaN",
                "NaN|NaN|NaN|NaN%",
                "%!d(float64=NaN)|%!s(float64=NaN)|NaN|NaN|  NaN|ab    |\"q\"",
                "3 NaN NaN ff NaN      NaN +5 %!d(MISSING) 1%!(EXTRA int=2)",
            ),
            (
                100000.0,
                "100000",
                "100k|97.66ki|1d 3h 46m 40s|1e+07%",
                "%!d(float64=100000)|%!s(float64=100000)|100000.00|100000|100000.0|ab    |\"q\"",
                "3 1.000000e+05 100000 ff 1e+05 100000.000 +5 %!d(MISSING) 1%!(EXTRA int=2)",
            ),
            (
                0.0,
                "0",
                "0|0|0s|0%",
                "%!d(float64=0)|%!s(float64=0)|0.00|0|  0.0|ab    |\"q\"",
                "3 0.000000e+00 0 ff 0 0000.000 +5 %!d(MISSING) 1%!(EXTRA int=2)",
            ),
            (
                f64::INFINITY,
                "+Inf",
                "+Inf|+Inf|+Inf|+Inf%",
                "%!d(float64=+Inf)|%!s(float64=+Inf)|+Inf|+Inf| +Inf|ab    |\"q\"",
                "3 +Inf +Inf ff +Inf     +Inf +5 %!d(MISSING) 1%!(EXTRA int=2)",
            ),
        ];
        for (v, b, dd, ee, gg) in cases {
            assert_eq!(run("{{ $value }}", &l, *v), *b, "value {v}");
            assert_eq!(run(d, &l, *v), *dd, "humanize {v}");
            assert_eq!(run(e, &l, *v), *ee, "printf {v}");
            assert_eq!(run(g, &l, *v), *gg, "printf2 {v}");
        }
    }

    #[test]
    fn labels_maps_and_strings() {
        let l = [("__name__", "x"), ("i", "1")];
        assert_eq!(run("[{{ $labels.missing }}]", &l, 1.0), "[]");
        assert_eq!(run("{{ $labels }}", &l, 1.0), "map[__name__:x i:1]");
        assert_eq!(
            run(
                r#"{{ $externalLabels }} {{ $externalURL }} {{ .Value }} {{ title "hello wORLD-x_y" }} {{ toUpper "aB" }}"#,
                &l,
                1234567.0
            ),
            "map[dc:par1 env:prod]  1.234567e+06 Hello WORLD-X_y AB"
        );
        assert_eq!(run("{{ $externalLabels.dc | toUpper }}", &l, 0.0), "PAR1");
        assert_eq!(
            run("{{ .Labels.i }}/{{ toLower \"AbC\" }}", &l, 0.0),
            "1/abc"
        );
    }

    #[test]
    fn control_flow_and_trim() {
        let l = [("i", "1")];
        let t = "{{ if gt $value 80.0 }}high{{ else if gt $value 50.0 }}mid{{ else }}low{{ end }}";
        assert_eq!(run(t, &l, 90.0), "high");
        assert_eq!(run(t, &l, 60.0), "mid");
        assert_eq!(run(t, &l, 10.0), "low");
        assert_eq!(run("a  {{- $labels.i -}}  b", &l, 0.0), "a1b");
        assert_eq!(run("{{/* note */}}x", &l, 0.0), "x");
        assert_eq!(run("{{ $v := 3 }}{{ $v }}", &l, 0.0), "3");
        assert_eq!(
            run(
                "{{ printf \"%.1f\" ($value | humanize1024 | len) }}",
                &l,
                0.0
            ),
            "%!f(int=1)"
        );
        assert!(run("{{ nosuch 1 }}", &l, 0.0).starts_with("ERR"));
        assert!(run("{{ if 1 }}", &l, 0.0).starts_with("ERR"));
        assert_eq!(
            expand_or_error(
                "{{ oops",
                &TemplateData {
                    labels: &BTreeMap::new(),
                    external_labels: &BTreeMap::new(),
                    external_url: "",
                    value: 0.0
                }
            ),
            "<error expanding template: unclosed action>"
        );
    }

    #[test]
    fn go_float_formats() {
        assert_eq!(go_float(1e6, 'g', None), "1e+06");
        assert_eq!(go_float(123456.0, 'g', None), "123456");
        assert_eq!(go_float(0.5, 'g', None), "0.5");
        assert_eq!(go_float(1.5e-7, 'g', None), "1.5e-07");
        assert_eq!(go_float(1000.0, 'g', Some(4)), "1000");
        assert_eq!(go_float(12345.0, 'g', Some(4)), "1.234e+04");
        assert_eq!(go_float(2.0, 'f', Some(2)), "2.00");
        assert_eq!(go_float(-0.0, 'g', None), "-0");
        assert_eq!(go_float(2.0, 'E', None), "2E+00");
        assert_eq!(go_float(0.125, 'E', None), "1.25E-01");
    }
}
