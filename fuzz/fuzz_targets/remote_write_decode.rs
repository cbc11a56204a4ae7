//! Remote-write bodies come from outside: decoding any bytes (snappy, then
//! protobuf) must return samples or a rejection, never panic or allocate
//! beyond the decompressed-size limit.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vigie_ingest::remote_write::decode(data);
});
