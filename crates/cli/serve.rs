//! `imagegate serve`: the registry gateway and the admission doors over
//! HTTP(S) until SIGTERM.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use imagegate_server::config::{Config, FileConfig, LogFormat, Overrides};

use crate::EXIT_OK;

#[derive(clap::Args)]
pub struct Args {
    /// Configuration file (YAML); flags and environment variables override it.
    #[arg(long, value_name = "FILE", env = "IMAGEGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 0.0.0.0:8443].
    #[arg(long, value_name = "ADDR:PORT", env = "IMAGEGATE_LISTEN")]
    listen: Option<String>,
    /// PEM certificate chain; with --tls-key, serve HTTPS (reloaded when it changes).
    #[arg(long, value_name = "FILE", env = "IMAGEGATE_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of the certificate.
    #[arg(long, value_name = "FILE", env = "IMAGEGATE_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// PEM CA certificates: /admission/validate and /imagepolicy then answer
    /// only clients presenting a certificate they signed (kube-apiserver's
    /// webhook kubeconfig); other paths need none. Needs --tls-cert/--tls-key.
    #[arg(long, value_name = "FILE", env = "IMAGEGATE_ADMISSION_CLIENT_CA")]
    admission_client_ca: Option<PathBuf>,
    /// Policy file (reloaded when it changes; a broken version keeps the last good one).
    #[arg(long, value_name = "FILE", env = "IMAGEGATE_POLICY")]
    policy: Option<PathBuf>,
    /// Log format [default: json].
    #[arg(long, value_enum, env = "IMAGEGATE_LOG_FORMAT")]
    log_format: Option<LogFormatArg>,
    /// Largest request body accepted, in bytes [default: 4194304].
    #[arg(long, value_name = "BYTES", env = "IMAGEGATE_MAX_BODY_BYTES")]
    max_body_bytes: Option<usize>,
    /// How often the policy and certificate files are checked, in seconds [default: 2].
    #[arg(
        long,
        value_name = "SECONDS",
        env = "IMAGEGATE_RELOAD_INTERVAL_SECONDS"
    )]
    reload_interval_seconds: Option<u64>,
    /// How long in-flight requests may take after SIGTERM, in seconds [default: 20].
    #[arg(long, value_name = "SECONDS", env = "IMAGEGATE_SHUTDOWN_GRACE_SECONDS")]
    shutdown_grace_seconds: Option<u64>,
    /// The admission doors take their policy from this organisation in the
    /// store (re-read every second) instead of a file.
    #[arg(
        long,
        value_name = "ORG",
        env = "IMAGEGATE_POLICY_ORG",
        conflicts_with = "policy"
    )]
    policy_org: Option<String>,
    /// The organisation whose policy signed-in users in no organisation get
    /// (without it they are refused).
    #[arg(long, value_name = "ORG", env = "IMAGEGATE_DEFAULT_ORG")]
    default_org: Option<String>,
    /// Refuse what cannot be recorded in the audit log (registry 503
    /// UNAVAILABLE, admission denied with "audit log unavailable") instead of
    /// deciding unrecorded.
    #[arg(long, env = "IMAGEGATE_AUDIT_REQUIRED")]
    audit_required: bool,
    #[command(flatten)]
    store: crate::admin::StoreArgs,
    /// The gateway's public URL (`https://gateway.corp.example`); the token realm is `URL/token`.
    #[arg(long, value_name = "URL", env = "IMAGEGATE_PUBLIC_URL")]
    public_url: Option<String>,
    /// An upstream registry of the gateway, HOST=URL (repeatable; docker.io is Docker Hub unless given).
    #[arg(long, value_name = "HOST=URL")]
    upstream: Vec<String>,
    /// Credentials for an upstream, HOST=USER:PASSWORD_FILE (repeatable).
    #[arg(long, value_name = "HOST=USER:PASSWORD_FILE")]
    upstream_credentials: Vec<String>,
    /// Allow anonymous pulls under this organisation's policy (sign-in is required otherwise).
    #[arg(long, value_name = "ORG", env = "IMAGEGATE_ALLOW_ANONYMOUS")]
    allow_anonymous: Option<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormatArg {
    Json,
    Text,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let file = match &args.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let overrides = Overrides {
        listen: args.listen,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        admission_client_ca: args.admission_client_ca,
        policy: args.policy,
        log_format: args.log_format.map(|f| match f {
            LogFormatArg::Json => LogFormat::Json,
            LogFormatArg::Text => LogFormat::Text,
        }),
        max_body_bytes: args.max_body_bytes,
        reload_interval_seconds: args.reload_interval_seconds,
        shutdown_grace_seconds: args.shutdown_grace_seconds,
        data_dir: args.store.data_dir,
        database_url: args.store.database_url,
        public_url: args.public_url,
        upstreams: args.upstream,
        upstream_credentials: args.upstream_credentials,
        allow_anonymous: args.allow_anonymous,
        default_org: args.default_org,
        policy_org: args.policy_org,
        audit_required: args.audit_required.then_some(true),
    };
    let config = Config::resolve(overrides, file)?;
    init_logs(config.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(imagegate_server::serve(config, terminated(), |_| {}))?;
    Ok(EXIT_OK)
}

fn init_logs(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("IMAGEGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only for a person at a terminal: never escape codes in a file
    // or a log collector, and never with NO_COLOR set.
    let colour = std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stdout);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Completes on SIGTERM (Kubernetes stopping the pod) or Ctrl-C.
async fn terminated() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
