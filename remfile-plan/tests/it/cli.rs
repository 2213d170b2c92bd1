//! The CLI, alone and in the pipe `remfile-parse X | remfile-plan ...` (both real binaries).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

fn plan_bin() -> &'static str {
    env!("CARGO_BIN_EXE_remfile-plan")
}

/// The `remfile-parse` binary, built into this target dir with cargo (once per test run).
fn parse_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = Command::new(env!("CARGO"))
            .args([
                "build",
                "--quiet",
                "-p",
                "remfile-parse",
                "--bin",
                "remfile-parse",
                "--message-format=json",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stderr(Stdio::inherit())
            .output()
            .expect("cargo build -p remfile-parse");
        assert!(out.status.success(), "building remfile-parse failed");
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["executable"].as_str().map(PathBuf::from))
            .find(|p| p.file_name().is_some_and(|n| n == "remfile-parse"))
            .expect("cargo reported no remfile-parse executable")
    })
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// `remfile-parse FILE | remfile-plan ARGS` through a real OS pipe.
fn pipe(file: &str, args: &[&str]) -> (Output, Output) {
    let mut parse = Command::new(parse_bin())
        .arg(file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = parse.stdout.take().unwrap();
    let plan = Command::new(plan_bin())
        .args(args)
        .stdin(Stdio::from(stdout))
        .output()
        .unwrap();
    (parse.wait_with_output().unwrap(), plan)
}

fn run_with_stdin(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(plan_bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn ast_json(src: &str) -> String {
    serde_json::to_string(&remfile_parse::parse(src).unwrap()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}); stderr: {}", stderr(o)))
}

#[test]
fn pipe_of_both_binaries_with_build_args() {
    let (parse, plan) = pipe(
        &fixture("args.Remfile"),
        &[
            "--build-arg",
            "VERSION=9.9",
            "--build-arg",
            "ALPINE=3.19",
            "--platform",
            "linux/arm64",
        ],
    );
    assert!(
        parse.status.success(),
        "{}",
        String::from_utf8_lossy(&parse.stderr)
    );
    assert!(plan.status.success(), "{}", stderr(&plan));
    let v = json(&plan);
    assert_eq!(v["version"], 1);
    assert_eq!(v["platform"], "linux/arm64");
    assert_eq!(v["target"], 1);
    let last = &v["stages"][1];
    assert_eq!(last["base"]["image"], "docker.io/library/alpine:3.19");
    let env = last["config"]["env"].as_array().unwrap();
    assert!(env.iter().any(|e| e == "VERSION=9.9"), "{env:?}");
    assert!(env.iter().any(|e| e == "ALPINE=3.19"), "{env:?}");
    let tool_env = v["stages"][0]["steps"][3]["env"].as_array().unwrap();
    assert!(tool_env.iter().any(|e| e == "GOARCH=arm64"), "{tool_env:?}");
    // the unknown base configs are reported on stderr, the plan still succeeds
    assert!(
        stderr(&plan).contains("remfile-plan: warning: line 4:"),
        "{}",
        stderr(&plan)
    );
}

#[test]
fn pipe_with_target_and_base_config() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("busybox.json");
    std::fs::write(
        &cfg,
        r#"{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin:/sbin"],"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":[]}}"#,
    )
    .unwrap();
    let base = format!("busybox={}", cfg.display());
    let (_, plan) = pipe(
        &fixture("pruning.Remfile"),
        &[
            "--target",
            "test",
            "--base-config",
            &base,
            "--platform",
            "linux/amd64",
        ],
    );
    assert!(plan.status.success(), "{}", stderr(&plan));
    assert!(!stderr(&plan).contains("warning"), "{}", stderr(&plan));
    let v = json(&plan);
    let idx: Vec<u64> = v["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["index"].as_u64().unwrap())
        .collect();
    assert_eq!(idx, vec![0, 1, 2, 3]);
    assert_eq!(v["stages"][3]["depends_on"], serde_json::json!([1, 2]));
    assert_eq!(
        v["stages"][0]["config"]["env"],
        serde_json::json!(["PATH=/bin:/sbin", "APP=/app"])
    );
}

#[test]
fn reads_a_file_argument_stdin_and_dash() {
    let ast = ast_json("FROM scratch\nENV A=1\n");
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("ast.json");
    std::fs::write(&f, &ast).unwrap();
    let a = Command::new(plan_bin()).arg(&f).output().unwrap();
    let b = run_with_stdin(&[], &ast);
    let c = run_with_stdin(&["-"], &ast);
    for o in [&a, &b, &c] {
        assert!(o.status.success(), "{}", stderr(o));
    }
    assert_eq!(a.stdout, b.stdout);
    assert_eq!(b.stdout, c.stdout);
    assert_eq!(json(&a)["stages"][0]["config"]["env"][1], "A=1");
}

#[test]
fn pretty_output_is_the_same_document() {
    let ast = ast_json("FROM scratch\nRUN x\n");
    let a = run_with_stdin(&["--platform", "linux/amd64"], &ast);
    let b = run_with_stdin(&["--platform", "linux/amd64", "--pretty"], &ast);
    assert_eq!(json(&a), json(&b));
    assert!(b.stdout.len() > a.stdout.len());
}

#[test]
fn build_arg_without_value_comes_from_the_environment() {
    let ast = ast_json("FROM scratch\nARG FROM_ENV\nARG MISSING\nRUN x\n");
    let mut child = Command::new(plan_bin())
        .args(["--build-arg", "FROM_ENV", "--build-arg", "MISSING"])
        .env("FROM_ENV", "yes")
        .env_remove("MISSING")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(ast.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let env = json(&o)["stages"][0]["steps"][2]["env"].clone();
    assert!(env.as_array().unwrap().iter().any(|e| e == "FROM_ENV=yes"));
    assert!(!env.to_string().contains("MISSING"));
}

#[test]
fn input_errors_exit_2_with_one_line_naming_the_line() {
    let cases: &[(&str, &[&str], &str)] = &[
        (
            "FROM scratch\nCOPY --from=5 /a /b\n",
            &[],
            "line 2: invalid stage index 5",
        ),
        (
            "FROM scratch AS a\nCOPY --from=a /a /b\n",
            &[],
            "line 2: circular dependency",
        ),
        (
            "ARG E\nFROM $E\n",
            &[],
            "line 2: base name ($E) should not be blank",
        ),
        (
            "FROM scratch\n",
            &["--target", "nope"],
            "target stage \"nope\" could not be found",
        ),
        (
            "FROM scratch\n",
            &["--platform", "nosuch"],
            "--platform: invalid platform",
        ),
        (
            "FROM scratch\n",
            &["--build-arg", "=x"],
            "invalid build arg",
        ),
        ("FROM --platform=$NOPE/x scratch\n", &[], "line 1:"),
        ("FROM scratch\nENV A=${B:?needed}\n", &[], "line 2: ENV"),
    ];
    for (src, args, want) in cases {
        let o = run_with_stdin(args, &ast_json(src));
        assert_eq!(o.status.code(), Some(2), "{src:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(o.stdout.is_empty());
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("remfile-plan: error: "), "{err}");
        assert!(err.contains(want), "{src:?}: {err}");
    }
}

#[test]
fn bad_documents_exit_2() {
    for input in ["", "{", "[]", "{\"version\":1}", "not json"] {
        let o = run_with_stdin(&[], input);
        assert_eq!(o.status.code(), Some(2), "{input:?}");
        assert!(stderr(&o).starts_with("remfile-plan: error: "));
    }
    let mut ast: serde_json::Value = serde_json::from_str(&ast_json("FROM scratch\n")).unwrap();
    ast["version"] = 2.into();
    let o = run_with_stdin(&[], &ast.to_string());
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unsupported AST version 2"));
    let o = Command::new(plan_bin())
        .arg("/nonexistent/ast.json")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/nonexistent/ast.json"));
    let o = Command::new(plan_bin())
        .args(["--base-config", "busybox=/nonexistent.json"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn help_lists_every_flag() {
    let o = Command::new(plan_bin()).arg("--help").output().unwrap();
    assert!(o.status.success());
    let h = String::from_utf8_lossy(&o.stdout);
    for flag in [
        "--build-arg",
        "--target",
        "--platform",
        "--base-config",
        "--pretty",
    ] {
        assert!(h.contains(flag), "{flag}");
    }
}
