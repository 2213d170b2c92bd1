//! Errors of [`crate::run`].
use std::path::PathBuf;

/// Why a run could not start or finish. A command that ran and exited non-zero is not an
/// error: see [`crate::RunResult::exit_code`].
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The spec is unusable (empty argv, relative path, bad `K=V`…): an input error.
    #[error("invalid run spec: {0}")]
    InvalidSpec(String),
    /// A file system operation of the caller's process failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Creating the container's init process failed.
    #[error("spawn container init: {0}")]
    Spawn(#[source] std::io::Error),
    /// Setting up the user namespace's id maps failed (rootless).
    #[error("user namespace id map: {0}")]
    IdMap(String),
    /// The user-mode network helper (slirp4netns, pasta) failed.
    #[error("network {tool}: {message}")]
    Network {
        /// The helper program.
        tool: &'static str,
        /// What went wrong.
        message: String,
    },
    /// A step inside the container failed before the command was executed, with the real
    /// errno of the failing call (mount, chdir, setuid, exec…).
    #[error("{stage} {path}: {message}")]
    Child {
        /// The failing step (`mount overlay`, `chdir`, `exec`, `user`…).
        stage: String,
        /// The path or value involved.
        path: String,
        /// The raw OS errno (0 when the failure is not a system call's).
        errno: i32,
        /// A readable message (`strerror` of the errno, or a description).
        message: String,
    },
    /// The image of `--image` could not be resolved in the store.
    #[error("image: {0}")]
    Image(String),
    /// The image of `--image` is not in the store, or its reference is malformed, or its
    /// content is broken (the store's message, naming it): an input error.
    #[error("{0}")]
    ImageInput(String),
    /// The container init died without reporting a status.
    #[error("container init failed: {0}")]
    Init(String),
}

impl RunError {
    /// Whether the error comes from the caller's input (the CLI exits 2 for these).
    pub fn is_input_error(&self) -> bool {
        matches!(self, Self::InvalidSpec(_) | Self::ImageInput(_))
    }

    /// The errno of a failure inside the container, if any.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Child { errno, .. } if *errno != 0 => Some(*errno),
            Self::Io { source, .. } | Self::Spawn(source) => source.raw_os_error(),
            _ => None,
        }
    }
}
