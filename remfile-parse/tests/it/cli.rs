//! The `remfile-parse` binary: inputs, output, exit codes, broken pipe.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::fixtures_dir;

const BIN: &str = env!("CARGO_BIN_EXE_remfile-parse");

fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // the child may exit without reading stdin (file argument, usage error):
    // a closed pipe here is expected, not a failure
    let _ = child.stdin.take().unwrap().write_all(stdin);
    child.wait_with_output().unwrap()
}

fn lines(b: &[u8]) -> usize {
    String::from_utf8_lossy(b).lines().count()
}

fn stdout_json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn reads_stdin_without_argument() {
    let o = run(&[], b"FROM alpine\nRUN echo hi\n");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = stdout_json(&o);
    assert_eq!(v["version"], 1);
    assert_eq!(v["instructions"][1]["kind"], "run");
    assert_eq!(v["instructions"][1]["command"]["shell"], "echo hi");
    assert!(o.stderr.is_empty());
    // compact output: one line
    assert_eq!(lines(&o.stdout), 1);
}

#[test]
fn reads_stdin_with_dash_and_pretty() {
    let o = run(&["-", "--pretty"], b"FROM alpine\n");
    assert_eq!(o.status.code(), Some(0));
    assert!(lines(&o.stdout) > 5);
    assert_eq!(stdout_json(&o)["instructions"][0]["image"], "alpine");
}

#[test]
fn reads_file_argument() {
    let f = fixtures_dir().join("ok/from.Remfile");
    let o = run(&[f.to_str().unwrap()], b"ignored");
    assert_eq!(o.status.code(), Some(0));
    let v = stdout_json(&o);
    assert_eq!(v["instructions"][2]["alias"], "build-stage_1.x");
    let lib = remfile_parse::parse(&std::fs::read_to_string(&f).unwrap()).unwrap();
    assert_eq!(v, serde_json::to_value(&lib).unwrap());
}

#[test]
fn parse_error_is_one_line_with_file_line_col_and_exit_2() {
    let f = fixtures_dir().join("bad/unknown_instruction.Remfile");
    let path = f.to_str().unwrap();
    let o = run(&[path], b"");
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stdout.is_empty());
    assert_eq!(
        String::from_utf8(o.stderr).unwrap(),
        format!("remfile-parse: error: {path}:2:3: unknown instruction: FOO\n")
    );
}

#[test]
fn stdin_error_names_dash() {
    let o = run(&[], b"FROM alpine\nRUN <<EOF\n");
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        String::from_utf8(o.stderr).unwrap(),
        "remfile-parse: error: -:2:1: unterminated heredoc \"EOF\"\n"
    );
}

#[test]
fn empty_input_is_an_error() {
    let o = run(&[], b"");
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        String::from_utf8(o.stderr).unwrap(),
        "remfile-parse: error: -:1:1: file with no instructions\n"
    );
}

#[test]
fn missing_file_and_usage_exit_2_and_bad_utf8_is_replaced() {
    let o = run(&["/nonexistent/Remfile"], b"");
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8(o.stderr).unwrap();
    assert!(
        e.starts_with("remfile-parse: error: reading /nonexistent/Remfile: "),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1);

    // bytes that are not UTF-8 are U+FFFD, as in BuildKit's config JSON
    let o = run(&[], b"# caf\xe9\nFROM busybox\nLABEL a=Jos\xe9\n");
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(out.contains("Jos\u{fffd}"), "{out}");

    let o = run(&["--bogus"], b"");
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8(o.stderr).unwrap();
    assert!(e.starts_with("remfile-parse: error: "), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
}

#[test]
fn help_and_version_exit_0() {
    let o = run(&["--help"], b"");
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("--pretty"));
    let o = run(&["--version"], b"");
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn broken_pipe_is_not_an_error() {
    // a large AST written into a pipe whose reader has gone away
    let mut text = String::from("FROM alpine\n");
    for i in 0..20_000 {
        text += "RUN echo ";
        text += &i.to_string();
        text.push('\n');
    }
    let mut child = Command::new(BIN)
        .arg("--pretty")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).unwrap();
    drop(stdin);
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    assert_eq!(&first[..1], b"{");
    drop(stdout);
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
