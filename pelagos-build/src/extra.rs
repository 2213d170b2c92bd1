//! buildx flags that users' scripts pass to `docker build`, beyond the core ones in [`crate::cli`]:
//! `--build-context`, `--add-host`, `--no-cache-filter`, `--shm-size`, `--ulimit`, `--load`,
//! `--provenance`, `--sbom` and `--attest`.

use clap::Args;

use crate::contexts::NamedContext;

/// An invalid value of one of these flags.
#[derive(Debug, thiserror::Error)]
pub enum ExtraError {
    /// A bad `--build-context`.
    #[error(transparent)]
    Context(#[from] crate::contexts::ContextError),
    /// A bad `--add-host`.
    #[error("invalid --add-host {0:?}: expected HOST:IP or HOST=IP (IP may be host-gateway)")]
    AddHost(String),
    /// A bad `--shm-size`.
    #[error("invalid --shm-size {0:?}: expected a size such as 128m, 1g or 65536")]
    ShmSize(String),
    /// A flag whose feature pelagos build does not have.
    #[error("{flag} {value:?} is not supported: {reason}")]
    Unsupported {
        /// The flag.
        flag: &'static str,
        /// The value given.
        value: String,
        /// Why.
        reason: &'static str,
    },
}

/// The flags, flattened into [`crate::cli::Cli`].
#[derive(Debug, Clone, Default, Args)]
pub struct ExtraFlags {
    /// A named context: `NAME=DIR`, `NAME=docker-image://REF` or
    /// `NAME=oci-layout://PATH[:TAG|@DIGEST]`; it replaces the image or stage `NAME` in `FROM`,
    /// `COPY --from` and `RUN --mount from=` (repeatable).
    #[arg(long = "build-context", value_name = "NAME=VALUE")]
    pub build_contexts: Vec<String>,
    /// An `/etc/hosts` entry for RUN steps: `HOST:IP` or `HOST=IP`; `host-gateway` is the host
    /// as the step's network reaches it (repeatable).
    #[arg(long = "add-host", value_name = "HOST:IP")]
    pub add_hosts: Vec<String>,
    /// Do not use the cache for the steps of this stage (repeatable).
    #[arg(long = "no-cache-filter", value_name = "STAGE")]
    pub no_cache_filter: Vec<String>,
    /// Size of `/dev/shm` in RUN steps (bytes, or with a `k`, `m`, `g` suffix).
    #[arg(long = "shm-size", value_name = "SIZE")]
    pub shm_size: Option<String>,
    /// A resource limit of RUN steps: `TYPE=SOFT[:HARD]` (not supported: an error).
    #[arg(long = "ulimit", value_name = "TYPE=SOFT[:HARD]")]
    pub ulimits: Vec<String>,
    /// Accepted for buildx compatibility: the image is always in the store.
    #[arg(long)]
    pub load: bool,
    /// Provenance attestation: only `false` (or `0`) is accepted.
    #[arg(long, value_name = "false", num_args = 0..=1, default_missing_value = "true")]
    pub provenance: Option<String>,
    /// SBOM attestation: only `false` (or `0`) is accepted.
    #[arg(long, value_name = "false", num_args = 0..=1, default_missing_value = "true")]
    pub sbom: Option<String>,
    /// An attestation: only `type=provenance,disabled=true` / `type=sbom,disabled=true`
    /// (repeatable).
    #[arg(long, value_name = "SPEC")]
    pub attest: Vec<String>,
}

/// The validated flags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtraOptions {
    /// `--build-context`s, in order (a later one with the same name wins).
    pub build_contexts: Vec<NamedContext>,
    /// `--add-host` entries: `(host, ip)`; ip may be `host-gateway`.
    pub add_hosts: Vec<(String, String)>,
    /// `--no-cache-filter` stage names, lowercased.
    pub no_cache_filter: Vec<String>,
    /// `--shm-size` in bytes.
    pub shm_size: Option<u64>,
}

/// The `--add-host` value that names the host.
pub const HOST_GATEWAY: &str = "host-gateway";

impl ExtraFlags {
    /// Validates the flags.
    pub fn validate(&self) -> Result<ExtraOptions, ExtraError> {
        let build_contexts = self
            .build_contexts
            .iter()
            .map(|s| NamedContext::parse(s))
            .collect::<Result<Vec<_>, _>>()?;
        let add_hosts = self
            .add_hosts
            .iter()
            .map(|s| parse_add_host(s))
            .collect::<Result<Vec<_>, _>>()?;
        let shm_size = self
            .shm_size
            .as_deref()
            .map(|s| parse_size(s).ok_or_else(|| ExtraError::ShmSize(s.to_string())))
            .transpose()?;
        if let Some(u) = self.ulimits.first() {
            return Err(ExtraError::Unsupported {
                flag: "--ulimit",
                value: u.clone(),
                reason: "RUN steps cannot be given resource limits (ns-run has no rlimit support)",
            });
        }
        for (flag, v) in [("--provenance", &self.provenance), ("--sbom", &self.sbom)] {
            if let Some(v) = v
                && !is_false(v)
            {
                return Err(ExtraError::Unsupported {
                    flag,
                    value: v.clone(),
                    reason: "attestations are not produced (only false is accepted)",
                });
            }
        }
        for a in &self.attest {
            let fields: Vec<(&str, &str)> =
                a.split(',').filter_map(|f| f.split_once('=')).collect();
            let kind = fields.iter().find(|(k, _)| *k == "type").map(|(_, v)| *v);
            let disabled = fields.iter().any(|(k, v)| *k == "disabled" && *v == "true");
            if !(matches!(kind, Some("provenance" | "sbom")) && disabled) {
                return Err(ExtraError::Unsupported {
                    flag: "--attest",
                    value: a.clone(),
                    reason: "attestations are not produced (only type=provenance|sbom,disabled=true is accepted)",
                });
            }
        }
        Ok(ExtraOptions {
            build_contexts,
            add_hosts,
            no_cache_filter: self
                .no_cache_filter
                .iter()
                .map(|s| s.to_ascii_lowercase())
                .collect(),
            shm_size,
        })
    }
}

fn is_false(v: &str) -> bool {
    matches!(v, "false" | "0" | "False" | "FALSE")
}

/// Docker's `HOST:IP` / `HOST=IP` (an IPv6 address may be in brackets).
pub fn parse_add_host(s: &str) -> Result<(String, String), ExtraError> {
    let err = || ExtraError::AddHost(s.to_string());
    let (host, ip) = s
        .split_once('=')
        .or_else(|| s.split_once(':'))
        .ok_or_else(err)?;
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(err());
    }
    if ip != HOST_GATEWAY && ip.parse::<std::net::IpAddr>().is_err() {
        return Err(err());
    }
    Ok((host.to_string(), ip.to_string()))
}

/// `N[b|k|m|g]` (case-insensitive, an optional trailing `b` as in `128mb`), binary units as
/// Docker's `RAMInBytes`.
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last()? {
        'k' => (&t[..t.len() - 1], 1u64 << 10),
        'm' => (&t[..t.len() - 1], 1 << 20),
        'g' => (&t[..t.len() - 1], 1 << 30),
        't' => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: u64 = num.parse().ok()?;
    n.checked_mul(mult).filter(|n| *n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_host_forms() {
        assert_eq!(
            parse_add_host("db:10.0.0.5").unwrap(),
            ("db".to_string(), "10.0.0.5".to_string())
        );
        assert_eq!(parse_add_host("v6=[::1]").unwrap().1, "::1");
        assert_eq!(parse_add_host("v6:2001:db8::1").unwrap().1, "2001:db8::1");
        assert_eq!(parse_add_host("gw:host-gateway").unwrap().1, HOST_GATEWAY);
        for bad in ["db", "db:", ":1.2.3.4", "db:notanip", "a b:1.2.3.4"] {
            assert!(parse_add_host(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("65536"), Some(65536));
        assert_eq!(parse_size("128m"), Some(128 << 20));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("64mb"), Some(64 << 20));
        assert_eq!(parse_size("2k"), Some(2048));
        for bad in ["", "m", "x", "-1", "0", "1.5g", "é"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

    fn flags(f: impl FnOnce(&mut ExtraFlags)) -> Result<ExtraOptions, ExtraError> {
        let mut x = ExtraFlags::default();
        f(&mut x);
        x.validate()
    }

    #[test]
    fn attestations_only_off() {
        assert!(flags(|f| f.provenance = Some("false".into())).is_ok());
        assert!(flags(|f| f.sbom = Some("0".into())).is_ok());
        assert!(flags(|f| f.attest = vec!["type=provenance,disabled=true".into()]).is_ok());
        for bad in [
            |f: &mut ExtraFlags| f.provenance = Some("true".into()),
            |f: &mut ExtraFlags| f.provenance = Some("mode=max".into()),
            |f: &mut ExtraFlags| f.sbom = Some("true".into()),
            |f: &mut ExtraFlags| f.attest = vec!["type=sbom".into()],
            |f: &mut ExtraFlags| f.ulimits = vec!["nofile=1024:1024".into()],
        ] {
            assert!(
                matches!(flags(bad), Err(ExtraError::Unsupported { .. })),
                "must be refused"
            );
        }
        assert!(matches!(
            flags(|f| f.shm_size = Some("lots".into())),
            Err(ExtraError::ShmSize(_))
        ));
        let o = flags(|f| {
            f.load = true;
            f.no_cache_filter = vec!["Builder".into()];
            f.shm_size = Some("1g".into());
        })
        .unwrap();
        assert_eq!(o.no_cache_filter, ["builder"]);
        assert_eq!(o.shm_size, Some(1 << 30));
    }
}
