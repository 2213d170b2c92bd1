//! Integration tests of `image-store`: the CLI, real validators, crash and concurrency
//! guarantees.

mod cli;
mod crash;
mod helpers;
mod privileged;
mod validate;
mod verify;
