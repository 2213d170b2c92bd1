//! `WWW-Authenticate` challenges (RFC 7235) and the token response of the Docker token flow.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Deserialize;

/// One authentication challenge: a scheme and its parameters (names lower-cased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `bearer`, `basic` (lower case).
    pub scheme: String,
    /// `realm`, `service`, `scope`, `error`, ...
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    /// A parameter by (lower-case) name.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

fn skip_ws(s: &[u8], mut i: usize) -> usize {
    while s.get(i).is_some_and(|c| *c == b' ' || *c == b'\t') {
        i += 1;
    }
    i
}

fn is_token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/".contains(&c)
}

/// Parses a `WWW-Authenticate` header value into its challenges. Unparseable tails are ignored.
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let bytes = header.as_bytes();
    let mut out: Vec<Challenge> = Vec::new();
    let mut pos = 0;
    loop {
        pos = skip_ws(bytes, pos);
        while bytes.get(pos) == Some(&b',') {
            pos = skip_ws(bytes, pos + 1);
        }
        if pos >= bytes.len() {
            break;
        }
        // a token: a scheme, or a parameter name of the current challenge
        let start = pos;
        while bytes
            .get(pos)
            .is_some_and(|c| is_token_char(*c) && *c != b'=')
        {
            pos += 1;
        }
        if pos == start {
            break;
        }
        let word = header
            .get(start..pos)
            .unwrap_or_default()
            .to_ascii_lowercase();
        let j = skip_ws(bytes, pos);
        if bytes.get(j) == Some(&b'=') && !out.is_empty() {
            // name=value
            let mut k = skip_ws(bytes, j + 1);
            let value = if bytes.get(k) == Some(&b'"') {
                k += 1;
                let mut v = Vec::new();
                while let Some(&c) = bytes.get(k) {
                    k += 1;
                    match c {
                        b'"' => break,
                        b'\\' => {
                            if let Some(&n) = bytes.get(k) {
                                v.push(n);
                                k += 1;
                            }
                        }
                        _ => v.push(c),
                    }
                }
                String::from_utf8_lossy(&v).into_owned()
            } else {
                let vs = k;
                while bytes.get(k).is_some_and(|c| *c != b',' && *c != b' ') {
                    k += 1;
                }
                header.get(vs..k).unwrap_or_default().to_string()
            };
            if let Some(c) = out.last_mut() {
                c.params.insert(word, value);
            }
            pos = k;
        } else {
            out.push(Challenge {
                scheme: word,
                params: BTreeMap::new(),
            });
            pos = j;
        }
    }
    out
}

/// The token endpoint's answer (`token` or OAuth2 `access_token`).
#[derive(Debug, Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    /// Seconds; the spec's default is 60.
    #[serde(default)]
    pub expires_in: Option<u64>,
}

impl TokenResponse {
    pub(crate) fn into_token(self) -> Option<(String, u64)> {
        let t = self
            .token
            .filter(|t| !t.is_empty())
            .or(self.access_token.filter(|t| !t.is_empty()))?;
        Some((t, self.expires_in.unwrap_or(60).max(10)))
    }
}

/// Percent-encodes a query value (RFC 3986 unreserved characters kept).
pub(crate) fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_hub_challenge() {
        let c = parse_challenges(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c[0].param("service"), Some("registry.docker.io"));
        assert_eq!(c[0].param("scope"), Some("repository:library/busybox:pull"));
    }

    #[test]
    fn parses_several_challenges_and_escapes() {
        let c = parse_challenges(
            r#"Basic realm="Registry \"R\"", Bearer realm=https://x/t,service=s ,error="insufficient_scope""#,
        );
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].param("realm"), Some("Registry \"R\""));
        assert_eq!(c[1].scheme, "bearer");
        assert_eq!(c[1].param("realm"), Some("https://x/t"));
        assert_eq!(c[1].param("service"), Some("s"));
        assert_eq!(c[1].param("error"), Some("insufficient_scope"));
    }

    #[test]
    fn garbage_does_not_panic() {
        for h in [
            "",
            ",,,",
            "=",
            "Bearer =",
            "Bearer realm=\"unterminated",
            "\u{1F600}=x",
        ] {
            let _ = parse_challenges(h);
        }
    }

    #[test]
    fn token_response_forms() {
        let t: TokenResponse = serde_json::from_str(r#"{"token":"a","expires_in":300}"#).unwrap();
        assert_eq!(t.into_token(), Some(("a".into(), 300)));
        let t: TokenResponse = serde_json::from_str(r#"{"access_token":"b"}"#).unwrap();
        assert_eq!(t.into_token(), Some(("b".into(), 60)));
        let t: TokenResponse = serde_json::from_str(r#"{"token":""}"#).unwrap();
        assert_eq!(t.into_token(), None);
        assert_eq!(
            url_encode("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
    }
}
