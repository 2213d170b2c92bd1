//! Integration tests of `image-store`: the CLI, real validators, crash and concurrency
//! guarantees.

#![allow(clippy::many_single_char_names)]

mod cli;
mod crash;
mod helpers;
mod privileged;
mod registry;
mod validate;
mod verify;
