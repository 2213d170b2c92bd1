//! Golden Plan snapshots of multi-stage fixtures (tests/fixtures/*.Remfile).

use crate::helpers::{opts, plan_with};

fn golden(name: &str, args: &[(&str, &str)], target: Option<&str>) {
    let path = format!(
        "{}/tests/fixtures/{name}.Remfile",
        env!("CARGO_MANIFEST_DIR")
    );
    let src = std::fs::read_to_string(&path).unwrap();
    let mut o = opts(args);
    o.target = target.map(str::to_string);
    let plan = plan_with(&src, &o).unwrap_or_else(|e| panic!("{name}: {e}"));
    insta::assert_json_snapshot!(name, plan);
}

#[test]
fn multistage() {
    golden("multistage", &[("VERSION", "2.0")], None);
}

#[test]
fn args() {
    golden(
        "args",
        &[("VERSION", "1.2.3"), ("HTTP_PROXY", "http://proxy:3128")],
        None,
    );
}

#[test]
fn onbuild() {
    golden("onbuild", &[], None);
}

#[test]
fn mounts_heredocs() {
    golden("mounts-heredocs", &[("GREETING", "héllo wörld")], None);
}

#[test]
fn pruning() {
    golden("pruning", &[], Some("test"));
}

/// The fixture `scripts/compare-buildkit` checks against Docker's BuildKit.
#[test]
fn buildkit_env() {
    golden(
        "buildkit-env",
        &[("A", "cli"), ("UNUSED", "1"), ("HTTP_PROXY", "http://p:1")],
        None,
    );
}
