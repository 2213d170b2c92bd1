//! From a reference's registry name to the host to contact, and whether plain HTTP is allowed.

use crate::reference::DEFAULT_DOMAIN;

/// The Docker Hub API host behind `docker.io`.
pub const DOCKER_HUB_HOST: &str = "registry-1.docker.io";

/// Where a registry lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The registry as references name it (`docker.io`, `127.0.0.1:5000`).
    pub registry: String,
    /// The `host[:port]` contacted (`registry-1.docker.io`, `127.0.0.1:5000`).
    pub host: String,
    /// Plain HTTP (and TLS without verification) allowed.
    pub insecure: bool,
}

impl Endpoint {
    /// The endpoint of `registry` given the user's insecure list.
    pub fn new(registry: &str, insecure_registries: &[String]) -> Endpoint {
        let host = if registry == DEFAULT_DOMAIN || registry == "index.docker.io" {
            DOCKER_HUB_HOST.to_string()
        } else {
            registry.to_string()
        };
        let insecure = is_default_insecure(registry)
            || insecure_registries
                .iter()
                .any(|r| r.trim_end_matches('/') == registry || r.trim_end_matches('/') == host);
        Endpoint {
            registry: registry.to_string(),
            host,
            insecure,
        }
    }
}

/// `localhost`, `127.0.0.0/8` and `::1` (with any port) are insecure by default, as in Docker.
/// Other private ranges are not: they need `--insecure-registry`.
pub fn is_default_insecure(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split_once(']').map_or(rest, |(h, _)| h)
    } else {
        registry.rsplit_once(':').map_or(registry, |(h, _)| h)
    };
    if host == "localhost" || host == "::1" {
        return true;
    }
    match host.parse::<std::net::Ipv4Addr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_maps_to_registry_1() {
        let e = Endpoint::new("docker.io", &[]);
        assert_eq!(e.host, "registry-1.docker.io");
        assert!(!e.insecure);
        assert_eq!(Endpoint::new("quay.io", &[]).host, "quay.io");
    }

    #[test]
    fn loopback_is_insecure_private_ranges_are_not() {
        for r in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
        ] {
            assert!(Endpoint::new(r, &[]).insecure, "{r}");
        }
        for r in [
            "10.0.0.1:5000",
            "192.168.1.10",
            "172.16.0.1:443",
            "localhost.example.com",
            "registry.local:5000",
        ] {
            assert!(!Endpoint::new(r, &[]).insecure, "{r}");
        }
        assert!(Endpoint::new("10.0.0.1:5000", &["10.0.0.1:5000".into()]).insecure);
        assert!(!Endpoint::new("10.0.0.1:5001", &["10.0.0.1:5000".into()]).insecure);
    }
}
