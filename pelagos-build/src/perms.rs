//! `--chown` and `--chmod` of COPY and ADD.
//!
//! `--chown=USER[:GROUP]` takes numeric ids or names looked up in the target stage's `/etc/passwd`
//! and `/etc/group` (as BuildKit: a numeric user without a group uses the uid as gid, a user name
//! without a group uses that user's primary group). `--chmod` is octal (`0644`, `755`) or
//! symbolic (`u+x,g-w,o=r`, `a+X`).

/// Errors in `--chown`/`--chmod` values.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PermError {
    /// Not a valid `--chmod`.
    #[error("invalid --chmod {0:?}")]
    Chmod(String),
    /// Not a valid `--chown`.
    #[error("invalid --chown {0:?}")]
    Chown(String),
    /// A user name not in `/etc/passwd`.
    #[error("--chown: unknown user {0:?} (not in the target's /etc/passwd)")]
    UnknownUser(String),
    /// A group name not in `/etc/group`.
    #[error("--chown: unknown group {0:?} (not in the target's /etc/group)")]
    UnknownGroup(String),
}

/// A parsed `--chown` before name resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChownSpec {
    /// The user part.
    pub user: String,
    /// The group part, if any.
    pub group: Option<String>,
}

impl ChownSpec {
    /// Parses `USER[:GROUP]`.
    pub fn parse(s: &str) -> Result<Self, PermError> {
        let (u, g) = match s.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (s, None),
        };
        if (u.is_empty() && g.is_none()) || g.is_some_and(|g| g.contains(':')) {
            return Err(PermError::Chown(s.to_string()));
        }
        // `:GROUP` is root with that group, `:` root, `USER:` the user alone, as BuildKit
        // resolves them (empty parts come from expanding unset variables: `${U}:${G}`)
        let u = if u.is_empty() { "0" } else { u };
        Ok(ChownSpec {
            user: u.to_string(),
            group: g.filter(|g| !g.is_empty()).map(str::to_string),
        })
    }

    /// Whether resolving needs the target's passwd/group files.
    pub fn needs_names(&self) -> bool {
        numeric_id(&self.user).is_none()
            || self.group.as_ref().is_some_and(|g| numeric_id(g).is_none())
    }

    /// Resolves to `(uid, gid)` with the text of `/etc/passwd` and `/etc/group` (absent: empty).
    pub fn resolve(&self, passwd: &str, group: &str) -> Result<(u32, u32), PermError> {
        let (uid, mut gid) = if let Some(n) = numeric_id(&self.user) {
            (n, n)
        } else {
            ns_run::passwd_ids(passwd, &self.user)
                .ok_or_else(|| PermError::UnknownUser(self.user.clone()))?
        };
        if let Some(g) = &self.group {
            gid = if let Some(n) = numeric_id(g) {
                n
            } else {
                ns_run::group_id(group, g).ok_or_else(|| PermError::UnknownGroup(g.clone()))?
            };
        }
        Ok((uid, gid))
    }
}

/// A numeric id as Go's `strconv.ParseUint(s, 10, 32)` reads it: decimal digits only (`+5` is
/// a name, as in BuildKit).
fn numeric_id(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A parsed `--chmod`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chmod {
    /// An octal mode (permission bits incl. setuid/setgid/sticky).
    Octal(u32),
    /// Symbolic clauses, applied to each file's own mode.
    Symbolic(Vec<(u32, char, String)>),
}

impl Chmod {
    /// Parses octal (`0755`, `644`) or symbolic (`u+x,go-w`, `=r`, `a+X`) modes.
    pub fn parse(s: &str) -> Result<Self, PermError> {
        let err = || PermError::Chmod(s.to_string());
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            let n = u32::from_str_radix(s, 8).map_err(|_| err())?;
            if n > 0o7777 {
                return Err(err());
            }
            return Ok(Chmod::Octal(n));
        }
        let mut clauses = Vec::new();
        for part in s.split(',') {
            let mut chars = part.chars().peekable();
            let mut who = 0;
            while let Some(&c) = chars.peek() {
                who |= match c {
                    'u' => 0o4700,
                    'g' => 0o2070,
                    'o' => 0o1007,
                    'a' => 0o7777,
                    _ => break,
                };
                chars.next();
            }
            if who == 0 {
                who = 0o7777;
            }
            let mut any = false;
            while let Some(op) = chars.next() {
                if !matches!(op, '+' | '-' | '=') {
                    return Err(err());
                }
                let mut perms = String::new();
                while let Some(&c) = chars.peek() {
                    if "rwxXst".contains(c) {
                        perms.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                clauses.push((who, op, perms));
                any = true;
            }
            if !any {
                return Err(err());
            }
        }
        Ok(Chmod::Symbolic(clauses))
    }

    /// The new permission bits (`0o7777` part) of a file with `mode`.
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        match self {
            Chmod::Octal(n) => *n,
            Chmod::Symbolic(clauses) => {
                let mut m = mode & 0o7777;
                for (who, op, perms) in clauses {
                    let mut bits = 0;
                    for p in perms.chars() {
                        bits |= match p {
                            'r' => 0o444,
                            'w' => 0o222,
                            'x' => 0o111,
                            'X' if is_dir || m & 0o111 != 0 => 0o111,
                            's' => 0o6000,
                            't' => 0o1000,
                            _ => 0,
                        };
                    }
                    let bits = bits & who;
                    m = match op {
                        '+' => m | bits,
                        '-' => m & !bits,
                        _ => (m & !(who & 0o6777)) | bits,
                    };
                }
                m
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str =
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:app:/home/app:/bin/sh\nbad:x:zz:1:\n";
    const GROUP: &str = "root:x:0:\nstaff:x:50:app\napp:x:1001:\n";

    #[test]
    fn chown_numeric_and_names() {
        let r = |s: &str| ChownSpec::parse(s).unwrap().resolve(PASSWD, GROUP);
        assert_eq!(
            r("10"),
            Ok((10, 10)),
            "numeric user without group: gid = uid"
        );
        assert_eq!(r("10:11"), Ok((10, 11)));
        assert_eq!(
            r("app"),
            Ok((1000, 1001)),
            "a name without group: primary group"
        );
        assert_eq!(r("app:staff"), Ok((1000, 50)));
        assert_eq!(r("0:app"), Ok((0, 1001)));
        assert_eq!(r("nobody"), Err(PermError::UnknownUser("nobody".into())));
        // runc ignores a conversion error in an id field: 0
        assert_eq!(r("bad"), Ok((0, 1)));
        assert_eq!(r("app:wheel"), Err(PermError::UnknownGroup("wheel".into())));
        assert_eq!(r(":staff"), Ok((0, 50)), "no user: root (BuildKit)");
        assert_eq!(r(":7"), Ok((0, 7)));
        assert_eq!(
            r(":"),
            Ok((0, 0)),
            "both parts empty (unset variables): root"
        );
        assert_eq!(r("app:"), Ok((1000, 1001)), "an empty group: the user's");
        for bad in ["", "1:2:3"] {
            assert!(ChownSpec::parse(bad).is_err(), "{bad}");
        }
        assert!(!ChownSpec::parse("1:2").unwrap().needs_names());
        assert!(ChownSpec::parse("1:staff").unwrap().needs_names());
        // passwd and group lines as runc reads them: trimmed, first match, missing ids 0
        let passwd =
            "dup:x:801:801::/:/bin/sh\ndup:x:802:802::/:/bin/sh\n  sp:x:803:803::/:\nshort:x:804\n";
        let group = "  gsp:x:903:\ng:x\n";
        let r = |spec: &str| ChownSpec::parse(spec).unwrap().resolve(passwd, group);
        assert_eq!(r("dup"), Ok((801, 801)));
        assert_eq!(r("sp:gsp"), Ok((803, 903)));
        assert_eq!(r("short"), Ok((804, 0)));
        assert_eq!(r("dup:g"), Ok((801, 0)));
        // a signed number is a name (Go's ParseUint), here an unknown one
        let c = ChownSpec::parse("+5:+6").unwrap();
        assert!(c.needs_names());
        assert_eq!(c.resolve("", ""), Err(PermError::UnknownUser("+5".into())));
    }

    #[test]
    fn chmod_octal() {
        assert_eq!(Chmod::parse("0755").unwrap().apply(0o600, false), 0o755);
        assert_eq!(Chmod::parse("644").unwrap().apply(0o777, true), 0o644);
        assert_eq!(Chmod::parse("4755").unwrap(), Chmod::Octal(0o4755));
        for bad in ["", "8", "77777", "u+q", "u", "x+r", "u+x,"] {
            assert!(Chmod::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn chmod_symbolic() {
        let a = |s: &str, m: u32, d: bool| Chmod::parse(s).unwrap().apply(m, d);
        assert_eq!(a("u+x", 0o644, false), 0o744);
        assert_eq!(a("go-w", 0o666, false), 0o644);
        assert_eq!(
            a("a+X", 0o644, false),
            0o644,
            "X: no execute bit, not a directory"
        );
        assert_eq!(a("a+X", 0o644, true), 0o755);
        assert_eq!(a("a+X", 0o744, false), 0o755);
        assert_eq!(a("o=r", 0o777, false), 0o774);
        assert_eq!(a("=r", 0o777, false), 0o444);
        assert_eq!(a("u=rwx,g=rx,o=", 0o000, false), 0o750);
        assert_eq!(a("+x", 0o600, false), 0o711);
        assert_eq!(a("u+s", 0o755, false), 0o4755);
        assert_eq!(a("g+s", 0o755, true), 0o2755);
        assert_eq!(a("+t", 0o777, true), 0o1777);
        assert_eq!(a("u+rw-x", 0o100, false), 0o600);
    }
}
