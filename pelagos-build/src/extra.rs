//! buildx flags that users' scripts pass to `docker build`, beyond the core ones in [`crate::cli`]:
//! `--build-context`, `--add-host`, `--no-cache-filter`, `--shm-size`, `--ulimit`, `--allow`,
//! `--load`, `--provenance`, `--sbom` and `--attest`.

use std::fmt::Write as _;

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
    /// `--add-host HOST:host-gateway` where the step cannot reach the host.
    #[error("--add-host host-gateway: {0}")]
    HostGateway(&'static str),
    /// Writing the hosts file failed.
    #[error("{0}: {1}")]
    Io(std::path::PathBuf, std::io::Error),
    /// A bad `--ulimit`.
    #[error("invalid --ulimit {value:?}: {reason}")]
    Ulimit {
        /// The value given.
        value: String,
        /// Why.
        reason: String,
    },
    /// An `--allow` value that is no entitlement.
    #[error("invalid --allow {0:?}: expected network.host or security.insecure")]
    Entitlement(String),
    /// A step needs an entitlement that `--allow` did not grant.
    #[error(
        "{step}: {entitlement} is not allowed (RUN --security=insecure needs --allow {entitlement})"
    )]
    NotAllowed {
        /// The step (`RUN ...` with its line).
        step: String,
        /// The entitlement (`security.insecure`).
        entitlement: &'static str,
    },
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
    /// A resource limit of RUN steps, Docker's `TYPE=SOFT[:HARD]` (`-1` = unlimited;
    /// repeatable; the last one of a type wins).
    #[arg(long = "ulimit", value_name = "TYPE=SOFT[:HARD]")]
    pub ulimits: Vec<String>,
    /// Grant an entitlement: `security.insecure` (for `RUN --security=insecure`) or
    /// `network.host` (always granted, as by dockerd's builder) (repeatable, comma-separated).
    #[arg(long = "allow", value_name = "ENTITLEMENT", value_delimiter = ',')]
    pub allow: Vec<String>,
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
    /// `--ulimit`s, one per type (the last given wins), sorted by type.
    pub rlimits: Vec<ns_run::Rlimit>,
    /// `--allow security.insecure` was given.
    pub allow_insecure: bool,
}

/// The entitlement of `RUN --security=insecure`.
pub const SECURITY_INSECURE: &str = "security.insecure";

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
        let mut rlimits: Vec<ns_run::Rlimit> = Vec::new();
        for u in &self.ulimits {
            let l: ns_run::Rlimit = u.parse().map_err(|reason| ExtraError::Ulimit {
                value: u.clone(),
                reason,
            })?;
            rlimits.retain(|x| x.kind != l.kind);
            rlimits.push(l);
        }
        rlimits.sort_by_key(|l| l.kind);
        let mut allow_insecure = false;
        for a in &self.allow {
            match a.trim() {
                SECURITY_INSECURE => allow_insecure = true,
                "network.host" => {}
                other => return Err(ExtraError::Entitlement(other.to_string())),
            }
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
            rlimits,
            allow_insecure,
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

thread_local! {
    static NO_CACHE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// `--no-cache-filter` while the steps of one stage run: the executor enters it in the thread
/// that runs the stage (its steps run there in order), cache lookups ask [`stage_no_cache`].
#[derive(Debug)]
pub struct NoCacheScope(bool);

impl NoCacheScope {
    /// Starts a scope in which cache lookups of this thread miss when `on`.
    pub fn enter(on: bool) -> Self {
        NoCacheScope(NO_CACHE.with(|c| c.replace(on)))
    }
}

impl Drop for NoCacheScope {
    fn drop(&mut self) {
        NO_CACHE.with(|c| c.set(self.0));
    }
}

/// Whether the stage running on this thread is named by `--no-cache-filter`.
pub fn stage_no_cache() -> bool {
    NO_CACHE.with(std::cell::Cell::get)
}

impl ExtraOptions {
    /// Whether `--no-cache-filter` names the stage `name`.
    pub fn no_cache_stage(&self, name: Option<&str>) -> bool {
        name.is_some_and(|n| self.no_cache_filter.iter().any(|f| f == n))
    }

    /// The part of a RUN step's cache key from these flags (empty without them, so keys of
    /// builds without them do not change); as in BuildKit, extra hosts and the shm size are
    /// part of the exec's definition.
    pub fn run_key_part(&self) -> String {
        let mut s = String::new();
        for (h, ip) in &self.add_hosts {
            let _ = write!(s, " add-host={h}={ip}");
        }
        if let Some(n) = self.shm_size {
            let _ = write!(s, " shm-size={n}");
        }
        for l in &self.rlimits {
            let _ = write!(s, " ulimit={l}");
        }
        s
    }

    /// Refuses a plan with a `RUN --security=insecure` step unless `--allow security.insecure`
    /// was given (BuildKit checks entitlements before it runs anything).
    pub fn check_entitlements(&self, plan: &remfile_plan::Plan) -> Result<(), ExtraError> {
        if self.allow_insecure {
            return Ok(());
        }
        for st in &plan.stages {
            for step in &st.steps {
                if let remfile_plan::Op::Run(r) = &step.op
                    && r.security == "insecure"
                {
                    return Err(ExtraError::NotAllowed {
                        step: format!("line {}: {}", step.line, step.instruction),
                        entitlement: SECURITY_INSECURE,
                    });
                }
            }
        }
        Ok(())
    }

    /// The extra mounts of a RUN step on network `net`: `/etc/hosts` with the `--add-host`
    /// entries (as BuildKit writes them: after the defaults with the sandbox's `hostname`,
    /// `IP<TAB>HOST`), `/dev/shm` of
    /// `--shm-size`. Mount points never reach the layer (ns-run keeps them out of the upper dir).
    pub fn run_mounts(
        &self,
        net: ns_run::Network,
        hostname: &str,
        tmp: &std::path::Path,
    ) -> Result<RunMounts, ExtraError> {
        let mut out = RunMounts {
            dir: None,
            mounts: Vec::new(),
        };
        if !self.add_hosts.is_empty() {
            // ns-run's own file first
            let mut text = format!(
                "127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n"
            );
            for (h, ip) in &self.add_hosts {
                let ip = if ip == HOST_GATEWAY {
                    host_gateway(net)?
                } else {
                    ip.clone()
                };
                let _ = writeln!(text, "{ip}\t{h}");
            }
            let dir = tempfile::Builder::new()
                .prefix("add-host")
                .tempdir_in(tmp)
                .map_err(|e| ExtraError::Io(tmp.to_path_buf(), e))?;
            let p = dir.path().join("hosts");
            std::fs::write(&p, text).map_err(|e| ExtraError::Io(p.clone(), e))?;
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o644))
                .map_err(|e| ExtraError::Io(p.clone(), e))?;
            out.mounts.push(ns_run::MountSpec::Bind {
                source: p,
                target: "/etc/hosts".into(),
                readonly: true,
            });
            out.dir = Some(dir);
        }
        if let Some(n) = self.shm_size {
            out.mounts.push(ns_run::MountSpec::Tmpfs {
                target: "/dev/shm".into(),
                size: Some(n),
            });
        }
        Ok(out)
    }
}

/// Mounts for one RUN step; the files are removed when this is dropped.
#[derive(Debug)]
pub struct RunMounts {
    /// Holds the files mounted (removed on drop).
    dir: Option<tempfile::TempDir>,
    /// The mounts to add to the step's.
    pub mounts: Vec<ns_run::MountSpec>,
}

/// The address of the host as a RUN step on `net` reaches it: loopback in the host's network,
/// slirp4netns' `10.0.2.2`, pasta's gateway (the host's default gateway, which pasta maps to
/// the host).
fn host_gateway(net: ns_run::Network) -> Result<String, ExtraError> {
    match net {
        ns_run::Network::Host => Ok("127.0.0.1".into()),
        ns_run::Network::Slirp => Ok("10.0.2.2".into()),
        ns_run::Network::Pasta => std::fs::read_to_string("/proc/net/route")
            .ok()
            .and_then(|t| default_gateway(&t))
            .ok_or(ExtraError::HostGateway(
                "pasta: the host has no default gateway",
            )),
        ns_run::Network::None => Err(ExtraError::HostGateway("the step has no network")),
    }
}

/// The default route's gateway in `/proc/net/route` (hex, little-endian).
fn default_gateway(route: &str) -> Option<String> {
    route.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.get(1) != Some(&"00000000") {
            return None;
        }
        let g = u32::from_str_radix(f.get(2)?, 16)
            .ok()
            .filter(|g| *g != 0)?;
        Some(std::net::Ipv4Addr::from(g.swap_bytes()).to_string())
    })
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
    fn gateway_of_proc_net_route() {
        let t = "Iface\tDestination\tGateway \tFlags\n\
                 eth0\t0000FEA9\t00000000\t0001\n\
                 eth0\t00000000\t0101A8C0\t0003\n";
        assert_eq!(default_gateway(t).as_deref(), Some("192.168.1.1"));
        assert_eq!(default_gateway("Iface\n"), None);
        assert_eq!(host_gateway(ns_run::Network::Slirp).unwrap(), "10.0.2.2");
        assert!(host_gateway(ns_run::Network::None).is_err());
    }

    #[test]
    fn no_cache_scope_nests_and_restores() {
        assert!(!stage_no_cache());
        {
            let _a = NoCacheScope::enter(true);
            assert!(stage_no_cache());
            {
                let _b = NoCacheScope::enter(false);
                assert!(!stage_no_cache());
            }
            assert!(stage_no_cache());
        }
        assert!(!stage_no_cache());
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
            |f: &mut ExtraFlags| f.ulimits = vec!["nofile=1024:1024".into(), "as=1".into()],
        ] {
            assert!(
                matches!(
                    flags(bad),
                    Err(ExtraError::Unsupported { .. } | ExtraError::Ulimit { .. })
                ),
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

    #[test]
    fn ulimits_and_entitlements() {
        let o = flags(|f| {
            f.ulimits = vec![
                "nproc=100:200".into(),
                "nofile=10:20".into(),
                "nproc=50".into(),
            ];
            f.allow = vec!["network.host".into(), "security.insecure".into()];
        })
        .unwrap();
        let shown: Vec<String> = o.rlimits.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["nofile=10:20", "nproc=50:50"]);
        assert!(o.allow_insecure);
        assert_eq!(o.run_key_part(), " ulimit=nofile=10:20 ulimit=nproc=50:50");
        let o = flags(|f| f.allow = vec!["network.host".into()]).unwrap();
        assert!(!o.allow_insecure);
        assert_eq!(o.run_key_part(), "");
        assert!(matches!(
            flags(|f| f.allow = vec!["device".into()]),
            Err(ExtraError::Entitlement(_))
        ));
        assert!(matches!(
            flags(|f| f.ulimits = vec!["nofile=2:1".into()]),
            Err(ExtraError::Ulimit { .. })
        ));
    }
}
