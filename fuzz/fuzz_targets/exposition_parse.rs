//! Scraped bodies come from outside: the exposition parser must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = vigie_ingest::exposition::parse(text, 0);
    }
});
