//! `remfile-parse`: the Dockerfile ("Remfile") grammar as BuildKit parses it,
//! producing a typed, versioned AST with spans.
//!
//! Entry point: [`parse`]. The AST types live in [`ast`]; they serialise to the
//! version-1 JSON document printed by the `remfile-parse` CLI and deserialise
//! back (that is how `remfile-plan` reads it). Words are kept raw: variables
//! are not expanded and quotes of ENV/LABEL/ARG/COPY words are kept, because
//! expansion and quote removal are the planner's job.
//!
//! ```
//! let ast = remfile_parse::parse("FROM alpine AS base\nRUN echo hi\n").unwrap();
//! assert_eq!(ast.instructions.len(), 2);
//! ```

pub mod ast;
pub mod error;
mod flags;
mod heredoc;
mod instr;
mod jsonfix;
mod lines;
mod mount;
mod parser;
mod words;

pub use ast::*;
pub use error::{ErrorKind, ParseError};
pub use parser::parse;

/// Parses a Remfile given as bytes. BuildKit reads a Dockerfile as bytes, so text that is not
/// UTF-8 (a Latin-1 comment or value) is no error: each invalid sequence becomes U+FFFD, which is
/// what Go's JSON encoding of the image config makes of it.
///
/// ```
/// let ast = remfile_parse::parse_bytes(b"# caf\xe9\nFROM scratch\nLABEL a=Jos\xe9\n").unwrap();
/// assert_eq!(ast.instructions.len(), 2);
/// ```
///
/// # Errors
/// As [`parse`].
pub fn parse_bytes(input: &[u8]) -> Result<Remfile, ParseError> {
    parse(&String::from_utf8_lossy(input))
}

/// Serialise an AST as the version-1 JSON document (compact or pretty).
pub fn to_json(ast: &Remfile, pretty: bool) -> String {
    let r = if pretty {
        serde_json::to_string_pretty(ast)
    } else {
        serde_json::to_string(ast)
    };
    // serialising these plain data types cannot fail
    r.unwrap_or_default()
}
