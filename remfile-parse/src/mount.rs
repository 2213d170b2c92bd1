//! `RUN --mount=...` specifications: CSV fields (Go `encoding/csv` rules),
//! keys per mount type as BuildKit accepts them, literal values validated.

use crate::ast::{Mount, Sharing};

/// Split a CSV record the way Go's `encoding/csv` reads one line.
fn csv_fields(s: &str) -> Result<Vec<String>, String> {
    if s.is_empty() {
        return Err("empty mount specification".into());
    }
    let mut fields = Vec::new();
    let mut rest = s;
    loop {
        if let Some(q) = rest.strip_prefix('"') {
            // quoted field: "" is a literal quote; the closing quote must end the field
            let mut field = String::new();
            let mut chars = q.char_indices();
            let after;
            loop {
                match chars.next() {
                    None => return Err("extraneous or missing \" in quoted-field".into()),
                    Some((i, '"')) => {
                        if q[i + 1..].starts_with('"') {
                            field.push('"');
                            chars.next();
                        } else {
                            after = &q[i + 1..];
                            break;
                        }
                    }
                    Some((_, c)) => field.push(c),
                }
            }
            fields.push(field);
            if after.is_empty() {
                return Ok(fields);
            }
            match after.strip_prefix(',') {
                Some(r) => rest = r,
                None => return Err("extraneous or missing \" in quoted-field".into()),
            }
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            let field = &rest[..end];
            if field.contains('"') {
                return Err("bare \" in non-quoted-field".into());
            }
            fields.push(field.to_owned());
            if end == rest.len() {
                return Ok(fields);
            }
            rest = &rest[end + 1..];
        }
    }
}

fn literal(v: &str) -> bool {
    !v.contains('$')
}

/// `strconv.ParseBool`.
fn go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// go-units `RAMInBytes` syntax: `123`, `1.5g`, `64MiB`, `10 kb`.
fn ram_size_ok(v: &str) -> bool {
    let num_end = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let num = &v[..num_end];
    let valid_num =
        !num.is_empty() && !num.starts_with('.') && !num.ends_with('.') && !num.contains("..");
    if !valid_num {
        return false;
    }
    let mut unit = v[num_end..].strip_prefix(' ').unwrap_or(&v[num_end..]);
    if let Some(u) = unit.strip_prefix(|c: char| "kKmMgGtTpP".contains(c)) {
        unit = u;
    }
    if let Some(u) = unit.strip_prefix(['i', 'I']) {
        unit = u;
    }
    if let Some(u) = unit.strip_prefix(['b', 'B']) {
        unit = u;
    }
    unit.is_empty()
}

#[derive(Default)]
struct Fields {
    ty: Option<String>,
    from: Option<String>,
    source: Option<String>,
    target: Option<String>,
    readonly: Option<bool>,
    required: Option<bool>,
    size: Option<String>,
    id: Option<String>,
    sharing: Option<String>,
    mode: Option<String>,
    uid: Option<String>,
    gid: Option<String>,
    env: Option<String>,
    /// keys present, for per-type checks
    keys: Vec<&'static str>,
}

/// Parse one `--mount` value into a typed [`Mount`].
pub(crate) fn parse_mount(spec: &str) -> Result<Mount, String> {
    let mut f = Fields::default();
    for field in csv_fields(spec)? {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v.to_owned())),
            None => (field.to_ascii_lowercase(), None),
        };
        let canon: &'static str = match key.as_str() {
            "type" => "type",
            "from" => "from",
            "source" | "src" => "source",
            "target" | "dst" | "destination" => "target",
            "readonly" | "ro" => "readonly",
            "readwrite" | "rw" => "readwrite",
            "required" => "required",
            "size" => "size",
            "id" => "id",
            "sharing" => "sharing",
            "mode" => "mode",
            "uid" => "uid",
            "gid" => "gid",
            "env" => "env",
            _ => return Err(format!("unexpected key {key:?} in {field:?}")),
        };
        let Some(value) = value else {
            match canon {
                "readonly" => f.readonly = Some(true),
                "readwrite" => f.readonly = Some(false),
                "required" => f.required = Some(true),
                _ => return Err(format!("invalid field {field:?}: must be a key=value pair")),
            }
            f.keys.push(canon);
            continue;
        };
        f.keys.push(canon);
        match canon {
            "type" => {
                let t = value.to_ascii_lowercase();
                if !matches!(t.as_str(), "bind" | "cache" | "tmpfs" | "secret" | "ssh") {
                    return Err(format!(
                        "unsupported mount type {value:?} (bind, cache, tmpfs, secret or ssh)"
                    ));
                }
                f.ty = Some(t);
            }
            "from" => {
                if let Some(i) = value.find('$')
                    && i + 1 != value.len()
                {
                    return Err(
                        "'from' doesn't support variable expansion, define alias stage instead"
                            .into(),
                    );
                }
                f.from = Some(value);
            }
            "source" => f.source = Some(value),
            "target" => f.target = Some(value),
            "readonly" | "readwrite" | "required" => {
                let Some(b) = go_bool(&value) else {
                    return Err(format!("invalid value for {key}: {value:?}"));
                };
                match canon {
                    "readonly" => f.readonly = Some(b),
                    "readwrite" => f.readonly = Some(!b),
                    _ => f.required = Some(b),
                }
            }
            "size" => {
                if literal(&value) && !ram_size_ok(&value) {
                    return Err(format!("invalid size {value:?}"));
                }
                f.size = Some(value);
            }
            "id" => f.id = Some(value),
            "sharing" => {
                let s = value.to_ascii_lowercase();
                if !matches!(s.as_str(), "shared" | "private" | "locked") {
                    return Err(format!(
                        "unsupported sharing value {value:?} (shared, private or locked)"
                    ));
                }
                f.sharing = Some(s);
            }
            "mode" => {
                // Go's ParseUint: digits only (no sign, no 0o prefix)
                if literal(&value) && !go_uint(&value, 8) {
                    return Err(format!("invalid mode {value:?}: not an octal number"));
                }
                f.mode = Some(value);
            }
            "uid" | "gid" => {
                if literal(&value) && !go_uint(&value, 10) {
                    return Err(format!("invalid {key} {value:?}: not a number"));
                }
                if canon == "uid" {
                    f.uid = Some(value);
                } else {
                    f.gid = Some(value);
                }
            }
            _ => f.env = Some(value),
        }
    }
    build(f)
}

fn build(f: Fields) -> Result<Mount, String> {
    let ty = f.ty.clone().unwrap_or_else(|| "bind".into());
    let allowed: &[&str] = match ty.as_str() {
        "bind" => &["type", "target", "source", "from", "readonly", "readwrite"],
        "cache" => &[
            "type",
            "target",
            "source",
            "from",
            "readonly",
            "readwrite",
            "id",
            "sharing",
            "mode",
            "uid",
            "gid",
        ],
        "tmpfs" => &["type", "target", "size", "readonly", "readwrite"],
        "secret" => &[
            "type",
            "target",
            "source",
            "id",
            "env",
            "required",
            "mode",
            "uid",
            "gid",
            "readonly",
            "readwrite",
        ],
        _ => &[
            "type",
            "target",
            "id",
            "required",
            "mode",
            "uid",
            "gid",
            "readonly",
            "readwrite",
        ],
    };
    if let Some(k) = f.keys.iter().find(|k| !allowed.contains(k)) {
        return Err(format!("unexpected key {k:?} for mount type {ty:?}"));
    }
    let need_target = |t: Option<String>| t.ok_or_else(|| format!("{ty} mount requires a target"));
    Ok(match ty.as_str() {
        "bind" => Mount::Bind {
            target: need_target(f.target)?,
            source: f.source,
            from: f.from,
            readonly: f.readonly.unwrap_or(true),
        },
        "cache" => Mount::Cache {
            target: need_target(f.target)?,
            id: f.id,
            sharing: match f.sharing.as_deref() {
                Some("private") => Sharing::Private,
                Some("locked") => Sharing::Locked,
                _ => Sharing::Shared,
            },
            from: f.from,
            source: f.source,
            readonly: f.readonly.unwrap_or(false),
            mode: f.mode,
            uid: f.uid,
            gid: f.gid,
        },
        "tmpfs" => Mount::Tmpfs {
            target: need_target(f.target)?,
            size: f.size,
            readonly: f.readonly.unwrap_or(false),
        },
        "secret" => {
            if f.source.is_some() && f.id.is_some() {
                return Err("both source and id can't be set".into());
            }
            let id = f.id.or(f.source);
            if id.is_none() && f.target.is_none() && f.env.is_none() {
                return Err("secret mount requires an id, a target or an env".into());
            }
            Mount::Secret {
                id,
                target: f.target,
                env: f.env,
                required: f.required.unwrap_or(false),
                mode: f.mode,
                uid: f.uid,
                gid: f.gid,
            }
        }
        _ => Mount::Ssh {
            id: f.id,
            target: f.target,
            required: f.required.unwrap_or(false),
            mode: f.mode,
            uid: f.uid,
            gid: f.gid,
        },
    })
}

/// Whether `v` is a number Go's `strconv.ParseUint(v, radix, 32)` takes: digits of the radix
/// only (Rust's parser would also take a leading `+`).
fn go_uint(v: &str, radix: u32) -> bool {
    !v.is_empty() && v.chars().all(|c| c.is_digit(radix)) && u32::from_str_radix(v, radix).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rules() {
        assert_eq!(csv_fields("a,b,,c").unwrap(), ["a", "b", "", "c"]);
        assert_eq!(csv_fields(r#""a,b",c"#).unwrap(), ["a,b", "c"]);
        assert_eq!(csv_fields(r#""a""b""#).unwrap(), [r#"a"b"#]);
        assert!(csv_fields(r#"a"b"#).is_err());
        assert!(csv_fields(r#""ab"c"#).is_err());
        assert!(csv_fields(r#""ab"#).is_err());
        assert!(csv_fields("").is_err());
    }

    #[test]
    fn bind_defaults_readonly() {
        assert_eq!(
            parse_mount("target=/src,from=build,source=/out").unwrap(),
            Mount::Bind {
                target: "/src".into(),
                source: Some("/out".into()),
                from: Some("build".into()),
                readonly: true
            }
        );
        assert!(matches!(
            parse_mount("type=bind,dst=/x,rw").unwrap(),
            Mount::Bind {
                readonly: false,
                ..
            }
        ));
    }

    #[test]
    fn cache_with_options() {
        assert_eq!(
            parse_mount(
                "type=cache,target=/root/.cache,id=pip,sharing=LOCKED,mode=0755,uid=1000,gid=$GID"
            )
            .unwrap(),
            Mount::Cache {
                target: "/root/.cache".into(),
                id: Some("pip".into()),
                sharing: Sharing::Locked,
                from: None,
                source: None,
                readonly: false,
                mode: Some("0755".into()),
                uid: Some("1000".into()),
                gid: Some("$GID".into()),
            }
        );
    }

    #[test]
    fn secret_ssh_tmpfs() {
        assert!(matches!(
            parse_mount("type=secret,id=tok,env=TOKEN,required").unwrap(),
            Mount::Secret { required: true, .. }
        ));
        assert!(matches!(
            parse_mount("type=ssh").unwrap(),
            Mount::Ssh {
                required: false,
                ..
            }
        ));
        assert!(matches!(
            parse_mount("type=tmpfs,target=/t,size=64m").unwrap(),
            Mount::Tmpfs { .. }
        ));
    }

    #[test]
    fn mount_errors() {
        for (spec, msg) in [
            ("type=nfs,target=/x", "unsupported mount type"),
            ("type=cache", "requires a target"),
            ("type=bind,target=/x,size=1", "unexpected key"),
            ("type=tmpfs,target=/x,size=lots", "invalid size"),
            ("type=cache,target=/x,sharing=maybe", "unsupported sharing"),
            ("type=cache,target=/x,mode=999", "not an octal"),
            ("type=cache,target=/x,uid=-1", "not a number"),
            ("type=cache,target=/x,uid=+5", "not a number"),
            ("type=cache,target=/x,mode=+755", "not an octal"),
            ("type=cache,target=/x,mode=0o755", "not an octal"),
            ("type=secret", "requires an id"),
            ("type=secret,id=a,source=b", "both source and id"),
            ("type=bind,target=/x,required", "unexpected key"),
            ("type=bind,target", "key=value"),
            ("target=/x,from=$STAGE", "variable expansion"),
            ("target=/x,ro=maybe", "invalid value"),
            ("target=/x,bogus=1", "unexpected key"),
        ] {
            let e = parse_mount(spec).unwrap_err();
            assert!(e.contains(msg), "{spec}: {e}");
        }
    }
}
