//! pelagos-build's ignore files (Docker's pattern semantics) on any patterns and paths.
//!
//! Input: `IGNORE_FILE \0 PATHS` (one path per line). Never a panic; `clean` is idempotent; and
//! the walker's shortcut is sound: when a directory is excluded and `can_skip_dir` says nothing
//! below it can be re-included, every path below it is excluded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pelagos_build::ignore::{IgnoreMatcher, clean};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (file, paths) = text.split_once('\0').unwrap_or((text, "a/b/c"));
    let Ok(m) = IgnoreMatcher::parse(file, ".dockerignore") else {
        return;
    };
    for p in paths.lines().take(64) {
        let excluded = m.is_excluded(p);
        let c = clean(p);
        assert_eq!(clean(&c), c, "clean is not idempotent on {p:?}");
        // walk the path's ancestors as the context walker does, relative paths only
        if c.starts_with('/') || c.starts_with("..") || c == "." {
            continue;
        }
        let parts: Vec<&str> = c.split('/').collect();
        for i in 1..parts.len() {
            let dir = parts[..i].join("/");
            if m.is_excluded(&dir) && m.can_skip_dir(&dir) {
                assert!(
                    excluded,
                    "{dir:?} is skipped as excluded, but {p:?} below it is included"
                );
            }
        }
    }
});
