//! Image references, normalised like Docker's (`busybox` → `docker.io/library/busybox:latest`).

use std::fmt;

use crate::digest::Digest;

/// The registry used when a reference names none.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// The tag used when a reference has neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";

/// Why a reference was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid reference {input:?}: {reason}")]
pub struct ReferenceError {
    /// The input.
    pub input: String,
    /// What is wrong.
    pub reason: String,
}

/// A normalised image reference: `domain/path[:tag][@digest]`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

fn is_alnum_lower(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let (Some(&first), Some(&last)) = (b.first(), b.last()) else {
        return false;
    };
    if !is_alnum_lower(first) || !is_alnum_lower(last) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let ch = b.get(i).copied().unwrap_or_default();
        if is_alnum_lower(ch) {
            i += 1;
            continue;
        }
        // a separator run
        let start = i;
        while i < b.len() && !is_alnum_lower(b.get(i).copied().unwrap_or_default()) {
            i += 1;
        }
        let sep = c.get(start..i).unwrap_or_default();
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// Host (domain components or an IPv6 literal in brackets) with an optional port.
fn valid_domain(d: &str) -> bool {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.is_empty()
            || !v6
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return false;
        }
        match after {
            "" => ("", None),
            p => match p.strip_prefix(':') {
                Some(port) => ("", Some(port)),
                None => return false,
            },
        }
    } else {
        match d.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        }
    };
    if let Some(p) = port
        && (p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    if d.starts_with('[') {
        return true;
    }
    !host.is_empty()
        && host.split('.').all(|c| {
            let b = c.as_bytes();
            !b.is_empty()
                && b.first().is_some_and(u8::is_ascii_alphanumeric)
                && b.last().is_some_and(u8::is_ascii_alphanumeric)
                && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
        })
}

/// `[\w][\w.-]{0,127}`
fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b.first()
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// Whether the first component of a name is a registry host rather than part of the path.
fn names_a_registry(first: &str) -> bool {
    first.contains(['.', ':'])
        || first == "localhost"
        || first.bytes().any(|b| b.is_ascii_uppercase())
}

impl Reference {
    /// Parses and normalises a reference the way Docker does.
    pub fn parse(input: &str) -> Result<Reference, ReferenceError> {
        let err = |reason: &str| ReferenceError {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        if input.is_empty() {
            return Err(err("empty reference"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((r, d)) => (
                r,
                Some(Digest::parse(d).map_err(|e| err(&format!("bad digest: {e}")))?),
            ),
            None => (input, None),
        };
        // a tag is a ':' after the last '/'
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest.get(last_slash..).and_then(|s| s.rfind(':')) {
            Some(i) => {
                let colon = last_slash + i;
                (
                    rest.get(..colon).unwrap_or_default(),
                    Some(rest.get(colon + 1..).unwrap_or_default()),
                )
            }
            None => (rest, None),
        };
        if let Some(t) = tag
            && !valid_tag(t)
        {
            return Err(err("invalid tag"));
        }
        if name.is_empty() {
            return Err(err("empty repository name"));
        }
        let (mut domain, mut path) = match name.split_once('/') {
            Some((first, remainder)) if names_a_registry(first) => {
                (first.to_string(), remainder.to_string())
            }
            _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
        };
        if domain == "index.docker.io" {
            domain = DEFAULT_DOMAIN.to_string();
        }
        if !valid_domain(&domain) {
            return Err(err("invalid registry host"));
        }
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(err("repository name must be lowercase"));
        }
        if !path.split('/').all(valid_path_component) {
            return Err(err("invalid repository name"));
        }
        if domain == DEFAULT_DOMAIN && !path.contains('/') {
            path = format!("library/{path}");
        }
        if domain.len() + 1 + path.len() > 255 {
            return Err(err("repository name longer than 255 characters"));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// The registry host (`docker.io`, `localhost:5000`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path inside the registry (`library/busybox`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// `domain/path`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The tag, if any (always set unless a digest was given alone).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        if !valid_tag(tag) {
            return Err(ReferenceError {
                input: tag.to_string(),
                reason: "invalid tag".to_string(),
            });
        }
        Ok(Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        })
    }

    /// The same repository pinned to a digest (no tag).
    #[must_use]
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: None,
            digest: Some(digest),
        }
    }

    /// Docker's short form: `busybox:latest`, `me/app:1`, `localhost:5000/app:latest`. A
    /// `docker.io` path whose first component reads as a registry host (`docker.io/me.io/app`)
    /// keeps its domain, so the short form always parses back to the same image (Docker's
    /// `FamiliarString` drops it and names another registry).
    pub fn familiar(&self) -> String {
        let short = self
            .path
            .strip_prefix("library/")
            .filter(|p| !p.contains('/'))
            .unwrap_or(&self.path);
        let mut s = match short.split_once('/') {
            Some((first, _)) if self.domain == DEFAULT_DOMAIN && !names_a_registry(first) => {
                short.to_string()
            }
            None if self.domain == DEFAULT_DOMAIN => short.to_string(),
            _ => self.name(),
        };
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d.as_str());
        }
        s
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}

impl std::str::FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> String {
        Reference::parse(s).unwrap().to_string()
    }

    #[test]
    fn normalises_like_docker() {
        assert_eq!(n("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(n("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(n("me/app"), "docker.io/me/app:latest");
        assert_eq!(n("index.docker.io/me/app:2"), "docker.io/me/app:2");
        assert_eq!(n("docker.io/busybox"), "docker.io/library/busybox:latest");
        assert_eq!(n("localhost:5000/app"), "localhost:5000/app:latest");
        assert_eq!(n("localhost/app:v1"), "localhost/app:v1");
        assert_eq!(n("quay.io/a/b/c:x"), "quay.io/a/b/c:x");
        assert_eq!(
            n("127.0.0.1:5000/a.b__c-d--e:t"),
            "127.0.0.1:5000/a.b__c-d--e:t"
        );
        assert_eq!(n("[::1]:5000/app"), "[::1]:5000/app:latest");
        let d = Digest::of(b"x");
        assert_eq!(
            n(&format!("busybox@{d}")),
            format!("docker.io/library/busybox@{d}")
        );
        assert_eq!(
            n(&format!("busybox:1@{d}")),
            format!("docker.io/library/busybox:1@{d}")
        );
    }

    #[test]
    fn familiar_form() {
        let f = |s: &str| Reference::parse(s).unwrap().familiar();
        assert_eq!(f("busybox"), "busybox:latest");
        assert_eq!(f("me/app:1"), "me/app:1");
        assert_eq!(f("localhost:5000/app"), "localhost:5000/app:latest");
    }

    #[test]
    fn familiar_form_parses_back_to_the_same_image() {
        // found by fuzz/fuzz_targets/reference.rs: the short form of this reference used to be
        // `medocker.io/me/m/ap/m/app:v1`, an image on the registry medocker.io
        for s in [
            "docker.io/medocker.io/me/m/ap/m/app:v1",
            "docker.io/localhost/app",
            "docker.io/library/a.b/c",
        ] {
            let r = Reference::parse(s).unwrap();
            assert_eq!(Reference::parse(&r.familiar()).unwrap(), r, "{s}");
        }
        assert_eq!(
            Reference::parse("docker.io/me.io/app:v1")
                .unwrap()
                .familiar(),
            "docker.io/me.io/app:v1"
        );
        assert_eq!(
            Reference::parse("docker.io/me/app.io").unwrap().familiar(),
            "me/app.io:latest"
        );
    }

    #[test]
    fn rejects_bad_references() {
        for bad in [
            "",
            "Busybox",
            "busybox:",
            "busybox:-x",
            "a//b",
            "a/",
            "/a",
            "a..b",
            "a_-b",
            "busybox@sha256:123",
            "localhost:abc/x",
            "UPPER.example/Repo",
            "ex ample/app",
            "app:t a g",
            &format!("x:{}", "t".repeat(129)),
            &"a".repeat(300),
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn port_is_not_a_tag() {
        let r = Reference::parse("localhost:5000/app").unwrap();
        assert_eq!(r.domain(), "localhost:5000");
        assert_eq!(r.path(), "app");
        assert_eq!(r.tag(), Some("latest"));
    }
}
