//! Any byte string: `parse` returns Ok or Err, never panics; an Ok AST
//! round-trips through its JSON form.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(ast) = remfile_parse::parse(text) {
        let json = remfile_parse::to_json(&ast, false);
        let back: remfile_parse::Remfile =
            serde_json::from_str(&json).expect("AST JSON must deserialise");
        assert_eq!(back, ast, "AST must round-trip through JSON");
    }
});
