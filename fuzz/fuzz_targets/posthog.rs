//! The agent's PostHog capture decoder (`/capture`, `/batch`, `/e`, `/i/v0/e`): any body, plain
//! or as gzip, is refused with a message or becomes events the collector accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tda_fuzz::posthog(data);
});
