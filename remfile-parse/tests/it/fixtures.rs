//! Golden tests: every `fixtures/ok/*.Remfile` against its AST snapshot, every
//! `fixtures/bad/*.Remfile` against its expected error line.

use crate::remfiles;

#[test]
fn ok_fixtures_match_snapshots() {
    let files = remfiles("ok");
    assert!(files.len() >= 15, "fixtures missing");
    for path in files {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let ast =
            remfile_parse::parse(&text).unwrap_or_else(|e| panic!("{name}: unexpected error {e}"));
        insta::assert_json_snapshot!(name.clone(), ast);
        // the JSON document deserialises back into the same AST
        let json = remfile_parse::to_json(&ast, false);
        let back: remfile_parse::Remfile = serde_json::from_str(&json).unwrap();
        assert_eq!(back, ast, "{name}: JSON round trip");
    }
}

#[test]
fn bad_fixtures_give_their_error_line() {
    let files = remfiles("bad");
    assert!(files.len() >= 30, "fixtures missing");
    let mut wrong = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let expected = std::fs::read_to_string(path.with_extension("err")).unwrap();
        let got = match remfile_parse::parse(&text) {
            Ok(_) => "parsed without error".to_owned(),
            Err(e) => e.to_string(),
        };
        if got != expected.trim_end() {
            wrong.push(format!(
                "{}:\n  expected {}\n  got      {got}",
                path.display(),
                expected.trim_end()
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
