//! One instruction of a stage → one step, with BuildKit's expansion and config semantics.

use std::collections::BTreeSet;

use remfile_parse::{Command, Health, Instruction, Kind, Mount, Network, Security, Sharing};
use serde_json::{Value, json};

use crate::config::{DEFAULT_PATH, Healthcheck, ImageConfig};
use crate::error::PlanError;
use crate::lex::{LexError, Lexer};
use crate::planner::{Globals, RawStage, is_proxy_arg, resolve_from, set_var};
use crate::types::{
    ConfigDelta, ConfigStep, CopySource, CopyStep, FromRef, InlineFile, Op, RunMount, RunStep,
    Step, WorkdirStep,
};
use crate::values::{
    clean_path, go_duration, go_quote, go_quote_rune, parse_ports, parse_size, resolve_dest,
    valid_signal,
};

/// The state of a stage while its steps are planned.
#[derive(Debug, Clone, Default)]
pub(crate) struct StageState {
    /// The build environment (what RUN sees and expansion uses): image Env, then ARGs and ENVs.
    pub env: Vec<(String, String)>,
    /// The image config.
    pub config: ImageConfig,
    /// ARGs declared in this stage with their values (for RUN's history text).
    pub args: Vec<(String, Option<String>)>,
    /// Every ARG name declared in this stage.
    pub declared: BTreeSet<String>,
    /// CMD was set in this stage.
    pub cmd_set: bool,
    /// The base config was not known.
    pub base_unknown: bool,
}

impl StageState {
    pub fn from_config(config: ImageConfig) -> Self {
        StageState {
            config,
            ..StageState::default()
        }
    }

    /// A stage built FROM `parent`: its env (ARG values included), config (without ONBUILD
    /// triggers, which are not inherited) and ARGs.
    pub fn from_stage(parent: &StageState) -> Self {
        let mut config = parent.config.clone();
        config.on_build.clear();
        StageState {
            env: parent.env.clone(),
            config,
            // BuildKit's RUN history lists only the ARGs declared in the stage itself (their
            // values still reach the env, through the parent's state)
            args: Vec::new(),
            declared: BTreeSet::new(),
            cmd_set: false,
            base_unknown: parent.base_unknown,
        }
    }

    /// PATH is always set (BuildKit's default), then the config's Env enters the build env.
    pub fn finish_base(&mut self) {
        if self.config.env_get("PATH").is_none() {
            self.config.env_set("PATH", DEFAULT_PATH);
        }
        for e in self.config.env.clone() {
            let (k, v) = e.split_once('=').unwrap_or((e.as_str(), ""));
            set_var(&mut self.env, k, v.to_string());
        }
    }

    fn workdir(&self) -> String {
        if self.config.working_dir.is_empty() {
            "/".to_string()
        } else {
            self.config.working_dir.clone()
        }
    }

    fn shell(&self) -> Vec<String> {
        self.config
            .shell
            .clone()
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
    }
}

struct Ctx<'g, 'a> {
    g: &'g Globals<'a>,
    line: u32,
    keyword: &'static str,
}

impl Ctx<'_, '_> {
    fn expand_with(
        &self,
        lexer: Lexer,
        word: &str,
        env: &[(String, String)],
    ) -> Result<String, PlanError> {
        lexer
            .word(word, env)
            .map_err(|source| self.lex_err(word, source))
    }
    fn expand(&self, word: &str, env: &[(String, String)]) -> Result<String, PlanError> {
        self.expand_with(self.g.lexer, word, env)
    }
    fn lex_err(&self, word: &str, source: LexError) -> PlanError {
        PlanError::Expand {
            line: self.line,
            instruction: self.keyword.into(),
            word: word.to_string(),
            source,
        }
    }
    fn invalid(&self, message: impl Into<String>) -> PlanError {
        PlanError::Invalid {
            line: self.line,
            instruction: self.keyword.into(),
            message: message.into(),
        }
    }
    fn opt(
        &self,
        v: Option<&String>,
        env: &[(String, String)],
    ) -> Result<Option<String>, PlanError> {
        v.map(|w| self.expand(w, env)).transpose()
    }
}

fn keyword(kind: &Kind) -> &'static str {
    match kind {
        Kind::From { .. } => "FROM",
        Kind::Run { .. } => "RUN",
        Kind::Cmd { .. } => "CMD",
        Kind::Entrypoint { .. } => "ENTRYPOINT",
        Kind::Shell { .. } => "SHELL",
        Kind::Env { .. } => "ENV",
        Kind::Arg { .. } => "ARG",
        Kind::Label { .. } => "LABEL",
        Kind::Expose { .. } => "EXPOSE",
        Kind::Copy { .. } => "COPY",
        Kind::Add { .. } => "ADD",
        Kind::Workdir { .. } => "WORKDIR",
        Kind::User { .. } => "USER",
        Kind::Volume { .. } => "VOLUME",
        Kind::Stopsignal { .. } => "STOPSIGNAL",
        Kind::Healthcheck { .. } => "HEALTHCHECK",
        Kind::Onbuild { .. } => "ONBUILD",
        Kind::Maintainer { .. } => "MAINTAINER",
    }
}

/// BuildKit's `created_by` of HEALTHCHECK: Go's `fmt.Sprintf("HEALTHCHECK %q", config)` of
/// the `*HealthConfig`, as Docker 20.10's BuildKit writes it (`&{["CMD" "true"] "5s" "0s" "0s"
/// '\x03'}`); `StartInterval` (a later field) only appears when it is set.
fn healthcheck_history(h: &Healthcheck) -> String {
    let d = |v: Option<u64>| go_quote(&go_duration(v.unwrap_or(0)));
    let test: Vec<String> = h.test.iter().map(|t| go_quote(t)).collect();
    let start_interval = match h.start_interval {
        Some(_) => format!(" {}", d(h.start_interval)),
        None => String::new(),
    };
    format!(
        "HEALTHCHECK &{{[{}] {} {} {}{start_interval} {}}}",
        test.join(" "),
        d(h.interval),
        d(h.timeout),
        d(h.start_period),
        go_quote_rune(h.retries.unwrap_or(0))
    )
}

fn config_step(set: ConfigDelta, created_by: String) -> (Op, String, bool, Value) {
    let definition = json!({"op": "config", "set": set});
    (Op::Config(ConfigStep { set }), created_by, true, definition)
}

/// The form BuildKit gives `cmd`: its parser reads the JSON form with a streaming decoder, so
/// text after a complete JSON array of strings is ignored (`CMD ["a"] extra` is `["a"]`,
/// checked with Docker 20.10), where remfile-parse keeps such a line as the shell form.
pub(crate) fn effective_command(cmd: &Command) -> std::borrow::Cow<'_, Command> {
    if let Command::Shell(s) = cmd {
        let t = s.trim_start();
        if t.starts_with('[')
            && let Some(Ok(values)) = serde_json::Deserializer::from_str(t)
                .into_iter::<Vec<Value>>()
                .next()
            && let Some(argv) = values
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
        {
            return std::borrow::Cow::Owned(Command::Exec(argv));
        }
    }
    std::borrow::Cow::Borrowed(cmd)
}

/// `argv` of a shell-or-exec command: the shell form is wrapped with the SHELL in effect.
fn command_argv(cmd: &Command, state: &StageState) -> (Vec<String>, bool) {
    match &*effective_command(cmd) {
        Command::Exec(v) => (v.clone(), false),
        Command::Shell(s) => {
            let mut argv = state.shell();
            argv.push(s.clone());
            (argv, true)
        }
    }
}

/// `<<EOF`, `<<-EOF`, `<<'EOF'`, `<<"EOF"` and nothing else (BuildKit's single-heredoc RUN).
fn is_bare_heredoc(s: &str) -> bool {
    let t = s.trim();
    let t = t.trim_start_matches(|c: char| c.is_ascii_digit());
    let Some(rest) = t.strip_prefix("<<") else {
        return false;
    };
    let rest = rest.strip_prefix('-').unwrap_or(rest);
    let word = match rest.chars().next() {
        Some(q @ ('\'' | '"')) => match rest.get(1..).and_then(|r| r.strip_suffix(q)) {
            Some(w) => w,
            None => return false,
        },
        _ => rest,
    };
    !word.is_empty() && word.chars().all(|c| c.is_alphanumeric() || c == '_')
}

/// Plans one instruction.
pub(crate) fn dispatch(
    g: &Globals,
    st: &RawStage,
    state: &mut StageState,
    ins: &Instruction,
    images: &mut BTreeSet<String>,
) -> Result<Step, PlanError> {
    let cx = Ctx {
        g,
        line: ins.span.line,
        keyword: keyword(&ins.kind),
    };
    let env = state.env.clone();
    let (op, created_by, empty_layer, definition) = match &ins.kind {
        Kind::From { .. } => return Err(cx.invalid("FROM cannot be planned as a step")),
        Kind::Env { pairs, .. } => {
            // every pair sees the env from before the instruction
            let mut set = ConfigDelta::default();
            let mut done = Vec::new();
            for kv in pairs {
                let k = cx.expand(&kv.key, &env)?;
                let v = cx.expand(&kv.value, &env)?;
                if k.is_empty() {
                    return Err(cx.invalid("ENV names can not be blank"));
                }
                done.push((k, v));
            }
            for (k, v) in &done {
                set_var(&mut state.env, k, v.clone());
                state.config.env_set(k, v);
                set.env.push(format!("{k}={v}"));
            }
            let cb = format!("ENV {}", set.env.join(" "));
            config_step(set, cb)
        }
        Kind::Arg { args } => {
            let mut set = ConfigDelta::default();
            // BuildKit expands every name and default of the instruction first, with the
            // environment before it (`ARG A=1 B=$A` leaves B without A's new value), and its
            // history shows the ARG as declared (default expanded), never the --build-arg or
            // global value it takes
            let mut pairs = Vec::with_capacity(args.len());
            for a in args {
                let name = cx.expand(&a.name, &state.env)?;
                if name.is_empty() {
                    return Err(cx.invalid("ARG names can not be blank"));
                }
                let default = match &a.default {
                    Some(d) => Some(cx.expand(d, &state.env)?),
                    None => None,
                };
                pairs.push((name, default));
            }
            let mut declared = Vec::new();
            for (name, default) in pairs {
                let has_value = g.build_args.get(&name);
                let mut value: Option<String> = None;
                if default.is_none() && has_value.is_none() {
                    value = crate::lex::Env::lookup(g.global_args.as_slice(), &name)
                        .map(str::to_string);
                }
                if let Some(v) = has_value {
                    value = Some(v.clone());
                }
                if let Some(d) = default {
                    declared.push(format!("{name}={d}"));
                    if has_value.is_none() {
                        value = Some(d);
                    }
                } else {
                    declared.push(name.clone());
                }
                if let Some(v) = &value {
                    set_var(&mut state.env, &name, v.clone());
                }
                state.declared.insert(name.clone());
                set.args.push(match &value {
                    Some(v) => format!("{name}={v}"),
                    None => name.clone(),
                });
                state.args.push((name, value));
            }
            let cb = format!("ARG {}", declared.join(" "));
            config_step(set, cb)
        }
        Kind::Label { pairs, .. } => {
            let mut set = ConfigDelta::default();
            let mut parts = Vec::new();
            for kv in pairs {
                let k = cx.expand(&kv.key, &env)?;
                let v = cx.expand(&kv.value, &env)?;
                if k.is_empty() {
                    return Err(cx.invalid("LABEL names can not be blank"));
                }
                parts.push(format!("{k}={v}"));
                state.config.labels.insert(k.clone(), v.clone());
                set.labels.insert(k, v);
            }
            config_step(set, format!("LABEL {}", parts.join(" ")))
        }
        Kind::Cmd { command } => {
            let (argv, _) = command_argv(command, state);
            state.config.cmd = Some(argv.clone());
            state.config.args_escaped = true;
            state.cmd_set = true;
            let cb = format!("CMD {}", go_quote_list(&argv));
            config_step(
                ConfigDelta {
                    cmd: Some(argv),
                    ..ConfigDelta::default()
                },
                cb,
            )
        }
        Kind::Entrypoint { command } => {
            let (argv, _) = command_argv(command, state);
            state.config.entrypoint = Some(argv.clone());
            let clear_cmd = !state.cmd_set;
            if clear_cmd {
                state.config.cmd = None;
            }
            let cb = format!("ENTRYPOINT {}", go_quote_list(&argv));
            config_step(
                ConfigDelta {
                    entrypoint: Some(argv),
                    clear_cmd,
                    ..ConfigDelta::default()
                },
                cb,
            )
        }
        Kind::Shell { shell } => {
            if shell.is_empty() {
                return Err(cx.invalid("SHELL requires at least one argument"));
            }
            state.config.shell = Some(shell.clone());
            let cb = format!("SHELL [{}]", shell.join(" "));
            config_step(
                ConfigDelta {
                    shell: Some(shell.clone()),
                    ..ConfigDelta::default()
                },
                cb,
            )
        }
        Kind::User { user } => {
            let u = cx.expand(user, &env)?;
            state.config.user.clone_from(&u);
            let cb = format!("USER {u}");
            config_step(
                ConfigDelta {
                    user: Some(u),
                    ..ConfigDelta::default()
                },
                cb,
            )
        }
        Kind::Expose { ports } => {
            let mut added = Vec::new();
            for p in ports {
                let words = g.lexer.words(p, &env).map_err(|e| cx.lex_err(p, e))?;
                for w in words {
                    for spec in parse_ports(&w).map_err(|m| cx.invalid(m))? {
                        if !added.contains(&spec) {
                            added.push(spec);
                        }
                    }
                }
            }
            added.sort();
            for p in &added {
                if !state.config.exposed_ports.contains(p) {
                    state.config.exposed_ports.push(p.clone());
                }
            }
            state.config.exposed_ports.sort();
            let cb = format!(
                "EXPOSE map[{}]",
                added
                    .iter()
                    .map(|p| format!("{p}:{{}}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            config_step(
                ConfigDelta {
                    exposed_ports: added,
                    ..ConfigDelta::default()
                },
                cb,
            )
        }
        Kind::Volume { paths, .. } => {
            let mut vols = Vec::new();
            for p in paths {
                let v = cx.expand(p, &env)?;
                if v.is_empty() {
                    return Err(cx.invalid("VOLUME specified can not be an empty string"));
                }
                vols.push(v);
            }
            for v in &vols {
                if !state.config.volumes.contains(v) {
                    state.config.volumes.push(v.clone());
                }
            }
            state.config.volumes.sort();
            let cb = format!("VOLUME [{}]", vols.join(" "));
            config_step(
                ConfigDelta {
                    volumes: vols,
                    ..ConfigDelta::default()
                },
                cb,
            )
        }
        Kind::Stopsignal { signal } => {
            let s = cx.expand(signal, &env)?;
            if !valid_signal(&s) {
                return Err(cx.invalid(format!("invalid signal: {s}")));
            }
            state.config.stop_signal = Some(s.clone());
            let cb = format!("STOPSIGNAL {s}");
            config_step(
                ConfigDelta {
                    stop_signal: Some(s),
                    ..ConfigDelta::default()
                },
                cb,
            )
        }
        Kind::Healthcheck { health } => {
            let h = match health {
                Health::None => Healthcheck {
                    test: vec!["NONE".into()],
                    ..Healthcheck::default()
                },
                Health::Cmd {
                    interval,
                    timeout,
                    start_period,
                    start_interval,
                    retries,
                    command,
                } => {
                    let test = match &*effective_command(command) {
                        Command::Exec(v) => {
                            let mut t = vec!["CMD".to_string()];
                            t.extend(v.iter().cloned());
                            t
                        }
                        Command::Shell(s) => vec!["CMD-SHELL".into(), s.clone()],
                    };
                    Healthcheck {
                        test,
                        interval: interval.filter(|d| *d != 0),
                        timeout: timeout.filter(|d| *d != 0),
                        start_period: start_period.filter(|d| *d != 0),
                        start_interval: start_interval.filter(|d| *d != 0),
                        retries: retries.filter(|r| *r != 0),
                    }
                }
            };
            state.config.healthcheck = Some(h.clone());
            let cb = healthcheck_history(&h);
            config_step(
                ConfigDelta {
                    healthcheck: Some(h),
                    ..ConfigDelta::default()
                },
                cb,
            )
        }
        Kind::Onbuild { trigger, .. } => {
            state.config.on_build.push(trigger.clone());
            // BuildKit writes no history entry for ONBUILD
            config_step(
                ConfigDelta {
                    on_build: Some(trigger.clone()),
                    ..ConfigDelta::default()
                },
                String::new(),
            )
        }
        Kind::Maintainer { name } => {
            state.config.author = Some(name.clone());
            config_step(
                ConfigDelta {
                    author: Some(name.clone()),
                    ..ConfigDelta::default()
                },
                format!("MAINTAINER {name}"),
            )
        }
        Kind::Workdir { path } => {
            let p = cx.expand(path, &env)?;
            // BuildKit keeps an absolute path as written (`/app/` stays `/app/` in the config
            // and history) and joins a relative one to the previous WORKDIR, cleaned
            let written = if p.starts_with('/') {
                p.clone()
            } else {
                clean_path(&format!("{}/{p}", state.workdir()))
            };
            let wd = clean_path(&written);
            state.config.working_dir.clone_from(&written);
            let mkdir = wd != "/";
            let user = state.config.user.clone();
            let definition = json!({"op": "workdir", "path": wd, "user": user, "mkdir": mkdir});
            (
                Op::Workdir(WorkdirStep {
                    path: wd.clone(),
                    user,
                    mkdir,
                }),
                format!("WORKDIR {written}"),
                !mkdir,
                definition,
            )
        }
        Kind::Run {
            command,
            heredocs,
            mounts,
            network,
            security,
        } => run_step(
            &cx, st, state, command, heredocs, mounts, *network, *security, images,
        )?,
        Kind::Copy {
            sources,
            dest,
            flags,
            heredocs,
            ..
        } => {
            let from = match flags.from.as_deref() {
                Some(f) if !f.is_empty() => Some(resolve_stage_from(&cx, f, images)?),
                _ => None,
            };
            let dest_written = cx.expand(dest, &env)?;
            let step = CopyStep {
                sources: copy_sources(&cx, sources, heredocs, &env)?,
                dest: resolve_dest(&state.workdir(), &dest_written),
                from,
                chown: cx.opt(flags.chown.as_ref(), &env)?,
                // an empty --chmod is none, as BuildKit's `if chmod != ""`
                chmod: cx
                    .opt(flags.chmod.as_ref(), &env)?
                    .filter(|m| !m.is_empty()),
                link: flags.link,
                parents: flags.parents,
                exclude: flags
                    .exclude
                    .iter()
                    .map(|e| cx.expand(e, &env))
                    .collect::<Result<_, _>>()?,
                checksum: None,
                keep_git_dir: false,
                unpack: None,
                workdir: state.workdir(),
            };
            copy_result("copy", step, &dest_written)
        }
        Kind::Add {
            sources,
            dest,
            flags,
            heredocs,
            ..
        } => {
            let dest_written = cx.expand(dest, &env)?;
            let step = CopyStep {
                sources: copy_sources(&cx, sources, heredocs, &env)?,
                dest: resolve_dest(&state.workdir(), &dest_written),
                from: None,
                chown: cx.opt(flags.chown.as_ref(), &env)?,
                // an empty --chmod is none, as BuildKit's `if chmod != ""`
                chmod: cx
                    .opt(flags.chmod.as_ref(), &env)?
                    .filter(|m| !m.is_empty()),
                link: flags.link,
                parents: false,
                exclude: flags
                    .exclude
                    .iter()
                    .map(|e| cx.expand(e, &env))
                    .collect::<Result<_, _>>()?,
                checksum: cx.opt(flags.checksum.as_ref(), &env)?,
                keep_git_dir: flags.keep_git_dir,
                unpack: flags.unpack,
                workdir: state.workdir(),
            };
            copy_result("add", step, &dest_written)
        }
    };
    Ok(Step {
        line: ins.span.line,
        instruction: ins.original.lines().next().unwrap_or_default().to_string(),
        created_by,
        empty_layer,
        onbuild: false,
        op,
        definition,
    })
}

fn go_quote_list(v: &[String]) -> String {
    format!(
        "[{}]",
        v.iter().map(|s| go_quote(s)).collect::<Vec<_>>().join(" ")
    )
}

fn resolve_stage_from(
    cx: &Ctx,
    value: &str,
    images: &mut BTreeSet<String>,
) -> Result<FromRef, PlanError> {
    let names: Vec<(String, usize)> =
        cx.g.stages
            .iter()
            .filter_map(|s| s.name.clone().map(|n| (n, s.index)))
            .collect();
    let f = resolve_from(value, cx.line, cx.g.lexer, &names, cx.g.stages.len())?;
    if let FromRef::Image(i) = &f {
        images.insert(i.clone());
    }
    Ok(f)
}

fn copy_sources(
    cx: &Ctx,
    sources: &[remfile_parse::Source],
    heredocs: &[remfile_parse::Heredoc],
    env: &[(String, String)],
) -> Result<Vec<CopySource>, PlanError> {
    let mut out = Vec::with_capacity(sources.len());
    for s in sources {
        match s {
            remfile_parse::Source::Path(p) => out.push(CopySource::Path(cx.expand(p, env)?)),
            remfile_parse::Source::Heredoc(name) => {
                let Some(h) = heredocs.iter().find(|h| &h.name == name) else {
                    return Err(cx.invalid(format!("heredoc {name:?} has no body")));
                };
                let data = if h.expand {
                    cx.expand_with(Lexer::heredoc(), &h.body, env)?
                } else {
                    h.body.clone()
                };
                out.push(CopySource::Heredoc(InlineFile {
                    path: h.name.clone(),
                    data,
                    mode: 0o644,
                }));
            }
        }
    }
    Ok(out)
}

fn copy_result(op: &str, step: CopyStep, dest_written: &str) -> (Op, String, bool, Value) {
    let mut parts = vec![op.to_ascii_uppercase()];
    for s in &step.sources {
        if let CopySource::Path(p) = s {
            parts.push(p.clone());
        }
    }
    for s in &step.sources {
        if let CopySource::Heredoc(f) = s {
            parts.push(format!("<<{}", f.path));
        }
    }
    parts.push(dest_written.to_string());
    let created_by = format!("{} # buildkit", parts.join(" "));
    let mut definition = serde_json::to_value(&step).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut definition {
        m.insert("op".into(), json!(op));
        // the destination is absolute already; the workdir adds nothing to the content
        m.remove("workdir");
    }
    let op = if op == "add" {
        Op::Add(step)
    } else {
        Op::Copy(step)
    };
    (op, created_by, false, definition)
}

#[allow(clippy::too_many_arguments)]
fn run_step(
    cx: &Ctx,
    _st: &RawStage,
    state: &StageState,
    command: &Command,
    heredocs: &[remfile_parse::Heredoc],
    mounts: &[Mount],
    network: Option<Network>,
    security: Option<Security>,
    images: &mut BTreeSet<String>,
) -> Result<(Op, String, bool, Value), PlanError> {
    let env = &state.env;
    let workdir = state.workdir();
    let mut files = Vec::new();
    let (argv, shell_form) = match &*effective_command(command) {
        Command::Exec(v) => (v.clone(), false),
        Command::Shell(s) => {
            let arg = match heredocs {
                [] => s.clone(),
                [h] if is_bare_heredoc(s) => {
                    if h.body.starts_with("#!") {
                        let path = format!("/dev/pipes/{}", h.name);
                        files.push(InlineFile {
                            path: path.clone(),
                            data: h.body.clone(),
                            mode: 0o755,
                        });
                        path
                    } else {
                        h.body.clone()
                    }
                }
                many => {
                    // the shell handles the heredocs itself
                    let mut full = s.clone();
                    for h in many {
                        full.push('\n');
                        full.push_str(&h.body);
                        full.push_str(&h.name);
                    }
                    full
                }
            };
            let mut argv = state.shell();
            argv.push(arg);
            (argv, true)
        }
    };
    let mut run_mounts = Vec::new();
    let mut ssh_n = 0;
    for m in mounts {
        run_mounts.push(run_mount(cx, m, env, &workdir, &mut ssh_n, images)?);
    }
    let env_list: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    // BuildKit's proxy env: a proxy build arg (any case) sets both spellings for every RUN,
    // declared or not; a spelling the env already has (a declared ARG, an ENV) is kept
    let in_env = |name: &str| env.iter().any(|(k, _)| k == name);
    let mut proxy_env = Vec::new();
    for p in crate::planner::PROXY_ARGS {
        if let Some((_, v)) = cx.g.proxy.iter().find(|(k, _)| k.eq_ignore_ascii_case(p)) {
            for name in [p.to_string(), p.to_ascii_lowercase()] {
                if !in_env(&name) {
                    proxy_env.push(format!("{name}={v}"));
                }
            }
        }
    }
    debug_assert!(
        proxy_env
            .iter()
            .all(|e| is_proxy_arg(e.split('=').next().unwrap_or("")))
    );
    let network = match network {
        None | Some(Network::Default) => "default",
        Some(Network::None) => "none",
        Some(Network::Host) => "host",
    }
    .to_string();
    let security = match security {
        None | Some(Security::Sandbox) => "sandbox",
        Some(Security::Insecure) => "insecure",
    }
    .to_string();
    // history: "RUN |N K=V ... argv # buildkit" with one entry per ARG declaration of the
    // stage (BuildKit appends: an ARG declared twice is listed twice), each with its current
    // value
    let mut arg_env: Vec<(String, String)> = Vec::new();
    for (k, v) in &state.args {
        let val = crate::lex::Env::lookup(env.as_slice(), k)
            .map(str::to_string)
            .or_else(|| v.clone())
            .unwrap_or_default();
        arg_env.push((k.clone(), val));
    }
    let mut hist: Vec<String> = Vec::new();
    if !arg_env.is_empty() {
        hist.push(format!("|{}", arg_env.len()));
        hist.extend(arg_env.iter().map(|(k, v)| format!("{k}={v}")));
    }
    hist.extend(argv.iter().cloned());
    let created_by = format!("RUN {} # buildkit", hist.join(" "));
    let step = RunStep {
        argv,
        env: env_list,
        proxy_env,
        workdir,
        user: state.config.user.clone(),
        shell: state.shell(),
        shell_form,
        network,
        security,
        mounts: run_mounts,
        heredocs: files,
        hostname: cx
            .g
            .build_args
            .get("BUILDKIT_SANDBOX_HOSTNAME")
            .filter(|h| !h.is_empty())
            .cloned()
            .unwrap_or_else(|| crate::types::DEFAULT_HOSTNAME.to_string()),
    };
    let mut sorted_env = step.env.clone();
    sorted_env.sort();
    let definition = json!({
        "op": "run",
        "argv": step.argv,
        "env": sorted_env,
        "workdir": step.workdir,
        "user": step.user,
        "shell": step.shell,
        "network": step.network,
        "security": step.security,
        "mounts": step.mounts,
        "heredocs": step.heredocs,
    });
    let mut definition = definition;
    if step.hostname != crate::types::DEFAULT_HOSTNAME {
        definition["hostname"] = json!(step.hostname);
    }
    Ok((Op::Run(step), created_by, false, definition))
}

fn abs_target(workdir: &str, t: &str) -> String {
    if t.starts_with('/') {
        clean_path(t)
    } else {
        clean_path(&format!("{workdir}/{t}"))
    }
}

fn checked_target(cx: &Ctx, workdir: &str, t: &str) -> Result<String, PlanError> {
    let abs = abs_target(workdir, t);
    if abs == "/" {
        return Err(cx.invalid(format!("invalid mount target {t:?}")));
    }
    Ok(abs)
}

fn run_mount(
    cx: &Ctx,
    m: &Mount,
    env: &[(String, String)],
    workdir: &str,
    ssh_n: &mut usize,
    images: &mut BTreeSet<String>,
) -> Result<RunMount, PlanError> {
    let ex = |v: &String| cx.expand(v, env);
    let exo = |v: &Option<String>| v.as_ref().map(ex).transpose();
    let num =
        |field: &str, v: &Option<String>, radix: u32, default: u32| -> Result<u32, PlanError> {
            match exo(v)? {
                None => Ok(default),
                // Go's ParseUint: digits of the radix only
                Some(s) => (!s.is_empty() && s.chars().all(|c| c.is_digit(radix)))
                    .then(|| u32::from_str_radix(&s, radix).ok())
                    .flatten()
                    .ok_or_else(|| cx.invalid(format!("invalid --mount {field}={s:?}"))),
            }
        };
    let from =
        |f: &Option<String>, images: &mut BTreeSet<String>| -> Result<Option<FromRef>, PlanError> {
            f.as_deref()
                .filter(|v| !v.is_empty())
                .map(|v| resolve_stage_from(cx, v, images))
                .transpose()
        };
    Ok(match m {
        Mount::Bind {
            target,
            source,
            from: f,
            readonly,
        } => RunMount::Bind {
            target: checked_target(cx, workdir, &ex(target)?)?,
            source: clean_path(&format!("/{}", exo(source)?.unwrap_or_default())),
            from: from(f, images)?,
            readonly: *readonly,
        },
        Mount::Cache {
            target,
            id,
            sharing,
            from: f,
            source,
            readonly,
            mode,
            uid,
            gid,
        } => {
            let written = ex(target)?;
            RunMount::Cache {
                // BuildKit's default id is the target as written
                id: exo(id)?
                    .filter(|i| !i.is_empty())
                    .unwrap_or_else(|| written.clone()),
                target: checked_target(cx, workdir, &written)?,
                sharing: match sharing {
                    Sharing::Shared => "shared",
                    Sharing::Private => "private",
                    Sharing::Locked => "locked",
                }
                .into(),
                from: from(f, images)?,
                source: exo(source)?,
                readonly: *readonly,
                mode: num("mode", mode, 8, 0o755)?,
                uid: num("uid", uid, 10, 0)?,
                gid: num("gid", gid, 10, 0)?,
            }
        }
        Mount::Tmpfs {
            target,
            size,
            readonly,
        } => RunMount::Tmpfs {
            target: checked_target(cx, workdir, &ex(target)?)?,
            size: match exo(size)? {
                None => None,
                Some(s) => Some(
                    parse_size(&s)
                        .ok_or_else(|| cx.invalid(format!("invalid --mount size={s:?}")))?,
                ),
            },
            readonly: *readonly,
        },
        Mount::Secret {
            id,
            target,
            env: var,
            required,
            mode,
            uid,
            gid,
        } => {
            let target = exo(target)?.map(|t| abs_target(workdir, &t));
            let var = exo(var)?;
            let id = match (exo(id)?.filter(|i| !i.is_empty()), &target) {
                (Some(i), _) => i,
                (None, Some(t)) => t.rsplit('/').next().unwrap_or_default().to_string(),
                (None, None) => match &var {
                    Some(v) => v.clone(),
                    None => return Err(cx.invalid("secret mount needs an id, a target or an env")),
                },
            };
            let target = match (target, &var) {
                (Some(t), _) => Some(t),
                (None, Some(_)) => None,
                (None, None) => Some(format!("/run/secrets/{id}")),
            };
            RunMount::Secret {
                id,
                target,
                env: var,
                required: *required,
                mode: num("mode", mode, 8, 0o400)?,
                uid: num("uid", uid, 10, 0)?,
                gid: num("gid", gid, 10, 0)?,
            }
        }
        Mount::Ssh {
            id,
            target,
            required,
            mode,
            uid,
            gid,
        } => {
            let n = *ssh_n;
            *ssh_n += 1;
            RunMount::Ssh {
                id: exo(id)?
                    .filter(|i| !i.is_empty())
                    .unwrap_or_else(|| "default".into()),
                target: exo(target)?.map_or_else(
                    || format!("/run/buildkit/ssh_agent.{n}"),
                    |t| abs_target(workdir, &t),
                ),
                required: *required,
                mode: num("mode", mode, 8, 0o600)?,
                uid: num("uid", uid, 10, 0)?,
                gid: num("gid", gid, 10, 0)?,
            }
        }
    })
}
