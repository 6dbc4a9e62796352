//! The registry gateway door (Docker Registry HTTP API v2, pulls only). Every
//! manifest, blob and tag-list request is routed (names checked before
//! anything else), authenticated (a Bearer token from `/token`), decided by
//! `core::decide` under the caller's organisations' policies, recorded, and
//! only then relayed to the upstream serving that registry, streaming. A
//! refused pull makes no upstream request at all, and an upstream's redirect
//! is followed only where [`egress`] allows.

pub mod caller;
pub mod egress;
pub mod route;
pub mod upstream;
pub mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use imagegate_core::Decision;
use sha2::Digest as _;

use self::caller::{Caller, Callers, decide_for};
use self::route::{ManifestRef, Route, RouteError, route};
use self::upstream::{Upstream, UpstreamError, Upstreams};
use self::wire::{ErrorBody, ErrorCode};
use crate::audit;
use crate::metrics::Metrics;

/// The door's name in metrics and audit records.
pub const DOOR: &str = "gateway";
/// The largest manifest relayed (as distribution and containerd limit them).
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

const API_VERSION: HeaderName = HeaderName::from_static("docker-distribution-api-version");
const CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");
/// Response headers relayed from the upstream.
const RELAYED: [HeaderName; 7] = [
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    CONTENT_DIGEST,
    header::CONTENT_RANGE,
    header::ACCEPT_RANGES,
    header::ETAG,
    header::LAST_MODIFIED,
];

/// The gateway's state.
pub struct Gateway {
    /// Token checks and caller resolution.
    pub callers: Arc<Callers>,
    /// The upstream registries.
    pub upstreams: Upstreams,
    /// The gateway's public URL (`https://gateway.corp.example`); the token
    /// realm is `<public URL>/token`. Without it, the request's Host is used.
    pub public_url: Option<String>,
    /// Whether the listener is HTTPS (for a realm built from Host).
    pub tls: bool,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The audit record.
    pub audit: audit::Auditor,
}

/// `/v2/...`, every method (writes are answered, not routed elsewhere).
pub fn routes(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/v2", any(handle))
        .route("/v2/", any(handle))
        .route("/v2/{*rest}", any(handle))
        .with_state(gateway)
}

/// A registry error response.
pub fn error(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Response {
    errors(status, ErrorBody::one(code, message))
}

/// A registry error body with the API version header.
fn errors(status: StatusCode, body: ErrorBody) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
    response
}

fn route_error(e: RouteError) -> Response {
    match e {
        RouteError::NotFound => error(
            StatusCode::NOT_FOUND,
            ErrorCode::NameUnknown,
            "not a registry API path: imagegate serves /v2/<name>/manifests/<reference>, /v2/<name>/blobs/<digest> and /v2/<name>/tags/list",
        ),
        RouteError::NameInvalid(_) => error(
            StatusCode::BAD_REQUEST,
            ErrorCode::NameInvalid,
            e.to_string(),
        ),
        RouteError::TagInvalid(_) => error(
            StatusCode::BAD_REQUEST,
            ErrorCode::ManifestUnknown,
            e.to_string(),
        ),
        RouteError::DigestInvalid(_) => error(
            StatusCode::BAD_REQUEST,
            ErrorCode::DigestInvalid,
            e.to_string(),
        ),
    }
}

/// The host the client asked for, to build a token realm from when no
/// public URL is configured.
struct Asked {
    authority: Option<String>,
    host: Option<String>,
}

/// What a pull request asks for, once routed.
struct Pull {
    /// The repository name as the client wrote it (the token scope's name).
    name: String,
    /// `manifest`, `blob` or `tags`.
    kind: &'static str,
    /// The rest of the upstream path after `/v2/<repository>/`.
    rest: String,
    /// The reference decided.
    image: String,
    /// The digest the content must have (manifests and blobs by digest).
    digest: Option<imagegate_core::reference::Digest>,
}

fn pull_of(route: Route) -> Option<Pull> {
    Some(match route {
        Route::Manifest { name, reference } => {
            let (image, digest) = match &reference {
                ManifestRef::Tag(t) => (format!("{name}:{t}"), None),
                ManifestRef::Digest(d) => (format!("{name}@{d}"), Some(d.clone())),
            };
            Pull {
                rest: format!("manifests/{}", reference.as_str()),
                name,
                kind: "manifest",
                image,
                digest,
            }
        }
        // A blob is content-addressed: it is decided as the repository pinned
        // at that digest, so repository rules apply and tag rules cannot.
        Route::Blob { name, digest } => Pull {
            rest: format!("blobs/{digest}"),
            image: format!("{name}@{digest}"),
            name,
            kind: "blob",
            digest: Some(digest),
        },
        // A tag list names no tag either: decided as the repository, pinned.
        Route::Tags { name } => Pull {
            rest: "tags/list".to_owned(),
            image: format!("{name}@sha256:{}", "0".repeat(64)),
            name,
            kind: "tags",
            digest: None,
        },
        Route::Base | Route::Catalog | Route::Upload { .. } => return None,
    })
}

async fn handle(State(gw): State<Arc<Gateway>>, request: Request<Body>) -> Response {
    let started = Instant::now();
    let response = answer(&gw, request).await;
    gw.metrics.latency(DOOR, started.elapsed().as_secs_f64());
    response
}

async fn answer(gw: &Arc<Gateway>, request: Request<Body>) -> Response {
    let method = request.method().clone();
    let asked = Asked {
        authority: request.uri().authority().map(|a| a.to_string()),
        host: request
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned),
    };
    let routed = match route(request.uri().path()) {
        Ok(r) => r,
        Err(e) => return route_error(e),
    };
    let query = request.uri().query().unwrap_or_default().to_owned();
    if matches!(routed, Route::Upload { .. }) && has_param(&query, "mount") {
        return error(
            StatusCode::FORBIDDEN,
            ErrorCode::Denied,
            "cross-repository blob mounts are not allowed: imagegate serves pulls only",
        );
    }
    if method != Method::GET && method != Method::HEAD || matches!(routed, Route::Upload { .. }) {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::Unsupported,
            format!(
                "{method} is not supported: imagegate serves pulls only; push to the registry itself"
            ),
        );
    }
    let token = bearer(request.headers());
    if routed == Route::Base {
        return match token {
            Some(t) if gw.callers.resolve(t).await.is_ok() => {
                let mut r = (StatusCode::OK, axum::Json(serde_json::json!({}))).into_response();
                r.headers_mut()
                    .insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
                r
            }
            _ => challenge(gw, &asked, None, "authentication required"),
        };
    }
    if routed == Route::Catalog {
        return error(
            StatusCode::FORBIDDEN,
            ErrorCode::Denied,
            "the repository catalog is not available through imagegate",
        );
    }
    let Some(pull) = pull_of(routed) else {
        return route_error(RouteError::NotFound);
    };
    let Some(token) = token else {
        return challenge(gw, &asked, Some(&pull.name), "authentication required");
    };
    let caller = match gw.callers.resolve(token).await {
        Ok(c) => c,
        Err(e) => {
            tracing::info!(error = %e, "registry request with an invalid token");
            return challenge(gw, &asked, Some(&pull.name), &e.to_string());
        }
    };
    let source = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());

    // containerd's mirror parameter: a key into the configured upstreams.
    let ns = param(&query, "ns");
    let image = match &ns {
        Some(ns) => match gw.upstreams.get(ns) {
            Some(_) if !ns.is_empty() => format!("{ns}/{}", pull.image),
            _ => {
                return error(
                    StatusCode::NOT_FOUND,
                    ErrorCode::NameUnknown,
                    format!(
                        "registry {ns:?} is not served by this gateway (no upstream is configured for it)"
                    ),
                );
            }
        },
        None => pull.image.clone(),
    };

    let (decision, org) = if caller.user.is_none() && !caller.claims.may_pull(&pull.name) {
        (
            Decision::sign_in_required(imagegate_core::Reference::parse(&image).ok()),
            None,
        )
    } else if !caller.claims.may_pull(&pull.name) {
        return challenge(
            gw,
            &asked,
            Some(&pull.name),
            &format!("the token does not grant pull access to {}", pull.name),
        );
    } else {
        match decide_for(&caller, &image) {
            Some(decided) => decided,
            None => {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::Unavailable,
                    "imagegate cannot read its store right now; try again later",
                );
            }
        }
    };
    gw.metrics.decision(DOOR, &decision);
    if let Err(e) = record(
        gw,
        &caller,
        org.as_deref(),
        source,
        pull.kind,
        &image,
        &decision,
    )
    .await
        && gw.audit.required()
    {
        tracing::error!(door = DOOR, error = %e, image = %image, "refusing a pull that cannot be recorded (--audit-required)");
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            audit::UNAVAILABLE,
        );
    }
    if !decision.is_allowed() {
        return refusal(
            gw,
            &asked,
            &pull,
            &decision,
            org.as_deref(),
            caller.user.is_some(),
        );
    }
    let warning = decision
        .is_would_be_denial()
        .then(|| warning_header(&decision.message));

    let Some(reference) = &decision.reference else {
        return error(
            StatusCode::BAD_REQUEST,
            ErrorCode::NameInvalid,
            "the repository is not a reference",
        );
    };
    let host = reference.domain().unwrap_or(upstream::DOCKER_HUB);
    let Some(upstream) = gw.upstreams.get(host) else {
        return error(
            StatusCode::NOT_FOUND,
            ErrorCode::NameUnknown,
            format!(
                "registry {host} is not served by this gateway (no upstream is configured for it)"
            ),
        );
    };
    let mut response = relay(
        gw,
        upstream,
        &method,
        &pull,
        reference.path(),
        request.headers(),
    )
    .await;
    if let Some(Some(w)) = warning {
        response.headers_mut().insert(header::WARNING, w);
    }
    response
}

/// Records the decision: a manifest or tag-list request's before it is
/// answered (committed), a blob's after (queued: a pull's blobs follow its
/// manifest, which is already recorded). Under `--audit-required` a blob is
/// refused while the audit log cannot be written.
async fn record(
    gw: &Gateway,
    caller: &Caller,
    org: Option<&str>,
    source: Option<std::net::IpAddr>,
    kind: &'static str,
    image: &str,
    d: &Decision,
) -> Result<(), audit::Unrecorded> {
    let source = source.map(|s| s.to_string());
    let ctx = audit::Context {
        door: DOOR,
        user: caller.user.as_deref(),
        path: Some(kind),
        org,
        source: source.as_deref(),
        ..audit::Context::default()
    };
    if kind == "blob" {
        gw.audit.record(&ctx, image, d);
        return match gw.audit.health().problem() {
            Some(problem) => Err(audit::Unrecorded(problem)),
            None => Ok(()),
        };
    }
    let mut events = Vec::with_capacity(1);
    gw.audit.note(&mut events, &ctx, image, d);
    gw.audit.commit(events).await
}

/// The answer to a refused pull: 401 for a caller who must sign in, 403
/// `DENIED` with the decision's message otherwise. A signed-in member's
/// refusal that an exception can lift (image access, registry access) also
/// says where to ask for one, as a second error after the decision's own:
/// the console's access request form for the organisation whose policy
/// refused, prefilled with the image. Clients print each error on a line of
/// its own; the first stays the decision's message, word for word.
fn refusal(
    gw: &Gateway,
    asked: &Asked,
    pull: &Pull,
    d: &Decision,
    org: Option<&str>,
    signed_in: bool,
) -> Response {
    use imagegate_core::Reason;
    if d.reason == Reason::SignInRequired {
        return challenge(gw, asked, Some(&pull.name), &d.message);
    }
    let mut body = ErrorBody::one(ErrorCode::Denied, d.message.to_string());
    // A tag list is refused as a 401 with the same DENIED body:
    // containers/image before 5.24 (skopeo 1.9, Debian 12's) reads the body
    // of a tag list's 401 only and shows a 403 as its bare status; later
    // versions read both alike. The challenge carries no `error`
    // parameter: containers/image would print its generic words for it
    // ("requested access to the resource is denied") above the message.
    if pull.kind == "tags" && signed_in {
        let mut response = errors(StatusCode::UNAUTHORIZED, body);
        if let Some(v) = challenge_value(gw, asked, Some(&pull.name)) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        return response;
    }
    // Manifests only: that is the refusal a client prints; a blob or tag
    // list refusal keeps the one error.
    if let (true, "manifest", Some(org), Some(r), true) = (
        signed_in,
        pull.kind,
        org,
        &d.reference,
        d.reason.is_access_refusal(),
    ) {
        let ask = format!(
            "{}{}",
            base_url(gw, asked),
            crate::requests::form_path(org, r.as_str())
        );
        body.errors.push(wire::RegistryError {
            code: ErrorCode::Denied,
            message: format!("ask for access: {ask}"),
            detail: Some(serde_json::json!({ "request_access": ask })),
        });
    }
    errors(StatusCode::FORBIDDEN, body)
}

/// `https://HOST` for links back to this server: `--public-url`, or the
/// scheme and the host the client asked for (checked to be a host).
fn base_url(gw: &Gateway, asked: &Asked) -> String {
    if let Some(url) = &gw.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    // HTTP/2 carries the host in the URI's authority, HTTP/1.1 in Host.
    let host = asked
        .authority
        .as_deref()
        .or(asked.host.as_deref())
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        })
        .unwrap_or("localhost");
    let scheme = if gw.tls { "https" } else { "http" };
    format!("{scheme}://{host}")
}

/// `Warning: 299 - "<message>"`, the message as a quoted string of visible ASCII.
fn warning_header(message: &str) -> Option<HeaderValue> {
    let quoted: String = message
        .chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            c if c.is_ascii() && !c.is_ascii_control() => c,
            _ => '?',
        })
        .collect();
    HeaderValue::from_str(&format!("299 - \"{quoted}\"")).ok()
}

/// 401 `UNAUTHORIZED` with the Bearer challenge pointing at the token realm.
fn challenge(gw: &Gateway, asked: &Asked, name: Option<&str>, message: &str) -> Response {
    let mut response = error(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message);
    if let Some(v) = challenge_value(gw, asked, name) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    response
}

/// `Bearer realm="https://HOST/token",service="…"[,scope="repository:NAME:pull"]`.
fn challenge_value(gw: &Gateway, asked: &Asked, name: Option<&str>) -> Option<HeaderValue> {
    let realm = format!("{}/token", base_url(gw, asked));
    let mut value = format!(
        "Bearer realm=\"{realm}\",service=\"{}\"",
        gw.callers.token_service().service()
    );
    if let Some(name) = name {
        value.push_str(&format!(",scope=\"repository:{name}:pull\""));
    }
    HeaderValue::from_str(&value).ok()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn param(query: &str, name: &str) -> Option<String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

fn has_param(query: &str, name: &str) -> bool {
    param(query, name).is_some()
}

/// Relays the request to the upstream and its answer to the client: manifests
/// read whole (at most 4 MiB) and checked against the digest asked for, blobs
/// and tag lists streamed.
async fn relay(
    gw: &Gateway,
    upstream: &Upstream,
    method: &Method,
    pull: &Pull,
    repository: &str,
    headers: &HeaderMap,
) -> Response {
    let mut forward = HeaderMap::new();
    for name in [header::ACCEPT, header::RANGE, header::IF_NONE_MATCH] {
        for v in headers.get_all(&name) {
            forward.append(name.clone(), v.clone());
        }
    }
    gw.metrics.upstream_request(
        upstream.host(),
        pull.kind,
        if method == Method::HEAD {
            "HEAD"
        } else {
            "GET"
        },
    );
    let answer = match gw
        .upstreams
        .send(upstream, method.clone(), repository, &pull.rest, &forward)
        .await
    {
        Ok(a) => a,
        Err(e @ UpstreamError::Redirect { .. }) => {
            tracing::warn!(error = %e, upstream = %upstream.host(), repository, "upstream redirect not followed");
            return error(StatusCode::BAD_GATEWAY, ErrorCode::Denied, e.to_string());
        }
        Err(e) => {
            tracing::warn!(error = %e, upstream = %upstream.host(), repository, "upstream request failed");
            return error(
                StatusCode::BAD_GATEWAY,
                ErrorCode::Unavailable,
                format!(
                    "upstream {} is unavailable; try again later",
                    upstream.host()
                ),
            );
        }
    };
    let status = answer.status();
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        tracing::warn!(upstream = %upstream.host(), repository, %status, "upstream refused the gateway");
        return error(
            StatusCode::FORBIDDEN,
            ErrorCode::Denied,
            format!(
                "upstream {} refused access to {repository} (HTTP {})",
                upstream.host(),
                status.as_u16()
            ),
        );
    }
    let mut builder = Response::builder()
        .status(status)
        .header(API_VERSION, "registry/2.0");
    for name in RELAYED {
        if let Some(v) = answer.headers().get(&name) {
            builder = builder.header(name, v);
        }
    }
    if *method == Method::HEAD {
        return builder
            .body(Body::empty())
            .unwrap_or_else(|e| internal(&e.to_string()));
    }
    if pull.kind == "manifest" && status.is_success() {
        let body = match read_manifest(answer).await {
            Ok(b) => b,
            Err(message) => {
                tracing::warn!(upstream = %upstream.host(), repository, %message, "manifest refused");
                return error(StatusCode::BAD_GATEWAY, ErrorCode::ManifestInvalid, message);
            }
        };
        if let Some(d) = &pull.digest
            && !digest_matches(d, &body)
        {
            tracing::error!(upstream = %upstream.host(), repository, digest = %d, "upstream manifest does not match its digest");
            return error(
                StatusCode::BAD_GATEWAY,
                ErrorCode::ManifestInvalid,
                format!(
                    "upstream {} sent a manifest that does not match {d}",
                    upstream.host()
                ),
            );
        }
        return builder
            .body(Body::from(body))
            .unwrap_or_else(|e| internal(&e.to_string()));
    }
    builder
        .body(Body::from_stream(answer.bytes_stream()))
        .unwrap_or_else(|e| internal(&e.to_string()))
}

async fn read_manifest(mut answer: reqwest::Response) -> Result<Vec<u8>, String> {
    if answer
        .content_length()
        .is_some_and(|n| n > MAX_MANIFEST_BYTES as u64)
    {
        return Err("manifest is larger than 4 MiB".to_owned());
    }
    let mut body = Vec::new();
    while let Some(chunk) = answer
        .chunk()
        .await
        .map_err(|e| format!("reading the manifest failed: {e}"))?
    {
        if body.len() + chunk.len() > MAX_MANIFEST_BYTES {
            return Err("manifest is larger than 4 MiB".to_owned());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn digest_matches(d: &imagegate_core::reference::Digest, body: &[u8]) -> bool {
    use crate::identity::hex;
    use imagegate_core::reference::Algorithm;
    let actual = match d.algorithm() {
        Algorithm::Sha256 => hex(&sha2::Sha256::digest(body)),
        Algorithm::Sha384 => hex(&sha2::Sha384::digest(body)),
        Algorithm::Sha512 => hex(&sha2::Sha512::digest(body)),
    };
    d.as_str()
        .split_once(':')
        .is_some_and(|(_, expected)| expected == actual)
}

fn internal(cause: &str) -> Response {
    tracing::error!(cause, "building a gateway response failed");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::Unavailable,
        "the gateway failed; see its log",
    )
}
