//! Shell patterns of `${V#pat}`, `${V%pat}` and `${V/pat/repl}` as BuildKit implements them:
//! `*` (any string), `?` (any character), `\*`, `\?`, `\\` (literal), `\}` and `\/` (the
//! character; the backslash only protects it from the `${}` parser); no bracket expressions.
//! Matching follows the leftmost-first semantics of the regular expressions BuildKit builds
//! (greedy or lazy stars), with memoisation so that no input can make it exponential.

use std::collections::HashMap;

/// Stars bound the matcher's recursion depth.
const MAX_STARS: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Lit(char),
    Any,
    Star,
}

/// A parsed pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(Vec<Tok>);

impl Pattern {
    /// Parses a pattern; an invalid escape is an error.
    pub fn parse(s: &str) -> Result<Pattern, String> {
        let chars: Vec<char> = s.chars().collect();
        let mut toks = Vec::with_capacity(chars.len());
        let mut i = 0;
        while let Some(&c) = chars.get(i) {
            i += 1;
            match c {
                '*' => toks.push(Tok::Star),
                '?' => toks.push(Tok::Any),
                '\\' => match chars.get(i) {
                    // the escape only protected `}` or `/` from the ${} parser
                    Some('}' | '/') => {}
                    Some(&e @ ('*' | '?' | '\\')) => {
                        i += 1;
                        toks.push(Tok::Lit(e));
                    }
                    Some(&e) => return Err(format!("invalid escape '\\{e}'")),
                    None => return Err("invalid escape at end of pattern".to_string()),
                },
                c => toks.push(Tok::Lit(c)),
            }
        }
        if toks.iter().filter(|t| **t == Tok::Star).count() > MAX_STARS {
            return Err(format!("more than {MAX_STARS} '*' wildcards"));
        }
        Ok(Pattern(toks))
    }

    fn reversed(&self) -> Pattern {
        Pattern(self.0.iter().rev().copied().collect())
    }
}

struct Matcher<'a> {
    p: &'a [Tok],
    t: &'a [char],
    greedy: bool,
    memo: HashMap<(usize, usize), Option<usize>>,
}

impl Matcher<'_> {
    /// The end of the preferred match of `p[pi..]` at `t[ti..]`.
    fn at(&mut self, pi: usize, ti: usize) -> Option<usize> {
        // literals and `?` in a loop: recursion only at stars (their number is bounded)
        let (mut pi, mut ti) = (pi, ti);
        loop {
            match self.p.get(pi) {
                None => return Some(ti),
                Some(Tok::Lit(c)) if self.t.get(ti) == Some(c) => {}
                Some(Tok::Any) if ti < self.t.len() => {}
                Some(Tok::Star) => break,
                Some(_) => return None,
            }
            pi += 1;
            ti += 1;
        }
        if let Some(r) = self.memo.get(&(pi, ti)) {
            return *r;
        }
        let mut found = None;
        if self.greedy {
            for end in (ti..=self.t.len()).rev() {
                if let Some(e) = self.at(pi + 1, end) {
                    found = Some(e);
                    break;
                }
            }
        } else {
            for end in ti..=self.t.len() {
                if let Some(e) = self.at(pi + 1, end) {
                    found = Some(e);
                    break;
                }
            }
        }
        self.memo.insert((pi, ti), found);
        found
    }
}

impl<'a> Matcher<'a> {
    /// One matcher serves every start position: a memo entry does not depend on the start.
    fn new(p: &'a Pattern, t: &'a [char], greedy: bool) -> Self {
        Matcher {
            p: &p.0,
            t,
            greedy,
            memo: HashMap::new(),
        }
    }
}

fn match_at(p: &Pattern, t: &[char], start: usize, greedy: bool) -> Option<usize> {
    Matcher::new(p, t, greedy).at(0, start)
}

/// `${V#pat}` (lazy) and `${V##pat}` (greedy): removes the matching prefix.
pub fn trim_prefix(p: &Pattern, value: &str, greedy: bool) -> String {
    let t: Vec<char> = value.chars().collect();
    match match_at(p, &t, 0, greedy) {
        Some(end) => t.get(end..).unwrap_or_default().iter().collect(),
        None => value.to_string(),
    }
}

/// `${V%pat}` and `${V%%pat}`: removes the matching suffix (a prefix match on the reversed
/// pattern and value, as BuildKit does it).
pub fn trim_suffix(p: &Pattern, value: &str, greedy: bool) -> String {
    let rev: String = value.chars().rev().collect();
    trim_prefix(&p.reversed(), &rev, greedy)
        .chars()
        .rev()
        .collect()
}

fn find(m: &mut Matcher, from: usize) -> Option<(usize, usize)> {
    (from..=m.t.len()).find_map(|s| m.at(0, s).map(|e| (s, e)))
}

/// `${V/pat/repl}` (first match) and `${V//pat/repl}` (all matches, Go's rules for empty
/// matches).
pub fn replace(p: &Pattern, value: &str, repl: &str, all: bool) -> String {
    let t: Vec<char> = value.chars().collect();
    let mut matcher = Matcher::new(p, &t, true);
    if !all {
        return match find(&mut matcher, 0) {
            Some((s, e)) => {
                let mut out: String = t.get(..s).unwrap_or_default().iter().collect();
                out.push_str(repl);
                out.extend(t.get(e..).unwrap_or_default());
                out
            }
            None => value.to_string(),
        };
    }
    let mut out = String::new();
    let mut last_end = 0;
    let mut search = 0;
    while search <= t.len() {
        let Some((s, e)) = find(&mut matcher, search) else {
            break;
        };
        out.extend(t.get(last_end..s).unwrap_or_default());
        // no replacement for an empty match right after another match
        if e > last_end || s == 0 {
            out.push_str(repl);
        }
        last_end = e;
        search = if search + 1 > e { search + 1 } else { e };
    }
    out.extend(t.get(last_end..).unwrap_or_default());
    out
}
