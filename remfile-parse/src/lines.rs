//! Physical lines, parser directives, and logical lines (an instruction's
//! lines joined at escape-char continuations, with a map back to source
//! positions).

use crate::error::ErrorKind;

/// One physical line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawLine<'a> {
    /// 1-based line number.
    pub no: u32,
    /// Byte offset of the line start in the input.
    pub start: usize,
    /// The line without its terminator (trailing `\r`s removed too).
    pub text: &'a str,
    /// The line with its terminator, exactly as in the input.
    pub full: &'a str,
}

/// Iterator over physical lines split at `\n`.
pub(crate) struct Lines<'a> {
    input: &'a str,
    pos: usize,
    no: u32,
}

impl<'a> Lines<'a> {
    pub(crate) fn new(input: &'a str) -> Self {
        Self {
            input,
            pos: 0,
            no: 0,
        }
    }
    /// Number of lines returned so far.
    pub(crate) fn seen(&self) -> u32 {
        self.no
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = RawLine<'a>;
    fn next(&mut self) -> Option<RawLine<'a>> {
        let rest = self.input.get(self.pos..)?;
        if rest.is_empty() {
            return None;
        }
        let (full, text) = match memchr_nl(rest) {
            Some(i) => (&rest[..=i], &rest[..i]),
            None => (rest, rest),
        };
        let start = self.pos;
        self.pos += full.len();
        self.no = self.no.saturating_add(1);
        Some(RawLine {
            no: self.no,
            start,
            text: text.trim_end_matches('\r'),
            full,
        })
    }
}

fn memchr_nl(s: &str) -> Option<usize> {
    s.as_bytes().iter().position(|&b| b == b'\n')
}

/// BuildKit `isComment`: first non-space character is `#`.
pub(crate) fn is_comment(text: &str) -> bool {
    text.trim_start().starts_with('#')
}

/// BuildKit's continuation regex `<esc>[ \t]*$`: the text without the escape
/// char (and what follows it), and whether the instruction ends here.
pub(crate) fn trim_continuation(text: &str, esc: char) -> (&str, bool) {
    let t = text.trim_end_matches([' ', '\t']);
    match t.strip_suffix(esc) {
        Some(body) => (body, false),
        None => (text, true),
    }
}

/// Parser directive state (`# escape=`, `# syntax=`, `# check=`).
#[derive(Debug)]
pub(crate) struct Directives {
    done: bool,
    pub escape: char,
    pub escape_seen: bool,
    pub syntax: Option<String>,
    pub check: Option<String>,
}

impl Default for Directives {
    fn default() -> Self {
        Self {
            done: false,
            escape: '\\',
            escape_seen: false,
            syntax: None,
            check: None,
        }
    }
}

fn go_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0c' | '\r')
}

/// `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`
fn match_directive(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('#')?.trim_start_matches(go_space);
    let key_end = rest
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(rest.len());
    let key = &rest[..key_end];
    if !key.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let value = rest[key_end..]
        .trim_start_matches(go_space)
        .strip_prefix('=')?
        .trim_matches(go_space);
    if value.is_empty() {
        return None;
    }
    Some((key, value))
}

impl Directives {
    /// Feed a left-trimmed line; directives are only recognised until the
    /// first line that is not one (instruction, other comment, blank line).
    pub(crate) fn line(&mut self, trimmed: &str) -> Result<(), ErrorKind> {
        if self.done {
            return Ok(());
        }
        let Some((key, value)) = match_directive(trimmed) else {
            self.done = true;
            return Ok(());
        };
        let key = key.to_ascii_lowercase();
        let dup = match key.as_str() {
            "escape" => self.escape_seen,
            "syntax" => self.syntax.is_some(),
            "check" => self.check.is_some(),
            _ => {
                self.done = true;
                return Ok(());
            }
        };
        if dup {
            return Err(ErrorKind::DuplicateDirective(key));
        }
        match key.as_str() {
            "escape" => {
                self.escape = match value {
                    "\\" => '\\',
                    "`" => '`',
                    _ => return Err(ErrorKind::InvalidEscape(value.to_owned())),
                };
                self.escape_seen = true;
            }
            "syntax" => self.syntax = Some(value.to_owned()),
            _ => self.check = Some(value.to_owned()),
        }
        Ok(())
    }
}

/// A piece of a logical line copied from one physical line.
#[derive(Debug, Clone, Copy)]
struct Piece {
    joined: usize,
    src: usize,
    line: u32,
    line_start: usize,
}

/// An instruction's physical lines joined into one, with a position map.
#[derive(Debug)]
pub(crate) struct Logical<'a> {
    input: &'a str,
    pub joined: String,
    pieces: Vec<Piece>,
}

impl<'a> Logical<'a> {
    pub(crate) fn new(input: &'a str) -> Self {
        Self {
            input,
            joined: String::new(),
            pieces: Vec::new(),
        }
    }

    /// Empty it for the next instruction, keeping the buffers.
    pub(crate) fn clear(&mut self) {
        self.joined.clear();
        self.pieces.clear();
    }

    /// Append `text`, which starts at input offset `src` on line `line`
    /// (whose first byte is at `line_start`).
    pub(crate) fn push(&mut self, text: &str, src: usize, line: u32, line_start: usize) {
        self.pieces.push(Piece {
            joined: self.joined.len(),
            src,
            line,
            line_start,
        });
        self.joined.push_str(text);
    }

    fn piece(&self, off: usize) -> Option<&Piece> {
        let i = self.pieces.partition_point(|p| p.joined <= off);
        self.pieces.get(i.checked_sub(1)?)
    }

    /// Input byte offset of joined offset `off`.
    pub(crate) fn src(&self, off: usize) -> usize {
        self.piece(off).map_or(0, |p| p.src + (off - p.joined))
    }

    /// 1-based line and character column of joined offset `off`.
    pub(crate) fn pos(&self, off: usize) -> (u32, u32) {
        let Some(p) = self.piece(off) else {
            return (1, 1);
        };
        let src = p.src + (off - p.joined);
        let col = self
            .input
            .get(p.line_start..src)
            .map_or(0, |s| s.chars().count());
        (p.line, u32::try_from(col).unwrap_or(u32::MAX - 1) + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_crlf_and_last_line() {
        let v: Vec<_> = Lines::new("a\r\nb\n\nc")
            .map(|l| (l.no, l.text, l.full))
            .collect();
        assert_eq!(
            v,
            [
                (1, "a", "a\r\n"),
                (2, "b", "b\n"),
                (3, "", "\n"),
                (4, "c", "c")
            ]
        );
    }

    #[test]
    fn continuation_with_trailing_whitespace() {
        assert_eq!(trim_continuation("RUN a \\  \t", '\\'), ("RUN a ", false));
        assert_eq!(trim_continuation("RUN a", '\\'), ("RUN a", true));
        assert_eq!(trim_continuation("RUN a `", '`'), ("RUN a ", false));
        assert_eq!(trim_continuation("RUN a \\", '`'), ("RUN a \\", true));
    }

    #[test]
    fn directive_matching() {
        assert_eq!(match_directive("# escape=`"), Some(("escape", "`")));
        assert_eq!(
            match_directive("#SYNTAX = docker/dockerfile:1 "),
            Some(("SYNTAX", "docker/dockerfile:1"))
        );
        assert_eq!(match_directive("# escape="), None);
        assert_eq!(match_directive("# a comment"), None);
        assert_eq!(match_directive("# 1x=y"), None);
    }

    #[test]
    fn directives_stop_after_other_line() {
        let mut d = Directives::default();
        d.line("# syntax=x").unwrap();
        d.line("# unknown=1").unwrap();
        d.line("# escape=`").unwrap();
        assert_eq!(d.escape, '\\');
        assert_eq!(d.syntax.as_deref(), Some("x"));
    }

    #[test]
    fn directive_errors() {
        let mut d = Directives::default();
        d.line("# escape=`").unwrap();
        assert!(matches!(
            d.line("# Escape=\\"),
            Err(ErrorKind::DuplicateDirective(_))
        ));
        let mut d = Directives::default();
        assert!(matches!(
            d.line("# escape=x"),
            Err(ErrorKind::InvalidEscape(_))
        ));
    }

    #[test]
    fn logical_positions() {
        let input = "RUN a \\\n  b";
        let mut l = Logical::new(input);
        l.push("RUN a ", 0, 1, 0);
        l.push("  b", 8, 2, 8);
        assert_eq!(l.joined, "RUN a   b");
        assert_eq!(l.pos(0), (1, 1));
        assert_eq!(l.pos(4), (1, 5));
        assert_eq!(l.pos(8), (2, 3));
        assert_eq!(l.src(8), 10);
    }
}
