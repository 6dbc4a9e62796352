//! `imagegate admin`: the store managed from the command line, with the flags
//! the registry gateway issue names.

use std::process::Output;

use crate::{imagegate, stderr, stdout};

fn data_dir(name: &str) -> String {
    let dir = std::env::temp_dir().join(format!("imagegate-admin-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir.to_str().unwrap().to_owned()
}

fn admin(dir: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut full = vec!["admin", "--data-dir", dir];
    full.extend_from_slice(args);
    imagegate(&full, stdin)
}

fn ok(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

#[test]
fn an_organisation_its_policy_members_and_tokens_are_managed_from_the_command_line() {
    let dir = data_dir("flow");
    ok(&admin(
        &dir,
        &[
            "org",
            "create",
            "corp",
            "--namespace",
            "corp",
            "--namespace",
            "corp-labs",
        ],
        b"",
    ));
    let policy = ok(&admin(&dir, &["org", "policy", "show", "corp"], b""));
    assert!(
        policy.contains("enabled: false"),
        "image access starts off: {policy}"
    );
    assert!(
        policy.contains("organizationNamespaces: [corp, corp-labs]"),
        "{policy}"
    );

    ok(&admin(
        &dir,
        &[
            "org",
            "policy",
            "set",
            "corp",
            "--file",
            "examples/policy.yaml",
        ],
        b"",
    ));
    let shown = ok(&admin(&dir, &["org", "policy", "show", "corp"], b""));
    assert_eq!(
        shown,
        std::fs::read_to_string("examples/policy.yaml").unwrap()
    );

    ok(&admin(
        &dir,
        &["user", "create", "alice"],
        b"correct horse battery\n",
    ));
    ok(&admin(
        &dir,
        &["member", "add", "corp", "alice", "--role", "member"],
        b"",
    ));
    let token = ok(&admin(
        &dir,
        &[
            "token",
            "create",
            "alice",
            "--name",
            "laptop",
            "--expires",
            "30",
        ],
        b"",
    ));
    let token = token.trim();
    assert!(
        token.starts_with("igpat_") && !token.contains(char::is_whitespace),
        "only the token: {token:?}"
    );

    let list = ok(&admin(&dir, &["token", "list", "alice"], b""));
    let line = list.lines().next().unwrap();
    let fields: Vec<&str> = line.split('\t').collect();
    assert_eq!(fields[1], "laptop");
    assert_eq!(fields[2], "active");
    assert!(!list.contains(token), "the secret is never listed");
    let id = fields[0];
    ok(&admin(&dir, &["token", "revoke", "alice", id], b""));
    assert!(ok(&admin(&dir, &["token", "list", "alice"], b"")).contains("\trevoked\t"));
    ok(&admin(&dir, &["member", "remove", "corp", "alice"], b""));
}

#[test]
fn admin_refuses_bad_input_with_a_message() {
    let dir = data_dir("bad");
    ok(&admin(&dir, &["org", "create", "corp"], b""));
    let o = admin(&dir, &["org", "create", "corp"], b"");
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("organisation \"corp\" already exists"),
        "{}",
        stderr(&o)
    );
    let o = admin(&dir, &["org", "create", "Corp"], b"");
    assert!(
        stderr(&o).contains("organisation name \"Corp\""),
        "{}",
        stderr(&o)
    );
    let o = admin(&dir, &["user", "create", "bob"], b"short\n");
    assert!(
        stderr(&o).contains("at least 8 characters"),
        "{}",
        stderr(&o)
    );
    let o = admin(
        &dir,
        &["member", "add", "corp", "nobody", "--role", "owner"],
        b"",
    );
    assert!(
        stderr(&o).contains("no user named \"nobody\""),
        "{}",
        stderr(&o)
    );
    let o = admin(
        &dir,
        &["member", "add", "corp", "nobody", "--role", "admin"],
        b"",
    );
    assert_eq!(o.status.code(), Some(2));
    let broken = std::env::temp_dir().join(format!(
        "imagegate-admin-broken-{}.yaml",
        std::process::id()
    ));
    std::fs::write(&broken, "apiVersion: imagegate.dev/v1\nkind: ImagePolicy\nmetadata: {name: x}\nspec:\n  mdoe: warn\n").unwrap();
    let o = admin(
        &dir,
        &[
            "org",
            "policy",
            "set",
            "corp",
            "--file",
            broken.to_str().unwrap(),
        ],
        b"",
    );
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("spec.mdoe"), "{}", stderr(&o));
    let o = imagegate(
        &[
            "admin",
            "--database-url",
            "postgres://db/imagegate",
            "org",
            "policy",
            "show",
            "corp",
        ],
        b"",
    );
    assert!(
        stderr(&o).contains("PostgreSQL is not supported by this build yet"),
        "{}",
        stderr(&o)
    );
}
