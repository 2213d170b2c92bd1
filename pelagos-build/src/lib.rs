//! `pelagos-build`: see the crate README for its job. Built by its own issue.
