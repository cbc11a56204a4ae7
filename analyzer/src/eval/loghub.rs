//! `vigie eval loghub`: log-parsing accuracy on Loghub-2k.
//!
//! For every `<System>/<System>_2k.log` under the data directory that has a
//! header format (built in for the Loghub systems, or given by `--formats`),
//! each line is split into header and message with the format, the messages
//! are mined by one [`TemplateMiner`] with the default configuration (the
//! same for every system), and the result is scored against
//! `<System>_2k.log_structured.csv`:
//!
//! - grouping accuracy (GA, Loghub's definition): a line is right when the set
//!   of lines given its template is exactly the set of lines of its true event;
//!   as in Drain's reference implementation, lines are grouped by their final
//!   template text;
//! - parsing accuracy (PA): a line is right when its final template text equals
//!   the ground-truth `EventTemplate` (whitespace normalised).
//!
//! Lines that do not match the header format are mined whole and counted.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::AnalyzerError;
use crate::logs::{HeaderFormat, MinerConfig, TemplateMiner};

/// Header formats of the Loghub-2k systems (Loghub's `formats.toml`).
pub const DEFAULT_FORMATS: &[(&str, &str)] = &[
    ("HDFS", "<Date> <Time> <Pid> <Level> <Component>: <Content>"),
    (
        "Hadoop",
        r"<Date> <Time> <Level> \[<Process>\] <Component>: <Content>",
    ),
    ("Spark", "<Date> <Time> <Level> <Component>: <Content>"),
    (
        "Zookeeper",
        r"<Date> <Time> - <Level>  \[<Node>:<Component>@<Id>\] - <Content>",
    ),
    (
        "BGL",
        "<Label> <Timestamp> <Date> <Node> <Time> <NodeRepeat> <Type> <Component> <Level> <Content>",
    ),
    (
        "HPC",
        "<LogId> <Node> <Component> <State> <Time> <Flag> <Content>",
    ),
    (
        "Thunderbird",
        r"<Label> <Timestamp> <Date> <User> <Month> <Day> <Time> <Location> <Component>(\[<PID>\])?: <Content>",
    ),
    (
        "Windows",
        "<Date> <Time>, <Level>                  <Component>    <Content>",
    ),
    (
        "Linux",
        r"<Month> <Date> <Time> <Level> <Component>(\[<PID>\])?: <Content>",
    ),
    (
        "Android",
        "<Date> <Time>  <Pid>  <Tid> <Level> <Component>: <Content>",
    ),
    ("Apache", r"\[<Time>\] \[<Level>\] <Content>"),
    (
        "OpenSSH",
        r"<Date> <Day> <Time> <Component> sshd\[<Pid>\]: <Content>",
    ),
    (
        "OpenStack",
        r"<Logrecord> <Date> <Time> <Pid> <Level> <Component> \[<ADDR>\] <Content>",
    ),
    (
        "Mac",
        r"<Month>  <Date> <Time> <User> <Component>\[<PID>\]( \(<Address>\))?: <Content>",
    ),
    ("HealthApp", r"<Time>\|<Component>\|<Pid>\|<Content>"),
    ("Proxifier", r"\[<Time>\] <Program> - <Content>"),
];

/// Options of `vigie eval loghub`.
#[derive(Debug, Clone)]
pub struct LoghubOptions {
    /// Directory holding `<System>/<System>_2k.log` and `_structured.csv`.
    pub data: PathBuf,
    /// TOML file `system = "<format>"` for systems without a built-in format.
    pub formats: Option<PathBuf>,
    /// Where to write predicted `<System>_2k.log_structured.csv` files.
    pub out: Option<PathBuf>,
}

/// Scores of one system.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SystemScore {
    /// System name (the directory name).
    pub system: String,
    /// Lines scored.
    pub lines: usize,
    /// Grouping accuracy in [0, 1].
    pub grouping_accuracy: f64,
    /// Parsing accuracy in [0, 1].
    pub parsing_accuracy: f64,
    /// Templates found.
    pub templates: usize,
    /// Templates in the ground truth.
    pub truth_templates: usize,
    /// Lines that did not match the header format (mined whole).
    pub unmatched_header_lines: usize,
    /// Lines whose tokens beyond the miner's cap were dropped.
    pub truncated_lines: u64,
}

/// Accuracy per system and means.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoghubReport {
    /// One row per scored system, by name.
    pub systems: Vec<SystemScore>,
    /// `(directory, reason)` of directories not scored.
    pub skipped: Vec<(String, String)>,
    /// Mean grouping accuracy over the systems (0 when none).
    pub mean_grouping_accuracy: f64,
    /// Mean parsing accuracy over the systems (0 when none).
    pub mean_parsing_accuracy: f64,
}

impl LoghubReport {
    /// `{"systems": {"HDFS": {"grouping_accuracy": a, "parsing_accuracy": b, ...}, ...},
    /// "mean_grouping_accuracy": m, "mean_parsing_accuracy": p, "skipped": {...}}`.
    pub fn to_json(&self) -> serde_json::Value {
        let systems: serde_json::Map<String, serde_json::Value> = self
            .systems
            .iter()
            .map(|s| {
                (
                    s.system.clone(),
                    serde_json::json!({
                        "grouping_accuracy": s.grouping_accuracy,
                        "parsing_accuracy": s.parsing_accuracy,
                        "lines": s.lines,
                        "templates": s.templates,
                        "truth_templates": s.truth_templates,
                        "unmatched_header_lines": s.unmatched_header_lines,
                        "truncated_lines": s.truncated_lines,
                    }),
                )
            })
            .collect();
        let skipped: serde_json::Map<String, serde_json::Value> = self
            .skipped
            .iter()
            .map(|(d, why)| (d.clone(), serde_json::Value::String(why.clone())))
            .collect();
        serde_json::json!({
            "systems": systems,
            "mean_grouping_accuracy": self.mean_grouping_accuracy,
            "mean_parsing_accuracy": self.mean_parsing_accuracy,
            "skipped": skipped,
        })
    }
}

impl std::fmt::Display for LoghubReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let width = self
            .systems
            .iter()
            .map(|s| s.system.len())
            .chain([6])
            .max()
            .unwrap_or(6);
        writeln!(
            f,
            "{:<width$}  {:>6}  {:>6}  {:>6}  {:>9}  {:>6}  {:>9}",
            "system", "GA", "PA", "lines", "templates", "truth", "unmatched"
        )?;
        for s in &self.systems {
            writeln!(
                f,
                "{:<width$}  {:>6.3}  {:>6.3}  {:>6}  {:>9}  {:>6}  {:>9}",
                s.system,
                s.grouping_accuracy,
                s.parsing_accuracy,
                s.lines,
                s.templates,
                s.truth_templates,
                s.unmatched_header_lines
            )?;
        }
        write!(
            f,
            "{:<width$}  {:>6.3}  {:>6.3}",
            "mean", self.mean_grouping_accuracy, self.mean_parsing_accuracy
        )?;
        for (dir, why) in &self.skipped {
            write!(f, "\nskipped {dir}: {why}")?;
        }
        Ok(())
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> AnalyzerError + '_ {
    move |source| AnalyzerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Built-in formats, overridden and extended by the TOML file.
fn load_formats(file: Option<&Path>) -> Result<BTreeMap<String, String>, AnalyzerError> {
    let mut formats: BTreeMap<String, String> = DEFAULT_FORMATS
        .iter()
        .map(|(s, f)| (s.to_string(), f.to_string()))
        .collect();
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(io_err(path))?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| AnalyzerError::Eval {
            what: path.display().to_string(),
            message: format!("not TOML of the form `System = \"<format>\"`: {e}"),
        })?;
        for (system, value) in table {
            let Some(format) = value.as_str() else {
                return Err(AnalyzerError::Eval {
                    what: path.display().to_string(),
                    message: format!("`{system}` must be a string such as \"<Date> <Content>\""),
                });
            };
            formats.insert(system, format.to_string());
        }
    }
    Ok(formats)
}

/// Runs the evaluation.
pub fn run(options: &LoghubOptions) -> Result<LoghubReport, AnalyzerError> {
    let formats = load_formats(options.formats.as_deref())?;
    let entries = std::fs::read_dir(&options.data).map_err(io_err(&options.data))?;
    let mut dirs: Vec<(String, PathBuf)> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err(&options.data))?;
        let path = entry.path();
        if path.is_dir() {
            dirs.push((entry.file_name().to_string_lossy().into_owned(), path));
        }
    }
    dirs.sort();
    if let Some(out) = &options.out {
        std::fs::create_dir_all(out).map_err(io_err(out))?;
    }
    let mut systems = Vec::new();
    let mut skipped = Vec::new();
    for (system, dir) in dirs {
        let log = dir.join(format!("{system}_2k.log"));
        if !log.is_file() {
            skipped.push((system.clone(), format!("no {system}_2k.log")));
            continue;
        }
        let Some(format) = formats.get(&system) else {
            skipped.push((
                system,
                "no header format: add `System = \"<format>\"` to --formats".into(),
            ));
            continue;
        };
        let truth = dir.join(format!("{system}_2k.log_structured.csv"));
        if !truth.is_file() {
            skipped.push((
                system.clone(),
                format!("no ground truth {}", truth.display()),
            ));
            continue;
        }
        let format = HeaderFormat::new(format)?;
        systems.push(evaluate_system(
            &system,
            &log,
            &truth,
            &format,
            options.out.as_deref(),
        )?);
    }
    let n = systems.len().max(1) as f64;
    let mean_grouping_accuracy = systems.iter().map(|s| s.grouping_accuracy).sum::<f64>() / n;
    let mean_parsing_accuracy = systems.iter().map(|s| s.parsing_accuracy).sum::<f64>() / n;
    Ok(LoghubReport {
        systems,
        skipped,
        mean_grouping_accuracy,
        mean_parsing_accuracy,
    })
}

/// The mined template of every line of a log, plus counters.
#[derive(Debug, Clone)]
pub struct MinedLog {
    /// Final template id per line.
    pub ids: Vec<u64>,
    /// Final template text per line.
    pub templates: Vec<String>,
    /// Lines that did not match the header format.
    pub unmatched_header_lines: usize,
    /// Lines truncated by the miner.
    pub truncated_lines: u64,
}

/// Splits and mines `lines` with one fresh default miner.
pub fn mine_lines<'a>(lines: impl IntoIterator<Item = &'a str>, format: &HeaderFormat) -> MinedLog {
    let mut miner = TemplateMiner::new(MinerConfig::default());
    let mut unmatched = 0;
    let mut matches = Vec::new();
    for line in lines {
        let content = match format.split(line) {
            Some(split) => split.content,
            None => {
                unmatched += 1;
                line.trim()
            }
        };
        matches.push(miner.add(content));
    }
    let mut ids = Vec::with_capacity(matches.len());
    let mut templates = Vec::with_capacity(matches.len());
    for m in matches {
        templates.push(
            miner
                .template(m.id)
                .unwrap_or_else(|| m.template.to_string()),
        );
        ids.push(m.id);
    }
    MinedLog {
        ids,
        templates,
        unmatched_header_lines: unmatched,
        truncated_lines: miner.stats().truncated_lines,
    }
}

fn evaluate_system(
    system: &str,
    log: &Path,
    truth: &Path,
    format: &HeaderFormat,
    out: Option<&Path>,
) -> Result<SystemScore, AnalyzerError> {
    let raw = std::fs::read(log).map_err(io_err(log))?;
    let text = String::from_utf8_lossy(&raw);
    let mut lines: Vec<&str> = text.lines().collect();
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }

    let truth_text = std::fs::read(truth).map_err(io_err(truth))?;
    let rows = parse_csv(&String::from_utf8_lossy(&truth_text));
    let bad = |message: String| AnalyzerError::Eval {
        what: truth.display().to_string(),
        message,
    };
    let Some((header, rows)) = rows.split_first() else {
        return Err(bad("empty file".into()));
    };
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| bad(format!("no `{name}` column")))
    };
    let (event_col, template_col) = (col("EventId")?, col("EventTemplate")?);
    if rows.len() != lines.len() {
        return Err(bad(format!(
            "{} rows for {} lines in {}",
            rows.len(),
            lines.len(),
            log.display()
        )));
    }
    let truth_events: Vec<&str> = rows
        .iter()
        .map(|r| r.get(event_col).map_or("", String::as_str))
        .collect();
    let truth_templates: Vec<&str> = rows
        .iter()
        .map(|r| r.get(template_col).map_or("", String::as_str))
        .collect();

    let mined = mine_lines(lines.iter().copied(), format);
    let grouping_accuracy = grouping_accuracy(&mined.templates, &truth_events);
    let correct = mined
        .templates
        .iter()
        .zip(&truth_templates)
        .filter(|(p, t)| normalise(p) == normalise(t))
        .count();
    let parsing_accuracy = correct as f64 / lines.len().max(1) as f64;

    if let Some(out) = out {
        write_structured(&out.join(format!("{system}_2k.log_structured.csv")), &mined)?;
    }
    let mut distinct: Vec<&String> = mined.templates.iter().collect();
    distinct.sort();
    distinct.dedup();
    let mut truth_distinct = truth_events.clone();
    truth_distinct.sort_unstable();
    truth_distinct.dedup();
    Ok(SystemScore {
        system: system.to_string(),
        lines: lines.len(),
        grouping_accuracy,
        parsing_accuracy,
        templates: distinct.len(),
        truth_templates: truth_distinct.len(),
        unmatched_header_lines: mined.unmatched_header_lines,
        truncated_lines: mined.truncated_lines,
    })
}

/// Loghub's grouping accuracy: share of lines whose predicted group is
/// exactly their true group.
pub fn grouping_accuracy<P: std::hash::Hash + Eq, T: std::hash::Hash + Eq>(
    predicted: &[P],
    truth: &[T],
) -> f64 {
    let n = predicted.len().min(truth.len());
    if n == 0 {
        return 0.0;
    }
    let mut truth_sizes: HashMap<&T, usize> = HashMap::new();
    for t in &truth[..n] {
        *truth_sizes.entry(t).or_default() += 1;
    }
    let mut groups: HashMap<&P, Vec<usize>> = HashMap::new();
    for (i, p) in predicted[..n].iter().enumerate() {
        groups.entry(p).or_default().push(i);
    }
    let mut correct = 0;
    for members in groups.values() {
        let first = &truth[members[0]];
        if members.iter().all(|&i| truth[i] == *first)
            && truth_sizes.get(first) == Some(&members.len())
        {
            correct += members.len();
        }
    }
    correct as f64 / n as f64
}

fn normalise(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Writes `LineId,EventId,EventTemplate`.
fn write_structured(path: &Path, mined: &MinedLog) -> Result<(), AnalyzerError> {
    let mut out = String::from("LineId,EventId,EventTemplate\n");
    for (i, (id, template)) in mined.ids.iter().zip(&mined.templates).enumerate() {
        let _ = writeln!(out, "{},{id:016x},{}", i + 1, csv_field(template));
    }
    std::fs::write(path, out).map_err(io_err(path))
}

/// Quotes a CSV field when needed (RFC 4180).
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) || s.starts_with(' ') || s.ends_with(' ') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Parses RFC 4180 CSV (quoted fields may hold commas, quotes and newlines).
pub fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut in_quotes = false;
    let mut any = false;
    while let Some(c) = chars.next() {
        any = true;
        if in_quotes {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    field.push('"');
                    chars.next();
                } else {
                    in_quotes = false;
                }
            } else {
                field.push(c);
            }
            continue;
        }
        match c {
            '"' => in_quotes = true,
            ',' => row.push(std::mem::take(&mut field)),
            '\r' => {}
            '\n' => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
                any = false;
            }
            _ => field.push(c),
        }
    }
    if any {
        row.push(field);
        rows.push(row);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_round_trip() {
        let text = "a,b,c\n1,\"x, \"\"y\"\"\",z\r\n2,,\"multi\nline\"\n";
        let rows = parse_csv(text);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1], vec!["1", "x, \"y\"", "z"]);
        assert_eq!(rows[2], vec!["2", "", "multi\nline"]);
        assert_eq!(csv_field("x, \"y\""), "\"x, \"\"y\"\"\"");
        assert_eq!(
            parse_csv(&format!("{}\n", csv_field("x, \"y\"")))[0][0],
            "x, \"y\""
        );
    }

    #[test]
    fn grouping_accuracy_is_loghubs() {
        // Group {0,1} is exact; {2} is split from {3} in the truth? no: truth
        // puts 2 and 3 together, prediction splits them: both wrong.
        let pred = ["a", "a", "b", "c"];
        let truth = ["x", "x", "y", "y"];
        assert!((grouping_accuracy(&pred, &truth) - 0.5).abs() < 1e-12);
        // Over-merging is wrong for every member.
        let pred = ["a", "a", "a"];
        let truth = ["x", "x", "y"];
        assert_eq!(grouping_accuracy(&pred, &truth), 0.0);
    }

    #[test]
    fn default_formats_compile() {
        for (system, format) in DEFAULT_FORMATS {
            assert!(HeaderFormat::new(format).is_ok(), "{system}");
        }
    }

    #[test]
    fn formats_file_overrides_and_rejects_non_strings() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f.toml");
        std::fs::write(&path, "HDFS = '<Content>'\nMine = '<A> <Content>'\n").expect("write");
        let f = load_formats(Some(&path)).expect("formats");
        assert_eq!(f["HDFS"], "<Content>");
        assert_eq!(f["Mine"], "<A> <Content>");
        std::fs::write(&path, "HDFS = 3\n").expect("write");
        assert!(load_formats(Some(&path)).is_err());
    }

    #[test]
    fn run_on_a_tiny_system() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sys = dir.path().join("Tiny");
        std::fs::create_dir(&sys).expect("mkdir");
        std::fs::write(
            sys.join("Tiny_2k.log"),
            "1 INFO: open file 1.txt\n2 INFO: open file 2.txt\n3 WARN: disk 90% full\nno header here\n",
        )
        .expect("write");
        std::fs::write(
            sys.join("Tiny_2k.log_structured.csv"),
            "LineId,N,Level,Content,EventId,EventTemplate\n\
             1,1,INFO,open file 1.txt,E1,open file <*>.txt\n\
             2,2,INFO,open file 2.txt,E1,open file <*>.txt\n\
             3,3,WARN,disk 90% full,E2,disk <*>% full\n\
             4,,,no header here,E3,no header here\n",
        )
        .expect("write");
        let formats = dir.path().join("formats.toml");
        std::fs::write(&formats, "Tiny = '<N> <Level>: <Content>'\n").expect("write");
        let out = dir.path().join("out");
        let report = run(&LoghubOptions {
            data: dir.path().to_path_buf(),
            formats: Some(formats),
            out: Some(out.clone()),
        })
        .expect("run");
        assert_eq!(report.systems.len(), 1);
        let s = &report.systems[0];
        assert_eq!(s.unmatched_header_lines, 1);
        assert_eq!(s.grouping_accuracy, 1.0);
        assert_eq!(s.parsing_accuracy, 1.0);
        let json = report.to_json();
        assert_eq!(json["systems"]["Tiny"]["grouping_accuracy"], 1.0);
        assert_eq!(json["mean_parsing_accuracy"], 1.0);
        let written =
            std::fs::read_to_string(out.join("Tiny_2k.log_structured.csv")).expect("output");
        let rows = parse_csv(&written);
        assert_eq!(rows[0], vec!["LineId", "EventId", "EventTemplate"]);
        assert_eq!(rows[3][2], "disk <*>% full");
        assert!(report.to_string().contains("mean"));
    }
}
