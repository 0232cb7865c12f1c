//! Replays the kept fuzz corpora (`fuzz/corpus/<target>/`, inputs that reached new code while
//! fuzzing, and any that once crashed) through the same calls as the fuzz targets, so a change
//! that makes one of them panic fails the ordinary test run, without nightly or libFuzzer.

use std::path::{Path, PathBuf};

use tda_schema::profile::Profile;
use tda_schema::wire::{decode_batch, decode_events};

/// The agent decoder targets' calls, the same file the fuzz targets use.
#[path = "../../fuzz/src/lib.rs"]
mod agent_targets;

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

/// Replays `target`'s corpus through `decode`; returns the events made.
fn replay(target: &str, decode: fn(&[u8]) -> usize) -> usize {
    corpus(target).iter().map(|(_, body)| decode(body)).sum()
}

#[test]
fn posthog_corpus_makes_events_the_collector_takes_or_is_refused() {
    // Seeds: one event, a bare array (one usage event and an $identify), a batch of two
    // plain and gzipped: 1 + 1 + 2 + 2. What fuzzing adds can only add to this.
    assert!(replay("posthog", agent_targets::posthog) >= 6);
}

#[test]
fn segment_corpus_makes_events_the_collector_takes_or_is_refused() {
    // Seeds, each body sent to all seven routes: a track (an event on /v1/track, /v1/page and
    // /v1/screen, which take any message with a user), a page, an identify and an alias (an
    // event each on /v1/page and /v1/screen), a batch of three (two usage events) plain and
    // gzipped (on /v1/batch): 3 + 2 + 2 + 2 + 2 + 2.
    assert!(replay("segment", agent_targets::segment) >= 13);
}

#[test]
fn log_line_corpus_makes_events_the_collector_takes_or_is_refused() {
    // Seeds: two request lines, one blank.
    assert!(replay("log_line", agent_targets::log_line) >= 2);
}
