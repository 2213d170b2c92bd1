//! Planner errors; each names the Remfile line when there is one.

use crate::lex::LexError;
use crate::platform::PlatformError;
use crate::reference::ReferenceError;

/// Why a Remfile could not be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The AST document has another version.
    #[error("unsupported AST version {0} (expected 1)")]
    AstVersion(u32),
    /// No FROM at all.
    #[error("no build stage: the Remfile has no FROM instruction")]
    NoStages,
    /// An instruction other than ARG before the first FROM.
    #[error("line {line}: {instruction} before the first FROM (only ARG may come before FROM)")]
    BeforeFrom {
        /// Line of the instruction.
        line: u32,
        /// The instruction keyword.
        instruction: String,
    },
    /// Variable expansion failed.
    #[error("line {line}: {instruction}: failed to process {word:?}: {source}")]
    Expand {
        /// Line of the instruction.
        line: u32,
        /// The instruction keyword.
        instruction: String,
        /// The word that failed.
        word: String,
        /// The lexer's error.
        source: LexError,
    },
    /// FROM that expands to the empty string.
    #[error("line {line}: base name ({expr}) should not be blank")]
    EmptyBase {
        /// Line of the FROM.
        line: u32,
        /// The FROM expression as written.
        expr: String,
    },
    /// An invalid FROM `--platform` (after expansion).
    #[error("line {line}: {source}")]
    Platform {
        /// Line of the FROM.
        line: u32,
        /// The platform error.
        source: PlatformError,
    },
    /// An invalid `--platform` option.
    #[error("--platform: {0}")]
    OptionPlatform(PlatformError),
    /// An invalid `--build-arg`.
    #[error("invalid build arg {0:?}: expected KEY=VALUE with a non-empty key without white space")]
    BuildArg(String),
    /// `--target` names no stage.
    #[error("target stage {0:?} could not be found")]
    UnknownTarget(String),
    /// A stage name BuildKit does not accept.
    #[error(
        "line {line}: invalid name for build stage: {name:?}, name can't start with a number or contain symbols"
    )]
    StageName {
        /// Line of the FROM.
        line: u32,
        /// The name.
        name: String,
    },
    /// `--from=N` with no stage N.
    #[error("line {line}: invalid stage index {index}")]
    StageIndex {
        /// Line of the instruction.
        line: u32,
        /// The index as written.
        index: String,
    },
    /// A stage that needs itself.
    #[error("line {line}: circular dependency detected on stage: {stage}")]
    Cycle {
        /// Line of the instruction that closes the cycle.
        line: u32,
        /// The stage (name or index).
        stage: String,
    },
    /// `--from=$VAR`.
    #[error(
        "line {line}: variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround"
    )]
    FromVariable {
        /// Line of the instruction.
        line: u32,
    },
    /// An invalid image reference.
    #[error("line {line}: {source}")]
    Reference {
        /// Line of the instruction.
        line: u32,
        /// The reference error.
        source: ReferenceError,
    },
    /// Any other invalid value (port, signal, volume, mount option, ...).
    #[error("line {line}: {instruction}: {message}")]
    Invalid {
        /// Line of the instruction.
        line: u32,
        /// The instruction keyword.
        instruction: String,
        /// What is wrong.
        message: String,
    },
    /// A base image's ONBUILD trigger that does not parse.
    #[error("line {line}: ONBUILD trigger {trigger:?} of the base image: {message}")]
    Trigger {
        /// Line of the FROM.
        line: u32,
        /// The trigger text.
        trigger: String,
        /// The parse error.
        message: String,
    },
}

impl PlanError {
    /// The Remfile line the error is about, if any.
    pub fn line(&self) -> Option<u32> {
        match self {
            PlanError::AstVersion(_)
            | PlanError::NoStages
            | PlanError::OptionPlatform(_)
            | PlanError::BuildArg(_)
            | PlanError::UnknownTarget(_) => None,
            PlanError::BeforeFrom { line, .. }
            | PlanError::Expand { line, .. }
            | PlanError::EmptyBase { line, .. }
            | PlanError::Platform { line, .. }
            | PlanError::StageName { line, .. }
            | PlanError::StageIndex { line, .. }
            | PlanError::Cycle { line, .. }
            | PlanError::FromVariable { line }
            | PlanError::Reference { line, .. }
            | PlanError::Invalid { line, .. }
            | PlanError::Trigger { line, .. } => Some(*line),
        }
    }
}
