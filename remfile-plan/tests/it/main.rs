//! Integration tests of remfile-plan: semantics (one test per rule), golden plans, the CLI pipe,
//! and property tests.

mod cli;
mod golden;
mod helpers;
mod props;
mod semantics;
