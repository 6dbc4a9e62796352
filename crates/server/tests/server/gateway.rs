//! The registry gateway in process: what is refused before any upstream is
//! called, and in which words. The upstream here is a TCP listener that counts
//! connections and answers none (a real upstream registry is in tests/e2e):
//! a refused request must leave the count at zero. A hostile upstream (a test
//! double) names token realms and redirects where the gateway must not go.

use std::net::{IpAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use imagegate_server::gateway::caller::Callers;
use imagegate_server::gateway::upstream::{UpstreamConfig, Upstreams};
use imagegate_server::gateway::{self, Gateway};
use imagegate_server::identity::Identity;
use imagegate_server::metrics::Metrics;
use imagegate_server::store::{Role, SqliteStore, Store};
use imagegate_server::token::{Signer, TokenService};
use serde_json::Value;
use tower::ServiceExt;

const SERVICE: &str = "gateway.corp.example";
const DIGEST: &str = "sha256:1795291ea111c1c1ab67ad0d2ea501b68c31dc05d931cd5a45c0abe420578d4a";

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

struct Setup {
    app: Router,
    gateway: Arc<Gateway>,
    tokens: Arc<TokenService>,
    upstream_connections: Arc<AtomicUsize>,
    identity: Identity,
    store: Arc<dyn Store>,
    audit: Option<imagegate_server::audit::AuditWriter>,
    alice: String,
    olga: String,
    /// The data directory (the store's file, the signing key).
    dir: std::path::PathBuf,
}

/// A listener that accepts and drops connections, counting them.
fn counting_upstream() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            c.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (url, count)
}

/// A faulty upstream (a test double: a real registry does not misbehave on
/// cue): answers every request with `head` and `body`, then closes.
fn faulty_upstream(head: &'static str, body: &'static [u8]) -> (String, Arc<AtomicUsize>) {
    canned_upstream(head.to_owned(), body.to_vec())
}

/// [`faulty_upstream`] with an answer made at run time.
fn canned_upstream(head: String, body: Vec<u8>) -> (String, Arc<AtomicUsize>) {
    use std::io::{Read, Write};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            c.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    (url, count)
}

fn setup_with(allow_anonymous: bool) -> Setup {
    setup_upstream(allow_anonymous, counting_upstream())
}

fn setup_upstream(allow_anonymous: bool, upstream: (String, Arc<AtomicUsize>)) -> Setup {
    setup_audited(allow_anonymous, upstream, false)
}

/// A gateway whose doors refuse what they cannot record when `required`
/// (`--audit-required`).
fn setup_audited(
    allow_anonymous: bool,
    upstream: (String, Arc<AtomicUsize>),
    required: bool,
) -> Setup {
    let (url, upstream_connections) = upstream;
    let configs = ["docker.io", "ghcr.io"]
        .map(|host| UpstreamConfig {
            host: host.into(),
            url: url.clone(),
            credentials: None,
            auth_hosts: vec![],
        })
        .to_vec();
    setup_configs_audited(allow_anonymous, configs, upstream_connections, required)
}

fn setup_configs(
    allow_anonymous: bool,
    configs: Vec<UpstreamConfig>,
    upstream_connections: Arc<AtomicUsize>,
) -> Setup {
    setup_configs_audited(allow_anonymous, configs, upstream_connections, false)
}

fn setup_configs_audited(
    allow_anonymous: bool,
    configs: Vec<UpstreamConfig>,
    upstream_connections: Arc<AtomicUsize>,
    required: bool,
) -> Setup {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap();
    let dir = std::env::temp_dir().join(format!("imagegate-gateway-{}", u64::from_le_bytes(b)));
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir).unwrap());
    let identity = Identity::new(store.clone());
    identity.create_org("corp", &["corp".to_owned()]).unwrap();
    identity.set_policy("corp", CORP).unwrap();
    for (user, role) in [("alice", Role::Member), ("olga", Role::Owner)] {
        identity.create_user(user, "correct horse battery").unwrap();
        store.set_member("corp", user, role).unwrap();
    }
    let alice = identity.create_token("alice", "t", None).unwrap().secret;
    let olga = identity.create_token("olga", "t", None).unwrap().secret;
    let tokens = Arc::new(
        TokenService::new(
            identity.clone(),
            Signer::load_or_create(&dir).unwrap(),
            SERVICE,
        )
        .with_anonymous_pulls(allow_anonymous),
    );
    let metrics = Arc::new(Metrics::new());
    let (auditor, audit) =
        imagegate_server::audit::Auditor::start(store.clone(), metrics.clone(), 1000);
    let gw = Gateway {
        audit: auditor.with_required(required),
        callers: Arc::new(Callers::new(
            tokens.clone(),
            identity.clone(),
            allow_anonymous.then(|| "corp".to_owned()),
            allow_anonymous,
            metrics.clone(),
        )),
        upstreams: Upstreams::new(configs).unwrap(),
        public_url: Some(format!("https://{SERVICE}")),
        tls: true,
        metrics,
    };
    let gateway = Arc::new(gw);
    Setup {
        app: gateway::routes(gateway.clone()),
        gateway,
        tokens,
        upstream_connections,
        identity,
        store,
        audit: Some(audit),
        alice,
        olga,
        dir,
    }
}

fn setup() -> Setup {
    setup_with(false)
}

impl Setup {
    fn token(&self, user: Option<(&str, &str)>, repository: &str) -> String {
        self.tokens
            .issue(user, None, &[format!("repository:{repository}:pull")])
            .unwrap()
            .token
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
    ) -> (StatusCode, HeaderMap, Value) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            request = request.header("authorization", format!("Bearer {t}"));
        }
        let response = self
            .app
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            headers,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    fn upstream_calls(&self) -> usize {
        self.upstream_connections.load(Ordering::SeqCst)
    }
}

fn error_of(body: &Value) -> (&str, &str) {
    (
        body["errors"][0]["code"].as_str().unwrap_or_default(),
        body["errors"][0]["message"].as_str().unwrap_or_default(),
    )
}

#[tokio::test]
async fn refused_pulls_say_why_and_never_reach_the_upstream() {
    let s = setup();
    let cases = [
        (
            "someuser/custom-image",
            "manifests/latest",
            "image access denied: community images not allowed",
        ),
        (
            "bitnami/redis",
            "manifests/7",
            "image access denied: verified publisher images not allowed",
        ),
        (
            "ghcr.io/corp/app",
            "manifests/1",
            "registry access to ghcr.io is not allowed",
        ),
        (
            "someuser/custom-image",
            &format!("blobs/{DIGEST}"),
            "image access denied: community images not allowed",
        ),
        (
            "someuser/custom-image",
            &format!("manifests/{DIGEST}"),
            "image access denied: community images not allowed",
        ),
        (
            "someuser/custom-image",
            "tags/list",
            "image access denied: community images not allowed",
        ),
    ];
    for (repo, rest, message) in cases {
        let token = s.token(Some(("alice", &s.alice)), repo);
        let path = format!("/v2/{repo}/{rest}");
        let (status, headers, body) = s.send(Method::GET, &path, Some(&token)).await;
        if rest == "tags/list" {
            // A 401, the status skopeo 1.9 reads a tag list's error body
            // for, with the challenge for the repository.
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
            let challenge = headers[header::WWW_AUTHENTICATE].to_str().unwrap();
            assert!(
                challenge.ends_with(&format!(r#",scope="repository:{repo}:pull""#)),
                "{challenge}"
            );
        } else {
            assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
        }
        assert_eq!(error_of(&body), ("DENIED", message), "{path}");
        // A member is told where to ask for it, in a second error.
        // Only the manifest refusal, the one clients print, links.
        let image = if repo.starts_with("ghcr.io") {
            "ghcr.io/corp/app:1".to_owned()
        } else if let Some(digest) = rest.strip_prefix("manifests/sha256") {
            format!("docker.io/{repo}@sha256{digest}")
        } else if let Some(tag) = rest.strip_prefix("manifests/") {
            format!("docker.io/{repo}:{tag}")
        } else {
            String::new()
        };
        if image.is_empty() {
            assert_eq!(body["errors"].as_array().unwrap().len(), 1, "{path}");
        } else {
            let ask = format!(
                "https://gateway.corp.example/console/orgs/corp/access-requests/new?image={image}"
            );
            assert_eq!(body["errors"][1]["code"], "DENIED", "{path}: {body}");
            assert_eq!(
                body["errors"][1]["message"],
                format!("ask for access: {ask}"),
                "{path}"
            );
            assert_eq!(
                body["errors"][1]["detail"]["request_access"],
                ask.as_str(),
                "{path}"
            );
        }
        assert_eq!(headers["docker-distribution-api-version"], "registry/2.0");
        let (head, _, _) = s.send(Method::HEAD, &path, Some(&token)).await;
        assert_eq!(head, status, "HEAD {path} gets the same status");
    }
    assert_eq!(
        s.upstream_calls(),
        0,
        "a refused pull makes no upstream request"
    );

    // One audit event per attempt (GET and HEAD), with who, what and why.
    let mut s = s;
    s.audit.take().unwrap().close().await;
    let events = s
        .store
        .audit_events(&imagegate_server::store::AuditFilter::default())
        .unwrap();
    assert_eq!(events.len(), 2 * cases.len());
    let first = &events[0];
    assert_eq!(first.door, "gateway");
    assert_eq!(first.user.as_deref(), Some("alice"));
    assert_eq!(first.org.as_deref(), Some("corp"));
    assert_eq!(first.image, "docker.io/someuser/custom-image:latest");
    assert_eq!(first.input, "someuser/custom-image:latest");
    assert_eq!(first.category.as_deref(), Some("community"));
    assert_eq!(
        (first.decision.as_str(), first.reason.as_str()),
        ("deny", "category_not_allowed")
    );
    assert_eq!(first.path.as_deref(), Some("manifest"));
    assert!(events.iter().all(|e| e.decision == "deny"));
}

#[tokio::test]
async fn an_owner_bypasses_image_access_and_reaches_the_upstream() {
    let s = setup();
    let token = s.token(Some(("olga", &s.olga)), "someuser/custom-image");
    let (status, _, body) = s
        .send(
            Method::GET,
            "/v2/someuser/custom-image/manifests/latest",
            Some(&token),
        )
        .await;
    // The counting upstream drops the connection: a clean registry error.
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(
        error_of(&body),
        (
            "UNAVAILABLE",
            "upstream docker.io is unavailable; try again later"
        )
    );
    assert!(s.upstream_calls() >= 1);
    // Recorded as the bypass it is, not as a plain allow.
    let events = s
        .store
        .audit_events(&imagegate_server::store::AuditFilter::default())
        .unwrap();
    let e = events.last().unwrap();
    assert_eq!(
        (
            e.user.as_deref(),
            e.decision.as_str(),
            e.reason.as_str(),
            e.message.as_str()
        ),
        (
            Some("olga"),
            "allow",
            "owner_bypass",
            "owner bypass: allowed despite: image access denied: community images not allowed"
        )
    );
    // Owners do not bypass registry access.
    let token = s.token(Some(("olga", &s.olga)), "ghcr.io/corp/app");
    let (status, _, body) = s
        .send(
            Method::GET,
            "/v2/ghcr.io/corp/app/manifests/1",
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        error_of(&body).1,
        "registry access to ghcr.io is not allowed"
    );
}

#[tokio::test]
async fn callers_without_a_usable_token_are_challenged() {
    let s = setup();
    let (status, headers, body) = s
        .send(Method::GET, "/v2/library/nginx/manifests/latest", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_of(&body).0, "UNAUTHORIZED");
    assert_eq!(
        headers["www-authenticate"],
        "Bearer realm=\"https://gateway.corp.example/token\",service=\"gateway.corp.example\",scope=\"repository:library/nginx:pull\""
    );
    let (status, headers, _) = s.send(Method::GET, "/v2/", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        headers["www-authenticate"],
        "Bearer realm=\"https://gateway.corp.example/token\",service=\"gateway.corp.example\""
    );
    let alice = s.token(Some(("alice", &s.alice)), "library/nginx");
    let (status, _, _) = s.send(Method::GET, "/v2/", Some(&alice)).await;
    assert_eq!(status, StatusCode::OK);

    // Anonymous: sign-in required, in words.
    let anonymous = s.token(None, "library/nginx");
    let (status, headers, body) = s
        .send(
            Method::GET,
            "/v2/library/nginx/manifests/latest",
            Some(&anonymous),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_of(&body), ("UNAUTHORIZED", "sign-in required"));
    assert!(headers.contains_key("www-authenticate"));

    // A token for one repository does not open another.
    let (status, _, body) = s
        .send(Method::GET, "/v2/corp/app/manifests/latest", Some(&alice))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        error_of(&body).1,
        "the token does not grant pull access to corp/app"
    );

    // Tampered and foreign tokens.
    let mut tampered = alice.clone();
    tampered.pop();
    tampered.push(if alice.ends_with('A') { 'B' } else { 'A' });
    for bad in [tampered.as_str(), "not-a-jwt", "a.b.c"] {
        let (status, _, body) = s
            .send(Method::GET, "/v2/library/nginx/manifests/latest", Some(bad))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{bad}");
        assert!(error_of(&body).1.starts_with("invalid token: "), "{body}");
    }
    assert_eq!(s.upstream_calls(), 0);
}

#[tokio::test]
async fn anonymous_pulls_when_allowed_get_the_default_organisations_policy() {
    let s = setup_with(true);
    let anonymous = s.token(None, "someuser/custom-image");
    let (status, _, body) = s
        .send(
            Method::GET,
            "/v2/someuser/custom-image/manifests/latest",
            Some(&anonymous),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        error_of(&body).1,
        "image access denied: community images not allowed"
    );
    assert_eq!(
        body["errors"].as_array().unwrap().len(),
        1,
        "nobody to file an access request as: no link"
    );
    let anonymous = s.token(None, "library/nginx");
    let (status, _, _) = s
        .send(
            Method::GET,
            "/v2/library/nginx/manifests/latest",
            Some(&anonymous),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_GATEWAY,
        "allowed, so the upstream is asked"
    );
}

#[tokio::test]
async fn writes_catalog_mounts_and_hostile_paths_are_answered_in_the_registry_format() {
    let s = setup();
    let alice = s.token(Some(("alice", &s.alice)), "library/nginx");
    let cases: [(Method, &str, StatusCode, &str); 9] = [
        (
            Method::PUT,
            "/v2/library/nginx/manifests/latest",
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
        ),
        (
            Method::DELETE,
            &format!("/v2/library/nginx/blobs/{DIGEST}"),
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
        ),
        (
            Method::POST,
            "/v2/library/nginx/blobs/uploads/",
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
        ),
        (
            Method::POST,
            &format!("/v2/library/nginx/blobs/uploads/?mount={DIGEST}&from=someuser/x"),
            StatusCode::FORBIDDEN,
            "DENIED",
        ),
        (Method::GET, "/v2/_catalog", StatusCode::FORBIDDEN, "DENIED"),
        (
            Method::GET,
            "/v2/library/%2e%2e/manifests/latest",
            StatusCode::BAD_REQUEST,
            "NAME_INVALID",
        ),
        (
            Method::GET,
            "/v2/library%2Fnginx/manifests/latest",
            StatusCode::BAD_REQUEST,
            "NAME_INVALID",
        ),
        (
            Method::GET,
            "/v2/Library/nginx/manifests/latest",
            StatusCode::BAD_REQUEST,
            "NAME_INVALID",
        ),
        (
            Method::GET,
            "/v2/library/nginx/blobs/sha256:abc",
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
        ),
    ];
    for (method, path, status, code) in cases {
        let (got, _, body) = s.send(method.clone(), path, Some(&alice)).await;
        assert_eq!(
            (got, error_of(&body).0),
            (status, code),
            "{method} {path}: {body}"
        );
    }
    assert_eq!(s.upstream_calls(), 0);
}

#[tokio::test]
async fn the_ns_parameter_is_a_lookup_key_never_an_address() {
    let s = setup();
    let token = s.token(Some(("alice", &s.alice)), "someuser/custom-image");
    let (status, _, body) = s
        .send(
            Method::GET,
            "/v2/someuser/custom-image/manifests/latest?ns=docker.io",
            Some(&token),
        )
        .await;
    assert_eq!(
        (status, error_of(&body).1),
        (
            StatusCode::FORBIDDEN,
            "image access denied: community images not allowed"
        )
    );
    for ns in ["evil.example", "127.0.0.1:1", "http://127.0.0.1:1", ""] {
        let path = format!(
            "/v2/someuser/custom-image/manifests/latest?ns={}",
            ns.replace(':', "%3A").replace('/', "%2F")
        );
        let (status, _, body) = s.send(Method::GET, &path, Some(&token)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{ns}: {body}");
        assert_eq!(error_of(&body).0, "NAME_UNKNOWN");
    }
    // ns=ghcr.io makes the repository ghcr.io's, and the policy says no.
    let token = s.token(Some(("alice", &s.alice)), "corp/app");
    let (status, _, body) = s
        .send(
            Method::GET,
            "/v2/corp/app/manifests/1?ns=ghcr.io",
            Some(&token),
        )
        .await;
    assert_eq!(
        (status, error_of(&body).1),
        (
            StatusCode::FORBIDDEN,
            "registry access to ghcr.io is not allowed"
        )
    );
    assert_eq!(s.upstream_calls(), 0);
}

#[tokio::test]
async fn policy_and_membership_changes_apply_within_a_second() {
    let s = setup();
    let token = s.token(Some(("alice", &s.alice)), "someuser/custom-image");
    let path = "/v2/someuser/custom-image/manifests/latest";
    let (status, _, _) = s.send(Method::GET, path, Some(&token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    s.identity
        .set_policy(
            "corp",
            &CORP.replace("allow: [official]", "allow: [official, community]"),
        )
        .unwrap();
    tokio::time::sleep(
        imagegate_server::gateway::caller::REFRESH + std::time::Duration::from_millis(100),
    )
    .await;
    let (status, _, _) = s.send(Method::GET, path, Some(&token)).await;
    assert_eq!(
        status,
        StatusCode::BAD_GATEWAY,
        "now allowed: the upstream is asked"
    );
}

#[tokio::test]
async fn an_owner_allowing_community_images_through_the_api_opens_the_gateway_within_a_second() {
    let s = setup();
    let token = s.token(Some(("alice", &s.alice)), "someuser/custom-image");
    let path = "/v2/someuser/custom-image/manifests/latest";
    let (status, _, body) = s.send(Method::GET, path, Some(&token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        error_of(&body).1,
        "image access denied: community images not allowed"
    );
    let api = imagegate_server::api::routes(Arc::new(imagegate_server::api::Api::new(
        s.identity.clone(),
    )));
    let update = serde_json::json!({"enabled": true, "categories": {"official": true, "verified_publisher": true, "community": true}});
    let response = api
        .oneshot(
            Request::put("/api/v1/orgs/corp/image-access")
                .header("authorization", format!("Bearer {}", s.olga))
                .header("content-type", "application/json")
                .body(Body::from(update.to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    tokio::time::sleep(
        imagegate_server::gateway::caller::REFRESH + std::time::Duration::from_millis(100),
    )
    .await;
    let (status, _, _) = s.send(Method::GET, path, Some(&token)).await;
    assert_eq!(
        status,
        StatusCode::BAD_GATEWAY,
        "now allowed: the upstream is asked"
    );
}

#[tokio::test]
async fn warn_mode_allows_and_says_what_would_have_been_refused() {
    let s = setup();
    s.identity
        .set_policy("corp", &CORP.replace("spec:\n", "spec:\n  mode: warn\n"))
        .unwrap();
    let token = s.token(Some(("alice", &s.alice)), "someuser/custom-image");
    let (_, headers, _) = s
        .send(
            Method::GET,
            "/v2/someuser/custom-image/manifests/latest",
            Some(&token),
        )
        .await;
    assert_eq!(
        headers["warning"],
        "299 - \"image access denied: community images not allowed\""
    );
    assert!(s.upstream_calls() >= 1);
}

#[tokio::test]
async fn an_upstream_resetting_mid_blob_cuts_the_stream_and_the_gateway_stays_up() {
    let s = setup_upstream(
        false,
        faulty_upstream(
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n",
            b"only ten b",
        ),
    );
    let token = s.token(Some(("alice", &s.alice)), "library/nginx");
    let path = format!("/v2/library/nginx/blobs/{DIGEST}");
    for _ in 0..2 {
        let request = Request::get(&path)
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        let response = s.app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-length"], "1000");
        let body = response.into_body().collect().await;
        assert!(
            body.is_err(),
            "a cut upstream stream must reach the client as a cut stream"
        );
    }
    assert_eq!(s.upstream_calls(), 2);
}

#[tokio::test]
async fn an_upstream_that_refuses_the_gateway_is_a_denial_not_a_challenge() {
    let s = setup_upstream(
        false,
        faulty_upstream(
            "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            b"",
        ),
    );
    let token = s.token(Some(("alice", &s.alice)), "library/nginx");
    let (status, headers, body) = s
        .send(Method::GET, "/v2/library/nginx/manifests/1", Some(&token))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        !headers.contains_key("www-authenticate"),
        "the upstream's challenge is not the client's"
    );
    assert_eq!(
        error_of(&body),
        (
            "DENIED",
            "upstream docker.io refused access to library/nginx (HTTP 401)"
        )
    );
}

#[tokio::test]
async fn blob_redirects_are_followed_by_the_gateway_not_the_client() {
    // Registries with object storage answer blob GETs with a redirect.
    let (storage, storage_hits) = canned_upstream(
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 11\r\nConnection: close\r\n\r\n".to_owned(),
        b"layer bytes".to_vec(),
    );
    let s = setup_upstream(
        false,
        canned_upstream(
            format!(
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: {storage}/bucket/blob?sig=x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            ),
            Vec::new(),
        ),
    );
    let token = s.token(Some(("alice", &s.alice)), "library/nginx");
    let request = Request::get(format!("/v2/library/nginx/blobs/{DIGEST}"))
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let response = s.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!response.headers().contains_key("location"));
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"layer bytes");
    assert_eq!(
        (s.upstream_calls(), storage_hits.load(Ordering::SeqCst)),
        (1, 1)
    );
}

#[tokio::test]
async fn a_manifest_that_does_not_match_the_digest_asked_for_is_refused() {
    let body =
        b"{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\"}";
    let s = setup_upstream(
        false,
        canned_upstream(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            ),
            body.to_vec(),
        ),
    );
    let token = s.token(Some(("alice", &s.alice)), "library/nginx");
    let (status, _, answer) = s
        .send(
            Method::GET,
            &format!("/v2/library/nginx/manifests/{DIGEST}"),
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        error_of(&answer),
        (
            "MANIFEST_INVALID",
            &*format!("upstream docker.io sent a manifest that does not match {DIGEST}")
        )
    );
    // By tag there is no digest to check: the same manifest is relayed.
    let (status, _, answer) = s
        .send(Method::GET, "/v2/library/nginx/manifests/1", Some(&token))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["schemaVersion"], 2);
}

const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// A hostile upstream (a test double: a real registry does not turn on the
/// gateway that pulls from it). It listens on `ip`, keeps the head of every
/// request it is sent, and answers each with the whole HTTP/1.1 response
/// `answer` makes of that head.
struct Hostile {
    url: String,
    port: u16,
    heads: Arc<Mutex<Vec<String>>>,
}

impl Hostile {
    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

fn hostile_upstream(ip: IpAddr, answer: impl Fn(&str) -> String + Send + 'static) -> Hostile {
    use std::io::{BufRead, BufReader, Write};
    let listener = TcpListener::bind((ip, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let kept = heads.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = String::new();
            {
                let mut reader = BufReader::new(&stream);
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                    head.push_str(&line);
                    line.clear();
                }
            }
            let response = answer(&head);
            kept.lock().unwrap().push(head);
            let _ = stream.write_all(response.as_bytes());
        }
    });
    Hostile {
        url: format!("http://{addr}"),
        port: addr.port(),
        heads,
    }
}

/// The path of a request head's request line.
fn path_of(head: &str) -> &str {
    head.split(' ').nth(1).unwrap_or_default()
}

/// Whether a request head has a header line starting `line` (any case).
fn has_header(head: &str, line: &str) -> bool {
    head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with(&line.to_ascii_lowercase())
    })
}

fn redirect_to(location: &str) -> String {
    format!(
        "HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
}

fn blob_answer(bytes: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{bytes}",
        bytes.len()
    )
}

fn challenge_answer(value: &str) -> String {
    format!(
        "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: {value}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
}

fn token_answer(token: &str) -> String {
    let body = format!("{{\"token\":\"{token}\",\"expires_in\":300}}");
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// This machine's address on its default route: an upstream there is not
/// on loopback. Connecting a UDP socket sends nothing; it only picks the
/// source address.
fn non_loopback_address() -> IpAddr {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    socket
        .connect("203.0.113.1:9")
        .ok()
        .and_then(|()| socket.local_addr().ok())
        .map(|a| a.ip())
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
        .expect("these tests need a non-loopback IPv4 address with a default route; none found")
}

/// The gateway with the hostile upstream at `url` as Docker Hub.
fn setup_hostile(url: &str, credentials: Option<(&str, &str)>, auth_hosts: Vec<String>) -> Setup {
    setup_configs(
        false,
        vec![UpstreamConfig {
            host: "docker.io".into(),
            url: url.into(),
            credentials: credentials.map(|(u, p)| (u.into(), p.into())),
            auth_hosts,
        }],
        Arc::new(AtomicUsize::new(0)),
    )
}

impl Setup {
    /// Alice pulls a blob of `repository`: the status and the body.
    async fn pull_blob(&self, repository: &str) -> (StatusCode, String) {
        let token = self.token(Some(("alice", &self.alice)), repository);
        let request = Request::get(format!("/v2/{repository}/blobs/{DIGEST}"))
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Serves the server's own routes (`/metrics` among them) and this
    /// gateway on `listener`, a real one, and tells the upstreams where the
    /// gateway listens.
    fn serve_on(&self, listener: tokio::net::TcpListener) {
        self.gateway
            .upstreams
            .set_listeners([listener.local_addr().unwrap()]);
        let app = imagegate_server::router(
            imagegate_server::state::AppState::fixed(imagegate_core::Policy::default(), 1 << 20),
            Arc::new(AtomicBool::new(true)),
        )
        .merge(self.app.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
    }
}

/// The registry error a refused redirect is answered with: 502 `DENIED`.
fn assert_refused(answer: &(StatusCode, String), message: &str) {
    let (status, body) = answer;
    let body: Value = serde_json::from_str(body).unwrap_or(Value::String(body.clone()));
    assert_eq!(
        (*status, error_of(&body)),
        (StatusCode::BAD_GATEWAY, ("DENIED", message)),
        "{body}"
    );
}

#[tokio::test]
async fn upstream_credentials_are_not_sent_to_a_token_realm_on_another_port() {
    let realm = hostile_upstream(LOOPBACK, |_| token_answer("anonymous"));
    let challenge = format!("Bearer realm=\"{}/token\",service=\"hostile\"", realm.url);
    let upstream = hostile_upstream(LOOPBACK, move |head| {
        if has_header(head, "authorization: bearer anonymous") {
            blob_answer("layer bytes")
        } else {
            challenge_answer(&challenge)
        }
    });
    let s = setup_hostile(&upstream.url, Some(("corp-bot", "secret")), vec![]);
    let (status, body) = s.pull_blob("library/nginx").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "layer bytes"));
    let asked = realm.heads();
    assert_eq!(asked.len(), 1, "the realm is asked, anonymously");
    assert!(
        !has_header(&asked[0], "authorization:"),
        "a realm on another port of the upstream's host got the credentials:\n{}",
        asked[0]
    );
}

#[tokio::test]
async fn an_auth_host_receives_the_credentials_only_on_the_port_it_is_configured_with() {
    let realm = hostile_upstream(LOOPBACK, |_| token_answer("t"));
    let challenge = format!("Bearer realm=\"{}/token\",service=\"hostile\"", realm.url);
    let upstream = hostile_upstream(LOOPBACK, move |head| {
        if has_header(head, "authorization: bearer t") {
            blob_answer("layer bytes")
        } else {
            challenge_answer(&challenge)
        }
    });
    // base64("corp-bot:secret")
    let basic = "authorization: basic Y29ycC1ib3Q6c2VjcmV0";
    let cases = [
        (format!("127.0.0.1:{}", realm.port), true),
        ("127.0.0.1".to_owned(), false),
        ("127.0.0.1:80".to_owned(), false),
    ];
    for (i, (auth_host, receives)) in cases.iter().enumerate() {
        let s = setup_hostile(
            &upstream.url,
            Some(("corp-bot", "secret")),
            vec![auth_host.clone()],
        );
        let (status, _) = s.pull_blob("library/nginx").await;
        assert_eq!(status, StatusCode::OK, "authHosts: [{auth_host}]");
        let head = &realm.heads()[i];
        assert_eq!(
            has_header(head, basic),
            *receives,
            "authHosts: [{auth_host}], realm on port {}:\n{head}",
            realm.port
        );
    }
}

#[tokio::test]
async fn a_blob_redirect_to_the_gateways_own_metrics_is_refused_in_registry_words() {
    let listener = tokio::net::TcpListener::bind((LOOPBACK, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // The upstream is on loopback too: loopback is not what refuses here.
    let upstream = hostile_upstream(LOOPBACK, move |head| {
        if path_of(head).starts_with("/v2/library/by-name/") {
            redirect_to(&format!("http://localhost:{port}/metrics"))
        } else {
            redirect_to(&format!("http://127.0.0.1:{port}/metrics"))
        }
    });
    let s = setup_hostile(&upstream.url, None, vec![]);
    s.serve_on(listener);
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.ends_with("# EOF\n"), "a real /metrics is there");

    for (repository, target) in [
        ("library/nginx", format!("http://127.0.0.1:{port}/metrics")),
        (
            "library/by-name",
            format!("http://localhost:{port}/metrics"),
        ),
    ] {
        let answer = s.pull_blob(repository).await;
        assert!(!answer.1.contains("# EOF"), "metrics relayed: {}", answer.1);
        assert_refused(
            &answer,
            &format!(
                "upstream docker.io redirected to {target}, which the gateway does not follow: it is the gateway's own listener 127.0.0.1:{port}"
            ),
        );
    }
}

#[tokio::test]
async fn a_blob_redirect_to_any_address_of_a_gateway_listening_on_all_of_them_is_refused() {
    let here = non_loopback_address();
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let upstream = hostile_upstream(here, move |head| {
        if path_of(head).starts_with("/v2/library/loopback/") {
            redirect_to(&format!("http://127.0.0.1:{port}/metrics"))
        } else {
            redirect_to(&format!("http://{here}:{port}/metrics"))
        }
    });
    let s = setup_hostile(&upstream.url, None, vec![]);
    s.serve_on(listener);
    for (repository, target) in [
        ("library/nginx", format!("http://{here}:{port}/metrics")),
        (
            "library/loopback",
            format!("http://127.0.0.1:{port}/metrics"),
        ),
    ] {
        let answer = s.pull_blob(repository).await;
        assert!(!answer.1.contains("# EOF"), "metrics relayed: {}", answer.1);
        assert_refused(
            &answer,
            &format!(
                "upstream docker.io redirected to {target}, which the gateway does not follow: it is the gateway's own listener 0.0.0.0:{port}"
            ),
        );
    }
}

#[tokio::test]
async fn a_blob_redirect_to_loopback_from_an_upstream_not_on_loopback_is_refused() {
    let storage = hostile_upstream(LOOPBACK, |_| blob_answer("loopback secrets"));
    let port = storage.port;
    let upstream = hostile_upstream(non_loopback_address(), move |head| {
        let path = path_of(head);
        if path.starts_with("/v2/library/by-name/") {
            redirect_to(&format!("http://localhost:{port}/blob"))
        } else if path.starts_with("/v2/library/mapped/") {
            redirect_to(&format!("http://[::ffff:127.0.0.1]:{port}/blob"))
        } else {
            redirect_to(&format!("http://127.0.0.1:{port}/blob?X-Amz-Signature=s"))
        }
    });
    let s = setup_hostile(&upstream.url, None, vec![]);
    for (repository, target) in [
        ("library/nginx", format!("http://127.0.0.1:{port}/blob")),
        ("library/by-name", format!("http://localhost:{port}/blob")),
        (
            "library/mapped",
            format!("http://[::ffff:7f00:1]:{port}/blob"),
        ),
    ] {
        let answer = s.pull_blob(repository).await;
        assert_refused(
            &answer,
            &format!(
                "upstream docker.io redirected to {target}, which the gateway does not follow: it is a loopback address, and the upstream is not on one"
            ),
        );
    }
    assert_eq!(storage.heads().len(), 0, "nothing on loopback was asked");
}

#[tokio::test]
async fn five_redirects_are_followed_and_a_sixth_is_refused() {
    // `/v2/library/<chain>/...` starts a chain, `/hop/<n>/<chain>` is hop n.
    let upstream = hostile_upstream(LOOPBACK, |head| {
        let path = path_of(head);
        let chain = if path.contains("/six") { "six" } else { "five" };
        let length = if chain == "six" { 6 } else { 5 };
        let hop: u32 = path
            .strip_prefix("/hop/")
            .and_then(|rest| rest.split('/').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if hop < length {
            redirect_to(&format!("/hop/{}/{chain}", hop + 1))
        } else {
            blob_answer("end of the chain")
        }
    });
    let s = setup_hostile(&upstream.url, None, vec![]);
    let answer = s.pull_blob("library/five").await;
    assert_eq!(answer, (StatusCode::OK, "end of the chain".to_owned()));
    assert_eq!(upstream.heads().len(), 6, "the first request and five hops");

    let answer = s.pull_blob("library/six").await;
    assert_refused(
        &answer,
        &format!(
            "upstream docker.io redirected to {}/hop/6/six, which the gateway does not follow: it would be redirect number 6, and at most 5 are followed",
            upstream.url
        ),
    );
    assert_eq!(upstream.heads().len(), 12, "again six requests, no seventh");
}

#[tokio::test]
async fn upstream_credentials_are_not_forwarded_on_a_redirect_to_another_host() {
    let storage = hostile_upstream(LOOPBACK, |_| blob_answer("layer bytes"));
    let location = format!("{}/bucket/blob", storage.url);
    let upstream = hostile_upstream(LOOPBACK, move |head| {
        if has_header(head, "authorization: basic ") {
            redirect_to(&location)
        } else {
            challenge_answer("Basic realm=\"hostile\"")
        }
    });
    let s = setup_hostile(&upstream.url, Some(("corp-bot", "secret")), vec![]);
    let (status, body) = s.pull_blob("library/nginx").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "layer bytes"));
    let asked = upstream.heads();
    assert!(
        has_header(&asked[1], "authorization: basic "),
        "{}",
        asked[1]
    );
    let fetched = storage.heads();
    assert_eq!(fetched.len(), 1);
    assert!(
        !has_header(&fetched[0], "authorization:"),
        "the storage on another port got the upstream's credentials:\n{}",
        fetched[0]
    );
}

#[tokio::test]
async fn a_served_gateway_refuses_an_upstream_redirect_back_to_its_own_metrics() {
    use imagegate_server::config::{Config, FileConfig, Overrides};
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap();
    let dir = std::env::temp_dir().join(format!("imagegate-served-{}", u64::from_le_bytes(b)));
    let pat = {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir).unwrap());
        let identity = Identity::new(store.clone());
        identity.create_org("corp", &["corp".to_owned()]).unwrap();
        identity.set_policy("corp", CORP).unwrap();
        identity
            .create_user("alice", "correct horse battery")
            .unwrap();
        store.set_member("corp", "alice", Role::Member).unwrap();
        identity.create_token("alice", "t", None).unwrap().secret
    };
    // The gateway's port is known once it listens; until then, nowhere.
    let port = Arc::new(std::sync::atomic::AtomicU16::new(0));
    let upstream = {
        let port = port.clone();
        hostile_upstream(LOOPBACK, move |_| {
            let port = port.load(Ordering::SeqCst);
            redirect_to(&format!("http://127.0.0.1:{port}/metrics"))
        })
    };
    let config = Config::resolve(
        Overrides {
            listen: Some("127.0.0.1:0".into()),
            data_dir: Some(dir),
            upstreams: vec![format!("docker.io={}", upstream.url)],
            ..Overrides::default()
        },
        FileConfig::default(),
    )
    .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (listening, bound) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(imagegate_server::serve(
        config,
        async {
            let _ = stopped.await;
        },
        move |addr| {
            let _ = listening.send(addr);
        },
    ));
    let addr: std::net::SocketAddr = bound.await.unwrap();
    port.store(addr.port(), Ordering::SeqCst);

    let client = reqwest::Client::new();
    let token = client
        .get(format!(
            "http://{addr}/token?scope=repository:library/nginx:pull"
        ))
        .basic_auth("alice", Some(&pat))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token: Value = serde_json::from_str(&token).unwrap();
    let response = client
        .get(format!("http://{addr}/v2/library/nginx/blobs/{DIGEST}"))
        .bearer_auth(token["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let answer = (response.status(), response.text().await.unwrap());
    assert!(!answer.1.contains("# EOF"), "metrics relayed: {}", answer.1);
    assert_refused(
        &answer,
        &format!(
            "upstream docker.io redirected to http://127.0.0.1:{}/metrics, which the gateway does not follow: it is the gateway's own listener {addr}",
            addr.port()
        ),
    );
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_manifest_pull_is_answered_only_once_recorded() {
    let s = setup();
    let token = s.token(Some(("alice", &s.alice)), "someuser/custom-image");
    let (status, _, _) = s
        .send(
            Method::GET,
            "/v2/someuser/custom-image/manifests/1",
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Read as soon as the answer came: the writer was not closed or flushed.
    let events = s
        .store
        .audit_events(&imagegate_server::store::AuditFilter::default())
        .unwrap();
    let e = events.last().expect("the refusal is in the store");
    assert_eq!(
        (e.image.as_str(), e.decision.as_str(), e.path.as_deref()),
        (
            "docker.io/someuser/custom-image:1",
            "deny",
            Some("manifest")
        )
    );
}

#[tokio::test]
async fn with_audit_required_a_pull_that_cannot_be_recorded_is_refused_as_unavailable() {
    let s = setup_audited(false, counting_upstream(), true);
    let token = s.token(Some(("alice", &s.alice)), "library/nginx");
    std::fs::remove_file(s.dir.join(imagegate_server::store::DATABASE_FILE)).unwrap();
    for path in [
        "/v2/library/nginx/manifests/1.27",
        &format!("/v2/library/nginx/blobs/{DIGEST}"),
    ] {
        let (status, _, body) = s.send(Method::GET, path, Some(&token)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}: {body}");
        assert_eq!(
            error_of(&body),
            ("UNAVAILABLE", "audit log unavailable"),
            "{path}"
        );
    }
    assert_eq!(
        s.upstream_calls(),
        0,
        "nothing unrecorded reaches the upstream"
    );
}

#[tokio::test]
async fn a_revoked_personal_access_token_stops_its_registry_tokens_within_two_seconds() {
    let s = setup();
    let token = s.token(Some(("alice", &s.alice)), "library/nginx");
    let pull = || {
        s.send(
            Method::GET,
            "/v2/library/nginx/manifests/1.27",
            Some(&token),
        )
    };
    // Allowed: it reaches the (connection-dropping) upstream.
    assert_eq!(pull().await.0, StatusCode::BAD_GATEWAY);
    let id = s.store.tokens("alice").unwrap()[0].id.clone();
    s.identity.revoke_token("alice", &id).unwrap();
    let revoked = std::time::Instant::now();
    let (status, headers, body) = loop {
        let answer = pull().await;
        if answer.0 != StatusCode::BAD_GATEWAY {
            break answer;
        }
        assert!(
            revoked.elapsed() < std::time::Duration::from_secs(2),
            "the registry token still pulls 2 s after its personal access token was revoked"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(
        error_of(&body),
        (
            "UNAUTHORIZED",
            "invalid token: the personal access token it was issued for was revoked"
        )
    );
    assert!(headers.contains_key("www-authenticate"));
}
