//! Replays the kept fuzz corpora (`fuzz/corpus/<target>/`, inputs that reached new code while
//! fuzzing, and any that once crashed) through the same calls as the fuzz targets, so a change
//! that makes one of them panic fails the ordinary test run, without nightly or libFuzzer.

use std::path::{Path, PathBuf};

use tda_schema::profile::Profile;
use tda_schema::wire::{decode_batch, decode_events};

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|f| f.unwrap().path())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    files.sort();
    assert!(files.len() >= 2, "{}: corpus missing", dir.display());
    files
}

#[test]
fn batch_corpus_decodes_or_is_refused() {
    let mut decoded = 0;
    for (_, body) in corpus("batch") {
        if let Ok(json) = tda_collector::ingest::decompress(&body, 1 << 20) {
            decoded += usize::from(decode_batch(&json).is_ok());
        }
        decoded += usize::from(decode_batch(&body).is_ok());
    }
    assert!(decoded >= 2, "the seed batch, plain and zstd, decodes");
}

#[test]
fn intake_corpus_decodes_or_names_the_field() {
    let mut decoded = 0;
    for (path, body) in corpus("intake") {
        match decode_events(&body) {
            Ok(_) => decoded += 1,
            Err(e) => assert!(!e.to_string().is_empty(), "{}", path.display()),
        }
    }
    assert!(decoded >= 2, "the seed events decode");
}

#[test]
fn profile_corpus_parses_or_names_the_problem() {
    let mut parsed = 0;
    for (path, bytes) in corpus("profile") {
        let Ok(text) = std::str::from_utf8(&bytes) else {
            continue;
        };
        match Profile::from_toml(text, &path) {
            Ok(p) => {
                parsed += 1;
                let again = Profile::from_toml(&p.to_toml(), &path).unwrap();
                assert_eq!(again, p, "{}: to_toml round trip", path.display());
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
    assert!(parsed >= 4, "the example profiles parse");
}
