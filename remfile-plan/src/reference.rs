//! Image references: validation and Docker's normalisation
//! (`busybox` → `docker.io/library/busybox:latest`).

/// An invalid image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference {reference:?}: {reason}")]
pub struct ReferenceError {
    /// The reference.
    pub reference: String,
    /// Why it is invalid.
    pub reason: String,
}

fn path_component_ok(c: &str) -> bool {
    // [a-z0-9]+ separated by '.', '_', '__' or '-'+
    if c.is_empty() {
        return false;
    }
    let bytes = c.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    c.bytes()
        .all(|b| alnum(b) || b == b'.' || b == b'_' || b == b'-')
}

fn tag_ok(t: &str) -> bool {
    let mut chars = t.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric() || c == '_')
        && t.len() <= 128
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-')
}

fn digest_ok(d: &str) -> bool {
    match d.split_once(':') {
        Some((alg, hex)) => {
            !alg.is_empty()
                && alg
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+._-".contains(c))
                && hex.len() >= 32
                && hex.chars().all(|c| c.is_ascii_hexdigit())
        }
        None => false,
    }
}

/// Validates `reference` and returns its normalised form: the default domain `docker.io`,
/// `library/` for official images, and `:latest` when neither tag nor digest is given.
pub fn normalize(reference: &str) -> Result<String, ReferenceError> {
    let err = |reason: &str| ReferenceError {
        reference: reference.to_string(),
        reason: reason.to_string(),
    };
    let (rest, digest) = match reference.split_once('@') {
        Some((r, d)) => {
            if !digest_ok(d) {
                return Err(err("invalid digest"));
            }
            (r, Some(d))
        }
        None => (reference, None),
    };
    // a tag is after the last ':' that comes after the last '/'
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest.get(last_slash..).and_then(|t| t.rfind(':')) {
        Some(i) => {
            let at = last_slash + i;
            (
                rest.get(..at).unwrap_or_default(),
                rest.get(at + 1..).map(str::to_string),
            )
        }
        None => (rest, None),
    };
    if let Some(t) = &tag {
        if !tag_ok(t) {
            return Err(err("invalid tag"));
        }
    }
    if name.is_empty() {
        return Err(err("empty name"));
    }
    let (domain, path) = match name.split_once('/') {
        Some((d, p)) if d.contains('.') || d.contains(':') || d == "localhost" => {
            (d.to_string(), p.to_string())
        }
        Some(_) => ("docker.io".to_string(), name.to_string()),
        None => ("docker.io".to_string(), format!("library/{name}")),
    };
    if domain.is_empty()
        || !domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
    {
        return Err(err("invalid domain"));
    }
    if path.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(err("repository name must be lowercase"));
    }
    if !path.split('/').all(path_component_ok) {
        return Err(err("invalid repository name"));
    }
    let mut out = format!("{domain}/{path}");
    if let Some(t) = &tag {
        out.push(':');
        out.push_str(t);
    }
    if let Some(d) = digest {
        out.push('@');
        out.push_str(d);
    }
    if tag.is_none() && digest.is_none() {
        out.push_str(":latest");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        for (i, o) in [
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:local", "docker.io/library/busybox:local"),
            ("user/app:1.2", "docker.io/user/app:1.2"),
            ("ghcr.io/o/r", "ghcr.io/o/r:latest"),
            ("localhost/x", "localhost/x:latest"),
            ("127.0.0.1:5000/a/b:t", "127.0.0.1:5000/a/b:t"),
            ("localhost:5000/a", "localhost:5000/a:latest"),
            (
                "alpine@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "docker.io/library/alpine@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            ),
        ] {
            assert_eq!(normalize(i).unwrap(), o, "{i}");
        }
    }

    #[test]
    fn rejects() {
        for bad in [
            "",
            "Busybox",
            "a b",
            "x:",
            "x:-bad",
            "x@sha256:zz",
            "/x",
            "x//y",
            "-x",
        ] {
            assert!(normalize(bad).is_err(), "{bad:?}");
        }
    }
}
