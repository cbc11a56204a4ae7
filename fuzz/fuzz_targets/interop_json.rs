//! Telegraf and Vector JSON from interop topics: the mappers must never
//! panic, whatever the bytes, and yield only validly named samples.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigie_ingest::interop::{Decoder, InteropConfig, InteropFormat};

fuzz_target!(|data: &[u8]| {
    for format in [InteropFormat::TelegrafJson, InteropFormat::VectorJson] {
        let mut config = InteropConfig::new("t", format);
        if format == InteropFormat::TelegrafJson {
            config.json_timestamp_units = Some(std::time::Duration::from_nanos(1));
        }
        let mut decoder = Decoder::new(&config);
        // Twice: incremental Vector counters keep running totals.
        for _ in 0..2 {
            let decoded = decoder.decode(data, 0);
            for s in &decoded.samples {
                let name = &s.series.metric;
                assert!(!name.is_empty());
                assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'));
            }
        }
    }
});
