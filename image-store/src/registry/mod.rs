//! The OCI distribution protocol: pull images into the store, push images from it, log in and
//! out, and export/import the build cache as an OCI artifact.
//!
//! Blocking HTTP with `ureq`. One [`Client`] talks to one registry; it resolves the endpoint
//! (`docker.io` → `registry-1.docker.io`, plain HTTP only for insecure registries), authenticates
//! (anonymous or credentialed bearer tokens, basic auth, credentials from `~/.docker/config.json`
//! and `docker-credential-*` helpers) and retries with backoff on 429, 5xx and broken connections.
//!
//! Entry points: [`pull`], [`push`], [`login`], [`logout`], [`export_cache`], [`import_cache`],
//! with [`RegistryOptions`] for the knobs. Every blob pulled is streamed into a store temp file
//! while hashed and committed only when its digest and size match ([`crate::Store::blob_writer`]).

mod auth;
mod cli;
mod client;
mod compress;
mod credentials;
mod endpoint;
mod error;
mod fetch;
mod platform;
mod progress;
mod pull;
mod push;
mod remote_cache;

pub use auth::{Challenge, parse_challenges};
pub use cli::{
    LoginArgs, LoginReport, LogoutArgs, NetArgs, PullArgs, PushArgs, run_login, run_logout,
    run_pull, run_push,
};
pub use client::{Client, Scope};
pub use compress::{LayerCompression, recompress_layer};
pub use credentials::{Credential, CredentialStore, login, logout};
pub use endpoint::{Endpoint, is_default_insecure};
pub use error::RegistryError;
pub use platform::{is_attestation, platform_matches, select_manifest};
pub use pull::{PullReport, ensure_image, pull};
pub use push::{PushFormat, PushOptions, PushReport, push};
pub use remote_cache::{
    CACHE_ARTIFACT_TYPE, CACHE_CONFIG_MEDIA_TYPE, CacheExportReport, CacheImportReport,
    export_cache, import_cache,
};

use std::time::Duration;

use crate::oci::Platform;

/// Knobs shared by pull, push, login and the remote cache.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Registries (as written in references: `host[:port]`) reached over plain HTTP or TLS without
    /// verification. `localhost`, `127.0.0.0/8` and `::1` are always insecure, like Docker.
    pub insecure_registries: Vec<String>,
    /// Where credentials come from.
    pub credentials: CredentialStore,
    /// The platform to pull: selected from an index, and required of a single-platform image.
    /// `None`: the host's platform from an index, and a single-platform image whatever its
    /// platform (as Docker without `--platform`).
    pub platform: Option<Platform>,
    /// Blobs transferred at the same time.
    pub concurrency: usize,
    /// Retries of a request after 429, 5xx or a broken connection.
    pub retries: u32,
    /// The first retry delay; doubled each time (capped at 10 s).
    pub backoff: Duration,
    /// Show progress bars (only honoured when stderr is a terminal).
    pub progress: bool,
    /// Upload blobs larger than this in chunks of this size (PATCH then PUT); `None`: one PUT.
    pub chunk_size: Option<u64>,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Timeout of each read or write on a connection.
    pub io_timeout: Duration,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            insecure_registries: Vec::new(),
            credentials: CredentialStore::from_env(),
            platform: None,
            concurrency: 3,
            retries: 5,
            backoff: Duration::from_millis(200),
            progress: true,
            chunk_size: None,
            connect_timeout: Duration::from_secs(30),
            io_timeout: Duration::from_secs(120),
        }
    }
}
