//! The layer-producing steps: RUN (ns-run over the stage's snapshot lowers, the upper dir packed
//! by layer-pack with its whiteouts), COPY/ADD (entries packed without staging) and WORKDIR.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use image_store::{CacheRecord, Descriptor, Digest, History, Reference};
use layer_pack::{Compression, Entry, EntrySource, PackOptions};
use remfile_plan::{
    CopySource, CopyStep, FromRef, Op, RunMount, RunStep, Stage, Step, WorkdirStep,
};

use crate::archive;
use crate::checksum;
use crate::cli::NetworkMode;
use crate::copy::{self, CopyPlan, CopyRequest};
use crate::error::BuildError;
use crate::exec::{Executor, Layer, StageResult, chain};
use crate::fetch;
use crate::ignore::clean;
use crate::perms::{Chmod, ChownSpec};
use crate::tree::Tree;

/// What a step produced.
#[derive(Debug)]
pub struct StepOutput {
    /// The layer (`None`: the step changed nothing).
    pub layer: Option<Layer>,
    /// The step's cache key.
    pub key: String,
    /// The key the next step chains from: `key`, except after a `--link` step, whose own key
    /// leaves out the previous state (and is chained here with it).
    pub chain_key: String,
    /// Whether it came from the cache.
    pub cached: bool,
    /// When the result was created (RFC 3339).
    pub created: String,
    /// The host file when the layer is exactly one WebAssembly file (see [`crate::wasm`]).
    pub wasm: Option<PathBuf>,
}

/// A temp path removed on drop.
struct TempPath(PathBuf);

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        let _ = std::fs::remove_file(&self.0);
    }
}

fn input(step: &str, e: impl std::fmt::Display) -> BuildError {
    BuildError::StepInput {
        step: step.to_string(),
        message: e.to_string(),
    }
}

fn failed(step: &str, e: impl std::fmt::Display) -> BuildError {
    BuildError::Step {
        step: step.to_string(),
        message: e.to_string(),
    }
}

/// Executes one layer-producing step of `stage` on top of `st`.
pub fn execute(
    ex: &Executor<'_>,
    stage: &Stage,
    st: &StageResult,
    step: &Step,
    name: &str,
    id: u32,
) -> Result<StepOutput, BuildError> {
    let _ = stage;
    match &step.op {
        Op::Run(r) => run_step(ex, st, step, r, name, id),
        Op::Copy(c) => copy_step(ex, st, step, c, false, name),
        Op::Add(c) => copy_step(ex, st, step, c, true, name),
        Op::Workdir(w) => workdir_step(ex, st, step, w, name),
        Op::Config(_) => Err(failed(name, "a config step has no layer")),
    }
}

fn epoch_tag(ex: &Executor<'_>) -> String {
    format!("epoch={:?}", ex.opts.source_date_epoch)
}

/// Looks the key up (unless `--no-cache`), else runs `make` and stores its result.
fn cached_or(
    ex: &Executor<'_>,
    key: String,
    make: impl FnOnce() -> Result<Option<Layer>, BuildError>,
) -> Result<StepOutput, BuildError> {
    if !ex.opts.no_cache
        && !crate::extra::stage_no_cache()
        && let Some(rec) = ex.store.cache_get(&key)?
    {
        let created = rec
            .history
            .as_ref()
            .and_then(|h| h.created.clone())
            .unwrap_or_else(|| ex.now.clone());
        return Ok(StepOutput {
            layer: rec.layer.map(|l| (l.descriptor, l.diff_id)),
            chain_key: key.clone(),
            key,
            cached: true,
            created,
            wasm: None,
        });
    }
    let layer = make()?;
    let mut rec = match &layer {
        Some((d, id)) => CacheRecord::with_layer(d.clone(), id.clone()),
        None => CacheRecord::empty(),
    };
    rec.history = Some(History {
        created: Some(ex.now.clone()),
        ..History::default()
    });
    ex.store.cache_put(&key, &rec)?;
    Ok(StepOutput {
        layer,
        chain_key: key.clone(),
        key,
        cached: false,
        created: ex.now.clone(),
        wasm: None,
    })
}

fn pack_opts(ex: &Executor<'_>) -> PackOptions {
    PackOptions {
        compression: Compression::Gzip,
        source_date_epoch: ex.opts.source_date_epoch,
        ..PackOptions::default()
    }
}

/// Streams a layer into a new store blob.
fn to_blob(
    ex: &Executor<'_>,
    name: &str,
    pack: impl FnOnce(
        &mut image_store::BlobWriter<'_>,
    ) -> Result<layer_pack::LayerDescriptor, layer_pack::PackError>,
) -> Result<Layer, BuildError> {
    // layer-pack hashes exactly the bytes it writes: the store only counts them
    let mut w = ex.store.blob_writer_trusting()?;
    let d = pack(&mut w).map_err(|e| failed(name, e))?;
    let digest = Digest::parse(&d.digest)?;
    let info = w.commit(Some((&digest, d.size)))?;
    Ok((
        Descriptor::new(&d.media_type, info.digest, info.size),
        Digest::parse(&d.diff_id)?,
    ))
}

fn network(ex: &Executor<'_>, r: &RunStep) -> ns_run::Network {
    let cli = match ex.opts.network.unwrap_or(NetworkMode::Default) {
        NetworkMode::None => ns_run::Network::None,
        // BuildKit's oci worker without CNI: the host's network namespace
        NetworkMode::Default | NetworkMode::Host => ns_run::Network::Host,
        NetworkMode::Slirp => ns_run::Network::Slirp,
        NetworkMode::Pasta => ns_run::Network::Pasta,
    };
    match r.network.as_str() {
        "none" => ns_run::Network::None,
        "host" => ns_run::Network::Host,
        _ => cli,
    }
}

/// Flattens layers into a fresh directory (for `RUN --mount=type=bind,from=...`).
fn materialize(ex: &Executor<'_>, layers: &[Layer], name: &str) -> Result<TempPath, BuildError> {
    let dir = TempPath(ex.store.temp_path("mount")?);
    let root = rustix::process::geteuid().is_root();
    for (desc, _) in layers {
        let blob = ex.store.blob_path(&desc.digest);
        let opts = layer_pack::UnpackOptions {
            allow_devices: root,
            preserve_owners: root,
            ..Default::default()
        };
        layer_pack::unpack_path(&blob, &dir.0, &opts).map_err(|e| failed(name, e))?;
    }
    std::fs::create_dir_all(&dir.0).map_err(|e| failed(name, e))?;
    Ok(dir)
}

/// The content checksum of every context bind mount of a RUN (paths, types, modes, owners,
/// link targets, contents; never mtimes), for its cache key: as in BuildKit, a changed file
/// under a bound context path runs the step again. Empty when the step binds no context.
fn context_mounts_digest(ex: &Executor<'_>, r: &RunStep, name: &str) -> Result<String, BuildError> {
    let mut out = String::new();
    for m in &r.mounts {
        let RunMount::Bind {
            source, from: None, ..
        } = m
        else {
            continue;
        };
        let req = copy::CopyRequest {
            sources: vec![source.clone()],
            dest: "/m/".into(),
            workdir: "/".into(),
            ..Default::default()
        };
        let plan = copy::plan_copy(&ex.context, &Tree::Layers(Vec::new()), &req)
            .map_err(|e| failed(name, format!("mount source {source:?}: {e}")))?;
        let files = checksum::entry_files(&plan.entries);
        let hashes = ex
            .statcache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .hash_files(&files, 2)
            .map_err(|e| failed(name, e))?;
        out.push_str(" bind=");
        out.push_str(&checksum::entries_digest(&plan.entries, &hashes));
    }
    Ok(out)
}

/// A private copy at `TEMP/src` of the context path `source` as the ignore file filters it
/// (owners, modes, mtimes and symlinks kept), streamed through layer-pack.
fn filtered_copy(ex: &Executor<'_>, source: &str, name: &str) -> Result<TempPath, BuildError> {
    let req = copy::CopyRequest {
        sources: vec![source.to_string()],
        dest: "/src".into(),
        workdir: "/".into(),
        keep_owner: true,
        ..Default::default()
    };
    let plan = copy::plan_copy(&ex.context, &Tree::Layers(Vec::new()), &req)
        .map_err(|e| failed(name, format!("mount source {source:?}: {e}")))?;
    let dir = TempPath(ex.store.temp_path("mount")?);
    std::fs::create_dir_all(&dir.0).map_err(|e| failed(name, e))?;
    let (reader, writer) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| failed(name, std::io::Error::from(e)))?;
    let (reader, writer) = (std::fs::File::from(reader), std::fs::File::from(writer));
    let opts = layer_pack::PackOptions {
        compression: layer_pack::Compression::None,
        ..Default::default()
    };
    let entries: Vec<Entry> = plan.entries.into_values().collect();
    let packer =
        std::thread::spawn(move || layer_pack::pack_entries(entries, &opts, writer).map(|_| ()));
    let root = rustix::process::geteuid().is_root();
    let unpacked = layer_pack::unpack(
        reader,
        &dir.0,
        &layer_pack::UnpackOptions {
            allow_devices: root,
            preserve_owners: root,
            ..Default::default()
        },
    );
    packer
        .join()
        .map_err(|_| failed(name, "packing the filtered context panicked"))?
        .map_err(|e| failed(name, e))?;
    unpacked.map_err(|e| failed(name, e))?;
    if std::fs::symlink_metadata(dir.0.join("src")).is_err() {
        // a source that selected nothing (everything under it ignored): an empty directory
        std::fs::create_dir_all(dir.0.join("src")).map_err(|e| failed(name, e))?;
    }
    Ok(dir)
}

/// A private copy of `src` (a directory or a file; symlinks inside kept) at `TEMP/src`.
fn writable_copy(ex: &Executor<'_>, src: &Path, name: &str) -> Result<TempPath, BuildError> {
    let dir = TempPath(ex.store.temp_path("mount")?);
    std::fs::create_dir_all(&dir.0).map_err(|e| failed(name, e))?;
    let dst = dir.0.join("src");
    if std::fs::metadata(src)
        .map_err(|e| failed(name, e))?
        .is_dir()
    {
        let opts = crate::localdir::MergeOptions {
            move_files: false,
            owners: rustix::process::geteuid().is_root(),
        };
        crate::localdir::merge_into(src, &dst, opts).map_err(|e| failed(name, e))?;
    } else {
        std::fs::copy(src, &dst).map_err(|e| failed(name, e))?;
    }
    Ok(dir)
}

fn from_layers(
    ex: &Executor<'_>,
    from: &FromRef,
    platform: &str,
    name: &str,
) -> Result<Vec<Layer>, BuildError> {
    match from {
        FromRef::Stage(n) => Ok(ex.wait_stage(*n)?.layers.clone()),
        FromRef::Image(r) => {
            Reference::parse(r).map_err(|e| input(name, e))?;
            Ok(ex.image(r, platform)?.layers()?)
        }
    }
}

fn run_step(
    ex: &Executor<'_>,
    st: &StageResult,
    step: &Step,
    r: &RunStep,
    name: &str,
    id: u32,
) -> Result<StepOutput, BuildError> {
    let net = network(ex, r);
    let security = if r.security == "insecure" {
        if !ex.opts.extra.allow_insecure {
            return Err(input(
                name,
                "security.insecure is not allowed (RUN --security=insecure needs --allow security.insecure)",
            ));
        }
        ns_run::Security::Insecure
    } else {
        ns_run::Security::Sandbox
    };
    let key = chain(
        &st.key,
        &step.definition,
        &format!(
            "{} network={net}{}{}",
            epoch_tag(ex),
            ex.opts.extra.run_key_part(),
            context_mounts_digest(ex, r, name)?
        ),
    );
    cached_or(ex, key, || {
        let lowers = ex.lowers(&st.layers)?;
        let mut keep: Vec<TempPath> = Vec::new();
        let mut mounts = Vec::new();
        // secret values: files on a memory fs (removed when the step ends) and env entries
        let mut secret_files: Vec<crate::secrets::SecretFile> = Vec::new();
        let mut secret_env: Vec<String> = Vec::new();
        let mut ssh_sock: Option<String> = None;
        let argv = r.argv.clone();
        if !r.heredocs.is_empty() {
            let dir = TempPath(ex.store.temp_path("heredoc")?);
            std::fs::create_dir_all(&dir.0).map_err(|e| failed(name, e))?;
            for (i, h) in r.heredocs.iter().enumerate() {
                let p = dir.0.join(format!("h{i}"));
                std::fs::write(&p, &h.data).map_err(|e| failed(name, e))?;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(h.mode & 0o7777))
                    .map_err(|e| failed(name, e))?;
                // BuildKit's path (/dev/pipes/NAME for scripts run as files): ns-run creates
                // mount targets under /dev inside its fresh /dev tmpfs
                let target = h.path.clone();
                mounts.push(ns_run::MountSpec::Bind {
                    source: p,
                    target,
                    readonly: true,
                });
            }
            keep.push(dir);
        }
        for m in &r.mounts {
            match m {
                RunMount::Bind {
                    target,
                    source,
                    from,
                    readonly,
                } => {
                    let rel = clean(&format!("/{source}"));
                    let mut rel = rel.trim_start_matches('/').to_string();
                    if from.is_none() {
                        // symlinks resolve inside the context, as in BuildKit's snapshot of it: a
                        // link to /etc means CONTEXT/etc, never the host's /etc
                        rel = ex
                            .context
                            .resolve(&rel)
                            .map_err(|e| failed(name, e))?
                            .ok_or_else(|| {
                                failed(
                                    name,
                                    format!(
                                        "mount source {source:?}: not found in the build context"
                                    ),
                                )
                            })?;
                    }
                    let rel = rel.as_str();
                    let filtered =
                        matches!(&ex.context, Tree::Dir { ignore, .. } if !ignore.is_empty());
                    let host = match from {
                        // with an ignore file the bind sees the filtered context (BuildKit binds
                        // the context it was sent): a private copy without the excluded files
                        None if filtered => {
                            let dir = filtered_copy(ex, source, name)?;
                            let h = dir.0.join("src");
                            keep.push(dir);
                            h
                        }
                        // a writable bind of the context gets a private copy whose changes are
                        // dropped, as BuildKit's rw mounts: never write into the context itself
                        None if !*readonly => {
                            let dir = writable_copy(ex, &ex.context_root.join(rel), name)?;
                            let h = dir.0.join("src");
                            keep.push(dir);
                            h
                        }
                        None => ex.context_root.join(rel),
                        Some(f) => {
                            let layers = from_layers(ex, f, &st.platform, name)?;
                            let dir = materialize(ex, &layers, name)?;
                            let h = dir.0.join(rel);
                            keep.push(dir);
                            h
                        }
                    };
                    mounts.push(ns_run::MountSpec::Bind {
                        source: host,
                        target: target.clone(),
                        readonly: *readonly,
                    });
                }
                RunMount::Cache {
                    target,
                    id: cid,
                    mode,
                    uid,
                    gid,
                    ..
                } => {
                    let h = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(cid.as_bytes()));
                    let dir = ex.store.root().join("build").join("cache-mounts").join(h);
                    if !dir.exists() {
                        std::fs::create_dir_all(&dir).map_err(|e| failed(name, e))?;
                        let _ = std::fs::set_permissions(
                            &dir,
                            std::fs::Permissions::from_mode(*mode & 0o7777),
                        );
                        let _ = std::os::unix::fs::chown(&dir, Some(*uid), Some(*gid));
                    }
                    mounts.push(ns_run::MountSpec::Cache {
                        source: dir,
                        target: target.clone(),
                    });
                }
                RunMount::Tmpfs { target, size, .. } => mounts.push(ns_run::MountSpec::Tmpfs {
                    target: target.clone(),
                    size: *size,
                }),
                RunMount::Secret {
                    id: sid,
                    target,
                    env: var,
                    required,
                    mode,
                    uid,
                    gid,
                } => {
                    let Some(spec) = ex.opts.secrets.iter().find(|s| s.id == *sid) else {
                        if *required {
                            return Err(failed(
                                name,
                                format!(
                                    "secret {sid:?} is required but was not given (--secret id={sid},...)"
                                ),
                            ));
                        }
                        continue;
                    };
                    let value = spec.value().map_err(|e| failed(name, e))?;
                    if let Some(var) = var {
                        let text = String::from_utf8(value.clone()).map_err(|_| {
                            failed(
                                name,
                                format!("secret {sid:?} is not valid UTF-8 for env {var}"),
                            )
                        })?;
                        secret_env.push(format!("{var}={text}"));
                    }
                    if let Some(target) = target {
                        let f = crate::secrets::SecretFile::new(&value, &ex.store.tmp_dir())
                            .map_err(|e| failed(name, format!("secret {sid:?}: {e}")))?;
                        mounts.push(ns_run::MountSpec::Secret {
                            source: f.path.clone(),
                            target: target.clone(),
                            mode: *mode,
                            uid: *uid,
                            gid: *gid,
                        });
                        secret_files.push(f);
                    }
                }
                RunMount::Ssh {
                    id: sid,
                    target,
                    required,
                    ..
                } => {
                    let Some(spec) = ex.opts.ssh.iter().find(|s| s.id == *sid) else {
                        if *required {
                            return Err(failed(
                                name,
                                format!(
                                    "ssh agent {sid:?} is required but was not given (--ssh {sid}[=SOCKET])"
                                ),
                            ));
                        }
                        continue;
                    };
                    mounts.push(ns_run::MountSpec::Bind {
                        source: spec.socket.clone(),
                        target: target.clone(),
                        readonly: false,
                    });
                    ssh_sock.get_or_insert_with(|| target.clone());
                }
            }
        }
        let (rd, wr) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .map_err(|e| failed(name, std::io::Error::from(e)))?;
        let wr2 = wr.try_clone().map_err(|e| failed(name, e))?;
        let progress = ex.progress;
        let mut env = r.env.clone();
        env.extend(r.proxy_env.iter().cloned());
        if let Some(sock) = ssh_sock
            && !env.iter().any(|e| e.starts_with("SSH_AUTH_SOCK="))
        {
            env.push(format!("SSH_AUTH_SOCK={sock}"));
        }
        for e in secret_env {
            let k = e.split('=').next().unwrap_or_default().to_string();
            env.retain(|x| x.split('=').next() != Some(k.as_str()));
            env.push(e);
        }
        let stub_points =
            crate::stubs::step_points(&lowers, &mounts).map_err(|e| failed(name, e))?;
        let stub_lowers = lowers.clone();
        // --add-host, --shm-size: after the stubs (like ns-run's own /etc/hosts, /dev/shm)
        let run_extra = ex
            .opts
            .extra
            .run_mounts(net, &r.hostname, &ex.store.tmp_dir())
            .map_err(|e| failed(name, e))?;
        mounts.extend(run_extra.mounts.iter().cloned());
        let spec = ns_run::RunSpec {
            lowers,
            work_root: Some(ns_run::work_root_for_store(ex.store.root())),
            argv,
            env,
            workdir: Some(r.workdir.clone()),
            user: (!r.user.is_empty()).then(|| r.user.clone()),
            network: net,
            mounts,
            hostname: Some(r.hostname.clone()),
            rlimits: ex.opts.extra.rlimits.clone(),
            security,
            stdout: ns_run::Output::Fd(wr),
            stderr: ns_run::Output::Fd(wr2),
            ..ns_run::RunSpec::default()
        };
        let result = std::thread::scope(|s| {
            let reader = s.spawn(move || {
                let mut tail: Vec<String> = Vec::new();
                let r = std::io::BufReader::new(std::fs::File::from(rd));
                for line in r.split(b'\n') {
                    let Ok(line) = line else { break };
                    let text = String::from_utf8_lossy(&line).into_owned();
                    progress.log(id, &text);
                    tail.push(text);
                    if tail.len() > 20 {
                        tail.remove(0);
                    }
                }
                tail
            });
            let res = ns_run::run(&spec);
            drop(spec);
            drop(secret_files);
            let tail = reader.join().unwrap_or_default();
            (res, tail)
        });
        let (res, _tail) = result;
        let res = res.map_err(|e| failed(name, e))?;
        let upper = res.upper.clone();
        let cleanup = || {
            let _ = ns_run::remove_tree(&upper);
            if let Some(parent) = upper.parent()
                && parent
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("run-"))
            {
                let _ = ns_run::remove_tree(parent);
            }
        };
        if res.exit_code != 0 {
            cleanup();
            return Err(failed(
                name,
                format!(
                    "process {:?} did not complete successfully: exit code: {}",
                    r.argv, res.exit_code
                ),
            ));
        }
        // BuildKit's layer keeps the directories made for mount targets
        if let Err(e) = crate::stubs::add_mount_stubs(&stub_lowers, &upper, &stub_points) {
            cleanup();
            return Err(failed(name, e));
        }
        let empty = std::fs::read_dir(&upper).map_or(true, |mut d| d.next().is_none());
        let layer = if empty {
            None
        } else {
            let mut opts = pack_opts(ex);
            opts.overlay_upper = true;
            if !res.uid_map.is_empty() {
                opts.userxattr = true;
                let conv = |m: &[ns_run::IdMapping]| {
                    m.iter()
                        .map(|x| layer_pack::IdRange {
                            container: x.container_id,
                            host: x.host_id,
                            len: x.size,
                        })
                        .collect()
                };
                opts.id_map = Some(layer_pack::IdMap {
                    uids: conv(&res.uid_map),
                    gids: conv(&res.gid_map),
                });
            }
            let l = to_blob(ex, name, |w| layer_pack::pack_dir(&upper, &opts, w));
            match l {
                Ok(l) => {
                    if res.uid_map.is_empty() {
                        adopt_snapshot(ex, &upper, &l);
                    }
                    Some(l)
                }
                Err(e) => {
                    cleanup();
                    return Err(e);
                }
            }
        };
        cleanup();
        drop(keep);
        Ok(layer)
    })
}

/// Makes a root RUN's upper dir the snapshot of the layer just packed from it, instead of
/// unpacking that layer again when a later step needs it: the upper dir already is an overlay
/// lower dir in the store's root format (char 0:0 whiteouts, `trusted.overlay.opaque`), moved
/// into place by [`image_store::Store::adopt_snapshot`]. Anything unexpected leaves the
/// snapshot to the store (unpacked on demand).
fn adopt_snapshot(ex: &Executor<'_>, upper: &Path, layer: &Layer) {
    let (desc, diff_id) = layer;
    if ex.store.has_snapshot(diff_id) {
        return;
    }
    if let Ok(fs) = ex.store.adopt_snapshot(desc, diff_id, upper) {
        ex.remember_snapshot(diff_id, fs);
    }
}

/// Whether a COPY/WORKDIR layer can be written straight into a snapshot: as root (owners and
/// the store's `trusted` format), small enough to hold a clone of the list, and only
/// directories, files, symlinks and hard links.
fn adoptable(entries: &BTreeMap<String, Entry>) -> bool {
    rustix::process::geteuid().is_root()
        && entries.len() <= 100_000
        && entries.values().all(|e| {
            // (xattrs are not written by the adopter: such a layer is unpacked from its blob)
            e.xattrs.is_empty()
                && matches!(
                    e.source,
                    EntrySource::Dir
                        | EntrySource::File(_)
                        | EntrySource::Bytes(_)
                        | EntrySource::Symlink(_)
                        | EntrySource::Hardlink(_)
                )
        })
}

/// Writes the entries of a COPY/WORKDIR layer just packed as that layer's snapshot (the files
/// a later RUN or COPY reads), instead of unpacking the blob again: the tree is written into a
/// temp dir of the store and handed to [`image_store::Store::adopt_snapshot`]; any failure
/// leaves the snapshot to the store.
fn adopt_entries(ex: &Executor<'_>, entries: &BTreeMap<String, Entry>, layer: &Layer) {
    use std::os::unix::fs::PermissionsExt;
    let (desc, diff_id) = layer;
    if ex.store.has_snapshot(diff_id) {
        return;
    }
    let Ok(fs_dir) = ex.store.temp_path("snap-fs") else {
        return;
    };
    let clamp = |t: i64| ex.opts.source_date_epoch.map_or(t, |e| t.min(e));
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(&fs_dir)?;
        for (p, e) in entries {
            let dst = fs_dir.join(p);
            match &e.source {
                EntrySource::Dir => match std::fs::create_dir(&dst) {
                    Err(err) if err.kind() != std::io::ErrorKind::AlreadyExists => return Err(err),
                    _ => {}
                },
                EntrySource::File(h) => {
                    std::fs::copy(h, &dst)?;
                }
                EntrySource::Bytes(b) => std::fs::write(&dst, b)?,
                EntrySource::Symlink(t) => std::os::unix::fs::symlink(t, &dst)?,
                EntrySource::Hardlink(t) => std::fs::hard_link(fs_dir.join(t), &dst)?,
                _ => return Err(std::io::Error::other("unsupported entry")),
            }
            std::os::unix::fs::lchown(&dst, Some(e.uid), Some(e.gid))?;
            if !matches!(e.source, EntrySource::Symlink(_) | EntrySource::Hardlink(_)) {
                std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(e.mode & 0o7777))?;
            }
        }
        // times last, children before their directories
        for (p, e) in entries.iter().rev() {
            if matches!(e.source, EntrySource::Hardlink(_)) {
                continue;
            }
            let t = filetime::FileTime::from_unix_time(clamp(e.mtime), 0);
            filetime::set_symlink_file_times(fs_dir.join(p), t, t)?;
        }
        Ok(())
    };
    if write().is_ok()
        && let Ok(fs) = ex.store.adopt_snapshot(desc, diff_id, &fs_dir)
    {
        ex.remember_snapshot(diff_id, fs);
    } else {
        let _ = std::fs::remove_dir_all(&fs_dir);
    }
}

fn read_text(t: &Tree, rel: &str) -> Result<String, BuildError> {
    Ok(t.read_file(rel)
        .map_err(|e| failed(rel, e))?
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default())
}

fn resolve_owner(target: &Tree, spec: &str, name: &str) -> Result<(u32, u32), BuildError> {
    let c = ChownSpec::parse(spec).map_err(|e| input(name, e))?;
    let (passwd, group) = if c.needs_names() {
        (
            read_text(target, "etc/passwd")?,
            read_text(target, "etc/group")?,
        )
    } else {
        (String::new(), String::new())
    };
    c.resolve(&passwd, &group).map_err(|e| input(name, e))
}

fn copy_step(
    ex: &Executor<'_>,
    st: &StageResult,
    step: &Step,
    c: &CopyStep,
    is_add: bool,
    name: &str,
) -> Result<StepOutput, BuildError> {
    // COPY/ADD --link (as BuildKit, only without --chmod): the layer is made on an empty tree,
    // never reading the previous state, and its cache key leaves that state out
    let link = c.link && c.chmod.is_none();
    let target = if link {
        Tree::Layers(Vec::new())
    } else {
        ex.tree_of(&st.layers)?
    };
    let src = match &c.from {
        None => ex.context.clone(),
        Some(f) => ex.tree_of(&from_layers(ex, f, &st.platform, name)?)?,
    };
    // a --chown that expands to nothing is no --chown (BuildKit; checked with Docker 20.10)
    let chown = c
        .chown
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| {
            if link {
                link_owner(s, name)
            } else {
                resolve_owner(&target, s, name)
            }
        })
        .transpose()?;
    let chmod = c
        .chmod
        .as_deref()
        .map(Chmod::parse)
        .transpose()
        .map_err(|e| input(name, e))?;
    let created_time = ex.opts.source_date_epoch.unwrap_or(0);
    let mut paths = Vec::new();
    let mut urls = Vec::new();
    let mut gits = Vec::new();
    let mut heredocs = Vec::new();
    for s in &c.sources {
        match s {
            CopySource::Path(p) if is_add && crate::git::is_git_source(p) => gits.push(p.clone()),
            CopySource::Path(p) if is_add && fetch::is_url(p) => urls.push(p.clone()),
            CopySource::Path(p) => paths.push(p.clone()),
            CopySource::Heredoc(h) => heredocs.push(h.clone()),
        }
    }
    if is_add && c.checksum.is_some() && urls.is_empty() && gits.is_empty() {
        return Err(input(name, "--checksum applies only to URL sources"));
    }
    if c.checksum.is_some() && !urls.is_empty() && !gits.is_empty() {
        return Err(input(
            name,
            "--checksum cannot apply to both a git and an http source",
        ));
    }
    // git sources: resolved to commits now (the commit is in the key), checked out on a miss
    let git_env = crate::git::GitEnv::from_env(
        ex.opts
            .ssh
            .iter()
            .find(|s| s.id == "default")
            .map(|s| s.socket.clone()),
    )
    .map_err(|e| input(name, e))?;
    let gits = crate::git::resolve_all(&gits, c.checksum.as_deref(), c.keep_git_dir, &git_env)
        .map_err(|e| failed(name, e))?;
    let req = CopyRequest {
        sources: paths.clone(),
        dest: c.dest.clone(),
        workdir: c.workdir.clone(),
        chown,
        chmod: chmod.clone(),
        parents: c.parents,
        exclude: c.exclude.clone(),
        keep_owner: c.from.is_some(),
        created_time,
    };
    let mut plan = if paths.is_empty() {
        let (d, spelled) = copy::dest_path(&c.dest, &c.workdir);
        let d = copy::resolve_for_create(&target, &d).map_err(|e| failed(name, e))?;
        let is_dir = spelled
            || target
                .lstat(&d)
                .map_err(|e| failed(name, e))?
                .is_some_and(|n| n.is_dir());
        CopyPlan {
            dest_is_dir: is_dir,
            dest: d,
            ..CopyPlan::default()
        }
    } else {
        copy::plan_copy(&src, &target, &req).map_err(|e| input(name, e))?
    };
    let place = |plan: &CopyPlan, file: &str| {
        if plan.dest_is_dir {
            join(&plan.dest, file)
        } else {
            plan.dest.clone()
        }
    };
    let (uid, gid) = chown.unwrap_or((0, 0));
    for h in &heredocs {
        let mode = chmod.as_ref().map_or(0o644, |m| m.apply(0o644, false));
        let p = place(&plan, &h.path);
        plan.entries.insert(
            p.clone(),
            Entry {
                path_in_layer: p,
                source: EntrySource::Bytes(h.data.clone().into_bytes()),
                mode,
                uid,
                gid,
                mtime: created_time,
                xattrs: Vec::new(),
            },
        );
    }
    // archives among named local sources (ADD only, unless --unpack=false)
    let mut archives = Vec::new();
    if is_add && c.unpack != Some(false) {
        for (p, host) in &plan.named_files {
            // (an archive whose entry a later source replaced is still extracted, as BuildKit
            // extracts each source in turn)
            if plan.entries.contains_key(p)
                && let Some(codec) = archive::detect(host).map_err(|e| failed(name, e))?
            {
                let into = if plan.dest_is_dir {
                    p.rsplit_once('/')
                        .map_or(String::new(), |(d, _)| d.to_string())
                } else {
                    p.clone()
                };
                archives.push((p.clone(), host.clone(), codec, into));
            }
        }
    }
    let mut downloads = Vec::new();
    if !urls.is_empty() {
        let dir = TempPath(ex.store.temp_path("add-url")?);
        std::fs::create_dir_all(&dir.0).map_err(|e| failed(name, e))?;
        for (i, u) in urls.iter().enumerate() {
            let f = dir.0.join(format!("u{i}"));
            let d = fetch::download(u, &f, c.checksum.as_deref()).map_err(|e| failed(name, e))?;
            let p = place(&plan, &d.file_name);
            let mode = chmod.as_ref().map_or(0o600, |m| m.apply(0o600, false));
            plan.entries.insert(
                p.clone(),
                Entry {
                    path_in_layer: p,
                    source: EntrySource::File(f),
                    mode,
                    uid,
                    gid,
                    mtime: d.mtime.unwrap_or(created_time),
                    xattrs: Vec::new(),
                },
            );
        }
        downloads.push(dir);
    }
    copy::add_parents(&mut plan, &target, &req).map_err(|e| failed(name, e))?;
    let mut files = checksum::entry_files(&plan.entries);
    files.extend(archives.iter().map(|a| a.1.as_path()));
    let hashes = ex
        .statcache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .hash_files(&files, 2)
        .map_err(|e| failed(name, e))?;
    let mut sum = checksum::entries_digest(&plan.entries, &hashes);
    // an archive a later source replaced is extracted too: its content keys the step
    for (p, host, _, _) in &archives {
        let replaced = !matches!(plan.entries.get(p), Some(Entry { source: EntrySource::File(h), .. }) if h == host);
        if replaced && let Some(d) = hashes.get(host) {
            for part in [" ", p.as_str(), "=", hex::encode(d).as_str()] {
                sum.push_str(part);
            }
        }
    }
    // exactly one regular file (plus directories) that is WebAssembly: a Wasm layer candidate
    let mut files = plan
        .entries
        .values()
        .filter(|e| !matches!(e.source, EntrySource::Dir));
    let wasm = match (
        files.next(),
        files.next(),
        archives.is_empty() && gits.is_empty(),
    ) {
        (
            Some(Entry {
                source: EntrySource::File(p),
                ..
            }),
            None,
            true,
        ) => crate::wasm::media_type_of(p).map(|_| p.clone()),
        _ => None,
    };
    let extra = format!("{sum} {}{}", epoch_tag(ex), crate::git::cache_part(&gits));
    let key = if link {
        link_key(&step.definition, &extra)
    } else {
        chain(&st.key, &step.definition, &extra)
    };
    let git_dest = plan.dest.clone();
    let out = cached_or(ex, key, || {
        let mut entries = plan.entries;
        let mut git_work = None;
        if !gits.is_empty() {
            let work = git_work.insert(TempPath(ex.store.temp_path("add-git")?));
            let (uid, gid) = chown.unwrap_or((0, 0));
            let opts = crate::git::EntryOptions {
                dest: &git_dest,
                chown: Some((uid, gid)),
                chmod: chmod.as_ref(),
                mtime: time::OffsetDateTime::now_utc().unix_timestamp(),
            };
            crate::git::add_entries(&gits, &work.0, &opts, &git_env, &mut entries)
                .map_err(|e| failed(name, e))?;
            let mut all = CopyPlan {
                entries,
                ..CopyPlan::default()
            };
            copy::add_parents(&mut all, &target, &req).map_err(|e| failed(name, e))?;
            entries = all.entries;
        }
        let staging = TempPath(ex.store.temp_path("add-unpack")?);
        if !archives.is_empty() {
            std::fs::create_dir_all(&staging.0).map_err(|e| failed(name, e))?;
            let mut extracted = CopyPlan::default();
            for (p, host, codec, into) in &archives {
                entries.remove(p);
                // BuildKit keeps the archive's owners: --chown only owns the dirs it creates
                for e in archive::extract(host, *codec, into, &staging.0, None)
                    .map_err(|e| failed(name, e))?
                {
                    extracted.entries.insert(e.path_in_layer.clone(), e);
                }
            }
            entries.append(&mut extracted.entries);
            let mut all = CopyPlan {
                entries,
                ..CopyPlan::default()
            };
            copy::add_parents(&mut all, &target, &req).map_err(|e| failed(name, e))?;
            entries = all.entries;
        }
        if entries.is_empty() {
            return Ok(None);
        }
        let opts = pack_opts(ex);
        let copy = adoptable(&entries).then(|| entries.clone());
        let l = to_blob(ex, name, |w| {
            layer_pack::pack_entries(entries.into_values(), &opts, w)
        })?;
        if let Some(entries) = copy {
            adopt_entries(ex, &entries, &l);
        }
        drop(staging);
        drop(git_work);
        Ok(Some(l))
    });
    drop(downloads);
    let mut out = out?;
    out.wasm = wasm;
    if link {
        // what follows depends on the previous state and on this layer
        out.chain_key = chain(&st.key, &serde_json::json!({ "link": out.key }), "");
    }
    Ok(out)
}

/// The cache key of a `--link` COPY/ADD: the step's definition (sources, dest, flags) and the
/// checksum of the planned layer (`extra`), without the previous steps, so the layer is reused
/// when the base or an earlier step changes.
fn link_key(definition: &serde_json::Value, extra: &str) -> String {
    chain("link", definition, extra)
}

/// `--chown` of a `--link` step: the layer is made without the previous state, so there is no
/// `/etc/passwd` to read; as in BuildKit, only numeric ids (and `root`) are accepted.
fn link_owner(spec: &str, name: &str) -> Result<(u32, u32), BuildError> {
    let c = ChownSpec::parse(spec).map_err(|e| input(name, e))?;
    c.resolve("root:x:0:0:root:/root:/bin/sh\n", "root:x:0:\n")
        .map_err(|_| {
            input(
                name,
                format!(
                    "--chown={spec} with --link: user and group names (other than root) cannot be resolved, the layer is made without the previous state; use numeric ids"
                ),
            )
        })
}

fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{a}/{b}")
    }
}

fn workdir_step(
    ex: &Executor<'_>,
    st: &StageResult,
    step: &Step,
    w: &WorkdirStep,
    name: &str,
) -> Result<StepOutput, BuildError> {
    let key = chain(&st.key, &step.definition, &epoch_tag(ex));
    cached_or(ex, key, || {
        let target = ex.tree_of(&st.layers)?;
        let rel = clean(&format!("/{}", w.path))
            .trim_start_matches('/')
            .to_string();
        if rel.is_empty() {
            return Ok(None);
        }
        let resolved = copy::resolve_for_create(&target, &rel).map_err(|e| failed(name, e))?;
        if target
            .lstat(&resolved)
            .map_err(|e| failed(name, e))?
            .is_some_and(|n| n.is_dir())
        {
            return Ok(None);
        }
        let (uid, gid) = if w.user.is_empty() {
            (0, 0)
        } else {
            resolve_owner(&target, &w.user, name)?
        };
        let created = ex.opts.source_date_epoch.unwrap_or(0);
        let mut entries = BTreeMap::new();
        let mut cur = String::new();
        for comp in resolved.split('/') {
            cur = join(&cur, comp);
            if target.lstat(&cur).map_err(|e| failed(name, e))?.is_none() {
                entries.insert(
                    cur.clone(),
                    Entry {
                        path_in_layer: cur.clone(),
                        source: EntrySource::Dir,
                        mode: 0o755,
                        uid,
                        gid,
                        mtime: created,
                        xattrs: Vec::new(),
                    },
                );
            }
        }
        let mut plan = CopyPlan {
            entries,
            ..CopyPlan::default()
        };
        copy::add_parents(
            &mut plan,
            &target,
            &CopyRequest {
                dest: w.path.clone(),
                created_time: created,
                chown: Some((uid, gid)),
                ..CopyRequest::default()
            },
        )
        .map_err(|e| failed(name, e))?;
        let opts = pack_opts(ex);
        let copy = adoptable(&plan.entries).then(|| plan.entries.clone());
        let l = to_blob(ex, name, |w| {
            layer_pack::pack_entries(plan.entries.into_values(), &opts, w)
        })?;
        if let Some(entries) = copy {
            adopt_entries(ex, &entries, &l);
        }
        Ok(Some(l))
    })
}

/// The host path of a context file (for callers outside).
pub fn context_file(root: &Path, rel: &str) -> PathBuf {
    root.join(clean(&format!("/{rel}")).trim_start_matches('/'))
}
