//! Table-driven tests of the lexer against BuildKit's behaviour (`shell/lex.go`).

use super::*;

const E: &str = "!error";

fn env() -> Vec<(String, String)> {
    [
        ("PWD", "/home"),
        ("SHELL", "bash"),
        ("KOREAN", "한국어"),
        ("NULL", ""),
        ("FOO", "xxyy"),
        ("SP", "a b"),
        ("PATHV", "/tmp/tmp/bar.txt"),
        ("STAR", "*"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
    .collect()
}

fn check(lexer: Lexer, cases: &[(&str, &str)]) {
    let env = env();
    let mut failures = Vec::new();
    for (input, want) in cases {
        let got = lexer.word(input, &env);
        let ok = match (&got, *want) {
            (Err(_), E) => true,
            (Ok(v), w) => v == w,
            (Err(_), _) => false,
        };
        if !ok {
            failures.push(format!("{input:?}: want {want:?}, got {got:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Quoting and escapes (default escape `\`).
const QUOTING: &[(&str, &str)] = &[
    ("hello", "hello"),
    ("he'll'o", "hello"),
    ("he'llo", E),
    ("he\\'llo", "he'llo"),
    ("he\\\\'ll'o", "he\\llo"),
    ("abc\\", "abc"),
    ("abc\\\\", "abc\\"),
    ("\"hello\"", "hello"),
    ("'$PWD'", "$PWD"),
    ("\"$PWD\"", "/home"),
    ("\\$PWD", "$PWD"),
    ("\"\\$PWD\"", "$PWD"),
    ("\"\\\\$PWD\"", "\\/home"),
    ("'\\$PWD'", "\\$PWD"),
    ("\"a\\b\"", "a\\b"),
    ("\"a\\\"b\"", "a\"b"),
    ("\"it's\"", "it's"),
    ("'say \"hi\"'", "say \"hi\""),
    ("a\"b\"c", "abc"),
    ("a'b'c", "abc"),
    ("\"a\" 'b'", "a b"),
    ("\"unterminated", E),
    ("\"abc\\\"", E),
    ("\"abc\\", E),
    ("x\\ y", "x y"),
    ("\\\\", "\\"),
    ("\\a", "a"),
    ("'it''s'", "its"),
    ("\"\"", ""),
    ("''", ""),
    ("\\'", "'"),
    ("\\\"", "\""),
    ("\"\\'\"", "\\'"),
    ("'", E),
    ("\"", E),
    ("'\"'", "\""),
    ("\"'\"", "'"),
    ("a\\\nb", "a\nb"),
    ("tab\there", "tab\there"),
    ("'  spaced  '", "  spaced  "),
];

/// Plain variables, special and positional parameters.
const VARIABLES: &[(&str, &str)] = &[
    ("$PWD", "/home"),
    ("${PWD}", "/home"),
    ("$", "$"),
    ("$ ", "$ "),
    ("a$", "a$"),
    ("$/x", "$/x"),
    ("$1", ""),
    ("$12x", "x"),
    ("$@", ""),
    ("$$", ""),
    ("$#", ""),
    ("$*", ""),
    ("$?", ""),
    ("$!", ""),
    ("$0", ""),
    ("$-", ""),
    ("${1}", ""),
    ("$PWD/x", "/home/x"),
    ("$PWDx", ""),
    ("${PWD}x", "/homex"),
    ("${NULL}", ""),
    ("${UNSET}", ""),
    ("$UNSET", ""),
    ("${PWD}${SHELL}", "/homebash"),
    ("$PWD$SHELL", "/homebash"),
    ("$PWD-$SHELL", "/home-bash"),
    ("${SP}", "a b"),
    ("$SP", "a b"),
    ("pre${UNSET}post", "prepost"),
    ("$_x", ""),
    ("$x_1", ""),
    ("$PWD.txt", "/home.txt"),
    ("${PWD}.txt", "/home.txt"),
    ("\"${PWD}'s\"", "/home's"),
    ("\"$\"", "$"),
    ("\"a$\"", "a$"),
    ("$pwd", ""),
    ("${PWD}}", "/home}"),
    ("{$PWD}", "{/home}"),
    ("$PWD:$SHELL", "/home:bash"),
    ("${PWD}/${SHELL}/", "/home/bash/"),
    ("\"${PWD}\"", "/home"),
    ("'${PWD}'", "${PWD}"),
    ("\"'$PWD'\"", "'/home'"),
    ("'\"$PWD\"'", "\"$PWD\""),
];

/// `${...}` syntax errors and modifiers BuildKit does not support.
const SYNTAX_ERRORS: &[(&str, &str)] = &[
    ("${}", E),
    ("${:}", E),
    ("${:-x}", E),
    ("${{PWD}", E),
    ("${PWD", E),
    ("${", E),
    ("${PWD:-x", E),
    ("${PWD=x}", E),
    ("${PWD:=x}", E),
    ("${PWD:x}", E),
    ("${PWD:}", E),
    ("${#PWD}", E),
    ("${PWD x}", E),
    ("${ PWD}", E),
    ("${PWD/x", E),
    ("${PWD/x/y", E),
    ("${FOO//ww}", E),
    ("${FOO//}", E),
    ("\"${\"", E),
    ("${PWD^}", E),
    ("${PWD,}", E),
    ("${PWD:0:2}", E),
];

/// `-`, `+`, `?` with and without `:`.
const MODIFIERS: &[(&str, &str)] = &[
    ("${PWD:-x}", "/home"),
    ("${UNSET:-x}", "x"),
    ("${NULL:-x}", "x"),
    ("${UNSET-x}", "x"),
    ("${NULL-x}", ""),
    ("${PWD-x}", "/home"),
    ("${PWD:+x}", "x"),
    ("${NULL:+x}", ""),
    ("${UNSET:+x}", ""),
    ("${PWD+x}", "x"),
    ("${NULL+x}", "x"),
    ("${UNSET+x}", ""),
    ("${UNSET:-$PWD}", "/home"),
    ("${UNSET:-${SHELL}}", "bash"),
    ("${UNSET:-${UNSET2:-deep}}", "deep"),
    ("${UNSET:-a b}", "a b"),
    ("${UNSET:-'x}y'}", "x}y"),
    ("${UNSET:-\"q\"}", "q"),
    ("${UNSET:-\\}}", "}"),
    ("${UNSET:-}", ""),
    ("${PWD:-}", "/home"),
    ("${PWD:?}", "/home"),
    ("${UNSET:?}", E),
    ("${NULL:?}", E),
    ("${NULL?}", ""),
    ("${UNSET?}", E),
    ("${UNSET?custom msg}", E),
    ("${PWD?x}", "/home"),
    ("${PWD:?must be set}", "/home"),
    ("${UNSET:?must be set}", E),
    ("${FOO:+${PWD}}", "/home"),
    ("${FOO:+$UNSET}", ""),
    ("${NULL:-${NULL:-z}}", "z"),
    ("\"${UNSET:-a b}\"", "a b"),
    ("\"${UNSET:-'q'}\"", "q"),
    ("${UNSET:-'unterminated}", E),
    ("${UNSET:-${}}", E),
    ("${PWD:-${}}", E),
    ("x${UNSET:-}y", "xy"),
    ("${UNSET:-$}", "$"),
];

/// `#`, `##`, `%`, `%%`, `/`, `//` patterns.
const PATTERNS: &[(&str, &str)] = &[
    ("${PWD#/}", "home"),
    ("${PWD#*/}", "home"),
    ("${FOO#x}", "xyy"),
    ("${FOO##*x}", "yy"),
    ("${FOO#*x}", "xyy"),
    ("${FOO%y}", "xxy"),
    ("${FOO%%y*}", "xx"),
    ("${FOO%y*}", "xxy"),
    ("${FOO%%x*}", ""),
    ("${FOO%x*}", "x"),
    ("${FOO#}", "xxyy"),
    ("${FOO##}", "xxyy"),
    ("${FOO%}", "xxyy"),
    ("${FOO#\\*}", "xxyy"),
    ("${STAR#\\*}", ""),
    ("${FOO#\\x}", E),
    ("${FOO#x*}", "xyy"),
    ("${FOO##x*}", ""),
    ("${FOO%%*}", ""),
    ("${FOO%*}", "xxyy"),
    ("${FOO#*}", "xxyy"),
    ("${FOO#*x*y}", "y"),
    ("${FOO#?}", "xyy"),
    ("${FOO#??}", "yy"),
    ("${FOO%?}", "xxy"),
    ("${FOO#q}", "xxyy"),
    ("${FOO#$PWD}", "xxyy"),
    ("${UNSET#x}", ""),
    ("${FOO/x/z}", "zxyy"),
    ("${FOO//x/z}", "zzyy"),
    ("${FOO/y*/z}", "xxz"),
    ("${FOO//y/}", "xx"),
    ("${FOO/q/z}", "xxyy"),
    ("${FOO/?/z}", "zxyy"),
    ("${FOO//?/-}", "----"),
    ("${FOO/*/}", ""),
    ("${PATHV//\\/tmp/}", "/bar.txt"),
    ("${PATHV/\\/tmp/}", "/tmp/bar.txt"),
    ("${PATHV//\\//\\/}", "\\/tmp\\/tmp\\/bar.txt"),
    ("${FOO///}", "xxyy"),
    ("${UNSET///}", ""),
    ("${UNSET/x/y}", ""),
    ("${FOO/x/$PWD}", "/homexyy"),
    ("${FOO/$UNSET/w}", "wxxyy"),
    ("${FOO:#x}", "xyy"),
    ("${FOO:%y}", "xxy"),
    ("${FOO#\\\\}", "xxyy"),
    ("${FOO#x\\}", E),
    ("${FOO/a\\/b}", E),
    ("${FOO//x/\\}}", "\\}\\}yy"),
];

/// Unicode: characters, never bytes.
const UNICODE: &[(&str, &str)] = &[
    ("$KOREAN", "한국어"),
    ("${KOREAN}!", "한국어!"),
    ("한국어$PWD", "한국어/home"),
    ("$한국어", ""),
    ("\"$KOREAN\"", "한국어"),
    ("${KOREAN#한}", "국어"),
    ("${KOREAN%어}", "한국"),
    ("${KOREAN/국/-}", "한-어"),
    ("${KOREAN:-x}", "한국어"),
    ("${KOREAN#?}", "국어"),
    ("${KOREAN%??}", "한"),
    ("ümlaut $PWD", "ümlaut /home"),
    ("🚀${PWD}🚀", "🚀/home🚀"),
    ("'🚀$PWD'", "🚀$PWD"),
    ("\\🚀", "🚀"),
    ("\"é\\è\"", "é\\è"),
    ("${UNSET:-日本}", "日本"),
    ("${KOREAN//?/x}", "xxx"),
];

#[test]
fn quoting() {
    check(Lexer::default(), QUOTING);
}

#[test]
fn variables() {
    check(Lexer::default(), VARIABLES);
}

#[test]
fn syntax_errors() {
    check(Lexer::default(), SYNTAX_ERRORS);
}

#[test]
fn modifiers() {
    check(Lexer::default(), MODIFIERS);
}

#[test]
fn patterns() {
    check(Lexer::default(), PATTERNS);
}

#[test]
fn unicode() {
    check(Lexer::default(), UNICODE);
}

/// The `# escape=`` ` `` directive: backtick escapes, backslash is an ordinary character.
#[test]
fn backtick_escape() {
    check(
        Lexer::new('`'),
        &[
            ("a`$PWD", "a$PWD"),
            ("C:\\path", "C:\\path"),
            ("\"a`\"b\"", "a\"b"),
            ("${UNSET:-C:\\x}", "C:\\x"),
            ("\"C:\\$PWD\"", "C:\\/home"),
            ("``", "`"),
            ("a`", "a"),
            ("`'", "'"),
            ("'`'", "`"),
            ("\"``\"", "`"),
        ],
    );
}

/// COPY heredoc bodies: quotes are ordinary characters, `\` still escapes.
#[test]
fn heredoc_lexer() {
    check(
        Lexer::heredoc(),
        &[
            ("'$PWD'", "'/home'"),
            ("\"$PWD\"", "\"/home\""),
            ("\\$PWD", "$PWD"),
            ("a\\nb", "anb"),
            ("line1\n$SHELL\n", "line1\nbash\n"),
            ("it's $KOREAN", "it's 한국어"),
            ("${UNSET:-'x'}", "'x'"),
        ],
    );
}

#[test]
fn words_split_on_unquoted_space_after_expansion() {
    let env = env();
    let lx = Lexer::default();
    let cases: &[(&str, &[&str])] = &[
        ("a b c", &["a", "b", "c"]),
        ("\"a b\" c", &["a b", "c"]),
        ("$SP", &["a", "b"]),
        ("\"$SP\"", &["a b"]),
        ("  x  ", &["x"]),
        ("a\\ b", &["a b"]),
        ("''", &[]),
        ("80 443/udp", &["80", "443/udp"]),
        ("${UNSET:-1 2}", &["1", "2"]),
        ("x$SP", &["xa", "b"]),
    ];
    for (input, want) in cases {
        assert_eq!(lx.words(input, &env).unwrap(), *want, "{input:?}");
    }
}

#[test]
fn matched_and_unmatched_variables() {
    let env = env();
    let p = Lexer::default()
        .process("${PWD} $UNSET ${NULL:-x} ${B-y}", &env)
        .unwrap();
    assert_eq!(p.value, "/home  x y");
    assert_eq!(
        p.matched.into_iter().collect::<Vec<_>>(),
        vec!["NULL", "PWD"]
    );
    assert_eq!(
        p.unmatched.into_iter().collect::<Vec<_>>(),
        vec!["B", "UNSET"]
    );
}

#[test]
fn required_messages() {
    let env = env();
    let lx = Lexer::default();
    let e = lx.word("${UNSET:?must be set $SHELL}", &env).unwrap_err();
    assert_eq!(e.to_string(), "UNSET: must be set bash");
    let e = lx.word("${NULL:?}", &env).unwrap_err();
    assert_eq!(e.to_string(), "NULL: is not allowed to be empty");
    let e = lx.word("${UNSET?}", &env).unwrap_err();
    assert_eq!(e.to_string(), "UNSET: is not allowed to be unset");
    assert_eq!(
        lx.word("${PWD=x}", &env).unwrap_err().to_string(),
        "unsupported modifier (=) in substitution"
    );
    assert_eq!(
        lx.word("${PWD:-x", &env).unwrap_err().to_string(),
        "syntax error: missing '}'"
    );
    assert_eq!(
        lx.word("${}", &env).unwrap_err().to_string(),
        "syntax error: bad substitution"
    );
}

#[test]
fn at_least_150_table_cases() {
    let n = QUOTING.len()
        + VARIABLES.len()
        + SYNTAX_ERRORS.len()
        + MODIFIERS.len()
        + PATTERNS.len()
        + UNICODE.len();
    assert!(n >= 150, "only {n} cases");
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn never_panics(s in "[$'\"\\\\{}:#%/?*+=a-zA-Z0-9_ 한🚀-]{0,40}") {
            let env = env();
            let _ = Lexer::default().process(&s, &env);
            let _ = Lexer::new('`').process(&s, &env);
            let _ = Lexer::heredoc().process(&s, &env);
        }

        #[test]
        fn any_string_never_panics(s in any::<String>()) {
            let env = env();
            let _ = Lexer::default().process(&s, &env);
        }

        #[test]
        fn plain_words_are_unchanged(s in "[a-zA-Z0-9_./한-]{0,30}") {
            prop_assert_eq!(Lexer::default().word(&s, &env()).unwrap(), s);
        }
    }
}

#[test]
fn long_values_with_stars() {
    let long = "ab".repeat(2000);
    let env: Vec<(String, String)> = vec![("L".into(), long)];
    // memoised matching: this finishes at once instead of backtracking exponentially
    let v = Lexer::default()
        .word("${L//*b*a/x}|${L%%*a*b}|${L#*b*a*b}", &env)
        .unwrap();
    let parts: Vec<&str> = v.split('|').collect();
    assert_eq!(parts[0], "xb");
    assert_eq!(parts[1], "");
    assert_eq!(parts[2], "ab".repeat(1998));
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let env = env();
    let deep = "${A:-".repeat(100_000) + &"}".repeat(100_000);
    assert_eq!(Lexer::default().word(&deep, &env), Err(LexError::TooDeep));
    // the deepest accepted nesting fits a test thread's 2 MiB stack (debug build)
    let ok = "${A:-".repeat(MAX_NESTING) + "x" + &"}".repeat(MAX_NESTING);
    assert_eq!(Lexer::default().word(&ok, &env).unwrap(), "x");
}

#[test]
fn long_literal_patterns_and_many_stars() {
    let long = "a".repeat(200_000);
    let env: Vec<(String, String)> = vec![("L".into(), long.clone()), ("P".into(), long)];
    assert_eq!(Lexer::default().word("${L#$P}", &env).unwrap(), "");
    assert_eq!(Lexer::default().word("${L%$P}", &env).unwrap(), "");
    let stars = "*".repeat(300);
    let env2: Vec<(String, String)> = vec![("S".into(), stars)];
    assert!(matches!(
        Lexer::default().word("${L#$S}", &env2),
        Err(LexError::Pattern { .. })
    ));
}
