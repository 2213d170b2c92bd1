//! The version-1 Plan document: everything the executor needs, fully resolved.
//!
//! Stability: these types only grow (new optional fields); existing fields keep their meaning.
//! See the crate README for a complete example.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::ImageConfig;

/// The Plan format version this crate produces.
pub const PLAN_VERSION: u32 = 1;

/// A build plan: the stages the target needs, in execution order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Always [`PLAN_VERSION`] (1).
    pub version: u32,
    /// The target platform (`os/arch[/variant]`), normalised (`linux/amd64`, `linux/arm/v7`).
    pub platform: String,
    /// The platform of the machine building (BUILDPLATFORM).
    pub build_platform: String,
    /// Index of the target stage (by FROM order, pre-FROM ARGs never count).
    pub target: usize,
    /// External images the plan reads (bases, `COPY --from=<image>`, `--mount from=<image>`),
    /// normalised (`docker.io/library/busybox:latest`), sorted, unique.
    pub images: Vec<String>,
    /// Non-fatal findings (unused build args, unknown base configs, ...).
    pub warnings: Vec<Warning>,
    /// The stages the target needs (the target included), dependencies before dependents,
    /// ties broken by index. Stages the target does not need are pruned.
    pub stages: Vec<Stage>,
}

/// A non-fatal finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    /// The Remfile line it is about, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// What was found.
    pub message: String,
}

/// One stage (one FROM).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    /// Index by FROM order (0-based).
    pub index: usize,
    /// The `AS` name, lower case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Line of the FROM instruction.
    pub line: u32,
    /// What the stage starts from.
    pub base: Base,
    /// The stage's platform (FROM `--platform`, else the target platform).
    pub platform: String,
    /// Indexes of the stages that must be built before this one (its base stage, `COPY --from`
    /// and `RUN --mount from=` stages), sorted. Independent stages have no edge between them.
    pub depends_on: Vec<usize>,
    /// True when the base image's config was provided to the planner (or the base is scratch
    /// or a stage); false when the planner had to assume an empty config.
    pub base_config_known: bool,
    /// The steps in order (ONBUILD triggers of the base first, marked `onbuild`).
    pub steps: Vec<Step>,
    /// The complete image config after the last step (base config included).
    pub config: ImageConfig,
}

/// What a stage starts from. Serialised as `{"image": ..., "original": ...}`,
/// `{"stage": N}` or `{"scratch": true}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Base {
    /// An external image.
    Image {
        /// Normalised reference (`docker.io/library/busybox:latest`).
        image: String,
        /// The reference as written (after expansion), e.g. `busybox`.
        original: String,
    },
    /// Another stage of this plan (by index): its final filesystem and config.
    Stage {
        /// The stage index.
        stage: usize,
    },
    /// `FROM scratch`: an empty filesystem and config.
    Scratch {
        /// Always true.
        scratch: bool,
    },
}

/// One step of a stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Line of the instruction (for ONBUILD triggers: the line of the stage's FROM).
    pub line: u32,
    /// The instruction's source text (first line), for progress output.
    pub instruction: String,
    /// The history entry text (`created_by`), as BuildKit writes it.
    pub created_by: String,
    /// True when the step never produces a layer (config-only steps).
    pub empty_layer: bool,
    /// True when the step is an ONBUILD trigger of the base.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub onbuild: bool,
    /// What to do.
    #[serde(flatten)]
    pub op: Op,
    /// The canonical, cache-relevant content of the step (sorted keys): the executor derives the
    /// cache key from it (COPY/ADD: plus the checksum of the selected sources). Proxy build args
    /// that no ARG declares are never in it.
    pub definition: serde_json::Value,
}

/// The operation of a step, tagged by `"op"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// RUN: execute a process; its changes become a layer.
    Run(RunStep),
    /// COPY: copy files from the context, a stage or an image.
    Copy(CopyStep),
    /// ADD: like COPY, plus URLs, git and archive extraction.
    Add(CopyStep),
    /// WORKDIR: set the working directory and create it (`mkdir -p`, owned by `user`).
    Workdir(WorkdirStep),
    /// Everything else: changes the config only (ENV, LABEL, CMD, USER, ARG, ...).
    Config(ConfigStep),
}

/// A RUN step, fully resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunStep {
    /// The final argv: shell form already wrapped with the SHELL in effect, heredocs resolved.
    pub argv: Vec<String>,
    /// The environment (`K=V`): the image's Env, then ENV and ARGs in scope, in order.
    pub env: Vec<String>,
    /// Proxy variables from build args that no ARG declared (`HTTP_PROXY=...` and
    /// `http_proxy=...`): set for the process, never part of the definition or the image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub proxy_env: Vec<String>,
    /// Absolute working directory.
    pub workdir: String,
    /// `user[:group]` as in the config (empty: root).
    pub user: String,
    /// The shell in effect (used for the shell form).
    pub shell: Vec<String>,
    /// True when the command was written in shell form (or as a heredoc).
    pub shell_form: bool,
    /// `default`, `none` or `host`.
    pub network: String,
    /// `sandbox` or `insecure`.
    pub security: String,
    /// `--mount`s, expanded, targets absolute.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<RunMount>,
    /// Files the executor provides read-only before running (a heredoc script with a `#!`
    /// line is run as a file, as BuildKit does: mounted under `/dev/pipes/`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub heredocs: Vec<InlineFile>,
    /// The sandbox's host name: BuildKit's `buildkitsandbox`, or the build arg
    /// `BUILDKIT_SANDBOX_HOSTNAME`.
    #[serde(default = "default_hostname")]
    pub hostname: String,
}

/// BuildKit's host name of RUN sandboxes.
pub const DEFAULT_HOSTNAME: &str = "buildkitsandbox";

fn default_hostname() -> String {
    DEFAULT_HOSTNAME.to_string()
}

/// An inline file (heredoc body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InlineFile {
    /// For RUN: the absolute path where the file is mounted; for COPY/ADD: the file name.
    pub path: String,
    /// The content (expanded when the delimiter was unquoted and the instruction expands).
    pub data: String,
    /// Permission bits.
    pub mode: u32,
}

/// Where COPY/ADD or a mount reads from (absent: the build context).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FromRef {
    /// A stage of this plan, by index.
    Stage(usize),
    /// An external image (normalised reference).
    Image(String),
}

/// A `RUN --mount`, expanded; targets are absolute (relative ones joined to the workdir).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RunMount {
    /// Bind a path of the context, a stage or an image.
    Bind {
        /// Mount point.
        target: String,
        /// Path inside the source (default `/`).
        source: String,
        /// Source (absent: the build context).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<FromRef>,
        /// Read-only (default true).
        readonly: bool,
    },
    /// A persistent cache directory.
    Cache {
        /// Mount point.
        target: String,
        /// Cache id (default: the target).
        id: String,
        /// `shared`, `private` or `locked`.
        sharing: String,
        /// Seed source (absent: empty).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<FromRef>,
        /// Path inside `from`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source: Option<String>,
        /// Read-only.
        readonly: bool,
        /// Mode of a new cache directory (default 0o755).
        mode: u32,
        /// Owner uid (default 0).
        uid: u32,
        /// Owner gid (default 0).
        gid: u32,
    },
    /// A tmpfs.
    Tmpfs {
        /// Mount point.
        target: String,
        /// Size in bytes (absent: unlimited).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<u64>,
        /// Read-only.
        readonly: bool,
    },
    /// A build secret.
    Secret {
        /// Secret id (default: the target's file name).
        id: String,
        /// File path (default `/run/secrets/<id>`; absent when only `env` is used).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<String>,
        /// Expose as this environment variable.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        env: Option<String>,
        /// Fail when the secret is not provided.
        required: bool,
        /// File mode (default 0o400).
        mode: u32,
        /// Owner uid.
        uid: u32,
        /// Owner gid.
        gid: u32,
    },
    /// An SSH agent socket.
    Ssh {
        /// Agent id (default `default`).
        id: String,
        /// Socket path (default `/run/buildkit/ssh_agent.<n>`).
        target: String,
        /// Fail when no agent is provided.
        required: bool,
        /// Socket mode (default 0o600).
        mode: u32,
        /// Owner uid.
        uid: u32,
        /// Owner gid.
        gid: u32,
    },
}

/// A COPY or ADD source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CopySource {
    /// A path or glob (relative to the source root), or for ADD a URL; expanded.
    Path(String),
    /// A heredoc: a file named `path` with `data`.
    Heredoc(InlineFile),
}

/// A COPY/ADD step, expanded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyStep {
    /// Sources in order.
    pub sources: Vec<CopySource>,
    /// Absolute destination; a trailing `/` is kept (it means "into this directory").
    pub dest: String,
    /// Source of the files (absent: the build context).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<FromRef>,
    /// `--chown`, expanded (resolved by the executor against the stage's /etc/passwd).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chown: Option<String>,
    /// `--chmod`, expanded (octal or symbolic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chmod: Option<String>,
    /// `--link`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub link: bool,
    /// `--parents` (COPY only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub parents: bool,
    /// `--exclude` patterns, expanded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// `--checksum` (ADD only), expanded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// `--keep-git-dir` (ADD only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_git_dir: bool,
    /// `--unpack` (ADD only; absent: by source kind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unpack: Option<bool>,
    /// The working directory in effect (relative sources of `--parents` and dest use it).
    pub workdir: String,
}

/// A WORKDIR step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkdirStep {
    /// The new absolute working directory (relative paths joined to the previous one, cleaned).
    pub path: String,
    /// The user in effect: owner of the directories created.
    pub user: String,
    /// True when the executor must create the directory (`mkdir -p`, mode 0755) as a layer
    /// (BuildKit does unless the path is `/`).
    pub mkdir: bool,
}

/// A config-only step; `set` holds exactly what it changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigStep {
    /// The change.
    pub set: ConfigDelta,
}

/// A change to the image config; only the fields present change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConfigDelta {
    /// ENV: `K=V` entries set (replacing an existing K in place, else appended).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// LABEL: labels set.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// CMD: the new Cmd (shell form already wrapped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// ENTRYPOINT: the new Entrypoint (shell form already wrapped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// True when ENTRYPOINT cleared the Cmd inherited from the base (no CMD in this stage yet).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub clear_cmd: bool,
    /// USER.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// EXPOSE: `port/proto` entries added.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exposed_ports: Vec<String>,
    /// VOLUME: paths added.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
    /// STOPSIGNAL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// SHELL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    /// HEALTHCHECK.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<crate::config::Healthcheck>,
    /// ONBUILD: trigger appended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_build: Option<String>,
    /// MAINTAINER: the image author.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// ARG: declarations now in scope (`K=V`, or `K` when unset). No config change; recorded
    /// for history and cache only.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
}
