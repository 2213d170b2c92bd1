//! Errors of the registry client.

use crate::digest::Digest;
use crate::error::StoreError;

/// Everything that can go wrong talking to a registry. Each variant names the URL, reference,
/// digest or file involved. Messages never contain credentials or tokens.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The local store failed (or refused content: digest or size mismatch).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The connection failed (after the retries).
    #[error("{method} {url}: {message}")]
    Transport {
        /// HTTP method.
        method: String,
        /// The URL (without credentials).
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The registry answered with an unexpected status.
    #[error("{method} {url}: HTTP {status}{}", if detail.is_empty() { String::new() } else { format!(": {detail}") })]
    Status {
        /// HTTP method.
        method: String,
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
        /// The registry's error message (truncated).
        detail: String,
    },
    /// The registry refused our credentials (or wants some we do not have).
    #[error("{registry}: authentication failed: {reason}")]
    Auth {
        /// The registry.
        registry: String,
        /// Why.
        reason: String,
    },
    /// A manifest or blob does not exist in the registry.
    #[error("{what}: not found in the registry")]
    NotFound {
        /// The reference or blob.
        what: String,
    },
    /// No manifest of an index matches the wanted platform.
    #[error("{reference}: no image for platform {platform} (available: {available})")]
    NoPlatform {
        /// The reference.
        reference: String,
        /// The wanted platform.
        platform: String,
        /// The platforms the index lists.
        available: String,
    },
    /// A foreign (non-distributable) layer: its content is not in the registry.
    #[error(
        "layer {digest}: foreign (non-distributable) layer of type {media_type} is not supported"
    )]
    ForeignLayer {
        /// The layer.
        digest: Digest,
        /// Its media type.
        media_type: String,
    },
    /// A document or layer of a type this client does not handle.
    #[error("{what}: unsupported media type {media_type:?}")]
    UnsupportedMediaType {
        /// The manifest, config or layer.
        what: String,
        /// Its media type.
        media_type: String,
    },
    /// A registry answer that breaks the protocol (bad JSON, wrong digest header, ...).
    #[error("{what}: {reason}")]
    Invalid {
        /// What was being read.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Content from the registry does not hash to its digest.
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The manifest or blob.
        what: String,
        /// The digest asked for.
        expected: Digest,
        /// The digest of what arrived.
        actual: Digest,
    },
    /// Credentials could not be read or written (`config.json`, a credential helper).
    #[error("credentials {source_name}: {reason}")]
    Credentials {
        /// The file or helper.
        source_name: String,
        /// What went wrong.
        reason: String,
    },
    /// A usage error (bad option combination, bad reference).
    #[error("{0}")]
    Usage(String),
}

/// Result type of the registry module.
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

impl From<crate::reference::ReferenceError> for RegistryError {
    fn from(e: crate::reference::ReferenceError) -> Self {
        RegistryError::Usage(e.to_string())
    }
}

impl RegistryError {
    /// Whether this is an input or usage error (exit code 2) rather than a failure of the work.
    pub fn is_input_error(&self) -> bool {
        match self {
            RegistryError::Usage(_)
            | RegistryError::NoPlatform { .. }
            | RegistryError::UnsupportedMediaType { .. }
            | RegistryError::ForeignLayer { .. } => true,
            RegistryError::Store(e) => matches!(
                e,
                StoreError::Reference(_)
                    | StoreError::ImageNotFound { .. }
                    | StoreError::InvalidDigest { .. }
            ),
            _ => false,
        }
    }

    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        RegistryError::Invalid {
            what: what.into(),
            reason: reason.into(),
        }
    }
}

/// Cuts a server message to something printable on one line.
pub(crate) fn short_detail(body: &str) -> String {
    let one_line: String = body
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let trimmed = one_line.trim();
    if trimmed.chars().count() > 200 {
        let cut: String = trimmed.chars().take(200).collect();
        format!("{cut}…")
    } else {
        trimmed.to_string()
    }
}
