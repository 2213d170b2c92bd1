//! The shell-word lexer: variable expansion and quote removal exactly as BuildKit's
//! `frontend/dockerfile/shell` lexer does it.
//!
//! Supported (and nothing more, as in BuildKit): `$V`, `${V}`, `${V:-w}`, `${V-w}`, `${V:+w}`,
//! `${V+w}`, `${V:?msg}`, `${V?msg}`, `${V#pat}`, `${V##pat}`, `${V%pat}`, `${V%%pat}`,
//! `${V/pat/repl}`, `${V//pat/repl}`; single quotes (literal), double quotes (expansion, the
//! escape character escapes only `"`, `$` and itself), the escape character outside quotes
//! (escapes any character). `$` followed by something that is not a name stays `$`; special
//! parameters (`$@ $* $# $? $- $$ $! $0`) and positional ones (`$1`) are looked up like names
//! (so they expand to the empty string). Unset variables expand to the empty string.
//! Characters are Unicode scalar values, never bytes.

use std::collections::BTreeSet;

use crate::pattern::{self, Pattern};

/// How deep `${...}` may nest (bounds the lexer's recursion).
pub const MAX_NESTING: usize = 200;

/// An error of the lexer; the message names the problem as BuildKit does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LexError {
    /// `${` without its closing `}`.
    #[error("syntax error: missing '}}'")]
    MissingBrace,
    /// `${}`, `${:x}`, `${{x}`.
    #[error("syntax error: bad substitution")]
    BadSubstitution,
    /// `${V/pat` without the second `/`.
    #[error("syntax error: missing '/' in ${{}}")]
    MissingSlash,
    /// `${V=x}`, `${V:x}` and other modifiers BuildKit does not support.
    #[error("unsupported modifier ({0}) in substitution")]
    UnsupportedModifier(String),
    /// `${V?msg}` / `${V:?msg}` on an unset (or empty) variable.
    #[error("{name}: {message}")]
    Required {
        /// the variable
        name: String,
        /// the message given in the word, or the default one
        message: String,
    },
    /// A quote without its closing quote.
    #[error("unexpected end of statement while looking for matching {0}")]
    Unterminated(&'static str),
    /// `${` nested deeper than [`MAX_NESTING`].
    #[error("variable substitutions nested more than {MAX_NESTING} deep")]
    TooDeep,
    /// A bad `${V#pattern}` pattern.
    #[error("invalid pattern ({pattern}) in substitution: {reason}")]
    Pattern {
        /// the pattern after expansion
        pattern: String,
        /// what is wrong with it
        reason: String,
    },
}

/// The variables the lexer can see.
pub trait Env {
    /// The value of `name`, or `None` when it is unset.
    fn lookup(&self, name: &str) -> Option<&str>;
}

impl Env for [(String, String)] {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Env for Vec<(String, String)> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.as_slice().lookup(name)
    }
}

impl Env for std::collections::BTreeMap<String, String> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

/// The result of processing one word.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Processed {
    /// The word after expansion and quote removal (spaces kept).
    pub value: String,
    /// The same split into words on unquoted white space (after expansion), as `EXPOSE` uses it.
    pub words: Vec<String>,
    /// Variables the word referenced that were set.
    pub matched: BTreeSet<String>,
    /// Variables the word referenced that were unset.
    pub unmatched: BTreeSet<String>,
}

/// A lexer for one escape character.
#[derive(Debug, Clone, Copy)]
pub struct Lexer {
    escape: char,
    skip_quotes: bool,
}

impl Default for Lexer {
    fn default() -> Self {
        Lexer::new('\\')
    }
}

impl Lexer {
    /// A lexer whose escape character is `escape` (`\` or the `# escape=` directive's).
    pub fn new(escape: char) -> Self {
        Lexer {
            escape,
            skip_quotes: false,
        }
    }

    /// A lexer that expands variables but keeps quotes as ordinary characters, with `\` as
    /// escape: how BuildKit expands the bodies of `COPY`/`ADD` heredocs with unquoted delimiters.
    pub fn heredoc() -> Self {
        Lexer {
            escape: '\\',
            skip_quotes: true,
        }
    }

    /// Expands `word` with `env`; returns the value, its words and the variables referenced.
    pub fn process<E: Env + ?Sized>(&self, word: &str, env: &E) -> Result<Processed, LexError> {
        let mut sw = ShellWord {
            lex: *self,
            chars: word.chars().collect(),
            pos: 0,
            depth: 0,
            env,
            matched: BTreeSet::new(),
            unmatched: BTreeSet::new(),
        };
        let (value, words) = sw.process_stop_on(None, false)?;
        Ok(Processed {
            value,
            words,
            matched: sw.matched,
            unmatched: sw.unmatched,
        })
    }

    /// Expands `word` into one string (BuildKit's `ProcessWord`).
    pub fn word<E: Env + ?Sized>(&self, word: &str, env: &E) -> Result<String, LexError> {
        self.process(word, env).map(|p| p.value)
    }

    /// Expands `word` and splits the result on unquoted white space (BuildKit's `ProcessWords`).
    pub fn words<E: Env + ?Sized>(&self, word: &str, env: &E) -> Result<Vec<String>, LexError> {
        self.process(word, env).map(|p| p.words)
    }
}

#[derive(Default)]
struct Words {
    word: String,
    done: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() {
            if self.in_word && !self.word.is_empty() {
                self.done.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(ch);
        }
    }
    fn add_raw_char(&mut self, ch: char) {
        self.word.push(ch);
        self.in_word = true;
    }
    fn add_string(&mut self, s: &str) {
        for ch in s.chars() {
            self.add_char(ch);
        }
    }
    fn add_raw_string(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }
    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.done.push(std::mem::take(&mut self.word));
        }
        self.done
    }
}

struct ShellWord<'e, E: Env + ?Sized> {
    lex: Lexer,
    chars: Vec<char>,
    pos: usize,
    depth: usize,
    env: &'e E,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
}

fn is_special_param(ch: char) -> bool {
    matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0')
}

impl<E: Env + ?Sized> ShellWord<'_, E> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.chars.get(self.pos).copied();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn get_env(&mut self, name: &str) -> Option<String> {
        if let Some(v) = self.env.lookup(name) {
            self.matched.insert(name.to_string());
            Some(v.to_string())
        } else {
            self.unmatched.insert(name.to_string());
            None
        }
    }

    /// Processes until `stop` (consumed) or the end; `raw` keeps escape characters.
    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw: bool,
    ) -> Result<(String, Vec<String>), LexError> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if stop == Some(ch) {
                self.next();
                return Ok((result, words.finish()));
            }
            if ch == '$' {
                let tmp = self.process_dollar()?;
                result.push_str(&tmp);
                words.add_string(&tmp);
                continue;
            }
            if !self.lex.skip_quotes && (ch == '\'' || ch == '"') {
                let tmp = if ch == '\'' {
                    self.process_single_quote()?
                } else {
                    self.process_double_quote(raw)?
                };
                result.push_str(&tmp);
                words.add_raw_string(&tmp);
                continue;
            }
            self.next();
            if ch == self.lex.escape {
                if raw {
                    words.add_raw_char(ch);
                    result.push(ch);
                }
                match self.next() {
                    None => break,
                    Some(escaped) => {
                        words.add_raw_char(escaped);
                        result.push(escaped);
                    }
                }
            } else {
                words.add_char(ch);
                result.push(ch);
            }
        }
        if stop.is_some() {
            // the caller turns this into its own message
            return Err(LexError::MissingBrace);
        }
        Ok((result, words.finish()))
    }

    fn process_single_quote(&mut self) -> Result<String, LexError> {
        self.next();
        let mut result = String::new();
        loop {
            match self.next() {
                None => return Err(LexError::Unterminated("single-quote")),
                Some('\'') => return Ok(result),
                Some(c) => result.push(c),
            }
        }
    }

    fn process_double_quote(&mut self, raw: bool) -> Result<String, LexError> {
        self.next();
        let mut result = String::new();
        loop {
            match self.peek() {
                None => return Err(LexError::Unterminated("double-quote")),
                Some('"') => {
                    self.next();
                    return Ok(result);
                }
                Some('$') => {
                    let v = self.process_dollar()?;
                    result.push_str(&v);
                }
                Some(_) => {
                    let mut ch = self.next().unwrap_or_default();
                    if ch == self.lex.escape {
                        if raw {
                            result.push(ch);
                        }
                        match self.peek() {
                            // a trailing escape is dropped; the missing quote errors next
                            None => continue,
                            Some(c) if c == '"' || c == '$' || c == self.lex.escape => {
                                ch = c;
                                self.next();
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && is_digit(ch) {
                while let Some(d) = self.peek() {
                    if !is_digit(d) {
                        break;
                    }
                    name.push(d);
                    self.next();
                }
                return name;
            }
            if name.is_empty() && is_special_param(ch) {
                self.next();
                return ch.to_string();
            }
            if !(ch.is_alphabetic() || is_digit(ch) || ch == '_') {
                break;
            }
            name.push(ch);
            self.next();
        }
        name
    }

    /// A sub-word ended by `stop`; a missing `stop` at the end of input is `missing`.
    fn sub_word(&mut self, stop: char, raw: bool, missing: LexError) -> Result<String, LexError> {
        match self.process_stop_on(Some(stop), raw) {
            Ok((w, _)) => Ok(w),
            // as BuildKit: any failure at the end of the input is reported as the missing stop
            Err(_) if self.peek().is_none() => Err(missing),
            Err(e) => Err(e),
        }
    }

    fn process_dollar(&mut self) -> Result<String, LexError> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".to_string());
            }
            return Ok(self.get_env(&name).unwrap_or_default());
        }
        self.next();
        if self.depth >= MAX_NESTING {
            return Err(LexError::TooDeep);
        }
        self.depth += 1;
        let r = self.process_braced();
        self.depth -= 1;
        r
    }

    /// After `${`.
    fn process_braced(&mut self) -> Result<String, LexError> {
        match self.peek() {
            None => return Err(LexError::MissingBrace),
            Some('{' | '}' | ':') => return Err(LexError::BadSubstitution),
            Some(_) => {}
        }
        let name = self.process_name();
        let ch = self.next();
        let mut chs = ch.map_or_else(|| "\u{FFFD}".into(), String::from);
        match ch {
            Some('}') => Ok(self.get_env(&name).unwrap_or_default()),
            Some(':') => {
                let ch2 = self.next();
                chs.push(ch2.unwrap_or('\u{FFFD}'));
                self.modifier(&name, ch2, &chs, true)
            }
            Some('+' | '-' | '?' | '#' | '%') => self.modifier(&name, ch, &chs, false),
            Some('/') => {
                let all = self.peek() == Some('/');
                if all {
                    self.next();
                }
                let pat = self.sub_word('/', true, LexError::MissingSlash)?;
                let repl = self.sub_word('}', true, LexError::MissingBrace)?;
                let value = self.get_env(&name).unwrap_or_default();
                let p = Pattern::parse(&pat).map_err(|reason| LexError::Pattern {
                    pattern: pat.clone(),
                    reason,
                })?;
                Ok(pattern::replace(&p, &value, &repl, all))
            }
            _ => Err(LexError::UnsupportedModifier(chs)),
        }
    }

    fn modifier(
        &mut self,
        name: &str,
        ch: Option<char>,
        chs: &str,
        null_is_unset: bool,
    ) -> Result<String, LexError> {
        let raw = matches!(ch, Some('#' | '%'));
        let word = self.sub_word('}', raw, LexError::MissingBrace)?;
        let value = self.get_env(name);
        let unset_or_null = match &value {
            None => true,
            Some(v) => null_is_unset && v.is_empty(),
        };
        match ch {
            Some('-') => Ok(if unset_or_null {
                word
            } else {
                value.unwrap_or_default()
            }),
            Some('+') => Ok(if unset_or_null { String::new() } else { word }),
            Some('?') => {
                if value.is_none() || unset_or_null {
                    let default = if value.is_none() {
                        "is not allowed to be unset"
                    } else {
                        "is not allowed to be empty"
                    };
                    let message = if word.is_empty() {
                        default.to_string()
                    } else {
                        word
                    };
                    return Err(LexError::Required {
                        name: name.to_string(),
                        message,
                    });
                }
                Ok(value.unwrap_or_default())
            }
            Some(c @ ('#' | '%')) => {
                let (greedy, pat) = match word.strip_prefix(c) {
                    Some(rest) => (true, rest.to_string()),
                    None => (false, word),
                };
                let p = Pattern::parse(&pat).map_err(|reason| LexError::Pattern {
                    pattern: pat.clone(),
                    reason,
                })?;
                let value = value.unwrap_or_default();
                Ok(if c == '%' {
                    pattern::trim_suffix(&p, &value, greedy)
                } else {
                    pattern::trim_prefix(&p, &value, greedy)
                })
            }
            _ => Err(LexError::UnsupportedModifier(chs.to_string())),
        }
    }
}

/// Go's `unicode.IsDigit` is the Nd category; `is_numeric` is a close superset.
fn is_digit(c: char) -> bool {
    c.is_ascii_digit() || (!c.is_ascii() && c.is_numeric())
}

#[cfg(test)]
#[path = "lex_tests.rs"]
mod tests;
