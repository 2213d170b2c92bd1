//! URL credentials hidden from messages, progress lines and history entries.

/// `s` with the credentials of every URL in it replaced by `xxxxx` (for ssh URLs only a
/// password; the user name of `ssh://git@host` is kept).
pub fn redact(s: &str) -> String {
    if !s.contains('@') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let sch_start = head[..i]
            .char_indices()
            .rev()
            .find(|(_, c)| !c.is_ascii_alphanumeric() && !matches!(c, '+' | '.' | '-'))
            .map_or(0, |(p, c)| p + c.len_utf8());
        let sch = head[sch_start..i].to_ascii_lowercase();
        let end = tail
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace() || c == '"')
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        if let Some(at) = authority.rfind('@') {
            let userinfo = &authority[..at];
            if sch.ends_with("ssh") {
                match userinfo.split_once(':') {
                    Some((u, _)) => {
                        out.push_str(u);
                        out.push_str(":xxxxx");
                    }
                    None => out.push_str(userinfo),
                }
            } else {
                out.push_str("xxxxx");
            }
            out.push_str(&authority[at..]);
        } else {
            out.push_str(authority);
        }
        rest = &tail[end..];
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
            "ADD https://xxxxx@h/r.git#main /x"
        );
        assert_eq!(redact("https://tok3n@h/r.git"), "https://xxxxx@h/r.git");
        assert_eq!(
            redact("ssh://git:pw@h/r ssh://git@h/r"),
            "ssh://git:xxxxx@h/r ssh://git@h/r"
        );
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
