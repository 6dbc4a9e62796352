//! Server configuration: the YAML file users write, merged under flags and
//! environment variables into one plain struct. Parsed once at start; handlers
//! never read flags or the environment.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::gateway::upstream::UpstreamConfig;

/// The address `imagegate serve` listens on by default.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8443";
/// The largest request body accepted by default. kube-apiserver's objects are
/// at most about 1.5 MiB (etcd's limit), and an UPDATE review carries two.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// How often watched files (policy, certificate) are checked by default.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(2);
/// How long in-flight requests may take to finish after SIGTERM by default.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// The configuration file (`--config FILE`). Relative paths in it are relative
/// to the file's directory.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileConfig {
    /// `ADDR:PORT` to listen on.
    #[serde(default)]
    pub listen: Option<String>,
    /// PEM certificate chain; with `tlsKey`, serve HTTPS.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificates; the admission doors then answer only clients
    /// presenting a certificate one of them signed. Needs `tlsCert`/`tlsKey`.
    #[serde(default)]
    pub admission_client_ca: Option<PathBuf>,
    /// The policy file.
    #[serde(default)]
    pub policy: Option<PathBuf>,
    /// `json` (default) or `text` logs.
    #[serde(default)]
    pub log_format: Option<LogFormat>,
    /// The largest request body accepted, in bytes.
    #[serde(default)]
    pub max_body_bytes: Option<usize>,
    /// How often watched files are checked, in seconds.
    #[serde(default)]
    pub reload_interval_seconds: Option<u64>,
    /// How long in-flight requests may take after SIGTERM, in seconds.
    #[serde(default)]
    pub shutdown_grace_seconds: Option<u64>,
    /// The embedded store's directory (also holds the signing key).
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// A database URL (`sqlite:PATH`) instead of the data directory's store.
    #[serde(default)]
    pub database_url: Option<String>,
    /// The gateway's public URL (`https://gateway.corp.example`): the token
    /// realm is `<publicUrl>/token`, the token service its host.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Upstream registries of the gateway.
    #[serde(default)]
    pub upstreams: Vec<UpstreamFile>,
    /// Allow anonymous pulls under this organisation's policy (sign-in is
    /// required otherwise); also the policy of users in no organisation.
    #[serde(default)]
    pub allow_anonymous: Option<String>,
    /// The organisation whose policy users in no organisation get (without
    /// allowing anonymous pulls).
    #[serde(default)]
    pub default_org: Option<String>,
    /// Take the admission doors' policy from this organisation in the store
    /// instead of a file.
    #[serde(default)]
    pub policy_org: Option<String>,
    /// Refuse at every door what cannot be recorded in the audit log.
    #[serde(default)]
    pub audit_required: Option<bool>,
}

/// One upstream registry in the config file.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpstreamFile {
    /// The registry host it serves (`ghcr.io`, `docker.io`).
    pub host: String,
    /// Its URL (`https://ghcr.io`).
    pub url: String,
    /// Username for it.
    #[serde(default)]
    pub username: Option<String>,
    /// File holding the password or token for it.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Token service hosts that may receive the credentials besides its own.
    #[serde(default)]
    pub auth_hosts: Vec<String>,
}

/// Log line format.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line (default).
    #[default]
    Json,
    /// Human-readable lines.
    Text,
}

/// Values given by flag or environment variable; they win over the file.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--listen` / `IMAGEGATE_LISTEN`.
    pub listen: Option<String>,
    /// `--tls-cert` / `IMAGEGATE_TLS_CERT`.
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key` / `IMAGEGATE_TLS_KEY`.
    pub tls_key: Option<PathBuf>,
    /// `--admission-client-ca` / `IMAGEGATE_ADMISSION_CLIENT_CA`.
    pub admission_client_ca: Option<PathBuf>,
    /// `--policy` / `IMAGEGATE_POLICY`.
    pub policy: Option<PathBuf>,
    /// `--log-format` / `IMAGEGATE_LOG_FORMAT`.
    pub log_format: Option<LogFormat>,
    /// `--max-body-bytes` / `IMAGEGATE_MAX_BODY_BYTES`.
    pub max_body_bytes: Option<usize>,
    /// `--reload-interval-seconds` / `IMAGEGATE_RELOAD_INTERVAL_SECONDS`.
    pub reload_interval_seconds: Option<u64>,
    /// `--shutdown-grace-seconds` / `IMAGEGATE_SHUTDOWN_GRACE_SECONDS`.
    pub shutdown_grace_seconds: Option<u64>,
    /// `--data-dir` / `IMAGEGATE_DATA_DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--database-url` / `IMAGEGATE_DATABASE_URL`.
    pub database_url: Option<String>,
    /// `--public-url` / `IMAGEGATE_PUBLIC_URL`.
    pub public_url: Option<String>,
    /// `--upstream HOST=URL`, repeatable.
    pub upstreams: Vec<String>,
    /// `--upstream-credentials HOST=USER:PASSWORD_FILE`, repeatable.
    pub upstream_credentials: Vec<String>,
    /// `--allow-anonymous ORG` / `IMAGEGATE_ALLOW_ANONYMOUS`.
    pub allow_anonymous: Option<String>,
    /// `--default-org ORG` / `IMAGEGATE_DEFAULT_ORG`.
    pub default_org: Option<String>,
    /// `--policy-org ORG` / `IMAGEGATE_POLICY_ORG`.
    pub policy_org: Option<String>,
    /// `--audit-required` / `IMAGEGATE_AUDIT_REQUIRED`.
    pub audit_required: Option<bool>,
}

/// The certificate and key files of an HTTPS listener, and the CA its
/// admission doors' clients must present a certificate from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// PEM CA certificates that sign the admission doors' client certificates
    /// (kube-apiserver's); `None`: the admission doors answer anyone.
    pub admission_client_ca: Option<PathBuf>,
}

/// The resolved configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Where to listen.
    pub listen: SocketAddr,
    /// HTTPS files; plain HTTP when `None`.
    pub tls: Option<TlsFiles>,
    /// The policy file; without one every valid, unambiguous reference is allowed.
    pub policy: Option<PathBuf>,
    /// Log format.
    pub log_format: LogFormat,
    /// The largest request body accepted.
    pub max_body_bytes: usize,
    /// How often watched files are checked.
    pub reload_interval: Duration,
    /// How long in-flight requests may take after SIGTERM.
    pub shutdown_grace: Duration,
    /// The store and signing key's directory.
    pub data_dir: PathBuf,
    /// A database URL instead of the data directory's store.
    pub database_url: Option<String>,
    /// The gateway's public URL, without a trailing slash.
    pub public_url: Option<String>,
    /// The gateway's upstreams (Docker Hub is added for `docker.io` unless listed).
    pub upstreams: Vec<UpstreamConfig>,
    /// Whether anonymous pulls are allowed (under `default_org`'s policy).
    pub allow_anonymous: bool,
    /// The organisation whose policy anonymous callers (when allowed) and
    /// users in no organisation get.
    pub default_org: Option<String>,
    /// The organisation whose policy the admission doors use instead of a file.
    pub policy_org: Option<String>,
    /// Whether the doors refuse what they cannot record (registry 503
    /// `UNAVAILABLE`, admission denied with `audit log unavailable`).
    pub audit_required: bool,
}

/// The data directory used when none is given.
pub const DEFAULT_DATA_DIR: &str = "imagegate-data";

/// A configuration that cannot be used: which setting, and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The file does not parse.
    #[error("config {path}:{line}:{column}: {field}{message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// 1-based column.
        column: u64,
        /// The field's path, with a trailing `: `, or empty.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A setting has a bad value.
    #[error("{setting}: {message}")]
    Invalid {
        /// The setting (`listen`, `tlsCert`...).
        setting: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl FileConfig {
    /// Reads a config file, resolving its relative paths against its directory.
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            error: source,
        })?;
        let mut config = FileConfig::parse(&text).map_err(|e| match e {
            ConfigError::Parse {
                line,
                column,
                field,
                message,
                ..
            } => ConfigError::Parse {
                path: path.to_owned(),
                line,
                column,
                field,
                message,
            },
            other => other,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let upstream_files = config
            .upstreams
            .iter_mut()
            .filter_map(|u| u.password_file.as_mut());
        for p in [
            &mut config.tls_cert,
            &mut config.tls_key,
            &mut config.admission_client_ca,
            &mut config.policy,
            &mut config.data_dir,
        ]
        .into_iter()
        .flatten()
        .chain(upstream_files)
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(config)
    }

    /// Parses config text.
    pub fn parse(text: &str) -> Result<FileConfig, ConfigError> {
        if text.trim().is_empty() {
            return Ok(FileConfig::default());
        }
        imagegate_core::policy::deserialize_document(text).map_err(|errors| {
            let first = errors.0.into_iter().next();
            let (line, column, field, message) =
                first.map_or((0, 0, String::new(), String::new()), |e| {
                    let field = if e.path.is_empty() {
                        String::new()
                    } else {
                        format!("{}: ", e.path)
                    };
                    (e.line, e.column, field, e.message)
                });
            ConfigError::Parse {
                path: PathBuf::new(),
                line,
                column,
                field,
                message,
            }
        })
    }
}

impl Config {
    /// Merges flags and environment over the file over the defaults.
    pub fn resolve(over: Overrides, file: FileConfig) -> Result<Config, ConfigError> {
        let listen_text = over
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen = listen_text.parse().map_err(|_| ConfigError::Invalid {
            setting: "listen",
            message: format!(
                "{listen_text:?} is not ADDR:PORT (for example 0.0.0.0:8443 or [::]:8443)"
            ),
        })?;
        let admission_client_ca = over.admission_client_ca.or(file.admission_client_ca);
        let tls = match (
            over.tls_cert.or(file.tls_cert),
            over.tls_key.or(file.tls_key),
        ) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert,
                key,
                admission_client_ca,
            }),
            (None, None) if admission_client_ca.is_some() => {
                return Err(ConfigError::Invalid {
                    setting: "admissionClientCa",
                    message: "client certificates are verified in the TLS handshake: give tlsCert and tlsKey (--tls-cert, --tls-key) too".to_owned(),
                });
            }
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::Invalid {
                    setting: "tlsKey",
                    message: "a certificate needs its key (--tls-key)".to_owned(),
                });
            }
            (None, Some(_)) => {
                return Err(ConfigError::Invalid {
                    setting: "tlsCert",
                    message: "a key needs its certificate (--tls-cert)".to_owned(),
                });
            }
        };
        let max_body_bytes = over
            .max_body_bytes
            .or(file.max_body_bytes)
            .unwrap_or(DEFAULT_MAX_BODY_BYTES);
        if max_body_bytes < 1024 {
            return Err(ConfigError::Invalid {
                setting: "maxBodyBytes",
                message: format!("{max_body_bytes} is too small to hold a review (at least 1024)"),
            });
        }
        let seconds = |v: Option<u64>, default: Duration, setting: &'static str, min: u64| match v {
            None => Ok(default),
            Some(s) if s >= min => Ok(Duration::from_secs(s)),
            Some(s) => Err(ConfigError::Invalid {
                setting,
                message: format!("{s} is less than {min}"),
            }),
        };
        let public_url = over.public_url.or(file.public_url);
        if let Some(url) = &public_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(ConfigError::Invalid {
                setting: "publicUrl",
                message: format!(
                    "{url:?} is not an http(s) URL (for example https://gateway.corp.example)"
                ),
            });
        }
        let upstreams = upstreams(&file.upstreams, &over.upstreams, &over.upstream_credentials)?;
        let allow_anonymous = over.allow_anonymous.or(file.allow_anonymous);
        if policy_conflict(
            &over.policy,
            &file.policy,
            &over.policy_org,
            &file.policy_org,
        ) {
            return Err(ConfigError::Invalid {
                setting: "policyOrg",
                message: "give the admission doors' policy as a file (--policy) or an organisation (--policy-org), not both".to_owned(),
            });
        }
        Ok(Config {
            data_dir: over
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            database_url: over.database_url.or(file.database_url),
            public_url: public_url.map(|u| u.trim_end_matches('/').to_owned()),
            upstreams,
            allow_anonymous: allow_anonymous.is_some(),
            default_org: allow_anonymous.or(over.default_org).or(file.default_org),
            policy_org: over.policy_org.or(file.policy_org),
            audit_required: over.audit_required.or(file.audit_required).unwrap_or(false),
            listen,
            tls,
            policy: over.policy.or(file.policy),
            log_format: over.log_format.or(file.log_format).unwrap_or_default(),
            max_body_bytes,
            reload_interval: seconds(
                over.reload_interval_seconds
                    .or(file.reload_interval_seconds),
                DEFAULT_RELOAD_INTERVAL,
                "reloadIntervalSeconds",
                1,
            )?,
            shutdown_grace: seconds(
                over.shutdown_grace_seconds.or(file.shutdown_grace_seconds),
                DEFAULT_SHUTDOWN_GRACE,
                "shutdownGraceSeconds",
                0,
            )?,
        })
    }
}

fn policy_conflict(
    over: &Option<PathBuf>,
    file: &Option<PathBuf>,
    over_org: &Option<String>,
    file_org: &Option<String>,
) -> bool {
    // A flag wins over the file; only two sources at the same level conflict.
    (over.is_some() && over_org.is_some())
        || (over.is_none() && over_org.is_none() && file.is_some() && file_org.is_some())
}

/// The upstreams from the file, then `--upstream HOST=URL` (replacing the
/// file's entry for the same host), then `--upstream-credentials`.
fn upstreams(
    file: &[UpstreamFile],
    flags: &[String],
    credentials: &[String],
) -> Result<Vec<UpstreamConfig>, ConfigError> {
    let invalid =
        |setting: &'static str, message: String| ConfigError::Invalid { setting, message };
    let mut out: Vec<UpstreamConfig> = Vec::new();
    for u in file {
        let credentials = match (&u.username, &u.password_file) {
            (Some(user), Some(file)) => Some((user.clone(), read_secret(file, "upstreams")?)),
            (None, None) => None,
            _ => {
                return Err(invalid(
                    "upstreams",
                    format!("upstream {}: username and passwordFile go together", u.host),
                ));
            }
        };
        out.push(UpstreamConfig {
            host: u.host.clone(),
            url: u.url.clone(),
            credentials,
            auth_hosts: u.auth_hosts.clone(),
        });
    }
    for flag in flags {
        let (host, url) = flag.split_once('=').ok_or_else(|| {
            invalid(
                "upstream",
                format!("{flag:?} is not HOST=URL (for example ghcr.io=https://ghcr.io)"),
            )
        })?;
        if host.is_empty() || !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(invalid(
                "upstream",
                format!("{flag:?} is not HOST=URL with an http(s) URL"),
            ));
        }
        out.retain(|u| !u.host.eq_ignore_ascii_case(host));
        out.push(UpstreamConfig {
            host: host.to_owned(),
            url: url.to_owned(),
            credentials: None,
            auth_hosts: Vec::new(),
        });
    }
    for flag in credentials {
        let parsed = flag
            .split_once('=')
            .and_then(|(host, rest)| rest.split_once(':').map(|(user, file)| (host, user, file)));
        let Some((host, user, file)) =
            parsed.filter(|(h, u, f)| !h.is_empty() && !u.is_empty() && !f.is_empty())
        else {
            return Err(invalid(
                "upstreamCredentials",
                format!("{flag:?} is not HOST=USER:PASSWORD_FILE"),
            ));
        };
        let secret = read_secret(Path::new(file), "upstreamCredentials")?;
        let hub = imagegate_core::reference::is_docker_hub_host(host);
        if hub
            && !out
                .iter()
                .any(|u| imagegate_core::reference::is_docker_hub_host(&u.host))
        {
            out.push(UpstreamConfig::docker_hub());
        }
        let Some(upstream) = out.iter_mut().find(|u| {
            u.host.eq_ignore_ascii_case(host)
                || (hub && imagegate_core::reference::is_docker_hub_host(&u.host))
        }) else {
            return Err(invalid(
                "upstreamCredentials",
                format!("no upstream is configured for {host} (add --upstream {host}=URL)"),
            ));
        };
        upstream.credentials = Some((user.to_owned(), secret));
    }
    Ok(out)
}

/// A password file's content, without the trailing newline.
fn read_secret(path: &Path, setting: &'static str) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Invalid {
        setting,
        message: format!("cannot read password file {}: {e}", path.display()),
    })?;
    let secret = text.trim_end_matches(['\n', '\r']).to_owned();
    if secret.is_empty() {
        return Err(ConfigError::Invalid {
            setting,
            message: format!("password file {} is empty", path.display()),
        });
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_which_wins_over_defaults() {
        let file =
            FileConfig::parse("listen: 127.0.0.1:9000\npolicy: p.yaml\nmaxBodyBytes: 2048\n")
                .unwrap();
        let c = Config::resolve(Overrides::default(), file.clone()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(c.max_body_bytes, 2048);
        assert_eq!(c.reload_interval, DEFAULT_RELOAD_INTERVAL);
        let over = Overrides {
            listen: Some("127.0.0.1:9001".into()),
            ..Overrides::default()
        };
        let c = Config::resolve(over, file).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:9001");
        assert_eq!(c.policy, Some(PathBuf::from("p.yaml")));
    }

    #[test]
    fn bad_settings_name_themselves() {
        let e = FileConfig::parse("listne: x\n").unwrap_err().to_string();
        assert!(e.contains("1:1: listne: unknown field `listne`"), "{e}");
        let e = Config::resolve(
            Overrides {
                listen: Some("localhost".into()),
                ..Overrides::default()
            },
            FileConfig::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("listen: \"localhost\" is not ADDR:PORT"),
            "{e}"
        );
        let e = Config::resolve(
            Overrides {
                tls_cert: Some("c.pem".into()),
                ..Overrides::default()
            },
            FileConfig::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("tlsKey: "), "{e}");
    }

    #[test]
    fn an_admission_client_ca_without_tls_is_refused_naming_both_settings() {
        for (over, file) in [
            (
                Overrides {
                    admission_client_ca: Some("client-ca.crt".into()),
                    ..Overrides::default()
                },
                FileConfig::default(),
            ),
            (
                Overrides::default(),
                FileConfig::parse("admissionClientCa: client-ca.crt\n").unwrap(),
            ),
        ] {
            let e = Config::resolve(over, file).unwrap_err().to_string();
            assert_eq!(
                e,
                "admissionClientCa: client certificates are verified in the TLS handshake: give tlsCert and tlsKey (--tls-cert, --tls-key) too"
            );
        }
    }

    #[test]
    fn the_admission_client_ca_is_relative_to_the_config_file_and_the_flag_wins() {
        let dir =
            std::env::temp_dir().join(format!("imagegate-config-client-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("serve.yaml");
        std::fs::write(
            &path,
            "tlsCert: tls.crt\ntlsKey: tls.key\nadmissionClientCa: client-ca.crt\n",
        )
        .unwrap();
        let file = FileConfig::load(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let c = Config::resolve(Overrides::default(), file.clone()).unwrap();
        let tls = c.tls.unwrap();
        assert_eq!(tls.admission_client_ca, Some(dir.join("client-ca.crt")));
        let over = Overrides {
            admission_client_ca: Some("/etc/kubernetes/pki/ca.crt".into()),
            ..Overrides::default()
        };
        let c = Config::resolve(over, file).unwrap();
        assert_eq!(
            c.tls.unwrap().admission_client_ca,
            Some(PathBuf::from("/etc/kubernetes/pki/ca.crt"))
        );
    }
}
