//! End-to-end tests of `pelagos-build`.
