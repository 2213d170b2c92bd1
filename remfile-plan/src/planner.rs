//! The driver: global ARGs, stages and their graph, target pruning, then each stage's steps.

use std::collections::{BTreeMap, BTreeSet};

use remfile_parse::{Instruction, Kind, Remfile};

use crate::config::ImageConfig;
use crate::dispatch::{StageState, dispatch};
use crate::error::PlanError;
use crate::lex::Lexer;
use crate::options::{BaseResolver, PlanOptions, valid_arg_name};
use crate::platform::Platform;
use crate::reference;
use crate::types::{Base, FromRef, PLAN_VERSION, Plan, Stage, Warning};

/// Build args that are always allowed without ARG and never reported as unused.
pub(crate) const PROXY_ARGS: [&str; 5] = [
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "FTP_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
];

/// Whether `name` is a proxy arg (any case).
pub(crate) fn is_proxy_arg(name: &str) -> bool {
    PROXY_ARGS.iter().any(|p| p.eq_ignore_ascii_case(name))
}

/// Everything the dispatcher needs from the whole plan.
pub(crate) struct Globals<'a> {
    pub lexer: Lexer,
    pub build_args: BTreeMap<String, String>,
    /// Predefined args and pre-FROM ARGs (with build-arg overrides).
    pub global_args: Vec<(String, String)>,
    /// Proxy build args (name as given, value).
    pub proxy: Vec<(String, String)>,
    pub stages: &'a [RawStage<'a>],
}

/// A stage before dispatch.
pub(crate) struct RawStage<'a> {
    pub index: usize,
    pub name: Option<String>,
    pub line: u32,
    pub base: Base,
    pub platform: Platform,
    pub instructions: Vec<&'a Instruction>,
    /// Dependencies from COPY --from / RUN --mount from= (stage index, line).
    pub deps: Vec<(usize, u32)>,
}

/// Resolves a `--from` value: a stage index, a stage name, or an external image.
pub(crate) fn resolve_from(
    value: &str,
    line: u32,
    lexer: Lexer,
    names: &[(String, usize)],
    nstages: usize,
) -> Result<FromRef, PlanError> {
    let empty: Vec<(String, String)> = Vec::new();
    let expanded = lexer
        .word(value, &empty)
        .map_err(|_| PlanError::FromVariable { line })?;
    if expanded != value {
        return Err(PlanError::FromVariable { line });
    }
    // an index as Go's strconv.Atoi reads it (`00`, `+0` and `-0` are stage 0)
    let digits = value.strip_prefix(['+', '-']).unwrap_or(value);
    if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) {
        let n = digits.parse::<usize>().ok();
        let n = if value.starts_with('-') && n != Some(0) {
            None
        } else {
            n
        };
        return match n {
            Some(i) if i < nstages => Ok(FromRef::Stage(i)),
            _ => Err(PlanError::StageIndex {
                line,
                index: value.to_string(),
            }),
        };
    }
    if let Some((_, i)) = names
        .iter()
        .rev()
        .find(|(n, _)| n.eq_ignore_ascii_case(value))
    {
        return Ok(FromRef::Stage(*i));
    }
    reference::normalize(value)
        .map(FromRef::Image)
        .map_err(|source| PlanError::Reference { line, source })
}

fn keyword(i: &Instruction) -> String {
    i.original
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase()
}

fn valid_stage_name(n: &str) -> bool {
    let mut chars = n.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

/// Plans `ast`: see the crate README for the document and the semantics.
pub fn plan(
    ast: &Remfile,
    opts: &PlanOptions,
    resolver: &dyn BaseResolver,
) -> Result<Plan, PlanError> {
    if ast.version != 1 {
        return Err(PlanError::AstVersion(ast.version));
    }
    let lexer = Lexer::new(ast.directives.escape);
    let mut build_args = BTreeMap::new();
    for (k, v) in &opts.build_args {
        if !valid_arg_name(k) {
            return Err(PlanError::BuildArg(format!("{k}={v}")));
        }
        build_args.insert(k.clone(), v.clone());
    }
    let build_platform = opts.build_platform.clone().unwrap_or_else(Platform::host);
    let target_platform = opts
        .platform
        .clone()
        .unwrap_or_else(|| build_platform.clone());

    // split: pre-FROM ARGs, then stages
    let mut meta: Vec<&Instruction> = Vec::new();
    let mut froms: Vec<(&Instruction, Vec<&Instruction>)> = Vec::new();
    for ins in &ast.instructions {
        match (&ins.kind, froms.last_mut()) {
            (Kind::From { .. }, _) => froms.push((ins, Vec::new())),
            (_, Some((_, body))) => body.push(ins),
            (Kind::Arg { .. }, None) => meta.push(ins),
            (_, None) => {
                return Err(PlanError::BeforeFrom {
                    line: ins.span.line,
                    instruction: keyword(ins),
                });
            }
        }
    }
    if froms.is_empty() {
        return Err(PlanError::NoStages);
    }

    // stage names and the target
    let mut warnings: Vec<Warning> = Vec::new();
    let mut names: Vec<(String, usize)> = Vec::new();
    for (i, (from, _)) in froms.iter().enumerate() {
        if let Kind::From {
            alias: Some(alias), ..
        } = &from.kind
        {
            let lower = alias.to_ascii_lowercase();
            if !valid_stage_name(&lower) {
                return Err(PlanError::StageName {
                    line: from.span.line,
                    name: alias.clone(),
                });
            }
            if names.iter().any(|(n, _)| *n == lower) {
                // a lint warning in BuildKit; later lookups find the last stage of the name
                warnings.push(Warning {
                    line: Some(from.span.line),
                    message: format!(
                        "duplicate stage name {lower:?}: stage names should be unique"
                    ),
                });
            }
            names.push((lower, i));
        }
    }
    let target = match &opts.target {
        None => froms.len() - 1,
        Some(t) => names
            .iter()
            .rev()
            .find(|(n, _)| n.eq_ignore_ascii_case(t))
            .map(|(_, i)| *i)
            .ok_or_else(|| PlanError::UnknownTarget(t.clone()))?,
    };
    let target_stage_name = names
        .iter()
        .find(|(_, i)| *i == target)
        .map_or_else(|| target.to_string(), |(n, _)| n.clone());

    // global scope: predefined args, then pre-FROM ARGs
    let mut global_args: Vec<(String, String)> = target_platform.args("TARGET");
    global_args.extend(build_platform.args("BUILD"));
    global_args.push(("TARGETSTAGE".into(), target_stage_name));
    let mut declared: BTreeSet<String> = BTreeSet::new();
    for ins in &meta {
        let Kind::Arg { args } = &ins.kind else {
            continue;
        };
        for a in args {
            declared.insert(a.name.clone());
            let value = if let Some(v) = build_args.get(&a.name) {
                Some(v.clone())
            } else if let Some(d) = &a.default {
                Some(
                    lexer
                        .word(d, &global_args)
                        .map_err(|source| PlanError::Expand {
                            line: ins.span.line,
                            instruction: "ARG".into(),
                            word: d.clone(),
                            source,
                        })?,
                )
            } else {
                None
            };
            match value {
                Some(v) => set_var(&mut global_args, &a.name, v),
                // a pre-FROM ARG without a value unsets the name, even a predefined one
                // (`ARG TARGETARCH` before FROM leaves it empty in FROM and in a stage that
                // declares it again; checked with Docker 20.10)
                None => global_args.retain(|(k, _)| k != &a.name),
            }
        }
    }

    // FROM lines
    let mut raw: Vec<RawStage> = Vec::with_capacity(froms.len());
    for (index, (from, body)) in froms.iter().enumerate() {
        let Kind::From {
            image,
            platform,
            alias,
        } = &from.kind
        else {
            continue;
        };
        let line = from.span.line;
        let expand_err = |word: &str| {
            let word = word.to_string();
            move |source| PlanError::Expand {
                line,
                instruction: "FROM".into(),
                word,
                source,
            }
        };
        let name = lexer.word(image, &global_args).map_err(expand_err(image))?;
        if name.is_empty() {
            return Err(PlanError::EmptyBase {
                line,
                expr: image.clone(),
            });
        }
        let inherited = names
            .iter()
            .rev()
            .find(|(n, i)| *i < index && n.eq_ignore_ascii_case(&name))
            .and_then(|(_, i)| raw.get(*i))
            .map(|s: &RawStage| s.platform.clone());
        let stage_platform = match platform {
            // a stage built FROM another stage has that stage's platform
            _ if inherited.is_some() => inherited.unwrap_or_else(|| target_platform.clone()),
            None => target_platform.clone(),
            Some(p) => {
                let v = lexer.word(p, &global_args).map_err(expand_err(p))?;
                let parsed =
                    Platform::parse(&v).map_err(|source| PlanError::Platform { line, source })?;
                // BuildKit makes `FROM --platform=X scratch` an empty image of the target
                // platform (checked with Docker 20.10: the config says the target's arch)
                if name == "scratch" {
                    target_platform.clone()
                } else {
                    parsed
                }
            }
        };
        let base = if name == "scratch" {
            Base::Scratch { scratch: true }
        } else if let Some((_, i)) = names
            .iter()
            .rev()
            .find(|(n, i)| *i < index && n.eq_ignore_ascii_case(&name))
        {
            Base::Stage { stage: *i }
        } else {
            Base::Image {
                image: reference::normalize(&name)
                    .map_err(|source| PlanError::Reference { line, source })?,
                original: name.clone(),
            }
        };
        raw.push(RawStage {
            index,
            name: alias.as_ref().map(|a| a.to_ascii_lowercase()),
            line,
            base,
            platform: stage_platform,
            instructions: body.clone(),
            deps: Vec::new(),
        });
    }

    // dependencies of COPY --from and RUN --mount from=
    let nstages = raw.len();
    for st in &mut raw {
        let mut deps = Vec::new();
        for ins in &st.instructions {
            for (value, line) in from_values(ins) {
                if let FromRef::Stage(i) = resolve_from(value, line, lexer, &names, nstages)? {
                    deps.push((i, line));
                }
            }
        }
        st.deps = deps;
    }

    // base configs and ONBUILD triggers of the reachable stages, to a fixed point
    let mut base_configs: BTreeMap<usize, Option<ImageConfig>> = BTreeMap::new();
    let mut triggers: BTreeMap<usize, Vec<Instruction>> = BTreeMap::new();
    let mut trigger_deps: BTreeMap<usize, Vec<(usize, u32)>> = BTreeMap::new();
    let reachable = loop {
        check_cycles(&raw, &trigger_deps)?;
        let reach = reachable_from(target, &raw, &trigger_deps);
        let mut changed = false;
        for &i in &reach {
            if triggers.contains_key(&i) {
                continue;
            }
            let st = &raw[i];
            let (cfg, trig) = base_and_triggers(st, &raw, resolver)?;
            let mut tdeps = Vec::new();
            for t in &trig {
                for (value, _) in from_values(t) {
                    if let FromRef::Stage(d) = resolve_from(value, st.line, lexer, &names, nstages)?
                    {
                        tdeps.push((d, st.line));
                    }
                }
            }
            if !tdeps.is_empty() {
                changed = true;
            }
            trigger_deps.insert(i, tdeps);
            base_configs.insert(i, cfg);
            triggers.insert(i, trig);
        }
        if !changed {
            break reach;
        }
    };

    let proxy: Vec<(String, String)> = build_args
        .iter()
        .filter(|(k, _)| is_proxy_arg(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let globals = Globals {
        lexer,
        build_args: build_args.clone(),
        global_args,
        proxy,
        stages: &raw,
    };

    // dispatch every reachable stage in index order (a base stage always comes first)
    let mut finals: BTreeMap<usize, StageState> = BTreeMap::new();
    let mut planned: BTreeMap<usize, Stage> = BTreeMap::new();
    let mut images: BTreeSet<String> = BTreeSet::new();
    for &i in &reachable {
        let st = &raw[i];
        let mut state = match &st.base {
            Base::Stage { stage } => match finals.get(stage) {
                Some(parent) => StageState::from_stage(parent),
                None => StageState::from_config(ImageConfig::default()),
            },
            // BuildKit's empty image: WorkingDir "/" (PATH comes with finish_base)
            Base::Scratch { .. } => StageState::from_config(ImageConfig {
                working_dir: "/".into(),
                ..ImageConfig::default()
            }),
            Base::Image { image, .. } => {
                images.insert(image.clone());
                if let Some(mut cfg) = base_configs.get(&i).cloned().flatten() {
                    // the triggers run now (see `triggers`) and are not inherited
                    cfg.on_build.clear();
                    StageState::from_config(cfg)
                } else {
                    warnings.push(Warning {
                        line: Some(st.line),
                        message: format!(
                            "the config of base image {image} was not provided: \
                             planning with an empty config (no Env, Cmd, WorkingDir, ...)"
                        ),
                    });
                    state_unknown()
                }
            }
        };
        state.finish_base();
        let mut steps = Vec::new();
        for t in triggers.get(&i).map(Vec::as_slice).unwrap_or_default() {
            let mut step = dispatch(&globals, st, &mut state, t, &mut images)?;
            step.line = st.line;
            step.onbuild = true;
            steps.push(step);
        }
        for ins in &st.instructions {
            steps.push(dispatch(&globals, st, &mut state, ins, &mut images)?);
        }
        declared.extend(state.declared.iter().cloned());
        let mut depends_on: BTreeSet<usize> = st.deps.iter().map(|(d, _)| *d).collect();
        depends_on.extend(trigger_deps.get(&i).into_iter().flatten().map(|(d, _)| *d));
        if let Base::Stage { stage } = st.base {
            depends_on.insert(stage);
        }
        planned.insert(
            i,
            Stage {
                index: i,
                name: st.name.clone(),
                line: st.line,
                base: st.base.clone(),
                platform: st.platform.to_string(),
                depends_on: depends_on.into_iter().collect(),
                base_config_known: !state.base_unknown,
                steps,
                config: state.config.clone(),
            },
        );
        finals.insert(i, state);
    }

    // unused build args
    let unused: Vec<&str> = build_args
        .keys()
        .filter(|k| !declared.contains(*k) && !is_proxy_arg(k) && !is_predefined(k))
        .map(String::as_str)
        .collect();
    if !unused.is_empty() {
        warnings.push(Warning {
            line: None,
            message: format!(
                "one or more build-args [{}] were not consumed",
                unused.join(" ")
            ),
        });
    }

    Ok(Plan {
        version: PLAN_VERSION,
        platform: target_platform.to_string(),
        build_platform: build_platform.to_string(),
        target,
        images: images.into_iter().collect(),
        warnings,
        stages: topo_order(planned),
    })
}

fn state_unknown() -> StageState {
    let mut s = StageState::from_config(ImageConfig::default());
    s.base_unknown = true;
    s
}

fn is_predefined(k: &str) -> bool {
    matches!(
        k,
        "TARGETPLATFORM"
            | "TARGETOS"
            | "TARGETARCH"
            | "TARGETVARIANT"
            | "BUILDPLATFORM"
            | "BUILDOS"
            | "BUILDARCH"
            | "BUILDVARIANT"
            | "TARGETSTAGE"
            | "SOURCE_DATE_EPOCH"
    ) || k.starts_with("BUILDKIT_")
}

/// Sets `k` in an ordered variable list (replaced in place, else appended).
pub(crate) fn set_var(vars: &mut Vec<(String, String)>, k: &str, v: String) {
    if let Some(e) = vars.iter_mut().find(|(n, _)| n == k) {
        e.1 = v;
    } else {
        vars.push((k.to_string(), v));
    }
}

/// The raw `--from` values of COPY and of RUN mounts, with the instruction's line.
fn from_values(ins: &Instruction) -> Vec<(&str, u32)> {
    let line = ins.span.line;
    match &ins.kind {
        // an empty --from (`--from=`) is none, as BuildKit's `From != ""`
        Kind::Copy { flags, .. } => flags
            .from
            .iter()
            .filter(|f| !f.is_empty())
            .map(|f| (f.as_str(), line))
            .collect(),
        Kind::Run { mounts, .. } => mounts
            .iter()
            .filter_map(|m| match m {
                remfile_parse::Mount::Bind { from, .. }
                | remfile_parse::Mount::Cache { from, .. } => from.as_deref(),
                _ => None,
            })
            .filter(|f| !f.is_empty())
            .map(|f| (f, line))
            .collect(),
        _ => Vec::new(),
    }
}

/// The base config of an image stage (from the resolver) and the ONBUILD triggers to run:
/// the base image's `OnBuild`, or the ONBUILD instructions of the base stage.
fn base_and_triggers(
    st: &RawStage,
    raw: &[RawStage],
    resolver: &dyn BaseResolver,
) -> Result<(Option<ImageConfig>, Vec<Instruction>), PlanError> {
    match &st.base {
        Base::Scratch { .. } => Ok((None, Vec::new())),
        Base::Stage { stage } => {
            let trig = raw
                .get(*stage)
                .map(|b| {
                    b.instructions
                        .iter()
                        .filter_map(|ins| match &ins.kind {
                            Kind::Onbuild { instruction, .. } => Some((**instruction).clone()),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            Ok((None, trig))
        }
        Base::Image { image, .. } => {
            let cfg = resolver.resolve(image, &st.platform);
            let mut trig = Vec::new();
            for t in cfg.iter().flat_map(|c| c.on_build.iter()) {
                let err = |message: String| PlanError::Trigger {
                    line: st.line,
                    trigger: t.clone(),
                    message,
                };
                let parsed = remfile_parse::parse(t).map_err(|e| err(e.to_string()))?;
                let [one] = parsed.instructions.as_slice() else {
                    return Err(err("onbuild trigger should be a single expression".into()));
                };
                if matches!(
                    one.kind,
                    Kind::From { .. } | Kind::Onbuild { .. } | Kind::Maintainer { .. }
                ) {
                    return Err(err(format!(
                        "{} isn't allowed as an ONBUILD trigger",
                        keyword(one)
                    )));
                }
                trig.push(one.clone());
            }
            Ok((cfg, trig))
        }
    }
}

fn edges<'a>(
    st: &'a RawStage,
    trigger_deps: &'a BTreeMap<usize, Vec<(usize, u32)>>,
) -> impl Iterator<Item = (usize, u32)> + 'a {
    let base = match st.base {
        Base::Stage { stage } => Some((stage, st.line)),
        _ => None,
    };
    base.into_iter()
        .chain(st.deps.iter().copied())
        .chain(trigger_deps.get(&st.index).into_iter().flatten().copied())
}

fn check_cycles(
    raw: &[RawStage],
    trigger_deps: &BTreeMap<usize, Vec<(usize, u32)>>,
) -> Result<(), PlanError> {
    // 0 = new, 1 = on the stack, 2 = done; iterative DFS
    let mut color = vec![0u8; raw.len()];
    for start in 0..raw.len() {
        if color[start] != 0 {
            continue;
        }
        let mut stack: Vec<(usize, Vec<(usize, u32)>)> = Vec::new();
        color[start] = 1;
        stack.push((start, edges(&raw[start], trigger_deps).collect()));
        while let Some((node, pending)) = stack.last_mut() {
            let node = *node;
            match pending.pop() {
                None => {
                    color[node] = 2;
                    stack.pop();
                }
                Some((next, line)) => match color.get(next).copied() {
                    Some(1) => {
                        let stage = raw
                            .get(next)
                            .and_then(|s| s.name.clone())
                            .unwrap_or_else(|| next.to_string());
                        return Err(PlanError::Cycle { line, stage });
                    }
                    Some(0) => {
                        color[next] = 1;
                        stack.push((next, edges(&raw[next], trigger_deps).collect()));
                    }
                    _ => {}
                },
            }
        }
    }
    Ok(())
}

fn reachable_from(
    target: usize,
    raw: &[RawStage],
    trigger_deps: &BTreeMap<usize, Vec<(usize, u32)>>,
) -> BTreeSet<usize> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![target];
    while let Some(i) = todo.pop() {
        if i >= raw.len() || !seen.insert(i) {
            continue;
        }
        todo.extend(edges(&raw[i], trigger_deps).map(|(d, _)| d));
    }
    seen
}

/// Dependencies first; among the ready stages the lowest index first (Kahn).
fn topo_order(mut planned: BTreeMap<usize, Stage>) -> Vec<Stage> {
    let mut out = Vec::with_capacity(planned.len());
    let mut done: BTreeSet<usize> = BTreeSet::new();
    while !planned.is_empty() {
        let next = planned
            .iter()
            .find(|(_, s)| s.depends_on.iter().all(|d| done.contains(d)))
            .map(|(i, _)| *i)
            // cycles were rejected before; never stall
            .or_else(|| planned.keys().next().copied());
        let Some(i) = next else { break };
        if let Some(s) = planned.remove(&i) {
            done.insert(i);
            out.push(s);
        }
    }
    out
}
