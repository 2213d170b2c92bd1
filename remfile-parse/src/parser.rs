//! The main loop: physical lines to logical lines to instructions, with
//! directives, comments, continuations and heredoc bodies.

use crate::ast::{AST_VERSION, Directives as AstDirectives, Remfile};
use crate::error::{ErrorKind, ParseError};
use crate::heredoc;
use crate::instr::{self, Body, Ctx};
use crate::lines::{Directives, Lines, Logical, is_comment, trim_continuation};

fn col_of(s: &str) -> u32 {
    u32::try_from(s.chars().count()).unwrap_or(u32::MAX - 1) + 1
}

/// The longest physical line BuildKit's parser reads (`bufio.MaxScanTokenSize - 1`; the
/// line's `\r` counts, its `\n` does not).
pub(crate) const MAX_LINE: usize = 65535;

/// Parse a whole Remfile into the version-1 AST.
pub fn parse(input: &str) -> Result<Remfile, ParseError> {
    if let Some(i) = input.split('\n').position(|l| l.len() > MAX_LINE) {
        let no = u32::try_from(i + 1).unwrap_or(u32::MAX);
        return Err(ParseError::new(no, 1, ErrorKind::LineTooLong(MAX_LINE)));
    }
    let input = input.strip_prefix('\u{feff}').unwrap_or(input);
    let mut lines = Lines::new(input);
    let mut dirs = Directives::default();
    let mut instructions = Vec::new();
    let mut logical = Logical::new(input);

    while let Some(first) = lines.next() {
        let lead = first.text.len() - first.text.trim_start().len();
        let trimmed = &first.text[lead..];
        dirs.line(trimmed)
            .map_err(|k| ParseError::new(first.no, 1, k))?;
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let esc = dirs.escape;
        logical.clear();
        let (text, mut eol) = trim_continuation(trimmed, esc);
        logical.push(text, first.start + lead, first.no, first.start);
        let mut last = first;
        while !eol {
            let Some(next) = lines.next() else { break };
            last = next;
            if is_comment(next.text) || next.text.trim_start().is_empty() {
                continue;
            }
            let (text, e) = trim_continuation(next.text, esc);
            logical.push(text, next.start, next.no, next.start);
            eol = e;
        }
        let start_pos = logical.pos(0);
        if logical.joined.trim().is_empty() {
            return Err(ParseError::new(
                start_pos.0,
                start_pos.1,
                ErrorKind::Syntax("empty instruction after line continuation".into()),
            ));
        }

        // heredoc bodies follow the instruction's last line
        let mut bodies = Vec::new();
        if logical.joined.contains("<<") && instr::heredoc_capable(&logical.joined) {
            let markers = heredoc::markers_in_line(&logical.joined)
                .map_err(|m| ParseError::new(start_pos.0, start_pos.1, ErrorKind::BadHeredoc(m)))?;
            for marker in markers {
                let mut raw = String::new();
                let mut terminated = false;
                for l in lines.by_ref() {
                    last = l;
                    let candidate = if marker.strip_tabs {
                        l.text.trim_start_matches('\t')
                    } else {
                        l.text
                    };
                    if candidate == marker.name {
                        terminated = true;
                        break;
                    }
                    raw.push_str(l.full);
                }
                if !terminated {
                    return Err(ParseError::new(
                        start_pos.0,
                        start_pos.1,
                        ErrorKind::UnterminatedHeredoc(marker.name),
                    ));
                }
                bodies.push(Body { marker, raw });
            }
        }

        let ctx = Ctx {
            logical: &logical,
            input,
            esc,
            end_line: last.no,
            end_col: col_of(last.text),
            end_src: last.start + last.text.len(),
        };
        let inst = ctx.instruction(0, &bodies).map_err(|(kind, off)| {
            let (line, col) = logical.pos(off);
            ParseError::new(line, col, kind)
        })?;
        instructions.push(inst);
    }

    if instructions.is_empty() {
        return Err(ParseError::new(
            lines.seen().max(1),
            1,
            ErrorKind::NoInstructions,
        ));
    }
    Ok(Remfile {
        version: AST_VERSION,
        directives: AstDirectives {
            escape: dirs.escape,
            syntax: dirs.syntax,
            check: dirs.check,
        },
        instructions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::{Command, Kind};

    #[test]
    fn lines_longer_than_buildkit_reads_are_errors() {
        let ok = format!("FROM scratch\nRUN {}\n", "x".repeat(MAX_LINE - 4));
        assert!(parse(&ok).is_ok());
        let long = format!("FROM scratch\nRUN {}\n", "x".repeat(MAX_LINE - 3));
        let e = parse(&long).unwrap_err();
        assert_eq!((e.line, e.col), (2, 1));
        assert_eq!(
            e.kind.to_string(),
            "dockerfile line greater than max allowed size of 65535"
        );
        // in a comment, at the end without a newline, and with the `\r` of CRLF counted
        assert!(parse(&format!("# {}\nFROM scratch\n", "c".repeat(MAX_LINE))).is_err());
        assert!(parse(&format!("FROM scratch\nRUN {}", "x".repeat(MAX_LINE))).is_err());
        let crlf = format!("FROM scratch\r\nRUN {}\r\n", "x".repeat(MAX_LINE - 4));
        assert!(parse(&crlf).is_err());
    }

    fn shell(k: &Kind) -> &str {
        match k {
            Kind::Run {
                command: Command::Shell(s),
                ..
            } => s,
            _ => panic!("not a shell RUN: {k:?}"),
        }
    }

    #[test]
    fn bom_then_directive_is_recognised() {
        let ast = parse("\u{feff}# escape=`\nFROM a\nRUN x `\n  y\n").unwrap();
        assert_eq!(ast.directives.escape, '`');
        assert_eq!(shell(&ast.instructions[1].kind), "x   y");
    }

    #[test]
    fn lone_escape_line_joins_following_lines() {
        let ast = parse("FROM a\n\\\n\nRUN b\n").unwrap();
        assert_eq!(ast.instructions.len(), 2);
        assert_eq!(shell(&ast.instructions[1].kind), "b");
        assert_eq!(ast.instructions[1].span.line, 4);
    }

    #[test]
    fn heredoc_span_covers_terminator_and_next_instruction_follows() {
        let ast = parse("FROM a\nRUN <<A <<B\n1\nA\n2\nB\nRUN c\n").unwrap();
        let span = ast.instructions[1].span;
        assert_eq!((span.line, span.end_line, span.end_col), (2, 6, 2));
        assert_eq!(ast.instructions[2].span.line, 7);
    }

    #[test]
    fn heredoc_terminator_with_tabs_needs_strip_tabs() {
        // without `-`, an indented terminator is body text
        let e = parse("FROM a\nRUN <<A\n\tA\n").unwrap_err();
        assert_eq!(e.kind, ErrorKind::UnterminatedHeredoc("A".into()));
        assert!(parse("FROM a\nRUN <<-A\n\tA\n").is_ok());
    }

    #[test]
    fn continuation_at_eof_and_trailing_spaces() {
        let ast = parse("FROM a\nRUN x \\   \n").unwrap();
        assert_eq!(shell(&ast.instructions[1].kind), "x");
    }

    #[test]
    fn error_position_on_continuation_line() {
        // `--from` after a source is not a flag: it is a source word
        let ast = parse("FROM a\nCOPY a \\\n  --from=x b\n").unwrap();
        match &ast.instructions[1].kind {
            Kind::Copy { sources, flags, .. } => {
                assert_eq!(sources.len(), 2);
                assert_eq!(flags.from, None);
            }
            k => panic!("{k:?}"),
        }
        let ast = parse("FROM a\nCOPY \\\n  --from=x a b\n").unwrap();
        match &ast.instructions[1].kind {
            Kind::Copy { flags, .. } => assert_eq!(flags.from.as_deref(), Some("x")),
            k => panic!("{k:?}"),
        }
        let e = parse("FROM a\nCOPY \\\n  --frm=x a b\n").unwrap_err();
        assert_eq!((e.line, e.col), (3, 3));
    }
}
