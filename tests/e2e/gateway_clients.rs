//! The registry gateway with real clients: the CNCF distribution registry as
//! the `docker.io` upstream (and a second one, behind htpasswd, as
//! `ghcr.io`), images pushed with skopeo, `imagegate serve` in front, and
//! skopeo, podman, buildah, the docker CLI (through podman's Docker API),
//! `docker build` and docker-compose pulling through it as an organisation's
//! members and owner would.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::clients::{Client, Clients, Image, Layer, Registry, Run, Scratch, TestCa, push_image};

const COMMUNITY: &str = "image access denied: community images not allowed";
const VERIFIED: &str = "image access denied: verified publisher images not allowed";
const GHCR: &str = "registry access to ghcr.io is not allowed";
const PASSWORD: &str = "correct horse battery";

/// The organisation's policy: official and organisation images, Docker Hub only.
const CORP: &str = "apiVersion: imagegate.dev/v1
kind: ImagePolicy
metadata: {name: corp}
spec:
  imageAccess:
    enabled: true
    allow: [official]
    organizationNamespaces: [corp]
    verifiedPublishers: [bitnami]
  registryAccess:
    enabled: true
    allow: [docker.io]
";

/// `imagegate serve` in front of the upstreams, with its own data directory;
/// killed on drop.
struct Gateway {
    child: Child,
    port: u16,
    data: Scratch,
    /// Keeps the log reader thread's channel open.
    _logs: mpsc::Receiver<String>,
}

impl Gateway {
    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn data_dir(&self) -> String {
        self.data.path().to_str().unwrap().to_owned()
    }

    /// Runs `imagegate admin --data-dir <this gateway's> ARGS`, returning stdout.
    fn admin(&self, args: &[&str], stdin: &[u8]) -> String {
        let data = self.data_dir();
        let mut all = vec!["admin", "--data-dir", &data];
        all.extend_from_slice(args);
        let out = crate::imagegate(&all, stdin);
        assert_eq!(
            out.status.code(),
            Some(0),
            "imagegate {all:?}: {}",
            crate::stderr(&out)
        );
        crate::stdout(&out).trim().to_owned()
    }

    /// Stops it with SIGTERM (which writes every queued audit event) and
    /// returns the audit log as JSON objects.
    fn stop_and_read_audit(&mut self) -> Vec<Value> {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "the gateway did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let data = self.data_dir();
        let out = crate::imagegate(&["audit", "--data-dir", &data, "--format", "json"], b"");
        assert_eq!(out.status.code(), Some(0), "{}", crate::stderr(&out));
        crate::stdout(&out)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Upstreams with the images, a gateway in front with organisation
/// `corp` (member alice, owner olga, each with a token), and clients that
/// trust the gateway's CA.
struct World {
    hub: Registry,
    _ghcr: Registry,
    nginx: Image,
    community: Image,
    gateway: Gateway,
    ca: TestCa,
    clients: Clients,
    alice: String,
    olga: String,
}

fn world() -> World {
    let ca = TestCa::new();
    let hub = Registry::start(None);
    let nginx = push_image(
        &hub,
        "library/nginx",
        "1",
        &[
            Layer::file("usr/share/nginx/index.html", "nginx\n"),
            Layer::random(200_000, 1),
        ],
    );
    let community = push_image(
        &hub,
        "someuser/custom-image",
        "1",
        &[Layer::file("custom", "custom\n")],
    );
    push_image(
        &hub,
        "bitnami/redis",
        "7",
        &[Layer::file("redis", "redis\n")],
    );
    push_image(&hub, "corp/app", "1", &[Layer::file("app", "corp app\n")]);
    let ghcr = Registry::start(Some(("bot", "bot-password")));
    push_image(&ghcr, "corp/app", "1", &[Layer::file("app", "ghcr app\n")]);

    let data = Scratch::new("gateway-data");
    let secret = data.join("ghcr-password");
    std::fs::write(&secret, "bot-password\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_imagegate"))
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .arg("--tls-cert")
        .arg(ca.cert())
        .arg("--tls-key")
        .arg(ca.key())
        .arg("--data-dir")
        .arg(data.path())
        .arg("--upstream")
        .arg(format!("docker.io={}", hub.url()))
        .arg("--upstream")
        .arg(format!("ghcr.io={}", ghcr.url()))
        .arg("--upstream-credentials")
        .arg(format!("ghcr.io=bot:{}", secret.display()))
        .env_remove("IMAGEGATE_POLICY")
        .env_remove("IMAGEGATE_ALLOW_ANONYMOUS")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("imagegate serve starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, logs) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut port = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while port == 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = logs
            .recv_timeout(left)
            .expect("the gateway logs that it listens");
        if line.contains("\"listening\"") {
            let log: Value = serde_json::from_str(&line).unwrap();
            port = log["addr"]
                .as_str()
                .unwrap()
                .rsplit(':')
                .next()
                .unwrap()
                .parse()
                .unwrap();
        }
    }
    let gateway = Gateway {
        child,
        port,
        data,
        _logs: logs,
    };
    gateway.admin(&["org", "create", "corp", "--namespace", "corp"], b"");
    let policy = gateway.data.join("corp.yaml");
    std::fs::write(&policy, CORP).unwrap();
    gateway.admin(
        &[
            "org",
            "policy",
            "set",
            "corp",
            "--file",
            policy.to_str().unwrap(),
        ],
        b"",
    );
    let mut tokens = Vec::new();
    for (user, role) in [("alice", "member"), ("olga", "owner")] {
        gateway.admin(&["user", "create", user], PASSWORD.as_bytes());
        gateway.admin(&["member", "add", "corp", user, "--role", role], b"");
        tokens.push(gateway.admin(&["token", "create", user, "--name", "e2e"], b""));
    }
    let clients = Clients::new();
    clients.trust(&gateway.host(), &ca.ca());
    let olga = tokens.pop().unwrap();
    let alice = tokens.pop().unwrap();
    World {
        hub,
        _ghcr: ghcr,
        nginx,
        community,
        gateway,
        ca,
        clients,
        alice,
        olga,
    }
}

impl World {
    fn at_gateway(&self, name: &str) -> String {
        format!("{}/{name}", self.gateway.host())
    }

    /// A token from the gateway's /token for `repository`, as alice.
    fn bearer(&self, repository: &str) -> String {
        let out = Command::new("curl")
            .args(["--silent", "--fail", "--cacert"])
            .arg(self.ca.ca())
            .args(["--user", &format!("alice:{}", self.alice)])
            .arg(format!(
                "https://{}/token?service=imagegate&scope=repository:{repository}:pull",
                self.gateway.host()
            ))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "token: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["token"].as_str().unwrap().to_owned()
    }

    /// GETs a gateway path with a bearer token; returns (status, body bytes).
    fn get(&self, path: &str, token: &str, extra: &[&str]) -> (u16, Vec<u8>) {
        let out = Command::new("curl")
            .args(["--silent", "--cacert"])
            .arg(self.ca.ca())
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .args(extra)
            .args(["--write-out", "\n%{http_code}"])
            .arg(format!("https://{}{path}", self.gateway.host()))
            .output()
            .unwrap();
        let text = out.stdout;
        let split = text.iter().rposition(|b| *b == b'\n').unwrap();
        let code = String::from_utf8_lossy(&text[split + 1..])
            .trim()
            .parse()
            .unwrap();
        (code, text[..split].to_vec())
    }
}

fn refused_with(run: Run, message: &str) -> Run {
    let run = run.failure();
    assert!(
        run.stderr.contains(&format!("denied: {message}")),
        "{} should say `denied: {message}`:\n{}",
        run.command,
        run.stderr
    );
    run
}

#[test]
fn members_pull_what_the_policy_allows_byte_for_byte_and_are_refused_the_rest_in_words() {
    let mut w = world();
    // The registry logs a request after answering it: let the pushes' lines land.
    std::thread::sleep(Duration::from_millis(500));
    let upstream_log_before = w.hub.log().len();
    let c = &w.clients;
    c.login("skopeo", &w.gateway.host(), "alice", &w.alice)
        .success();

    // Allowed: byte-identical to the upstream.
    let raw = c
        .skopeo(&[
            "inspect",
            "--raw",
            &format!("docker://{}", w.at_gateway("library/nginx:1")),
        ])
        .success();
    assert_eq!(raw.stdout.as_bytes(), &w.nginx.manifest[..]);
    let out = Scratch::new("pulled");
    c.skopeo(&[
        "copy",
        "--quiet",
        "--preserve-digests",
        &format!("docker://{}", w.at_gateway("nginx:1")),
        &format!("oci:{}:x", out.path().display()),
    ])
    .success();
    let mut blobs = w.nginx.layer_digests.clone();
    blobs.push(w.nginx.config_digest.clone());
    for digest in &blobs {
        assert_eq!(
            std::fs::read(
                out.path()
                    .join("blobs/sha256")
                    .join(&digest["sha256:".len()..])
            )
            .unwrap(),
            std::fs::read(w.nginx.blob(digest)).unwrap(),
            "blob {digest} through the gateway"
        );
    }
    c.pull(Client::Podman, &w.at_gateway("corp/app:1"))
        .success();
    c.pull(Client::Buildah, &w.at_gateway("library/nginx:1"))
        .success();
    c.buildah(&["from", &w.at_gateway("corp/app:1")]).success();

    // Refused, with the policy's words, by every client.
    let community = w.at_gateway("someuser/custom-image:1");
    refused_with(
        c.skopeo(&["inspect", &format!("docker://{community}")]),
        COMMUNITY,
    );
    refused_with(c.pull(Client::Skopeo, &community), COMMUNITY);
    refused_with(c.pull(Client::Podman, &community), COMMUNITY);
    refused_with(c.pull(Client::Buildah, &community), COMMUNITY);
    refused_with(c.buildah(&["from", &community]), COMMUNITY);
    refused_with(
        c.pull(Client::Podman, &w.at_gateway("bitnami/redis:7")),
        VERIFIED,
    );
    refused_with(
        c.pull(Client::Skopeo, &w.at_gateway("ghcr.io/corp/app:1")),
        GHCR,
    );

    // A refused image's blobs cannot be fetched by digest either.
    let token = w.bearer("someuser/custom-image");
    let layer = &w.community.layer_digests[0];
    let (status, body) = w.get(
        &format!("/v2/someuser/custom-image/blobs/{layer}"),
        &token,
        &[],
    );
    assert_eq!(status, 403);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["errors"][0]["code"], "DENIED");
    assert_eq!(body["errors"][0]["message"], COMMUNITY);

    // Range requests pass through to the upstream.
    let token = w.bearer("library/nginx");
    let layer = &w.nginx.layer_digests[1];
    let (status, body) = w.get(
        &format!("/v2/library/nginx/blobs/{layer}"),
        &token,
        &["-H", "Range: bytes=100-199"],
    );
    assert_eq!(status, 206);
    let whole = std::fs::read(w.nginx.blob(layer)).unwrap();
    assert_eq!(body, whole[100..200]);

    // The audit log: every attempt, with who and why. (The refused ones are
    // each refused at their first request, so one event per attempt.)
    let events = w.gateway.stop_and_read_audit();
    let count = |image: &str, reason: &str| {
        events
            .iter()
            .filter(|e| e["image"] == image && e["reason"] == reason && e["user"] == "alice")
            .count()
    };
    assert_eq!(
        count("docker.io/someuser/custom-image:1", "category_not_allowed"),
        5,
        "{events:#?}"
    );
    assert_eq!(
        count("docker.io/bitnami/redis:7", "category_not_allowed"),
        1
    );
    assert_eq!(count("ghcr.io/corp/app:1", "registry_not_allowed"), 1);
    assert_eq!(
        count(
            &format!(
                "docker.io/someuser/custom-image@{}",
                w.community.layer_digests[0]
            ),
            "category_not_allowed"
        ),
        1
    );
    assert!(count("docker.io/library/nginx:1", "allowed") >= 1);
    for e in &events {
        assert_eq!(e["door"], "gateway");
        assert_eq!(e["org"], "corp");
        assert_eq!(e["source"], "127.0.0.1");
        assert_eq!(
            e["decision"],
            if e["reason"] == "allowed" {
                "allow"
            } else {
                "deny"
            },
            "{e}"
        );
    }
    // The upstream saw no request for a refused image.
    assert!(
        !w.hub.log()[upstream_log_before..].contains("someuser/custom-image")
            && !w.hub.log().contains("\"GET /v2/someuser/custom-image"),
        "a refused pull reached the upstream"
    );
}

#[test]
fn the_docker_cli_logs_in_pulls_and_builds_through_the_gateway() {
    let w = world();
    let c = &w.clients;
    let host = w.gateway.host();
    c.login("docker", &host, "alice", PASSWORD).failure();
    c.login("docker", &host, "alice", &w.alice).success();
    c.pull(Client::Docker, &w.at_gateway("library/nginx:1"))
        .success();
    refused_with(
        c.pull(Client::Docker, &w.at_gateway("someuser/custom-image:1")),
        COMMUNITY,
    );

    c.docker_build(
        &format!("FROM {}\nLABEL built=yes\n", w.at_gateway("corp/app:1")),
        "e2e-allowed:1",
    )
    .success();
    refused_with(
        c.docker_build(
            &format!(
                "FROM {}\nLABEL built=yes\n",
                w.at_gateway("someuser/custom-image:1")
            ),
            "e2e-refused:1",
        ),
        COMMUNITY,
    );

    // docker-compose 1.29 exits 0 when podman's API refuses a pull (it skips
    // the error event), so what arrived is what tells.
    let allowed = w.at_gateway("library/nginx:1");
    let refused = w.at_gateway("someuser/custom-image:1");
    c.docker(&["rmi", &allowed]).success();
    c.compose(
        &format!("services:\n  web:\n    image: {allowed}\n  tool:\n    image: {refused}\n"),
        &["pull"],
    );
    c.docker(&["image", "inspect", &allowed]).success();
    c.docker(&["image", "inspect", &refused]).failure();
}

#[test]
fn owners_anonymous_callers_passwords_revoked_tokens_and_upstream_credentials() {
    let w = world();
    let c = &w.clients;
    let community = format!("docker://{}", w.at_gateway("someuser/custom-image:1"));

    // The owner bypasses image access.
    c.skopeo(&[
        "inspect",
        "--creds",
        &format!("olga:{}", w.olga),
        &community,
    ])
    .success();

    // Anonymous: sign-in required.
    let anonymous = c
        .skopeo(&[
            "inspect",
            "--no-creds",
            &format!("docker://{}", w.at_gateway("library/nginx:1")),
        ])
        .failure();
    assert!(
        anonymous.stderr.contains("unauthorized: sign-in required"),
        "{}",
        anonymous.stderr
    );

    // The account password is refused at registry sign-in.
    let password = c
        .skopeo(&[
            "inspect",
            "--creds",
            &format!("alice:{PASSWORD}"),
            &format!("docker://{}", w.at_gateway("library/nginx:1")),
        ])
        .failure();
    assert!(
        password
            .stderr
            .contains("sign in with a personal access token, not the account password"),
        "{}",
        password.stderr
    );

    // A revoked token stops working at the next token request.
    let nginx = format!("docker://{}", w.at_gateway("library/nginx:1"));
    let creds = format!("alice:{}", w.alice);
    c.skopeo(&["inspect", "--creds", &creds, &nginx]).success();
    let list = w.gateway.admin(&["token", "list", "alice"], b"");
    let id = list.split_whitespace().next().unwrap().to_owned();
    w.gateway.admin(&["token", "revoke", "alice", &id], b"");
    let revoked = c.skopeo(&["inspect", "--creds", &creds, &nginx]).failure();
    assert!(revoked.stderr.contains("revoked"), "{}", revoked.stderr);

    // With ghcr.io allowed, a pull reaches the htpasswd-protected upstream
    // with the gateway's own credentials; the policy applies within a second.
    let policy = w.gateway.data.join("open.yaml");
    std::fs::write(
        &policy,
        CORP.replace("allow: [docker.io]", "allow: [docker.io, ghcr.io]"),
    )
    .unwrap();
    w.gateway.admin(
        &[
            "org",
            "policy",
            "set",
            "corp",
            "--file",
            policy.to_str().unwrap(),
        ],
        b"",
    );
    std::thread::sleep(Duration::from_millis(1200));
    let ghcr = c
        .skopeo(&[
            "inspect",
            "--raw",
            "--creds",
            &format!("olga:{}", w.olga),
            &format!("docker://{}", w.at_gateway("ghcr.io/corp/app:1")),
        ])
        .success();
    assert!(ghcr.stdout.contains("schemaVersion"), "{}", ghcr.stdout);
}
