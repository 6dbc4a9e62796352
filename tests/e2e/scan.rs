//! `imagegate scan` over the fixture tree (tests/fixtures/scan/tree): golden
//! JSON and text outputs, the contract fields written out for the cases that
//! matter, SARIF checked against the SARIF 2.1.0 schema, exit codes, stdin,
//! build args, Compose variables, `.gitignore` and symbolic link loops.
//!
//! Set IMAGEGATE_UPDATE_GOLDEN=1 to rewrite the golden files after a change
//! that is meant to alter them, then review the diff.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

const POLICY: &str = "tests/fixtures/scan/policy.yaml";
const TREE: &str = "tests/fixtures/scan/tree";

/// Runs `imagegate scan ARGS` from the repository root with a clean
/// environment (no Compose variables leak in from the machine), `vars` set.
fn scan(args: &[&str], vars: &[(&str, &str)], stdin: &[u8]) -> Output {
    let args: Vec<&str> = std::iter::once("scan")
        .chain(args.iter().copied())
        .collect();
    crate::imagegate_with(&args, stdin, |cmd| {
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(vars.iter().copied());
    })
}

fn out(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("stdout is UTF-8")
}

fn err(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).expect("stderr is UTF-8")
}

fn records(o: &Output) -> Vec<Value> {
    out(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

fn find<'a>(records: &'a [Value], file: &str, line: u64) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|r| r["file"] == file && r["line"] == line)
        .collect()
}

fn one<'a>(records: &'a [Value], file: &str, line: u64) -> &'a Value {
    match find(records, file, line).as_slice() {
        [r] => r,
        other => panic!("expected one finding at {file}:{line}, got {other:#?}"),
    }
}

/// Compares `actual` with the golden file, or rewrites it when asked to.
fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/scan")
        .join(name);
    if std::env::var_os("IMAGEGATE_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).expect("golden file written");
        return;
    }
    let expected = std::fs::read_to_string(&path).expect("golden file");
    if expected != actual {
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(e, a)| e != a)
            .unwrap_or(expected.lines().count().min(actual.lines().count()));
        panic!(
            "{name} differs from line {}:\nexpected: {:?}\nactual:   {:?}\n(IMAGEGATE_UPDATE_GOLDEN=1 rewrites it)",
            first + 1,
            expected.lines().nth(first),
            actual.lines().nth(first)
        );
    }
}

#[test]
fn the_fixture_tree_gives_the_golden_json_lines_and_exit_one() {
    let o = scan(&["--policy", POLICY, "--format", "json", TREE], &[], b"");
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert_eq!(err(&o), "");
    golden("expected.jsonl", &out(&o));
}

#[test]
fn the_fixture_tree_gives_the_golden_text_grouped_by_file_refusals_first() {
    let o = scan(&["--policy", POLICY, TREE], &[], b"");
    assert_eq!(o.status.code(), Some(1));
    let text = out(&o);
    assert!(
        !text.contains('\u{1b}'),
        "no colour when stdout is not a terminal"
    );
    golden("expected.txt", &text);
    // Files with a refusal come before files with none; in a file, refusals
    // come first with their message and hint.
    let headers: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.is_empty())
        .collect();
    let allowed_only = headers
        .iter()
        .position(|h| *h == "compose/shared/Dockerfile");
    let refused = headers.iter().position(|h| *h == "k8s/cronjob.yaml");
    assert!(refused < allowed_only, "{headers:?}");
    let block: Vec<&str> = text
        .split("\n\n")
        .find(|b| b.starts_with("k8s/rendered.yaml\n"))
        .expect("rendered.yaml block")
        .lines()
        .collect();
    assert_eq!(
        block[1],
        "  25:18    DENY  someuser/shop:2.1: image access denied: community images not allowed [category_not_allowed] (Deployment/shop spec.template.spec.containers[0].image)"
    );
    assert!(block[2].trim_start().starts_with("hint: "), "{block:?}");
    assert!(block.last().unwrap().contains("ALLOW someuser/exempt-db:1"));
    assert!(
        text.contains("1 Helm chart template skipped"),
        "the summary says what was left out: {text}"
    );
}

#[test]
fn each_finding_carries_file_line_column_source_image_raw_and_every_check_field() {
    let o = scan(&["--policy", POLICY, "--format", "json", TREE], &[], b"");
    let r = records(&o);
    let golang = one(&r, "app/Dockerfile", 8);
    // The fields in this order (serde_json's map here sorts its keys, so
    // read them off the line itself).
    let line = out(&o)
        .lines()
        .find(|l| l.starts_with(r#"{"file":"app/Dockerfile","line":8,"#))
        .expect("the golang line")
        .to_owned();
    let fields = [
        "file",
        "line",
        "column",
        "source",
        "image",
        "raw",
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
        "at",
    ];
    let at: Vec<usize> = fields
        .iter()
        .map(|f| {
            line.find(&format!("\"{f}\":"))
                .unwrap_or_else(|| panic!("{f} in {line}"))
        })
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{line}");
    assert_eq!(golang.as_object().unwrap().len(), fields.len());
    // ARG before FROM, substituted, with --platform before the image.
    assert_eq!(golang["column"], 32);
    assert_eq!(golang["source"], "dockerfile");
    assert_eq!(golang["image"], "golang:1.23");
    assert_eq!(golang["raw"], "golang:${GO_VERSION}");
    assert_eq!(golang["reference"], "docker.io/library/golang:1.23");
    assert_eq!(golang["category"], "official");
    assert_eq!(golang["decision"], "allow");
}

#[test]
fn dockerfile_stages_shadow_images_and_external_from_images_are_found() {
    let o = scan(&["--policy", POLICY, "--format", "json", TREE], &[], b"");
    let r = records(&o);
    let images: Vec<(u64, u64, &str)> = r
        .iter()
        .filter(|r| r["file"] == "app/Dockerfile")
        .map(|r| {
            (
                r["line"].as_u64().unwrap(),
                r["column"].as_u64().unwrap(),
                r["image"].as_str().unwrap(),
            )
        })
        .collect();
    // Line 18 `FROM alpine` and `COPY --from=build|0` name stages; the
    // heredoc's `FROM` line is file content.
    assert_eq!(
        images,
        [
            (8, 32, "golang:1.23"),
            (11, 28, "someuser/build-tools:2"),
            (15, 6, "alpine:3.20"),
            (20, 13, "someuser/helper:1.0"),
            (26, 6, "${REGISTRY}/runtime:1"),
        ]
    );
    let mount = one(&r, "app/Dockerfile", 11);
    assert_eq!(mount["reason"], "category_not_allowed");
    assert_eq!(
        mount["message"],
        "image access denied: community images not allowed"
    );
    let unresolved = one(&r, "app/Dockerfile", 26);
    assert_eq!(unresolved["decision"], "deny");
    assert_eq!(unresolved["reason"], "unresolved");
    assert_eq!(unresolved["valid"], false);
    assert_eq!(unresolved["raw"], "${REGISTRY}/runtime:1");
    assert_eq!(
        unresolved["message"],
        "unresolved image \"${REGISTRY}/runtime:1\": REGISTRY has no value"
    );
    // The escape directive: a backtick continues the FROM onto `AS base`,
    // and `FROM base` is the stage.
    let windows: Vec<(u64, &str)> = r
        .iter()
        .filter(|r| r["file"] == "app/windows.Dockerfile")
        .map(|r| (r["line"].as_u64().unwrap(), r["image"].as_str().unwrap()))
        .collect();
    assert_eq!(
        windows,
        [
            (3, "mcr.microsoft.com/windows/servercore:ltsc2022"),
            (8, "ghcr.io/corp/tools:1.4")
        ]
    );
    // `FROM scratch` is no image.
    let dev: Vec<&str> = r
        .iter()
        .filter(|r| r["file"] == "app/Containerfile.dev")
        .map(|r| r["image"].as_str().unwrap())
        .collect();
    assert_eq!(dev, ["quay.io/someorg/devtools:latest"]);
}

#[test]
fn build_args_override_arg_defaults_and_fill_unset_args() {
    let o = scan(
        &[
            "--policy",
            POLICY,
            "--format",
            "json",
            "--build-arg",
            "GO_VERSION=1.22",
            "--build-arg",
            "REGISTRY",
            "tests/fixtures/scan/tree/app/Dockerfile",
        ],
        &[("REGISTRY", "ghcr.io/corp")],
        b"",
    );
    let r = records(&o);
    let file = "tests/fixtures/scan/tree/app/Dockerfile";
    assert_eq!(one(&r, file, 8)["image"], "golang:1.22");
    let runtime = one(&r, file, 26);
    assert_eq!(runtime["image"], "ghcr.io/corp/runtime:1");
    assert_eq!(runtime["decision"], "allow");
}

#[test]
fn compose_images_are_interpolated_from_dotenv_and_the_environment() {
    let o = scan(&["--policy", POLICY, "--format", "json", TREE], &[], b"");
    let r = records(&o);
    let compose = "compose/compose.yaml";
    let web = one(&r, compose, 3);
    assert_eq!(
        (&web["column"], &web["source"], &web["image"], &web["raw"]),
        (
            &Value::from(12),
            &Value::from("compose"),
            &Value::from("nginx:1.27"),
            &Value::from("nginx:${TAG}")
        )
    );
    assert_eq!(web["at"], "services.web.image");
    assert_eq!(one(&r, compose, 5)["image"], "postgres:16");
    assert_eq!(one(&r, compose, 7)["image"], "redis:7");
    let worker = one(&r, compose, 9);
    assert_eq!(worker["reason"], "unresolved");
    assert_eq!(
        worker["message"],
        "unresolved image \"${WORKER_IMAGE:?set WORKER_IMAGE}\": WORKER_IMAGE has no value"
    );
    // A service built with `pull_policy: build` pulls nothing: its image is the result's name.
    assert!(r.iter().all(|r| r["image"] != "someuser/tool:1"));
    // The build's Dockerfile is scanned with the service's build args.
    let built = find(&r, "compose/build/Containerfile", 2);
    let images: Vec<&str> = built.iter().map(|r| r["image"].as_str().unwrap()).collect();
    assert_eq!(images, ["debian:12", "someuser/base:1.27"], "{built:#?}");
    let via = built
        .iter()
        .find(|r| r["image"] == "someuser/base:1.27")
        .unwrap();
    assert_eq!(
        via["at"],
        "FROM, built by compose/compose.yaml services.api.build"
    );
    assert_eq!(via["reason"], "category_not_allowed");
    // An override file is a Compose file by its name.
    assert_eq!(
        one(&r, "compose/docker-compose.prod.yml", 4)["message"],
        "registry access to ghcr.io is not allowed"
    );

    // The shell's environment wins over .env; --env-file replaces .env.
    let o = scan(
        &[
            "--policy",
            POLICY,
            "--format",
            "json",
            "tests/fixtures/scan/tree/compose",
        ],
        &[("TAG", "1.25"), ("WORKER_IMAGE", "corp/worker:3")],
        b"",
    );
    let r = records(&o);
    assert_eq!(one(&r, "compose.yaml", 3)["image"], "nginx:1.25");
    assert_eq!(one(&r, "compose.yaml", 9)["image"], "corp/worker:3");
    assert_eq!(one(&r, "compose.yaml", 9)["decision"], "allow");
    let env = crate::temp_file("scan.env", "DB_IMAGE=mariadb\nDB_TAG=11\n");
    let o = scan(
        &[
            "--policy",
            POLICY,
            "--format",
            "json",
            "--env-file",
            env.to_str().unwrap(),
            "tests/fixtures/scan/tree/compose/compose.yaml",
        ],
        &[],
        b"",
    );
    let r = records(&o);
    let file = "tests/fixtures/scan/tree/compose/compose.yaml";
    assert_eq!(one(&r, file, 5)["image"], "mariadb:11");
    assert_eq!(
        one(&r, file, 3)["reason"],
        "unresolved",
        "TAG came from .env only"
    );
}

#[test]
fn an_inline_dockerfile_in_compose_is_scanned_at_its_own_lines() {
    let compose = crate::temp_file(
        "compose.yaml",
        "services:\n  app:\n    build:\n      dockerfile_inline: |\n        ARG V=3.20\n        FROM alpine:${V}\n        COPY --from=someuser/x:1 / /\n",
    );
    let o = scan(
        &[
            "--policy",
            POLICY,
            "--format",
            "json",
            compose.to_str().unwrap(),
        ],
        &[],
        b"",
    );
    let r = records(&o);
    let found: Vec<(u64, u64, &str, &str)> = r
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().unwrap(),
                r["column"].as_u64().unwrap(),
                r["image"].as_str().unwrap(),
                r["source"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            (6, 14, "alpine:3.20", "compose"),
            (7, 21, "someuser/x:1", "compose")
        ]
    );
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn kubernetes_workloads_lists_and_cronjobs_are_found_with_the_admission_doors_walk() {
    let o = scan(&["--policy", POLICY, "--format", "json", TREE], &[], b"");
    let r = records(&o);
    let cron = one(&r, "k8s/cronjob.yaml", 13);
    assert_eq!(cron["column"], 22);
    assert_eq!(cron["source"], "kubernetes");
    assert_eq!(
        cron["at"],
        "CronJob/nightly spec.jobTemplate.spec.template.spec.containers[0].image"
    );
    assert_eq!(
        cron["message"],
        "registry access to registry.evil.example is not allowed"
    );
    let rendered: Vec<(u64, &str)> = r
        .iter()
        .filter(|r| r["file"] == "k8s/rendered.yaml")
        .map(|r| (r["line"].as_u64().unwrap(), r["image"].as_str().unwrap()))
        .collect();
    assert_eq!(
        rendered,
        [
            (22, "corp/shop-migrate:2.1"),
            (25, "someuser/shop:2.1"),
            (27, "docker.io/library/envoy:latest"),
            (40, "someuser/exempt-db:1"),
        ]
    );
    // The object's namespace reaches the policy's exemptions, as at admission.
    let exempt = one(&r, "k8s/rendered.yaml", 40);
    assert_eq!(
        (&exempt["decision"], &exempt["reason"]),
        (&"allow".into(), &"exempt".into())
    );
    let list: Vec<&str> = r
        .iter()
        .filter(|r| r["file"] == "k8s/list.json")
        .map(|r| r["at"].as_str().unwrap())
        .collect();
    assert_eq!(
        list,
        [
            "Pod/debug spec.containers[0].image",
            "Pod/debug spec.ephemeralContainers[0].image"
        ]
    );
    // Not Kubernetes objects, not ours, ignored, or Helm templates: nothing.
    for skipped in [
        "k8s/values.yaml",
        "docs/notes.txt",
        "docs/package.json",
        "ignored/Dockerfile",
    ] {
        assert!(r.iter().all(|r| r["file"] != skipped), "{skipped}");
    }
    assert!(
        r.iter()
            .all(|r| !r["file"].as_str().unwrap().starts_with("chart/"))
    );
    assert!(r.iter().all(|r| r["image"] != "someuser/not-a-container:1"));
}

#[test]
fn malformed_files_are_parse_error_findings_with_the_parsers_location_and_the_scan_goes_on() {
    let o = scan(&["--policy", POLICY, "--format", "json", TREE], &[], b"");
    let r = records(&o);
    let broken = one(&r, "malformed/deploy.yaml", 11);
    assert_eq!(broken["column"], 10);
    assert_eq!(broken["decision"], "deny");
    assert_eq!(broken["reason"], "parse_error");
    assert_eq!(broken["source"], "kubernetes");
    assert_eq!(broken["image"], Value::Null);
    assert_eq!(
        broken["message"],
        "cannot parse YAML: while parsing a block collection, did not find expected '-' indicator"
    );
    let compose = one(&r, "malformed/compose.yaml", 3);
    assert_eq!(
        (&compose["source"], &compose["reason"]),
        (&"compose".into(), &"parse_error".into())
    );
    // A second `image:` could hide an image from the scanner: refused.
    let dup = one(&r, "malformed/duplicate.yaml", 9);
    assert_eq!(dup["reason"], "parse_error");
    assert!(
        dup["message"]
            .as_str()
            .unwrap()
            .contains("duplicate mapping key `image`")
    );
    // A container without an image is never skipped silently.
    let pod = one(&r, "malformed/pod.yaml", 7);
    assert_eq!(
        pod["message"],
        "cannot parse Kubernetes object: Pod/no-image: spec.containers[0].image: container has no image"
    );
    // The files after the broken ones were still read.
    assert!(r.iter().any(|r| r["file"] == "k8s/list.json"));
}

#[test]
fn stdin_reads_rendered_manifests_and_compose_config() {
    let rendered = std::fs::read(Path::new(TREE).join("k8s/rendered.yaml")).unwrap();
    let o = scan(
        &["--policy", POLICY, "--format", "json", "-"],
        &[],
        &rendered,
    );
    assert_eq!(o.status.code(), Some(1));
    let r = records(&o);
    assert_eq!(r.len(), 4);
    assert!(
        r.iter()
            .all(|r| r["file"] == "-" && r["source"] == "kubernetes")
    );
    assert_eq!(one(&r, "-", 25)["image"], "someuser/shop:2.1");

    // `docker compose config` prints the resolved Compose file.
    let config = b"name: shop\nservices:\n  web:\n    image: nginx:1.27\n";
    let o = scan(&["--policy", POLICY, "--format", "json", "-"], &[], config);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let r = records(&o);
    assert_eq!(
        (&r[0]["source"], &r[0]["line"], &r[0]["image"]),
        (&"compose".into(), &4.into(), &"nginx:1.27".into())
    );
}

#[test]
fn a_helm_template_named_on_the_command_line_is_skipped_and_counted() {
    let o = scan(
        &[
            "--policy",
            POLICY,
            "tests/fixtures/scan/tree/chart/templates/deployment.yaml",
            "tests/fixtures/scan/tree/k8s/cronjob.yaml",
        ],
        &[],
        b"",
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(err(&o), "");
    let text = out(&o);
    assert!(!text.contains("chart/templates"), "{text}");
    assert!(text.contains("1 Helm chart template skipped"), "{text}");
}

#[test]
fn exit_status_is_zero_when_nothing_is_refused_and_two_on_usage_or_policy_errors() {
    let o = scan(
        &[
            "--policy",
            POLICY,
            "tests/fixtures/scan/tree/compose/shared",
        ],
        &[],
        b"",
    );
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert!(
        out(&o).ends_with("1 file scanned, 1 finding: 0 refused, 1 allowed\n"),
        "{}",
        out(&o)
    );

    let o = scan(
        &["--policy", POLICY, "tests/fixtures/scan/no-such-dir"],
        &[],
        b"",
    );
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        err(&o),
        "error: cannot scan tests/fixtures/scan/no-such-dir: no such file or directory\n"
    );
    let o = scan(&["--build-arg", "=x", TREE], &[], b"");
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("\"=x\" is not NAME=VALUE"), "{}", err(&o));
    let o = scan(&["--format", "xml", TREE], &[], b"");
    assert_eq!(o.status.code(), Some(2));

    let broken = crate::temp_file(
        "scan-broken-policy.yaml",
        "apiVersion: imagegate.dev/v1\nkind: ImagePolicy\nspec:\n  mode: sometimes\n",
    );
    let o = scan(&["--policy", broken.to_str().unwrap(), TREE], &[], b"");
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("spec.mode"), "{}", err(&o));
    assert_eq!(out(&o), "");
}

#[test]
fn warn_mode_reports_would_be_refusals_and_exits_zero_but_unparsable_files_still_fail() {
    let policy = std::fs::read_to_string(POLICY)
        .unwrap()
        .replace("mode: enforce", "mode: warn");
    let policy = crate::temp_file("scan-warn-policy.yaml", &policy);
    let policy = policy.to_str().unwrap();
    let o = scan(
        &[
            "--policy",
            policy,
            "--format",
            "json",
            "tests/fixtures/scan/tree/k8s",
        ],
        &[],
        b"",
    );
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    let r = records(&o);
    let shop = one(&r, "rendered.yaml", 25);
    assert_eq!(
        (&shop["decision"], &shop["reason"], &shop["mode"]),
        (
            &"allow".into(),
            &"category_not_allowed".into(),
            &"warn".into()
        )
    );
    let o = scan(
        &["--policy", policy, "tests/fixtures/scan/tree/malformed"],
        &[],
        b"",
    );
    assert_eq!(
        o.status.code(),
        Some(1),
        "a file that cannot be read is refused in every mode"
    );
}

/// A copy of the fixture tree in a temporary directory, outside any Git
/// checkout.
fn copy_tree(name: &str) -> PathBuf {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), &target).unwrap();
            }
        }
    }
    let dir = std::env::temp_dir().join(format!("imagegate-scan-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy(&Path::new(env!("CARGO_MANIFEST_DIR")).join(TREE), &dir);
    dir
}

#[test]
fn symbolic_link_loops_are_reported_and_the_walk_goes_on_outside_a_git_checkout() {
    let dir = copy_tree("loops");
    std::os::unix::fs::symlink("..", dir.join("k8s/up")).unwrap();
    std::os::unix::fs::symlink(".", dir.join("app/self")).unwrap();
    std::os::unix::fs::symlink("k8s/cronjob.yaml", dir.join("linked-cronjob.yaml")).unwrap();
    // The tree's .gitignore names ignored/ (which the repository cannot hold).
    write(&dir, "ignored/Dockerfile", "FROM someuser/ignored:1\n");
    let o = scan(
        &[
            "--policy",
            POLICY,
            "--format",
            "json",
            dir.to_str().unwrap(),
        ],
        &[],
        b"",
    );
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    let warnings = err(&o);
    assert!(
        warnings.lines().filter(|l| l.contains("loop")).count() >= 2,
        "each loop is reported: {warnings}"
    );
    let r = records(&o);
    // Everything the tree holds is found once, and the linked file under its link's name.
    let golden: Vec<Value> = std::fs::read_to_string("tests/fixtures/scan/expected.jsonl")
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let without_link: Vec<&Value> = r
        .iter()
        .filter(|r| r["file"] != "linked-cronjob.yaml")
        .collect();
    assert_eq!(without_link, golden.iter().collect::<Vec<_>>());
    assert_eq!(
        one(&r, "linked-cronjob.yaml", 13)["image"],
        "registry.evil.example/report:1"
    );
    // .gitignore is honoured without a Git checkout.
    assert!(r.iter().all(|r| r["file"] != "ignored/Dockerfile"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sarif_output_is_valid_sarif_2_1_0_with_a_result_per_refusal() {
    let o = scan(&["--policy", POLICY, "--format", "sarif", TREE], &[], b"");
    assert_eq!(o.status.code(), Some(1));
    let log: Value = serde_json::from_str(&out(&o)).expect("SARIF is JSON");
    // The OASIS SARIF 2.1.0 schema (sarif-schema-2.1.0.json, as published by
    // the SARIF TC and shipped in the serde-sarif crate).
    // Its `run.language` pattern has a stray `]`, a literal in JavaScript's
    // regex dialect that Rust's regex engines refuse: escaped here, same meaning.
    let schema_text = include_str!("../fixtures/sarif-schema-2.1.0.json").replace(
        r#""^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$""#,
        r#""^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}\\]?$""#,
    );
    let schema: Value = serde_json::from_str(&schema_text).unwrap();
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .should_validate_formats(false)
        .build(&schema)
        .expect("the schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&log)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let mut broken = log.clone();
    broken["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"] =
        0.into();
    assert!(
        !validator.is_valid(&broken),
        "the schema check can fail: line 0 is not a SARIF line"
    );
    assert_eq!(log["version"], "2.1.0");
    let run = &log["runs"][0];
    let rules: Vec<&str> = run["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    for code in [
        "category_not_allowed",
        "registry_not_allowed",
        "unresolved",
        "parse_error",
    ] {
        assert!(rules.contains(&code), "{code} in {rules:?}");
    }
    let results = run["results"].as_array().unwrap();
    let json = records(&scan(
        &["--policy", POLICY, "--format", "json", TREE],
        &[],
        b"",
    ));
    let refused = json.iter().filter(|r| r["decision"] == "deny").count();
    assert_eq!(
        results.len(),
        refused,
        "one result per refusal, none for allowed images"
    );
    let cron = results
        .iter()
        .find(|r| {
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "k8s/cronjob.yaml"
        })
        .expect("the CronJob's refusal");
    assert_eq!(cron["ruleId"], "registry_not_allowed");
    assert_eq!(
        rules[cron["ruleIndex"].as_u64().unwrap() as usize],
        "registry_not_allowed"
    );
    assert_eq!(cron["level"], "error");
    assert_eq!(
        cron["locations"][0]["physicalLocation"]["region"],
        serde_json::json!({"startLine": 13, "startColumn": 22})
    );
    assert_eq!(
        cron["message"]["text"],
        r#"image "registry.evil.example/report:1": registry access to registry.evil.example is not allowed"#
    );
}

/// The directory holding the imagegate binary under test, for PATH.
fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_imagegate"))
        .parent()
        .expect("the binary's directory")
        .to_owned()
}

fn path_with_imagegate() -> String {
    format!(
        "{}:{}",
        bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn git(dir: &Path, args: &[&str]) {
    let o = std::process::Command::new("git")
        .args(["-c", "user.email=ci@imagegate.test", "-c", "user.name=ci"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn the_github_actions_example_uploads_sarif_and_fails_the_job_on_a_refusal() {
    let workflow = std::fs::read_to_string("examples/github-actions/imagegate-scan.yml").unwrap();
    let docs = imagegate_scan::yaml::documents(&workflow).expect("the workflow is YAML");
    let steps = docs[0].locate("jobs.scan.steps");
    let imagegate_scan::yaml::Value::Seq(steps) = &steps.value else {
        panic!("jobs.scan.steps is a list");
    };
    let step = |name: &str| {
        steps
            .iter()
            .find(|s| s.get("name").and_then(|n| n.as_str()) == Some(name))
            .unwrap_or_else(|| panic!("a step named {name}"))
    };
    let upload = step("Upload to code scanning");
    assert!(
        upload
            .get("uses")
            .unwrap()
            .as_str()
            .unwrap()
            .starts_with("github/codeql-action/upload-sarif@")
    );
    assert_eq!(upload.get("if").unwrap().as_str(), Some("always()"));
    // The Scan step's script, run as the runner would, in a checkout that
    // holds the fixture tree and its policy.
    let script = step("Scan")
        .get("run")
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();
    let dir = copy_tree("actions");
    std::fs::create_dir_all(dir.join(".imagegate")).unwrap();
    std::fs::copy(POLICY, dir.join(".imagegate/policy.yaml")).unwrap();
    let output = dir.join("github-output");
    let o = std::process::Command::new("bash")
        .args(["-e", "-c", &script])
        .current_dir(&dir)
        .env("PATH", path_with_imagegate())
        .env("GITHUB_OUTPUT", &output)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "the step itself succeeds: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(std::fs::read_to_string(&output).unwrap(), "status=1\n");
    let sarif: Value =
        serde_json::from_slice(&std::fs::read(dir.join("imagegate.sarif")).unwrap()).unwrap();
    assert!(!sarif["runs"][0]["results"].as_array().unwrap().is_empty());
    let fail = step("Fail when an image is refused");
    assert_eq!(
        fail.get("if").unwrap().as_str(),
        Some("steps.scan.outputs.status != '0'")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_pre_commit_hook_refuses_a_commit_that_names_a_refused_image() {
    let root = std::env::temp_dir().join(format!("imagegate-precommit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    // The hook repository: this repository's hook definitions, committed.
    let hooks = root.join("hooks");
    std::fs::create_dir_all(&hooks).unwrap();
    std::fs::copy(
        ".pre-commit-hooks.yaml",
        hooks.join(".pre-commit-hooks.yaml"),
    )
    .unwrap();
    git(&hooks, &["init", "-q"]);
    git(&hooks, &["add", "-A"]);
    git(&hooks, &["commit", "-qm", "hooks"]);
    let rev = String::from_utf8(
        std::process::Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(&hooks)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    // A user's repository, configured as examples/pre-commit-config.yaml says.
    let user = root.join("user");
    std::fs::create_dir_all(user.join(".imagegate")).unwrap();
    std::fs::copy("examples/policy.yaml", user.join(".imagegate/policy.yaml")).unwrap();
    let config = std::fs::read_to_string("examples/pre-commit-config.yaml")
        .unwrap()
        .replace(
            "https://github.com/imagegate/imagegate",
            hooks.to_str().unwrap(),
        )
        .replace("rev: v0.1.0", &format!("rev: {}", rev.trim()));
    std::fs::write(user.join(".pre-commit-config.yaml"), config).unwrap();
    git(&user, &["init", "-q"]);
    let run = |dockerfile: &str| {
        std::fs::write(user.join("Dockerfile"), dockerfile).unwrap();
        git(&user, &["add", "-A"]);
        std::process::Command::new("pre-commit")
            .args(["run", "--all-files"])
            .current_dir(&user)
            .env("PATH", path_with_imagegate())
            .env("PRE_COMMIT_HOME", root.join("cache"))
            .output()
            .expect("pre-commit runs (scripts/test installs it)")
    };
    let o = run("FROM someuser/custom-image:1\n");
    let said = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(1), "{said}");
    assert!(
        said.contains("image access denied: community images not allowed"),
        "{said}"
    );
    let o = run("FROM nginx:1.27\n");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn on_a_terminal_the_text_has_colour_and_a_large_tree_shows_progress_on_stderr() {
    let dir = std::env::temp_dir().join(format!("imagegate-scan-tty-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for i in 0..1500 {
        let sub = dir.join(format!("d{}", i % 10));
        std::fs::create_dir_all(&sub).unwrap();
        let image = if i == 0 {
            "someuser/custom-image:1"
        } else {
            "nginx:1.27"
        };
        std::fs::write(
            sub.join(format!("pod{i}.yaml")),
            format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p{i}}}\nspec:\n  containers:\n    - name: c\n      image: {image}\n"),
        )
        .unwrap();
    }
    // `script` (util-linux) runs the command on a pseudo-terminal: stdout and
    // stderr are both terminals, as for a person at a shell.
    let command = format!(
        "{} scan --policy {POLICY} {}",
        env!("CARGO_BIN_EXE_imagegate"),
        dir.display()
    );
    let o = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("NO_COLOR")
        .env("TERM", "xterm")
        .output()
        .expect("script runs");
    let seen = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{seen}");
    assert!(
        seen.contains("\u{1b}[1m\u{1b}[31mDENY \u{1b}[0m someuser/custom-image:1"),
        "the refusal in bold red: {seen:?}"
    );
    assert!(
        seen.contains("files read in"),
        "a progress line for 1,500 files"
    );
    assert!(
        seen.contains("1500 files scanned, 1500 findings: 1 refused, 1499 allowed"),
        "{seen:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn several_directories_keep_their_files_apart_and_empty_or_foreign_stdin_fails() {
    let root = std::env::temp_dir().join(format!("imagegate-scan-roots-{}", std::process::id()));
    for d in ["a", "b"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
        std::fs::write(root.join(d).join("Dockerfile"), "FROM someuser/x:1\n").unwrap();
    }
    let (a, b) = (root.join("a"), root.join("b"));
    let o = scan(
        &[
            "--policy",
            POLICY,
            "--format",
            "json",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
        ],
        &[],
        b"",
    );
    assert_eq!(o.status.code(), Some(1));
    let files: Vec<String> = records(&o)
        .iter()
        .map(|r| r["file"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        files,
        [
            a.join("Dockerfile").display().to_string(),
            b.join("Dockerfile").display().to_string()
        ]
    );
    std::fs::remove_dir_all(&root).unwrap();

    // A failed `helm template` before the pipe must not pass as a clean scan.
    for (stdin, says) in [
        (&b""[..], "standard input is empty"),
        (
            &b"FROM someuser/x:1\n"[..],
            "no Kubernetes object and no Compose file",
        ),
        (
            &b"a: [\n"[..],
            "no Kubernetes object and no Compose file (and is not YAML: line 1 column 4: unclosed bracket",
        ),
    ] {
        let o = scan(&["--policy", POLICY, "-"], &[], stdin);
        assert_eq!(o.status.code(), Some(2), "{}", err(&o));
        assert!(err(&o).contains(says), "{}", err(&o));
    }
}

/// A fresh, empty temporary directory for one test.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("imagegate-scan-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, file: &str, text: &str) {
    let path = dir.join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn pod(name: &str, image: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers:\n    - name: c\n      image: {image}\n"
    )
}

/// Rendered Helm output whose second document is broken YAML.
const BROKEN_STREAM: &str = "---
# Source: db/templates/statefulset.yaml
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  template:
    spec:
      containers:
        - name: postgres
          image: postgres:16
---
# Source: db/templates/configmap.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: db
data:
  a: b
   c: d
---
# Source: db/templates/job.yaml
apiVersion: batch/v1
kind: Job
metadata:
  name: seed
spec:
  template:
    spec:
      containers:
        - name: seed
          image: someuser/seed:1
";

#[test]
fn a_broken_document_in_a_rendered_stream_hides_none_of_the_others() {
    let file = crate::temp_file("helm-rendered.yaml", BROKEN_STREAM);
    let file = file.to_str().unwrap();
    for (args, shown, stdin) in [
        (vec![file], file, &b""[..]),
        (vec!["-"], "-", BROKEN_STREAM.as_bytes()),
    ] {
        let args: Vec<&str> = ["--policy", POLICY, "--format", "json"]
            .into_iter()
            .chain(args)
            .collect();
        let o = scan(&args, &[], stdin);
        assert_eq!(o.status.code(), Some(1), "{}", err(&o));
        let r = records(&o);
        assert_eq!(r.len(), 3, "{r:#?}");
        let db = one(&r, shown, 12);
        assert_eq!(
            (&db["column"], &db["image"], &db["decision"], &db["at"]),
            (
                &18.into(),
                &"postgres:16".into(),
                &"allow".into(),
                &"StatefulSet/db spec.template.spec.containers[0].image".into()
            )
        );
        let broken = one(&r, shown, 21);
        assert_eq!(
            (&broken["column"], &broken["reason"], &broken["source"]),
            (&5.into(), &"parse_error".into(), &"kubernetes".into())
        );
        assert_eq!(
            broken["message"],
            "cannot parse YAML: mapping values are not allowed in this context"
        );
        let seed = one(&r, shown, 33);
        assert_eq!(
            (&seed["image"], &seed["reason"]),
            (&"someuser/seed:1".into(), &"category_not_allowed".into())
        );
    }
    let o = scan(&["--policy", POLICY, file], &[], b"");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        out(&o).contains(
            "  21:5     DENY  cannot parse YAML: mapping values are not allowed in this context [parse_error]\n           hint: fix the YAML at this line and column: this document's images were not checked (the file's other documents were)\n"
        ),
        "{}",
        out(&o)
    );
}

#[test]
fn in_a_git_checkout_what_git_tracks_is_scanned_even_where_an_ignore_rule_matches_it() {
    let dir = temp_dir("git");
    write(&dir, "deploy/prod.yaml", &pod("prod", "someuser/miner:1"));
    // Tracked symbolic links: a loop, and a directory outside the checkout.
    std::os::unix::fs::symlink("..", dir.join("deploy/up")).unwrap();
    let outside = temp_dir("git-outside");
    write(&outside, "job.yaml", &pod("job", "busybox:1.36"));
    std::os::unix::fs::symlink(&outside, dir.join("shared")).unwrap();
    git(&dir, &["init", "-q"]);
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "-qm", "prod"]);
    // A later ignore rule matches the tracked file; Git still tracks it.
    write(&dir, ".gitignore", "deploy/prod.yaml\nbuild/\n");
    git(&dir, &["add", ".gitignore"]);
    git(&dir, &["commit", "-qm", "ignore"]);
    // Untracked: one not ignored (scanned), one ignored (not scanned).
    write(&dir, "k8s/new.yaml", &pod("new", "nginx:1.27"));
    write(&dir, "build/out.yaml", &pod("out", "someuser/generated:1"));
    let files = |o: &Output| -> Vec<String> {
        records(o)
            .iter()
            .map(|r| r["file"].as_str().unwrap().to_owned())
            .collect()
    };
    let o = scan(
        &[
            "--policy",
            POLICY,
            "--format",
            "json",
            dir.to_str().unwrap(),
        ],
        &[],
        b"",
    );
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert_eq!(
        files(&o),
        ["deploy/prod.yaml", "k8s/new.yaml", "shared/job.yaml"]
    );
    assert_eq!(
        err(&o),
        format!(
            "warning: deploy/up: symbolic link loop to {}: not followed\n",
            dir.canonicalize().unwrap().display()
        )
    );
    assert_eq!(
        one(&records(&o), "deploy/prod.yaml", 8)["message"],
        "image access denied: community images not allowed"
    );
    // A directory inside the checkout: Git's answer for that directory.
    let deploy = dir.join("deploy");
    let o = scan(
        &[
            "--policy",
            POLICY,
            "--format",
            "json",
            deploy.to_str().unwrap(),
        ],
        &[],
        b"",
    );
    assert_eq!(files(&o), ["prod.yaml"]);
    // A directory Git ignores, named on the command line: all of it.
    let build = dir.join("build");
    let o = scan(
        &[
            "--policy",
            POLICY,
            "--format",
            "json",
            build.to_str().unwrap(),
        ],
        &[],
        b"",
    );
    assert_eq!(files(&o), ["out.yaml"]);
    assert_eq!(o.status.code(), Some(1));

    // Without git the checkout's files cannot be listed: an error, never a
    // walk that skips what Git tracks.
    let o = scan(
        &["--policy", POLICY, dir.to_str().unwrap()],
        &[("PATH", "/nonexistent")],
        b"",
    );
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert_eq!(
        err(&o),
        format!(
            "error: cannot scan {}: it is in a Git checkout, and git cannot be run to list the files it tracks (No such file or directory (os error 2)); install git\n",
            dir.display()
        )
    );
    assert_eq!(out(&o), "");
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&outside).unwrap();
}

#[test]
fn each_refusal_gets_a_hint_that_fits_its_reason_its_source_and_the_policy() {
    let dir = temp_dir("hints");
    write(
        &dir,
        "Dockerfile",
        "ARG BASE\nFROM ${BASE}\nFROM bitnami/redis:7\nFROM ${UNDECLARED}/x:1\n",
    );
    write(
        &dir,
        "compose.yaml",
        "services:\n  web:\n    image: nginx:${TAG}\n  app:\n    build:\n      dockerfile_inline: |\n        ARG APP_BASE\n        FROM ${APP_BASE}\n        FROM ${APP_OTHER}\n",
    );
    write(&dir, "k8s/miner.yaml", &pod("miner", "someuser/miner:1"));
    write(
        &dir,
        "k8s/evil.yaml",
        &pod("evil", "registry.evil.example/x:1"),
    );
    write(&dir, "k8s/latest.yaml", &pod("latest", "nginx"));
    write(
        &dir,
        "k8s/digest.yaml",
        &pod(
            "digest",
            "sha256:0123456789012345678901234567890123456789012345678901234567890123",
        ),
    );
    // examples/policy.yaml allows official and organization images only.
    let o = scan(
        &["--policy", "examples/policy.yaml", dir.to_str().unwrap()],
        &[],
        b"",
    );
    assert_eq!(o.status.code(), Some(1));
    let text = out(&o);
    let hint_after = |finding: &str| -> String {
        let mut lines = text.lines();
        lines
            .find(|l| l.contains(finding))
            .unwrap_or_else(|| panic!("{finding} in {text}"));
        lines
            .next()
            .unwrap()
            .trim_start()
            .strip_prefix("hint: ")
            .unwrap_or_else(|| panic!("a hint under {finding}: {text}"))
            .to_owned()
    };
    // A verified publisher image is not sent to a verified publisher.
    assert_eq!(
        hint_after("bitnami/redis:7: image access denied"),
        "use a Docker Official image or one of your organisation's, or ask an owner to allow verified publisher images (spec.imageAccess.allow)"
    );
    assert_eq!(
        hint_after("someuser/miner:1: image access denied"),
        "use a Docker Official image or one of your organisation's, or ask an owner to allow community images (spec.imageAccess.allow)"
    );
    // A Compose variable is set as Compose sets it, not with --build-arg.
    assert_eq!(
        hint_after("nginx:${TAG}: unresolved"),
        "set TAG in the environment or in the .env file beside the Compose file, so the image can be checked"
    );
    assert_eq!(
        hint_after("${BASE}: unresolved"),
        "give BASE a value with --build-arg BASE=VALUE, or a default (ARG BASE=VALUE before the first FROM), so the image can be checked"
    );
    assert_eq!(
        hint_after("${UNDECLARED}/x:1: unresolved"),
        "declare ARG UNDECLARED before the first FROM (only those reach FROM), with a default or a value from --build-arg UNDECLARED=VALUE, so the image can be checked"
    );
    // A Dockerfile Compose builds also takes the service's build.args.
    assert_eq!(
        hint_after("${APP_BASE}: unresolved"),
        "give APP_BASE a value in services.app.build.args, with --build-arg APP_BASE=VALUE, or a default (ARG APP_BASE=VALUE before the first FROM), so the image can be checked"
    );
    assert_eq!(
        hint_after("${APP_OTHER}: unresolved"),
        "declare ARG APP_OTHER before the first FROM (only those reach FROM), with a default or a value from services.app.build.args or --build-arg APP_OTHER=VALUE, so the image can be checked"
    );
    assert_eq!(
        hint_after("registry.evil.example/x:1: registry access"),
        "use an image from an allowed registry (docker.io, registry.corp.example, ghcr.io/corp, *.corp.example), or ask an owner to add registry.evil.example to spec.registryAccess.allow"
    );
    assert_eq!(
        hint_after("nginx: pin a version tag"),
        "spec.rules[1] (deny docker.io/library/*:latest) refuses this image: follow its message, or ask an owner for an exception"
    );
    assert_eq!(
        hint_after("ambiguous reference"),
        "name the repository before the digest (name@sha256:…): a bare digest is a local image ID to runtimes"
    );
    // With --env-file, the hint names it rather than .env.
    let env = crate::temp_file("hints.env", "OTHER=1\n");
    let o = scan(
        &[
            "--policy",
            "examples/policy.yaml",
            "--env-file",
            env.to_str().unwrap(),
            dir.join("compose.yaml").to_str().unwrap(),
        ],
        &[],
        b"",
    );
    assert!(
        out(&o).contains("hint: set TAG in the environment or in the --env-file given, so the image can be checked\n"),
        "{}",
        out(&o)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn without_a_policy_check_and_scan_say_so_on_stderr_and_exit_as_before() {
    const NOTE: &str = "warning: no policy given (--policy FILE or IMAGEGATE_POLICY): every valid, unambiguous reference is allowed\n";
    let o = scan(
        &[
            "--format",
            "json",
            "tests/fixtures/scan/tree/k8s/cronjob.yaml",
        ],
        &[],
        b"",
    );
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(err(&o), NOTE);
    assert_eq!(
        records(&o)[0]["decision"],
        "allow",
        "stdout is still JSON lines"
    );
    let o = scan(
        &["tests/fixtures/scan/tree/k8s/cronjob.yaml"],
        &[("IMAGEGATE_POLICY", POLICY)],
        b"",
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(err(&o), "", "a policy from the environment is a policy");

    let check = |args: &[&str], vars: &[(&str, &str)]| {
        crate::imagegate_with(args, b"", |cmd| {
            cmd.env_remove("IMAGEGATE_POLICY")
                .envs(vars.iter().copied());
        })
    };
    let o = check(&["check", "someuser/custom-image:1"], &[]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(err(&o), NOTE);
    assert!(out(&o).starts_with("ALLOW"), "{}", out(&o));
    let o = check(&["check", "--output", "json", "nginx"], &[]);
    assert_eq!(err(&o), NOTE);
    let record: Value = serde_json::from_str(out(&o).trim()).unwrap();
    assert_eq!(record["decision"], "allow");
    let o = check(
        &["check", "someuser/custom-image:1"],
        &[("IMAGEGATE_POLICY", "examples/policy.yaml")],
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(err(&o), "");
}
