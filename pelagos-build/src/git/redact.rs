//! URL credentials hidden from messages, progress lines and history entries.

/// `s` with the credentials of every URL in it masked as BuildKit's
/// `urlutil.RedactCredentials` does: a user and a password become `xxxxx:xxxxx`, a user alone
/// (a token) `xxxxx`, a password alone `:xxxxx` (scp-like `git@host:path` has no URL
/// credentials and stays as it is).
pub fn redact(s: &str) -> String {
    if !s.contains('@') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| {
                c == '/' || c == '?' || c == '#' || c.is_whitespace() || c == '"' || c == '\''
            })
            .unwrap_or(tail.len());
        let authority = tail.get(..end).unwrap_or("");
        if let Some(at) = authority.rfind('@') {
            let userinfo = authority.get(..at).unwrap_or("");
            out.push_str(match userinfo.split_once(':') {
                Some(("", _)) => ":xxxxx",
                Some(_) => "xxxxx:xxxxx",
                None if userinfo.is_empty() => "",
                None => "xxxxx",
            });
            out.push_str(authority.get(at..).unwrap_or(""));
        } else {
            out.push_str(authority);
        }
        rest = tail.get(end..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

/// Redacts URL credentials in the progress text and history entry of every ADD step.
pub fn redact_plan(mut plan: remfile_plan::Plan) -> remfile_plan::Plan {
    for stage in &mut plan.stages {
        for step in &mut stage.steps {
            if matches!(step.op, remfile_plan::Op::Add(_)) {
                step.instruction = redact(&step.instruction);
                step.created_by = redact(&step.created_by);
            }
        }
    }
    plan
}

/// The userinfo of a scheme URL (what [`redact`] hides), if any.
pub(super) fn password(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let (userinfo, _) = authority.rsplit_once('@')?;
    Some(userinfo.split_once(':').map_or(userinfo, |(_, p)| p)).filter(|p| !p.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::parse;

    #[test]
    fn credentials_are_redacted() {
        assert_eq!(
            redact("ADD https://user:s3cret@h/r.git#main /x"),
            "ADD https://xxxxx:xxxxx@h/r.git#main /x"
        );
        assert_eq!(redact("https://tok3n@h/r.git"), "https://xxxxx@h/r.git");
        assert_eq!(redact("https://:pw@h/r.git"), "https://:xxxxx@h/r.git");
        assert_eq!(
            redact("ssh://git:pw@h/r ssh://git@h/r"),
            "ssh://xxxxx:xxxxx@h/r ssh://xxxxx@h/r"
        );
        assert_eq!(redact("'http://u:p@h/r'"), "'http://xxxxx:xxxxx@h/r'");
        assert_eq!(redact("git@h:o/r.git"), "git@h:o/r.git");
        assert_eq!(redact("https://h/a@b.git"), "https://h/a@b.git");
        let e = parse("https://u:s3cret@h/r.git?nope=1")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("s3cret"), "{e}");
        assert_eq!(password("https://u:s3cret@h/r.git"), Some("s3cret"));
        assert_eq!(password("https://tok@h/r.git"), Some("tok"));
        assert_eq!(password("https://h/r.git"), None);
    }
}
