//! Parse errors: a position plus what went wrong.

use thiserror::Error;

/// A parse failure at a 1-based line and column (columns count characters).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{line}:{col}: {kind}")]
pub struct ParseError {
    /// 1-based line.
    pub line: u32,
    /// 1-based column in characters.
    pub col: u32,
    /// What went wrong.
    pub kind: ErrorKind,
}

/// What went wrong; every variant names the offending input.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ErrorKind {
    /// The file holds no instruction.
    #[error("file with no instructions")]
    NoInstructions,
    /// A physical line longer than BuildKit's line scanner takes (65535 bytes).
    #[error("dockerfile line greater than max allowed size of {0}")]
    LineTooLong(usize),
    /// An instruction keyword that does not exist.
    #[error("unknown instruction: {0}")]
    UnknownInstruction(String),
    /// A directive appears twice.
    #[error("only one {0} parser directive can be used")]
    DuplicateDirective(String),
    /// `# escape=` with something other than `\` or `` ` ``.
    #[error("invalid escape token {0:?} does not match ` or \\")]
    InvalidEscape(String),
    /// Too few or too many arguments.
    #[error("{instruction} {requirement}")]
    Arguments {
        /// Instruction name, upper case.
        instruction: String,
        /// e.g. "requires at least one argument".
        requirement: String,
    },
    /// A JSON array with non-string elements, or JSON where only JSON is allowed.
    #[error("{0}")]
    Json(String),
    /// A flag the instruction does not accept.
    #[error("unknown flag: --{flag} (not allowed on {instruction})")]
    UnknownFlag {
        /// Instruction name, upper case.
        instruction: String,
        /// Flag name without dashes.
        flag: String,
    },
    /// A flag given twice that is not repeatable.
    #[error("duplicate flag specified: --{0}")]
    DuplicateFlag(String),
    /// A flag that needs `=value` without one.
    #[error("missing a value on flag: --{0}")]
    MissingFlagValue(String),
    /// A flag value that does not have the syntax the reference defines.
    #[error("invalid value for --{flag}: {value:?}: {reason}")]
    InvalidFlagValue {
        /// Flag name without dashes.
        flag: String,
        /// The value as written.
        value: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A bad `--mount` specification.
    #[error("invalid --mount {spec:?}: {reason}")]
    InvalidMount {
        /// The mount flag value.
        spec: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A heredoc whose terminator never comes.
    #[error("unterminated heredoc {0:?}")]
    UnterminatedHeredoc(String),
    /// A heredoc where none can be (e.g. as COPY destination).
    #[error("{0}")]
    BadHeredoc(String),
    /// Any other syntax error in an instruction's arguments.
    #[error("{0}")]
    Syntax(String),
}

impl ParseError {
    pub(crate) fn new(line: u32, col: u32, kind: ErrorKind) -> Self {
        Self { line, col, kind }
    }
}
