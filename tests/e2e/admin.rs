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

const NO_STORE: &str = "give the --data-dir (or --database-url) that imagegate serve uses";

#[test]
fn admin_on_a_directory_without_a_store_refuses_as_audit_does_and_creates_nothing() {
    let dir = data_dir("no-store");
    let db = format!("{dir}/imagegate.db");
    let policy = "examples/policy.yaml";
    for args in [
        &["org", "policy", "show", "corp"][..],
        &["org", "policy", "set", "corp", "--file", policy],
        &["member", "add", "corp", "alice", "--role", "member"],
        &["member", "remove", "corp", "alice"],
        &["token", "create", "alice", "--name", "laptop"],
        &["token", "list", "alice"],
        &["token", "revoke", "alice", "1"],
    ] {
        let o = admin(&dir, args, b"");
        assert_eq!(o.status.code(), Some(2), "admin {args:?}: {}", stderr(&o));
        assert_eq!(
            stderr(&o),
            format!("error: no store at {db}: {NO_STORE}\n"),
            "admin {args:?}"
        );
        assert!(
            !std::path::Path::new(&dir).exists(),
            "admin {args:?} created {dir}"
        );
    }
    let o = imagegate(&["audit", "--data-dir", &dir], b"");
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stderr(&o), format!("error: no store at {db}: {NO_STORE}\n"));

    // Creating an organisation or a user may start a store, and says where.
    let o = admin(&dir, &["org", "create", "corp"], b"");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("created a new store at {db}")),
        "{}",
        stderr(&o)
    );
    let o = admin(&dir, &["org", "create", "labs"], b"");
    assert_eq!(stderr(&o), "", "only a new store is announced");
    let other = data_dir("no-store-user");
    let o = admin(
        &other,
        &["user", "create", "alice"],
        b"correct horse battery\n",
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("created a new store at {other}/imagegate.db")),
        "{}",
        stderr(&o)
    );
}

#[test]
fn the_data_directory_exported_once_serves_every_admin_command() {
    let dir = data_dir("exported");
    let run = |args: &[&str], stdin: &[u8]| {
        crate::imagegate_with(args, stdin, |cmd| {
            cmd.env("IMAGEGATE_DATA_DIR", &dir);
        })
    };
    ok(&run(
        &["admin", "org", "create", "corp", "--namespace", "corp"],
        b"",
    ));
    ok(&run(
        &[
            "admin",
            "org",
            "policy",
            "set",
            "corp",
            "--file",
            "examples/policy.yaml",
        ],
        b"",
    ));
    ok(&run(
        &["admin", "user", "create", "alice"],
        b"correct horse battery\n",
    ));
    ok(&run(
        &[
            "admin", "member", "add", "corp", "alice", "--role", "member",
        ],
        b"",
    ));
    let token = ok(&run(
        &["admin", "token", "create", "alice", "--name", "laptop"],
        b"",
    ));
    assert!(token.starts_with("igpat_"), "{token}");
    ok(&run(&["audit"], b""));
}

#[test]
fn audit_refuses_an_unknown_door_or_organisation_naming_the_valid_ones() {
    let dir = data_dir("audit-names");
    ok(&admin(&dir, &["org", "create", "corp"], b""));
    ok(&admin(&dir, &["org", "create", "labs"], b""));
    let o = imagegate(&["audit", "--data-dir", &dir, "--door", "gatway"], b"");
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "error: --door \"gatway\" is not a door; the doors are gateway, admission, imagepolicy, token\n"
    );
    assert_eq!(stdout(&o), "");
    let o = imagegate(&["audit", "--data-dir", &dir, "--org", "crop"], b"");
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "error: --org \"crop\": no organisation named \"crop\"; the organisations are corp, labs\n"
    );
    for (flag, value) in [("--door", "token"), ("--org", "corp")] {
        let o = imagegate(&["audit", "--data-dir", &dir, flag, value], b"");
        assert_eq!(o.status.code(), Some(0), "{flag} {value}: {}", stderr(&o));
    }
}
