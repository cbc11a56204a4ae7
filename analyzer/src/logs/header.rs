//! Log header formats in Loghub's notation.
//!
//! A format such as `<Date> <Time> <Pid> <Level> <Component>: <Content>`
//! names fields in angle brackets; the text between them is a regular
//! expression fragment where runs of spaces match any whitespace. As in
//! Loghub, each field matches lazily (`.*?`), the whole line is anchored and
//! trimmed first, and the `Content` field is the message to mine.

use regex::Regex;

use crate::AnalyzerError;

/// A compiled header format.
#[derive(Debug, Clone)]
pub struct HeaderFormat {
    format: String,
    regex: Regex,
    fields: Vec<String>,
}

/// One line split by a [`HeaderFormat`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitLine<'a> {
    /// `(field, value)` for every field but `Content`, in format order.
    pub fields: Vec<(&'a str, &'a str)>,
    /// The message.
    pub content: &'a str,
}

impl HeaderFormat {
    /// Compiles `format`. It must name a `<Content>` field.
    pub fn new(format: &str) -> Result<Self, AnalyzerError> {
        let invalid = |message: String| AnalyzerError::Eval {
            what: format!("log format `{format}`"),
            message,
        };
        let mut regex = String::from("^");
        let mut fields = Vec::new();
        let mut rest = format;
        while let Some(open) = rest.find('<') {
            let Some(close) = rest[open..].find('>').map(|i| open + i) else {
                break;
            };
            let name = &rest[open + 1..close];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                // Not a field: keep it as regex text.
                push_literal(&mut regex, &rest[..=close]);
                rest = &rest[close + 1..];
                continue;
            }
            push_literal(&mut regex, &rest[..open]);
            if fields.iter().any(|f| f == name) {
                return Err(invalid(format!("field <{name}> appears twice")));
            }
            regex.push_str(&format!("(?P<{name}>.*?)"));
            fields.push(name.to_string());
            rest = &rest[close + 1..];
        }
        push_literal(&mut regex, rest);
        regex.push('$');
        if !fields.iter().any(|f| f == "Content") {
            return Err(invalid(
                "no <Content> field: name the message part <Content>".into(),
            ));
        }
        let regex = Regex::new(&regex).map_err(|e| invalid(format!("bad pattern: {e}")))?;
        Ok(HeaderFormat {
            format: format.to_string(),
            regex,
            fields,
        })
    }

    /// The format as written.
    pub fn format(&self) -> &str {
        &self.format
    }

    /// Field names in order.
    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    /// Splits a line; `None` when the line does not match the format.
    pub fn split<'a>(&'a self, line: &'a str) -> Option<SplitLine<'a>> {
        let caps = self.regex.captures(line.trim())?;
        let mut fields = Vec::with_capacity(self.fields.len());
        let mut content = "";
        for name in &self.fields {
            let value = caps.name(name).map_or("", |m| m.as_str());
            if name == "Content" {
                content = value;
            } else {
                fields.push((name.as_str(), value));
            }
        }
        Some(SplitLine { fields, content })
    }
}

/// Appends format text: runs of spaces match any whitespace.
fn push_literal(regex: &mut String, text: &str) {
    let mut in_space = false;
    for c in text.chars() {
        if c == ' ' {
            if !in_space {
                regex.push_str(r"\s+");
            }
            in_space = true;
        } else {
            in_space = false;
            regex.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_hdfs_line() {
        let f = HeaderFormat::new("<Date> <Time> <Pid> <Level> <Component>: <Content>")
            .expect("format");
        let s = f
            .split("081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_1 terminating")
            .expect("matches");
        assert_eq!(s.content, "PacketResponder 1 for block blk_1 terminating");
        assert_eq!(s.fields[4], ("Component", "dfs.DataNode$PacketResponder"));
        assert!(f.split("garbage").is_none());
    }

    #[test]
    fn optional_groups_and_brackets() {
        let f =
            HeaderFormat::new(r"<Month> <Date> <Time> <Level> <Component>(\[<PID>\])?: <Content>")
                .expect("format");
        let s = f
            .split("Jun 14 15:16:01 combo sshd(pam_unix)[19939]: check pass; user unknown")
            .expect("matches");
        assert_eq!(s.content, "check pass; user unknown");
        assert_eq!(s.fields[4], ("Component", "sshd(pam_unix)"));
        assert_eq!(s.fields[5], ("PID", "19939"));
        let s = f
            .split("Jun 14 15:16:01 combo kernel: hello")
            .expect("matches");
        assert_eq!(s.fields[5], ("PID", ""));
    }

    #[test]
    fn huge_and_odd_lines_are_split_or_refused() {
        let f = HeaderFormat::new("<Date> <Time> <Level> <Component>: <Content>").expect("format");
        let huge = format!("081109 203615 INFO a.B: {}", "x ".repeat(500_000));
        let s = f.split(&huge).expect("matches");
        assert_eq!(s.content.len(), 999_999);
        assert!(f.split("").is_none());
        assert!(f.split("\u{0}\u{fffd}\u{fffd}").is_none());
    }

    proptest::proptest! {
        #[test]
        fn random_lines_never_panic(line in "\\PC{0,120}", bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let lossy = String::from_utf8_lossy(&bytes);
            for (_, format) in crate::eval::loghub::DEFAULT_FORMATS {
                let f = HeaderFormat::new(format).expect("format");
                for l in [line.as_str(), lossy.as_ref()] {
                    if let Some(s) = f.split(l) {
                        // The content is a piece of the line.
                        proptest::prop_assert!(l.contains(s.content));
                        proptest::prop_assert_eq!(s.fields.len(), f.fields().len() - 1);
                    }
                }
            }
        }

        #[test]
        fn random_formats_compile_or_fail_cleanly(format in "[<>A-Za-z_ ()\\[\\]|?*.:-]{0,40}") {
            if let Ok(f) = HeaderFormat::new(&format) {
                proptest::prop_assert!(f.fields().iter().any(|n| n == "Content"));
                let _ = f.split("2024-01-01 INFO x: hello");
            }
        }
    }

    #[test]
    fn rejects_formats_without_content() {
        assert!(HeaderFormat::new("<Date> <Message>").is_err());
        assert!(HeaderFormat::new("<A> <A> <Content>").is_err());
    }
}
