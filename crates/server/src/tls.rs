//! HTTPS: the serving certificate and key, reloaded when the files change so
//! cert-manager's rotation needs no restart. A broken new pair keeps the old
//! one and logs why.

use std::time::Duration;

use axum_server::tls_rustls::RustlsConfig;

use crate::config::TlsFiles;
use crate::state::fingerprint;

/// Installs the process-wide rustls crypto provider (ring). Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A certificate pair that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("cannot use TLS certificate {cert} with key {key}: {source}")]
pub struct TlsError {
    cert: String,
    key: String,
    #[source]
    source: std::io::Error,
}

/// Loads the pair.
pub async fn load(files: &TlsFiles) -> Result<RustlsConfig, TlsError> {
    install_crypto_provider();
    RustlsConfig::from_pem_file(&files.cert, &files.key)
        .await
        .map_err(|source| TlsError {
            cert: files.cert.display().to_string(),
            key: files.key.display().to_string(),
            source,
        })
}

fn pair_fingerprint(files: &TlsFiles) -> (Option<u64>, Option<u64>) {
    (fingerprint(&files.cert), fingerprint(&files.key))
}

/// Watches the pair and reloads `config` when either file changes.
pub async fn watch(config: RustlsConfig, files: TlsFiles, interval: Duration) {
    let mut last = pair_fingerprint(&files);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let now = pair_fingerprint(&files);
        if now == last {
            continue;
        }
        last = now;
        match config.reload_from_pem_file(&files.cert, &files.key).await {
            Ok(()) => tracing::info!(cert = %files.cert.display(), "TLS certificate reloaded"),
            Err(err) => tracing::error!(
                cert = %files.cert.display(),
                key = %files.key.display(),
                error = %err,
                "TLS certificate reload failed; keeping the current certificate"
            ),
        }
    }
}
