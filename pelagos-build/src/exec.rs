//! The executor: runs the stages of a Plan against the store, with the build cache.
//!
//! Each stage starts from its base (an image in the store, `scratch`, or another stage's result)
//! and applies its steps. Layer-producing steps (RUN, COPY, ADD, WORKDIR) have chained cache keys
//! `key = H(previous key, canonical step definition [, source checksum])`; a hit whose layer blob
//! is missing or corrupt is a miss (the store re-hashes it). Lookups and stores go on after a
//! miss, `--no-cache` skips lookups only. Config-only steps change the config and add a history
//! entry. Independent stages run in parallel, one thread each, waiting for their dependencies.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use image_store::{Descriptor, Digest, History, Reference, Store};
use remfile_plan::{Base, Op, Plan, Stage, Step};
use sha2::{Digest as _, Sha256};

use crate::checksum::StatCache;
use crate::cli::NetworkMode;
use crate::error::BuildError;
use crate::progress::{Outcome, Progress};
use crate::tree::Tree;

/// Options of an execution.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// Skip cache lookups (results are still stored).
    pub no_cache: bool,
    /// Network of RUN steps whose Remfile network is `default` (`None`: `default`, the host's).
    pub network: Option<NetworkMode>,
    /// SOURCE_DATE_EPOCH.
    pub source_date_epoch: Option<i64>,
    /// `--secret`s.
    pub secrets: Vec<crate::secrets::SecretSpec>,
    /// `--ssh` agents.
    pub ssh: Vec<crate::secrets::SshSpec>,
    /// `--add-host`, `--shm-size`, `--no-cache-filter` (see [`crate::extra`]).
    pub extra: crate::extra::ExtraOptions,
}

/// One layer of a stage: its blob descriptor and diff_id.
pub type Layer = (Descriptor, Digest);

/// The state of a stage after its last step.
#[derive(Debug, Clone)]
pub struct StageResult {
    /// Index of the stage.
    pub index: usize,
    /// Layers, base first.
    pub layers: Vec<Layer>,
    /// History, base first.
    pub history: Vec<History>,
    /// The runtime config.
    pub config: remfile_plan::ImageConfig,
    /// The chained cache key of the last step.
    pub key: String,
    /// `os/arch[/variant]`.
    pub platform: String,
    /// Extra top-level fields of the base image config to keep (none for now).
    pub base_created: Option<String>,
    /// The host file of the final layer when that layer is exactly one WebAssembly file.
    pub wasm: Option<std::path::PathBuf>,
}

/// Per-step record for the metadata file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepReport {
    /// Progress id (`#N`).
    pub id: u32,
    /// Stage index.
    pub stage: usize,
    /// The step's progress name.
    pub name: String,
    /// Whether it came from the cache.
    pub cached: bool,
    /// Seconds it took.
    pub duration: f64,
    /// The cache key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_key: Option<String>,
}

/// Chains a cache key.
pub fn chain(prev: &str, definition: &serde_json::Value, extra: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(b"\n");
    h.update(image_store::canonical_json(definition).unwrap_or_default());
    h.update(b"\n");
    h.update(extra.as_bytes());
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// RFC 3339 of a Unix time.
pub fn rfc3339(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

/// The executor of one plan.
pub struct Executor<'a> {
    pub(crate) store: &'a Store,
    pub(crate) plan: &'a Plan,
    pub(crate) context: Tree,
    pub(crate) context_root: PathBuf,
    pub(crate) opts: ExecOptions,
    pub(crate) progress: &'a Progress,
    pub(crate) statcache: Mutex<StatCache>,
    pub(crate) now: String,
    ids: HashMap<(usize, usize), u32>,
    from_ids: HashMap<usize, u32>,
    names: HashMap<(usize, usize), String>,
    results: Mutex<HashMap<usize, Result<Arc<StageResult>, usize>>>,
    ready: Condvar,
    snapshots: Mutex<HashMap<String, PathBuf>>,
    pub(crate) reports: Mutex<Vec<StepReport>>,
    bases: Option<&'a crate::registry::Bases<'a>>,
}

impl std::fmt::Debug for Executor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("context", &self.context_root)
            .finish_non_exhaustive()
    }
}

fn stage_label(s: &Stage) -> String {
    s.name
        .clone()
        .unwrap_or_else(|| format!("stage-{}", s.index))
}

/// The stages a step reads (`COPY --from=<stage>`, `RUN --mount from=<stage>`).
fn step_stage_deps(step: &Step) -> Vec<usize> {
    use remfile_plan::{FromRef, RunMount};
    match &step.op {
        Op::Copy(c) | Op::Add(c) => match c.from {
            Some(FromRef::Stage(n)) => vec![n],
            _ => Vec::new(),
        },
        Op::Run(r) => r
            .mounts
            .iter()
            .filter_map(|m| match m {
                RunMount::Bind {
                    from: Some(FromRef::Stage(n)),
                    ..
                }
                | RunMount::Cache {
                    from: Some(FromRef::Stage(n)),
                    ..
                } => Some(*n),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn is_layer_step(step: &Step) -> bool {
    match &step.op {
        Op::Run(_) | Op::Copy(_) | Op::Add(_) => true,
        Op::Workdir(w) => w.mkdir,
        Op::Config(_) => false,
    }
}

impl<'a> Executor<'a> {
    /// Prepares an execution: numbers the steps for progress (`#N`, BuildKit's `[stage k/n]`).
    pub fn new(
        store: &'a Store,
        plan: &'a Plan,
        context: Tree,
        context_root: PathBuf,
        opts: ExecOptions,
        progress: &'a Progress,
        statcache: StatCache,
    ) -> Executor<'a> {
        let mut ids = HashMap::new();
        let mut from_ids = HashMap::new();
        let mut names = HashMap::new();
        let mut next = 1u32;
        for s in &plan.stages {
            let label = stage_label(s);
            let n = 1 + s.steps.iter().filter(|st| is_layer_step(st)).count();
            if let Base::Image { .. } = s.base {
                from_ids.insert(s.index, next);
                next += 1;
            }
            let mut k = 1;
            for (i, st) in s.steps.iter().enumerate() {
                if is_layer_step(st) {
                    k += 1;
                    ids.insert((s.index, i), next);
                    names.insert(
                        (s.index, i),
                        format!("[{label} {k}/{n}] {}", st.instruction),
                    );
                    next += 1;
                }
            }
        }
        let now = match opts.source_date_epoch {
            Some(e) => rfc3339(e),
            None => rfc3339(time::OffsetDateTime::now_utc().unix_timestamp()),
        };
        Executor {
            store,
            plan,
            context,
            context_root,
            opts,
            progress,
            statcache: Mutex::new(statcache),
            now,
            ids,
            from_ids,
            names,
            results: Mutex::new(HashMap::new()),
            ready: Condvar::new(),
            snapshots: Mutex::new(HashMap::new()),
            reports: Mutex::new(Vec::new()),
            bases: None,
        }
    }

    /// Base images come from `bases` (pulled when missing) instead of the store alone.
    #[must_use]
    pub fn with_bases(mut self, bases: &'a crate::registry::Bases<'a>) -> Self {
        self.bases = Some(bases);
        self
    }

    /// The image `image` names, for a stage of `platform`: through the registry resolver when
    /// there is one, else from the store.
    pub(crate) fn image(
        &self,
        image: &str,
        platform: &str,
    ) -> Result<image_store::ImageRecord, BuildError> {
        if let Some(b) = self.bases {
            return b.get(image, platform);
        }
        let r = Reference::parse(image).map_err(|e| BuildError::Pull {
            image: image.to_string(),
            message: e.to_string(),
            input: true,
        })?;
        self.store
            .resolve(&r)?
            .ok_or_else(|| BuildError::ImageNotFound(image.to_string()))
    }

    /// The progress name of a step.
    pub(crate) fn step_name(&self, stage: usize, i: usize) -> String {
        self.names
            .get(&(stage, i))
            .cloned()
            .unwrap_or_else(|| format!("stage {stage} step {i}"))
    }

    /// Runs every stage (independent ones in parallel) and returns the target's result.
    pub fn run(&self) -> Result<Arc<StageResult>, BuildError> {
        let mut first_err: Mutex<Option<BuildError>> = Mutex::new(None);
        std::thread::scope(|s| {
            for stage in &self.plan.stages {
                let first_err = &first_err;
                s.spawn(move || {
                    let r = self.run_stage(stage);
                    let mut res = self
                        .results
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    match r {
                        Ok(v) => {
                            res.insert(stage.index, Ok(Arc::new(v)));
                        }
                        Err(e) => {
                            res.insert(stage.index, Err(stage.index));
                            if !matches!(e, BuildError::DependencyFailed(_)) {
                                let mut fe = first_err
                                    .lock()
                                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                                fe.get_or_insert(e);
                            }
                        }
                    }
                    self.ready.notify_all();
                });
            }
        });
        if let Some(e) = first_err
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            return Err(e);
        }
        let res = self
            .results
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match res.get(&self.plan.target) {
            Some(Ok(r)) => Ok(r.clone()),
            _ => Err(BuildError::DependencyFailed(self.plan.target)),
        }
    }

    /// Waits for stage `index` to finish.
    pub(crate) fn wait_stage(&self, index: usize) -> Result<Arc<StageResult>, BuildError> {
        if !self.plan.stages.iter().any(|s| s.index == index) {
            return Err(BuildError::PlanDoc {
                file: "<plan>".into(),
                message: format!("stage {index} is referenced but not in the plan"),
            });
        }
        let mut res = self
            .results
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            match res.get(&index) {
                Some(Ok(r)) => return Ok(r.clone()),
                Some(Err(_)) => return Err(BuildError::DependencyFailed(index)),
                None => {
                    res = self
                        .ready
                        .wait_timeout(res, Duration::from_millis(200))
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .0;
                }
            }
        }
    }

    /// The overlay lower dirs of a list of layers, top first (snapshots unpacked on demand).
    /// Records the snapshot dir of a layer made by this build.
    pub(crate) fn remember_snapshot(&self, diff_id: &Digest, dir: PathBuf) {
        self.snapshots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(diff_id.as_str().to_string(), dir);
    }

    pub(crate) fn lowers(&self, layers: &[Layer]) -> Result<Vec<PathBuf>, BuildError> {
        let mut out = Vec::with_capacity(layers.len());
        for (desc, diff_id) in layers.iter().rev() {
            let known = self
                .snapshots
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(diff_id.as_str())
                .cloned();
            let p = if let Some(p) = known {
                p
            } else {
                let p = self.store.snapshot(desc, diff_id)?;
                self.snapshots
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(diff_id.as_str().to_string(), p.clone());
                p
            };
            // the same layer twice (two identical COPY steps) would be an overlapping lower
            // dir, which overlayfs refuses (ELOOP); the top occurrence shadows every path of
            // the lower one, so dropping the lower one changes nothing
            if !out.contains(&p) {
                out.push(p);
            }
        }
        Ok(out)
    }

    fn base_of(&self, stage: &Stage) -> Result<StageResult, BuildError> {
        match &stage.base {
            Base::Scratch { .. } => Ok(StageResult {
                index: stage.index,
                layers: Vec::new(),
                history: Vec::new(),
                config: remfile_plan::ImageConfig::default(),
                key: chain(
                    "",
                    &serde_json::json!({"from": "scratch", "platform": stage.platform}),
                    "",
                ),
                platform: stage.platform.clone(),
                base_created: None,
                wasm: None,
            }),
            Base::Stage { stage: n } => {
                let r = self.wait_stage(*n)?;
                Ok(StageResult {
                    index: stage.index,
                    platform: stage.platform.clone(),
                    ..(*r).clone()
                })
            }
            Base::Image { image, .. } => {
                let id = self.from_ids.get(&stage.index).copied().unwrap_or(0);
                let name = format!(
                    "[{} 1/{}] FROM {image}",
                    stage_label(stage),
                    1 + stage.steps.iter().filter(|s| is_layer_step(s)).count()
                );
                self.progress.start(id, &name);
                let img = match self.image(image, &stage.platform) {
                    Ok(img) => img,
                    Err(e) => {
                        self.progress.error(id, &e.to_string());
                        return Err(e);
                    }
                };
                let layers = img.layers()?;
                let text = serde_json::to_string(&img.config).unwrap_or_default();
                let mut config = remfile_plan::ImageConfig::from_oci_json(&text).map_err(|e| {
                    BuildError::StepInput {
                        step: name.clone(),
                        message: e.to_string(),
                    }
                })?;
                // as the planner does: a base without PATH gets BuildKit's default
                if config.env_get("PATH").is_none() {
                    config.env_set("PATH", remfile_plan::config::DEFAULT_PATH);
                }
                let d = self.progress.finish(id, Outcome::Done);
                self.report(StepReport {
                    id,
                    stage: stage.index,
                    name,
                    cached: false,
                    duration: d.as_secs_f64(),
                    cache_key: None,
                });
                Ok(StageResult {
                    index: stage.index,
                    layers,
                    history: img.config.history.clone(),
                    config,
                    key: chain(
                        "",
                        &serde_json::json!({"from": img.manifest_digest().as_str(), "platform": stage.platform}),
                        "",
                    ),
                    platform: stage.platform.clone(),
                    base_created: img.config.created.clone(),
                    wasm: None,
                })
            }
        }
    }

    pub(crate) fn report(&self, r: StepReport) {
        self.reports
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(r);
    }

    fn run_stage(&self, stage: &Stage) -> Result<StageResult, BuildError> {
        let mut st = self.base_of(stage)?;
        let mut last_time = st
            .history
            .last()
            .and_then(|h| h.created.clone())
            .or_else(|| st.base_created.clone());
        if self.opts.source_date_epoch.is_some() {
            last_time = Some(self.now.clone());
        }
        let mut cfg = st.config.clone();
        let _no_cache = crate::extra::NoCacheScope::enter(
            self.opts.extra.no_cache_stage(stage.name.as_deref()),
        );
        for (i, step) in stage.steps.iter().enumerate() {
            let Some(&id) = self.ids.get(&(stage.index, i)) else {
                // config-only step (or WORKDIR without mkdir)
                match &step.op {
                    Op::Config(c) => cfg.apply(&c.set),
                    Op::Workdir(w) => cfg.working_dir.clone_from(&w.path),
                    _ => {}
                }
                if step.created_by.is_empty() {
                    // ONBUILD: BuildKit writes no history entry for it
                    continue;
                }
                st.history.push(History {
                    created: last_time.clone().or_else(|| Some(self.now.clone())),
                    created_by: Some(step.created_by.clone()),
                    comment: Some("buildkit.dockerfile.v0".into()),
                    empty_layer: Some(true),
                    ..History::default()
                });
                continue;
            };
            let name = self.step_name(stage.index, i);
            // wait for the stages this step reads before its timer starts (BuildKit shows a
            // vertex once its inputs are ready); a failed dependency fails the step below
            for dep in step_stage_deps(step) {
                let _ = self.wait_stage(dep);
            }
            self.progress.start(id, &name);
            let out = crate::steps::execute(self, stage, &st, step, &name, id);
            let out = match out {
                Ok(o) => o,
                Err(e) => {
                    self.progress.error(id, &e.step_message());
                    return Err(e);
                }
            };
            let d = self.progress.finish(
                id,
                if out.cached {
                    Outcome::Cached
                } else {
                    Outcome::Done
                },
            );
            self.report(StepReport {
                id,
                stage: stage.index,
                name,
                cached: out.cached,
                duration: d.as_secs_f64(),
                cache_key: Some(out.key.clone()),
            });
            if let Op::Workdir(w) = &step.op {
                cfg.working_dir.clone_from(&w.path);
            }
            let created = if self.opts.source_date_epoch.is_some() {
                self.now.clone()
            } else {
                out.created.clone()
            };
            st.history.push(History {
                created: Some(created.clone()),
                created_by: Some(step.created_by.clone()),
                comment: Some("buildkit.dockerfile.v0".into()),
                empty_layer: out.layer.is_none().then_some(true),
                ..History::default()
            });
            last_time = Some(created);
            if let Some(l) = out.layer {
                st.layers.push(l);
                st.wasm = out.wasm;
            }
            st.key = out.chain_key;
        }
        // the planner's config is authoritative when it knew the base config
        st.config = if stage.base_config_known {
            stage.config.clone()
        } else {
            cfg
        };
        Ok(st)
    }

    /// The snapshot path of a stage's result file system as a tree.
    pub(crate) fn tree_of(&self, layers: &[Layer]) -> Result<Tree, BuildError> {
        Ok(Tree::Layers(self.lowers(layers)?))
    }

    /// The context root.
    pub fn context_root(&self) -> &Path {
        &self.context_root
    }

    /// Step reports, sorted by id.
    pub fn step_reports(&self) -> Vec<StepReport> {
        let mut v = self
            .reports
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        v.sort_by_key(|r| r.id);
        v
    }

    /// Saves the stat cache.
    pub fn save_statcache(&self) {
        let _ = self
            .statcache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .save();
    }
}
