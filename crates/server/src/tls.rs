//! HTTPS: the serving certificate and key, and the admission client CA when
//! one is configured, reloaded when a file changes so cert-manager's rotation
//! needs no restart. A broken new set keeps the old one and logs why.
//!
//! With an admission client CA the handshake asks every client for a
//! certificate and verifies any that is presented against the CA; a client
//! that presents none still connects (registry clients, browsers), and the
//! admission doors refuse it (`crate::apiserver`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum_server::tls_rustls::RustlsConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use crate::config::TlsFiles;
use crate::state::fingerprint;

/// Installs the process-wide rustls crypto provider (ring). Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// TLS files that cannot be used: which, and why.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The serving certificate or its key.
    #[error("cannot use TLS certificate {cert} with key {key}: {why}")]
    Pair {
        /// The certificate file.
        cert: String,
        /// The key file.
        key: String,
        /// What is wrong.
        why: String,
    },
    /// The admission client CA.
    #[error("cannot use admission client CA {path}: {why}")]
    ClientCa {
        /// The CA file.
        path: String,
        /// What is wrong.
        why: String,
    },
}

/// Loads the files.
pub async fn load(files: &TlsFiles) -> Result<RustlsConfig, TlsError> {
    Ok(RustlsConfig::from_config(Arc::new(
        server_config(files).await?,
    )))
}

/// The protocols offered by ALPN, as axum-server's own loaders set them.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

async fn server_config(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    install_crypto_provider();
    let pair = |why: String| TlsError::Pair {
        cert: files.cert.display().to_string(),
        key: files.key.display().to_string(),
        why,
    };
    let cert = tokio::fs::read(&files.cert)
        .await
        .map_err(|e| pair(format!("cannot read {}: {e}", files.cert.display())))?;
    let chain = CertificateDer::pem_slice_iter(&cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pair(format!("{}: {e}", files.cert.display())))?;
    if chain.is_empty() {
        return Err(pair(format!(
            "{} holds no PEM certificate",
            files.cert.display()
        )));
    }
    let key = tokio::fs::read(&files.key)
        .await
        .map_err(|e| pair(format!("cannot read {}: {e}", files.key.display())))?;
    let key = PrivateKeyDer::from_pem_slice(&key)
        .map_err(|e| pair(format!("{}: {e}", files.key.display())))?;
    let builder = ServerConfig::builder();
    let builder = match &files.admission_client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => builder.with_client_cert_verifier(client_verifier(ca).await?),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| pair(e.to_string()))?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// Verifies a presented client certificate against the CA file (chain,
/// validity, and the ClientAuth extended key usage); a client that presents
/// none is let through the handshake.
async fn client_verifier(
    path: &Path,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let invalid = |why: String| TlsError::ClientCa {
        path: path.display().to_string(),
        why,
    };
    let pem = tokio::fs::read(path)
        .await
        .map_err(|e| invalid(format!("cannot read it: {e}")))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| invalid(e.to_string()))?;
        roots.add(cert).map_err(|e| invalid(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(invalid("it holds no PEM certificate".to_owned()));
    }
    WebPkiClientVerifier::builder(Arc::new(roots))
        .allow_unauthenticated()
        .build()
        .map_err(|e| invalid(e.to_string()))
}

fn files_fingerprint(files: &TlsFiles) -> [Option<u64>; 3] {
    [
        fingerprint(&files.cert),
        fingerprint(&files.key),
        files.admission_client_ca.as_deref().and_then(fingerprint),
    ]
}

/// Watches the files and reloads `config` when any of them changes.
pub async fn watch(config: RustlsConfig, files: TlsFiles, interval: Duration) {
    let mut last = files_fingerprint(&files);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let now = files_fingerprint(&files);
        if now == last {
            continue;
        }
        last = now;
        match server_config(&files).await {
            Ok(new) => {
                config.reload_from_config(Arc::new(new));
                tracing::info!(
                    cert = %files.cert.display(),
                    admission_client_ca = files.admission_client_ca.as_ref().map(|p| p.display().to_string()),
                    "TLS certificate reloaded"
                );
            }
            Err(err) => tracing::error!(
                error = %err,
                "TLS certificate reload failed; keeping the current certificate"
            ),
        }
    }
}
