//! What every handler shares: the current policy behind a `watch` channel,
//! the metrics, and the request limits. The policy file is re-read when it
//! changes; a broken new version keeps the last good policy and logs why.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use imagegate_core::Policy;
use tokio::sync::watch;

use crate::metrics::Metrics;

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    /// The policy in force.
    pub policy: watch::Receiver<Arc<Policy>>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// The largest request body accepted.
    pub max_body_bytes: usize,
    /// The audit record.
    pub audit: crate::audit::Auditor,
    /// The organisation whose policy the admission doors apply
    /// (`--policy-org`), which their audit events name.
    pub policy_org: Option<String>,
    /// Whether the admission doors answer only connections that presented a
    /// certificate from the admission client CA (`--admission-client-ca`).
    pub require_client_certificate: bool,
}

impl AppState {
    /// State around a fixed policy (tests, and servers without a policy file).
    pub fn fixed(policy: Policy, max_body_bytes: usize) -> AppState {
        let (_tx, rx) = watch::channel(Arc::new(policy));
        AppState {
            policy: rx,
            metrics: Arc::new(Metrics::new()),
            max_body_bytes,
            audit: crate::audit::Auditor::disabled(),
            policy_org: None,
            require_client_certificate: false,
        }
    }

    /// The policy in force now.
    pub fn policy(&self) -> Arc<Policy> {
        self.policy.borrow().clone()
    }
}

/// A policy file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyFileError {
    /// It cannot be read.
    #[error("cannot read policy {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// It does not load; one problem per line, each `FILE:line:column: field: message`.
    #[error("policy {path} does not load:\n{report}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem.
        report: String,
    },
}

/// The files a policy's `spec.rego` names, resolved against the policy's directory.
pub fn rego_paths(policy_path: &Path, policy: &Policy) -> Vec<PathBuf> {
    #[cfg(feature = "rego")]
    if let Some(rego) = &policy.rego {
        return rego.files().map(|f| resolve(policy_path, f)).collect();
    }
    let _ = (policy_path, policy);
    Vec::new()
}

fn resolve(policy_path: &Path, name: &str) -> PathBuf {
    let p = Path::new(name);
    if p.is_absolute() {
        p.to_owned()
    } else {
        policy_path.parent().unwrap_or(Path::new(".")).join(p)
    }
}

/// Reads and compiles a policy file; files named in `spec.rego` are read
/// relative to it.
pub fn load_policy(path: &Path) -> Result<Policy, PolicyFileError> {
    let text = std::fs::read(path).map_err(|source| PolicyFileError::Read {
        path: path.to_owned(),
        error: source,
    })?;
    let text = String::from_utf8(text).map_err(|e| PolicyFileError::Invalid {
        path: path.to_owned(),
        report: format!(
            "  {}: not UTF-8 text (invalid byte at offset {})",
            path.display(),
            e.utf8_error().valid_up_to()
        ),
    })?;
    let read = |name: &str| {
        let file = resolve(path, name);
        std::fs::read_to_string(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))
    };
    Policy::load_with_files(&text, &read).map_err(|errors| PolicyFileError::Invalid {
        path: path.to_owned(),
        report: errors
            .0
            .iter()
            .map(|e| format!("  {}:{e}", path.display()))
            .collect::<Vec<_>>()
            .join("\n"),
    })
}

/// A file's content fingerprint, to notice changes that keep the mtime (a
/// Kubernetes ConfigMap swaps a symlink) and to skip rewrites that change nothing.
pub(crate) fn fingerprint(path: &Path) -> Option<u64> {
    fingerprint_all(std::slice::from_ref(&path.to_owned()))
}

/// A text's fingerprint: a policy stored in the store, compared to the last one seen.
pub(crate) fn fingerprint_text(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

/// One fingerprint over several files (a policy and its Rego modules).
pub(crate) fn fingerprint_all(paths: &[PathBuf]) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for path in paths {
        std::fs::read(path).ok()?.hash(&mut h);
    }
    Some(h.finish())
}

/// Re-reads `path` every `interval`; when its content changes, loads it and
/// publishes the new policy, or logs the error and keeps the last good one.
pub async fn watch_policy(
    path: PathBuf,
    tx: watch::Sender<Arc<Policy>>,
    metrics: Arc<Metrics>,
    interval: Duration,
) {
    let watched = |policy: &Policy| {
        let mut files = vec![path.clone()];
        files.extend(rego_paths(&path, policy));
        files
    };
    let mut files = watched(&tx.borrow());
    let mut last = fingerprint_all(&files);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let now = fingerprint_all(&files);
        if now == last {
            continue;
        }
        last = now;
        let loaded = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || load_policy(&path)).await
        };
        match loaded {
            Ok(Ok(policy)) => {
                tracing::info!(policy = %path.display(), name = %policy.name, mode = %policy.mode, "policy reloaded");
                metrics.policy_reload(true);
                files = watched(&policy);
                last = fingerprint_all(&files);
                if tx.send(Arc::new(policy)).is_err() {
                    return;
                }
            }
            Ok(Err(err)) => {
                tracing::error!(policy = %path.display(), error = %err, "policy reload failed; keeping the last good policy");
                metrics.policy_reload(false);
            }
            Err(join) => {
                tracing::error!(error = %join, "policy reload task failed; keeping the last good policy");
                metrics.policy_reload(false);
            }
        }
    }
}

/// An organisation's policy from the store, compiled.
pub fn org_policy(identity: &crate::identity::Identity, org: &str) -> Result<Policy, String> {
    let org = identity.org(org).map_err(|e| e.to_string())?;
    Policy::load(&org.policy).map_err(|e| format!("its policy does not load: {e}"))
}

/// Re-reads an organisation's policy from the store every second; when it
/// changes, publishes it (a policy set in the store takes effect at the
/// admission doors within a second), or logs why not and keeps the last good one.
pub async fn watch_org_policy(
    identity: crate::identity::Identity,
    org: String,
    tx: watch::Sender<Arc<Policy>>,
    metrics: Arc<Metrics>,
) {
    let mut last = None;
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let read = {
            let identity = identity.clone();
            let org = org.clone();
            tokio::task::spawn_blocking(move || identity.org(&org)).await
        };
        let text = match read {
            Ok(Ok(o)) => o.policy,
            Ok(Err(e)) => {
                tracing::error!(org = %org, error = %e, "cannot read the organisation's policy; keeping the last good one");
                continue;
            }
            Err(e) => {
                tracing::error!(org = %org, error = %e, "reading the organisation's policy failed");
                continue;
            }
        };
        let now = fingerprint_text(&text);
        if last == Some(now) {
            continue;
        }
        let first = last.is_none();
        last = Some(now);
        if first {
            // Loaded at start already.
            continue;
        }
        match Policy::load(&text) {
            Ok(policy) => {
                tracing::info!(org = %org, name = %policy.name, mode = %policy.mode, "admission policy reloaded from the organisation");
                metrics.policy_reload(true);
                if tx.send(Arc::new(policy)).is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::error!(org = %org, error = %e, "the organisation's new policy does not load; keeping the last good one");
                metrics.policy_reload(false);
            }
        }
    }
}

/// Runs `work` (store calls, password hashing) on the blocking pool, never
/// on the async runtime's threads, and returns what it returned: the people's
/// side (API, console) calls the store through this, so a long query never
/// holds a thread a door needs. A panic in `work` is resumed here.
pub async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => unreachable_cancelled(e),
        },
    }
}

/// Blocking tasks are never cancelled (only a shutting-down runtime drops
/// them, and then nothing awaits them).
fn unreachable_cancelled(e: tokio::task::JoinError) -> ! {
    panic!("a blocking task was cancelled: {e}")
}
