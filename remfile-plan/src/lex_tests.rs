use super::*;

#[test]
fn placeholder_simple() {
    let env: Vec<(String, String)> = vec![("A".into(), "1".into())];
    assert_eq!(Lexer::default().word("$A", &env).unwrap(), "1");
}
