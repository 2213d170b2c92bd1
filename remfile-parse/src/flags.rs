//! Instruction flags (`--name[=value]`), as BuildKit's `BFlags` parses them,
//! plus the validators for flag values whose syntax the reference defines.

use crate::error::ErrorKind;
use crate::words::Word;

/// How a flag takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlagType {
    /// `--x` or `--x=true|false`.
    Bool,
    /// `--x=value`, once.
    Str,
    /// `--x=value`, repeatable.
    Strs,
}

/// A parsed flag value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Bool(bool),
    Str(String),
    Strs(Vec<String>),
}

/// The flags of one instruction, by name, with the offset of their last occurrence.
#[derive(Debug, Default)]
pub(crate) struct Flags {
    values: Vec<(&'static str, Value, usize)>,
}

impl Flags {
    pub(crate) fn str(&self, name: &str) -> Option<(&str, usize)> {
        self.values.iter().find_map(|(n, v, off)| match v {
            Value::Str(s) if *n == name => Some((s.as_str(), *off)),
            _ => None,
        })
    }
    pub(crate) fn string(&self, name: &str) -> Option<String> {
        self.str(name).map(|(s, _)| s.to_owned())
    }
    pub(crate) fn bool(&self, name: &str) -> Option<bool> {
        self.values.iter().find_map(|(n, v, _)| match v {
            Value::Bool(b) if *n == name => Some(*b),
            _ => None,
        })
    }
    pub(crate) fn strs(&self, name: &str) -> Vec<(String, usize)> {
        self.values
            .iter()
            .filter(|(n, _, _)| *n == name)
            .flat_map(|(_, v, off)| match v {
                Value::Strs(s) => s.iter().map(|s| (s.clone(), *off)).collect(),
                _ => Vec::new(),
            })
            .collect()
    }
}

/// Parse flag words against the flags an instruction accepts. Errors carry
/// the offset of the offending flag word.
pub(crate) fn parse(
    words: &[Word],
    allowed: &[(&'static str, FlagType)],
    instruction: &str,
) -> Result<Flags, (ErrorKind, usize)> {
    let mut flags = Flags::default();
    for w in words {
        let Some(arg) = w.text.strip_prefix("--") else {
            return Err((
                ErrorKind::Syntax(format!("flag should start with --: {}", w.text)),
                w.off,
            ));
        };
        if arg.is_empty() {
            break;
        }
        let (name, value) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (arg, None),
        };
        let Some(&(key, ty)) = allowed.iter().find(|(n, _)| *n == name) else {
            return Err((
                ErrorKind::UnknownFlag {
                    instruction: instruction.to_owned(),
                    flag: name.to_owned(),
                },
                w.off,
            ));
        };
        let seen = flags.values.iter().position(|(n, _, _)| *n == key);
        if seen.is_some() && ty != FlagType::Strs {
            return Err((ErrorKind::DuplicateFlag(name.to_owned()), w.off));
        }
        let v = match (ty, value) {
            (FlagType::Bool, None) => Value::Bool(true),
            (FlagType::Bool, Some("")) | (FlagType::Str | FlagType::Strs, None) => {
                return Err((ErrorKind::MissingFlagValue(name.to_owned()), w.off));
            }
            (FlagType::Bool, Some(v)) => match v.to_ascii_lowercase().as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => {
                    return Err((
                        ErrorKind::InvalidFlagValue {
                            flag: name.to_owned(),
                            value: v.to_owned(),
                            reason: "expecting a boolean value".into(),
                        },
                        w.off,
                    ));
                }
            },
            (FlagType::Str, Some(v)) => Value::Str(v.to_owned()),
            (FlagType::Strs, Some(v)) => {
                if let Some(i) = seen
                    && let Some((_, Value::Strs(list), _)) = flags.values.get_mut(i)
                {
                    list.push(v.to_owned());
                    continue;
                }
                Value::Strs(vec![v.to_owned()])
            }
        };
        flags.values.push((key, v, w.off));
    }
    Ok(flags)
}

/// Validate a `--chmod` value: octal (at most 0o7777) or symbolic
/// (`u+x`, `go-w`, `a=rX,u+s`, ...). Values with variables are left to the planner.
pub(crate) fn check_chmod(v: &str) -> Result<(), String> {
    if v.contains('$') {
        return Ok(());
    }
    // `--chmod=` is no --chmod (BuildKit checks `chmod != ""`)
    if v.is_empty() {
        return Ok(());
    }
    if v.bytes().all(|b| b.is_ascii_digit()) {
        return match u32::from_str_radix(v, 8) {
            Ok(m) if m <= 0o7777 => Ok(()),
            Ok(_) => Err("octal mode larger than 7777".into()),
            Err(_) => Err("not an octal number".into()),
        };
    }
    for clause in v.split(',') {
        let rest = clause.trim_start_matches(['u', 'g', 'o', 'a']);
        if rest.is_empty() {
            return Err(format!("symbolic clause {clause:?} has no operator"));
        }
        let mut chars = rest.chars().peekable();
        while let Some(op) = chars.next() {
            if !matches!(op, '+' | '-' | '=') {
                return Err(format!("unexpected {op:?} in symbolic mode {clause:?}"));
            }
            // either permission letters or one of u/g/o (copy permissions)
            if matches!(chars.peek(), Some('u' | 'g' | 'o')) {
                chars.next();
                continue;
            }
            while let Some(&c) = chars.peek() {
                if matches!(c, 'r' | 'w' | 'x' | 'X' | 's' | 't') {
                    chars.next();
                } else {
                    break;
                }
            }
        }
    }
    Ok(())
}

/// Go `time.ParseDuration`, in nanoseconds; negative values are rejected.
pub(crate) fn parse_duration(s: &str) -> Result<u64, String> {
    let orig = s;
    let err = || format!("invalid duration {orig:?}");
    let (neg, mut s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(err());
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        let int_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let int_part = &s[..int_end];
        s = &s[int_end..];
        let mut frac_part = "";
        if let Some(r) = s.strip_prefix('.') {
            let fe = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
            frac_part = &r[..fe];
            s = &r[fe..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(err());
        }
        let unit_end = s
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        let unit = &s[..unit_end];
        s = &s[unit_end..];
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(format!("missing unit in duration {orig:?}")),
            _ => return Err(format!("unknown unit {unit:?} in duration {orig:?}")),
        };
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| err())?
        };
        let mut v = int.checked_mul(scale).ok_or_else(err)?;
        if !frac_part.is_empty() {
            let mut f = scale;
            for d in frac_part.bytes().take(30) {
                f /= 10;
                v += u128::from(d - b'0') * f;
            }
        }
        total = total.checked_add(v).ok_or_else(err)?;
        if total > i64::MAX as u128 {
            return Err(err());
        }
    }
    if neg && total > 0 {
        return Err(format!("duration {orig:?} is negative"));
    }
    u64::try_from(total).map_err(|_| err())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Word {
        Word {
            text: s.into(),
            off: 0,
        }
    }

    const COPY: &[(&str, FlagType)] = &[
        ("from", FlagType::Str),
        ("link", FlagType::Bool),
        ("exclude", FlagType::Strs),
    ];

    #[test]
    fn flags_parse_types() {
        let f = parse(
            &[
                w("--from=a"),
                w("--link"),
                w("--exclude=x"),
                w("--exclude=y"),
            ],
            COPY,
            "COPY",
        )
        .unwrap();
        assert_eq!(f.string("from").as_deref(), Some("a"));
        assert_eq!(f.bool("link"), Some(true));
        let ex: Vec<String> = f.strs("exclude").into_iter().map(|x| x.0).collect();
        assert_eq!(ex, ["x", "y"]);
        let f = parse(&[w("--link=FALSE")], COPY, "COPY").unwrap();
        assert_eq!(f.bool("link"), Some(false));
    }

    #[test]
    fn flags_errors() {
        let e = |words: &[&str]| {
            parse(
                &words.iter().map(|s| w(s)).collect::<Vec<_>>(),
                COPY,
                "COPY",
            )
            .unwrap_err()
            .0
            .to_string()
        };
        assert_eq!(e(&["--nope"]), "unknown flag: --nope (not allowed on COPY)");
        assert_eq!(e(&["--from"]), "missing a value on flag: --from");
        assert_eq!(e(&["--link="]), "missing a value on flag: --link");
        assert_eq!(
            e(&["--from=a", "--from=b"]),
            "duplicate flag specified: --from"
        );
        assert!(e(&["--link=yes"]).contains("expecting a boolean value"));
    }

    #[test]
    fn chmod_values() {
        for ok in [
            "755",
            "0644",
            "7777",
            "u+x",
            "go-w",
            "a=rX,u+s",
            "u=rwx,g=rx,o=",
            "+x",
            "g=u",
            "$MODE",
        ] {
            assert!(check_chmod(ok).is_ok(), "{ok}");
        }
        assert!(check_chmod("").is_ok(), "an empty --chmod is none");
        for bad in ["999", "17777", "u", "u+q", "rwx", "u+x,", "0x755"] {
            assert!(check_chmod(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(30_000_000_000));
        assert_eq!(parse_duration("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_duration("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration(".5s"), Ok(500_000_000));
        assert_eq!(parse_duration("10\u{b5}s"), Ok(10_000));
        assert_eq!(parse_duration("-0s"), Ok(0));
        for bad in ["", "5", "s", "1x", "-1s", ".s", "1.s.", "9999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
