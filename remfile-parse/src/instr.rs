//! One logical line to a typed [`Kind`]: keyword, flags and arguments per
//! instruction, with BuildKit's argument rules.

use crate::ast::{
    AddFlags, ArgDecl, Command, CopyFlags, Health, Heredoc, Instruction, KeyValue, Kind, Network,
    Security, Source, Span,
};
use crate::error::ErrorKind;
use crate::flags::{self, FlagType, Flags};
use crate::heredoc::{self, Marker};
use crate::lines::Logical;
use crate::mount;
use crate::words::{self, Json, Word, is_ascii_ws};

/// An error with the joined-line offset it points at.
pub(crate) type Located = (ErrorKind, usize);
type Res<T> = Result<T, Located>;

/// Keyword, flags and arguments of a (sub)line; offsets are absolute in the
/// logical line.
#[derive(Debug)]
pub(crate) struct Split<'t> {
    pub keyword: &'t str,
    pub keyword_off: usize,
    pub flags: Vec<Word>,
    pub args: &'t str,
    pub args_off: usize,
}

/// BuildKit `splitCommand` on `text`, which starts at offset `base`.
pub(crate) fn split_command(text: &str, base: usize) -> Split<'_> {
    let lead = text.len() - text.trim_start().len();
    let t = text.trim();
    let kw_end = t.find(is_ascii_ws).unwrap_or(t.len());
    let after_ws = t[kw_end..].len() - t[kw_end..].trim_start_matches(is_ascii_ws).len();
    let after_start = kw_end + after_ws;
    let after = &t[after_start..];
    let (mut flag_words, rest_off) = words::extract_flags(after);
    for w in &mut flag_words {
        w.off += base + lead + after_start;
    }
    let rest = &after[rest_off..];
    let args_lead = rest.len() - rest.trim_start().len();
    Split {
        keyword: &t[..kw_end],
        keyword_off: base + lead,
        flags: flag_words,
        args: rest.trim(),
        args_off: base + lead + after_start + rest_off + args_lead,
    }
}

/// BuildKit `canContainHeredoc`: RUN/COPY/ADD not in JSON form, also as the
/// trigger of an ONBUILD.
pub(crate) fn heredoc_capable(text: &str) -> bool {
    let sc = split_command(text, 0);
    match canonical(sc.keyword) {
        Some("RUN" | "COPY" | "ADD") => !matches!(words::parse_json(sc.args), Json::Strings(_)),
        Some("ONBUILD") => {
            let inner = split_command(sc.args, 0);
            matches!(canonical(inner.keyword), Some("RUN" | "COPY" | "ADD"))
                && !matches!(words::parse_json(inner.args), Json::Strings(_))
        }
        _ => false,
    }
}

/// A heredoc marker with its raw (unchomped) body.
#[derive(Debug, Clone)]
pub(crate) struct Body {
    pub marker: Marker,
    pub raw: String,
}

fn to_heredocs(bodies: &[Body]) -> Vec<Heredoc> {
    bodies
        .iter()
        .map(|b| Heredoc {
            name: b.marker.name.clone(),
            body: if b.marker.strip_tabs {
                heredoc::chomp(&b.raw)
            } else {
                b.raw.clone()
            },
            expand: b.marker.expand,
            strip_tabs: b.marker.strip_tabs,
            fd: b.marker.fd,
        })
        .collect()
}

/// Everything needed to build instructions of one logical line.
pub(crate) struct Ctx<'a> {
    pub logical: &'a Logical<'a>,
    pub input: &'a str,
    pub esc: char,
    /// Last line of the instruction (heredocs included).
    pub end_line: u32,
    /// Column just past the end of the last line.
    pub end_col: u32,
    /// Input offset where the instruction's text ends.
    pub end_src: usize,
}

const RUN_FLAGS: &[(&str, FlagType)] = &[
    ("mount", FlagType::Strs),
    ("network", FlagType::Str),
    ("security", FlagType::Str),
];
const COPY_FLAGS: &[(&str, FlagType)] = &[
    ("from", FlagType::Str),
    ("chown", FlagType::Str),
    ("chmod", FlagType::Str),
    ("link", FlagType::Bool),
    ("parents", FlagType::Bool),
    ("exclude", FlagType::Strs),
];
const ADD_FLAGS: &[(&str, FlagType)] = &[
    ("chown", FlagType::Str),
    ("chmod", FlagType::Str),
    ("link", FlagType::Bool),
    ("exclude", FlagType::Strs),
    ("checksum", FlagType::Str),
    ("keep-git-dir", FlagType::Bool),
    ("unpack", FlagType::Bool),
];
const FROM_FLAGS: &[(&str, FlagType)] = &[("platform", FlagType::Str)];
const HEALTH_FLAGS: &[(&str, FlagType)] = &[
    ("interval", FlagType::Str),
    ("timeout", FlagType::Str),
    ("start-period", FlagType::Str),
    ("start-interval", FlagType::Str),
    ("retries", FlagType::Str),
];

fn args_err(instruction: &str, requirement: &str, off: usize) -> Located {
    (
        ErrorKind::Arguments {
            instruction: instruction.to_owned(),
            requirement: requirement.to_owned(),
        },
        off,
    )
}

fn not_strings(off: usize) -> Located {
    (
        ErrorKind::Json(
            "when using JSON array syntax, arrays must be comprised of strings only".into(),
        ),
        off,
    )
}

impl Ctx<'_> {
    /// Build the instruction whose text starts at joined offset `start`.
    pub(crate) fn instruction(&self, start: usize, bodies: &[Body]) -> Res<Instruction> {
        let text = self.logical.joined.get(start..).unwrap_or("");
        let sc = split_command(text, start);
        let (line, col) = self.logical.pos(sc.keyword_off);
        let src_start = self.logical.src(sc.keyword_off);
        let original = self
            .input
            .get(src_start..self.end_src)
            .unwrap_or_default()
            .to_owned();
        let kind = self.kind(&sc, bodies)?;
        Ok(Instruction {
            span: Span {
                line,
                col,
                end_line: self.end_line,
                end_col: self.end_col,
            },
            original,
            kind,
        })
    }

    fn kind(&self, sc: &Split, bodies: &[Body]) -> Res<Kind> {
        let Some(name) = canonical(sc.keyword) else {
            return Err((
                ErrorKind::UnknownInstruction(sc.keyword.to_owned()),
                sc.keyword_off,
            ));
        };
        let a = sc.args;
        let at = sc.args_off;
        let kw = sc.keyword_off;
        match name {
            "FROM" => {
                let f = parse_flags(sc, FROM_FLAGS, name)?;
                let w = words::split_ascii_ws(a);
                let alias = match w.as_slice() {
                    [_] => None,
                    [_, (as_kw, _), (n, n_off)] if as_kw.eq_ignore_ascii_case("as") => {
                        let lower = n.to_lowercase();
                        if !valid_stage_name(&lower) {
                            return Err((
                                ErrorKind::Syntax(format!(
                                    "invalid name for build stage: {n:?}, name can't start with a number or contain symbols"
                                )),
                                at + n_off,
                            ));
                        }
                        Some(lower)
                    }
                    _ => return Err(args_err(name, "requires either one or three arguments", kw)),
                };
                let image = w.first().map(|(s, _)| (*s).to_owned()).unwrap_or_default();
                Ok(Kind::From {
                    image,
                    platform: f.string("platform"),
                    alias,
                })
            }
            "RUN" => {
                let f = parse_flags(sc, RUN_FLAGS, name)?;
                let mut mounts = Vec::new();
                for (spec, off) in f.strs("mount") {
                    let m = mount::parse_mount(&spec).map_err(|reason| {
                        (
                            ErrorKind::InvalidMount {
                                spec: spec.clone(),
                                reason,
                            },
                            off,
                        )
                    })?;
                    mounts.push(m);
                }
                let network = match f.str("network") {
                    None => None,
                    Some((v, off)) => Some(match v {
                        "default" => Network::Default,
                        "none" => Network::None,
                        "host" => Network::Host,
                        _ => {
                            return Err(bad_value(
                                "network",
                                v,
                                "expected none, host or default",
                                off,
                            ));
                        }
                    }),
                };
                let security = match f.str("security") {
                    None => None,
                    Some((v, off)) => Some(match v {
                        "sandbox" => Security::Sandbox,
                        "insecure" => Security::Insecure,
                        _ => {
                            return Err(bad_value(
                                "security",
                                v,
                                "expected sandbox or insecure",
                                off,
                            ));
                        }
                    }),
                };
                let command = Self::command(name, a, at, kw, false)?;
                Ok(Kind::Run {
                    command,
                    heredocs: to_heredocs(bodies),
                    mounts,
                    network,
                    security,
                })
            }
            "CMD" | "ENTRYPOINT" => {
                parse_flags(sc, &[], name)?;
                let command = Self::command(name, a, at, kw, true)?;
                Ok(if name == "CMD" {
                    Kind::Cmd { command }
                } else {
                    Kind::Entrypoint { command }
                })
            }
            "SHELL" => {
                parse_flags(sc, &[], name)?;
                match words::parse_json(a) {
                    Json::Strings(v) if !v.is_empty() => Ok(Kind::Shell { shell: v }),
                    Json::Strings(_) => Err(args_err(name, "requires at least one argument", kw)),
                    Json::NotStrings => Err(not_strings(at)),
                    Json::No if a.is_empty() => {
                        Err(args_err(name, "requires at least one argument", kw))
                    }
                    Json::No => Err((
                        ErrorKind::Json("SHELL requires the arguments to be in JSON form".into()),
                        at,
                    )),
                }
            }
            "ENV" | "LABEL" => {
                parse_flags(sc, &[], name)?;
                let (pairs, legacy) = self.name_val(name, a, at, kw)?;
                Ok(if name == "ENV" {
                    Kind::Env { pairs, legacy }
                } else {
                    Kind::Label { pairs, legacy }
                })
            }
            "ARG" => {
                parse_flags(sc, &[], name)?;
                let ws = words::parse_words(a, self.esc);
                if ws.is_empty() {
                    return Err(args_err(name, "requires at least one argument", kw));
                }
                let mut args = Vec::with_capacity(ws.len());
                for w in ws {
                    let (n, d) = match w.text.split_once('=') {
                        Some((n, d)) => (n.to_owned(), Some(d.to_owned())),
                        None => (w.text.clone(), None),
                    };
                    if n.is_empty() {
                        return Err(args_err(name, "names can not be blank", at + w.off));
                    }
                    args.push(ArgDecl {
                        name: n,
                        default: d,
                    });
                }
                Ok(Kind::Arg { args })
            }
            "EXPOSE" => {
                parse_flags(sc, &[], name)?;
                let ports: Vec<String> = words::split_ascii_ws(a)
                    .into_iter()
                    .map(|(s, _)| s.to_owned())
                    .collect();
                if ports.is_empty() {
                    return Err(args_err(name, "requires at least one argument", kw));
                }
                Ok(Kind::Expose { ports })
            }
            "COPY" | "ADD" => Self::copy_add(sc, name, bodies),
            "WORKDIR" | "USER" | "STOPSIGNAL" | "MAINTAINER" => {
                parse_flags(sc, &[], name)?;
                if a.is_empty() {
                    return Err(args_err(name, "requires exactly one argument", kw));
                }
                let v = a.to_owned();
                Ok(match name {
                    "WORKDIR" => Kind::Workdir { path: v },
                    "USER" => Kind::User { user: v },
                    "STOPSIGNAL" => Kind::Stopsignal { signal: v },
                    _ => Kind::Maintainer { name: v },
                })
            }
            "VOLUME" => {
                parse_flags(sc, &[], name)?;
                let (paths, json) = Self::list(a, at)?;
                if paths.is_empty() {
                    return Err(args_err(name, "requires at least one argument", kw));
                }
                if paths.iter().any(String::is_empty) {
                    return Err((
                        ErrorKind::Syntax("VOLUME specified can not be an empty string".into()),
                        at,
                    ));
                }
                Ok(Kind::Volume { paths, json })
            }
            "HEALTHCHECK" => Self::healthcheck(sc),
            "ONBUILD" => {
                parse_flags(sc, &[], name)?;
                if a.is_empty() {
                    return Err(args_err(name, "requires at least one argument", kw));
                }
                let inner_kw = split_command(a, at);
                let trig = canonical(inner_kw.keyword).unwrap_or("");
                match trig {
                    "ONBUILD" => {
                        return Err((
                            ErrorKind::Syntax(
                                "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into(),
                            ),
                            inner_kw.keyword_off,
                        ));
                    }
                    "FROM" | "MAINTAINER" => {
                        return Err((
                            ErrorKind::Syntax(format!(
                                "{trig} isn't allowed as an ONBUILD trigger"
                            )),
                            inner_kw.keyword_off,
                        ));
                    }
                    _ => {}
                }
                let instruction = Box::new(self.instruction(at, bodies)?);
                // BuildKit: the line without `ONBUILD` + "\n" + body + name per heredoc
                let whole = self.logical.joined.get(kw..).unwrap_or("");
                let mut trigger = whole
                    .trim_start_matches(|c: char| c.is_ascii_whitespace())
                    .get(sc.keyword.len()..)
                    .unwrap_or("")
                    .trim_start_matches(|c: char| c.is_ascii_whitespace())
                    .to_owned();
                for b in bodies {
                    trigger.push('\n');
                    trigger.push_str(&b.raw);
                    trigger.push_str(&b.marker.name);
                }
                Ok(Kind::Onbuild {
                    trigger,
                    instruction,
                })
            }
            _ => Err((ErrorKind::UnknownInstruction(sc.keyword.to_owned()), kw)),
        }
    }

    /// Shell or exec form of RUN/CMD/ENTRYPOINT (`parseMaybeJSON`).
    fn command(name: &str, a: &str, at: usize, kw: usize, empty_json_ok: bool) -> Res<Command> {
        match words::parse_json(a) {
            Json::Strings(v) if v.is_empty() && !empty_json_ok => {
                Err(args_err(name, "requires at least one argument", kw))
            }
            Json::Strings(v) => Ok(Command::Exec(v)),
            Json::NotStrings => Err(not_strings(at)),
            // an empty shell form is BuildKit's `/bin/sh -c ""` (RUN runs it, CMD and
            // ENTRYPOINT store it), unlike the classic builder's "requires at least one argument"
            Json::No => Ok(Command::Shell(a.to_owned())),
        }
    }

    /// `parseMaybeJSONToList`: JSON strings or whitespace-separated words.
    fn list(a: &str, at: usize) -> Res<(Vec<String>, bool)> {
        match words::parse_json(a) {
            Json::Strings(v) => Ok((v, true)),
            Json::NotStrings => Err(not_strings(at)),
            Json::No => Ok((
                words::split_ascii_ws(a)
                    .into_iter()
                    .map(|(s, _)| s.to_owned())
                    .collect(),
                false,
            )),
        }
    }

    /// BuildKit `parseNameVal` (ENV, LABEL).
    fn name_val(&self, name: &str, a: &str, at: usize, kw: usize) -> Res<(Vec<KeyValue>, bool)> {
        let ws = words::parse_words(a, self.esc);
        let Some(first) = ws.first() else {
            return Err(args_err(name, "requires at least one argument", kw));
        };
        if !first.text.contains('=') {
            let Some((k, v, _)) = words::split_first_ws(a) else {
                return Err(args_err(name, "must have two arguments", kw));
            };
            return Ok((
                vec![KeyValue {
                    key: k.to_owned(),
                    value: v.to_owned(),
                }],
                true,
            ));
        }
        let mut pairs = Vec::with_capacity(ws.len());
        for w in ws {
            let Some((k, v)) = w.text.split_once('=') else {
                return Err((
                    ErrorKind::Syntax(format!(
                        "syntax error - can't find = in {:?}, must be of the form: name=value",
                        w.text
                    )),
                    at + w.off,
                ));
            };
            if k.is_empty() {
                return Err(args_err(name, "names can not be blank", at + w.off));
            }
            pairs.push(KeyValue {
                key: k.to_owned(),
                value: v.to_owned(),
            });
        }
        Ok((pairs, false))
    }

    fn copy_add(sc: &Split, name: &str, bodies: &[Body]) -> Res<Kind> {
        let is_copy = name == "COPY";
        let f = parse_flags(sc, if is_copy { COPY_FLAGS } else { ADD_FLAGS }, name)?;
        if let Some((v, off)) = f.str("chmod") {
            flags::check_chmod(v).map_err(|reason| bad_value("chmod", v, &reason, off))?;
        }
        let (mut list, json) = Self::list(sc.args, sc.args_off)?;
        if list.len() < 2 {
            return Err(args_err(
                name,
                "requires at least two arguments: one or more sources and a destination",
                sc.keyword_off,
            ));
        }
        let dest = list.pop().unwrap_or_default();
        if !json && heredoc::parse_marker(&dest).ok().flatten().is_some() {
            return Err((
                ErrorKind::BadHeredoc(format!("{name} cannot accept a heredoc as a destination")),
                sc.args_off,
            ));
        }
        let heredocs = to_heredocs(bodies);
        let mut sources = Vec::with_capacity(list.len());
        for s in list {
            match (json, heredoc::parse_marker(&s).ok().flatten()) {
                (false, Some(m)) => {
                    if !heredocs.iter().any(|h| h.name == m.name) {
                        return Err((
                            ErrorKind::BadHeredoc(format!("heredoc {:?} has no body", m.name)),
                            sc.args_off,
                        ));
                    }
                    sources.push(Source::Heredoc(m.name));
                }
                _ => sources.push(Source::Path(s)),
            }
        }
        let excludes: Vec<String> = f.strs("exclude").into_iter().map(|(s, _)| s).collect();
        Ok(if is_copy {
            Kind::Copy {
                sources,
                dest,
                json,
                flags: CopyFlags {
                    from: f.string("from"),
                    chown: f.string("chown"),
                    chmod: f.string("chmod"),
                    link: f.bool("link").unwrap_or(false),
                    parents: f.bool("parents").unwrap_or(false),
                    exclude: excludes,
                },
                heredocs,
            }
        } else {
            Kind::Add {
                sources,
                dest,
                json,
                flags: AddFlags {
                    chown: f.string("chown"),
                    chmod: f.string("chmod"),
                    link: f.bool("link").unwrap_or(false),
                    exclude: excludes,
                    checksum: f.string("checksum"),
                    keep_git_dir: f.bool("keep-git-dir").unwrap_or(false),
                    unpack: f.bool("unpack"),
                },
                heredocs,
            }
        })
    }

    fn healthcheck(sc: &Split) -> Res<Kind> {
        let name = "HEALTHCHECK";
        let a = sc.args;
        let sep = a.find(char::is_whitespace).unwrap_or(a.len());
        if sep == 0 {
            return Err(args_err(
                name,
                "requires at least one argument",
                sc.keyword_off,
            ));
        }
        let typ = a[..sep].to_uppercase();
        let rest = a[sep..].trim_start();
        let rest_off = sc.args_off + (a.len() - rest.len());
        if typ == "NONE" {
            if !rest.is_empty() {
                return Err((
                    ErrorKind::Syntax("HEALTHCHECK NONE takes no arguments".into()),
                    rest_off,
                ));
            }
            if let Some(w) = sc.flags.first() {
                return Err((
                    ErrorKind::Syntax("HEALTHCHECK NONE takes no flags".into()),
                    w.off,
                ));
            }
            return Ok(Kind::Healthcheck {
                health: Health::None,
            });
        }
        let f = parse_flags(sc, HEALTH_FLAGS, name)?;
        if typ != "CMD" {
            return Err((
                ErrorKind::Syntax(format!(
                    "unknown type {:?} in HEALTHCHECK (try CMD)",
                    &a[..sep]
                )),
                sc.args_off,
            ));
        }
        let command = match words::parse_json(rest) {
            Json::Strings(v) if !v.is_empty() => Command::Exec(v),
            Json::NotStrings => return Err(not_strings(rest_off)),
            Json::No if !rest.is_empty() => Command::Shell(rest.to_owned()),
            _ => {
                return Err((
                    ErrorKind::Syntax("missing command after HEALTHCHECK CMD".into()),
                    sc.args_off,
                ));
            }
        };
        let dur = |flag: &str| -> Res<Option<u64>> {
            let Some((v, off)) = f.str(flag) else {
                return Ok(None);
            };
            if v.is_empty() {
                return Ok(None);
            }
            let d = flags::parse_duration(v).map_err(|r| bad_value(flag, v, &r, off))?;
            if d != 0 && d < 1_000_000 {
                return Err(bad_value(flag, v, "cannot be less than 1ms", off));
            }
            Ok(Some(d))
        };
        let retries = match f.str("retries") {
            None | Some(("", _)) => None,
            Some((v, off)) => match v.parse::<i64>() {
                Ok(r) if r < 0 => return Err(bad_value("retries", v, "cannot be negative", off)),
                Ok(r) => Some(
                    u32::try_from(r)
                        .ok()
                        .filter(|r| i32::try_from(*r).is_ok())
                        .ok_or_else(|| bad_value("retries", v, "out of range", off))?,
                ),
                Err(_) => return Err(bad_value("retries", v, "not an integer", off)),
            },
        };
        Ok(Kind::Healthcheck {
            health: Health::Cmd {
                interval: dur("interval")?,
                timeout: dur("timeout")?,
                start_period: dur("start-period")?,
                start_interval: dur("start-interval")?,
                retries,
                command,
            },
        })
    }
}

fn parse_flags(sc: &Split, allowed: &[(&'static str, FlagType)], name: &str) -> Res<Flags> {
    flags::parse(&sc.flags, allowed, name)
}

fn bad_value(flag: &str, value: &str, reason: &str, off: usize) -> Located {
    (
        ErrorKind::InvalidFlagValue {
            flag: flag.to_owned(),
            value: value.to_owned(),
            reason: reason.to_owned(),
        },
        off,
    )
}

/// Instruction keywords (case-insensitive).
const KEYWORDS: &[&str] = &[
    "RUN",
    "COPY",
    "ENV",
    "LABEL",
    "FROM",
    "ARG",
    "CMD",
    "ENTRYPOINT",
    "WORKDIR",
    "USER",
    "ADD",
    "EXPOSE",
    "VOLUME",
    "HEALTHCHECK",
    "ONBUILD",
    "SHELL",
    "STOPSIGNAL",
    "MAINTAINER",
];

/// The upper-case name of a keyword, without allocating.
fn canonical(kw: &str) -> Option<&'static str> {
    KEYWORDS
        .iter()
        .copied()
        .find(|k| k.eq_ignore_ascii_case(kw))
}

/// `^[a-z][a-z0-9-_.]*$`
fn valid_stage_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_lowercase())
        && c.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_command_offsets() {
        let s = split_command(
            "  run  --network=none --mount=type=tmpfs,target=/t  echo hi ",
            10,
        );
        assert_eq!(s.keyword, "run");
        assert_eq!(s.keyword_off, 12);
        assert_eq!(s.flags.len(), 2);
        assert_eq!(s.flags[0].off, 17);
        assert_eq!(s.args, "echo hi");
        assert_eq!(s.args_off, 10 + 52);
    }

    #[test]
    fn heredoc_capability() {
        assert!(heredoc_capable("RUN <<EOF"));
        assert!(heredoc_capable("copy <<EOF /x"));
        assert!(heredoc_capable("ONBUILD RUN <<EOF"));
        assert!(!heredoc_capable(r#"RUN ["<<EOF"]"#));
        assert!(!heredoc_capable("CMD <<EOF"));
        assert!(!heredoc_capable("ONBUILD ONBUILD RUN <<EOF"));
    }

    #[test]
    fn stage_names() {
        assert!(valid_stage_name("build-1.x_y"));
        assert!(!valid_stage_name("1build"));
        assert!(!valid_stage_name("b$x"));
        assert!(!valid_stage_name(""));
    }
}
