//! The agent's Segment decoder (`/v1/track` … `/v1/batch`, and the Basic auth write key): any
//! body on any route, plain or as gzip, is refused with a message or becomes events the
//! collector accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tda_fuzz::segment(data);
});
