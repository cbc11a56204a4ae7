//! Kafka payloads on `vigie.metrics` come from outside: decoding any bytes
//! must return an error or samples, never panic or over-allocate.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = vigie_model::codec::decode_batch(data) {
        let _ = vigie_model::schema::batch_to_samples(&batch);
    }
});
