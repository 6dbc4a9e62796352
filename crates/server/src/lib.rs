//! imagegate's doors over HTTP: the registry gateway (`/v2/`, with its token
//! service at `/token`), the Kubernetes ValidatingAdmissionWebhook
//! (`/admission/validate`) and the ImagePolicyWebhook backend (`/imagepolicy`),
//! with health, readiness and Prometheus metrics. Every door asks
//! `imagegate_core::decide`; this crate only speaks the protocols.
#![deny(missing_docs)]

pub mod admission;
pub mod api;
pub mod apiserver;
pub mod audit;
pub mod body;
pub mod config;
pub mod console;
pub mod gateway;
pub mod identity;
pub mod imagepolicy;
pub mod insights;
pub mod metrics;
pub mod proxy;
pub mod requests;
pub mod settings;
pub mod state;
pub mod store;
pub mod throttle;
pub mod tls;
pub mod token;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use imagegate_core::Policy;
use tokio::sync::watch;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::state::AppState;

/// The routes, around `state`. `ready` answers `/readyz`.
pub fn router(state: AppState, ready: Arc<AtomicBool>) -> Router {
    Router::new()
        .route("/admission/validate", post(admission::validate))
        .route("/imagepolicy", post(imagepolicy::review))
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move |State(state): State<AppState>| {
                let ready = ready.load(Ordering::Relaxed);
                async move { readiness(ready, &state) }
            }),
        )
        .route("/metrics", get(metrics_text))
        .route("/", get(front_door))
        .fallback(|| async {
            let paths: Vec<&str> = SERVED.iter().map(|(_, path, _)| *path).collect();
            (
                StatusCode::NOT_FOUND,
                format!("not found: imagegate serves {}\n", paths.join(", ")),
            )
        })
        .with_state(state)
}

/// What is served here, for whoever arrives at `/`: a key for the JSON
/// answer, the path, and what it is.
pub const SERVED: [(&str, &str, &str); 10] = [
    ("console", "/console", "the console: sign in with a browser"),
    (
        "registry",
        "/v2/",
        "the registry gateway: docker login, then docker pull HOST/IMAGE",
    ),
    ("token", "/token", "the registry gateway's token service"),
    (
        "admission",
        "/admission/validate",
        "the Kubernetes ValidatingAdmissionWebhook (AdmissionReview v1)",
    ),
    (
        "imagepolicy",
        "/imagepolicy",
        "the Kubernetes ImagePolicyWebhook backend (ImageReview)",
    ),
    ("api", "/api/v1", "the REST API"),
    (
        "openapi",
        "/api/v1/openapi.json",
        "the REST API's OpenAPI document",
    ),
    ("health", "/healthz", "liveness"),
    ("ready", "/readyz", "readiness"),
    ("metrics", "/metrics", "Prometheus metrics"),
];

/// `GET /`: a browser goes to the console; anything else is told what is
/// served here, as JSON when it asks for JSON, else as plain text.
async fn front_door(headers: axum::http::HeaderMap) -> axum::response::Response {
    let accepts = |wanted: &str| {
        headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|range| {
                let mut parts = range.split(';').map(str::trim);
                let media = parts.next().unwrap_or_default();
                // `q=0` is "not this".
                let refused = parts.any(|p| {
                    p.strip_prefix("q=")
                        .and_then(|q| q.parse::<f32>().ok())
                        .is_some_and(|q| q <= 0.0)
                });
                media.eq_ignore_ascii_case(wanted) && !refused
            })
    };
    if accepts("text/html") {
        return axum::response::Redirect::to("/console").into_response();
    }
    if accepts("application/json") {
        let doc: serde_json::Map<String, serde_json::Value> = SERVED
            .iter()
            .map(|(key, path, _)| ((*key).to_owned(), serde_json::Value::from(*path)))
            .collect();
        return axum::Json(doc).into_response();
    }
    let mut text = String::from("imagegate: container image policy at every door\n\n");
    for (_, path, what) in SERVED {
        text.push_str(&format!("{path:<22} {what}\n"));
    }
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
}

/// `/readyz`: 503 while shutting down, and while the audit log cannot be
/// written (the store refuses writes, or its file was removed or replaced).
fn readiness(ready: bool, state: &AppState) -> (StatusCode, String) {
    if !ready {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting down\n".to_owned(),
        );
    }
    match state.audit.health().problem() {
        Some(problem) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{}: {problem}\n", audit::UNAVAILABLE),
        ),
        None => (StatusCode::OK, "ready\n".to_owned()),
    }
}

/// The registry gateway and its token service: the signing key from the data
/// directory (generated on first start), the upstreams, the callers' policies
/// from the store.
fn gateway_state(
    config: &Config,
    identity: identity::Identity,
    metrics: Arc<Metrics>,
    audit: audit::Auditor,
) -> Result<gateway::Gateway, ServeError> {
    let signer = token::Signer::load_or_create(&config.data_dir)?;
    let service = config
        .public_url
        .as_deref()
        .and_then(|u| u.split_once("://").map(|(_, rest)| rest))
        .map(|rest| rest.split('/').next().unwrap_or(rest).to_owned())
        .unwrap_or_else(|| "imagegate".to_owned());
    let tokens = Arc::new(
        token::TokenService::new(identity.clone(), signer, service)
            .with_anonymous_pulls(config.allow_anonymous)
            .with_audit(audit.clone()),
    );
    let upstreams = gateway::upstream::Upstreams::new(config.upstreams.clone())?;
    for host in upstreams.hosts() {
        tracing::info!(upstream = %host, "registry gateway upstream");
    }
    Ok(gateway::Gateway {
        callers: Arc::new(gateway::caller::Callers::new(
            tokens,
            identity,
            config.default_org.clone(),
            config.allow_anonymous,
            metrics.clone(),
        )),
        upstreams,
        public_url: config.public_url.clone(),
        tls: config.tls.is_some(),
        metrics,
        audit,
    })
}

async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

/// Where people sign in to the console: under the public URL when one is
/// configured, else at the address listened on (`localhost` for all
/// addresses).
pub fn console_url(public_url: Option<&str>, tls: bool, listen: SocketAddr) -> String {
    if let Some(url) = public_url {
        return format!("{}/console", url.trim_end_matches('/'));
    }
    let scheme = if tls { "https" } else { "http" };
    let port = listen.port();
    match listen.ip() {
        ip if ip.is_unspecified() => format!("{scheme}://localhost:{port}/console"),
        std::net::IpAddr::V6(ip) => format!("{scheme}://[{ip}]:{port}/console"),
        std::net::IpAddr::V4(ip) => format!("{scheme}://{ip}:{port}/console"),
    }
}

/// The first start's administrator password, logged once with the URL to
/// sign in at: when the server listens (the port is known then, even when
/// it was 0), or, if it stops before that, with the configured address, so
/// that the password is never lost.
struct FirstAdministrator {
    password: Option<String>,
    url: String,
}

impl FirstAdministrator {
    /// Logs the password, if there is one to log, with `url`.
    fn announce(&mut self, url: String) {
        if let Some(password) = self.password.take() {
            tracing::warn!(
                user = identity::FIRST_ADMINISTRATOR,
                password = %password,
                console = %url,
                "first start: created the administrator; sign in at {url} with this password, which is shown only now"
            );
        }
    }
}

impl Drop for FirstAdministrator {
    fn drop(&mut self) {
        let url = std::mem::take(&mut self.url);
        self.announce(url);
    }
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The policy file cannot be used.
    #[error(transparent)]
    Policy(#[from] state::PolicyFileError),
    /// The certificate cannot be used.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The store cannot be opened.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// The signing key cannot be used.
    #[error(transparent)]
    Signer(#[from] token::SignerError),
    /// An upstream is misconfigured.
    #[error(transparent)]
    Upstream(#[from] gateway::upstream::ConfigError),
    /// A configured organisation does not exist or has no usable policy.
    #[error("organisation {org}: {message}")]
    Org {
        /// The organisation.
        org: String,
        /// What is wrong.
        message: String,
    },
    /// Listening or serving failed.
    #[error("cannot serve on {addr}: {error}")]
    Io {
        /// The address.
        addr: SocketAddr,
        /// Why.
        error: std::io::Error,
    },
}

/// Runs the server until `shutdown` completes, then stops accepting, marks
/// itself not ready, and lets in-flight requests finish within the grace period.
/// `on_listening` receives the bound address (useful with port 0).
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_listening: impl FnOnce(SocketAddr) + Send + 'static,
) -> Result<(), ServeError> {
    let store: Arc<dyn store::Store> = Arc::new(store::open(
        &config.data_dir,
        config.database_url.as_deref(),
    )?);
    serve_store(config, store, shutdown, on_listening).await
}

/// [`serve`], on a store already opened (the configuration's data
/// directory still holds the signing key).
pub async fn serve_store(
    config: Config,
    store: Arc<dyn store::Store>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_listening: impl FnOnce(SocketAddr) + Send + 'static,
) -> Result<(), ServeError> {
    let metrics = Arc::new(Metrics::new());
    let identity = identity::Identity::new(store);
    let mut first = FirstAdministrator {
        password: match identity.first_administrator() {
            Ok(password) => password,
            Err(e) => {
                tracing::error!(error = %e, "first start: could not create the administrator");
                None
            }
        },
        url: console_url(
            config.public_url.as_deref(),
            config.tls.is_some(),
            config.listen,
        ),
    };
    for org in [&config.default_org, &config.policy_org]
        .into_iter()
        .flatten()
    {
        identity.org(org).map_err(|e| ServeError::Org {
            org: org.clone(),
            message: e.to_string(),
        })?;
    }
    let policy = match (&config.policy, &config.policy_org) {
        (_, Some(org)) => {
            let policy = state::org_policy(&identity, org).map_err(|message| ServeError::Org {
                org: org.clone(),
                message,
            })?;
            tracing::info!(org = %org, name = %policy.name, mode = %policy.mode, "admission policy loaded from the organisation");
            policy
        }
        (Some(path), None) => {
            let policy = state::load_policy(path)?;
            tracing::info!(policy = %path.display(), name = %policy.name, mode = %policy.mode, "policy loaded");
            policy
        }
        (None, None) => {
            tracing::warn!(
                "no admission policy given: every valid, unambiguous image is allowed at the admission doors"
            );
            Policy::default()
        }
    };
    let (tx, rx) = watch::channel(Arc::new(policy));
    if let Some(org) = config.policy_org.clone() {
        tokio::spawn(state::watch_org_policy(
            identity.clone(),
            org,
            tx,
            metrics.clone(),
        ));
    } else if let Some(path) = config.policy.clone() {
        tokio::spawn(state::watch_policy(
            path,
            tx,
            metrics.clone(),
            config.reload_interval,
        ));
    }
    let (auditor, audit_writer) = audit::Auditor::start(
        identity.store().clone(),
        metrics.clone(),
        audit::QUEUE_CAPACITY,
    );
    let auditor = auditor.with_required(config.audit_required);
    if config.audit_required {
        tracing::info!(
            "--audit-required: the doors refuse what they cannot record in the audit log"
        );
    }
    let state = AppState {
        policy: rx,
        metrics,
        max_body_bytes: config.max_body_bytes,
        audit: auditor.clone(),
        policy_org: config.policy_org.clone(),
        require_client_certificate: config
            .tls
            .as_ref()
            .is_some_and(|tls| tls.admission_client_ca.is_some()),
    };
    let ready = Arc::new(AtomicBool::new(true));
    let api = Arc::new(api::Api::new(identity.clone()));
    let console = Arc::new(
        console::Console::new(identity.clone(), config.tls.is_some())
            .with_public_url(config.public_url.clone()),
    );
    let gateway = Arc::new(gateway_state(
        &config,
        identity,
        state.metrics.clone(),
        auditor,
    )?);
    let tokens = gateway.callers.token_service().clone();
    let app = router(state, ready.clone())
        .merge(api::routes(api))
        .merge(console::routes(console))
        .merge(token::http::routes(tokens))
        .merge(gateway::routes(gateway.clone()));

    let handle = axum_server::Handle::<SocketAddr>::new();
    {
        let handle = handle.clone();
        let grace = config.shutdown_grace;
        tokio::spawn(async move {
            shutdown.await;
            ready.store(false, Ordering::Relaxed);
            tracing::info!(
                grace_seconds = grace.as_secs(),
                "shutting down: finishing in-flight requests"
            );
            handle.graceful_shutdown(Some(grace));
        });
    }
    {
        let handle = handle.clone();
        let tls = config.tls.is_some();
        let admission_client_ca = config
            .tls
            .as_ref()
            .and_then(|tls| tls.admission_client_ca.as_ref())
            .map(|ca| ca.display().to_string());
        tokio::spawn(async move {
            if let Some(addr) = handle.listening().await {
                tracing::info!(addr = %addr, tls, admission_client_ca, "listening");
                on_listening(addr);
            }
        });
    }
    let addr = config.listen;
    let io = |error| ServeError::Io { addr, error };
    let rustls = match &config.tls {
        Some(files) => {
            let rustls = tls::load(files).await?;
            tokio::spawn(tls::watch(
                rustls.clone(),
                files.clone(),
                config.reload_interval,
            ));
            Some(rustls)
        }
        None => None,
    };
    // Bound here, not by the server, so the upstreams know the address
    // (port 0 is chosen now) before the first request: no upstream
    // redirect may lead back to the gateway.
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(io)?;
    let bound = listener.local_addr().map_err(io)?;
    first.announce(console_url(
        config.public_url.as_deref(),
        config.tls.is_some(),
        bound,
    ));
    gateway.upstreams.set_listeners([bound]);
    let server = axum_server::Server::from_listener(listener).handle(handle);
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    let served = match rustls {
        Some(rustls) => {
            server
                .acceptor(axum_server::tls_rustls::RustlsAcceptor::new(rustls))
                .serve(service)
                .await
        }
        None => server.serve(service).await,
    }
    .map_err(io);
    // In-flight requests are done: write every audit event they queued.
    audit_writer.close().await;
    tracing::info!("audit log flushed; stopped");
    served
}

#[cfg(test)]
mod tests {
    use super::console_url;

    #[test]
    fn the_console_url_is_under_the_public_url_else_at_the_listening_address() {
        let at = |s: &str| s.parse().unwrap();
        assert_eq!(
            console_url(
                Some("https://gateway.corp.example"),
                true,
                at("0.0.0.0:8443")
            ),
            "https://gateway.corp.example/console"
        );
        assert_eq!(
            console_url(None, true, at("0.0.0.0:8443")),
            "https://localhost:8443/console"
        );
        assert_eq!(
            console_url(None, true, at("127.0.0.1:9000")),
            "https://127.0.0.1:9000/console"
        );
        assert_eq!(
            console_url(None, false, at("[::1]:8080")),
            "http://[::1]:8080/console"
        );
        assert_eq!(
            console_url(None, true, at("[::]:8443")),
            "https://localhost:8443/console"
        );
    }
}
