//! The agent's request-log line decoder: any line is skipped as blank, refused with a
//! message, or becomes an event the collector accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tda_fuzz::log_line(data);
});
