//! Go's `encoding/json` leniency that serde_json lacks: a `\u` escape of a UTF-16 surrogate
//! that is not part of a valid pair decodes to U+FFFD instead of failing the document.

use std::borrow::Cow;

/// The JSON text with every lone surrogate escape (`\ud800` without its low half, a low half
/// alone) spelled `\ufffd`, as Go decodes it; other text is unchanged.
pub(crate) fn replace_lone_surrogates(text: &str) -> Cow<'_, str> {
    if !text.contains("\\u") {
        return Cow::Borrowed(text);
    }
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        match b[i] {
            b'"' => in_string = !in_string,
            b'\\' if in_string => {
                if b.get(i + 1) == Some(&b'u')
                    && let Some(hi) = hex4(b, i + 2)
                {
                    let pair = (0xD800..0xDC00).contains(&hi)
                        && b.get(i + 6) == Some(&b'\\')
                        && b.get(i + 7) == Some(&b'u')
                        && hex4(b, i + 8).is_some_and(|lo| (0xDC00..0xE000).contains(&lo));
                    if pair {
                        i += 12;
                        continue;
                    }
                    if (0xD800..0xE000).contains(&hi) {
                        out.push_str(&text[copied..i]);
                        out.push_str("\\ufffd");
                        i += 6;
                        copied = i;
                        continue;
                    }
                    i += 6;
                    continue;
                }
                // any other escape: skip the escaped character
                i += 2;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(text.get(copied..).unwrap_or(""));
    Cow::Owned(out)
}

fn hex4(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    let s = std::str::from_utf8(s).ok()?;
    u32::from_str_radix(s, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lone_surrogates_become_replacement() {
        assert_eq!(replace_lone_surrogates(r#"["\ud800x"]"#), r#"["\ufffdx"]"#);
        assert_eq!(
            replace_lone_surrogates(r#"["\udc00", "ok"]"#),
            r#"["\ufffd", "ok"]"#
        );
        // a high half followed by a non-low escape: only the high half is replaced
        assert_eq!(
            replace_lone_surrogates(r#"["\uD83D\u0041"]"#),
            r#"["\ufffd\u0041"]"#
        );
    }

    #[test]
    fn valid_text_is_unchanged() {
        for t in [
            r#"["\ud83d\ude00", "a\u0000b"]"#,
            r#"["\\ud800"]"#,
            r#"["plain", "\"q\""]"#,
            r"[\ud800]",
        ] {
            assert!(
                matches!(replace_lone_surrogates(t), Cow::Borrowed(_)),
                "{t}"
            );
        }
    }
}
