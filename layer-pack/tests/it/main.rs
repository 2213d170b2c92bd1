//! Integration tests of `layer-pack`: library and CLI, against real files and real tools.

mod cli;
mod determinism;
mod entries;
mod fuzzed;
mod hostile;
mod roundtrip;
mod tools;
mod util;
mod verify;
mod whiteouts;
