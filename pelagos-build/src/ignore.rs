//! Build-context ignore files with Docker's semantics (moby/patternmatcher), not gitignore's.
//!
//! Patterns are cleaned and taken relative to the context root: `*.tmp` matches only `x.tmp` at
//! the root, `**/*.tmp` matches at any depth. `*` and `?` never cross `/`, `**` matches any number
//! of path components, `[...]` is a character class and `\` escapes. A pattern that matches a
//! directory also excludes everything below it. Patterns are applied in order, the last match
//! wins, and a pattern starting with `!` re-includes what it matches.
//!
//! The ignore file used is the most specific one present: `<Remfile>.dockerignore` next to the
//! Remfile, then `.pelagosignore`, `.containerignore`, `.dockerignore` in the context root.

use std::path::{Path, PathBuf};

use regex::Regex;

/// Errors reading or compiling ignore patterns.
#[derive(Debug, thiserror::Error)]
pub enum IgnoreError {
    /// The ignore file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A pattern is not valid.
    #[error("{file}: invalid pattern {pattern:?}: {reason}")]
    Pattern {
        /// The ignore file (or `<patterns>`).
        file: String,
        /// The pattern.
        pattern: String,
        /// Why.
        reason: String,
    },
}

#[derive(Debug, Clone)]
struct Pattern {
    text: String,
    exclusion: bool,
    regex: Regex,
}

/// A compiled list of ignore patterns.
#[derive(Debug, Clone, Default)]
pub struct IgnoreMatcher {
    patterns: Vec<Pattern>,
    has_exclusions: bool,
    /// The ignore file these came from, if any.
    pub source: Option<PathBuf>,
}

/// Lexical clean like Go's `filepath.Clean`, on `/`-separated text.
pub fn clean(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            _ => out.push(part),
        }
    }
    let body = out.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".to_string(),
        (false, false) => body,
    }
}

pub(crate) fn compile(pattern: &str) -> Result<Regex, String> {
    let mut re = String::from("^");
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let ch = chars[i];
        match ch {
            '*' => {
                if chars.get(i + 1) == Some(&'*') {
                    i += 1;
                    if chars.get(i + 1) == Some(&'/') {
                        i += 1;
                    }
                    if i + 1 >= chars.len() {
                        re.push_str(".*");
                    } else {
                        re.push_str("(.*/)?");
                    }
                } else {
                    re.push_str("[^/]*");
                }
            }
            '?' => re.push_str("[^/]"),
            '\\' => {
                i += 1;
                match chars.get(i) {
                    Some(n) => re.push_str(&regex::escape(&n.to_string())),
                    None => re.push_str(r"\\"),
                }
            }
            '[' => {
                // a character class, copied through; Go negates with `^` only (`[!x]` is the
                // class of `!` and `x`, as in `filepath.Match` and Docker's ignore regexps)
                let mut j = i + 1;
                let mut class = String::from("[");
                if chars.get(j) == Some(&'^') {
                    class.push('^');
                    j += 1;
                }
                let mut closed = false;
                while let Some(&c) = chars.get(j) {
                    if c == ']' {
                        closed = true;
                        break;
                    }
                    if c == '\\' {
                        j += 1;
                        if let Some(&e) = chars.get(j) {
                            class.push_str(&regex::escape(&e.to_string()));
                        }
                    } else if c == '[' || c == '&' || c == '~' {
                        class.push('\\');
                        class.push(c);
                    } else {
                        class.push(c);
                    }
                    j += 1;
                }
                if !closed || class == "[" || class == "[^" {
                    return Err("unterminated or empty character class".into());
                }
                class.push(']');
                re.push_str(&class);
                i = j;
            }
            c => re.push_str(&regex::escape(&c.to_string())),
        }
        i += 1;
    }
    re.push('$');
    Regex::new(&re).map_err(|e| e.to_string())
}

impl IgnoreMatcher {
    /// Compiles patterns as written in an ignore file (one per element, `!` for exceptions).
    pub fn new<S: AsRef<str>>(lines: &[S], file: &str) -> Result<Self, IgnoreError> {
        let mut patterns = Vec::new();
        for raw in lines {
            let mut text = raw.as_ref().trim().to_string();
            if text.is_empty() {
                continue;
            }
            let exclusion = text.starts_with('!');
            if exclusion {
                text = text[1..].trim().to_string();
                if text.is_empty() {
                    return Err(IgnoreError::Pattern {
                        file: file.to_string(),
                        pattern: raw.as_ref().to_string(),
                        reason: "illegal exclusion pattern \"!\"".into(),
                    });
                }
            }
            let mut cleaned = clean(&text);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
            let regex = compile(&cleaned).map_err(|reason| IgnoreError::Pattern {
                file: file.to_string(),
                pattern: raw.as_ref().to_string(),
                reason,
            })?;
            patterns.push(Pattern {
                text: cleaned,
                exclusion,
                regex,
            });
        }
        let has_exclusions = patterns.iter().any(|p| p.exclusion);
        Ok(IgnoreMatcher {
            patterns,
            has_exclusions,
            source: None,
        })
    }

    /// Parses the text of an ignore file: `#` comment lines, blank lines and surrounding space
    /// are dropped.
    pub fn parse(text: &str, file: &str) -> Result<Self, IgnoreError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        Self::new(&lines, file)
    }

    /// Finds and loads the most specific ignore file for a build: `<remfile>.dockerignore`, then
    /// `.pelagosignore`, `.containerignore`, `.dockerignore` in the context root. No file: an
    /// empty matcher.
    pub fn load(context: &Path, remfile: Option<&Path>) -> Result<Self, IgnoreError> {
        let mut candidates = Vec::new();
        if let Some(r) = remfile
            && let Some(name) = r.file_name()
        {
            let mut n = name.to_os_string();
            n.push(".dockerignore");
            candidates.push(r.with_file_name(n));
        }
        for n in [".pelagosignore", ".containerignore", ".dockerignore"] {
            candidates.push(context.join(n));
        }
        for c in candidates {
            match std::fs::read(&c) {
                Ok(bytes) => {
                    let text = String::from_utf8_lossy(&bytes);
                    let mut m = Self::parse(&text, &c.display().to_string())?;
                    m.source = Some(c);
                    return Ok(m);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) if e.kind() == std::io::ErrorKind::IsADirectory => {}
                Err(source) => return Err(IgnoreError::Read { path: c, source }),
            }
        }
        Ok(Self::default())
    }

    /// True when there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether `rel` (a `/`-separated path relative to the context root, no leading `/`) is
    /// excluded: the last pattern matching the path or one of its parent directories decides.
    pub fn is_excluded(&self, rel: &str) -> bool {
        if self.patterns.is_empty() {
            return false;
        }
        let rel = clean(rel);
        let parts: Vec<&str> = rel.split('/').collect();
        let mut matched = false;
        for p in &self.patterns {
            // an exception can only change an excluded path, a plain pattern an included one
            if p.exclusion != matched {
                continue;
            }
            let mut m = p.regex.is_match(&rel);
            if !m && parts.len() > 1 {
                for i in 1..parts.len() {
                    if p.regex.is_match(&parts[..i].join("/")) {
                        m = true;
                        break;
                    }
                }
            }
            if m {
                matched = !p.exclusion;
            }
        }
        matched
    }

    /// Whether a walk may skip an excluded directory entirely: true when no exception pattern
    /// could re-include something below `rel_dir`.
    pub fn can_skip_dir(&self, rel_dir: &str) -> bool {
        if !self.has_exclusions {
            return true;
        }
        let prefix = format!("{}/", clean(rel_dir));
        !self.patterns.iter().any(|p| {
            p.exclusion && {
                // the literal part of the pattern before its first wildcard
                let lit: String = p
                    .text
                    .chars()
                    .take_while(|c| !"*?[\\".contains(*c))
                    .collect();
                lit.starts_with(&prefix) || prefix.starts_with(&lit) || lit.is_empty()
            }
        })
    }

    /// The patterns as given (after cleaning), `!` included, in order.
    pub fn patterns(&self) -> Vec<String> {
        self.patterns
            .iter()
            .map(|p| {
                if p.exclusion {
                    format!("!{}", p.text)
                } else {
                    p.text.clone()
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pats: &[&str]) -> IgnoreMatcher {
        IgnoreMatcher::new(pats, "<test>").unwrap()
    }

    #[test]
    fn class_negation_is_caret_only() {
        let re = compile("x[!y].txt").unwrap();
        assert!(re.is_match("xy.txt"));
        assert!(re.is_match("x!.txt"));
        assert!(!re.is_match("xa.txt"));
        let re = compile("x[^y].txt").unwrap();
        assert!(re.is_match("xa.txt"));
        assert!(!re.is_match("xy.txt"));
        let i = m(&["[!a]*"]);
        assert!(i.is_excluded("abc"));
        assert!(!i.is_excluded("bcd"));
    }

    #[test]
    fn star_is_root_relative_not_gitignore() {
        let i = m(&["*.tmp"]);
        assert!(i.is_excluded("a.tmp"));
        assert!(
            !i.is_excluded("sub/a.tmp"),
            "docker semantics: *.tmp only at the root"
        );
        let i = m(&["**/*.tmp"]);
        assert!(i.is_excluded("a.tmp"));
        assert!(i.is_excluded("sub/deep/a.tmp"));
    }

    #[test]
    fn directory_pattern_excludes_children() {
        let i = m(&["build"]);
        assert!(i.is_excluded("build"));
        assert!(i.is_excluded("build/x/y.o"));
        assert!(!i.is_excluded("src/build"));
        let i = m(&["/build/"]);
        assert!(i.is_excluded("build/x"));
    }

    #[test]
    fn exceptions_last_match_wins() {
        let i = m(&["*.md", "!README.md"]);
        assert!(i.is_excluded("CHANGES.md"));
        assert!(!i.is_excluded("README.md"));
        let i = m(&["*.md", "!README.md", "README*"]);
        assert!(i.is_excluded("README.md"));
        let i = m(&["docs", "!docs/keep.txt"]);
        assert!(i.is_excluded("docs/a.txt"));
        assert!(!i.is_excluded("docs/keep.txt"));
        assert!(!i.can_skip_dir("docs"));
        assert!(m(&["docs"]).can_skip_dir("docs"));
    }

    #[test]
    fn double_star_forms() {
        let i = m(&["**/.git"]);
        assert!(i.is_excluded(".git"));
        assert!(i.is_excluded("a/b/.git/config"));
        let i = m(&["a/**/z"]);
        assert!(i.is_excluded("a/z"));
        assert!(i.is_excluded("a/b/c/z"));
        assert!(!i.is_excluded("b/z"));
        let i = m(&["logs/**"]);
        assert!(i.is_excluded("logs/x/y"));
        assert!(!i.is_excluded("logsx"));
        let i = m(&["**"]);
        assert!(i.is_excluded("anything/at/all"));
    }

    #[test]
    fn question_class_escape() {
        let i = m(&["file?.txt", "[ab]*.c", "x\\*y", "[!0-9]z"]);
        assert!(i.is_excluded("file1.txt"));
        assert!(!i.is_excluded("file12.txt"));
        assert!(!i.is_excluded("file/.txt"));
        assert!(i.is_excluded("a1.c"));
        assert!(!i.is_excluded("c1.c"));
        assert!(i.is_excluded("x*y"));
        assert!(!i.is_excluded("xay"));
        // `[!0-9]` is the class of `!` and the digits (Go's regexp of Docker's matcher)
        assert!(!i.is_excluded("qz"));
        assert!(i.is_excluded("1z"));
        assert!(i.is_excluded("!z"));
    }

    #[test]
    fn parse_file_comments_and_cleaning() {
        let i = IgnoreMatcher::parse("\u{feff}# comment\n\n  ./a/../b  \n!  b/keep\n /abs\n", "x")
            .unwrap();
        assert_eq!(i.patterns(), vec!["b", "!b/keep", "abs"]);
        assert!(i.is_excluded("abs/x"));
        assert!(!i.is_excluded("b/keep"));
        assert!(IgnoreMatcher::parse("!\n", "x").is_err());
        assert!(IgnoreMatcher::parse("[abc\n", "x").is_err());
    }

    #[test]
    fn dots_in_names_are_literal() {
        let i = m(&["a.b"]);
        assert!(!i.is_excluded("axb"));
    }

    #[test]
    fn most_specific_file_wins() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(".dockerignore"), "docker\n").unwrap();
        std::fs::write(d.path().join(".containerignore"), "container\n").unwrap();
        let r = d.path().join("Remfile");
        let i = IgnoreMatcher::load(d.path(), Some(&r)).unwrap();
        assert_eq!(i.patterns(), vec!["container"]);
        std::fs::write(d.path().join(".pelagosignore"), "pelagos\n").unwrap();
        assert_eq!(
            IgnoreMatcher::load(d.path(), Some(&r)).unwrap().patterns(),
            vec!["pelagos"]
        );
        std::fs::write(d.path().join("Remfile.dockerignore"), "specific\n").unwrap();
        assert_eq!(
            IgnoreMatcher::load(d.path(), Some(&r)).unwrap().patterns(),
            vec!["specific"]
        );
        let e = tempfile::tempdir().unwrap();
        assert!(IgnoreMatcher::load(e.path(), None).unwrap().is_empty());
    }

    #[test]
    fn clean_like_go() {
        assert_eq!(clean("a/./b/../c/"), "a/c");
        assert_eq!(clean("/../x"), "/x");
        assert_eq!(clean(""), ".");
        assert_eq!(clean("../a"), "../a");
    }
}
