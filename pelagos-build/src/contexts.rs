//! `--build-context NAME=VALUE`: named contexts, as buildx and BuildKit's Dockerfile frontend
//! have them.
//!
//! A named context replaces what `NAME` would otherwise be in `FROM NAME`, `COPY --from=NAME`
//! and `RUN --mount from=NAME`: an image of that name (matched as BuildKit does, on the
//! normalised reference, so `alpine` also names `docker.io/library/alpine:latest`) or a stage
//! of that name (the stage is then replaced by the context: its instructions are not run).
//! Every kind of value becomes an image in the store:
//!
//! - a local directory: a one-layer image of its files, owned by 0:0 (a deterministic config, so
//!   an unchanged directory keeps the cache);
//! - `docker-image://REF`: the image `REF` (from the store, else pulled);
//! - `oci-layout://PATH[:TAG|@DIGEST]`: the image of an OCI layout (tag `latest` by default, or the
//!   only image of the layout), loaded untagged;
//! - a git repository (`https://host/repo.git#ref:subdir`, `git://…`, `ssh://…`,
//!   `git@host:repo`): a one-layer image of the checkout (or its subdir), as a directory;
//! - another `http(s)://` URL: a one-layer image holding the download as the file `context`
//!   (BuildKit's HTTP named context; see [`crate::remote`]).
//!
//! `target:STAGE` is buildx bake's, not `buildx build`'s: refused.
//!
//! Directories, remote contexts and layouts are named by digest (`localhost/pelagos-build-context@sha256:...`) and
//! never pulled, not even with `--pull`.

use std::path::{Path, PathBuf};

use image_store::{Descriptor, Digest, History, ImageConfig, LoadOptions, Platform, RootFs, Store};
use remfile_plan::{Base, FromRef, Op, Plan, RunMount};

use crate::error::BuildError;

/// The repository of images made from directories and OCI layouts.
pub const CONTEXT_REPO: &str = "localhost/pelagos-build-context";

/// An invalid `--build-context`.
#[derive(Debug, thiserror::Error)]
#[error("invalid --build-context {spec:?}: {reason}")]
pub struct ContextError {
    /// The spec as given.
    pub spec: String,
    /// Why.
    pub reason: String,
}

/// What a named context is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContextValue {
    /// A local directory.
    Dir(PathBuf),
    /// `docker-image://REF`.
    Image(String),
    /// `oci-layout://PATH[:TAG|@DIGEST]`.
    OciLayout {
        /// The layout directory.
        path: PathBuf,
        /// `:TAG` (neither: `latest`, or the layout's only image).
        tag: Option<String>,
        /// `@DIGEST`.
        digest: Option<String>,
    },
    /// A git repository URL.
    Git(String),
    /// An `http(s)://` URL (not a git repository).
    Http(String),
}

/// One `--build-context NAME=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedContext {
    /// The name as given.
    pub name: String,
    /// The value.
    pub value: ContextValue,
}

impl NamedContext {
    /// Parses `NAME=VALUE`.
    pub fn parse(spec: &str) -> Result<Self, ContextError> {
        let err = |reason: &str| ContextError {
            spec: crate::git::redact(spec),
            reason: crate::git::redact(reason),
        };
        let (name, value) = spec
            .split_once('=')
            .ok_or_else(|| err("expected NAME=VALUE"))?;
        if name.is_empty() {
            return Err(err("empty name"));
        }
        if value.is_empty() {
            return Err(err("empty value"));
        }
        let value = if let Some(r) = value.strip_prefix("docker-image://") {
            remfile_plan::reference::normalize(r).map_err(|e| err(&e.to_string()))?;
            ContextValue::Image(r.to_string())
        } else if let Some(rest) = value.strip_prefix("oci-layout://") {
            let (path, tag, digest) = split_layout(rest);
            if path.is_empty() {
                return Err(err("empty layout path"));
            }
            if let Some(d) = &digest {
                Digest::parse(d).map_err(|e| err(&e.to_string()))?;
            }
            ContextValue::OciLayout {
                path: PathBuf::from(path),
                tag,
                digest,
            }
        } else if crate::git::is_git_source(value) {
            crate::git::parse(value).map_err(|e| err(&e.to_string()))?;
            ContextValue::Git(value.to_string())
        } else if crate::fetch::is_url(value) {
            ContextValue::Http(value.to_string())
        } else if value.starts_with("target:") {
            return Err(err(
                "target: contexts are a buildx bake feature (buildx build does not take them)",
            ));
        } else if value.contains("://") {
            return Err(err(
                "expected a directory, docker-image://, oci-layout://, a git repository or an http(s) URL",
            ));
        } else {
            ContextValue::Dir(PathBuf::from(value))
        };
        Ok(NamedContext {
            name: name.to_string(),
            value,
        })
    }

    /// The normalised reference the name matches in `FROM` and `--from` (`None`: not an image
    /// name, so it can only name a stage).
    fn image_key(&self) -> Option<String> {
        remfile_plan::reference::normalize(&self.name).ok()
    }
}

/// `PATH[:TAG|@DIGEST]`: a `@` or `:` after the last `/`.
fn split_layout(s: &str) -> (&str, Option<String>, Option<String>) {
    let last = s.rfind('/').map_or(0, |i| i + 1);
    let tail = s.get(last..).unwrap_or("");
    if let Some(at) = tail.find('@') {
        let (p, d) = s.split_at(last + at);
        return (p, None, Some(d.trim_start_matches('@').to_string()));
    }
    if let Some(c) = tail.rfind(':') {
        let (p, t) = s.split_at(last + c);
        return (p, Some(t.trim_start_matches(':').to_string()), None);
    }
    (s, None, None)
}

/// The named contexts of a build, each resolved to an image reference.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `(lowercased name, normalised image key, reference)`.
    entries: Vec<(String, Option<String>, String)>,
}

impl Overrides {
    /// Resolves each context (a later one with the same name wins): directories are packed and
    /// layouts loaded into `store`.
    pub fn resolve(store: &Store, contexts: &[NamedContext]) -> Result<Self, BuildError> {
        let mut entries: Vec<(String, Option<String>, String)> = Vec::new();
        for c in contexts {
            let reference = match &c.value {
                ContextValue::Image(r) => {
                    remfile_plan::reference::normalize(r).map_err(|e| usage(c, &e.to_string()))?
                }
                ContextValue::Dir(d) => dir_image(store, c, d, true)?,
                ContextValue::Git(url) | ContextValue::Http(url) => {
                    let r = crate::remote::fetch(store, url, crate::remote::HttpUse::Named, None)?;
                    dir_image(store, c, &r.root, false)?
                }
                ContextValue::OciLayout { path, tag, digest } => {
                    layout_image(store, c, path, tag.as_deref(), digest.as_deref())?
                }
            };
            let name = c.name.to_ascii_lowercase();
            entries.retain(|(n, _, _)| *n != name);
            entries.push((name, c.image_key(), reference));
        }
        Ok(Overrides { entries })
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// References made from directories and layouts: in the store, never to be pulled.
    pub fn local_references(&self) -> impl Iterator<Item = &str> {
        self.entries
            .iter()
            .map(|(_, _, r)| r.as_str())
            .filter(|r| r.starts_with(CONTEXT_REPO))
    }

    /// The reference replacing the (normalised) image `image`, if a context names it.
    pub fn image(&self, image: &str) -> Option<&str> {
        let key = remfile_plan::reference::normalize(image).ok()?;
        self.entries
            .iter()
            .find(|(_, k, _)| k.as_deref() == Some(key.as_str()))
            .map(|(_, _, r)| r.as_str())
    }

    /// Replaces every stage named by a context with `FROM <reference> AS <name>` alone, as
    /// BuildKit does (named contexts win over stages).
    pub fn rewrite_stages(&self, ast: &mut remfile_parse::Remfile) {
        use remfile_parse::ast::Kind;
        let mut out = Vec::with_capacity(ast.instructions.len());
        let mut skipping = false;
        for mut ins in std::mem::take(&mut ast.instructions) {
            if let Kind::From { image, alias, .. } = &mut ins.kind {
                let over = alias
                    .as_ref()
                    .and_then(|a| self.entries.iter().find(|(n, _, _)| n == a));
                skipping = over.is_some();
                if let Some((_, _, r)) = over {
                    image.clone_from(r);
                }
            } else if skipping {
                continue;
            }
            out.push(ins);
        }
        ast.instructions = out;
    }

    /// Points every image of `plan` that a context names at the context's reference.
    pub fn rewrite_plan(&self, plan: &mut Plan) {
        let map = |s: &mut String| {
            if let Some(r) = self.image(s) {
                *s = r.to_string();
            }
        };
        let from = |f: &mut Option<FromRef>| {
            if let Some(FromRef::Image(s)) = f
                && let Some(r) = self.image(s)
            {
                *s = r.to_string();
            }
        };
        plan.images.iter_mut().for_each(map);
        plan.images.sort();
        plan.images.dedup();
        for stage in &mut plan.stages {
            if let Base::Image { image, .. } = &mut stage.base {
                map(image);
            }
            for step in &mut stage.steps {
                rewrite_json(&mut step.definition, self);
                match &mut step.op {
                    Op::Copy(c) | Op::Add(c) => from(&mut c.from),
                    Op::Run(r) => {
                        for m in &mut r.mounts {
                            if let RunMount::Bind { from: f, .. }
                            | RunMount::Cache { from: f, .. } = m
                            {
                                from(f);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Image names in a step definition (the cache key's input) follow the rewrite.
fn rewrite_json(v: &mut serde_json::Value, o: &Overrides) {
    match v {
        serde_json::Value::String(s) if s.contains('/') => {
            if let Some(r) = o.image(s) {
                *s = r.to_string();
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| rewrite_json(x, o)),
        serde_json::Value::Object(m) => m.values_mut().for_each(|x| rewrite_json(x, o)),
        _ => {}
    }
}

fn usage(c: &NamedContext, reason: &str) -> BuildError {
    BuildError::Usage(crate::cli::UsageError::Extra(
        crate::extra::ExtraError::Context(ContextError {
            spec: format!("{}={}", c.name, describe(&c.value)),
            reason: reason.to_string(),
        }),
    ))
}

fn describe(v: &ContextValue) -> String {
    match v {
        ContextValue::Dir(d) => d.display().to_string(),
        ContextValue::Image(r) => format!("docker-image://{r}"),
        ContextValue::OciLayout { path, .. } => format!("oci-layout://{}", path.display()),
        ContextValue::Git(u) | ContextValue::Http(u) => crate::git::redact(u),
    }
}

/// A one-layer image of the directory's files; its config has no time, so the same files give
/// the same manifest (and the cache holds).
fn dir_image(
    store: &Store,
    c: &NamedContext,
    dir: &Path,
    local: bool,
) -> Result<String, BuildError> {
    if !dir.is_dir() {
        return Err(usage(c, "not a directory"));
    }
    let layer = dir_layer(store, c, dir, local)?;
    let platform = Platform::host();
    let config = ImageConfig {
        created: None,
        author: None,
        architecture: platform.architecture,
        os: platform.os,
        variant: platform.variant,
        config: None,
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: vec![layer.3.clone()],
        },
        history: vec![History {
            created_by: Some(format!("build context {}", c.name)),
            ..Default::default()
        }],
        extra: std::collections::BTreeMap::new(),
    };
    let desc = Descriptor::new(&layer.0, layer.1, layer.2);
    let written = store.write_image(&config, &[desc])?;
    Ok(format!("{CONTEXT_REPO}@{}", written.manifest.digest))
}

/// The directory's files as one layer `(media type, digest, size, diff_id)`, owned by 0:0 as
/// files sent from a client's directory are in BuildKit (Docker's filesync resets owners); modes,
/// mtimes and symlinks kept, sockets and devices left out.
fn dir_layer(
    store: &Store,
    c: &NamedContext,
    dir: &Path,
    local: bool,
) -> Result<(String, Digest, u64, Digest), BuildError> {
    use std::os::unix::fs::MetadataExt;
    // BuildKit reads the `.dockerignore` of a local named context (only that name; not of a
    // remote one)
    let ignore_file = dir.join(".dockerignore");
    let ignore = match std::fs::read(&ignore_file) {
        Ok(b) if local => crate::ignore::IgnoreMatcher::parse(
            &String::from_utf8_lossy(&b),
            &ignore_file.display().to_string(),
        )?,
        _ => crate::ignore::IgnoreMatcher::default(),
    };
    let rel_of = |p: &Path| -> Option<String> {
        p.strip_prefix(dir)
            .ok()
            .and_then(Path::to_str)
            .map(str::to_string)
    };
    let mut entries: Vec<layer_pack::Entry> = Vec::new();
    let mut dirs = std::collections::HashSet::new();
    let walk = walkdir::WalkDir::new(dir)
        .follow_links(false)
        .sort_by_file_name()
        .min_depth(1)
        .into_iter()
        .filter_entry(|e| {
            let Some(rel) = rel_of(e.path()) else {
                return true;
            };
            !(e.file_type().is_dir() && ignore.is_excluded(&rel) && ignore.can_skip_dir(&rel))
        });
    for e in walk {
        let e = e.map_err(|e| usage(c, &e.to_string()))?;
        let md = e.metadata().map_err(|e| usage(c, &e.to_string()))?;
        let rel = rel_of(e.path())
            .ok_or_else(|| usage(c, &format!("{}: not a UTF-8 name", e.path().display())))?;
        if ignore.is_excluded(&rel) {
            continue;
        }
        // parents of a file re-included below an excluded directory
        let mut missing = Vec::new();
        let mut parent = Path::new(&rel).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            if dirs.contains(p) {
                break;
            }
            missing.push(p.to_path_buf());
            parent = p.parent();
        }
        for p in missing.into_iter().rev() {
            let pmd = std::fs::symlink_metadata(dir.join(&p)).map_err(|x| BuildError::Io {
                path: dir.join(&p),
                source: x,
            })?;
            entries.push(layer_pack::Entry {
                path_in_layer: p.to_string_lossy().into_owned(),
                source: layer_pack::EntrySource::Dir,
                mode: pmd.mode() & 0o7777,
                uid: 0,
                gid: 0,
                mtime: pmd.mtime(),
                xattrs: Vec::new(),
            });
            dirs.insert(p);
        }
        if md.is_dir() {
            dirs.insert(PathBuf::from(&rel));
        }
        let rel = rel.as_str();
        let source = if md.is_dir() {
            layer_pack::EntrySource::Dir
        } else if md.is_file() {
            layer_pack::EntrySource::File(e.path().to_path_buf())
        } else if md.file_type().is_symlink() {
            let t = std::fs::read_link(e.path()).map_err(|x| BuildError::Io {
                path: e.path().to_path_buf(),
                source: x,
            })?;
            layer_pack::EntrySource::Symlink(t.into_os_string())
        } else {
            continue;
        };
        entries.push(layer_pack::Entry {
            path_in_layer: rel.to_string(),
            source,
            mode: md.mode() & 0o7777,
            uid: 0,
            gid: 0,
            mtime: md.mtime(),
            xattrs: Vec::new(),
        });
    }
    let mut w = store.blob_writer()?;
    let d = layer_pack::pack_entries(entries, &layer_pack::PackOptions::default(), &mut w)
        .map_err(|e| usage(c, &e.to_string()))?;
    let info = w.commit(None)?;
    let diff_id = Digest::parse(&d.diff_id)?;
    Ok((d.media_type, info.digest, info.size, diff_id))
}

/// Loads the image of an OCI layout untagged: through a temporary layout that lists only the
/// chosen manifest (or index) and shares the original's blobs.
fn layout_image(
    store: &Store,
    c: &NamedContext,
    path: &Path,
    tag: Option<&str>,
    digest: Option<&str>,
) -> Result<String, BuildError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| BuildError::Io { path: p, source: e }
    };
    let index_path = path.join("index.json");
    let text = std::fs::read_to_string(&index_path).map_err(io(&index_path))?;
    let index: image_store::Index =
        serde_json::from_str(&text).map_err(|e| usage(c, &format!("index.json: {e}")))?;
    let mut desc = match (digest, tag) {
        (Some(d), _) => {
            let d = Digest::parse(d).map_err(|e| usage(c, &e.to_string()))?;
            let blob = path.join("blobs").join(d.algorithm()).join(d.hex());
            let data = std::fs::read(&blob).map_err(io(&blob))?;
            let media_type = serde_json::from_slice::<serde_json::Value>(&data)
                .ok()
                .and_then(|v| v.get("mediaType")?.as_str().map(str::to_string))
                .ok_or_else(|| usage(c, &format!("{d}: not a manifest or index")))?;
            Descriptor::new(&media_type, d, data.len() as u64)
        }
        (None, t) => {
            let want = t.unwrap_or("latest");
            let found = index.manifests.iter().find(|m| {
                m.annotations
                    .get(image_store::ANNOTATION_REF_NAME)
                    .map(String::as_str)
                    == Some(want)
            });
            match (found, t, index.manifests.as_slice()) {
                (Some(m), _, _) => m.clone(),
                (None, None, [only]) => only.clone(),
                _ => return Err(usage(c, &format!("no image tagged {want:?} in the layout"))),
            }
        }
    };
    desc.annotations.clear();
    let tmp = store.temp_path("build-context-layout")?;
    let _cleanup = RemoveOnDrop(tmp.clone());
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let layout_file = tmp.join("oci-layout");
    std::fs::write(&layout_file, "{\"imageLayoutVersion\":\"1.0.0\"}").map_err(io(&layout_file))?;
    let blobs = std::fs::canonicalize(path.join("blobs")).map_err(io(&path.join("blobs")))?;
    std::os::unix::fs::symlink(&blobs, tmp.join("blobs")).map_err(io(&tmp))?;
    let mini = serde_json::json!({"schemaVersion": 2, "manifests": [desc]});
    let idx = tmp.join("index.json");
    std::fs::write(&idx, mini.to_string()).map_err(io(&idx))?;
    let loaded = store.load_path(&tmp, &LoadOptions::default())?;
    let first = loaded
        .first()
        .ok_or_else(|| usage(c, "the layout holds no image"))?;
    Ok(format!("{CONTEXT_REPO}@{}", first.manifest_digest))
}

struct RemoveOnDrop(PathBuf);
impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_values() {
        let c = NamedContext::parse("src=./dir").unwrap();
        assert_eq!(c.value, ContextValue::Dir("./dir".into()));
        let c = NamedContext::parse("alpine=docker-image://busybox:local").unwrap();
        assert_eq!(c.value, ContextValue::Image("busybox:local".into()));
        assert_eq!(
            c.image_key().as_deref(),
            Some("docker.io/library/alpine:latest")
        );
        let c = NamedContext::parse("x=oci-layout:///l/a:v1").unwrap();
        assert_eq!(
            c.value,
            ContextValue::OciLayout {
                path: "/l/a".into(),
                tag: Some("v1".into()),
                digest: None
            }
        );
        let digest = format!("sha256:{}", "a".repeat(64));
        let c = NamedContext::parse(&format!("x=oci-layout://l:5/a@{digest}")).unwrap();
        assert_eq!(
            c.value,
            ContextValue::OciLayout {
                path: "l:5/a".into(),
                tag: None,
                digest: Some(digest)
            }
        );
        let c = NamedContext::parse("x=oci-layout://rel").unwrap();
        assert!(matches!(
            c.value,
            ContextValue::OciLayout {
                tag: None,
                digest: None,
                ..
            }
        ));
        let c = NamedContext::parse("x=https://h/repo.git#main:sub").unwrap();
        assert_eq!(
            c.value,
            ContextValue::Git("https://h/repo.git#main:sub".into())
        );
        let c = NamedContext::parse("x=git@h:r.git").unwrap();
        assert_eq!(c.value, ContextValue::Git("git@h:r.git".into()));
        let c = NamedContext::parse("x=http://h/ctx.tar.gz").unwrap();
        assert_eq!(c.value, ContextValue::Http("http://h/ctx.tar.gz".into()));
        // credentials never reach the message
        let err = NamedContext::parse("x=https://u:s3cret@h/r.git?bogus=1")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("xxxxx:xxxxx@h") && !err.contains("s3cret"),
            "{err}"
        );
        for bad in [
            "noequals",
            "=dir",
            "x=",
            "x=https://h/repo.git?bogus=1",
            "x=target:base",
            "x=ftp://h/f",
            "x=docker-image://UPPER",
            "x=oci-layout://",
            "x=oci-layout://p@sha256:zz",
        ] {
            assert!(NamedContext::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn image_matching_is_on_the_normalised_name() {
        let o = Overrides {
            entries: vec![(
                "alpine".into(),
                NamedContext::parse("alpine=d").unwrap().image_key(),
                "docker.io/library/busybox:local".into(),
            )],
        };
        for n in ["alpine", "alpine:latest", "docker.io/library/alpine:latest"] {
            assert_eq!(o.image(n), Some("docker.io/library/busybox:local"), "{n}");
        }
        assert_eq!(o.image("alpine:3"), None);
        assert_eq!(o.image("other"), None);
    }
}
