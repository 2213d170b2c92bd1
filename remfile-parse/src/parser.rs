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

/// Parse a whole Remfile into the version-1 AST.
pub fn parse(input: &str) -> Result<Remfile, ParseError> {
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
