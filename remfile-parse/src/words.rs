//! Word splitting as BuildKit's line parsers do it: the flag extractor, the
//! quote-aware word splitter of ENV/LABEL/ARG, the plain whitespace splitter,
//! and the "maybe JSON" array detection.

/// BuildKit's `reWhitespace` class `[\t\v\f\r ]`.
pub(crate) fn is_ascii_ws(c: char) -> bool {
    matches!(c, '\t' | '\x0b' | '\x0c' | '\r' | ' ')
}

/// A word with the byte offset where it starts in the text it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Word {
    pub text: String,
    pub off: usize,
}

/// Split on runs of `[\t\v\f\r ]` (BuildKit `parseStringsWhitespaceDelimited`),
/// returning sub-slices with their offsets. `s` must be trimmed; empty gives none.
pub(crate) fn split_ascii_ws(s: &str) -> Vec<(&str, usize)> {
    let mut out = Vec::new();
    if s.is_empty() {
        return out;
    }
    let mut start = 0;
    let mut in_ws = false;
    for (i, c) in s.char_indices() {
        if is_ascii_ws(c) {
            if !in_ws {
                out.push((&s[start..i], start));
                in_ws = true;
            }
        } else if in_ws {
            start = i;
            in_ws = false;
        }
    }
    if in_ws {
        // trailing separator: regexp.Split yields a final empty string
        out.push(("", s.len()));
    } else {
        out.push((&s[start..], start));
    }
    out
}

/// `reWhitespace.Split(s, 2)`: the first word and the rest after the first
/// whitespace run (`None` when there is no whitespace).
pub(crate) fn split_first_ws(s: &str) -> Option<(&str, &str, usize)> {
    let pos = s.find(is_ascii_ws)?;
    let rest_start = s[pos..]
        .find(|c: char| !is_ascii_ws(c))
        .map_or(s.len(), |p| pos + p);
    Some((&s[..pos], &s[rest_start..], rest_start))
}

/// BuildKit `parseWords`: split on whitespace, keeping quotes and escapes in
/// the words (they are removed later by the planner's shell lexer).
pub(crate) fn parse_words(rest: &str, esc: char) -> Vec<Word> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote(char),
    }
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut blank_ok = false;
    let mut word = String::new();
    let mut start = 0;
    let mut it = rest.char_indices().peekable();
    while let Some((off, ch)) = it.next() {
        let at_end_after = it.peek().is_none();
        if phase == Phase::Spaces {
            if ch.is_whitespace() {
                continue;
            }
            phase = Phase::Word;
            start = off;
        }
        match phase {
            Phase::Word => {
                if ch.is_whitespace() {
                    phase = Phase::Spaces;
                    if blank_ok || !word.is_empty() {
                        words.push(Word {
                            text: std::mem::take(&mut word),
                            off: start,
                        });
                    }
                    word.clear();
                    blank_ok = false;
                    continue;
                }
                let mut ch = ch;
                if ch == '\'' || ch == '"' {
                    phase = Phase::Quote(ch);
                    blank_ok = true;
                }
                if ch == esc {
                    if at_end_after {
                        continue;
                    }
                    word.push(ch);
                    if let Some((_, next)) = it.next() {
                        ch = next;
                    }
                }
                word.push(ch);
            }
            Phase::Quote(q) => {
                let mut ch = ch;
                if ch == q {
                    phase = Phase::Word;
                }
                if ch == esc && q != '\'' {
                    if at_end_after {
                        phase = Phase::Word;
                        continue;
                    }
                    word.push(ch);
                    if let Some((_, next)) = it.next() {
                        ch = next;
                    }
                }
                word.push(ch);
            }
            Phase::Spaces => {}
        }
    }
    if phase != Phase::Spaces && (blank_ok || !word.is_empty()) {
        words.push(Word {
            text: word,
            off: start,
        });
    }
    words
}

/// BuildKit `extractBuilderFlags`: leading `--flag[=value]` words, with one
/// level of quotes and `\` escapes removed. Returns the flags and the offset
/// where the remaining arguments start.
pub(crate) fn extract_flags(line: &str) -> (Vec<Word>, usize) {
    #[derive(PartialEq, Clone, Copy)]
    enum Phase {
        Spaces,
        Word,
        Quote(char),
    }
    let mut words = Vec::new();
    // fast path: no flag at all
    match line.find(|c: char| !c.is_whitespace()) {
        None => return (words, line.len()),
        Some(p) if !line[p..].starts_with("--") => return (words, p),
        Some(_) => {}
    }
    let mut it = line.char_indices().peekable();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut blank_ok = false;
    let mut start = 0;
    loop {
        if phase == Phase::Spaces {
            let Some(&(off, ch)) = it.peek() else {
                return (words, line.len());
            };
            if ch.is_whitespace() {
                it.next();
                continue;
            }
            if !line[off..].starts_with("--") {
                return (words, off);
            }
            phase = Phase::Word;
            start = off;
        }
        let Some((off, ch)) = it.next() else {
            if word != "--" && (blank_ok || !word.is_empty()) {
                words.push(Word {
                    text: word,
                    off: start,
                });
            }
            return (words, line.len());
        };
        match phase {
            Phase::Word => {
                if ch.is_whitespace() {
                    phase = Phase::Spaces;
                    if word == "--" {
                        return (words, off);
                    }
                    if blank_ok || !word.is_empty() {
                        words.push(Word {
                            text: std::mem::take(&mut word),
                            off: start,
                        });
                    }
                    blank_ok = false;
                    continue;
                }
                if ch == '\'' || ch == '"' {
                    phase = Phase::Quote(ch);
                    blank_ok = true;
                    continue;
                }
                if ch == '\\' {
                    // an escape at the very end is dropped
                    if let Some((_, next)) = it.next() {
                        word.push(next);
                    }
                    continue;
                }
                word.push(ch);
            }
            Phase::Quote(q) => {
                if ch == q {
                    phase = Phase::Word;
                    continue;
                }
                if ch == '\\' {
                    match it.next() {
                        Some((_, next)) => word.push(next),
                        None => phase = Phase::Word,
                    }
                    continue;
                }
                word.push(ch);
            }
            Phase::Spaces => {}
        }
    }
}

/// Result of trying the JSON array form.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Json {
    /// Not a JSON array (shell form applies).
    No,
    /// A JSON array of strings.
    Strings(Vec<String>),
    /// A JSON array with a non-string element: an error in BuildKit.
    NotStrings,
}

/// BuildKit `parseJSON`: the text must start with `[` and be a JSON array.
pub(crate) fn parse_json(rest: &str) -> Json {
    let t = rest.trim_start();
    if !t.starts_with('[') {
        return Json::No;
    }
    let t = crate::jsonfix::replace_lone_surrogates(t);
    let Ok(values) = serde_json::from_str::<Vec<serde_json::Value>>(&t) else {
        return Json::No;
    };
    let mut out = Vec::with_capacity(values.len());
    for v in values {
        match v {
            serde_json::Value::String(s) => out.push(s),
            _ => return Json::NotStrings,
        }
    }
    Json::Strings(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(w: &[Word]) -> Vec<&str> {
        w.iter().map(|w| w.text.as_str()).collect()
    }

    #[test]
    fn parse_json_lone_surrogate_is_replacement_char() {
        assert_eq!(
            parse_json(r#"["\ud800x", "\ud83d\ude00"]"#),
            Json::Strings(vec!["\u{fffd}x".into(), "\u{1f600}".into()])
        );
    }

    #[test]
    fn parse_words_keeps_quotes_and_escapes() {
        let w = parse_words(r#"A=1 B="two words" C=x\ y D='a\b'"#, '\\');
        assert_eq!(
            texts(&w),
            ["A=1", r#"B="two words""#, r"C=x\ y", r"D='a\b'"]
        );
        assert_eq!(w[1].off, 4);
    }

    #[test]
    fn parse_words_escape_at_end_is_dropped() {
        assert_eq!(texts(&parse_words(r"a b\", '\\')), ["a", "b"]);
        assert_eq!(texts(&parse_words(r#""a\"#, '\\')), [r#""a"#]);
    }

    #[test]
    fn parse_words_backtick_escape() {
        assert_eq!(texts(&parse_words("A=x` y", '`')), ["A=x` y"]);
        assert_eq!(texts(&parse_words(r"A=x\ y", '`')), [r"A=x\", "y"]);
    }

    #[test]
    fn parse_words_empty_quotes_are_a_word() {
        assert_eq!(texts(&parse_words(r#"'' """#, '\\')), ["''", r#""""#]);
    }

    #[test]
    fn extract_flags_basic() {
        let (f, rest) = extract_flags("--platform=$BUILDPLATFORM img AS b");
        assert_eq!(texts(&f), ["--platform=$BUILDPLATFORM"]);
        assert_eq!(&"--platform=$BUILDPLATFORM img AS b"[rest..], "img AS b");
    }

    #[test]
    fn extract_flags_quotes_removed_and_double_dash_ends() {
        let line = r#"--mount="type=cache,target=/a b" -- --not-a-flag"#;
        let (f, rest) = extract_flags(line);
        assert_eq!(texts(&f), ["--mount=type=cache,target=/a b"]);
        assert_eq!(line[rest..].trim(), "--not-a-flag");
    }

    #[test]
    fn extract_flags_none() {
        let (f, rest) = extract_flags("  echo --x");
        assert!(f.is_empty());
        assert_eq!(rest, 2);
        let (f, rest) = extract_flags("--link");
        assert_eq!(texts(&f), ["--link"]);
        assert_eq!(rest, 6);
    }

    #[test]
    fn whitespace_split() {
        assert_eq!(
            split_ascii_ws("a  b\tc"),
            vec![("a", 0), ("b", 3), ("c", 5)]
        );
        assert_eq!(split_first_ws("k  v w"), Some(("k", "v w", 3)));
        assert_eq!(split_first_ws("k"), None);
    }

    #[test]
    fn json_detection() {
        assert_eq!(
            parse_json(r#"["a", "b c"]"#),
            Json::Strings(vec!["a".into(), "b c".into()])
        );
        assert_eq!(parse_json(r#"["a", 1]"#), Json::NotStrings);
        assert_eq!(parse_json(r#"["a""#), Json::No);
        assert_eq!(parse_json("[a]"), Json::No);
        assert_eq!(parse_json("echo [a]"), Json::No);
        assert_eq!(parse_json("[]"), Json::Strings(vec![]));
    }
}
