//! The REST API against its own OpenAPI document: schemathesis (PyPI)
//! generates requests from `/api/v1/openapi.json` of a running `imagegate
//! serve` (coverage, fuzzing and stateful phases, a fixed seed) and checks
//! every answer. The contract: no server error ever; answers match their
//! documented status codes, content types, headers and schemas; requests
//! that break the schema are refused; signing in matters. Only
//! `positive_data_acceptance` is left out: the API checks more than a schema
//! can say (policy YAML that loads, registry patterns, names), so a
//! schema-valid body is often, rightly, 422. Reports land in
//! `TARGET/e2e-artifacts/schemathesis/`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::clients::{DataDir, Gateway, Run, Scratch, TestCa, require, run};

/// Examples per operation and phase: enough to reach every branch of the
/// handlers' validation, small enough for two cores.
const MAX_EXAMPLES: &str = "30";

struct Schemathesis {
    gateway: Gateway,
    ca: TestCa,
    scratch: Scratch,
    config: std::path::PathBuf,
}

impl Schemathesis {
    /// corp with owner olga and member alice, served over HTTPS.
    fn start() -> Schemathesis {
        require("st");
        let data = DataDir::new();
        data.admin(&["org", "create", "corp", "--namespace", "corp"], b"")
            .success();
        data.user_with_token("olga", "olga console password");
        data.user_with_token("alice", "alice console password");
        data.admin(&["member", "add", "corp", "olga", "--role", "owner"], b"")
            .success();
        data.admin(&["member", "add", "corp", "alice", "--role", "member"], b"")
            .success();
        let ca = TestCa::new();
        let gateway = Gateway::start(data, &ca, &[], false);
        let scratch = Scratch::new("schemathesis");
        // Path parameters named `org` are corp's, so requests reach the
        // handlers' logic instead of stopping at "not found".
        let config = scratch.join("schemathesis.toml");
        std::fs::write(&config, "[parameters]\n\"path.org\" = \"corp\"\n").unwrap();
        Schemathesis {
            gateway,
            ca,
            scratch,
            config,
        }
    }

    /// A new personal access token of `user`.
    fn token(&self, user: &str) -> String {
        let created = self
            .gateway
            .data()
            .admin(&["token", "create", user, "--name", "schemathesis"], b"")
            .success();
        created.stdout.trim().to_owned()
    }

    /// `st run` against the served document as `token`, with `args`; the
    /// report is kept under `name`.
    fn run(&self, name: &str, token: &str, config: bool, args: &[&str]) -> Run {
        let reports = crate::browser::target_dir()
            .join("e2e-artifacts/schemathesis")
            .join(name);
        std::fs::create_dir_all(&reports).unwrap();
        let mut cmd = Command::new("st");
        if config {
            cmd.arg("--config-file").arg(&self.config);
        }
        cmd.current_dir(self.scratch.path())
            .env("NO_COLOR", "1")
            .args(["run", "--no-color"])
            .arg(format!(
                "https://{}/api/v1/openapi.json",
                self.gateway.host_port()
            ))
            .arg("--tls-verify")
            .arg(self.ca.ca())
            .args(["--header", &format!("Authorization: Bearer {token}")])
            .args(["--max-examples", MAX_EXAMPLES, "--seed", "20261123"])
            .args(["--generation-database", "none"])
            // A keep-alive connection the server closed after an answer
            // whose request body it did not read is retried on a new one,
            // as clients do; a request that breaks the server fails again.
            .args(["--request-retries", "2"])
            .args(["--report", "junit,ndjson", "--report-dir"])
            .arg(&reports)
            .args(args);
        run(cmd, None, Duration::from_secs(300))
    }
}

/// Fails with schemathesis's own account (which names the operation and a
/// curl command that reproduces it) and the server's log.
fn passed(s: &Schemathesis, what: &str, run: &Run) {
    assert!(
        run.status.success(),
        "schemathesis found failures {what}:\n{}\n{}\n--- imagegate serve log\n{}",
        run.stdout,
        run.stderr,
        s.gateway.log()
    );
    let summary = run
        .stdout
        .lines()
        .find(|l| l.contains(" generated, "))
        .unwrap_or_default();
    eprintln!("schemathesis {what}: {}", summary.trim());
    assert!(
        !summary.is_empty() && !summary.trim_start().starts_with("0 generated"),
        "schemathesis generated nothing {what}:\n{}",
        run.stdout
    );
}

fn no_server_error_in(log: &str) -> bool {
    !log.lines()
        .any(|l| l.contains("\"level\":\"ERROR\"") || l.contains("panicked"))
}

#[test]
fn schemathesis_finds_no_server_error_and_no_answer_the_document_does_not_describe() {
    let s = Schemathesis::start();
    let owner = s.token("olga");
    let member = s.token("alice");
    // Revoking tokens is run on its own below: among the links schemathesis
    // infers is "list my tokens, then delete one", which would revoke the
    // token the run signs in with.
    let conformance = [
        "--checks",
        "all",
        "--exclude-checks",
        "positive_data_acceptance",
        "--exclude-path",
        "/api/v1/tokens/{id}",
    ];
    passed(
        &s,
        "as corp's owner",
        &s.run("owner", &owner, true, &conformance),
    );
    passed(
        &s,
        "as corp's member",
        &s.run("member", &member, true, &conformance),
    );
    // Any organisation name, any path: a caller outside them all.
    passed(
        &s,
        "with any organisation",
        &s.run(
            "any-org",
            &owner,
            false,
            &[
                "--checks",
                "not_a_server_error",
                "--exclude-path",
                "/api/v1/tokens/{id}",
            ],
        ),
    );
    // A token that may revoke itself: afterwards every answer is 401, never a 5xx.
    let throwaway = s.token("olga");
    passed(
        &s,
        "revoking tokens",
        &s.run(
            "tokens",
            &throwaway,
            false,
            &[
                "--checks",
                "not_a_server_error",
                "--include-path-regex",
                "^/api/v1/tokens",
            ],
        ),
    );
    let log = s.gateway.log();
    assert!(
        no_server_error_in(&log),
        "the server logged an error:\n{log}"
    );
    assert!(
        Path::new(&crate::browser::target_dir().join("e2e-artifacts/schemathesis/owner")).is_dir()
    );
}
