//! The agent's event intake decoder (`POST /v1/events`): any body is decoded and validated
//! or refused with a field error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Err(e) = tda_schema::wire::decode_events(body) {
        let _ = e.to_string();
    }
});
