//! Heredoc detection on RUN/COPY/ADD lines, as BuildKit does it: the line is
//! split into shell words (quotes, escapes and variables kept raw), every word
//! matching `^(\d*)<<(-?)\s*([^<]*)$` whose delimiter lexes to one word is a
//! heredoc; quoting any part of the delimiter disables expansion.

/// A heredoc marker found on a line (the body is read afterwards).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Marker {
    pub name: String,
    pub expand: bool,
    pub strip_tabs: bool,
    pub fd: u32,
}

/// Words accumulator mirroring BuildKit's `wordsStruct`.
#[derive(Default)]
struct Words {
    done: Vec<String>,
    word: String,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, c: char) {
        if c.is_whitespace() {
            if self.in_word && !self.word.is_empty() {
                self.done.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(c);
        }
    }
    fn add_raw_char(&mut self, c: char) {
        self.word.push(c);
        self.in_word = true;
    }
    fn add_string(&mut self, s: &str) {
        for c in s.chars() {
            self.add_char(c);
        }
    }
    fn add_raw_string(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }
    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.done.push(self.word);
        }
        self.done
    }
}

/// Shell-word lexer over chars, `\` as escape, unset variables kept verbatim.
struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    raw: bool,
    quoted: bool,
}

type LexResult<T> = Result<T, ()>;

impl<'a> Lexer<'a> {
    fn new(s: &'a str, raw: bool) -> Self {
        Self {
            chars: s.chars().peekable(),
            raw,
            quoted: false,
        }
    }

    /// `processStopOn(EOF)` splitting into words.
    fn words(mut self) -> LexResult<(Vec<String>, bool)> {
        let mut w = Words::default();
        while let Some(&c) = self.chars.peek() {
            match c {
                '$' => {
                    let s = self.dollar()?;
                    w.add_string(&s);
                }
                '\'' => {
                    let s = self.single_quote()?;
                    w.add_raw_string(&s);
                }
                '"' => {
                    let s = self.double_quote()?;
                    w.add_raw_string(&s);
                }
                '<' if self.raw => {
                    self.chars.next();
                    if self.chars.peek() == Some(&'<') {
                        self.chars.next();
                        let mut s = String::from("<<");
                        while let Some(&c) = self.chars.peek() {
                            if matches!(c, ' ' | '\t' | '\r' | '\n') {
                                s.push(c);
                                self.chars.next();
                            } else {
                                break;
                            }
                        }
                        w.add_raw_string(&s);
                    } else {
                        w.add_raw_string("<");
                    }
                }
                '\\' => {
                    self.chars.next();
                    if self.raw {
                        w.add_raw_char('\\');
                    }
                    match self.chars.next() {
                        Some(c) => w.add_raw_char(c),
                        None => break,
                    }
                }
                _ => {
                    self.chars.next();
                    w.add_char(c);
                }
            }
        }
        let quoted = self.quoted;
        Ok((w.finish(), quoted))
    }

    fn single_quote(&mut self) -> LexResult<String> {
        self.chars.next();
        self.quoted = true;
        let mut s = String::new();
        if self.raw {
            s.push('\'');
        }
        loop {
            match self.chars.next() {
                None => return Err(()),
                Some('\'') => {
                    if self.raw {
                        s.push('\'');
                    }
                    return Ok(s);
                }
                Some(c) => s.push(c),
            }
        }
    }

    fn double_quote(&mut self) -> LexResult<String> {
        self.chars.next();
        self.quoted = true;
        let mut s = String::new();
        if self.raw {
            s.push('"');
        }
        loop {
            match self.chars.peek().copied() {
                None => return Err(()),
                Some('"') => {
                    self.chars.next();
                    if self.raw {
                        s.push('"');
                    }
                    return Ok(s);
                }
                Some('$') => {
                    let d = self.dollar()?;
                    s.push_str(&d);
                }
                Some('\\') => {
                    self.chars.next();
                    match self.chars.peek().copied() {
                        None => {}
                        Some(c @ ('"' | '$' | '\\')) => {
                            if self.raw {
                                s.push('\\');
                            }
                            s.push(c);
                            self.chars.next();
                        }
                        Some(_) => s.push('\\'),
                    }
                }
                Some(c) => {
                    s.push(c);
                    self.chars.next();
                }
            }
        }
    }

    /// `$name`, `${name}`, `${name<op>word}` kept verbatim (nothing is set).
    fn dollar(&mut self) -> LexResult<String> {
        self.chars.next();
        let mut s = String::from("$");
        if self.chars.peek() != Some(&'{') {
            s.push_str(&self.name());
            return Ok(s);
        }
        self.chars.next();
        s.push('{');
        match self.chars.peek() {
            None | Some('{' | '}' | ':') => return Err(()),
            Some(_) => {}
        }
        s.push_str(&self.name());
        match self.chars.next() {
            Some('}') => {
                s.push('}');
                Ok(s)
            }
            Some(c @ (':' | '+' | '-' | '?' | '#' | '%' | '/')) => {
                s.push(c);
                if c == ':' {
                    match self.chars.next() {
                        Some(m) => s.push(m),
                        None => return Err(()),
                    }
                }
                // the word up to the closing brace, nested constructs verbatim
                let mut depth = 0usize;
                loop {
                    match self.chars.next() {
                        None => return Err(()),
                        Some('}') if depth == 0 => {
                            s.push('}');
                            return Ok(s);
                        }
                        Some('}') => {
                            depth -= 1;
                            s.push('}');
                        }
                        Some('{') => {
                            depth += 1;
                            s.push('{');
                        }
                        Some('\\') => {
                            s.push('\\');
                            if let Some(n) = self.chars.next() {
                                s.push(n);
                            }
                        }
                        Some(c) => s.push(c),
                    }
                }
            }
            _ => Err(()),
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(&c) = self.chars.peek() {
            if name.is_empty() && c.is_numeric() {
                while let Some(&d) = self.chars.peek() {
                    if !d.is_numeric() {
                        break;
                    }
                    name.push(d);
                    self.chars.next();
                }
                return name;
            }
            if name.is_empty() && matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                name.push(c);
                self.chars.next();
                return name;
            }
            if !c.is_alphanumeric() && c != '_' {
                break;
            }
            name.push(c);
            self.chars.next();
        }
        name
    }
}

/// BuildKit `ParseHeredoc`: is this (raw) word a heredoc marker?
pub(crate) fn parse_marker(word: &str) -> Result<Option<Marker>, String> {
    let digits_end = word
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(word.len());
    let Some(after) = word[digits_end..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (strip_tabs, after) = match after.strip_prefix('-') {
        Some(a) => (true, a),
        None => (false, after),
    };
    let rest = after.trim_start_matches([' ', '\t', '\n', '\x0c', '\r']);
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    let fd = word[..digits_end].parse::<u32>().unwrap_or(0);
    let Ok((words, quoted)) = Lexer::new(rest, false).words() else {
        return Err(format!("invalid heredoc delimiter {rest:?}"));
    };
    let [name] = words.as_slice() else {
        return Ok(None);
    };
    Ok(Some(Marker {
        name: name.clone(),
        expand: !quoted,
        strip_tabs,
        fd,
    }))
}

/// BuildKit `heredocsFromLine`: all heredoc markers of a line, in order.
pub(crate) fn markers_in_line(line: &str) -> Result<Vec<Marker>, String> {
    let Ok((words, _)) = Lexer::new(line, true).words() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for w in &words {
        if let Some(m) = parse_marker(w)? {
            out.push(m);
        }
    }
    Ok(out)
}

/// BuildKit `ChompHeredocContent`: remove leading tabs of every line.
pub(crate) fn chomp(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    for line in body.split_inclusive('\n') {
        out.push_str(line.trim_start_matches('\t'));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(line: &str) -> Vec<(String, bool, bool, u32)> {
        markers_in_line(line)
            .unwrap()
            .into_iter()
            .map(|m| (m.name, m.expand, m.strip_tabs, m.fd))
            .collect()
    }

    #[test]
    fn simple_and_quoted() {
        assert_eq!(names("RUN <<EOF"), [("EOF".into(), true, false, 0)]);
        assert_eq!(names("RUN <<'EOF'"), [("EOF".into(), false, false, 0)]);
        assert_eq!(names(r#"RUN <<"EOF""#), [("EOF".into(), false, false, 0)]);
        assert_eq!(names("RUN <<-EOT"), [("EOT".into(), true, true, 0)]);
        assert_eq!(names("RUN 3<<EOF cat"), [("EOF".into(), true, false, 3)]);
    }

    #[test]
    fn buildkit_quote_count_cases() {
        assert_eq!(names(r"RUN <<eo\'f"), [("eo'f".into(), true, false, 0)]);
        assert_eq!(names(r"RUN <<eo'f'"), [("eof".into(), false, false, 0)]);
        assert_eq!(names(r"RUN <<'e'o\'f"), [("eo'f".into(), false, false, 0)]);
        assert_eq!(
            names("RUN <<'one two'"),
            [("one two".into(), false, false, 0)]
        );
    }

    #[test]
    fn several_and_spaces() {
        assert_eq!(
            names("COPY <<A <<  B /dest/"),
            [("A".into(), true, false, 0), ("B".into(), true, false, 0)]
        );
        assert_eq!(
            names("RUN python3 <<EOF | tee x"),
            [("EOF".into(), true, false, 0)]
        );
    }

    #[test]
    fn not_heredocs() {
        assert!(names("RUN echo '<<EOF'").is_empty());
        assert!(names(r#"RUN "<<EOF""#).is_empty());
        assert!(names("RUN cat<<EOF").is_empty());
        assert!(names("RUN <<").is_empty());
        assert!(names("RUN <<-").is_empty());
        assert!(names("RUN echo 'unterminated <<EOF").is_empty());
        assert!(names("RUN <<A<<B").is_empty());
    }

    #[test]
    fn variables_kept() {
        assert_eq!(names("RUN <<$EOF"), [("$EOF".into(), true, false, 0)]);
    }

    #[test]
    fn chomp_strips_leading_tabs_per_line() {
        assert_eq!(chomp("\t\ta\n\tb\n c\n"), "a\nb\n c\n");
    }
}
