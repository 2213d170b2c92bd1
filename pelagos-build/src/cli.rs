//! The command line: Docker's `build` flags, parsed by clap and validated into [`BuildOptions`].

use std::path::PathBuf;

use clap::Parser;

/// Invalid command-line input (exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// A `--build-arg` without a name.
    #[error("invalid --build-arg {0:?}: expected NAME[=VALUE]")]
    BuildArg(String),
    /// A `--label` without `=`.
    #[error("invalid --label {0:?}: expected KEY=VALUE")]
    Label(String),
    /// A bad `--output` spec.
    #[error("invalid --output {spec:?}: {reason}")]
    Output {
        /// The spec.
        spec: String,
        /// Why.
        reason: String,
    },
    /// A bad `--source-date-epoch` or `SOURCE_DATE_EPOCH`.
    #[error("invalid source date epoch {0:?}: expected whole seconds since 1970")]
    Epoch(String),
    /// Both the plan and the context want stdin.
    #[error("{0} and the context cannot both be read from stdin (-)")]
    Stdin(&'static str),
    /// A bad `--tag`.
    #[error("invalid tag {0:?}")]
    Tag(String),
    /// A bad `--cache-to` / `--cache-from` spec.
    #[error("invalid {flag} {spec:?}: {reason}")]
    Cache {
        /// The flag.
        flag: &'static str,
        /// The spec.
        spec: String,
        /// Why.
        reason: String,
    },
    /// `--push` or `--output type=registry` without a name to push to.
    #[error("{0}: no image name to push to (give -t or name=)")]
    NoPushName(&'static str),
    /// A bad `--secret` or `--ssh`.
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretError),
    /// A bad `--build-context`, `--add-host`, `--shm-size`, ... (see [`crate::extra`]).
    #[error(transparent)]
    Extra(#[from] crate::extra::ExtraError),
}

/// How progress is shown on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProgressMode {
    /// `tty` when stderr is a terminal, else `plain`.
    Auto,
    /// One line per event.
    Plain,
    /// A live view with per-step timers.
    Tty,
    /// One JSON object per line.
    Json,
}

/// The network of RUN steps.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// BuildKit's default (a standalone buildkitd without CNI, `docker build`): the host's
    /// network namespace.
    Default,
    /// Loopback only.
    None,
    /// The host's network.
    Host,
    /// A private namespace with slirp4netns NAT.
    Slirp,
    /// A private namespace with pasta NAT.
    Pasta,
}

impl NetworkMode {
    /// The name as written on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkMode::Default => "default",
            NetworkMode::None => "none",
            NetworkMode::Host => "host",
            NetworkMode::Slirp => "slirp",
            NetworkMode::Pasta => "pasta",
        }
    }
}

pub use crate::output::{OutputKind, OutputSpec};

/// One `--cache-to` / `--cache-from`: `type=registry,ref=REF[,mode=min|max]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CacheSpec {
    /// The cache artifact's reference.
    pub reference: String,
    /// `mode=max`: every step of every stage; `min` (default): the steps of the stages the
    /// result is built on.
    pub max: bool,
}

impl CacheSpec {
    /// Parses a spec of `flag` (`mode=` only for `--cache-to`).
    pub fn parse(flag: &'static str, spec: &str) -> Result<Self, UsageError> {
        let err = |reason: &str| UsageError::Cache {
            flag,
            spec: spec.to_string(),
            reason: reason.into(),
        };
        let (mut kind, mut reference, mut max) = (None, None, false);
        for field in spec.split(',') {
            let (k, v) = field
                .split_once('=')
                .ok_or_else(|| err("expected KEY=VALUE fields"))?;
            match k.trim() {
                "type" => kind = Some(v.to_string()),
                "ref" if !v.is_empty() => reference = Some(v.to_string()),
                "ref" => return Err(err("empty ref")),
                "mode" if flag == "--cache-to" => {
                    max = match v {
                        "min" => false,
                        "max" => true,
                        _ => return Err(err("mode must be min or max")),
                    };
                }
                other => return Err(err(&format!("unknown field {other:?}"))),
            }
        }
        match kind.as_deref() {
            Some("registry") => {}
            Some(_) => return Err(err("only type=registry is supported")),
            None => return Err(err("missing type=")),
        }
        let reference = reference.ok_or_else(|| err("missing ref="))?;
        image_store::Reference::parse(&reference).map_err(|e| err(&e.to_string()))?;
        Ok(CacheSpec { reference, max })
    }
}

/// `pelagos-build`: build an OCI image from a Remfile (Dockerfile) and a context.
#[derive(Debug, Parser)]
#[command(name = "pelagos-build", version, about, max_term_width = 100)]
pub struct Cli {
    /// The build context directory, or `-` to read a tar archive (or a lone Remfile) from stdin.
    #[arg(default_value = ".")]
    pub context: String,
    /// The Remfile (default: `Remfile`, then `Dockerfile`, then `Containerfile` in the context);
    /// `-` reads it from stdin.
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Name and tag for the image (repeatable).
    #[arg(short = 't', long = "tag")]
    pub tags: Vec<String>,
    /// A build argument: `NAME=VALUE`, or `NAME` to take the value from the environment.
    #[arg(long = "build-arg", value_name = "NAME[=VALUE]")]
    pub build_args: Vec<String>,
    /// The stage to build (default: the last).
    #[arg(long)]
    pub target: Option<String>,
    /// Do not use the build cache (results are still stored in it).
    #[arg(long)]
    pub no_cache: bool,
    /// Always pull base images, even when they are in the store.
    #[arg(long)]
    pub pull: bool,
    /// Network of RUN steps (`RUN --network=none|host` wins): `default` is the host's network
    /// namespace, as in BuildKit; `none` only loopback; `slirp`/`pasta` a private namespace with
    /// user-mode NAT.
    #[arg(long, value_enum, default_value_t = NetworkMode::Default)]
    pub network: NetworkMode,
    /// A label for the image: `KEY=VALUE` (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Progress output on stderr.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// Print only the image ID on stdout, and no progress.
    #[arg(short, long)]
    pub quiet: bool,
    /// Write the image ID to this file.
    #[arg(long, value_name = "FILE")]
    pub iidfile: Option<PathBuf>,
    /// Write the build metadata (JSON) to this file.
    #[arg(long, value_name = "FILE")]
    pub metadata_file: Option<PathBuf>,
    /// An output: `type=oci|docker|local|tar,dest=PATH` (`dest=-` or none: stdout for `oci` and
    /// `tar`; `docker` without dest: the image in the store; `local` merges into an existing
    /// directory), `-` (a tar on stdout), `type=image|registry[,name=REF][,push=true]`, with
    /// BuildKit's `compression=`, `oci-mediatypes=`, ... (repeatable).
    #[arg(short = 'o', long = "output", value_name = "SPEC")]
    pub outputs: Vec<String>,
    /// The store directory (default: $PELAGOS_STORE, /var/lib/pelagos for root, else
    /// $XDG_DATA_HOME/pelagos).
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// Clamp every timestamp to this time (seconds since 1970); default: $SOURCE_DATE_EPOCH.
    #[arg(long, value_name = "N")]
    pub source_date_epoch: Option<String>,
    /// Execute this Plan document (from remfile-plan) instead of a Remfile; `-` reads stdin.
    #[arg(long, value_name = "FILE|-")]
    pub plan: Option<PathBuf>,
    /// The target platform (only the machine's own platform can run RUN steps).
    #[arg(long)]
    pub platform: Option<String>,
    /// Push every `-t` tag to its registry after the build.
    #[arg(long)]
    pub push: bool,
    /// A registry reached over plain HTTP or unverified TLS (repeatable; localhost and
    /// 127.0.0.0/8 always are).
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure_registries: Vec<String>,
    /// Export the build cache: `type=registry,ref=REF[,mode=min|max]` (repeatable).
    #[arg(long = "cache-to", value_name = "SPEC")]
    pub cache_to: Vec<String>,
    /// Import a build cache first: `type=registry,ref=REF` (repeatable).
    #[arg(long = "cache-from", value_name = "SPEC")]
    pub cache_from: Vec<String>,
    /// A secret for `RUN --mount=type=secret`: `id=ID[,src=PATH]`, `id=ID,env=VAR`,
    /// `type=file|env,...` (repeatable; a lone `id=ID` reads the variable ID, else the file ID).
    #[arg(long = "secret", value_name = "SPEC")]
    pub secrets: Vec<String>,
    /// An SSH agent for `RUN --mount=type=ssh` and ssh git sources: `default|ID[=SOCKET]`
    /// (without a socket, `$SSH_AUTH_SOCK`) or `ID=KEY[,KEY...]` (unencrypted key files loaded
    /// into a private ssh-agent for the build) (repeatable).
    #[arg(long = "ssh", value_name = "ID[=SOCKET|KEY,...]")]
    pub ssh: Vec<String>,
    /// buildx flags: `--build-context`, `--add-host`, `--no-cache-filter`, ...
    #[command(flatten)]
    pub extra: crate::extra::ExtraFlags,
}

/// Where the Remfile or the Plan comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipe {
    /// A Remfile at a path (`None`: look it up in the context).
    Remfile(Option<PathBuf>),
    /// A Remfile read from stdin.
    RemfileStdin,
    /// A Plan document at a path.
    Plan(PathBuf),
    /// A Plan document on stdin.
    PlanStdin,
}

/// The build context source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContextSource {
    /// A directory.
    Dir(PathBuf),
    /// A tar archive (or a lone Remfile) on stdin.
    Stdin,
    /// A git repository or an `http(s)://` URL (see [`crate::remote`]).
    Remote(String),
}

/// Validated options of one build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The context.
    pub context: ContextSource,
    /// The recipe.
    pub recipe: Recipe,
    /// Tags, as given.
    pub tags: Vec<String>,
    /// Build args with their values (those taken from an unset variable are left out).
    pub build_args: Vec<(String, String)>,
    /// `--target`.
    pub target: Option<String>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--pull`.
    pub pull: bool,
    /// `--network`.
    pub network: NetworkMode,
    /// `--label` pairs, in order.
    pub labels: Vec<(String, String)>,
    /// `--progress` (already resolved when `-q`).
    pub progress: ProgressMode,
    /// `-q`.
    pub quiet: bool,
    /// `--iidfile`.
    pub iidfile: Option<PathBuf>,
    /// `--metadata-file`.
    pub metadata_file: Option<PathBuf>,
    /// `--output`s.
    pub outputs: Vec<OutputSpec>,
    /// `--store`.
    pub store: Option<PathBuf>,
    /// `--source-date-epoch` or `SOURCE_DATE_EPOCH`.
    pub source_date_epoch: Option<i64>,
    /// `--platform`.
    pub platform: Option<String>,
    /// Where to push the result: every `-t` with `--push`, and `--output type=registry` names.
    pub push_to: Vec<String>,
    /// `--insecure-registry`.
    pub insecure_registries: Vec<String>,
    /// `--cache-to`.
    pub cache_to: Vec<CacheSpec>,
    /// `--cache-from`.
    pub cache_from: Vec<CacheSpec>,
    /// `--secret`s (a later one with the same id wins); their Debug never shows a value.
    pub secrets: Vec<crate::secrets::SecretSpec>,
    /// `--ssh` agents (a later one with the same id wins).
    pub ssh: Vec<crate::secrets::SshSpec>,
    /// The flags of [`crate::extra`].
    pub extra: crate::extra::ExtraOptions,
}

/// Parses `NAME[=VALUE]`; without `=`, the value comes from `env` (absent: the arg is skipped).
pub fn parse_build_arg(
    s: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<(String, String)>, UsageError> {
    let (name, value) = match s.split_once('=') {
        Some((n, v)) => (n, Some(v.to_string())),
        None => (s, None),
    };
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(UsageError::BuildArg(s.to_string()));
    }
    Ok(value.or_else(|| env(name)).map(|v| (name.to_string(), v)))
}

/// Parses a source date epoch: whole seconds, non-negative.
pub fn parse_epoch(s: &str) -> Result<i64, UsageError> {
    s.trim()
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| UsageError::Epoch(s.to_string()))
}

impl Cli {
    /// Validates the flags; `env` reads environment variables (`std::env::var` in the binary).
    pub fn into_options(
        self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<BuildOptions, UsageError> {
        // as docker's CLI: `-`, then a local directory, then a git or http(s) URL
        let context = if self.context == "-" {
            ContextSource::Stdin
        } else if !std::path::Path::new(&self.context).is_dir()
            && crate::remote::is_remote(&self.context)
        {
            ContextSource::Remote(self.context.clone())
        } else {
            ContextSource::Dir(PathBuf::from(&self.context))
        };
        let recipe = match (&self.plan, &self.file) {
            (Some(p), _) if p.as_os_str() == "-" => Recipe::PlanStdin,
            (Some(p), _) => Recipe::Plan(p.clone()),
            (None, Some(f)) if f.as_os_str() == "-" => Recipe::RemfileStdin,
            (None, f) => Recipe::Remfile(f.clone()),
        };
        if context == ContextSource::Stdin {
            match recipe {
                Recipe::PlanStdin => return Err(UsageError::Stdin("--plan -")),
                Recipe::RemfileStdin => return Err(UsageError::Stdin("--file -")),
                _ => {}
            }
        }
        let mut build_args = Vec::new();
        for a in &self.build_args {
            if let Some(kv) = parse_build_arg(a, env)? {
                build_args.retain(|(k, _): &(String, String)| *k != kv.0);
                build_args.push(kv);
            }
        }
        let mut labels = Vec::new();
        for l in &self.labels {
            let (k, v) = l
                .split_once('=')
                .ok_or_else(|| UsageError::Label(l.clone()))?;
            if k.is_empty() {
                return Err(UsageError::Label(l.clone()));
            }
            labels.push((k.to_string(), v.to_string()));
        }
        for t in &self.tags {
            if t.is_empty() || t.contains(char::is_whitespace) || t.ends_with(':') {
                return Err(UsageError::Tag(t.clone()));
            }
        }
        let outputs = self
            .outputs
            .iter()
            .map(|o| OutputSpec::parse(o))
            .collect::<Result<Vec<_>, _>>()?;
        crate::output::check_outputs(&outputs, &self.tags)?;
        // `--push`; pushing outputs are pushed by [`crate::output::write_outputs`]
        let mut push_to: Vec<String> = Vec::new();
        if self.push {
            if self.tags.is_empty() {
                return Err(UsageError::NoPushName("--push"));
            }
            push_to.extend(self.tags.iter().cloned());
        }
        for p in &push_to {
            image_store::Reference::parse(p).map_err(|e| UsageError::Tag(format!("{p}: {e}")))?;
        }
        let mut seen = std::collections::HashSet::new();
        push_to.retain(|p| seen.insert(p.clone()));
        let cache_to = self
            .cache_to
            .iter()
            .map(|c| CacheSpec::parse("--cache-to", c))
            .collect::<Result<Vec<_>, _>>()?;
        let cache_from = self
            .cache_from
            .iter()
            .map(|c| CacheSpec::parse("--cache-from", c))
            .collect::<Result<Vec<_>, _>>()?;
        let source_date_epoch = match &self.source_date_epoch {
            Some(s) => Some(parse_epoch(s)?),
            None => match env("SOURCE_DATE_EPOCH") {
                Some(s) if !s.is_empty() => Some(parse_epoch(&s)?),
                _ => None,
            },
        };
        let mut secrets: Vec<crate::secrets::SecretSpec> = Vec::new();
        for s in &self.secrets {
            let s = crate::secrets::SecretSpec::parse(s, env)?;
            secrets.retain(|o| o.id != s.id);
            secrets.push(s);
        }
        let mut ssh: Vec<crate::secrets::SshSpec> = Vec::new();
        for s in &self.ssh {
            let s = crate::secrets::SshSpec::parse(s, env)?;
            ssh.retain(|o| o.id != s.id);
            ssh.push(s);
        }
        let extra = self.extra.validate()?;
        Ok(BuildOptions {
            extra,
            context,
            recipe,
            tags: self.tags,
            build_args,
            target: self.target,
            no_cache: self.no_cache,
            pull: self.pull,
            network: self.network,
            labels,
            progress: self.progress,
            quiet: self.quiet,
            iidfile: self.iidfile,
            metadata_file: self.metadata_file,
            outputs,
            store: self.store,
            source_date_epoch,
            platform: self.platform,
            push_to,
            insecure_registries: self.insecure_registries,
            cache_to,
            cache_from,
            secrets,
            ssh,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(args: &[&str], env: &[(&str, &str)]) -> Result<BuildOptions, UsageError> {
        let vars: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        let mut command = vec!["pelagos-build"];
        command.extend_from_slice(args);
        Cli::try_parse_from(command)
            .unwrap()
            .into_options(&move |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
    }

    #[test]
    fn every_flag() {
        let o = opts(
            &[
                "-f",
                "x/Dockerfile",
                "-t",
                "a:1",
                "--tag",
                "b",
                "--build-arg",
                "V=2",
                "--build-arg",
                "FROMENV",
                "--build-arg",
                "UNSET",
                "--target",
                "builder",
                "--no-cache",
                "--pull",
                "--network",
                "host",
                "--label",
                "k=v=w",
                "--progress",
                "json",
                "-q",
                "--iidfile",
                "id",
                "--metadata-file",
                "m.json",
                "--output",
                "type=oci,dest=o.tar",
                "-o",
                "type=local,dest=out",
                "--store",
                "/s",
                "--source-date-epoch",
                "42",
                "ctx",
            ],
            &[("FROMENV", "e"), ("SOURCE_DATE_EPOCH", "7")],
        )
        .unwrap();
        assert_eq!(o.context, ContextSource::Dir("ctx".into()));
        assert_eq!(o.recipe, Recipe::Remfile(Some("x/Dockerfile".into())));
        assert_eq!(o.tags, ["a:1", "b"]);
        assert_eq!(
            o.build_args,
            [
                ("V".to_string(), "2".to_string()),
                ("FROMENV".to_string(), "e".to_string())
            ]
        );
        assert_eq!(o.target.as_deref(), Some("builder"));
        assert!(o.no_cache && o.pull && o.quiet);
        assert_eq!(o.network, NetworkMode::Host);
        assert_eq!(o.labels, [("k".to_string(), "v=w".to_string())]);
        assert_eq!(o.progress, ProgressMode::Json);
        assert_eq!(o.outputs.len(), 2);
        assert_eq!(o.outputs[1].kind, OutputKind::Local);
        assert_eq!(
            o.source_date_epoch,
            Some(42),
            "the flag beats the environment"
        );
        assert_eq!(o.store, Some("/s".into()));
    }

    #[test]
    fn defaults_and_env_epoch() {
        let o = opts(&[], &[("SOURCE_DATE_EPOCH", "7")]).unwrap();
        assert_eq!(o.context, ContextSource::Dir(".".into()));
        assert_eq!(o.recipe, Recipe::Remfile(None));
        assert_eq!(o.source_date_epoch, Some(7));
        assert_eq!(o.progress, ProgressMode::Auto);
        assert_eq!(o.network, NetworkMode::Default);
        assert_eq!(
            opts(&["--network", "none"], &[]).unwrap().network,
            NetworkMode::None
        );
        assert_eq!(opts(&[], &[]).unwrap().source_date_epoch, None);
        assert!(opts(&[], &[("SOURCE_DATE_EPOCH", "x")]).is_err());
        assert!(opts(&["--source-date-epoch=-1"], &[]).is_err());
    }

    #[test]
    fn stdin_forms() {
        assert_eq!(
            opts(&["--plan", "-", "."], &[]).unwrap().recipe,
            Recipe::PlanStdin
        );
        assert_eq!(
            opts(&["--plan", "p.json"], &[]).unwrap().recipe,
            Recipe::Plan("p.json".into())
        );
        assert_eq!(
            opts(&["-f", "-"], &[]).unwrap().recipe,
            Recipe::RemfileStdin
        );
        assert_eq!(opts(&["-"], &[]).unwrap().context, ContextSource::Stdin);
        assert!(matches!(
            opts(&["--plan", "-", "-"], &[]),
            Err(UsageError::Stdin(_))
        ));
        assert!(matches!(
            opts(&["-f", "-", "-"], &[]),
            Err(UsageError::Stdin(_))
        ));
    }

    #[test]
    fn bad_values() {
        assert!(opts(&["--build-arg", "=x"], &[]).is_err());
        assert!(opts(&["--label", "novalue"], &[]).is_err());
        assert!(opts(&["-t", ""], &[]).is_err());
        assert!(Cli::try_parse_from(["pelagos-build", "--progress", "fancy"]).is_err());
        assert!(Cli::try_parse_from(["pelagos-build", "--network", "bridge"]).is_err());
    }

    #[test]
    fn later_build_arg_wins() {
        let o = opts(&["--build-arg", "A=1", "--build-arg", "A=2"], &[]).unwrap();
        assert_eq!(o.build_args, [("A".to_string(), "2".to_string())]);
    }

    #[test]
    fn registry_flags() {
        let o = opts(
            &[
                "-t",
                "r.example:5000/a:1",
                "-t",
                "b:2",
                "--push",
                "-o",
                "type=registry,name=c:3",
                "-o",
                "type=image,push=true",
                "--insecure-registry",
                "r.example:5000",
                "--cache-to",
                "type=registry,ref=r.example:5000/cache:x,mode=max",
                "--cache-from",
                "type=registry,ref=r.example:5000/cache:x",
            ],
            &[],
        )
        .unwrap();
        // --push: the tags; outputs push their own names (see output::write_outputs)
        assert_eq!(o.push_to, ["r.example:5000/a:1", "b:2"]);
        assert_eq!(o.outputs[0].names(), ["c:3"]);
        assert_eq!(o.insecure_registries, ["r.example:5000"]);
        assert!(o.cache_to[0].max && !o.cache_from[0].max);
        assert_eq!(o.cache_from[0].reference, "r.example:5000/cache:x");
        assert!(matches!(
            opts(&["--push"], &[]),
            Err(UsageError::NoPushName(_))
        ));
        assert!(matches!(
            opts(&["-o", "type=registry"], &[]),
            Err(UsageError::NoPushName(_))
        ));
        assert!(opts(&["-o", "type=registry,name=Bad:x"], &[]).is_err());
        for bad in [
            "type=local,ref=x",
            "ref=x",
            "type=registry",
            "type=registry,ref=",
            "type=registry,ref=x,mode=all",
            "type=registry,ref=UPPER",
            "type=registry,ref=x,foo=1",
        ] {
            assert!(CacheSpec::parse("--cache-to", bad).is_err(), "{bad}");
        }
        assert!(CacheSpec::parse("--cache-from", "type=registry,ref=x,mode=max").is_err());
    }

    #[test]
    fn secret_and_ssh_flags() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("a.sock");
        let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let s = sock.display().to_string();
        let o = opts(
            &[
                "--secret",
                "id=a,src=/x/one",
                "--secret",
                "id=b,env=TOK",
                "--secret",
                "id=a,src=/x/two",
                "--ssh",
                "default",
                "--ssh",
                &format!("git={s}"),
            ],
            &[("TOK", "v"), ("SSH_AUTH_SOCK", &s)],
        )
        .unwrap();
        // a later --secret with the same id wins
        let ids: Vec<&str> = o.secrets.iter().map(|x| x.id.as_str()).collect();
        assert_eq!(ids, ["b", "a"]);
        assert_eq!(
            o.secrets[1].source,
            crate::secrets::SecretSource::File("/x/two".into())
        );
        // the value is not in Debug (unredacted it would be a second field)
        assert!(format!("{o:?}").contains("Env(\"TOK\")"), "{o:?}");
        assert_eq!(o.ssh.len(), 2);
        assert!(o.ssh.iter().all(|x| x.socket == sock));
        assert!(matches!(
            opts(&["--secret", "id=a,foo=b"], &[]),
            Err(UsageError::Secret(_))
        ));
        assert!(matches!(
            opts(&["--ssh", "default"], &[]),
            Err(UsageError::Secret(_))
        ));
    }

    #[test]
    fn output_flags() {
        assert!(matches!(
            opts(&["-o", "-", "-o", "type=oci"], &[]),
            Err(UsageError::Output { .. })
        ));
        let o = opts(&["-o", "type=docker", "-o", "type=image,name=x:1"], &[]).unwrap();
        assert_eq!(o.outputs[0].kind, OutputKind::Docker);
        assert!(o.push_to.is_empty());
        assert!(opts(&["-o", "type=image,name=Bad:x"], &[]).is_err());
    }
}
