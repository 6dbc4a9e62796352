//! `imagegate check`: the JSON contract, exit codes, stdin, and bad input.

use serde_json::Value;

use crate::{imagegate, stderr, stdout, temp_file};

const POLICY: &str = "examples/policy.yaml";

fn json_lines(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

#[test]
fn json_output_has_exactly_the_contract_fields_in_input_order() {
    let o = imagegate(
        &[
            "check",
            "--policy",
            POLICY,
            "--output",
            "json",
            "nginx:1.25",
            "someuser/custom-image:1",
            "Foo/Bar",
        ],
        b"",
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let lines = json_lines(&stdout(&o));
    assert_eq!(lines.len(), 3);
    let keys: Vec<&str> = lines[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = vec![
        "image",
        "valid",
        "reference",
        "registry",
        "repository",
        "tag",
        "digest",
        "category",
        "decision",
        "reason",
        "message",
        "mode",
    ];
    expected.sort_unstable();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, expected);

    assert_eq!(lines[0]["image"], "nginx:1.25");
    assert_eq!(lines[0]["valid"], true);
    assert_eq!(lines[0]["reference"], "docker.io/library/nginx:1.25");
    assert_eq!(lines[0]["registry"], "docker.io");
    assert_eq!(lines[0]["repository"], "library/nginx");
    assert_eq!(lines[0]["tag"], "1.25");
    assert_eq!(lines[0]["digest"], Value::Null);
    assert_eq!(lines[0]["category"], "official");
    assert_eq!(lines[0]["decision"], "allow");
    assert_eq!(lines[0]["reason"], "allowed");
    assert_eq!(lines[0]["mode"], "enforce");

    assert_eq!(lines[1]["image"], "someuser/custom-image:1");
    assert_eq!(lines[1]["category"], "community");
    assert_eq!(lines[1]["decision"], "deny");
    assert_eq!(lines[1]["reason"], "category_not_allowed");
    assert_eq!(
        lines[1]["message"],
        "image access denied: community images not allowed"
    );

    assert_eq!(lines[2]["image"], "Foo/Bar");
    assert_eq!(lines[2]["valid"], false);
    assert_eq!(lines[2]["reference"], Value::Null);
    assert_eq!(lines[2]["decision"], "deny");
    assert_eq!(lines[2]["reason"], "invalid_reference");
    assert!(
        lines[2]["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid reference \"Foo/Bar\": ")
    );
}

#[test]
fn json_reports_the_normalised_parts_of_a_pinned_reference_on_another_registry() {
    let digest = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
    let image = format!("localhost:5000/team/app:1.0@{digest}");
    let o = imagegate(&["check", "--output", "json", &image], b"");
    assert_eq!(o.status.code(), Some(0));
    let line = &json_lines(&stdout(&o))[0];
    assert_eq!(line["reference"], image.as_str());
    assert_eq!(line["registry"], "localhost:5000");
    assert_eq!(line["repository"], "team/app");
    assert_eq!(line["tag"], "1.0");
    assert_eq!(line["digest"], digest);
    assert_eq!(line["category"], Value::Null);
}

#[test]
fn exit_status_is_zero_when_all_allowed_one_when_any_denied() {
    let o = imagegate(
        &["check", "--policy", POLICY, "nginx:1.25", "corp/app:2"],
        b"",
    );
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let o = imagegate(
        &[
            "check",
            "--policy",
            POLICY,
            "nginx:1.25",
            "someuser/custom-image:1",
        ],
        b"",
    );
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn without_a_policy_every_valid_unambiguous_reference_is_allowed() {
    let o = imagegate(&["check", "someuser/custom-image", "quay.io/a/b"], b"");
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let o = imagegate(
        &[
            "check",
            "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        ],
        b"",
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("ambiguous reference"), "{}", stdout(&o));
}

#[test]
fn usage_errors_exit_two_with_the_error_on_stderr() {
    let o = imagegate(&["check"], b"");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("IMAGE"), "{}", stderr(&o));
    let o = imagegate(&["check", "--output", "yaml", "nginx"], b"");
    assert_eq!(o.status.code(), Some(2));
    let o = imagegate(
        &["check", "--policy", "/nonexistent/policy.yaml", "nginx"],
        b"",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("cannot read policy /nonexistent/policy.yaml"),
        "{}",
        stderr(&o)
    );
    assert!(
        stdout(&o).is_empty(),
        "no decision when the policy cannot be read"
    );
}

#[test]
fn a_broken_policy_exits_two_naming_file_line_and_field() {
    let path = temp_file(
        "broken.yaml",
        "apiVersion: imagegate.dev/v1\nkind: ImagePolicy\nmetadata: {name: x}\nspec:\n  rules:\n    - deny: nginx\n      mesage: typo\n",
    );
    let o = imagegate(&["check", "--policy", path.to_str().unwrap(), "nginx"], b"");
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "{}:7:7: spec.rules[0].mesage: unknown field `mesage`",
            path.display()
        )),
        "{err}"
    );
    assert!(stdout(&o).is_empty());
}

#[test]
fn stdin_dash_reads_one_reference_per_line_in_order() {
    let o = imagegate(
        &["check", "--output", "json", "first:1", "-", "last:1"],
        b"second:1\r\n\n   \n  third:1  \n",
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let images: Vec<String> = json_lines(&stdout(&o))
        .iter()
        .map(|l| l["image"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(images, ["first:1", "second:1", "third:1", "last:1"]);
}

#[test]
fn non_utf8_stdin_is_denied_with_a_clear_message_not_a_panic() {
    let o = imagegate(
        &["check", "--output", "json", "-"],
        b"nginx:1\n\xff\xfeabc\nnginx:2\n",
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let lines = json_lines(&stdout(&o));
    assert_eq!(
        lines.len(),
        3,
        "the lines around the bad one are still decided"
    );
    assert_eq!(lines[1]["decision"], "deny");
    assert_eq!(lines[1]["reason"], "invalid_reference");
    assert!(
        lines[1]["message"]
            .as_str()
            .unwrap()
            .contains("not valid UTF-8 (line 2 of standard input)")
    );
    assert_eq!(lines[2]["decision"], "allow");
}

#[test]
fn nul_bytes_and_control_characters_are_denied_and_shown_escaped() {
    let o = imagegate(&["check", "-"], b"ngi\0nx\n\x1b[31mred\n");
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("invalid reference \"ngi\\0nx\""), "{out}");
    assert!(
        out.contains("\\u{1b}"),
        "escape sequences from input never reach the terminal: {out}"
    );
    assert!(!out.contains('\u{1b}'));
}

#[test]
fn a_ten_megabyte_line_is_denied_with_a_short_message() {
    let mut input = vec![b'a'; 10 * 1024 * 1024];
    input.push(b'\n');
    let o = imagegate(&["check", "--output", "json", "-"], &input);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let line = &json_lines(&stdout(&o))[0];
    assert_eq!(line["reason"], "invalid_reference");
    let message = line["message"].as_str().unwrap();
    assert!(message.len() < 1024, "message is {} bytes", message.len());
    assert!(message.contains("(10485760 bytes)"), "{message}");
}

#[test]
fn text_output_names_the_decision_and_explains_on_request() {
    let o = imagegate(
        &[
            "check",
            "--policy",
            POLICY,
            "--explain",
            "someuser/custom-image:1",
        ],
        b"",
    );
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(
        !out.contains('\u{1b}'),
        "no colour when stdout is not a terminal"
    );
    let first = out.lines().next().unwrap();
    assert_eq!(
        first,
        "DENY  someuser/custom-image:1: image access denied: community images not allowed [category_not_allowed]"
    );
    for check in [
        "reference",
        "exemptions",
        "rules",
        "registry access",
        "image access",
        "decided by",
    ] {
        assert!(
            out.contains(&format!("      {check}")),
            "missing {check}: {out}"
        );
    }
    assert!(out.contains("spec.imageAccess"), "{out}");
}

#[test]
fn namespace_and_user_flags_reach_the_exemptions() {
    let o = imagegate(
        &[
            "check",
            "--policy",
            POLICY,
            "--output",
            "json",
            "--namespace",
            "kube-system",
            "someuser/custom-image:1",
        ],
        b"",
    );
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(json_lines(&stdout(&o))[0]["reason"], "exempt");
    let o = imagegate(
        &[
            "check",
            "--policy",
            POLICY,
            "--output",
            "json",
            "--user",
            "system:serviceaccount:kube-system:x",
            "someuser/custom-image:1",
        ],
        b"",
    );
    assert_eq!(json_lines(&stdout(&o))[0]["reason"], "exempt");
}

#[test]
fn warn_mode_allows_with_the_refusal_reason_and_exit_zero() {
    let path = temp_file(
        "warn.yaml",
        "apiVersion: imagegate.dev/v1\nkind: ImagePolicy\nmetadata: {name: x}\nspec:\n  mode: warn\n  imageAccess: {enabled: true}\n",
    );
    let o = imagegate(
        &[
            "check",
            "--policy",
            path.to_str().unwrap(),
            "--output",
            "json",
            "someuser/custom-image:1",
        ],
        b"",
    );
    assert_eq!(o.status.code(), Some(0));
    let line = &json_lines(&stdout(&o))[0];
    assert_eq!(line["decision"], "allow");
    assert_eq!(line["reason"], "category_not_allowed");
    assert_eq!(
        line["message"],
        "image access denied: community images not allowed"
    );
    assert_eq!(line["mode"], "warn");
    let o = imagegate(
        &[
            "check",
            "--policy",
            path.to_str().unwrap(),
            "someuser/custom-image:1",
        ],
        b"",
    );
    assert!(
        stdout(&o).starts_with("WARN  someuser/custom-image:1: image access denied"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn the_policy_flag_can_come_from_the_environment() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_imagegate"))
        .args(["check", "someuser/custom-image:1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("IMAGEGATE_POLICY", POLICY)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn empty_stdin_decides_nothing_and_says_so() {
    let o = imagegate(&["check", "--output", "json", "-"], b"\n\n");
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).is_empty());
    assert!(
        stderr(&o).contains("no image references were read from standard input"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_rego_policy_refuses_look_alike_registries_with_its_own_message() {
    let o = imagegate(
        &[
            "check",
            "--policy",
            "examples/rego-policy.yaml",
            "--output",
            "json",
            "trusted-registry.io/team/app:1",
            "trusted-registry.io.evil.com/team/app:1",
            "nginx:1.25",
        ],
        b"",
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let lines = json_lines(&stdout(&o));
    assert_eq!(lines[0]["decision"], "allow");
    assert_eq!(lines[1]["decision"], "deny");
    assert_eq!(lines[1]["reason"], "rego_denied");
    assert_eq!(
        lines[1]["message"],
        "image trusted-registry.io.evil.com/team/app:1 is not from an allowed registry"
    );
    assert_eq!(
        lines[1]["reference"], "trusted-registry.io.evil.com/team/app:1",
        "the reference is still reported"
    );
    assert_eq!(lines[2]["decision"], "allow");
}

#[test]
fn a_rego_syntax_error_names_the_rego_file_and_line() {
    let dir = std::env::temp_dir().join(format!("imagegate-e2e-rego-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("bad.rego"),
        "package x\n\ndeny contains msg if {\n  msg := \n}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("policy.yaml"),
        "apiVersion: imagegate.dev/v1\nkind: ImagePolicy\nmetadata: {name: x}\nspec:\n  rego: [bad.rego]\n",
    )
    .unwrap();
    let o = imagegate(
        &[
            "policy",
            "validate",
            dir.join("policy.yaml").to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("spec.rego[0]: bad.rego:4:"), "{err}");
    std::fs::write(dir.join("policy.yaml"), "apiVersion: imagegate.dev/v1\nkind: ImagePolicy\nmetadata: {name: x}\nspec:\n  rego: [missing.rego]\n").unwrap();
    let o = imagegate(
        &[
            "policy",
            "validate",
            dir.join("policy.yaml").to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("spec.rego[0]: cannot read"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_refusal_an_exception_can_lift_says_where_to_ask_when_the_form_is_known() {
    let form = "https://gateway.corp.example/console/orgs/corp/access-requests/new";
    let o = imagegate(
        &[
            "check",
            "--policy",
            POLICY,
            "--request-access",
            form,
            "someuser/custom-image:1",
            "nginx:1.25",
        ],
        b"",
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains(&format!(
            "\n      ask for access: {form}?image=docker.io/someuser/custom-image:1\n"
        )),
        "{out}"
    );
    assert_eq!(
        out.matches("ask for access").count(),
        1,
        "only for the refusal: {out}"
    );
    // Without the form, no link (and JSON never carries one).
    let o = imagegate(
        &["check", "--policy", POLICY, "someuser/custom-image:1"],
        b"",
    );
    assert!(!stdout(&o).contains("ask for access"));
}

#[test]
fn format_is_the_flag_of_check_as_of_scan_and_audit_and_output_still_works() {
    let run = |flag: &str| {
        imagegate(
            &[
                "check",
                "--policy",
                POLICY,
                flag,
                "json",
                "nginx:1.25",
                "someuser/custom-image:1",
            ],
            b"",
        )
    };
    let format = run("--format");
    let output = run("--output");
    assert_eq!(format.status.code(), Some(1), "{}", stderr(&format));
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(stdout(&format), stdout(&output));
    let lines = json_lines(&stdout(&format));
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["reason"], "category_not_allowed");

    let o = imagegate(&["check", "--format", "text", "nginx:1.25"], b"");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("ALLOW nginx:1.25"), "{}", stdout(&o));
    let o = imagegate(&["check", "--format", "yaml", "nginx:1.25"], b"");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--format"), "{}", stderr(&o));
}
