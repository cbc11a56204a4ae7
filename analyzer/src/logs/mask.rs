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
//!   `v2` → `v<*>`, also when its letters are hex digits: `ee0` → `ee<*>`
//!   like `alt0` → `alt<*>`, interface names); a sign glued to a number
//!   (`-12`, `blk_-3`) goes with it;
//! - a word longer than [`Masker::max_token_len`] bytes as a whole.
//!
//! A quoted value with spaces (`tag="View Lock",`) is one word, when it
//! closes within `MAX_QUOTED_WORDS` words.
//!
//! Consecutive words that are only variables and punctuation (`@0x1 @0x2
//! @0x3)`) collapse into one (`@<*>)`), so variable-length lists do not change
//! the token count.
//!
//! The miner tokenises with [`Masker::tokenize_into`]: the tokens go into one
//! reusable [`TokenBuf`] (no allocation per token or line), with byte-level
//! fast paths for ASCII (whitespace, words with no digit left as they are);
//! the result is the same as [`Masker::tokenize`]'s.

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

/// Masked tokens of one line in one reusable buffer: the tokens' text
/// back to back and their byte ranges, so tokenising a line allocates
/// nothing once the buffer has grown to the longest line.
#[derive(Debug, Clone, Default)]
pub struct TokenBuf {
    text: String,
    ranges: Vec<(usize, usize)>,
    /// Scratch for the suffix of a token merged into the previous one.
    suffix: String,
    truncated: bool,
}

impl TokenBuf {
    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// True when the line had no token.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Token `i` (panics when out of range, like slice indexing).
    pub fn get(&self, i: usize) -> &str {
        let (s, e) = self.ranges[i];
        &self.text[s..e]
    }

    /// The tokens in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.ranges.iter().map(|&(s, e)| &self.text[s..e])
    }

    /// True when words beyond [`Masker::max_tokens`] were dropped.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    fn clear(&mut self) {
        self.text.clear();
        self.ranges.clear();
        self.truncated = false;
    }
}

impl Masker {
    /// Splits `content` into masked words.
    pub fn tokenize(&self, content: &str) -> Tokens {
        let mut buf = TokenBuf::default();
        self.tokenize_into(content, &mut buf);
        Tokens {
            tokens: buf.iter().map(str::to_string).collect(),
            truncated: buf.truncated,
        }
    }

    /// Splits `content` into masked words, into `buf` (cleared first).
    pub fn tokenize_into(&self, content: &str, buf: &mut TokenBuf) {
        buf.clear();
        // Whether the last pushed token is variables-and-punctuation only.
        let mut last_var = false;
        let mut split = Words(content);
        let mut words = 0;
        while let Some((mut word, mut plain)) = split.next_word() {
            if words == self.max_tokens {
                buf.truncated = true;
                break;
            }
            words += 1;
            // `key="a value with spaces"` is one word.
            if let Some(end) = quoted_value_end(word, split.0) {
                let at = word.as_ptr() as usize - content.as_ptr() as usize;
                let rest_at = split.0.as_ptr() as usize - content.as_ptr() as usize;
                word = &content[at..rest_at + end];
                split.0 = &content[rest_at + end..];
                plain = false;
            }
            let start = buf.text.len();
            let maybe_wild = if word.len() > self.max_token_len || is_date_word(word) {
                buf.text.push_str(WILDCARD);
                true
            } else if last_var && let Some((s, e)) = unit_core(word) {
                // `1.5 KB,` is one value.
                buf.text.push_str(&word[..s]);
                buf.text.push_str(WILDCARD);
                buf.text.push_str(&word[e..]);
                true
            } else if plain {
                buf.text.push_str(word);
                false
            } else {
                mask_word_into(word, &mut buf.text)
            };
            let masked = &buf.text[start..];
            let wild = maybe_wild && has_wildcard(masked);
            // A repeated masked token (`blk_<*> blk_<*> ...`) is a list.
            if wild
                && let Some(&(ps, pe)) = buf.ranges.last()
                && buf.text[ps..pe] == *masked
            {
                buf.text.truncate(start);
                continue;
            }
            let var = wild && !masked.chars().any(char::is_alphanumeric);
            if var
                && last_var
                && let Some(prev) = buf.ranges.last_mut()
            {
                // prefix of the previous + <*> + suffix of this one.
                let pre_end = find_wildcard(&buf.text[prev.0..prev.1]).unwrap_or(0);
                let suf_start = rfind_wildcard(masked).map_or(0, |i| i + WILDCARD.len());
                buf.suffix.clear();
                buf.suffix.push_str(&masked[suf_start..]);
                // The previous token ends the text before this one.
                buf.text.truncate(prev.0 + pre_end);
                buf.text.push_str(WILDCARD);
                buf.text.push_str(&buf.suffix);
                prev.1 = buf.text.len();
                continue;
            }
            last_var = var;
            buf.ranges.push((start, buf.text.len()));
        }
    }
}

/// The words of a line, as `str::split_whitespace` splits them, with a
/// byte-level fast path for ASCII.
struct Words<'a>(&'a str);

/// Words glued to a `key="` value that the word does not close, at most.
const MAX_QUOTED_WORDS: usize = 8;

/// When `word` opens a quoted value (`tag="View`) that `rest` (the text
/// after the word) closes within [`MAX_QUOTED_WORDS`] words (`Lock",`): the
/// byte length of `rest` up to the end of the closing word.
fn quoted_value_end(word: &str, rest: &str) -> Option<usize> {
    if !word.as_bytes().contains(&b'"') {
        return None;
    }
    let open = word.find("=\"")?;
    if word[open + 2..].contains('"') {
        return None;
    }
    let close = rest.find('"')?;
    // The closing word ends at the next whitespace (or the end).
    let end = close + Words(&rest[close..]).next().map_or(0, str::len);
    let glued = Words(&rest[..end]).count();
    (glued <= MAX_QUOTED_WORDS && !rest[..close].contains('=')).then_some(end)
}

/// True for the ASCII characters `char::is_whitespace` accepts.
#[inline]
fn ascii_space(b: u8) -> bool {
    b == b' ' || (b'\t'..=b'\r').contains(&b)
}

/// The non-ASCII character starting at byte `i` of `s` (a char boundary):
/// its length and whether it is whitespace.
#[cold]
fn wide_char_at(s: &str, i: usize) -> (usize, bool) {
    s[i..]
        .chars()
        .next()
        .map_or((1, false), |c| (c.len_utf8(), c.is_whitespace()))
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        self.next_word().map(|(w, _)| w)
    }
}

impl<'a> Words<'a> {
    /// The next word and whether it is a [`plain_word`], found in the same
    /// pass over its bytes.
    fn next_word(&mut self) -> Option<(&'a str, bool)> {
        let s = self.0;
        let bytes = s.as_bytes();
        let mut i = 0;
        // Skip whitespace.
        while i < bytes.len() {
            let b = bytes[i];
            if b.is_ascii() {
                if !ascii_space(b) {
                    break;
                }
                i += 1;
            } else {
                let (n, space) = wide_char_at(s, i);
                if !space {
                    break;
                }
                i += n;
            }
        }
        if i == bytes.len() {
            self.0 = "";
            return None;
        }
        let start = i;
        let mut plain = true;
        let mut hex_run = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b > b' ' && b < 0x80 {
                if b.is_ascii_hexdigit() {
                    hex_run += 1;
                    if b <= b'9' || hex_run == 8 {
                        plain = false;
                    }
                } else {
                    hex_run = 0;
                    plain &= b != b'<';
                }
                i += 1;
            } else if b.is_ascii() {
                if ascii_space(b) {
                    break;
                }
                i += 1;
            } else {
                let (n, space) = wide_char_at(s, i);
                if space {
                    break;
                }
                plain = false;
                i += n;
            }
        }
        self.0 = &s[i..];
        Some((&s[start..i], plain))
    }
}

/// Byte index of the first [`WILDCARD`] in `s` (faster than `str::find` on
/// the short strings of tokens).
#[inline]
pub fn find_wildcard(s: &str) -> Option<usize> {
    s.as_bytes()
        .windows(3)
        .position(|w| w == WILDCARD.as_bytes())
}

/// Byte index of the last [`WILDCARD`] in `s`.
#[inline]
pub fn rfind_wildcard(s: &str) -> Option<usize> {
    s.as_bytes()
        .windows(3)
        .rposition(|w| w == WILDCARD.as_bytes())
}

/// True when `s` holds [`WILDCARD`] (faster than `str::contains` on the
/// short strings of tokens).
#[inline]
pub fn has_wildcard(s: &str) -> bool {
    find_wildcard(s).is_some()
}

/// Day and month names, as in timestamps.
const DATE_WORDS: [&str; 19] = [
    "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun", "Jan", "Feb", "Mar", "Apr", "May", "Jun",
    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// True for a day or month abbreviation (with punctuation around).
fn is_date_word(word: &str) -> bool {
    let b = word.as_bytes();
    if b.len() < 3 {
        return false;
    }
    // Cheap rejections of the common case, a word starting with its core:
    // date words start with an upper-case letter and have 3 letters.
    if b[0].is_ascii_alphanumeric()
        && (!b[0].is_ascii_uppercase() || b.get(3).is_some_and(u8::is_ascii_alphanumeric))
    {
        return false;
    }
    let (s, e) = core_range(word);
    e - s == 3 && DATE_WORDS.contains(&&word[s..e])
}

/// Units written after a number.
const UNIT_WORDS: [&str; 17] = [
    "B", "KB", "MB", "GB", "TB", "KiB", "MiB", "GiB", "bytes", "ms", "us", "ns", "s", "sec",
    "secs", "seconds", "min",
];

/// For a unit such as `KB` or `ms` (with punctuation around): the byte
/// range of the unit.
fn unit_core(word: &str) -> Option<(usize, usize)> {
    let (s, e) = core_range(word);
    UNIT_WORDS.contains(&&word[s..e]).then_some((s, e))
}

/// Byte range of `word` without its leading and trailing non-alphanumeric
/// characters.
fn core_range(word: &str) -> (usize, usize) {
    let bytes = word.as_bytes();
    if bytes.is_ascii() {
        let Some(start) = bytes.iter().position(u8::is_ascii_alphanumeric) else {
            return (word.len(), word.len());
        };
        let end = bytes
            .iter()
            .rposition(u8::is_ascii_alphanumeric)
            .map_or(start, |e| e + 1);
        return (start, end);
    }
    let start = word
        .char_indices()
        .find(|(_, c)| c.is_alphanumeric())
        .map_or(word.len(), |(i, _)| i);
    let end = word[start..]
        .char_indices()
        .rev()
        .find(|(_, c)| c.is_alphanumeric())
        .map_or(start, |(i, c)| start + i + c.len_utf8());
    (start, end)
}

/// True when `token` has a wildcard and nothing alphanumeric besides.
pub fn is_variable_only(token: &str) -> bool {
    // `<`, `*` and `>` are not alphanumeric: no need to remove the wildcards.
    has_wildcard(token) && !token.chars().any(char::is_alphanumeric)
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
    let mut out = String::with_capacity(word.len());
    let _ = mask_word_into(word, &mut out);
    out
}

/// The character starting at byte `i` of `word` (a char boundary) and
/// whether it is alphanumeric; ASCII without decoding.
fn char_at(word: &str, i: usize) -> (usize, bool) {
    let b = word.as_bytes()[i];
    if b.is_ascii() {
        return (1, b.is_ascii_alphanumeric());
    }
    word[i..]
        .chars()
        .next()
        .map_or((1, false), |c| (c.len_utf8(), c.is_alphanumeric()))
}

/// True when masking leaves `word` as it is and it holds no `<*>` for
/// certain: ASCII without digits (so no number, address or signed value),
/// without a run of 8 hex letters (a hex value or the start of a UUID) and
/// without `<`.
fn plain_word(word: &str) -> bool {
    let mut hex_run = 0;
    for &b in word.as_bytes() {
        if b.is_ascii_digit() || !b.is_ascii() || b == b'<' {
            return false;
        }
        if b.is_ascii_hexdigit() {
            hex_run += 1;
            if hex_run == 8 {
                return false;
            }
        } else {
            hex_run = 0;
        }
    }
    true
}

/// Appends `word` masked to `out`; false when the result holds no `<*>`
/// for certain.
fn mask_word_into(word: &str, out: &mut String) -> bool {
    if plain_word(word) {
        out.push_str(word);
        return false;
    }
    let start = out.len();
    let bytes = word.as_bytes();
    let mut i = 0;
    // Whether the previous character is alphanumeric.
    let mut prev_alnum = false;
    while i < bytes.len() {
        let b = bytes[i];
        if !prev_alnum {
            if b.is_ascii_digit()
                && let Some(n) = ipv4_len(&bytes[i..])
            {
                push_wildcard(out, start);
                i += n;
                prev_alnum = true;
                continue;
            }
            if b.is_ascii_hexdigit()
                && let Some(n) = uuid_len(&bytes[i..])
            {
                push_wildcard(out, start);
                i += n;
                prev_alnum = true;
                continue;
            }
            // A sign glued to a number after a non-alphanumeric: part of it.
            if (b == b'-' || b == b'+') && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
                let end = run_end(word, i + 1);
                mask_run(&word[i + 1..end], out, true, start);
                i = end;
                prev_alnum = true;
                continue;
            }
        }
        let (len, alnum) = char_at(word, i);
        if alnum {
            let end = run_end(word, i);
            mask_run(&word[i..end], out, false, start);
            i = end;
        } else {
            out.push_str(&word[i..i + len]);
            i += len;
        }
        prev_alnum = alnum;
    }
    true
}

/// End of the alphanumeric run starting at byte `start`.
fn run_end(word: &str, start: usize) -> usize {
    let bytes = word.as_bytes();
    let mut i = start;
    while i < bytes.len() {
        if bytes[i].is_ascii_alphanumeric() {
            i += 1;
            continue;
        }
        let (len, alnum) = char_at(word, i);
        if !alnum {
            break;
        }
        i += len;
    }
    i
}

/// Appends `<*>` unless the token (from `start`) already ends with one.
fn push_wildcard(out: &mut String, start: usize) {
    if !out.as_bytes()[start..].ends_with(WILDCARD.as_bytes()) {
        out.push_str(WILDCARD);
    }
}

/// Masks one alphanumeric run.
fn mask_run(run: &str, out: &mut String, signed: bool, start: usize) {
    let bytes = run.as_bytes();
    let first_digit = bytes.iter().position(u8::is_ascii_digit);
    let all_hex = bytes.iter().all(u8::is_ascii_hexdigit);
    let long_hex = bytes.len() >= 8 && all_hex;
    let Some(split) = first_digit else {
        if long_hex {
            push_wildcard(out, start);
        } else {
            out.push_str(run);
        }
        return;
    };
    // letters followed by digits only: keep the letters (`node12`, and
    // short hex-looking names too: `ee0` like `alt0`).
    let name_number = split > 0 && bytes[split..].iter().all(u8::is_ascii_digit);
    if signed || long_hex || (all_hex && !name_number) {
        push_wildcard(out, start);
        return;
    }
    if name_number {
        out.push_str(&run[..split]);
        out.push_str(WILDCARD);
    } else {
        push_wildcard(out, start);
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
        // Letters then digits keep the letters even when they are hex
        // digits; other hex runs stay whole variables.
        assert_eq!(m("ee0"), "ee<*>");
        assert_eq!(m("alt0"), "alt<*>");
        assert_eq!(m("9f4ef63"), "<*>");
        assert_eq!(m("abcdef12"), "<*>");
        assert_eq!(m("0xff"), "<*>");
        assert_eq!(m("-ab1"), "-ab<*>");
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
    fn splits_words_like_split_whitespace() {
        let line = " a\tb\u{b}c\u{a0}d\u{2003}é\u{85}x\u{1c}y  ";
        let ours: Vec<&str> = Words(line).collect();
        let std: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(ours, std);
        // The plain flag is plain_word's.
        for word in [
            "ab",
            "x1",
            "deadbeef",
            "deadbee",
            "a<b",
            "é",
            "(abcdefa)",
            "a\u{b}b",
        ] {
            let got = Words(word).next_word().map(|(_, p)| p);
            let want = Words(word).next().map(plain_word);
            assert_eq!(got, want, "{word}");
        }
        assert_eq!(Words("").count(), 0);
        assert_eq!(Words(" \u{3000} ").count(), 0);
    }

    #[test]
    fn buffer_holds_the_same_tokens() {
        let masker = Masker::default();
        let mut buf = TokenBuf::default();
        masker.tokenize_into("stack @0x1a @0x2b @0x3c) done Mon", &mut buf);
        let tokens: Vec<&str> = buf.iter().collect();
        assert_eq!(tokens, ["stack", "@<*>)", "done", "<*>"]);
        // Reused: the previous line leaves nothing behind.
        masker.tokenize_into("x", &mut buf);
        assert_eq!((buf.len(), buf.get(0), buf.truncated()), (1, "x", false));
        masker.tokenize_into("", &mut buf);
        assert!(buf.is_empty());
        assert!(has_wildcard("a<*>") && !has_wildcard("<*") && !has_wildcard(""));
        assert_eq!(
            (find_wildcard("<*>a<*>"), rfind_wildcard("<*>a<*>")),
            (Some(0), Some(4))
        );
        // Words the fast path keeps as they are, and ones it must not.
        assert!(plain_word("terminating:") && plain_word("(abcdefa)"));
        assert!(!plain_word("deadbeef") && !plain_word("x1") && !plain_word("é"));
        assert!(!plain_word("a<*>") && mask_word_into("a<*>", &mut String::new()));
        assert_eq!(m("deadbeef"), "<*>");
        assert_eq!(m("abcdefab-abcd-abcd-abcd-abcdefabcdef"), "<*>");
    }

    #[test]
    fn quoted_values_with_spaces_are_one_word() {
        let t = Masker::default().tokenize(r#"acquire lock=1, tag="View Lock", name=x"#);
        assert_eq!(
            t.tokens,
            ["acquire", "lock=<*>,", r#"tag="View Lock","#, "name=x"]
        );
        // Closed in its word, never closed, closed too far or after another
        // key: plain words.
        let t = Masker::default().tokenize(r#"tag="a" b"#);
        assert_eq!(t.tokens, [r#"tag="a""#, "b"]);
        let t = Masker::default().tokenize(r#"tag="a b c"#);
        assert_eq!(t.tokens, [r#"tag="a"#, "b", "c"]);
        let far = format!(r#"tag="{} end""#, "w ".repeat(MAX_QUOTED_WORDS + 1));
        assert_eq!(
            Masker::default().tokenize(&far).tokens.len(),
            MAX_QUOTED_WORDS + 2
        );
        let t = Masker::default().tokenize(r#"a="x b=" c"#);
        assert_eq!(t.tokens, [r#"a="x"#, r#"b=""#, "c"]);
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
