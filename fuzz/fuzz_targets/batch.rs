//! The collector's batch decoder: a request body as zstd (bounded decompression) and as plain
//! JSON, decoded and validated; refusals are fine, panics are not.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Ok(json) = tda_collector::ingest::decompress(body, 1 << 20) {
        let _ = tda_schema::wire::decode_batch(&json);
    }
    let _ = tda_schema::wire::decode_batch(body);
});
