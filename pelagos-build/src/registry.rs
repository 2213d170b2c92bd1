//! Registries in a build: base images (`FROM`, `COPY --from=<image>`, `RUN --mount from=<image>`)
//! pulled when missing from the store (always with `--pull`), the result pushed (`--push`,
//! `--output type=registry`), and the build cache exported to (`--cache-to type=registry`) and
//! imported from (`--cache-from type=registry`) a registry, all through
//! [`image_store::registry`].

use std::collections::HashMap;
use std::sync::Mutex;

use image_store::registry::{self, RegistryError, RegistryOptions};
use image_store::{CacheRecord, Digest, ImageRecord, Platform, Reference, Store};

use crate::error::BuildError;

/// Cache keys the store keeps for itself (recompressed layers), never exported.
pub const PRIVATE_CACHE_PREFIX: &str = "pelagos.registry.recompress.v1:";

/// A resolved base image, or why not (message, whether it is an input error).
type Resolved = Result<ImageRecord, (String, bool)>;
type Memo = HashMap<(String, String), Resolved>;

/// How base images are obtained: from the store, else (or always, with `--pull`) pulled for the
/// stage's platform. Each (image, platform) is resolved once per build, so the planner and the
/// executor see the same image; concurrent stages wait for one pull.
pub struct Bases<'a> {
    store: &'a Store,
    opts: RegistryOptions,
    always_pull: bool,
    memo: Mutex<Memo>,
    pull_lock: Mutex<()>,
    pulled: Mutex<Vec<String>>,
    local: Mutex<Vec<String>>,
}

impl std::fmt::Debug for Bases<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bases")
            .field("always_pull", &self.always_pull)
            .finish_non_exhaustive()
    }
}

impl<'a> Bases<'a> {
    /// `opts` without a platform (each lookup gives its own); `always_pull` is `--pull`.
    pub fn new(store: &'a Store, opts: RegistryOptions, always_pull: bool) -> Bases<'a> {
        Bases {
            store,
            opts,
            always_pull,
            memo: Mutex::new(HashMap::new()),
            pull_lock: Mutex::new(()),
            pulled: Mutex::new(Vec::new()),
            local: Mutex::new(Vec::new()),
        }
    }

    /// Marks `image` as made by the build (a `--build-context`): never pulled, even with `--pull`.
    pub fn keep_local(&self, image: &str) {
        self.local
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(image.to_string());
    }

    /// The image `image` names for `platform` (`os/arch[/variant]`).
    pub fn get(&self, image: &str, platform: &str) -> Result<ImageRecord, BuildError> {
        let key = (image.to_string(), platform.to_string());
        let lookup = |m: &Memo| m.get(&key).cloned();
        if let Some(r) = lookup(&self.lock_memo()) {
            return unmemo(image, r);
        }
        let _pulling = self
            .pull_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(r) = lookup(&self.lock_memo()) {
            return unmemo(image, r);
        }
        let r = self.ensure(image, platform).map_err(|e| {
            let input = e.is_input_error();
            (e.to_string(), input)
        });
        self.lock_memo().insert(key, r.clone());
        unmemo(image, r)
    }

    fn ensure(&self, image: &str, platform: &str) -> Result<ImageRecord, RegistryError> {
        let reference = Reference::parse(image)?;
        let mut opts = self.opts.clone();
        opts.platform = Some(Platform::parse(platform)?);
        let local = self
            .local
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .any(|l| l == image);
        let (img, report) =
            registry::ensure_image(self.store, &reference, self.always_pull && !local, &opts)?;
        if let Some(r) = report {
            self.pulled
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(format!("{} {}", r.reference, r.manifest_digest));
        }
        Ok(img)
    }

    fn lock_memo(&self) -> std::sync::MutexGuard<'_, Memo> {
        self.memo
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `REFERENCE MANIFEST_DIGEST` of every image pulled so far.
    pub fn pulled(&self) -> Vec<String> {
        self.pulled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

fn unmemo(image: &str, r: Resolved) -> Result<ImageRecord, BuildError> {
    r.map_err(|(message, input)| BuildError::Pull {
        image: image.to_string(),
        message,
        input,
    })
}

/// One pushed image: where, and the manifest digest the registry has.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Pushed {
    /// The destination reference.
    pub reference: String,
    /// The pushed manifest's digest.
    pub digest: String,
}

/// Pushes the built image (`manifest`) to every destination.
pub fn push_all(
    store: &Store,
    manifest: &Digest,
    dests: &[String],
    opts: &RegistryOptions,
) -> Result<Vec<Pushed>, BuildError> {
    let mut out = Vec::new();
    for d in dests {
        let dest = Reference::parse(d).map_err(|e| registry_err(d, e.into()))?;
        let img = store.image(&dest.with_digest(manifest.clone()))?;
        let report = registry::push(store, &img, &dest, &registry::PushOptions::default(), opts)
            .map_err(|e| registry_err(d, e))?;
        out.push(Pushed {
            reference: report.reference,
            digest: report.digest.to_string(),
        });
    }
    Ok(out)
}

fn registry_err(what: &str, source: RegistryError) -> BuildError {
    BuildError::Registry {
        what: what.to_string(),
        source,
    }
}

/// Imports the cache at `reference` into the store; a missing cache is a warning (returned).
pub fn import_cache(
    store: &Store,
    reference: &str,
    opts: &RegistryOptions,
) -> Result<Option<String>, BuildError> {
    let r = Reference::parse(reference).map_err(|e| registry_err(reference, e.into()))?;
    match registry::import_cache(store, &r, opts) {
        Ok(_) => Ok(None),
        Err(RegistryError::NotFound { .. }) => Ok(Some(format!(
            "--cache-from {reference}: not found in the registry (empty cache)"
        ))),
        Err(e) => Err(registry_err(reference, e)),
    }
}

/// Exports the cache records of `keys` (those the store has, private ones left out).
pub fn export_cache(
    store: &Store,
    keys: &[String],
    reference: &str,
    opts: &RegistryOptions,
) -> Result<usize, BuildError> {
    let r = Reference::parse(reference).map_err(|e| registry_err(reference, e.into()))?;
    let mut records: Vec<(String, CacheRecord)> = Vec::new();
    for k in keys {
        if k.starts_with(PRIVATE_CACHE_PREFIX) || records.iter().any(|(x, _)| x == k) {
            continue;
        }
        if let Some(rec) = store.cache_get(k)? {
            records.push((k.clone(), rec));
        }
    }
    let report = registry::export_cache(store, &records, &r, opts)
        .map_err(|e| registry_err(reference, e))?;
    Ok(report.records)
}
