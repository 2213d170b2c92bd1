//! The build error type.

use std::path::PathBuf;

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Bad command-line input.
    #[error(transparent)]
    Usage(#[from] crate::cli::UsageError),
    /// No Remfile found.
    #[error("no Remfile, Dockerfile or Containerfile in {0}")]
    NoRemfile(PathBuf),
    /// The context is not a directory.
    #[error("build context {0} is not a directory")]
    Context(PathBuf),
    /// A remote context (git repository or URL) could not be fetched (exit status 1).
    #[error("remote context {url}: {message}")]
    RemoteContext {
        /// The URL (credentials redacted).
        url: String,
        /// Why (credentials redacted).
        message: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// An input file (Remfile, Plan, stdin) could not be read.
    #[error("cannot read {path}: {source}")]
    Input {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The Remfile does not parse (`FILE:LINE:COL: message`).
    #[error("{file}:{message}")]
    Parse {
        /// The Remfile.
        file: String,
        /// The parser's message (`LINE:COL: ...`).
        message: String,
    },
    /// The Remfile cannot be planned.
    #[error("{file}: {message}")]
    Plan {
        /// The Remfile.
        file: String,
        /// The planner's message.
        message: String,
    },
    /// A Plan document is invalid.
    #[error("invalid plan {file}: {message}")]
    PlanDoc {
        /// Where it came from.
        file: String,
        /// Why.
        message: String,
    },
    /// An ignore file is invalid.
    #[error(transparent)]
    Ignore(#[from] crate::ignore::IgnoreError),
    /// A step's input is invalid (bad --chown, missing source, ...).
    #[error("{step}: {message}")]
    StepInput {
        /// The step (`[builder 2/5] COPY ...`).
        step: String,
        /// Why.
        message: String,
    },
    /// A step failed while running.
    #[error("{step}: {message}")]
    Step {
        /// The step.
        step: String,
        /// Why.
        message: String,
    },
    /// A base image is not available.
    #[error("image {0} not found in the store")]
    ImageNotFound(String),
    /// A base image could not be pulled.
    #[error("pull {image}: {message}")]
    Pull {
        /// The image reference.
        image: String,
        /// The registry client's message.
        message: String,
        /// Whether the reference or the image was unusable (exit status 2).
        input: bool,
    },
    /// A push or a remote cache transfer failed.
    #[error("{what}: {source}")]
    Registry {
        /// The destination or cache reference.
        what: String,
        /// The cause.
        source: image_store::registry::RegistryError,
    },
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] image_store::StoreError),
    /// An output failed.
    #[error("output {dest}: {message}")]
    Output {
        /// The destination.
        dest: PathBuf,
        /// Why.
        message: String,
    },
    /// Another stage failed first.
    #[error("stage {0} failed")]
    DependencyFailed(usize),
}

impl BuildError {
    /// The message without the step name (for progress lines that already show it).
    pub fn step_message(&self) -> String {
        match self {
            BuildError::StepInput { message, .. } | BuildError::Step { message, .. } => {
                message.clone()
            }
            other => other.to_string(),
        }
    }

    /// Whether this is a usage or input error (exit status 2) rather than a failed build (1).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            BuildError::Usage(_)
                | BuildError::Input { .. }
                | BuildError::NoRemfile(_)
                | BuildError::Context(_)
                | BuildError::Parse { .. }
                | BuildError::Plan { .. }
                | BuildError::PlanDoc { .. }
                | BuildError::Ignore(_)
                | BuildError::StepInput { .. }
                | BuildError::Pull { input: true, .. }
        ) || matches!(self, BuildError::Registry { source, .. } if source.is_input_error())
    }
}

/// Shorthand for an I/O error on a path.
pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> BuildError + '_ {
    move |source| BuildError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Shorthand for an input-file read error.
pub(crate) fn input(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> BuildError + '_ {
    move |source| BuildError::Input {
        path: path.to_path_buf(),
        source,
    }
}
