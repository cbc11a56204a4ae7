//! Interop topics carry whatever another tool (or anyone) wrote to
//! Kafka: the line-protocol parser must never panic, and every sample it
//! yields must have a valid Prometheus name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigie_ingest::interop::influx::{Precision, format_point, parse};
use vigie_ingest::interop::{Decoder, InteropConfig, InteropFormat};

fuzz_target!(|data: &[u8]| {
    let mut decoder = Decoder::new(&InteropConfig::new("t", InteropFormat::Influx));
    let decoded = decoder.decode(data, 0);
    for s in &decoded.samples {
        let name = &s.series.metric;
        assert!(!name.is_empty());
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'));
    }
    if let Ok(text) = std::str::from_utf8(data) {
        for precision in [Precision::Ns, Precision::S] {
            let (points, _) = parse(text, precision);
            // Formatting a parsed point must not panic either.
            for p in &points {
                let _ = format_point(p);
            }
        }
    }
});
