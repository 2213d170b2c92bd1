//! End-to-end tests of `pelagos-build`: the binary builds Remfiles into a store; results are
//! inspected through the store library and checked with real tools (skopeo, umoci, runc).
//! Tests that run RUN steps need root (namespaces, overlayfs) and are marked so.

// short names (e: env, r: rootfs, p: path, o: output) keep the many assertions readable
#![allow(clippy::many_single_char_names)]

mod buildx;
mod cli;
mod common;
mod conformance;
mod copy;
mod fuzzed;
mod git;
mod link;
mod network;
mod output;
mod registry;
mod remote;
mod robust;
mod run;
mod sandbox;
mod secrets;
mod ssh;
