//! `remfile-parse`: the Dockerfile ("Remfile") grammar as BuildKit parses it,
//! producing a typed, versioned AST with spans.
//!
//! Entry point: [`parse`]. The AST types live in [`ast`]; they serialise to the
//! version-1 JSON document printed by the `remfile-parse` CLI and deserialise
//! back (that is how `remfile-plan` reads it). Words are kept raw: variables
//! are not expanded and quotes of ENV/LABEL/ARG/COPY words are kept, because
//! expansion and quote removal are the planner's job.

pub mod ast;
pub mod error;

pub use ast::*;
pub use error::{ErrorKind, ParseError};

/// Parse a whole Remfile.
pub fn parse(input: &str) -> Result<Remfile, ParseError> {
    let _ = input;
    Err(ParseError::new(1, 1, ErrorKind::NoInstructions))
}
