//! The virtualenv of Python tools the tests run (`scripts/test-venv`), and the scripts in
//! `tests/python/`.

use std::path::{Path, PathBuf};

/// The virtualenv's python: `TDA_TEST_PYTHON`, else `target/test-venv` (scripts/test makes it).
pub fn python() -> PathBuf {
    let path = std::env::var_os("TDA_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-venv/bin/python")
        });
    assert!(
        path.exists(),
        "{} missing: run scripts/test-venv",
        path.display()
    );
    path
}

/// A script of `tests/python/`.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(name)
}

/// A program installed in the virtualenv (`schemathesis`).
pub fn tool(name: &str) -> PathBuf {
    python().with_file_name(name)
}
