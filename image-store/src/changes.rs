//! Dockerfile-style config changes for `import --change` and `commit --change`
//! (`CMD`, `ENTRYPOINT`, `ENV`, `LABEL`, `EXPOSE`, `USER`, `WORKDIR`, `VOLUME`, `STOPSIGNAL`,
//! `ONBUILD`, `SHELL`), as `docker import/commit --change` accept them.

use crate::error::{Result, StoreError};
use crate::oci::ContainerConfig;

fn bad(change: &str, reason: &str) -> StoreError {
    StoreError::Invalid {
        what: format!("change {change:?}"),
        reason: reason.to_string(),
    }
}

/// JSON array form, or shell form wrapped in `shell` (default `/bin/sh -c`).
fn command(change: &str, rest: &str, shell: &[String]) -> Result<Vec<String>> {
    if rest.starts_with('[')
        && let Ok(v) = serde_json::from_str::<Vec<String>>(rest)
    {
        return Ok(v);
    }
    if rest.is_empty() {
        return Err(bad(change, "missing command"));
    }
    let mut v = shell.to_vec();
    v.push(rest.to_string());
    Ok(v)
}

/// Splits `a "b c" d\ e` into words (double/single quotes and backslash escapes).
fn words(change: &str, s: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"') | None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_word = true;
            }
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err(bad(change, "unterminated quote"));
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// `K=V K2="v 2"` or the legacy `K V...` form.
fn pairs(change: &str, rest: &str) -> Result<Vec<(String, String)>> {
    let ws = words(change, rest)?;
    if ws.first().is_some_and(|w| !w.contains('=')) {
        let mut it = rest.trim().splitn(2, char::is_whitespace);
        let k = it.next().unwrap_or_default().to_string();
        let v = it.next().unwrap_or_default().trim().to_string();
        return Ok(vec![(k, v)]);
    }
    ws.into_iter()
        .map(|w| {
            w.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| bad(change, "expected KEY=VALUE"))
        })
        .collect()
}

/// Applies one change line to `cfg`.
pub fn apply_change(cfg: &mut ContainerConfig, change: &str) -> Result<()> {
    let trimmed = change.trim();
    let (kw, rest) = trimmed
        .split_once(char::is_whitespace)
        .map_or((trimmed, ""), |(k, r)| (k, r.trim()));
    let shell = cfg
        .shell
        .clone()
        .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
    match kw.to_ascii_uppercase().as_str() {
        "CMD" => cfg.cmd = Some(command(change, rest, &shell)?),
        "ENTRYPOINT" => {
            cfg.entrypoint = Some(command(change, rest, &shell)?);
            cfg.cmd = None;
        }
        "SHELL" => {
            let v: Vec<String> =
                serde_json::from_str(rest).map_err(|_| bad(change, "SHELL needs a JSON array"))?;
            if v.is_empty() {
                return Err(bad(change, "SHELL needs a JSON array"));
            }
            cfg.shell = Some(v);
        }
        "ENV" => {
            let env = cfg.env.get_or_insert_with(Vec::new);
            for (k, v) in pairs(change, rest)? {
                env.retain(|e| e.split_once('=').map_or(e.as_str(), |(ek, _)| ek) != k);
                env.push(format!("{k}={v}"));
            }
        }
        "LABEL" => {
            let labels = cfg.labels.get_or_insert_with(Default::default);
            for (k, v) in pairs(change, rest)? {
                labels.insert(k, v);
            }
        }
        "EXPOSE" => {
            let ports = cfg.exposed_ports.get_or_insert_with(Default::default);
            for p in words(change, rest)? {
                let p = if p.contains('/') {
                    p
                } else {
                    format!("{p}/tcp")
                };
                ports.insert(p, serde_json::json!({}));
            }
        }
        "VOLUME" => {
            let vols = cfg.volumes.get_or_insert_with(Default::default);
            let list: Vec<String> = if rest.starts_with('[') {
                serde_json::from_str(rest).map_err(|_| bad(change, "invalid JSON array"))?
            } else {
                words(change, rest)?
            };
            for v in list {
                vols.insert(v, serde_json::json!({}));
            }
        }
        "USER" if !rest.is_empty() => cfg.user = Some(rest.to_string()),
        "WORKDIR" if !rest.is_empty() => {
            let base = cfg.working_dir.clone().unwrap_or_else(|| "/".into());
            cfg.working_dir = Some(if rest.starts_with('/') {
                rest.to_string()
            } else {
                format!("{}/{rest}", base.trim_end_matches('/'))
            });
        }
        "STOPSIGNAL" if !rest.is_empty() => cfg.stop_signal = Some(rest.to_string()),
        "ONBUILD" if !rest.is_empty() => cfg
            .on_build
            .get_or_insert_with(Vec::new)
            .push(rest.to_string()),
        "USER" | "WORKDIR" | "STOPSIGNAL" | "ONBUILD" => {
            return Err(bad(change, "missing argument"));
        }
        _ => return Err(bad(change, "unsupported instruction")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_changes() {
        let mut c = ContainerConfig::default();
        for ch in [
            "CMD echo hi",
            r#"ENV A=1 B="two words""#,
            "ENV A 3",
            "LABEL a=b",
            "EXPOSE 80 53/udp",
            "WORKDIR /app",
            "WORKDIR sub",
            "USER 1000:1000",
            r#"VOLUME ["/data"]"#,
        ] {
            apply_change(&mut c, ch).unwrap();
        }
        assert_eq!(c.cmd.as_deref().unwrap(), ["/bin/sh", "-c", "echo hi"]);
        assert_eq!(c.env.as_deref().unwrap(), ["B=two words", "A=3"]);
        assert!(c.exposed_ports.as_ref().unwrap().contains_key("80/tcp"));
        assert!(c.exposed_ports.as_ref().unwrap().contains_key("53/udp"));
        assert_eq!(c.working_dir.as_deref(), Some("/app/sub"));
        assert_eq!(c.user.as_deref(), Some("1000:1000"));
        assert!(c.volumes.as_ref().unwrap().contains_key("/data"));
        apply_change(&mut c, r#"ENTRYPOINT ["/bin/app"]"#).unwrap();
        assert_eq!(c.entrypoint.as_deref().unwrap(), ["/bin/app"]);
        assert_eq!(c.cmd, None);
        assert!(apply_change(&mut c, "RUN x").is_err());
        assert!(apply_change(&mut c, "ENV =x").is_err());
        assert!(apply_change(&mut c, "USER").is_err());
    }
}
