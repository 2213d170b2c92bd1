//! Resource limits of the command (`setrlimit`), with Docker's `--ulimit` names and syntax.
//!
//! With no `nofile` limit given, the command gets the caller's hard `RLIMIT_NOFILE` as both
//! soft and hard limit: BuildKit passes no rlimits to runc unless `--ulimit` is given (its spec
//! drops containerd's default 1024), so RUN steps inherit buildkitd's (dockerd's) own limit,
//! whose soft limit the Go runtime has raised to the hard one.
use std::fmt;
use std::io;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `RLIM_INFINITY`: no limit (`-1` in `--ulimit` and in JSON).
pub const UNLIMITED: u64 = u64::MAX;

/// A resource, by Docker's `--ulimit` name (`RLIMIT_<NAME>`; `as` is not one, as in Docker).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)] // the variants are `RLIMIT_<NAME>`
pub enum RlimitKind {
    Core,
    Cpu,
    Data,
    Fsize,
    Locks,
    Memlock,
    Msgqueue,
    Nice,
    Nofile,
    Nproc,
    Rss,
    Rtprio,
    Rttime,
    Sigpending,
    Stack,
}

impl RlimitKind {
    /// Every kind, in Docker's order of names.
    pub const ALL: [RlimitKind; 15] = [
        Self::Core,
        Self::Cpu,
        Self::Data,
        Self::Fsize,
        Self::Locks,
        Self::Memlock,
        Self::Msgqueue,
        Self::Nice,
        Self::Nofile,
        Self::Nproc,
        Self::Rss,
        Self::Rtprio,
        Self::Rttime,
        Self::Sigpending,
        Self::Stack,
    ];

    /// Docker's name (`nofile`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Core => "core",
            Self::Cpu => "cpu",
            Self::Data => "data",
            Self::Fsize => "fsize",
            Self::Locks => "locks",
            Self::Memlock => "memlock",
            Self::Msgqueue => "msgqueue",
            Self::Nice => "nice",
            Self::Nofile => "nofile",
            Self::Nproc => "nproc",
            Self::Rss => "rss",
            Self::Rtprio => "rtprio",
            Self::Rttime => "rttime",
            Self::Sigpending => "sigpending",
            Self::Stack => "stack",
        }
    }

    fn resource(self) -> libc::__rlimit_resource_t {
        match self {
            Self::Core => libc::RLIMIT_CORE,
            Self::Cpu => libc::RLIMIT_CPU,
            Self::Data => libc::RLIMIT_DATA,
            Self::Fsize => libc::RLIMIT_FSIZE,
            Self::Locks => libc::RLIMIT_LOCKS,
            Self::Memlock => libc::RLIMIT_MEMLOCK,
            Self::Msgqueue => libc::RLIMIT_MSGQUEUE,
            Self::Nice => libc::RLIMIT_NICE,
            Self::Nofile => libc::RLIMIT_NOFILE,
            Self::Nproc => libc::RLIMIT_NPROC,
            Self::Rss => libc::RLIMIT_RSS,
            Self::Rtprio => libc::RLIMIT_RTPRIO,
            Self::Rttime => libc::RLIMIT_RTTIME,
            Self::Sigpending => libc::RLIMIT_SIGPENDING,
            Self::Stack => libc::RLIMIT_STACK,
        }
    }
}

impl FromStr for RlimitKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("invalid ulimit type: {s}"))
    }
}

impl fmt::Display for RlimitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One limit: `soft <= hard`, [`UNLIMITED`] for none. JSON:
/// `{"type":"nofile","soft":1024,"hard":2048}` (`-1` = unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    /// The resource.
    #[serde(rename = "type")]
    pub kind: RlimitKind,
    /// Soft limit.
    #[serde(serialize_with = "ser_limit", deserialize_with = "de_limit")]
    pub soft: u64,
    /// Hard limit.
    #[serde(serialize_with = "ser_limit", deserialize_with = "de_limit")]
    pub hard: u64,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's signature
fn ser_limit<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    match i64::try_from(*v) {
        Ok(n) if *v != UNLIMITED => s.serialize_i64(n),
        _ => s.serialize_i64(-1),
    }
}

fn de_limit<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = i128::deserialize(d)?;
    match n {
        -1 => Ok(UNLIMITED),
        n => u64::try_from(n)
            .map_err(|_| serde::de::Error::custom(format!("invalid limit {n} (-1 is unlimited)"))),
    }
}

fn parse_value(v: &str, whole: &str) -> Result<u64, String> {
    match v.parse::<i64>() {
        Ok(-1) => Ok(UNLIMITED),
        Ok(n) => u64::try_from(n).map_err(|_| format!("invalid ulimit value {v:?} in {whole:?}")),
        Err(_) => Err(format!("invalid ulimit value {v:?} in {whole:?}")),
    }
}

/// Docker's `TYPE=SOFT[:HARD]` (`nofile=1024:2048`; `HARD` defaults to `SOFT`; `-1` is
/// unlimited; the soft limit may not exceed the hard one).
impl FromStr for Rlimit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, vals) = s
            .split_once('=')
            .ok_or_else(|| format!("invalid ulimit argument: {s}"))?;
        let kind: RlimitKind = name.parse()?;
        let mut parts = vals.split(':');
        let soft = parse_value(parts.next().unwrap_or(""), s)?;
        let hard = match parts.next() {
            Some(h) => parse_value(h, s)?,
            None => soft,
        };
        if parts.next().is_some() {
            return Err(format!(
                "too many limit value arguments - {vals}, can only have up to two, `soft[:hard]`"
            ));
        }
        if soft > hard {
            return Err(format!(
                "ulimit soft limit must be less than or equal to hard limit: {} > {}",
                show(soft),
                show(hard)
            ));
        }
        Ok(Self { kind, soft, hard })
    }
}

fn show(v: u64) -> String {
    if v == UNLIMITED {
        "-1".into()
    } else {
        v.to_string()
    }
}

impl fmt::Display for Rlimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}:{}", self.kind, show(self.soft), show(self.hard))
    }
}

fn set(kind: RlimitKind, soft: u64, hard: u64) -> io::Result<()> {
    let r = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads the struct passed.
    if unsafe { libc::setrlimit(kind.resource(), &raw const r) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Applies `limits` to the calling process (later entries of a kind win); without a `nofile`
/// entry, raises the soft `RLIMIT_NOFILE` to the hard one. Returns the failing limit.
pub(crate) fn apply(limits: &[Rlimit]) -> Result<(), (String, io::Error)> {
    for (i, l) in limits.iter().enumerate() {
        // only the last of a kind: an earlier lower hard limit could not be raised again
        if limits
            .get(i + 1..)
            .is_some_and(|rest| rest.iter().any(|x| x.kind == l.kind))
        {
            continue;
        }
        set(l.kind, l.soft, l.hard).map_err(|e| (l.to_string(), e))?;
    }
    if !limits.iter().any(|l| l.kind == RlimitKind::Nofile) {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes the struct passed.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut r) } == 0
            && r.rlim_cur != r.rlim_max
        {
            set(RlimitKind::Nofile, r.rlim_max, r.rlim_max)
                .map_err(|e| ("nofile (soft = hard)".to_string(), e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_syntax() {
        let r: Rlimit = "nofile=1024:2048".parse().unwrap();
        assert_eq!(
            r,
            Rlimit {
                kind: RlimitKind::Nofile,
                soft: 1024,
                hard: 2048
            }
        );
        assert_eq!(r.to_string(), "nofile=1024:2048");
        let r: Rlimit = "core=0".parse().unwrap();
        assert_eq!((r.soft, r.hard), (0, 0));
        let r: Rlimit = "memlock=-1".parse().unwrap();
        assert_eq!((r.soft, r.hard), (UNLIMITED, UNLIMITED));
        assert_eq!(r.to_string(), "memlock=-1:-1");
        let r: Rlimit = "stack=8192:-1".parse().unwrap();
        assert_eq!((r.soft, r.hard), (8192, UNLIMITED));
        for k in RlimitKind::ALL {
            let r: Rlimit = format!("{k}=1").parse().unwrap();
            assert_eq!(r.kind, k);
        }
        for (bad, msg) in [
            ("nofile", "invalid ulimit argument"),
            ("as=1", "invalid ulimit type: as"),
            ("NOFILE=1", "invalid ulimit type"),
            ("nofile=", "invalid ulimit value"),
            ("nofile=x", "invalid ulimit value"),
            ("nofile=-2", "invalid ulimit value"),
            ("nofile=1:2:3", "too many limit value arguments"),
            (
                "nofile=10:5",
                "soft limit must be less than or equal to hard limit: 10 > 5",
            ),
            ("nofile=-1:5", "-1 > 5"),
        ] {
            let e = bad.parse::<Rlimit>().unwrap_err();
            assert!(e.contains(msg), "{bad}: {e}");
        }
    }

    #[test]
    fn json_uses_minus_one_for_unlimited() {
        let r: Rlimit = "nproc=100:-1".parse().unwrap();
        let j = serde_json::to_string(&r).unwrap();
        assert_eq!(j, r#"{"type":"nproc","soft":100,"hard":-1}"#);
        assert_eq!(serde_json::from_str::<Rlimit>(&j).unwrap(), r);
        assert!(serde_json::from_str::<Rlimit>(r#"{"type":"nproc","soft":-2,"hard":1}"#).is_err());
    }
}
