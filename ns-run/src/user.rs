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

fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    text.lines().filter_map(|line| {
        let mut f = line.split(':');
        let name = f.next()?;
        let _pw = f.next()?;
        let uid = f.next()?.trim().parse().ok()?;
        let gid = f.next()?.trim().parse().ok()?;
        let _gecos = f.next();
        let home = f.next().unwrap_or("");
        (!name.is_empty() && !name.starts_with('#')).then_some(PasswdEntry {
            name,
            uid,
            gid,
            home,
        })
    })
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

fn group_entries(text: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    text.lines().filter_map(|line| {
        let mut f = line.split(':');
        let name = f.next()?;
        let _pw = f.next()?;
        let gid = f.next()?.trim().parse().ok()?;
        let members = f
            .next()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .collect();
        (!name.is_empty() && !name.starts_with('#')).then_some(GroupEntry { name, gid, members })
    })
}

/// Resolves `spec` (`UID[:GID]`, `NAME[:GROUP]`, mixed) against the passwd and group texts
/// (empty when the files are missing).
pub(crate) fn resolve(spec: &str, passwd: &str, group: &str) -> Result<ExecUser, String> {
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user_part.is_empty() {
        return Err(format!("invalid user {spec:?}"));
    }
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
    match group_part {
        Some("") => return Err(format!("invalid user {spec:?}")),
        Some(g) => {
            if let Ok(n) = g.parse::<u32>() {
                gid = n;
            } else {
                gid = group_entries(group)
                    .find(|e| e.name == g)
                    .map(|e| e.gid)
                    .ok_or_else(|| {
                        format!("unable to find group {g}: no matching entries in group file")
                    })?;
            }
        }
        None => {
            if let Some(name) = matched_name {
                for e in group_entries(group) {
                    if e.members.contains(&name) && !groups.contains(&e.gid) {
                        groups.push(e.gid);
                    }
                }
            }
        }
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
        assert!(resolve(":1", PASSWD, GROUP).is_err());
        assert!(resolve("app:", PASSWD, GROUP).is_err());
    }
}
