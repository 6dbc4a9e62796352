//! The harness proves itself: every real client pulls what skopeo pushed to a
//! real registry, over verified TLS with htpasswd credentials, the way the
//! gateway's end-to-end tests will use them.

use std::time::Instant;

use super::*;

const USER: &str = "alice";
const PASSWORD: &str = "wonderland";

/// A TLS registry with credentials, an image in it, and clients that trust its CA.
struct Setup {
    clients: Clients,
    image: Image,
    reference: String,
    registry: Registry,
    ca: TestCa,
}

fn setup(repo: &str, layers: &[Layer]) -> Setup {
    let ca = TestCa::new();
    let registry = Registry::start_tls(Some((USER, PASSWORD)), &ca);
    let image = push_image(&registry, repo, "1", layers);
    let clients = Clients::new();
    clients.trust(&registry.host_port(), &ca.ca());
    let reference = format!("{}/{repo}:1", registry.host_port());
    Setup {
        clients,
        image,
        reference,
        registry,
        ca,
    }
}

fn small_layers() -> Vec<Layer> {
    vec![
        Layer::file("hello.txt", "hello from imagegate\n"),
        Layer::random(300_000, 7),
    ]
}

/// Prints how long each step of a test took (`cargo test -- --nocapture`).
fn report(test: &str, started: Instant, steps: &[(&str, &Run)]) {
    let steps: Vec<String> = steps
        .iter()
        .map(|(what, run)| format!("{what} {:.2}s", run.took.as_secs_f64()))
        .collect();
    eprintln!(
        "{test}: {:.1}s in all; {}",
        started.elapsed().as_secs_f64(),
        steps.join(", ")
    );
}

#[test]
fn skopeo_pulls_back_byte_for_byte_what_it_pushed_over_verified_tls() {
    let started = Instant::now();
    let s = setup("e2e/skopeo", &small_layers());
    let c = &s.clients;
    let login = c
        .login("skopeo", &s.registry.host_port(), USER, PASSWORD)
        .success();
    let raw = c
        .skopeo(&["inspect", "--raw", &format!("docker://{}", s.reference)])
        .success();
    assert_eq!(
        raw.stdout.as_bytes(),
        &s.image.manifest[..],
        "the manifest, byte for byte"
    );
    let out = Scratch::new("skopeo-out");
    let copy = c
        .skopeo(&[
            "copy",
            "--quiet",
            "--preserve-digests",
            &format!("docker://{}", s.reference),
            &format!("oci:{}:back", out.path().display()),
        ])
        .success();
    let mut blobs = s.image.layer_digests.clone();
    blobs.push(s.image.config_digest.clone());
    blobs.push(s.image.digest.clone());
    for digest in blobs {
        let hex = &digest["sha256:".len()..];
        assert_eq!(
            std::fs::read(out.path().join("blobs/sha256").join(hex)).unwrap(),
            std::fs::read(s.image.blob(&digest)).unwrap(),
            "blob {digest}"
        );
    }
    report(
        "skopeo",
        started,
        &[("login", &login), ("inspect", &raw), ("copy", &copy)],
    );
}

#[test]
fn podman_and_buildah_pull_the_pushed_image_by_its_digest() {
    let started = Instant::now();
    let s = setup("e2e/podman", &small_layers());
    let c = &s.clients;
    // One login serves all three: they share REGISTRY_AUTH_FILE.
    let login = c
        .login("podman", &s.registry.host_port(), USER, PASSWORD)
        .success();
    let auth = std::fs::read_to_string(c.auth_file()).unwrap();
    assert!(
        auth.contains(&s.registry.host_port()),
        "podman login wrote {auth}"
    );
    let pull = c.podman(&["pull", "--quiet", &s.reference]).success();
    let digest = c
        .podman(&["image", "inspect", "--format", "{{.Digest}}", &s.reference])
        .success();
    assert_eq!(digest.stdout.trim(), s.image.digest);
    let bpull = c.buildah(&["pull", "--quiet", &s.reference]).success();
    let from = c.buildah(&["from", &s.reference]).success();
    assert!(from.stdout.contains("working-container"), "{from}");
    let by_digest = format!(
        "{}@{}",
        s.reference.rsplit_once(':').unwrap().0,
        s.image.digest
    );
    let pinned = c.buildah(&["pull", "--quiet", &by_digest]).success();
    report(
        "podman+buildah",
        started,
        &[
            ("login", &login),
            ("podman pull", &pull),
            ("buildah pull", &bpull),
            ("buildah from", &from),
            ("buildah pull by digest", &pinned),
        ],
    );
}

#[test]
fn docker_cli_logs_in_pulls_and_builds_through_the_podman_service() {
    let started = Instant::now();
    let s = setup("e2e/docker", &small_layers());
    let c = &s.clients;
    let host = s.registry.host_port();
    let wrong = c.login("docker", &host, USER, "not-the-password").failure();
    assert!(
        wrong.stderr.contains("401 Unauthorized"),
        "a wrong password is refused by the registry: {wrong}"
    );
    let login = c.login("docker", &host, USER, PASSWORD).success();
    assert!(login.stdout.contains("Login Succeeded"), "{login}");
    let config = std::fs::read_to_string(c.docker_config().join("config.json")).unwrap();
    assert!(config.contains(&host), "docker login wrote {config}");
    let pull = c.docker(&["pull", &s.reference]);
    assert!(
        pull.status.success(),
        "{pull}\n--- podman service log\n{}",
        c.service().log()
    );
    let digests = c
        .docker(&[
            "image",
            "inspect",
            "--format",
            "{{json .RepoDigests}}",
            &s.reference,
        ])
        .success();
    assert!(digests.stdout.contains(&s.image.digest), "{digests}");
    // No RUN: the image has no shell, and the legacy builder needs none for this.
    let build = c
        .docker_build(
            &format!("FROM {}\nLABEL dev.imagegate.built=yes\n", s.reference),
            "e2e-built:1",
        )
        .success();
    let label = c
        .docker(&[
            "image",
            "inspect",
            "--format",
            "{{index .Config.Labels \"dev.imagegate.built\"}}",
            "e2e-built:1",
        ])
        .success();
    assert_eq!(label.stdout.trim(), "yes");
    report(
        "docker",
        started,
        &[("login", &login), ("pull", &pull), ("build", &build)],
    );
}

#[test]
fn docker_build_pulls_its_base_image_itself() {
    let started = Instant::now();
    let s = setup("e2e/build", &small_layers());
    let c = &s.clients;
    c.login("docker", &s.registry.host_port(), USER, PASSWORD)
        .success();
    let build = c
        .docker_build(&format!("FROM {}\nLABEL a=b\n", s.reference), "e2e-fresh:1")
        .success();
    assert!(
        build
            .stdout
            .contains(&format!("Trying to pull {}", s.reference)),
        "the FROM image was pulled by the build: {build}"
    );
    report("docker build", started, &[("build", &build)]);
}

#[test]
fn docker_compose_pulls_both_services_of_a_compose_file() {
    let started = Instant::now();
    let s = setup("e2e/web", &small_layers());
    let c = &s.clients;
    let db = format!("{}/e2e/db:2", s.registry.host_port());
    s.image.push(&s.registry, "e2e/db", "2");
    c.login("docker", &s.registry.host_port(), USER, PASSWORD)
        .success();
    let compose = format!(
        "services:\n  web:\n    image: {}\n  db:\n    image: {db}\n",
        s.reference
    );
    let pull = c.compose(&compose, &["pull"]).success();
    // compose does not report refusals through podman (see Clients::compose):
    // what counts is what arrived.
    for image in [&s.reference, &db] {
        c.docker(&["image", "inspect", image]).success();
    }
    report("docker-compose", started, &[("pull", &pull)]);
}

#[test]
fn clients_that_do_not_trust_the_ca_are_refused_by_tls() {
    let started = Instant::now();
    let s = setup("e2e/untrusted", &small_layers()[..1]);
    let strangers = Clients::new();
    let skopeo = strangers
        .skopeo(&["inspect", "--raw", &format!("docker://{}", s.reference)])
        .failure();
    assert!(
        skopeo
            .stderr
            .contains("x509: certificate signed by unknown authority"),
        "{skopeo}"
    );
    let podman = strangers.podman(&["pull", &s.reference]).failure();
    assert!(
        podman
            .stderr
            .contains("x509: certificate signed by unknown authority"),
        "{podman}"
    );
    let docker = strangers.docker(&["pull", &s.reference]).failure();
    assert!(
        docker
            .stderr
            .contains("x509: certificate signed by unknown authority"),
        "{docker}"
    );
    // A trap for login tests: podman's Docker API skips TLS verification for
    // `localhost:PORT` logins (handlers/compat/auth.go, "support for local
    // testing"), so `docker login` is only verified under 127.0.0.1.
    let login = strangers
        .login("docker", &s.registry.host_port(), USER, PASSWORD)
        .failure();
    assert!(
        login
            .stderr
            .contains("x509: certificate signed by unknown authority"),
        "{login}"
    );
    let localhost = format!("localhost:{}", s.registry.port());
    strangers
        .login("docker", &localhost, USER, PASSWORD)
        .success();
    // The per-command way to trust a CA, instead of Clients::trust.
    let cert_dir = format!("--cert-dir={}", s.ca.cert_dir().display());
    let creds = format!("--creds={USER}:{PASSWORD}");
    let reference = format!("docker://{}", s.reference);
    strangers
        .skopeo(&["inspect", "--raw", &cert_dir, &creds, &reference])
        .success();
    strangers
        .podman(&["pull", "--quiet", &cert_dir, &creds, &s.reference])
        .success();
    strangers
        .buildah(&["pull", "--quiet", &cert_dir, &creds, &s.reference])
        .success();
    report(
        "untrusted",
        started,
        &[
            ("skopeo", &skopeo),
            ("podman", &podman),
            ("docker", &docker),
        ],
    );
}

#[test]
fn clients_reach_a_plain_http_registry_marked_insecure() {
    let started = Instant::now();
    let registry = Registry::start(None);
    let image = push_image(&registry, "e2e/plain", "1", &small_layers()[..1]);
    let clients = Clients::new();
    clients.insecure(&registry.host_port());
    let reference = format!("{}/e2e/plain:1", registry.host_port());
    let inspect = clients
        .skopeo(&["inspect", "--raw", &format!("docker://{reference}")])
        .success();
    assert_eq!(inspect.stdout.as_bytes(), &image.manifest[..]);
    let podman = clients.podman(&["pull", "--quiet", &reference]).success();
    clients.buildah(&["pull", "--quiet", &reference]).success();
    let docker = clients.docker(&["pull", &reference]).success();
    assert!(
        registry.log().contains("GET /v2/e2e/plain/manifests/1"),
        "the access log records pulls:\n{}",
        registry.log()
    );
    report(
        "plain http",
        started,
        &[
            ("skopeo", &inspect),
            ("podman", &podman),
            ("docker", &docker),
        ],
    );
}

#[test]
fn random_layers_are_reproducible_and_incompressible() {
    let a = Image::build(&[Layer::random(1 << 20, 1)]);
    let b = Image::build(&[Layer::random(1 << 20, 1)]);
    let c = Image::build(&[Layer::random(1 << 20, 2)]);
    assert_eq!(a.digest, b.digest, "the same seed makes the same image");
    assert_ne!(
        a.layer_digests, c.layer_digests,
        "another seed another layer"
    );
    let blob = std::fs::read(a.blob(&a.layer_digests[0])).unwrap();
    assert_eq!(
        blob.len(),
        512 + (1 << 20) + 1024,
        "header, data, end of archive"
    );
    let gz = image::gzip(&blob).len();
    assert!(gz > blob.len() * 99 / 100, "gzip shrank it to {gz} bytes");
}

#[test]
fn an_image_of_many_small_layers_round_trips() {
    let started = Instant::now();
    let s = setup("e2e/many", &Layer::many(200));
    let c = &s.clients;
    let out = Scratch::new("many-out");
    let copy = c
        .skopeo(&[
            "copy",
            "--quiet",
            "--preserve-digests",
            &format!("--src-creds={USER}:{PASSWORD}"),
            &format!("docker://{}", s.reference),
            &format!("oci:{}:back", out.path().display()),
        ])
        .success();
    let index = std::fs::read_to_string(out.path().join("index.json")).unwrap();
    assert!(index.contains(&s.image.digest), "{index}");
    assert_eq!(s.image.layer_digests.len(), 200);
    report("200 layers", started, &[("skopeo copy", &copy)]);
}

#[test]
fn every_client_pulls_the_same_image_by_tag_and_by_digest() {
    let started = Instant::now();
    let s = setup("e2e/every", &small_layers()[..1]);
    let c = &s.clients;
    c.login("podman", &s.registry.host_port(), USER, PASSWORD)
        .success();
    c.login("docker", &s.registry.host_port(), USER, PASSWORD)
        .success();
    let by_digest = format!("{}/e2e/every@{}", s.registry.host_port(), s.image.digest);
    let mut steps = Vec::new();
    for client in Client::ALL {
        for reference in [&s.reference, &by_digest] {
            let run = c.pull(client, reference).success();
            assert!(
                client.reports_refusals() || run.stderr.contains("done"),
                "{run}"
            );
            steps.push((format!("{client:?}"), run));
        }
    }
    // Every client asked the registry for the manifest by tag, none used a
    // copy it had already.
    let log = s.registry.log();
    let by_tag = log.matches("GET /v2/e2e/every/manifests/1 ").count();
    assert!(
        by_tag >= Client::ALL.len(),
        "{by_tag} manifest GETs by tag:\n{log}"
    );
    let steps: Vec<(&str, &Run)> = steps.iter().map(|(w, r)| (w.as_str(), r)).collect();
    report("every client", started, &steps);
}

#[test]
fn every_client_but_compose_fails_with_the_registrys_words() {
    let started = Instant::now();
    let s = setup("e2e/words", &small_layers()[..1]);
    let c = &s.clients;
    c.login("podman", &s.registry.host_port(), USER, PASSWORD)
        .success();
    c.login("docker", &s.registry.host_port(), USER, PASSWORD)
        .success();
    // The registry's 404 MANIFEST_UNKNOWN stands in for the gateway's 403 DENIED.
    let missing = format!("{}/e2e/words:no-such-tag", s.registry.host_port());
    let mut steps = Vec::new();
    for client in Client::ALL {
        let run = c.pull(client, &missing);
        if client.reports_refusals() {
            let run = run.failure();
            assert!(
                run.stderr.contains("reading manifest no-such-tag in ")
                    && run.stderr.contains(": manifest unknown"),
                "{run}"
            );
            steps.push((format!("{client:?}"), run));
        } else {
            let run = run.success();
            assert!(!run.stderr.contains("manifest unknown"), "{run}");
            c.docker(&["image", "inspect", &missing]).failure();
            steps.push((format!("{client:?}"), run));
        }
    }
    let steps: Vec<(&str, &Run)> = steps.iter().map(|(w, r)| (w.as_str(), r)).collect();
    report("refusals", started, &steps);
}
