//! Integration tests of `remfile-parse`: golden fixtures, the CLI, properties.

mod cli;
mod fixtures;
mod props;

use std::path::{Path, PathBuf};

/// The crate's fixture folder.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Sorted `*.Remfile` files of a fixture sub-folder.
pub fn remfiles(sub: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixtures_dir().join(sub))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "Remfile"))
        .collect();
    v.sort();
    v
}
