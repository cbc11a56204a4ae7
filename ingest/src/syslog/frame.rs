//! Syslog over TCP: splitting a byte stream into messages (RFC 6587).
//!
//! Each frame chooses its own method, as rsyslog does: one that starts
//! with a digit `1`–`9` followed by digits and a space is octet-counted
//! (`LEN SP MSG`); anything else is newline-terminated (non-transparent
//! framing; a trailing CR is removed, empty lines are skipped). A message
//! longer than the limit is cut to the limit and marked truncated, and the
//! rest of it is skipped, so the stream stays in step.

/// One message cut out of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The message, without length prefix or terminator.
    pub bytes: Vec<u8>,
    /// The message was longer than the limit and was cut.
    pub truncated: bool,
}

/// Splits a TCP stream into syslog messages.
#[derive(Debug)]
pub struct Framer {
    buf: Vec<u8>,
    start: usize,
    max: usize,
    /// Octet-counted bytes still to drop after a truncated frame.
    skip: usize,
    /// Dropping the rest of an over-long newline-terminated message.
    skip_line: bool,
}

/// Longest decimal length prefix accepted (`MSG-LEN` up to 999 999 999).
const MAX_LEN_DIGITS: usize = 9;

impl Framer {
    /// A framer cutting messages at `max` bytes (at least 1).
    pub fn new(max: usize) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            max: max.max(1),
            skip: 0,
            skip_line: false,
        }
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    fn frame(&mut self, from: usize, len: usize, consumed: usize, truncated: bool) -> Frame {
        let at = self.start + from;
        let bytes = self.buf[at..at + len].to_vec();
        self.start += consumed;
        Frame { bytes, truncated }
    }

    /// The next complete message, if the buffer holds one.
    pub fn next_frame(&mut self) -> Option<Frame> {
        loop {
            if self.skip > 0 {
                let n = self.skip.min(self.pending().len());
                self.start += n;
                self.skip -= n;
                if self.skip > 0 {
                    return None;
                }
            }
            if self.skip_line {
                match self.pending().iter().position(|b| *b == b'\n') {
                    Some(i) => {
                        self.start += i + 1;
                        self.skip_line = false;
                    }
                    None => {
                        self.start = self.buf.len();
                        return None;
                    }
                }
            }
            let pending = self.pending();
            if pending.is_empty() {
                return None;
            }
            match octet_count(pending) {
                Count::Need => return None,
                Count::Len(digits, len) => {
                    let body = pending.len() - digits - 1;
                    if len > self.max {
                        if body < self.max {
                            return None;
                        }
                        self.skip = len - self.max;
                        let max = self.max;
                        return Some(self.frame(digits + 1, max, digits + 1 + max, true));
                    }
                    if body < len {
                        return None;
                    }
                    return Some(self.frame(digits + 1, len, digits + 1 + len, false));
                }
                Count::No => {}
            }
            match pending.iter().position(|b| *b == b'\n') {
                Some(i) if i > self.max => {
                    let max = self.max;
                    return Some(self.frame(0, max, i + 1, true));
                }
                Some(i) => {
                    let len = if i > 0 && pending[i - 1] == b'\r' {
                        i - 1
                    } else {
                        i
                    };
                    if len == 0 {
                        self.start += i + 1;
                        continue;
                    }
                    return Some(self.frame(0, len, i + 1, false));
                }
                None if pending.len() > self.max => {
                    let (max, all) = (self.max, pending.len());
                    self.skip_line = true;
                    return Some(self.frame(0, max, all, true));
                }
                None => return None,
            }
        }
    }

    /// At the end of the stream: what is left, as a last (possibly
    /// incomplete) message.
    pub fn finish(&mut self) -> Option<Frame> {
        if self.skip > 0 || self.skip_line {
            return None;
        }
        let pending = self.pending();
        let (bytes, truncated) = match octet_count(pending) {
            Count::Len(digits, _) => (&pending[digits + 1..], true),
            _ => (pending, false),
        };
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes).to_vec();
        self.start = self.buf.len();
        (!bytes.is_empty()).then_some(Frame { bytes, truncated })
    }
}

enum Count {
    /// Octet-counted: digits, then a space, then `len` bytes.
    Len(usize, usize),
    /// Could be octet-counted; more bytes are needed to tell.
    Need,
    /// Not octet-counted.
    No,
}

fn octet_count(pending: &[u8]) -> Count {
    if !matches!(pending.first(), Some(b'1'..=b'9')) {
        return Count::No;
    }
    let digits = pending
        .iter()
        .take(MAX_LEN_DIGITS + 1)
        .take_while(|b| b.is_ascii_digit())
        .count();
    match pending.get(digits) {
        _ if digits > MAX_LEN_DIGITS => Count::No,
        None => Count::Need,
        Some(b' ') => {
            // At most 9 ASCII digits: always a valid usize.
            let len = pending[..digits]
                .iter()
                .fold(0usize, |n, d| n * 10 + usize::from(d - b'0'));
            Count::Len(digits, len)
        }
        Some(_) => Count::No,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all(f: &mut Framer) -> Vec<(String, bool)> {
        std::iter::from_fn(|| f.next_frame())
            .map(|fr| {
                (
                    String::from_utf8_lossy(&fr.bytes).into_owned(),
                    fr.truncated,
                )
            })
            .collect()
    }

    #[test]
    fn mixes_octet_counting_and_newlines_across_reads() {
        let mut f = Framer::new(1024);
        f.push(b"<13>a line\r\n\n11 <13>counted12 <13>two");
        assert_eq!(
            all(&mut f),
            vec![("<13>a line".into(), false), ("<13>counted".into(), false)]
        );
        f.push(b" + !\n<14>x\n");
        assert_eq!(
            all(&mut f),
            vec![("<13>two + !\n".into(), false), ("<14>x".into(), false)]
        );
        f.push(b"<15>no newline yet");
        assert!(f.next_frame().is_none());
        assert_eq!(
            f.finish(),
            Some(Frame {
                bytes: b"<15>no newline yet".to_vec(),
                truncated: false
            })
        );
    }

    #[test]
    fn cuts_long_messages_and_stays_in_step() {
        let mut f = Framer::new(5);
        f.push(b"10 0123456789<1>ok\n");
        assert_eq!(
            all(&mut f),
            vec![("01234".into(), true), ("<1>ok".into(), false)]
        );
        f.push(b"abcdefgh");
        assert_eq!(all(&mut f), vec![("abcde".into(), true)]);
        f.push(b"ijk\nxy\n");
        assert_eq!(all(&mut f), vec![("xy".into(), false)]);
        f.push(b"abcdefg\nz\n");
        assert_eq!(
            all(&mut f),
            vec![("abcde".into(), true), ("z".into(), false)]
        );
    }

    #[test]
    fn digits_without_space_are_a_line() {
        let mut f = Framer::new(64);
        f.push(b"123abc\n");
        assert_eq!(all(&mut f), vec![("123abc".into(), false)]);
        f.push(b"1234567890123 x\n");
        assert_eq!(all(&mut f), vec![("1234567890123 x".into(), false)]);
    }

    proptest! {
        #[test]
        fn any_stream_in_any_pieces_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..1024),
            cut in 1usize..64,
            max in 1usize..128,
        ) {
            let mut f = Framer::new(max);
            let mut out = 0;
            for piece in bytes.chunks(cut) {
                f.push(piece);
                while let Some(frame) = f.next_frame() {
                    prop_assert!(frame.bytes.len() <= max);
                    out += frame.bytes.len();
                }
            }
            if let Some(frame) = f.finish() {
                out += frame.bytes.len();
            }
            prop_assert!(out <= bytes.len());
        }

        #[test]
        fn octet_counted_messages_come_back_whole(
            msgs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..200), 1..20),
            cut in 1usize..50,
        ) {
            let mut stream = Vec::new();
            for m in &msgs {
                stream.extend_from_slice(format!("{} ", m.len()).as_bytes());
                stream.extend_from_slice(m);
            }
            let mut f = Framer::new(256);
            let mut got = Vec::new();
            for piece in stream.chunks(cut) {
                f.push(piece);
                while let Some(frame) = f.next_frame() {
                    got.push(frame.bytes);
                }
            }
            prop_assert_eq!(got, msgs);
        }
    }
}
