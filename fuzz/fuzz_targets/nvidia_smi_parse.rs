//! nvidia-smi's CSV comes from outside Vigie (a driver tool that may print
//! anything, or be replaced): the parser must never panic, and what it
//! keeps must be sound, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigie_ingest::host::gpu::{VALUE_FIELDS, parse_query_output};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parsed = parse_query_output(&text, "fuzz-host");
    let lines = text.lines().count();
    assert!(parsed.points.len() + parsed.unsupported.len() <= lines * VALUE_FIELDS.len());
    for (metric, labels, value) in &parsed.points {
        assert!(value.is_finite());
        assert!(VALUE_FIELDS.iter().any(|(_, m)| m == metric));
        assert!(labels.get("gpu").is_some_and(|g| g.parse::<u32>().is_ok()));
        assert!(labels.get("UUID").is_some_and(|u| !u.is_empty()));
    }
});
