//! Properties: no input panics; accepted input round-trips through JSON.

use proptest::prelude::*;

/// Remfile-ish text: keywords, flags, quotes, escapes, heredoc markers, newlines.
fn remfile_like() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("FROM ".to_owned()),
        Just("RUN ".to_owned()),
        Just("COPY ".to_owned()),
        Just("ADD ".to_owned()),
        Just("ONBUILD ".to_owned()),
        Just("ENV ".to_owned()),
        Just("ARG ".to_owned()),
        Just("LABEL ".to_owned()),
        Just("HEALTHCHECK ".to_owned()),
        Just("CMD ".to_owned()),
        Just("SHELL ".to_owned()),
        Just("VOLUME ".to_owned()),
        Just("EXPOSE ".to_owned()),
        Just("--mount=type=cache,target=/c ".to_owned()),
        Just("--chmod=".to_owned()),
        Just("--interval=".to_owned()),
        Just("<<EOF".to_owned()),
        Just("<<-'E'".to_owned()),
        Just("EOF".to_owned()),
        Just("\n".to_owned()),
        Just("\r\n".to_owned()),
        Just("\\\n".to_owned()),
        Just("`\n".to_owned()),
        Just("# escape=`\n".to_owned()),
        Just("#".to_owned()),
        Just("[\"a\", ".to_owned()),
        Just("]".to_owned()),
        Just("\"".to_owned()),
        Just("'".to_owned()),
        Just("=".to_owned()),
        Just("$".to_owned()),
        Just("${".to_owned()),
        Just("\t".to_owned()),
        Just(" ".to_owned()),
        "[a-z0-9/.:é]{0,6}",
        any::<char>().prop_map(String::from),
    ];
    proptest::collection::vec(token, 0..40).prop_map(|v| v.concat())
}

fn check(s: &str) {
    if let Ok(ast) = remfile_parse::parse(s) {
        let json = remfile_parse::to_json(&ast, false);
        let back: remfile_parse::Remfile = serde_json::from_str(&json).unwrap();
        assert_eq!(back, ast);
        for i in &ast.instructions {
            assert!(i.span.line >= 1 && i.span.col >= 1 && i.span.end_line >= i.span.line);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_string_parses_or_errors(s in any::<String>()) {
        check(&s);
    }

    #[test]
    fn remfile_like_text_parses_or_errors(s in remfile_like()) {
        check(&s);
    }
}
