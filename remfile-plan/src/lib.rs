//! `remfile-plan`: turns a parsed Remfile (the `remfile-parse` AST) into a Plan: the stage
//! graph, ARG/ENV scoping and variable expansion, `--target` pruning, predefined args and
//! ONBUILD triggers, with BuildKit's semantics. Pure: base image configs come in through a
//! [`BaseResolver`]; nothing touches the file system or the network.
//!
//! Entry point: [`plan`]. The output types are in [`types`] (the version-1 Plan document);
//! [`lex::Lexer`] is BuildKit's shell-word lexer (expansion and quote removal) on its own.

pub mod config;
mod dispatch;
pub mod error;
pub mod lex;
pub mod options;
mod pattern;
mod planner;
pub mod platform;
pub mod reference;
pub mod types;
mod values;

pub use config::{Healthcheck, ImageConfig};
pub use error::PlanError;
pub use options::{BaseResolver, NoBases, PlanOptions};
pub use planner::plan;
pub use platform::Platform;
pub use types::*;
