//! Syslog datagrams and TCP streams come from outside: the parser and the
//! RFC 6587 framer must never panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigie_ingest::syslog::{frame::Framer, parse::parse};

fuzz_target!(|data: &[u8]| {
    let now = chrono::Utc::now();
    let _ = parse(data, &now);
    // The same bytes as a TCP stream, in two pieces.
    let mut framer = Framer::new(256);
    let (a, b) = data.split_at(data.len() / 2);
    for piece in [a, b] {
        framer.push(piece);
        while let Some(frame) = framer.next_frame() {
            assert!(frame.bytes.len() <= 256);
            let _ = parse(&frame.bytes, &now);
        }
    }
    let _ = framer.finish();
});
