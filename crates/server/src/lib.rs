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
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found: imagegate serves /v2/, /token, /admission/validate, /imagepolicy, /healthz, /readyz and /metrics\n") })
        .with_state(state)
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
    match identity.first_administrator() {
        Ok(Some(password)) => tracing::warn!(
            user = identity::FIRST_ADMINISTRATOR,
            password = %password,
            "first start: created the administrator; sign in at /console with this password, which is shown only now"
        ),
        Ok(None) => {}
        Err(e) => tracing::error!(error = %e, "first start: could not create the administrator"),
    }
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
    let console = Arc::new(console::Console::new(
        identity.clone(),
        config.tls.is_some(),
    ));
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
    gateway
        .upstreams
        .set_listeners([listener.local_addr().map_err(io)?]);
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
