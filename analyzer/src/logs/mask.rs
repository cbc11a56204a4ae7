//! Tokenising and masking of log content.
//!
//! Content is split on whitespace into words. Inside each word, the parts
//! that are almost certainly variables are replaced by [`WILDCARD`] while the
//! punctuation around them is kept, so `uid=0` becomes `uid=<*>`,
//! `blk_-6952295868487656571` becomes `blk_<*>` and `/10.0.0.5:50010`
//! becomes `/<*>:<*>`:
//!
//! - IPv4 addresses and UUIDs as a whole;
//! - every alphanumeric run that contains a digit: a run of hex digits
//!   (`0x1f`, `9f4ef63`, `1234`) or of mixed letters (`12ms`, `3a9z`) becomes
//!   `<*>`; a word followed by digits keeps the word (`node12` → `node<*>`,
//!   `v2` → `v<*>`); a sign glued to a number (`-12`, `blk_-3`) goes with it;
//! - a word longer than [`Masker::max_token_len`] bytes as a whole.
//!
//! Consecutive words that are only variables and punctuation (`@0x1 @0x2
//! @0x3)`) collapse into one (`@<*>)`), so variable-length lists do not change
//! the token count.

use serde::{Deserialize, Serialize};

/// The variable placeholder, as in Loghub's ground truth.
pub const WILDCARD: &str = "<*>";

/// Masking limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Masker {
    /// Words beyond this count are dropped (the line counts as truncated).
    pub max_tokens: usize,
    /// Words longer than this many bytes are masked whole.
    pub max_token_len: usize,
}

impl Default for Masker {
    fn default() -> Self {
        Masker {
            max_tokens: 512,
            max_token_len: 256,
        }
    }
}

/// Masked tokens of one line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tokens {
    /// The masked words.
    pub tokens: Vec<String>,
    /// True when words beyond [`Masker::max_tokens`] were dropped.
    pub truncated: bool,
}

impl Masker {
    /// Splits `content` into masked words.
    pub fn tokenize(&self, content: &str) -> Tokens {
        let mut tokens: Vec<String> = Vec::new();
        let mut truncated = false;
        // Whether the last pushed token is variables-and-punctuation only.
        let mut last_var = false;
        for (words, word) in content.split_whitespace().enumerate() {
            if words == self.max_tokens {
                truncated = true;
                break;
            }
            let masked = if word.len() > self.max_token_len || is_date_word(word) {
                WILDCARD.to_string()
            } else if last_var && is_unit_word(word) {
                // `1.5 KB,` is one value.
                let core = word.trim_matches(|c: char| !c.is_alphanumeric());
                word.replacen(core, WILDCARD, 1)
            } else {
                mask_word(word)
            };
            // A repeated masked token (`blk_<*> blk_<*> ...`) is a list.
            if masked.contains(WILDCARD) && tokens.last() == Some(&masked) {
                continue;
            }
            let var = is_variable_only(&masked);
            if var
                && last_var
                && let Some(prev) = tokens.last_mut()
            {
                // prefix of the previous + <*> + suffix of this one.
                let pre_end = prev.find(WILDCARD).unwrap_or(0);
                let suf_start = masked.rfind(WILDCARD).map_or(0, |i| i + WILDCARD.len());
                let merged = format!("{}{WILDCARD}{}", &prev[..pre_end], &masked[suf_start..]);
                *prev = merged;
                continue;
            }
            last_var = var;
            tokens.push(masked);
        }
        Tokens { tokens, truncated }
    }
}

/// Day and month names, as in timestamps.
const DATE_WORDS: [&str; 19] = [
    "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun", "Jan", "Feb", "Mar", "Apr", "May", "Jun",
    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// True for a day or month abbreviation (with punctuation around).
fn is_date_word(word: &str) -> bool {
    let core = word.trim_matches(|c: char| !c.is_alphanumeric());
    DATE_WORDS.contains(&core)
}

/// Units written after a number.
const UNIT_WORDS: [&str; 17] = [
    "B", "KB", "MB", "GB", "TB", "KiB", "MiB", "GiB", "bytes", "ms", "us", "ns", "s", "sec",
    "secs", "seconds", "min",
];

/// True for a unit such as `KB` or `ms` (with punctuation around).
fn is_unit_word(word: &str) -> bool {
    let core = word.trim_matches(|c: char| !c.is_alphanumeric());
    UNIT_WORDS.contains(&core)
}

/// True when `token` has a wildcard and nothing alphanumeric besides.
pub fn is_variable_only(token: &str) -> bool {
    token.contains(WILDCARD)
        && !token
            .replace(WILDCARD, "")
            .chars()
            .any(char::is_alphanumeric)
}

fn is_hex_run(run: &str) -> bool {
    run.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `d+.d+.d+.d+` at the start of `s`: its byte length.
fn ipv4_len(s: &[u8]) -> Option<usize> {
    let mut i = 0;
    for part in 0..4 {
        let start = i;
        while i < s.len() && s[i].is_ascii_digit() && i - start < 3 {
            i += 1;
        }
        if i == start {
            return None;
        }
        if part < 3 {
            if i >= s.len() || s[i] != b'.' {
                return None;
            }
            i += 1;
        }
    }
    if i < s.len() && s[i].is_ascii_alphanumeric() {
        return None;
    }
    Some(i)
}

/// `8-4-4-4-12` hex digits at the start of `s`: its byte length.
fn uuid_len(s: &[u8]) -> Option<usize> {
    const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
    let mut i = 0;
    for (g, len) in GROUPS.iter().enumerate() {
        for _ in 0..*len {
            if i >= s.len() || !s[i].is_ascii_hexdigit() {
                return None;
            }
            i += 1;
        }
        if g < 4 {
            if i >= s.len() || s[i] != b'-' {
                return None;
            }
            i += 1;
        }
    }
    if i < s.len() && s[i].is_ascii_alphanumeric() {
        return None;
    }
    Some(i)
}

/// Masks the variable parts of one whitespace-free word.
pub fn mask_word(word: &str) -> String {
    let bytes = word.as_bytes();
    let mut out = String::with_capacity(word.len());
    let mut i = 0;
    while i < bytes.len() {
        let at_boundary = i == 0 || !is_alnum_at(word, i - 1);
        if at_boundary
            && bytes[i].is_ascii_digit()
            && let Some(n) = ipv4_len(&bytes[i..])
        {
            push_wildcard(&mut out);
            i += n;
            continue;
        }
        if at_boundary
            && bytes[i].is_ascii_hexdigit()
            && let Some(n) = uuid_len(&bytes[i..])
        {
            push_wildcard(&mut out);
            i += n;
            continue;
        }
        // A sign glued to a number after a non-alphanumeric: part of it.
        if (bytes[i] == b'-' || bytes[i] == b'+')
            && at_boundary
            && i + 1 < bytes.len()
            && bytes[i + 1].is_ascii_digit()
        {
            i += 1;
            let end = run_end(word, i);
            mask_run(&word[i..end], &mut out, true);
            i = end;
            continue;
        }
        let Some(c) = word[i..].chars().next() else {
            break;
        };
        if c.is_alphanumeric() {
            let end = run_end(word, i);
            mask_run(&word[i..end], &mut out, false);
            i = end;
        } else {
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

fn is_alnum_at(word: &str, byte_idx: usize) -> bool {
    // The previous char may be multi-byte: find its start.
    let mut start = byte_idx;
    while !word.is_char_boundary(start) {
        start -= 1;
    }
    word[start..]
        .chars()
        .next()
        .is_some_and(char::is_alphanumeric)
}

fn run_end(word: &str, start: usize) -> usize {
    word[start..]
        .char_indices()
        .find(|(_, c)| !c.is_alphanumeric())
        .map_or(word.len(), |(j, _)| start + j)
}

fn push_wildcard(out: &mut String) {
    if !out.ends_with(WILDCARD) {
        out.push_str(WILDCARD);
    }
}

/// Masks one alphanumeric run.
fn mask_run(run: &str, out: &mut String, signed: bool) {
    let long_hex = run.len() >= 8 && is_hex_run(run);
    if !long_hex && !run.bytes().any(|b| b.is_ascii_digit()) {
        out.push_str(run);
        return;
    }
    if long_hex {
        push_wildcard(out);
        return;
    }
    if signed || is_hex_run(run) {
        push_wildcard(out);
        return;
    }
    // letters followed by digits only: keep the letters.
    let split = run
        .char_indices()
        .find(|(_, c)| c.is_ascii_digit())
        .map_or(run.len(), |(j, _)| j);
    let (head, tail) = run.split_at(split);
    if !head.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()) {
        out.push_str(head);
        out.push_str(WILDCARD);
    } else {
        push_wildcard(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> String {
        mask_word(s)
    }

    #[test]
    fn masks_variable_parts_and_keeps_punctuation() {
        assert_eq!(m("uid=0"), "uid=<*>");
        assert_eq!(m("blk_-6952295868487656571"), "blk_<*>");
        assert_eq!(m("blk_38865049064139660"), "blk_<*>");
        assert_eq!(m("/10.250.19.102:50010"), "/<*>:<*>");
        assert_eq!(m("0x7fed806eb5d"), "<*>");
        assert_eq!(m("12ms"), "<*>");
        assert_eq!(m("node-246"), "node-<*>");
        assert_eq!(m("v2.6"), "v<*>.<*>");
        assert_eq!(m("-5"), "<*>");
        assert_eq!(m("123e4567-e89b-12d3-a456-426614174000"), "<*>");
        assert_eq!(m("terminating"), "terminating");
        assert_eq!(m("(HWID=1973)"), "(HWID=<*>)");
        assert_eq!(m("héllo=é1"), "héllo=é<*>");
    }

    #[test]
    fn collapses_variable_lists() {
        let t = Masker::default().tokenize("stack @0x1a @0x2b @0x3c) done");
        assert_eq!(t.tokens, vec!["stack", "@<*>)", "done"]);
        let t = Masker::default().tokenize("delete blk_1 blk_-2 blk_3 at Sun Jul 17 15:09:15 2005");
        assert_eq!(t.tokens, vec!["delete", "blk_<*>", "at", "<*>"]);
        assert_eq!(mask_word("mask=ffffffff"), "mask=<*>");
        let t = Masker::default().tokenize("(size 1.5 KB, free 3 B)");
        assert_eq!(t.tokens, vec!["(size", "<*>,", "free", "<*>)"]);
        assert!(!t.truncated);
    }

    #[test]
    fn truncates_long_lines() {
        let line = "a ".repeat(2000);
        let t = Masker::default().tokenize(&line);
        assert_eq!(t.tokens.len(), 512);
        assert!(t.truncated);
        let long = "x".repeat(100_000);
        assert_eq!(Masker::default().tokenize(&long).tokens, vec![WILDCARD]);
    }
}
