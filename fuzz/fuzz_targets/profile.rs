//! The profile parser: any text is a profile or an error naming a line and field, never a
//! panic (the error's position is computed from the text, so it is exercised too); a profile
//! that parses is written back by `to_toml` and parses to the same profile.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use tda_schema::profile::Profile;

fuzz_target!(|text: &str| {
    match Profile::from_toml(text, Path::new("fuzz.toml")) {
        Ok(p) => {
            let again = Profile::from_toml(&p.to_toml(), Path::new("again.toml"));
            assert_eq!(again.ok().as_ref(), Some(&p), "to_toml round trip");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
