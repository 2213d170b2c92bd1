//! USER resolution through the rootfs' `/etc/passwd` and `/etc/group`, with runc's rules:
//! a name must exist; a numeric uid works without an entry (gid 0, home `/`); supplementary
//! groups are the groups listing the user by name, unless a group was given explicitly.

/// The ids the command runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub home: String,
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

/// The non-empty lines of a passwd or group file, trimmed, split at `:` (runc's `parseLine`:
/// missing fields are empty, so a short or indented line still counts).
fn records(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| l.split(':').collect())
}

/// Field `i` of a record, empty when missing.
fn field<'a>(rec: &[&'a str], i: usize) -> &'a str {
    rec.get(i).copied().unwrap_or("")
}

/// A numeric field as Go's `strconv.Atoi` in runc's parser: anything that is not a number is 0.
fn id(rec: &[&str], i: usize) -> u32 {
    field(rec, i).parse().unwrap_or(0)
}

fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    records(text).map(|r| PasswdEntry {
        name: field(&r, 0),
        uid: id(&r, 2),
        gid: id(&r, 3),
        home: field(&r, 5),
    })
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

fn group_entries(text: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    records(text).map(|r| GroupEntry {
        name: field(&r, 0),
        gid: id(&r, 2),
        members: field(&r, 3).split(',').collect(),
    })
}

/// The uid and gid of the first passwd entry named `name` (`--chown` resolves names this way
/// too, so both read the files as runc does).
pub fn passwd_ids(passwd: &str, name: &str) -> Option<(u32, u32)> {
    passwd_entries(passwd)
        .find(|e| e.name == name)
        .map(|e| (e.uid, e.gid))
}

/// The gid of the first group entry named `name`.
pub fn group_id(group: &str, name: &str) -> Option<u32> {
    group_entries(group).find(|e| e.name == name).map(|e| e.gid)
}

/// Resolves `spec` (`UID[:GID]`, `NAME[:GROUP]`, mixed; either part may be empty) against the
/// passwd and group texts (empty when the files are missing), as runc's `GetExecUser`: the
/// first matching entry wins; an empty user part is `0` (as BuildKit runs it); an empty group
/// part is the implicit form (the user's primary and supplementary groups).
pub(crate) fn resolve(spec: &str, passwd: &str, group: &str) -> Result<ExecUser, String> {
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, g),
        None => (spec, ""),
    };
    // an empty user part is uid 0, looked up as `0` (BuildKit: `:` runs with root's groups)
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    let numeric_uid: Option<u32> = user_part.parse().ok();
    let entry = passwd_entries(passwd).find(|e| match numeric_uid {
        Some(uid) => e.uid == uid,
        None => e.name == user_part,
    });
    let (uid, mut gid, home, matched_name) = match (&entry, numeric_uid) {
        (Some(e), _) => (e.uid, e.gid, e.home.to_string(), Some(e.name)),
        (None, Some(uid)) => (uid, 0, "/".to_string(), None),
        (None, None) => {
            return Err(format!(
                "unable to find user {user_part}: no matching entries in passwd file"
            ));
        }
    };
    let mut groups = Vec::new();
    if group_part.is_empty() {
        if let Some(name) = matched_name.filter(|n| !n.is_empty()) {
            for e in group_entries(group) {
                if e.members.contains(&name) {
                    groups.push(e.gid);
                }
            }
        }
    } else if let Ok(n) = group_part.parse::<u32>() {
        gid = n;
    } else {
        gid = group_id(group, group_part).ok_or_else(|| {
            format!("unable to find group {group_part}: no matching entries in group file")
        })?;
    }
    Ok(ExecUser {
        uid,
        gid,
        groups,
        home: if home.is_empty() { "/".into() } else { home },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n\
                          # comment\nbad line\n";
    const GROUP: &str = "root:x:0:\nstaff:x:50:app\nwheel:x:10:root,app\napp:x:1000:\n";

    #[test]
    fn name_gets_primary_and_supplementary_groups() {
        let u = resolve("app", PASSWD, GROUP).unwrap();
        assert_eq!(
            u,
            ExecUser {
                uid: 1000,
                gid: 1000,
                groups: vec![50, 10],
                home: "/home/app".into()
            }
        );
    }

    #[test]
    fn numeric_uid_in_passwd_uses_its_entry() {
        let u = resolve("1000", PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid, u.groups), (1000, 1000, vec![50, 10]));
    }

    #[test]
    fn numeric_uid_without_files() {
        let u = resolve("4242", "", "").unwrap();
        assert_eq!(
            u,
            ExecUser {
                uid: 4242,
                gid: 0,
                groups: vec![],
                home: "/".into()
            }
        );
        let u = resolve("4242:77", "", "").unwrap();
        assert_eq!((u.uid, u.gid), (4242, 77));
    }

    #[test]
    fn explicit_group_drops_supplementary_groups() {
        let u = resolve("app:staff", PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid, u.groups), (1000, 50, vec![]));
        let u = resolve("app:5", PASSWD, GROUP).unwrap();
        assert_eq!(u.gid, 5);
    }

    #[test]
    fn unknown_names_fail() {
        assert!(
            resolve("nobody", PASSWD, GROUP)
                .unwrap_err()
                .contains("unable to find user")
        );
        assert!(
            resolve("app:nogroup", PASSWD, GROUP)
                .unwrap_err()
                .contains("unable to find group")
        );
    }

    #[test]
    fn empty_parts_as_buildkit() {
        let u = resolve(":staff", PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid, u.groups), (0, 50, vec![]));
        let u = resolve("app:", PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid, u.groups), (1000, 1000, vec![50, 10]));
        let u = resolve(":", PASSWD, GROUP).unwrap();
        assert_eq!(
            (u.uid, u.gid, u.groups, u.home.as_str()),
            (0, 0, vec![10], "/root")
        );
        let u = resolve(":", "", "").unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (0, 0, "/"));
    }

    #[test]
    fn odd_lines_as_runc() {
        // indented, short (missing ids are 0), duplicate (first wins), blank lines
        let passwd = "dup:x:801:801::/d1:/bin/sh\ndup:x:802:802::/:/bin/sh\n\n  spaced:x:803:803::/s:/bin/sh\nshort:x:804\n";
        let group = "  gsp:x:903:dup,spaced\nodd:x:bad:dup\n";
        let u = resolve("dup", passwd, group).unwrap();
        assert_eq!(
            (u.uid, u.gid, u.groups, u.home.as_str()),
            (801, 801, vec![903, 0], "/d1")
        );
        let u = resolve("spaced", passwd, group).unwrap();
        assert_eq!((u.uid, u.gid, u.groups), (803, 803, vec![903]));
        let u = resolve("short", passwd, group).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (804, 0, "/"));
        let u = resolve("dup:gsp", passwd, group).unwrap();
        assert_eq!(u.gid, 903);
    }
}
