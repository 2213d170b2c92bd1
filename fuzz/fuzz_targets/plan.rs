//! remfile-parse + remfile-plan on any input, with build args, a target, a platform and a base
//! image config (the untrusted registry document ONBUILD triggers come from). `plan` returns Ok
//! or Err, never panics; it is deterministic; an Ok Plan round-trips through its JSON form.
//!
//! Input: NUL-separated parts `REMFILE \0 BUILD_ARGS \0 TARGET \0 PLATFORM \0 BASE_CONFIG \0 WORD`
//! (missing parts are empty). BUILD_ARGS is one `K=V` or `K` per line; WORD is also expanded on
//! its own by the shell-word lexer with the build args as its environment.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use remfile_plan::lex::Lexer;
use remfile_plan::{BaseResolver, ImageConfig, PlanOptions, Platform};

/// Every external image has the fuzzed config (when it is one).
struct Bases(Option<ImageConfig>);

impl BaseResolver for Bases {
    fn resolve(&self, _image: &str, _platform: &Platform) -> Option<ImageConfig> {
        self.0.clone()
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.split('\0');
    let remfile = parts.next().unwrap_or_default();
    let args = parts.next().unwrap_or_default();
    let target = parts.next().unwrap_or_default();
    let platform = parts.next().unwrap_or_default();
    let config = parts.next().unwrap_or_default();
    let word = parts.next().unwrap_or_default();

    let mut opts = PlanOptions::default();
    for spec in args.lines() {
        // `K` alone takes its value from a fixed environment
        let _ = opts.add_build_arg(spec, |k| (k.len() % 2 == 0).then(|| format!("env-{k}")));
    }
    if !target.is_empty() {
        opts.target = Some(target.to_string());
    }
    if let Ok(p) = Platform::parse(platform) {
        opts.platform = Some(p);
    }
    opts.build_platform = Some(Platform::parse("linux/amd64").expect("a valid platform"));
    let base = ImageConfig::from_oci_json(config).ok();
    if let Some(cfg) = &base {
        // the config's own JSON form reads back the same
        let again = ImageConfig::from_oci_json(&cfg.to_oci().to_string());
        if cfg.author.is_none() {
            assert_eq!(
                again.as_ref().ok(),
                Some(cfg),
                "ImageConfig must round-trip"
            );
        }
    }

    let env: BTreeMap<String, String> = opts.build_args.iter().cloned().collect();
    for lexer in [Lexer::new('\\'), Lexer::new('`'), Lexer::heredoc()] {
        let _ = lexer.process(word, &env);
    }

    let Ok(ast) = remfile_parse::parse(remfile) else {
        return;
    };
    let resolver = Bases(base);
    let first = remfile_plan::plan(&ast, &opts, &resolver);
    let second = remfile_plan::plan(&ast, &opts, &resolver);
    match (&first, &second) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "plan must be deterministic"),
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "plan must be deterministic"),
        _ => panic!("plan must be deterministic: {first:?} vs {second:?}"),
    }
    if let Ok(plan) = first {
        let json = serde_json::to_string(&plan).expect("a Plan serialises");
        let back: remfile_plan::Plan =
            serde_json::from_str(&json).expect("Plan JSON must deserialise");
        assert_eq!(back, plan, "Plan must round-trip through JSON");
    }
});
