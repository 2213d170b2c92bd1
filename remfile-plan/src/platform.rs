//! Platforms (`os/arch[/variant]`), normalised as containerd does, and the predefined
//! platform build args.

use std::fmt;

/// A platform.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    /// `linux`, `windows`, ...
    pub os: String,
    /// `amd64`, `arm64`, `arm`, `386`, `riscv64`, ...
    pub architecture: String,
    /// `v7`, `v6`, ... (empty when none).
    pub variant: String,
}

/// An invalid platform string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid platform {value:?}: {reason}")]
pub struct PlatformError {
    /// The string given.
    pub value: String,
    /// Why it is invalid.
    pub reason: String,
}

fn valid_part(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

impl Platform {
    /// Parses `os/arch[/variant]` and normalises it (`x86_64` → `amd64`, `aarch64` → `arm64`,
    /// `armhf` → `arm/v7`, `arm` → `arm/v7`, `arm64/v8` → `arm64`, ...).
    pub fn parse(value: &str) -> Result<Platform, PlatformError> {
        let err = |reason: &str| PlatformError {
            value: value.to_string(),
            reason: reason.to_string(),
        };
        let parts: Vec<&str> = value.split('/').collect();
        let (os, arch, variant) = match parts.as_slice() {
            // one part, as containerd's platforms.Parse: a known OS on this machine's
            // architecture, else a known architecture on linux
            [one] if valid_part(one) => {
                return Self::parse_one(one)
                    .ok_or_else(|| err("unknown operating system or architecture"));
            }
            [os, arch] => (*os, *arch, ""),
            [os, arch, variant] => (*os, *arch, *variant),
            _ => return Err(err("expected os/arch[/variant]")),
        };
        if !valid_part(os) || !valid_part(arch) || !(variant.is_empty() || valid_part(variant)) {
            return Err(err("parts must be non-empty and made of [A-Za-z0-9_.-]"));
        }
        if parts.len() == 3 && variant.is_empty() {
            return Err(err("empty variant"));
        }
        let mut os = os.to_ascii_lowercase();
        if os == "macos" {
            os = "darwin".into();
        }
        let (architecture, variant) =
            normalize_arch(&arch.to_ascii_lowercase(), &variant.to_ascii_lowercase());
        Ok(Platform {
            os,
            architecture,
            variant,
        })
    }

    fn parse_one(one: &str) -> Option<Platform> {
        const OSES: &[&str] = &[
            "aix",
            "android",
            "darwin",
            "dragonfly",
            "freebsd",
            "hurd",
            "illumos",
            "ios",
            "js",
            "linux",
            "nacl",
            "netbsd",
            "openbsd",
            "plan9",
            "solaris",
            "windows",
            "zos",
        ];
        const ARCHES: &[&str] = &[
            "386",
            "amd64",
            "amd64p32",
            "arm",
            "armbe",
            "arm64",
            "arm64be",
            "ppc64",
            "ppc64le",
            "loong64",
            "mips",
            "mipsle",
            "mips64",
            "mips64le",
            "mips64p32",
            "mips64p32le",
            "ppc",
            "riscv",
            "riscv64",
            "s390",
            "s390x",
            "sparc",
            "sparc64",
            "wasm",
        ];
        let mut lower = one.to_ascii_lowercase();
        if lower == "macos" {
            lower = "darwin".into();
        }
        if OSES.contains(&lower.as_str()) {
            let host = Self::host();
            return Some(Platform { os: lower, ..host });
        }
        let (architecture, variant) = normalize_arch(&lower, "");
        ARCHES.contains(&architecture.as_str()).then(|| Platform {
            os: "linux".into(),
            architecture,
            variant,
        })
    }

    /// The platform of this machine (linux and the compiled-in architecture).
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "arm" => "arm",
            "powerpc64" => "ppc64le",
            "riscv64" => "riscv64",
            "s390x" => "s390x",
            "loongarch64" => "loong64",
            other => other,
        };
        let (architecture, variant) = normalize_arch(arch, "");
        Platform {
            os: "linux".into(),
            architecture,
            variant,
        }
    }

    /// The predefined args of this platform with the given prefix (`TARGET` or `BUILD`):
    /// `PLATFORM`, `OS`, `ARCH`, `VARIANT` (the variant is set, possibly empty).
    pub fn args(&self, prefix: &str) -> Vec<(String, String)> {
        vec![
            (format!("{prefix}PLATFORM"), self.to_string()),
            (format!("{prefix}OS"), self.os.clone()),
            (format!("{prefix}ARCH"), self.architecture.clone()),
            (format!("{prefix}VARIANT"), self.variant.clone()),
        ]
    }
}

fn normalize_arch(arch: &str, variant: &str) -> (String, String) {
    let (a, v) = match (arch, variant) {
        ("i386", _) => ("386", ""),
        ("x86_64" | "x86-64" | "amd64", "v1") => ("amd64", ""),
        ("x86_64" | "x86-64" | "amd64", v) => ("amd64", v),
        ("aarch64" | "arm64", "8" | "v8") => ("arm64", ""),
        ("aarch64" | "arm64", v) => ("arm64", v),
        ("armel", _) => ("arm", "v6"),
        ("armhf", _) | ("arm", "" | "7") => ("arm", "v7"),
        ("arm", "5" | "6" | "8") => {
            return ("arm".into(), format!("v{variant}"));
        }
        (a, v) => (a, v),
    };
    (a.to_string(), v.to_string())
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises() {
        for (input, want) in [
            ("linux/amd64", "linux/amd64"),
            ("linux/x86_64", "linux/amd64"),
            ("Linux/AMD64", "linux/amd64"),
            ("linux/aarch64", "linux/arm64"),
            ("linux/arm64/v8", "linux/arm64"),
            ("linux/arm", "linux/arm/v7"),
            ("linux/armhf", "linux/arm/v7"),
            ("linux/armel", "linux/arm/v6"),
            ("linux/arm/6", "linux/arm/v6"),
            ("linux/arm/v5", "linux/arm/v5"),
            ("linux/i386", "linux/386"),
            ("linux/riscv64", "linux/riscv64"),
            ("windows/amd64", "windows/amd64"),
            ("linux/amd64/v3", "linux/amd64/v3"),
            // one part: a known OS on the host's architecture, or an architecture on linux
            ("amd64", "linux/amd64"),
            ("x86_64", "linux/amd64"),
            ("ARM64", "linux/arm64"),
            ("armhf", "linux/arm/v7"),
        ] {
            assert_eq!(Platform::parse(input).unwrap().to_string(), want, "{input}");
        }
    }

    #[test]
    fn a_lone_os_takes_the_host_architecture() {
        let p = Platform::parse("Linux").unwrap();
        assert_eq!(p, Platform::host());
        assert_eq!(Platform::parse("windows").unwrap().os, "windows");
    }

    #[test]
    fn rejects_invalid() {
        for bad in [
            "",
            "nosuch",
            "linux/",
            "/amd64",
            "linux/amd64/",
            "a/b/c/d",
            "linux/am d64",
            "linux/ämd",
        ] {
            assert!(Platform::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn args_have_empty_variant() {
        let p = Platform::parse("linux/amd64").unwrap();
        let a = p.args("TARGET");
        assert!(a.contains(&("TARGETVARIANT".into(), String::new())));
        assert!(a.contains(&("TARGETPLATFORM".into(), "linux/amd64".into())));
        let arm = Platform::parse("linux/arm/v7").unwrap().args("BUILD");
        assert!(arm.contains(&("BUILDVARIANT".into(), "v7".into())));
        assert!(arm.contains(&("BUILDARCH".into(), "arm".into())));
    }
}
