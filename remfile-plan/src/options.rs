//! Inputs of the planner besides the AST: options and the base image resolver.

use std::collections::BTreeMap;

use crate::config::ImageConfig;
use crate::error::PlanError;
use crate::platform::Platform;

/// Options of a plan (the CLI flags).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanOptions {
    /// `--build-arg K=V` in order (a later K wins).
    pub build_args: Vec<(String, String)>,
    /// `--target`: the stage name (case-insensitive); `None`: the last stage.
    pub target: Option<String>,
    /// `--platform`: the target platform; `None`: the build platform.
    pub platform: Option<Platform>,
    /// The build platform; `None`: this machine ([`Platform::host`]).
    pub build_platform: Option<Platform>,
}

impl PlanOptions {
    /// Parses one `--build-arg` value `K=V`. (`K` alone is the caller's business: the CLI takes
    /// the value from its environment.)
    pub fn parse_build_arg(s: &str) -> Result<(String, String), PlanError> {
        match s.split_once('=') {
            Some((k, v)) if valid_arg_name(k) => Ok((k.to_string(), v.to_string())),
            _ => Err(PlanError::BuildArg(s.to_string())),
        }
    }
}

impl PlanOptions {
    /// Adds one `--build-arg` as a CLI gives it: `K=V`, or `K` alone, which takes the value from
    /// `lookup` (the environment) and is skipped when that has none (Docker's rule).
    pub fn add_build_arg(
        &mut self,
        spec: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<(), PlanError> {
        if spec.contains('=') {
            self.build_args.push(PlanOptions::parse_build_arg(spec)?);
        } else if !valid_arg_name(spec) {
            return Err(PlanError::BuildArg(spec.to_string()));
        } else if let Some(v) = lookup(spec) {
            self.build_args.push((spec.to_string(), v));
        }
        Ok(())
    }
}

/// A `--base-config REF=FILE` that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum BaseConfigError {
    /// Not `REF=FILE`.
    #[error("--base-config {0:?}: expected REF=FILE")]
    Syntax(String),
    /// REF is no valid image reference.
    #[error("--base-config {spec:?}: {source}")]
    Reference {
        /// The flag value.
        spec: String,
        /// Why.
        source: crate::reference::ReferenceError,
    },
    /// FILE cannot be read.
    #[error("--base-config {file}: {source}")]
    Read {
        /// The file.
        file: String,
        /// Why.
        source: std::io::Error,
    },
    /// FILE is no image config.
    #[error("--base-config {file}: {source}")]
    Config {
        /// The file.
        file: String,
        /// Why.
        source: crate::config::ConfigError,
    },
}

/// Loads `REF=FILE` (FILE an OCI/Docker image config JSON) into `bases`, keyed by the normalised
/// reference.
pub fn load_base_config(
    spec: &str,
    bases: &mut BTreeMap<String, ImageConfig>,
) -> Result<(), BaseConfigError> {
    let (r, file) = spec
        .split_once('=')
        .ok_or_else(|| BaseConfigError::Syntax(spec.to_string()))?;
    let image = crate::reference::normalize(r).map_err(|source| BaseConfigError::Reference {
        spec: spec.to_string(),
        source,
    })?;
    let text = std::fs::read_to_string(file).map_err(|source| BaseConfigError::Read {
        file: file.to_string(),
        source,
    })?;
    let cfg = ImageConfig::from_oci_json(&text).map_err(|source| BaseConfigError::Config {
        file: file.to_string(),
        source,
    })?;
    bases.insert(image, cfg);
    Ok(())
}

/// True for a name `--build-arg` accepts: non-empty, no white space, no `=`.
pub fn valid_arg_name(k: &str) -> bool {
    !k.is_empty() && !k.chars().any(|c| c.is_whitespace() || c == '=')
}

/// Provides the configs of external base images (the planner stays pure).
pub trait BaseResolver {
    /// The config of `image` (a normalised reference such as
    /// `docker.io/library/busybox:latest`) for `platform`, or `None` when unknown (the planner
    /// then assumes an empty config and adds a warning).
    fn resolve(&self, image: &str, platform: &Platform) -> Option<ImageConfig>;
}

/// A resolver that knows no image.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoBases;

impl BaseResolver for NoBases {
    fn resolve(&self, _image: &str, _platform: &Platform) -> Option<ImageConfig> {
        None
    }
}

/// Configs by reference: a key matches when it equals the normalised reference or normalises
/// to it (so `busybox:local` and `docker.io/library/busybox:local` both work).
impl BaseResolver for BTreeMap<String, ImageConfig> {
    fn resolve(&self, image: &str, _platform: &Platform) -> Option<ImageConfig> {
        self.get(image).cloned().or_else(|| {
            self.iter()
                .find(|(k, _)| crate::reference::normalize(k).is_ok_and(|n| n == image))
                .map(|(_, v)| v.clone())
        })
    }
}
