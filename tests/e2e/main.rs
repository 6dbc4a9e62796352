//! End-to-end tests: the `imagegate` binary run as users and scripts run it.
//! One test binary for the whole suite (linking is the cost on two cores).

mod admin;
mod api_schema;
mod browser;
mod check;
mod cli;
mod clients;
mod console_browser;
mod gateway_clients;
mod policy;
mod records;
mod scan;
mod serve;

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// Runs `imagegate ARGS` with `stdin`, from the repository root, without colour.
pub fn imagegate(args: &[&str], stdin: &[u8]) -> Output {
    imagegate_with(args, stdin, |cmd| {
        cmd.env_remove("IMAGEGATE_POLICY");
    })
}

/// [`imagegate`], with the command's environment set up by `configure`.
pub fn imagegate_with(args: &[&str], stdin: &[u8], configure: impl FnOnce(&mut Command)) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_imagegate"));
    cmd.args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    configure(&mut cmd);
    let mut child = cmd.spawn().expect("imagegate starts");
    let mut input = child.stdin.take().expect("stdin");
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        // A closed pipe is fine: the command may not read stdin at all.
        let _ = input.write_all(&stdin);
    });
    let output = child.wait_with_output().expect("imagegate runs");
    writer.join().expect("stdin writer");
    output
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("stdout is UTF-8")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).expect("stderr is UTF-8")
}

/// Writes `text` to a fresh file in a temporary directory and returns its path.
pub fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "imagegate-e2e-{}-{}",
        std::process::id(),
        name.replace('/', "_")
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("temp file");
    path
}
