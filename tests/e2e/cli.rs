//! What every subcommand has in common: its `--help`, how it reports an OS
//! error, what it does when its reader goes away, and colour only on a
//! terminal.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::{imagegate, stderr, stdout};

/// The flags of the gateway, which only `serve` uses.
const GATEWAY_FLAGS: [&str; 4] = [
    "--public-url",
    "--upstream",
    "--upstream-credentials",
    "--allow-anonymous",
];

/// The `--flags` a help text lists, each once.
fn flags(help: &str) -> Vec<String> {
    let mut flags: Vec<String> = help
        .split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']')
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| {
            w.split(['=', '<'])
                .next()
                .unwrap_or(w)
                .trim_end_matches(['.', ')', ':'])
                .to_owned()
        })
        .collect();
    flags.sort();
    flags.dedup();
    flags
}

fn help(args: &[&str]) -> Vec<String> {
    let mut full = args.to_vec();
    full.push("--help");
    let o = imagegate(&full, b"");
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
    flags(&stdout(&o))
}

#[test]
fn each_subcommands_help_lists_only_the_flags_it_uses() {
    let store_only: &[&[&str]] = &[
        &["audit"],
        &["admin"],
        &["admin", "org", "create"],
        &["admin", "org", "policy", "set"],
        &["admin", "org", "policy", "show"],
        &["admin", "user", "create"],
        &["admin", "member", "add"],
        &["admin", "member", "remove"],
        &["admin", "token", "create"],
        &["admin", "token", "list"],
        &["admin", "token", "revoke"],
    ];
    for args in store_only {
        let listed = help(args);
        assert!(
            listed.iter().any(|f| f == "--data-dir"),
            "{args:?}: {listed:?}"
        );
        for flag in GATEWAY_FLAGS {
            assert!(
                !listed.iter().any(|f| f == flag),
                "imagegate {} --help lists {flag}: {listed:?}",
                args.join(" ")
            );
        }
    }
    let none_of_the_store: &[&[&str]] = &[
        &["check"],
        &["scan"],
        &["certs"],
        &["policy", "validate"],
        &["policy", "test"],
    ];
    for args in none_of_the_store {
        let listed = help(args);
        for flag in GATEWAY_FLAGS
            .iter()
            .chain(&["--data-dir", "--database-url"])
        {
            assert!(
                !listed.iter().any(|f| f == flag),
                "imagegate {} --help lists {flag}: {listed:?}",
                args.join(" ")
            );
        }
    }
    let serve = help(&["serve"]);
    for flag in GATEWAY_FLAGS.iter().chain(&["--data-dir", "--listen"]) {
        assert!(serve.iter().any(|f| f == flag), "{flag}: {serve:?}");
    }
    for args in [&["check"][..], &["scan"], &["audit"]] {
        assert!(
            help(args).iter().any(|f| f == "--format"),
            "imagegate {} --help has no --format",
            args[0]
        );
    }
}

/// How often `needle` occurs in `haystack`.
fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

fn serve(args: &[&str]) -> Output {
    let mut full = vec!["serve"];
    full.extend_from_slice(args);
    imagegate(&full, b"")
}

#[test]
fn an_os_error_is_printed_once() {
    let scratch = crate::temp_file("os-errors-file", "not a directory\n");
    let data_dir = scratch.parent().unwrap().join("data").display().to_string();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    let under_a_file = format!("{}/data", scratch.display());
    let cases: Vec<(&str, Output, String)> = vec![
        (
            "a missing policy",
            imagegate(&["check", "--policy", "/nope", "nginx"], b""),
            "error: cannot read policy /nope: No such file or directory (os error 2)\n".to_owned(),
        ),
        (
            "an address in use",
            serve(&["--data-dir", &data_dir, "--listen", &taken]),
            format!("error: cannot serve on {taken}: Address already in use (os error 98)\n"),
        ),
        (
            "a missing certificate",
            serve(&[
                "--data-dir",
                &data_dir,
                "--listen",
                "127.0.0.1:0",
                "--tls-cert",
                "/nope.crt",
                "--tls-key",
                "/nope.key",
            ]),
            "error: cannot use TLS certificate /nope.crt with key /nope.key: cannot read /nope.crt: No such file or directory (os error 2)\n".to_owned(),
        ),
        (
            "a bad data directory",
            serve(&["--data-dir", &under_a_file, "--listen", "127.0.0.1:0"]),
            format!("error: data directory {under_a_file}: Not a directory (os error 20)\n"),
        ),
        (
            "a missing config file",
            serve(&["--config", "/nope.yaml"]),
            "error: cannot read config /nope.yaml: No such file or directory (os error 2)\n"
                .to_owned(),
        ),
    ];
    for (what, o, expected) in cases {
        assert_eq!(o.status.code(), Some(2), "{what}: {}", stderr(&o));
        let err = stderr(&o);
        // The server logs JSON lines on stdout; the error is stderr's last line.
        assert!(err.ends_with(&expected), "{what}: {err}");
        assert_eq!(count(&err, "(os error"), 1, "{what}: {err}");
    }
}

/// Runs `imagegate ARGS` with standard output a pipe whose reading end is
/// already closed, as `imagegate … | head` is once head has what it wants.
fn into_a_closed_pipe(args: &[&str], stdin: &[u8]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut child = Command::new(env!("CARGO_BIN_EXE_imagegate"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("IMAGEGATE_POLICY")
        .stdin(Stdio::piped())
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let _ = input.write_all(stdin);
    drop(input);
    child.wait_with_output().unwrap()
}

#[test]
fn a_reader_that_goes_away_ends_the_command_quietly_with_status_141() {
    let dir = std::env::temp_dir().join(format!("imagegate-cli-{}-pipe", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let data_dir = dir.display().to_string();
    let o = imagegate(
        &["admin", "--data-dir", &data_dir, "org", "create", "corp"],
        b"",
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let many: String = (0..20_000).map(|i| format!("nginx:1.{i}\n")).collect();
    let scan_tree = "tests/fixtures/scan/tree";
    // With a policy: without one, check and scan say so on stderr first.
    let policy = "examples/policy.yaml";
    for args in [
        &["check", "--policy", policy, "-"][..],
        &["check", "--policy", policy, "--format", "json", "-"],
        &["scan", "--policy", policy, scan_tree],
        &["scan", "--policy", policy, "--format", "json", scan_tree],
        &["scan", "--policy", policy, "--format", "sarif", scan_tree],
        &["audit", "--data-dir", &data_dir, "--format", "csv"],
        &["policy", "validate", "examples/policy.yaml"],
        &[
            "admin",
            "--data-dir",
            &data_dir,
            "org",
            "policy",
            "show",
            "corp",
        ],
    ] {
        let o = into_a_closed_pipe(args, many.as_bytes());
        assert_eq!(
            stderr(&o),
            "",
            "imagegate {} says something about the closed pipe",
            args.join(" ")
        );
        assert_eq!(o.status.code(), Some(141), "imagegate {}", args.join(" "));
    }
}

/// Starts `imagegate serve --log-format text` with `run` wrapping the
/// command line, waits until `log` holds its `listening` line, and stops it.
fn text_log_of(run: impl FnOnce(&[String]) -> Command, log: &std::path::Path) -> Vec<u8> {
    let data_dir = log.with_extension("data");
    let serve: Vec<String> = [
        env!("CARGO_BIN_EXE_imagegate"),
        "serve",
        "--log-format",
        "text",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data_dir.to_str().unwrap(),
    ]
    .map(str::to_owned)
    .to_vec();
    let mut child = run(&serve).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = std::fs::read(log).unwrap_or_default();
        if String::from_utf8_lossy(&text).contains("listening") {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no listening line in {}: {}",
            log.display(),
            String::from_utf8_lossy(&text)
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    text
}

#[test]
fn text_logs_are_coloured_only_on_a_terminal_and_never_with_no_color() {
    const ESC: u8 = 0x1b;
    let dir = std::env::temp_dir().join(format!("imagegate-cli-{}-logs", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    let file = dir.join("to-a-file.log");
    let out = std::fs::File::create(&file).unwrap();
    let text = text_log_of(
        |argv| {
            let mut cmd = Command::new(&argv[0]);
            cmd.args(&argv[1..])
                .env_remove("NO_COLOR")
                .stdout(out)
                .stderr(Stdio::null());
            cmd
        },
        &file,
    );
    assert!(
        !text.contains(&ESC),
        "escape codes in a log file: {}",
        String::from_utf8_lossy(&text)
    );

    // On a terminal (util-linux `script` gives the server a pty and copies
    // what it shows into the file): colour, unless NO_COLOR is set.
    for (no_color, coloured) in [(None, true), (Some("1"), false)] {
        let file = dir.join(format!("on-a-terminal-{coloured}.log"));
        let text = text_log_of(
            |argv| {
                let mut cmd = Command::new("script");
                cmd.args(["--quiet", "--flush", "--command", &argv.join(" ")])
                    .arg(&file)
                    .env_remove("NO_COLOR")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                if let Some(v) = no_color {
                    cmd.env("NO_COLOR", v);
                }
                cmd
            },
            &file,
        );
        assert_eq!(
            text.contains(&ESC),
            coloured,
            "NO_COLOR={no_color:?}: {}",
            String::from_utf8_lossy(&text)
        );
    }
}
