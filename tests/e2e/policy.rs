//! `imagegate policy validate` and `imagegate policy test`.

use crate::{imagegate, stderr, stdout, temp_file};

#[test]
fn validate_accepts_the_example_policy() {
    let o = imagegate(&["policy", "validate", "examples/policy.yaml"], b"");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("valid examples/policy.yaml: policy \"corp\""),
        "{}",
        stdout(&o)
    );
}

#[test]
fn validate_reports_every_problem_with_file_line_and_field() {
    let path = temp_file(
        "invalid.yaml",
        "apiVersion: imagegate.dev/v1\nkind: ImagePolicy\nmetadata: {name: x}\nspec:\n  registryAccess:\n    enabled: true\n    allow: [\"ghcr.io.\", docker.io]\n  rules:\n    - deny: Nginx\n    - allow: ok\n    - deny: \"a/**b\"\n",
    );
    let o = imagegate(&["policy", "validate", path.to_str().unwrap()], b"");
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    let p = path.display();
    assert!(
        err.contains(&format!(
            "{p}:7:13: spec.registryAccess.allow[0]: invalid pattern \"ghcr.io.\""
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{p}:9:13: spec.rules[0].deny: invalid pattern \"Nginx\""
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("{p}:11:13: spec.rules[2].deny:")),
        "{err}"
    );
}

#[test]
fn validate_refuses_wrong_types_unknown_fields_and_non_policies() {
    for (name, text, needle) in [
        (
            "types.yaml",
            "apiVersion: imagegate.dev/v1\nkind: ImagePolicy\nmetadata: {name: x}\nspec:\n  imageAccess:\n    enabled: yes please\n",
            "spec.imageAccess.enabled",
        ),
        (
            "unknown.yaml",
            "apiVersion: imagegate.dev/v1\nkind: ImagePolicy\nmetadata: {name: x}\nspec:\n  imageAcess: {}\n",
            "unknown field `imageAcess`",
        ),
        (
            "kind.yaml",
            "apiVersion: imagegate.dev/v1\nkind: Deployment\nmetadata: {name: x}\n",
            "kind must be ImagePolicy",
        ),
        (
            "version.yaml",
            "apiVersion: imagegate.dev/v2\nkind: ImagePolicy\nmetadata: {name: x}\n",
            "unsupported apiVersion",
        ),
        (
            "category.yaml",
            "apiVersion: imagegate.dev/v1\nkind: ImagePolicy\nmetadata: {name: x}\nspec:\n  imageAccess:\n    allow: [offical]\n",
            "offical",
        ),
        ("empty.yaml", "", "policy is empty"),
        (
            "json.json",
            "{\"apiVersion\": \"imagegate.dev/v1\", \"kind\": \"ImagePolicy\", \"metadata\": {\"name\": \"x\"}, \"spec\": {\"mode\": \"block\"}}",
            "spec.mode",
        ),
    ] {
        let path = temp_file(name, text);
        let o = imagegate(&["policy", "validate", path.to_str().unwrap()], b"");
        assert_eq!(o.status.code(), Some(1), "{name}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{name}: {}", stderr(&o));
    }
}

#[test]
fn validate_of_a_missing_file_is_a_usage_error_and_of_a_binary_file_invalid() {
    let o = imagegate(&["policy", "validate", "/nonexistent.yaml"], b"");
    assert_eq!(o.status.code(), Some(2));
    let path = temp_file("binary.yaml", "");
    std::fs::write(&path, b"\xff\xfe\x00apiVersion").unwrap();
    let o = imagegate(&["policy", "validate", path.to_str().unwrap()], b"");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("not UTF-8 text (invalid byte at offset 0)"),
        "{}",
        stderr(&o)
    );
    let o = imagegate(&["check", "--policy", path.to_str().unwrap(), "nginx"], b"");
    assert_eq!(
        o.status.code(),
        Some(2),
        "a policy that does not load is a usage error for check"
    );
}

#[test]
fn policy_test_passes_the_example_suite() {
    let o = imagegate(&["policy", "test", "examples/policy.test.yaml"], b"");
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).ends_with("8 passed, 0 failed\n"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn policy_test_reports_failures_with_their_line_and_exits_one() {
    let suite = temp_file(
        "suite.yaml",
        "apiVersion: imagegate.dev/v1\nkind: ImagePolicyTest\ncases:\n  - image: nginx:1.25\n    decision: deny\n  - image: someuser/custom-image:1\n    decision: deny\n    reason: registry_not_allowed\n  - image: corp/app:1\n    decision: allow\n",
    );
    let policy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/policy.yaml");
    let o = imagegate(
        &[
            "policy",
            "test",
            suite.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(
        out.contains(&format!(
            "FAIL nginx:1.25 ({}:4): expected deny, got allow (allowed)",
            suite.display()
        )),
        "{out}"
    );
    assert!(
        out.contains("expected deny (registry_not_allowed), got deny (category_not_allowed)"),
        "{out}"
    );
    assert!(out.contains("PASS corp/app:1"), "{out}");
    assert!(out.ends_with("1 passed, 2 failed\n"), "{out}");
}

#[test]
fn policy_test_without_a_policy_is_a_usage_error() {
    let suite = temp_file(
        "nopolicy.yaml",
        "apiVersion: imagegate.dev/v1\nkind: ImagePolicyTest\ncases: []\n",
    );
    let o = imagegate(&["policy", "test", suite.to_str().unwrap()], b"");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("names no policy"), "{}", stderr(&o));
}

#[test]
fn validate_reports_three_typos_in_one_run_each_with_path_line_and_column() {
    let path = temp_file(
        "three-typos.yaml",
        "apiVersion: imagegate.dev/v1\nkind: ImagePolicy\nmetadata: {name: corp}\nspec:\n  mdoe: warn\n  imageAccess:\n    enabled: ture\n  rules:\n    - deny: \"**:latest\"\n      mesage: pin a version\n",
    );
    let o = imagegate(&["policy", "validate", path.to_str().unwrap()], b"");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let p = path.display();
    assert_eq!(
        stderr(&o),
        format!(
            "error: {p} does not load:\n\
             \x20 {p}:5:3: spec.mdoe: unknown field `mdoe`, expected one of mode, imageAccess, registryAccess, rules, require, exempt, breakGlass, rego\n\
             \x20 {p}:7:14: spec.imageAccess.enabled: expected true or false, found \"ture\"\n\
             \x20 {p}:10:7: spec.rules[0].mesage: unknown field `mesage`, expected one of allow, deny, message\n"
        )
    );
}
