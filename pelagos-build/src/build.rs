//! One build from options to image: context and recipe loading, planning, execution, the image
//! config (BuildKit's), tags, outputs, `--iidfile`, `--metadata-file` and the result document.

use std::io::Read;
use std::path::{Path, PathBuf};

use image_store::{ContainerConfig, Descriptor, ImageConfig, Platform, Reference, RootFs, Store};
use remfile_plan::{BaseResolver, Plan, PlanOptions};
use serde::Serialize;

use crate::checksum::StatCache;
use crate::cli::{BuildOptions, ContextSource, Recipe};
use crate::error::{BuildError, input, io};
use crate::exec::{ExecOptions, Executor, StageResult, StepReport, rfc3339};
use crate::ignore::IgnoreMatcher;
use crate::progress::Progress;
use crate::tree::Tree;

/// The version-1 build result document printed on stdout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct BuildResult {
    /// Always 1.
    pub version: u32,
    /// The first tag, normalised (absent when untagged).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Every tag, normalised.
    pub references: Vec<String>,
    /// The image ID: the config digest.
    pub image_id: String,
    /// The manifest digest.
    pub manifest_digest: String,
    /// The manifest size in bytes.
    pub manifest_size: u64,
    /// `os/arch[/variant]`.
    pub platform: String,
    /// Where the image was pushed (`--push`, `--output type=registry`), with the manifest
    /// digest each registry has.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pushed: Vec<crate::registry::Pushed>,
    /// One entry per `--output`: what was written where (absent without `--output`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<crate::output::OutputReport>,
}

/// The `--metadata-file` document.
#[derive(Debug, Clone, Serialize)]
pub struct Metadata {
    /// Always 1.
    pub version: u32,
    /// The image ID.
    pub image_id: String,
    /// The manifest digest.
    pub manifest_digest: String,
    /// Tags.
    pub references: Vec<String>,
    /// buildx-compatible keys.
    #[serde(rename = "containerimage.config.digest")]
    pub buildx_config_digest: String,
    /// buildx-compatible keys.
    #[serde(rename = "containerimage.digest")]
    pub buildx_digest: String,
    /// Total wall time in seconds.
    pub duration: f64,
    /// Steps run.
    pub steps: Vec<StepReport>,
    /// Steps taken from the cache.
    pub cached_steps: usize,
    /// Context files hashed (stat cache misses).
    pub files_hashed: usize,
    /// Base images pulled (`REFERENCE MANIFEST_DIGEST`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pulled: Vec<String>,
    /// Pushes of the image.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pushed: Vec<crate::registry::Pushed>,
    /// Cache records exported by `--cache-to`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_exported: Option<usize>,
}

/// What a build produced.
#[derive(Debug)]
pub struct BuildOutcome {
    /// The result document.
    pub result: BuildResult,
    /// The metadata document.
    pub metadata: Metadata,
}

/// Base configs for the planner: from the store, else pulled (a failure is reported by the
/// executor, which asks again and gets the same answer).
struct StoreBases<'a, 'b>(
    &'b crate::registry::Bases<'a>,
    &'b crate::contexts::Overrides,
);

impl BaseResolver for StoreBases<'_, '_> {
    fn resolve(
        &self,
        image: &str,
        platform: &remfile_plan::Platform,
    ) -> Option<remfile_plan::ImageConfig> {
        let image = self.1.image(image).unwrap_or(image);
        let img = self.0.get(image, &platform.to_string()).ok()?;
        let text = serde_json::to_string(&img.config).ok()?;
        remfile_plan::ImageConfig::from_oci_json(&text).ok()
    }
}

/// Reads a Remfile as BuildKit does: bytes that are not UTF-8 are no error (they become
/// U+FFFD, as Go's JSON encoding of the config makes them).
fn read_remfile(p: &Path) -> Result<String, BuildError> {
    let bytes = std::fs::read(p).map_err(input(p))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Finds the Remfile in a context: `Remfile`, `Dockerfile`, `Containerfile`.
pub fn find_remfile(context: &Path) -> Option<PathBuf> {
    ["Remfile", "Dockerfile", "Containerfile"]
        .iter()
        .map(|n| context.join(n))
        .find(|p| p.is_file())
}

struct Temp(PathBuf);
impl Drop for Temp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `-` as context: a tar archive (plain or compressed) becomes the context; anything else is a
/// Remfile with an empty context.
fn stdin_context(store: &Store, data: &[u8]) -> Result<(Temp, Option<String>), BuildError> {
    let dir = Temp(store.temp_path("stdin-context")?);
    std::fs::create_dir_all(&dir.0).map_err(io(&dir.0))?;
    let codec = crate::archive::codec_of(data);
    let mut head = vec![0u8; 512];
    let is_tar = crate::archive::decoder(codec, data)
        .ok()
        .is_some_and(|mut d| {
            d.read_exact(&mut head).is_ok() && crate::archive::is_tar_header(&head)
        });
    if is_tar {
        let d = crate::archive::decoder(codec, data).map_err(io(&dir.0))?;
        let mut ar = tar::Archive::new(d);
        ar.set_preserve_permissions(true);
        ar.set_preserve_mtime(true);
        ar.unpack(&dir.0).map_err(io(&dir.0))?;
        Ok((dir, None))
    } else {
        Ok((dir, Some(String::from_utf8_lossy(data).into_owned())))
    }
}

fn read_stdin() -> Result<Vec<u8>, BuildError> {
    let mut v = Vec::new();
    std::io::stdin()
        .read_to_end(&mut v)
        .map_err(input(Path::new("<stdin>")))?;
    Ok(v)
}

/// Runs a build.
pub fn build(opts: &BuildOptions, progress: &Progress) -> Result<BuildOutcome, BuildError> {
    let started = std::time::Instant::now();
    let store_root = opts.store.clone().unwrap_or_else(Store::default_root);
    std::fs::create_dir_all(&store_root).map_err(io(&store_root))?;
    // ns-run and overlayfs need absolute paths
    let store_root = std::fs::canonicalize(&store_root).map_err(io(&store_root))?;
    let store = Store::open(&store_root)?;
    let ropts = image_store::registry::RegistryOptions {
        insecure_registries: opts.insecure_registries.clone(),
        progress: !opts.quiet
            && matches!(
                opts.progress,
                crate::cli::ProgressMode::Auto | crate::cli::ProgressMode::Tty
            ),
        ..Default::default()
    };
    for c in &opts.cache_from {
        if let Some(w) = crate::registry::import_cache(&store, &c.reference, &ropts)? {
            progress.warning(&w);
        }
    }
    let bases = crate::registry::Bases::new(&store, ropts.clone(), opts.pull);
    // `--build-context`: every named context as an image of the store
    let overrides = crate::contexts::Overrides::resolve(&store, &opts.extra.build_contexts)?;
    overrides
        .local_references()
        .for_each(|r| bases.keep_local(r));
    // context
    let mut _stdin_tmp = None;
    let mut _remote = None;
    let mut stdin_remfile = None;
    let context_root = match &opts.context {
        ContextSource::Dir(d) => {
            if !d.is_dir() {
                return Err(BuildError::Context(d.clone()));
            }
            std::fs::canonicalize(d).map_err(io(d))?
        }
        ContextSource::Remote(url) => {
            let sock = opts
                .ssh
                .iter()
                .find(|s| s.id == "default")
                .map(|s| s.socket.clone());
            let r = crate::remote::fetch(&store, url, crate::remote::HttpUse::Main, sock)?;
            stdin_remfile.clone_from(&r.remfile);
            let p = r.root.clone();
            _remote = Some(r);
            p
        }
        ContextSource::Stdin => {
            let data = read_stdin()?;
            let (t, text) = stdin_context(&store, &data)?;
            stdin_remfile = text;
            let p = t.0.clone();
            _stdin_tmp = Some(t);
            p
        }
    };
    // recipe
    let (plan, remfile_path) = match &opts.recipe {
        Recipe::Plan(p) => {
            let text = std::fs::read_to_string(p).map_err(input(p))?;
            (plan_doc(&text, &p.display().to_string())?, None)
        }
        Recipe::PlanStdin => {
            let text = String::from_utf8_lossy(&read_stdin()?).into_owned();
            (plan_doc(&text, "<stdin>")?, None)
        }
        r => {
            let (text, path, shown) = match (r, stdin_remfile) {
                (_, Some(t)) => (t, None, "<stdin>".to_string()),
                (Recipe::RemfileStdin, None) => (
                    String::from_utf8_lossy(&read_stdin()?).into_owned(),
                    None,
                    "<stdin>".to_string(),
                ),
                (Recipe::Remfile(Some(p)), None) => {
                    // a tar context on stdin: `-f` names a file inside it, as in Docker
                    let shown = p.display().to_string();
                    let p = match opts.context {
                        ContextSource::Stdin | ContextSource::Remote(_) => context_root.join(
                            crate::ignore::clean(&format!("/{}", p.display()))
                                .trim_start_matches('/'),
                        ),
                        ContextSource::Dir(_) => p.clone(),
                    };
                    (read_remfile(&p)?, Some(p.clone()), shown)
                }
                (_, None) => {
                    let p = find_remfile(&context_root)
                        .ok_or_else(|| BuildError::NoRemfile(context_root.clone()))?;
                    let shown = p
                        .file_name()
                        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
                    (read_remfile(&p)?, Some(p), shown)
                }
            };
            let mut ast = remfile_parse::parse(&text).map_err(|e| BuildError::Parse {
                file: shown.clone(),
                message: e.to_string(),
            })?;
            overrides.rewrite_stages(&mut ast);
            let platform = opts
                .platform
                .as_deref()
                .map(remfile_plan::Platform::parse)
                .transpose()
                .map_err(|e| BuildError::Plan {
                    file: shown.clone(),
                    message: e.to_string(),
                })?;
            let popts = PlanOptions {
                build_args: opts.build_args.clone(),
                target: opts.target.clone(),
                platform,
                build_platform: None,
            };
            let resolver = StoreBases(&bases, &overrides);
            let plan =
                remfile_plan::plan(&ast, &popts, &resolver).map_err(|e| BuildError::Plan {
                    file: shown.clone(),
                    message: e.to_string(),
                })?;
            (plan, path)
        }
    };
    // credentials in ADD URLs never reach progress lines or history
    let mut plan = crate::git::redact_plan(plan);
    overrides.rewrite_plan(&mut plan);
    // entitlements first: BuildKit refuses before it runs anything
    opts.extra
        .check_entitlements(&plan)
        .map_err(|e| BuildError::Usage(e.into()))?;
    for w in &plan.warnings {
        match w.line {
            Some(l) => progress.warning(&format!("line {l}: {}", w.message)),
            None => progress.warning(&w.message),
        }
    }
    let ignore = IgnoreMatcher::load(&context_root, remfile_path.as_deref())?;
    let context = Tree::Dir {
        root: context_root.clone(),
        ignore,
    };
    let stat_path = {
        use sha2::Digest as _;
        let h = hex::encode(sha2::Sha256::digest(
            context_root.as_os_str().as_encoded_bytes(),
        ));
        store.root().join("build").join("statcache").join(&h[..32])
    };
    let mut exec_opts = ExecOptions {
        no_cache: opts.no_cache,
        network: Some(opts.network),
        source_date_epoch: opts.source_date_epoch,
        secrets: opts.secrets.clone(),
        ssh: opts.ssh.clone(),
        extra: opts.extra.clone(),
    };
    // `--ssh ID=KEYFILE`: private agents, killed when this function returns (also on error)
    let _agents =
        crate::ssh::Agents::start(&mut exec_opts.ssh).map_err(|e| BuildError::Usage(e.into()))?;
    let ex = Executor::new(
        &store,
        &plan,
        context,
        context_root.clone(),
        exec_opts,
        progress,
        // a remote context is a new directory each time: no stat cache kept for it
        StatCache::load(match opts.context {
            ContextSource::Remote(_) => None,
            _ => Some(stat_path),
        }),
    )
    .with_bases(&bases);
    let result = ex.run();
    ex.save_statcache();
    let target = result?;
    let reports = ex.step_reports();
    let files_hashed = ex.statcache.lock().map_or(0, |s| s.hashed);
    let now = ex.now.clone();
    drop(ex);

    let mut target = (*target).clone();
    if let Some(path) = target.wasm.take() {
        wasm_final_layer(&store, &mut target, &path)?;
    }
    let config = image_config(&target, &opts.labels, &now)?;
    let layers: Vec<Descriptor> = target.layers.iter().map(|(d, _)| d.clone()).collect();
    let written = store.write_image(&config, &layers)?;
    let mut references = Vec::new();
    for t in &opts.tags {
        let r = Reference::parse(t)
            .map_err(|e| BuildError::Usage(crate::cli::UsageError::Tag(format!("{t}: {e}"))))?;
        // an unchanged tag is not rewritten (index.json updates are locked and fsynced)
        let current = store
            .list_tags()?
            .into_iter()
            .find(|t| t.reference == r.to_string());
        if current.is_none_or(|t| t.manifest.digest != written.manifest.digest) {
            store.tag(&r, &written.manifest)?;
        }
        references.push(r.to_string());
    }
    let result = BuildResult {
        version: 1,
        reference: references.first().cloned(),
        references: references.clone(),
        image_id: written.config.digest.to_string(),
        manifest_digest: written.manifest.digest.to_string(),
        manifest_size: written.manifest.size,
        platform: target.platform.clone(),
        pushed: Vec::new(),
        outputs: Vec::new(),
    };
    let written_outputs = crate::output::write_outputs(
        &store,
        &opts.outputs,
        &written.manifest,
        &opts.tags,
        &opts.push_to,
        &ropts,
    )?;
    let mut result = result;
    result.pushed = written_outputs.pushed;
    result.outputs = written_outputs.reports;
    let mut cache_exported = None;
    for c in &opts.cache_to {
        let keys = cache_keys(&plan, &reports, c.max);
        cache_exported = Some(crate::registry::export_cache(
            &store,
            &keys,
            &c.reference,
            &ropts,
        )?);
    }
    if let Some(f) = &opts.iidfile {
        std::fs::write(f, &result.image_id).map_err(io(f))?;
    }
    let metadata = Metadata {
        version: 1,
        image_id: result.image_id.clone(),
        manifest_digest: result.manifest_digest.clone(),
        references,
        buildx_config_digest: result.image_id.clone(),
        buildx_digest: result.manifest_digest.clone(),
        duration: started.elapsed().as_secs_f64(),
        cached_steps: reports.iter().filter(|r| r.cached).count(),
        steps: reports,
        files_hashed,
        pulled: bases.pulled(),
        pushed: result.pushed.clone(),
        cache_exported,
    };
    if let Some(f) = &opts.metadata_file {
        let text = serde_json::to_string_pretty(&metadata).unwrap_or_default();
        std::fs::write(f, text + "\n").map_err(io(f))?;
    }
    Ok(BuildOutcome { result, metadata })
}

/// The cache keys of the steps `--cache-to` exports: every step (`mode=max`), or those of the
/// stages the result is built on (the target and its `FROM <stage>` ancestors: `mode=min`).
fn cache_keys(plan: &Plan, reports: &[crate::exec::StepReport], max: bool) -> Vec<String> {
    let mut chain = vec![plan.target];
    let mut at = plan.target;
    while let Some(remfile_plan::Base::Stage { stage }) =
        plan.stages.iter().find(|s| s.index == at).map(|s| &s.base)
    {
        if chain.contains(stage) {
            break;
        }
        chain.push(*stage);
        at = *stage;
    }
    reports
        .iter()
        .filter(|r| max || chain.contains(&r.stage))
        .filter_map(|r| r.cache_key.clone())
        .collect()
}

fn plan_doc(text: &str, file: &str) -> Result<Plan, BuildError> {
    let plan: Plan = serde_json::from_str(text).map_err(|e| BuildError::PlanDoc {
        file: file.to_string(),
        message: e.to_string(),
    })?;
    if plan.version != 1 {
        return Err(BuildError::PlanDoc {
            file: file.to_string(),
            message: format!("unsupported version {}", plan.version),
        });
    }
    Ok(plan)
}

/// The OCI image config of a stage result, as BuildKit writes it: the runtime config (with
/// `--label`s added), `created` (the last history time), architecture/os/variant from the
/// stage's platform, the diff_ids and the history.
pub fn image_config(
    st: &StageResult,
    labels: &[(String, String)],
    now: &str,
) -> Result<ImageConfig, BuildError> {
    let mut cfg = st.config.clone();
    for (k, v) in labels {
        cfg.labels.insert(k.clone(), v.clone());
    }
    let container: ContainerConfig =
        serde_json::from_value(cfg.to_oci()).map_err(|e| BuildError::PlanDoc {
            file: "<config>".into(),
            message: e.to_string(),
        })?;
    let platform = Platform::parse(&st.platform)?;
    let created = st
        .history
        .iter()
        .rev()
        .find_map(|h| h.created.clone())
        .unwrap_or_else(|| now.to_string());
    Ok(ImageConfig {
        created: Some(created),
        author: cfg.author.clone(),
        architecture: platform.architecture,
        os: platform.os,
        variant: platform.variant,
        config: Some(container),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: st.layers.iter().map(|(_, d)| d.clone()).collect(),
        },
        history: st.history.clone(),
        extra: std::collections::BTreeMap::new(),
    })
}

/// RFC 3339 of now or of SOURCE_DATE_EPOCH.
pub fn created_time(epoch: Option<i64>) -> String {
    rfc3339(epoch.unwrap_or_else(|| time::OffsetDateTime::now_utc().unix_timestamp()))
}

/// Replaces the final layer of `st` by the raw bytes of the WebAssembly file at `path`, with the
/// Wasm layer media type; its diff_id is its digest (the blob is not a tar).
fn wasm_final_layer(store: &Store, st: &mut StageResult, path: &Path) -> Result<(), BuildError> {
    let Some(media_type) = crate::wasm::media_type_of(path) else {
        return Ok(());
    };
    let f = std::fs::File::open(path).map_err(io(path))?;
    let info = store.put_blob(f, None)?;
    if let Some(last) = st.layers.last_mut() {
        *last = (
            Descriptor::new(media_type, info.digest.clone(), info.size),
            info.digest,
        );
    }
    Ok(())
}
