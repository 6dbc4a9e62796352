//! Who may call the admission doors. With `--admission-client-ca`, only a
//! caller whose TLS connection presented a certificate from that CA
//! (kube-apiserver, through its webhook kubeconfig) reaches
//! `/admission/validate` and `/imagepolicy`; the rest of the listener needs no
//! certificate. Verification itself is the TLS layer's (`crate::tls`); this
//! room only reads its outcome and refuses in the door's own format.

use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequest, Request};
use axum::response::Response;
use axum_server::tls::TlsInfo;

use crate::body::read_body;
use crate::state::AppState;

/// What a caller without a verified client certificate is told.
pub const CERTIFICATE_REQUIRED: &str = "a client certificate from the configured admission client CA (--admission-client-ca) is required";

/// An admission door: its name, and how it refuses a caller that presented
/// no verified client certificate (HTTP 401 with a body of its protocol).
pub trait Door {
    /// The door's name in logs.
    const NAME: &'static str;
    /// The refusal, carrying `message`.
    fn unauthenticated(message: &str) -> Response;
}

/// A call to door `D` from kube-apiserver, and its (unread) body. When an
/// admission client CA is configured, extracting it succeeds only for a
/// connection that presented a certificate the CA signed (rustls verified it
/// in the handshake, or the handshake failed); otherwise anyone who reaches
/// the door is taken for kube-apiserver.
pub struct ApiServer<D> {
    /// The request body, for the door to read with its own limits and errors.
    pub body: Body,
    door: PhantomData<D>,
}

impl<D: Door> FromRequest<AppState> for ApiServer<D> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        let (parts, body) = request.into_parts();
        // axum-server puts the TLS session's peer chain on every request; rustls
        // exposes a chain only once its client verifier has accepted it.
        let verified = parts
            .extensions
            .get::<Arc<TlsInfo>>()
            .is_some_and(|tls| !tls.peer_certificates.is_empty());
        if verified || !state.require_client_certificate {
            return Ok(ApiServer {
                body,
                door: PhantomData,
            });
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.to_string());
        tracing::warn!(
            door = D::NAME,
            peer = peer.as_deref().unwrap_or("unknown"),
            "refused an admission call without a client certificate from the admission client CA"
        );
        // Read the body (within the limit) before answering: an HTTP/2 client
        // still sending it would otherwise see its stream reset, not the refusal.
        let _ = read_body(body, state.max_body_bytes).await;
        Err(D::unauthenticated(CERTIFICATE_REQUIRED))
    }
}
