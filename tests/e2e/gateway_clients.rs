//! The registry gateway with real clients: the CNCF distribution registry as
//! the docker.io upstream and, behind htpasswd Basic auth, as ghcr.io; small
//! images pushed there with skopeo; `imagegate serve` in front; and skopeo,
//! podman, buildah, the docker CLI (against `podman system service`) and
//! docker-compose pulling through it as organisation `corp`'s people; and a
//! real dockerd with the docker CLI and docker-compose against it.
//!
//! Every test has its own registries, gateway, data directory and client
//! state, so they run in parallel. The harness is `clients` (its module doc
//! says how each client is configured and what each prints).

use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::clients::{
    Clients, DataDir, Dockerd, Gateway, Image, Layer, Registry, Run, Scratch, TestCa,
};

/// corp's policy: official and organisation images, Docker Hub only.
const POLICY: &str = "\
apiVersion: imagegate.dev/v1
kind: ImagePolicy
metadata: {name: corp}
spec:
  imageAccess:
    enabled: true
    allow: [official, organization]
    organizationNamespaces: [corp]
    verifiedPublishers: [bitnami]
  registryAccess:
    enabled: true
    allow: [docker.io]
";

const COMMUNITY_DENIED: &str = "image access denied: community images not allowed";
const VERIFIED_DENIED: &str = "image access denied: verified publisher images not allowed";
const GHCR_DENIED: &str = "registry access to ghcr.io is not allowed";
const SIGN_IN_REQUIRED: &str = "sign-in required";
const PASSWORD_REFUSED: &str = "sign in with a personal access token, not the account password";
const REVOKED: &str = "this personal access token was revoked";

/// A member of corp, and their account password (never accepted by the registry door).
const MEMBER: &str = "dev";
const MEMBER_PASSWORD: &str = "dev account password";
/// corp's owner, who bypasses image access.
const OWNER: &str = "boss";
const OWNER_PASSWORD: &str = "boss account password";
/// The htpasswd user of the ghcr.io upstream, which the gateway signs in as.
const GHCR_USER: &str = "corp-bot";
const GHCR_PASSWORD: &str = "ghcr bot password";

/// The images in the upstreams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Img {
    /// docker.io/library/nginx:1.27, official: allowed.
    Nginx,
    /// docker.io/corp/app:1, corp's own: allowed.
    App,
    /// docker.io/someuser/custom-image:1, community: denied.
    Community,
    /// docker.io/bitnami/redis:7, verified publisher: denied.
    Verified,
    /// ghcr.io/corp/tool:1, another registry: denied.
    Ghcr,
}

impl Img {
    const ALL: [Img; 5] = [
        Img::Nginx,
        Img::App,
        Img::Community,
        Img::Verified,
        Img::Ghcr,
    ];
    const DENIED: [(Img, &'static str); 3] = [
        (Img::Community, COMMUNITY_DENIED),
        (Img::Verified, VERIFIED_DENIED),
        (Img::Ghcr, GHCR_DENIED),
    ];

    /// The repository in its upstream registry.
    fn repository(self) -> &'static str {
        match self {
            Img::Nginx => "library/nginx",
            Img::App => "corp/app",
            Img::Community => "someuser/custom-image",
            Img::Verified => "bitnami/redis",
            Img::Ghcr => "corp/tool",
        }
    }

    /// The name under the gateway: Docker Hub's repositories as they are,
    /// another registry's prefixed with its host.
    fn name(self) -> String {
        match self {
            Img::Ghcr => format!("ghcr.io/{}", self.repository()),
            _ => self.repository().to_owned(),
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Img::Nginx => "1.27",
            Img::Verified => "7",
            _ => "1",
        }
    }
}

/// Two upstream registries with the images in them, a gateway in front with
/// corp, its member and its owner, and a client machine that trusts the
/// gateway's CA.
struct World {
    images: Vec<(Img, Image)>,
    clients: Clients,
    member_pat: String,
    owner_pat: String,
    gateway: Gateway,
    hub: Registry,
    ghcr: Registry,
    /// The gateway serves (and reloads) its certificate while it runs.
    ca: TestCa,
    started: Instant,
}

impl World {
    fn new() -> World {
        let started = Instant::now();
        let ca = TestCa::new();
        let hub = Registry::start(None);
        let ghcr = Registry::start(Some((GHCR_USER, GHCR_PASSWORD)));
        let images = Img::ALL
            .iter()
            .enumerate()
            .map(|(i, &img)| {
                let image = Image::build(&[
                    Layer::file("etc/image", format!("{}\n", img.name())),
                    // Incompressible and uncompressed: Range reads of it are exact.
                    Layer::random(64 * 1024, i as u64),
                ]);
                let upstream = if img == Img::Ghcr { &ghcr } else { &hub };
                image.push(upstream, img.repository(), img.tag());
                (img, image)
            })
            .collect();
        let (data, member_pat, owner_pat) = corp(POLICY);
        let gateway = Gateway::start(data, &ca, &[("docker.io", &hub), ("ghcr.io", &ghcr)], true);
        let clients = Clients::new();
        clients.trust(&gateway.host_port(), &ca.ca());
        World {
            images,
            clients,
            member_pat,
            owner_pat,
            gateway,
            hub,
            ghcr,
            ca,
            started,
        }
    }

    fn image(&self, img: Img) -> &Image {
        &self.images.iter().find(|(i, _)| *i == img).unwrap().1
    }

    /// `localhost:PORT/NAME:TAG`: the image through the gateway.
    fn reference(&self, img: Img) -> String {
        format!("{}/{}:{}", self.gateway.host_port(), img.name(), img.tag())
    }

    /// The image through the gateway, pinned by its upstream digest.
    fn pinned(&self, img: Img) -> String {
        format!(
            "{}/{}@{}",
            self.gateway.host_port(),
            img.name(),
            self.image(img).digest
        )
    }

    /// `TOOL login` to the gateway as corp's member with their PAT.
    fn member_login(&self, tool: &str) -> Run {
        self.clients
            .login(tool, &self.gateway.host_port(), MEMBER, &self.member_pat)
            .success()
    }

    /// `imagegate admin token revoke` of the member's (only) token.
    fn revoke_member_token(&self) {
        let list = self
            .gateway
            .data()
            .admin(&["token", "list", MEMBER], b"")
            .success();
        let id = list.stdout.split('\t').next().unwrap().trim().to_owned();
        self.gateway
            .data()
            .admin(&["token", "revoke", MEMBER, &id], b"")
            .success();
    }

    /// Prints how long the test took, and what it wants shown
    /// (`cargo test -- --nocapture`).
    fn report(&self, test: &str, shown: &[(&str, &Run)]) {
        eprintln!(
            "{test}: {:.1}s in all",
            self.started.elapsed().as_secs_f64()
        );
        for (what, run) in shown {
            eprintln!(
                "  {what} ({:.2}s): {}",
                run.took.as_secs_f64(),
                run.stderr.trim().replace('\n', "\n    ")
            );
        }
    }
}

/// A store with organisation corp under `policy`, its member and its owner;
/// returns it and their PATs.
fn corp(policy: &str) -> (DataDir, String, String) {
    let data = DataDir::new();
    data.admin(&["org", "create", "corp", "--namespace", "corp"], b"")
        .success();
    data.set_policy("corp", policy);
    let member_pat = data.user_with_token(MEMBER, MEMBER_PASSWORD);
    let owner_pat = data.user_with_token(OWNER, OWNER_PASSWORD);
    data.admin(&["member", "add", "corp", MEMBER, "--role", "member"], b"")
        .success();
    data.admin(&["member", "add", "corp", OWNER, "--role", "owner"], b"")
        .success();
    (data, member_pat, owner_pat)
}

/// Asserts that `run` failed and printed the registry's refusal, `denied: MESSAGE`.
#[track_caller]
fn assert_denied(run: Run, message: &str) -> Run {
    let run = run.failure();
    assert!(
        run.stderr.contains(&format!("denied: {message}")),
        "expected `denied: {message}` on stderr: {run}"
    );
    run
}

#[test]
fn skopeo_copies_allowed_images_byte_for_byte_and_is_refused_the_others_in_words() {
    let w = World::new();
    let c = &w.clients;
    w.member_login("skopeo");
    for img in [Img::Nginx, Img::App] {
        // Straight from the upstream (plain HTTP, hence no TLS to verify).
        let upstream = c
            .skopeo(&[
                "inspect",
                "--raw",
                "--tls-verify=false",
                &format!(
                    "docker://{}/{}:{}",
                    w.hub.host_port(),
                    img.repository(),
                    img.tag()
                ),
            ])
            .success();
        assert_eq!(upstream.stdout.as_bytes(), &w.image(img).manifest[..]);
        let raw = c
            .skopeo(&[
                "inspect",
                "--raw",
                &format!("docker://{}", w.reference(img)),
            ])
            .success();
        assert_eq!(
            raw.stdout.as_bytes(),
            &w.image(img).manifest[..],
            "{img:?}: the upstream's manifest, byte for byte"
        );
        let out = Scratch::new("skopeo-copy");
        c.skopeo(&[
            "copy",
            "--quiet",
            "--preserve-digests",
            &format!("docker://{}", w.reference(img)),
            &format!("oci:{}:copied", out.path().display()),
        ])
        .success();
        assert_same_blobs(&out, w.image(img));
    }
    let mut shown = Vec::new();
    for (img, message) in Img::DENIED {
        let inspect = c.skopeo(&["inspect", &format!("docker://{}", w.reference(img))]);
        shown.push((
            format!("skopeo inspect {img:?}"),
            assert_denied(inspect, message),
        ));
        let out = Scratch::new("skopeo-denied");
        let copy = c.skopeo(&[
            "copy",
            "--quiet",
            &format!("docker://{}", w.reference(img)),
            &format!("oci:{}:copied", out.path().display()),
        ]);
        shown.push((format!("skopeo copy {img:?}"), assert_denied(copy, message)));
    }
    // Tag lists: allowed, and refused with the same `DENIED` body (as a 401).
    let tags = c
        .skopeo(&[
            "list-tags",
            &format!("docker://{}/{}", w.gateway.host_port(), Img::Nginx.name()),
        ])
        .success();
    let tags: serde_json::Value = serde_json::from_str(&tags.stdout).unwrap();
    assert_eq!(
        tags["Tags"],
        serde_json::json!([Img::Nginx.tag()]),
        "{tags}"
    );
    let list_tags = c
        .skopeo(&[
            "list-tags",
            &format!(
                "docker://{}/{}",
                w.gateway.host_port(),
                Img::Community.name()
            ),
        ])
        .failure();
    assert!(
        list_tags
            .stderr
            .contains(&skopeo_tag_list_refusal(c, COMMUNITY_DENIED)),
        "{list_tags}"
    );
    // The reason is in the answer, for a client that reads it.
    let name = Img::Community.name();
    let token = w
        .gateway
        .token(MEMBER, &w.member_pat, &format!("repository:{name}:pull"));
    let (status, body) = w.gateway.curl(&[
        "-H",
        &format!("Authorization: Bearer {token}"),
        &format!("/v2/{name}/tags/list"),
    ]);
    assert_eq!(
        (status, String::from_utf8(body).unwrap()),
        (
            401,
            format!(r#"{{"errors":[{{"code":"DENIED","message":"{COMMUNITY_DENIED}"}}]}}"#)
        )
    );
    shown.push(("skopeo list-tags Community".to_owned(), list_tags));
    let shown: Vec<(&str, &Run)> = shown.iter().map(|(w, r)| (w.as_str(), r)).collect();
    w.report("skopeo", &shown);
}

/// What `skopeo list-tags` prints for a tag list the gateway refuses (401
/// `insufficient_scope` with a `DENIED` body). containers/image reads that
/// body in every version: before 5.24 (skopeo 1.9, Debian 12's) only a
/// 401's, inside its own words about credentials; from 5.24 on (skopeo
/// 1.10, its commit "Use registryHTTPResponseToError on /tags/list
/// failure") any status's.
fn skopeo_tag_list_refusal(c: &Clients, message: &str) -> String {
    let version = c.skopeo(&["--version"]).success();
    let (major, minor) = version
        .stdout
        .trim()
        .rsplit(' ')
        .next()
        .and_then(|v| {
            let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
            Some((parts.next()??, parts.next()??))
        })
        .unwrap_or_else(|| panic!("no version in {version}"));
    if (major, minor) >= (1, 10) {
        format!("fetching tags list: denied: {message}")
    } else {
        format!(
            "Error listing repository tags: unable to retrieve auth token: invalid username/password: denied: {message}"
        )
    }
}

#[test]
fn podman_pulls_allowed_images_at_their_upstream_digest_and_is_refused_the_others_in_words() {
    let w = World::new();
    let c = &w.clients;
    w.member_login("podman");
    for img in [Img::Nginx, Img::App] {
        c.podman(&["pull", "--quiet", &w.reference(img)]).success();
        let digest = c
            .podman(&[
                "image",
                "inspect",
                "--format",
                "{{.Digest}}",
                &w.reference(img),
            ])
            .success();
        assert_eq!(digest.stdout.trim(), w.image(img).digest, "{img:?}");
    }
    let mut shown = Vec::new();
    for (img, message) in Img::DENIED {
        let pull = c.podman(&["pull", "--quiet", &w.reference(img)]);
        shown.push((format!("podman pull {img:?}"), assert_denied(pull, message)));
        c.podman(&["image", "exists", &w.reference(img)]).failure();
    }
    // The refusal also says where to ask for the image, on a line of its own.
    let community = &shown[0].1;
    let ask = format!(
        "denied: ask for access: https://{}/console/orgs/corp/access-requests/new?image=docker.io/someuser/custom-image:1",
        w.gateway.host_port()
    );
    assert!(
        community.stderr.contains(&ask),
        "expected `{ask}`: {community}"
    );
    // By digest, as a pinned FROM or a Kubernetes manifest asks.
    let pinned = c.podman(&["pull", "--quiet", &w.pinned(Img::Community)]);
    assert_denied(pinned, COMMUNITY_DENIED);
    c.podman(&["pull", "--quiet", &w.pinned(Img::App)])
        .success();
    let shown: Vec<(&str, &Run)> = shown.iter().map(|(w, r)| (w.as_str(), r)).collect();
    w.report("podman", &shown);
}

#[test]
fn buildah_pulls_and_builds_from_allowed_images_and_is_refused_denied_ones() {
    let w = World::new();
    let c = &w.clients;
    w.member_login("buildah");
    c.buildah(&["pull", "--quiet", &w.reference(Img::Nginx)])
        .success();
    let from = c.buildah(&["from", &w.reference(Img::App)]).success();
    assert!(from.stdout.contains("working-container"), "{from}");
    let mut shown = Vec::new();
    for (img, message) in Img::DENIED {
        let pull = c.buildah(&["pull", "--quiet", &w.reference(img)]);
        shown.push((
            format!("buildah pull {img:?}"),
            assert_denied(pull, message),
        ));
        let from = c.buildah(&["from", &w.reference(img)]);
        shown.push((
            format!("buildah from {img:?}"),
            assert_denied(from, message),
        ));
    }
    let shown: Vec<(&str, &Run)> = shown.iter().map(|(w, r)| (w.as_str(), r)).collect();
    w.report("buildah", &shown);
}

#[test]
fn the_docker_cli_signs_in_with_a_pat_and_pulls_only_what_the_policy_allows() {
    let w = World::new();
    let c = &w.clients;
    let host = w.gateway.host_port();
    // podman's Docker API does not verify TLS for a login to localhost:PORT
    // (see the clients module); the pulls below verify it. It does not show
    // why a login failed either (the_account_password_is_refused_at_registry_sign_in).
    let password = c.login("docker", &host, MEMBER, MEMBER_PASSWORD).failure();
    assert!(password.stderr.contains("401 Unauthorized"), "{password}");
    let login = c.login("docker", &host, MEMBER, &w.member_pat).success();
    assert!(login.stdout.contains("Login Succeeded"), "{login}");
    for img in [Img::Nginx, Img::App] {
        c.docker(&["pull", &w.reference(img)]).success();
        let digests = c
            .docker(&[
                "image",
                "inspect",
                "--format",
                "{{json .RepoDigests}}",
                &w.reference(img),
            ])
            .success();
        assert!(
            digests.stdout.contains(&w.image(img).digest),
            "{img:?}: {digests}"
        );
    }
    let mut shown = vec![("docker login with the password".to_owned(), password)];
    for (img, message) in Img::DENIED {
        let pull = c.docker(&["pull", &w.reference(img)]);
        shown.push((format!("docker pull {img:?}"), assert_denied(pull, message)));
        c.docker(&["image", "inspect", &w.reference(img)]).failure();
    }
    let shown: Vec<(&str, &Run)> = shown.iter().map(|(w, r)| (w.as_str(), r)).collect();
    w.report("docker", &shown);
}

#[test]
fn docker_build_builds_from_an_allowed_base_and_is_refused_a_community_one() {
    let w = World::new();
    let c = &w.clients;
    w.member_login("docker");
    // `HOST/nginx` is Docker Hub's library/nginx, as `docker pull nginx` is.
    let allowed = c
        .docker_build(
            &format!(
                "FROM {}/nginx:1.27\nLABEL dev.imagegate.e2e.built=yes\n",
                w.gateway.host_port()
            ),
            "e2e-allowed:1",
        )
        .success();
    let label = c
        .docker(&[
            "image",
            "inspect",
            "--format",
            "{{index .Config.Labels \"dev.imagegate.e2e.built\"}}",
            "e2e-allowed:1",
        ])
        .success();
    assert_eq!(label.stdout.trim(), "yes", "{allowed}");
    let denied = c.docker_build(
        &format!(
            "FROM {}\nLABEL dev.imagegate.e2e.built=yes\n",
            w.reference(Img::Community)
        ),
        "e2e-denied:1",
    );
    let denied = assert_denied(denied, COMMUNITY_DENIED);
    c.docker(&["image", "inspect", "e2e-denied:1"]).failure();
    w.report("docker build", &[("docker build FROM Community", &denied)]);
}

#[test]
fn docker_compose_pulls_the_allowed_service_and_not_the_community_one() {
    let w = World::new();
    let c = &w.clients;
    w.member_login("docker");
    let compose = format!(
        "services:\n  web:\n    image: {}\n  tool:\n    image: {}\n",
        w.reference(Img::Nginx),
        w.reference(Img::Community)
    );
    let pull = c.compose(&compose, &["pull"]);
    c.docker(&["image", "inspect", &w.reference(Img::Nginx)])
        .success();
    c.docker(&["image", "inspect", &w.reference(Img::Community)])
        .failure();
    if !pull.status.success() {
        // As with dockerd: compose stops at the error event, in words.
        assert!(
            pull.stderr.contains(&format!("denied: {COMMUNITY_DENIED}")),
            "{pull}"
        );
    } else {
        // docker-compose 1.29 through podman's Docker API: podman's error
        // event carries `progressDetail`, so compose takes it for progress,
        // prints `done` and exits 0. The refusal is in the stream it read:
        let stream = c.docker_api_pull(&w.reference(Img::Community), MEMBER, &w.member_pat);
        assert!(
            stream.contains(&format!("denied: {COMMUNITY_DENIED}")),
            "{stream}"
        );
    }
    w.report("docker-compose", &[("docker-compose pull", &pull)]);
}

#[test]
fn an_owner_pulls_the_community_image_a_member_may_not() {
    let w = World::new();
    let c = &w.clients;
    let owner = format!("--creds={OWNER}:{}", w.owner_pat);
    let member = format!("--creds={MEMBER}:{}", w.member_pat);
    let community = format!("docker://{}", w.reference(Img::Community));
    let raw = c
        .skopeo(&["inspect", "--raw", &owner, &community])
        .success();
    assert_eq!(raw.stdout.as_bytes(), &w.image(Img::Community).manifest[..]);
    assert_denied(
        c.skopeo(&["inspect", "--raw", &member, &community]),
        COMMUNITY_DENIED,
    );
    c.login("podman", &w.gateway.host_port(), OWNER, &w.owner_pat)
        .success();
    c.podman(&["pull", "--quiet", &w.reference(Img::Community)])
        .success();
    // Owners bypass image access, and only image access.
    assert_denied(
        c.podman(&["pull", "--quiet", &w.reference(Img::Ghcr)]),
        GHCR_DENIED,
    );
    w.report("owner", &[]);
}

#[test]
fn anonymous_pulls_are_told_to_sign_in() {
    let w = World::new();
    let c = &w.clients;
    let skopeo = c.skopeo(&[
        "inspect",
        "--no-creds",
        &format!("docker://{}", w.reference(Img::Nginx)),
    ]);
    // A 401 `UNAUTHORIZED`, which clients print as `unauthorized: MESSAGE`.
    let unauthorized = format!("unauthorized: {SIGN_IN_REQUIRED}");
    let skopeo = skopeo.failure();
    assert!(skopeo.stderr.contains(&unauthorized), "{skopeo}");
    let podman = c
        .podman(&["pull", "--quiet", &w.reference(Img::Nginx)])
        .failure();
    assert!(podman.stderr.contains(&unauthorized), "{podman}");
    let docker = c.docker(&["pull", &w.reference(Img::Nginx)]).failure();
    assert!(docker.stderr.contains(&unauthorized), "{docker}");
    w.report(
        "anonymous",
        &[
            ("skopeo", &skopeo),
            ("podman", &podman),
            ("docker", &docker),
        ],
    );
}

#[test]
fn the_account_password_is_refused_at_registry_sign_in() {
    let w = World::new();
    let c = &w.clients;
    let host = w.gateway.host_port();
    // The token endpoint refuses it in words.
    let (status, body) = w.gateway.curl(&[
        "--user",
        &format!("{MEMBER}:{MEMBER_PASSWORD}"),
        "/token?service=imagegate&scope=repository:library/nginx:pull",
    ]);
    assert_eq!(
        (status, String::from_utf8(body).unwrap()),
        (
            401,
            format!(r#"{{"errors":[{{"code":"UNAUTHORIZED","message":"{PASSWORD_REFUSED}"}}]}}"#)
        )
    );
    // Clients signing in to pull show those words.
    let mut shown = Vec::new();
    let creds = format!("--creds={MEMBER}:{MEMBER_PASSWORD}");
    let nginx = w.reference(Img::Nginx);
    for (what, run) in [
        (
            "skopeo inspect --creds",
            c.skopeo(&["inspect", &creds, &format!("docker://{nginx}")]),
        ),
        ("podman pull --creds", c.podman(&["pull", &creds, &nginx])),
        ("buildah pull --creds", c.buildah(&["pull", &creds, &nginx])),
    ] {
        let run = run.failure();
        assert!(
            run.stderr
                .contains(&format!("unauthorized: {PASSWORD_REFUSED}")),
            "{run}"
        );
        shown.push((what.to_owned(), run));
    }
    // The docker CLI sends what `docker login` stored: a password stored
    // before the gateway (the login below refuses to store one).
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{MEMBER}:{MEMBER_PASSWORD}"));
    std::fs::write(
        c.docker_config().join("config.json"),
        format!(r#"{{"auths":{{"{host}":{{"auth":"{basic}"}}}}}}"#),
    )
    .unwrap();
    let docker = c.docker(&["pull", &nginx]).failure();
    assert!(
        docker
            .stderr
            .contains(&format!("unauthorized: {PASSWORD_REFUSED}")),
        "{docker}"
    );
    shown.push(("docker pull with a stored password".to_owned(), docker));
    let shown: Vec<(&str, &Run)> = shown.iter().map(|(w, r)| (w.as_str(), r)).collect();
    w.report("password", &shown);
}

#[test]
fn logins_with_the_account_password_are_refused() {
    // A test of its own: each failed sign-in counts towards the gateway's
    // limit of 10 per user and source in 5 minutes.
    let w = World::new();
    let c = &w.clients;
    let host = w.gateway.host_port();
    let mut shown = Vec::new();
    // Every login is refused, but none shows why: containers/common words
    // every 401 at login `invalid username/password` (the reason is at debug
    // level), podman's Docker API `401 Unauthorized`.
    for tool in ["skopeo", "podman", "buildah", "docker"] {
        let login = c.login(tool, &host, MEMBER, MEMBER_PASSWORD).failure();
        assert!(
            login.stderr.contains("invalid username/password")
                || login.stderr.contains("401 Unauthorized"),
            "{login}"
        );
        shown.push((format!("{tool} login"), login));
    }
    let debug = c
        .run(
            "podman",
            &[
                "--log-level=debug",
                "login",
                "-u",
                MEMBER,
                "--password-stdin",
                &host,
            ],
            Some(MEMBER_PASSWORD.as_bytes()),
        )
        .failure();
    assert!(
        debug
            .stderr
            .contains(&format!("unauthorized: {PASSWORD_REFUSED}")),
        "{debug}"
    );
    assert_eq!(
        std::fs::read_to_string(c.auth_file()).unwrap().trim(),
        "{}",
        "no login stored the password"
    );
    eprintln!(
        "  podman --log-level=debug login: {}",
        debug
            .stderr
            .lines()
            .find(|l| l.contains(PASSWORD_REFUSED))
            .unwrap()
    );
    let shown: Vec<(&str, &Run)> = shown.iter().map(|(w, r)| (w.as_str(), r)).collect();
    w.report("login with the password", &shown);
}

#[test]
fn a_revoked_pat_stops_working_at_the_next_token() {
    let w = World::new();
    let c = &w.clients;
    w.member_login("podman");
    let nginx = format!("docker://{}", w.reference(Img::Nginx));
    c.skopeo(&["inspect", "--raw", &nginx]).success();
    w.revoke_member_token();
    let skopeo = c.skopeo(&["inspect", "--raw", &nginx]).failure();
    assert!(skopeo.stderr.contains(REVOKED), "{skopeo}");
    let podman = c
        .podman(&["pull", "--quiet", &w.reference(Img::App)])
        .failure();
    assert!(podman.stderr.contains(REVOKED), "{podman}");
    w.report("revoked", &[("skopeo", &skopeo), ("podman", &podman)]);
}

#[test]
fn a_registry_token_already_issued_stops_pulling_within_two_seconds_of_token_revoke() {
    let w = World::new();
    let c = &w.clients;
    let nginx = format!("docker://{}", w.reference(Img::Nginx));
    // skopeo holds the registry token, as a long pull does: no new /token.
    let token = w
        .gateway
        .token(MEMBER, &w.member_pat, "repository:library/nginx:pull");
    let inspect = || c.skopeo(&["inspect", "--raw", "--registry-token", &token, &nginx]);
    inspect().success();
    w.revoke_member_token();
    let revoked = Instant::now();
    let refused = loop {
        let run = inspect();
        if !run.status.success() {
            break run;
        }
        assert!(
            revoked.elapsed() < Duration::from_secs(2),
            "skopeo still pulls with the registry token 2 s after token revoke"
        );
    };
    assert!(
        refused
            .stderr
            .contains("the personal access token it was issued for was revoked"),
        "{refused}"
    );
    w.report("revoked registry token", &[("skopeo", &refused)]);
}

#[test]
fn a_denied_images_blob_is_refused_by_digest_and_never_fetched_upstream() {
    let w = World::new();
    let name = Img::Community.name();
    let token = w
        .gateway
        .token(MEMBER, &w.member_pat, &format!("repository:{name}:pull"));
    let bearer = format!("Authorization: Bearer {token}");
    let image = w.image(Img::Community);
    let refusal = format!(r#"{{"errors":[{{"code":"DENIED","message":"{COMMUNITY_DENIED}"}}]}}"#);
    for digest in [&image.layer_digests[0], &image.config_digest] {
        let (status, body) =
            w.gateway
                .curl(&["-H", &bearer, &format!("/v2/{name}/blobs/{digest}")]);
        assert_eq!(
            (status, String::from_utf8(body).unwrap()),
            (403, refusal.clone())
        );
    }
    let (status, body) = w.gateway.curl(&[
        "-H",
        &bearer,
        &format!("/v2/{name}/manifests/{}", image.digest),
    ]);
    // The manifest refusal, which clients print, adds where to ask.
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 403);
    assert_eq!(
        body["errors"][0],
        serde_json::json!({"code": "DENIED", "message": COMMUNITY_DENIED})
    );
    assert_eq!(
        body["errors"][1]["detail"]["request_access"],
        format!(
            "https://{}/console/orgs/corp/access-requests/new?image=docker.io/someuser/custom-image@{}",
            w.gateway.host_port(),
            image.digest
        )
    );
    let (status, _) = w.gateway.curl(&[
        "--head",
        "-H",
        &bearer,
        &format!("/v2/{name}/blobs/{}", image.layer_digests[0]),
    ]);
    assert_eq!(status, 403, "HEAD is refused too, without a body");
    // The same token fetches nothing it does not name.
    let (status, _) = w.gateway.curl(&[
        "-H",
        &bearer,
        &format!(
            "/v2/library/nginx/blobs/{}",
            w.image(Img::Nginx).layer_digests[0]
        ),
    ]);
    assert_eq!(status, 401);
    // What an allowed blob fetch leaves in the upstream's access log.
    let nginx = w.image(Img::Nginx);
    let token = w
        .gateway
        .token(MEMBER, &w.member_pat, "repository:library/nginx:pull");
    let (status, body) = w.gateway.curl(&[
        "-H",
        &format!("Authorization: Bearer {token}"),
        &format!("/v2/library/nginx/blobs/{}", nginx.config_digest),
    ]);
    assert_eq!(status, 200);
    assert!(body == std::fs::read(nginx.blob(&nginx.config_digest)).unwrap());
    // Requests are logged after they are answered, in order: once the
    // allowed fetch is in the log, any earlier relayed request would be too.
    let log = logged(&w.hub, |line| {
        line.contains("\"imagegate/")
            && line.contains(&format!("/v2/library/nginx/blobs/{}", nginx.config_digest))
    });
    let relayed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"imagegate/") && l.contains(&format!("/v2/{name}/")))
        .collect();
    assert!(
        relayed.is_empty(),
        "a refused pull reached the upstream:\n{}",
        relayed.join("\n")
    );
    w.report("blob by digest", &[]);
}

#[test]
fn a_range_request_for_a_blob_returns_206_with_those_bytes() {
    let w = World::new();
    let image = w.image(Img::Nginx);
    let digest = &image.layer_digests[1];
    let blob = std::fs::read(image.blob(digest)).unwrap();
    let token = w
        .gateway
        .token(MEMBER, &w.member_pat, "repository:library/nginx:pull");
    let (status, response) = w.gateway.curl(&[
        "--include",
        "-H",
        &format!("Authorization: Bearer {token}"),
        "-H",
        "Range: bytes=1000-4999",
        &format!("/v2/library/nginx/blobs/{digest}"),
    ]);
    assert_eq!(status, 206);
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
    let body = &response[split + 4..];
    assert!(
        head.contains(&format!("content-range: bytes 1000-4999/{}", blob.len())),
        "{head}"
    );
    assert_eq!(body.len(), 4000, "{head}");
    assert!(body == &blob[1000..5000], "the bytes of the range");
    w.report("range", &[]);
}

#[test]
fn a_pull_through_the_basic_auth_ghcr_upstream_works_once_the_policy_allows_ghcr() {
    let w = World::new();
    let c = &w.clients;
    w.member_login("skopeo");
    let tool = format!("docker://{}", w.reference(Img::Ghcr));
    assert_denied(c.skopeo(&["inspect", "--raw", &tool]), GHCR_DENIED);
    let open = POLICY.replace("allow: [docker.io]", "allow: [docker.io, ghcr.io]");
    w.gateway.data().set_policy("corp", &open);
    // Policy changes apply within a second.
    let deadline = Instant::now() + Duration::from_secs(10);
    let raw = loop {
        let raw = c.skopeo(&["inspect", "--raw", &tool]);
        if raw.status.success() {
            break raw;
        }
        assert!(
            raw.stderr.contains(GHCR_DENIED) && Instant::now() < deadline,
            "{raw}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(raw.stdout.as_bytes(), &w.image(Img::Ghcr).manifest[..]);
    let out = Scratch::new("ghcr-copy");
    c.skopeo(&[
        "copy",
        "--quiet",
        "--preserve-digests",
        &tool,
        &format!("oci:{}:copied", out.path().display()),
    ])
    .success();
    assert_same_blobs(&out, w.image(Img::Ghcr));
    // The upstream logs who signed in (`auth.user.name`).
    logged(&w.ghcr, |line| {
        line.contains("auth.user.name") && line.contains(GHCR_USER)
    });

    // The same upstream, through a gateway without its credentials: the
    // upstream refuses the gateway, and the client is told so.
    let (data, member_pat, _) = corp(&open);
    let bare = Gateway::start(
        data,
        &w.ca,
        &[("docker.io", &w.hub), ("ghcr.io", &w.ghcr)],
        false,
    );
    let refused = c.skopeo(&[
        "inspect",
        "--raw",
        &format!("--creds={MEMBER}:{member_pat}"),
        &format!("--cert-dir={}", w.ca.cert_dir().display()),
        &format!(
            "docker://{}/{}:{}",
            bare.host_port(),
            Img::Ghcr.name(),
            Img::Ghcr.tag()
        ),
    ]);
    let refused = assert_denied(
        refused,
        "upstream ghcr.io refused access to corp/tool (HTTP 401)",
    );
    w.report("ghcr.io", &[("without upstream credentials", &refused)]);
}

#[test]
fn the_audit_log_holds_one_event_per_attempt() {
    let mut w = World::new();
    let c = &w.clients;
    let member = format!("--creds={MEMBER}:{}", w.member_pat);
    let owner = format!("--creds={OWNER}:{}", w.owner_pat);
    let inspect = |creds: &str, img: Img| {
        c.skopeo(&[
            "inspect",
            "--raw",
            creds,
            &format!("docker://{}", w.reference(img)),
        ])
    };
    inspect(&member, Img::Nginx).success();
    for (img, message) in Img::DENIED {
        assert_denied(inspect(&member, img), message);
    }
    inspect(&owner, Img::Community).success();
    c.skopeo(&[
        "inspect",
        "--raw",
        "--no-creds",
        &format!("docker://{}", w.reference(Img::Nginx)),
    ])
    .failure();
    let token = w.gateway.token(
        MEMBER,
        &w.member_pat,
        &format!("repository:{}:pull", Img::Community.name()),
    );
    let layer = w.image(Img::Community).layer_digests[0].clone();
    let (status, _) = w.gateway.curl(&[
        "-H",
        &format!("Authorization: Bearer {token}"),
        &format!("/v2/{}/blobs/{layer}", Img::Community.name()),
    ]);
    assert_eq!(status, 403);

    // A clean stop writes every acknowledged event.
    w.gateway.stop();
    let data = w.gateway.data().path();
    let out = crate::imagegate(
        &[
            "audit",
            "--data-dir",
            data.to_str().unwrap(),
            "--door",
            "gateway",
            "--format",
            "json",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", crate::stderr(&out));
    let events: Vec<serde_json::Value> = crate::stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let find = |user: Option<&str>, image: &str, path: &str| -> Vec<&serde_json::Value> {
        events
            .iter()
            .filter(|e| e["user"].as_str() == user && e["image"] == image && e["path"] == path)
            .collect()
    };
    let one = |user: Option<&str>, image: &str, path: &str| -> &serde_json::Value {
        let found = find(user, image, path);
        assert_eq!(
            found.len(),
            1,
            "one event for {user:?} {image} {path}: {events:#?}"
        );
        found[0]
    };
    let expect = |e: &serde_json::Value,
                  decision: &str,
                  reason: &str,
                  category: Option<&str>,
                  message: &str| {
        assert_eq!(e["door"], "gateway");
        assert_eq!(e["decision"], decision, "{e}");
        assert_eq!(e["reason"], reason, "{e}");
        assert_eq!(e["category"].as_str(), category, "{e}");
        assert_eq!(e["message"], message, "{e}");
        assert_eq!(e["source"], "127.0.0.1", "{e}");
    };
    let nginx = one(Some(MEMBER), "docker.io/library/nginx:1.27", "manifest");
    expect(
        nginx,
        "allow",
        "allowed",
        Some("official"),
        "image docker.io/library/nginx:1.27 is allowed",
    );
    assert_eq!(nginx["org"], "corp");
    expect(
        one(
            Some(MEMBER),
            "docker.io/someuser/custom-image:1",
            "manifest",
        ),
        "deny",
        "category_not_allowed",
        Some("community"),
        COMMUNITY_DENIED,
    );
    expect(
        one(Some(MEMBER), "docker.io/bitnami/redis:7", "manifest"),
        "deny",
        "category_not_allowed",
        Some("verified_publisher"),
        VERIFIED_DENIED,
    );
    expect(
        one(Some(MEMBER), "ghcr.io/corp/tool:1", "manifest"),
        "deny",
        "registry_not_allowed",
        None,
        GHCR_DENIED,
    );
    expect(
        one(Some(OWNER), "docker.io/someuser/custom-image:1", "manifest"),
        "allow",
        "owner_bypass",
        Some("community"),
        "owner bypass: allowed despite: image access denied: community images not allowed",
    );
    let anonymous = one(None, "docker.io/library/nginx:1.27", "manifest");
    expect(
        anonymous,
        "deny",
        "sign_in_required",
        None,
        SIGN_IN_REQUIRED,
    );
    expect(
        one(
            Some(MEMBER),
            &format!("docker.io/someuser/custom-image@{layer}"),
            "blob",
        ),
        "deny",
        "category_not_allowed",
        Some("community"),
        COMMUNITY_DENIED,
    );
    assert_eq!(events.len(), 7, "nothing else was recorded: {events:#?}");
}

/// Asserts that the OCI layout in `out` holds `image`'s manifest, config and
/// layers byte for byte, as pushed to the upstream.
#[track_caller]
fn assert_same_blobs(out: &Scratch, image: &Image) {
    let mut digests = image.layer_digests.clone();
    digests.extend([image.config_digest.clone(), image.digest.clone()]);
    for digest in digests {
        let hex = &digest["sha256:".len()..];
        let copied = std::fs::read(out.path().join("blobs/sha256").join(hex))
            .unwrap_or_else(|e| panic!("blob {digest} was not copied: {e}"));
        assert!(
            copied == std::fs::read(image.blob(&digest)).unwrap(),
            "blob {digest} differs from the upstream's"
        );
    }
}

/// The registry's log once a line of it matches `line` (it writes after
/// answering); fails the test after 10 s.
#[track_caller]
fn logged(registry: &Registry, line: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = registry.log();
        if log.lines().any(&line) {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "no such line in the registry's log after 10 s:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What dockerd 20.10 prints for a pull the registry refuses with `DENIED`
/// (moby's distribution/errors.go): its own sentence, then the registry's
/// error. Only the first error: dockerd logs the others ("Ignoring extra
/// error returned from registry"), so the access request link is not shown.
fn dockerd_denied(reference: &str, message: &str) -> String {
    let repository = reference.rsplit_once(':').unwrap().0;
    format!(
        "pull access denied for {repository}, repository does not exist or may require 'docker login': denied: {message}"
    )
}

#[test]
fn the_real_docker_engine_signs_in_pulls_builds_and_composes_only_what_the_policy_allows() {
    let w = World::new();
    let machine_etc_docker = etc_docker();
    let mut engine = Dockerd::start();
    assert!(
        engine.runs_its_own_containerd(),
        "dockerd started no containerd of its own:\n{}",
        engine.log()
    );
    let host = w.gateway.host_port();
    engine.trust(&host, &w.ca.ca());

    // Unlike podman's Docker API, dockerd shows why a login was refused.
    let password = engine.login(&host, MEMBER, MEMBER_PASSWORD).failure();
    assert!(
        password.stderr.contains(&format!(
            "Error response from daemon: Get \"https://{host}/v2/\": unauthorized: {PASSWORD_REFUSED}"
        )),
        "{password}"
    );
    let login = engine.login(&host, MEMBER, &w.member_pat).success();
    assert!(login.stdout.contains("Login Succeeded"), "{login}");
    let config = std::fs::read_to_string(engine.docker_config().join("config.json")).unwrap();
    assert!(config.contains(&host), "docker login wrote {config}");

    let mut shown = vec![("docker login with the password".to_owned(), password)];
    for img in [Img::Nginx, Img::App] {
        let pull = engine.docker(&["pull", &w.reference(img)]).success();
        let digests = engine
            .docker(&[
                "image",
                "inspect",
                "--format",
                "{{json .RepoDigests}}",
                &w.reference(img),
            ])
            .success();
        assert!(
            digests.stdout.contains(&w.image(img).digest),
            "{img:?}: {digests}"
        );
        shown.push((format!("docker pull {img:?}"), pull));
    }
    for (img, message) in Img::DENIED {
        let reference = w.reference(img);
        let pull = engine.docker(&["pull", &reference]).failure();
        let expected = format!(
            "Error response from daemon: {}",
            dockerd_denied(&reference, message)
        );
        assert_eq!(pull.stderr.trim(), expected, "{pull}");
        engine.docker(&["image", "inspect", &reference]).failure();
        shown.push((format!("docker pull {img:?}"), pull));
    }

    // The classic builder pulls FROM itself, and stops at a refusal in words.
    let allowed = engine
        .build(
            &format!(
                "FROM {}\nLABEL dev.imagegate.e2e.built=yes\n",
                w.reference(Img::App)
            ),
            "e2e-allowed:1",
        )
        .success();
    let label = engine
        .docker(&[
            "image",
            "inspect",
            "--format",
            "{{index .Config.Labels \"dev.imagegate.e2e.built\"}}",
            "e2e-allowed:1",
        ])
        .success();
    assert_eq!(label.stdout.trim(), "yes", "{allowed}");
    let community = w.reference(Img::Community);
    let build = engine
        .build(
            &format!("FROM {community}\nLABEL dev.imagegate.e2e.built=yes\n"),
            "e2e-denied:1",
        )
        .failure();
    assert!(
        build
            .stdout
            .contains(&format!("Step 1/2 : FROM {community}")),
        "{build}"
    );
    assert_eq!(
        build.stderr.trim(),
        dockerd_denied(&community, COMMUNITY_DENIED),
        "{build}"
    );
    engine
        .docker(&["image", "inspect", "e2e-denied:1"])
        .failure();
    shown.push(("docker build FROM Community".to_owned(), build));

    // docker-compose pulls the allowed service, and fails naming the refused one.
    let compose = format!(
        "services:\n  web:\n    image: {}\n  tool:\n    image: {community}\n",
        w.reference(Img::Nginx)
    );
    let pull = engine.compose(&compose, &["pull"]).failure();
    assert!(
        pull.stderr.contains(&format!(
            "ERROR: for tool  {}",
            dockerd_denied(&community, COMMUNITY_DENIED)
        )),
        "{pull}"
    );
    engine
        .docker(&["image", "inspect", &w.reference(Img::Nginx)])
        .success();
    engine.docker(&["image", "inspect", &community]).failure();
    shown.push(("docker-compose pull".to_owned(), pull));

    // Stopped, with nothing of it left running, and /etc/docker as it was:
    // dockerd wrote its key into its private one.
    let private = engine.etc_docker();
    engine.stop();
    assert!(
        private.join("key.json").exists(),
        "dockerd ran with its own /etc/docker"
    );
    assert_eq!(
        etc_docker(),
        machine_etc_docker,
        "the machine's /etc/docker is untouched"
    );
    let shown: Vec<(&str, &Run)> = shown.iter().map(|(w, r)| (w.as_str(), r)).collect();
    eprintln!(
        "  dockerd ran with --storage-driver {}",
        engine.storage_driver()
    );
    w.report("dockerd", &shown);
}

/// What the machine's /etc/docker holds (names and sizes), to compare.
fn etc_docker() -> Vec<(String, u64)> {
    let mut entries: Vec<(String, u64)> = std::fs::read_dir("/etc/docker")
        .map(|dir| {
            dir.flatten()
                .map(|e| {
                    let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                    (e.file_name().to_string_lossy().into_owned(), size)
                })
                .collect()
        })
        .unwrap_or_default();
    entries.sort();
    entries
}
