//! Docker token authentication (the `realm` of `WWW-Authenticate: Bearer`):
//! Basic credentials (username + personal access token) in, a short-lived
//! ES256 JWT with `access` claims out. As the token spec says, a caller who
//! lacks some requested access still gets a token carrying only what is
//! granted; push, delete and `registry:catalog:*` are never granted. Policy
//! refusals are left to the registry endpoints, so clients show the words.

use std::net::IpAddr;
use std::path::Path;

use std::time::Duration;

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::identity::{Identity, SignInError};
use crate::throttle::SignInThrottle;
pub use crate::throttle::{FAILURE_WINDOW, MAX_FAILURES};

mod es256;

/// How long an issued token lives.
pub const TOKEN_TTL: Duration = Duration::from_secs(300);
/// The clock skew allowed between this server and another replica (or
/// itself) when checking a token's `exp`, `nbf` and `iat`, in seconds.
pub const CLOCK_SKEW: u64 = 5;
/// The door's name in metrics and audit records (failed sign-ins).
pub const DOOR: &str = "token";
/// The reason code of a failed sign-in in the audit record.
pub const SIGN_IN_FAILED: &str = "sign_in_failed";
/// The signing key's file in the data directory.
pub const SIGNING_KEY_FILE: &str = "signing-key.pem";

/// The key tokens are signed with (ECDSA P-256), and its `kid`.
pub struct Signer {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// Why the signing key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    /// Reading or writing the key file failed.
    #[error("signing key {path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// The key is not an ECDSA P-256 PKCS#8 PEM key.
    #[error("signing key {path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
}

impl Signer {
    /// Loads the key from `data_dir`, generating it on first start.
    pub fn load_or_create(data_dir: &Path) -> Result<Signer, SignerError> {
        let path = data_dir.join(SIGNING_KEY_FILE);
        let shown = path.display().to_string();
        let io = |source| SignerError::Io {
            path: shown.clone(),
            error: source,
        };
        let pem =
            match std::fs::read_to_string(&path) {
                Ok(pem) => pem,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
                        .map_err(|e| SignerError::Invalid {
                            path: shown.clone(),
                            message: e.to_string(),
                        })?;
                    let pem = key.serialize_pem();
                    std::fs::create_dir_all(data_dir).map_err(io)?;
                    write_private(&path, &pem).map_err(io)?;
                    pem
                }
                Err(e) => return Err(io(e)),
            };
        Signer::from_pem(&pem).map_err(|message| SignerError::Invalid {
            path: shown,
            message,
        })
    }

    /// A signer from a PKCS#8 PEM P-256 key. Every token is signed and
    /// verified through a `Signer`, so making one installs the ES256
    /// provider first.
    pub fn from_pem(pem: &str) -> Result<Signer, String> {
        es256::install();
        let key = rcgen::KeyPair::from_pem(pem).map_err(|e| e.to_string())?;
        if key.algorithm() != &rcgen::PKCS_ECDSA_P256_SHA256 {
            return Err("not an ECDSA P-256 key".to_owned());
        }
        let public = key.public_key_pem();
        let encoding = EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|e| e.to_string())?;
        let decoding = DecodingKey::from_ec_pem(public.as_bytes()).map_err(|e| e.to_string())?;
        // kid: a fingerprint of the public key, so a rotated key is told apart.
        let digest = Sha256::digest(rcgen::PublicKeyData::der_bytes(&key));
        let kid = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(digest.get(..15).unwrap_or_default());
        Ok(Signer {
            kid,
            encoding,
            decoding,
        })
    }

    /// The key's id.
    pub fn kid(&self) -> &str {
        &self.kid
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(text.as_bytes())
}

/// One `access` claim: what a token lets its bearer do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    /// `repository`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The repository name.
    pub name: String,
    /// Granted actions (only `pull`).
    pub actions: Vec<String>,
}

/// The token's claims.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// The user; empty for anonymous.
    pub sub: String,
    /// The service (audience).
    pub aud: String,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Not before.
    pub nbf: i64,
    /// Issued at.
    pub iat: i64,
    /// Token id.
    pub jti: String,
    /// What it grants.
    pub access: Vec<Access>,
    /// The id of the personal access token it was issued for (none for an
    /// anonymous token): the gateway checks that token's state every
    /// second, so a revocation or expiry stops pulls within two.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pat: Option<String>,
}

/// A requested scope, parsed as distribution does: type before the first
/// `:`, actions after the last, the resource name in between.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    /// `repository`, `registry`, ...
    pub kind: String,
    /// The resource name.
    pub name: String,
    /// Requested actions.
    pub actions: Vec<String>,
}

/// Parses `repository:library/nginx:pull,push`.
pub fn parse_scope(s: &str) -> Option<Scope> {
    let (kind, rest) = s.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    if kind.is_empty() || name.is_empty() {
        return None;
    }
    Some(Scope {
        kind: kind.to_owned(),
        name: name.to_owned(),
        actions: actions
            .split(',')
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

/// What is granted for `scope`: pull on a valid repository name, nothing else.
fn grant(scope: &Scope) -> Option<Access> {
    if scope.kind != "repository" || !scope.actions.iter().any(|a| a == "pull") {
        return None;
    }
    // The name must be one the gateway would route.
    crate::gateway::route::route(&format!("/v2/{}/tags/list", scope.name)).ok()?;
    Some(Access {
        kind: "repository".to_owned(),
        name: scope.name.clone(),
        actions: vec!["pull".to_owned()],
    })
}

/// The token endpoint's answer.
#[derive(Clone, Debug, Serialize)]
pub struct TokenResponse {
    /// The JWT (docker's field).
    pub token: String,
    /// The same JWT (OAuth2's field).
    pub access_token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// RFC 3339 issue time.
    pub issued_at: String,
}

/// Why a token was not issued.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Bad credentials.
    #[error(transparent)]
    SignIn(#[from] SignInError),
    /// Too many failures for this user or source.
    #[error("too many failed sign-ins; try again in a few minutes")]
    RateLimited,
    /// Signing failed.
    #[error("cannot sign a token: {0}")]
    Signing(String),
    /// A token presented to a registry endpoint is not valid.
    #[error("invalid token: {0}")]
    Invalid(String),
}

/// The token service.
pub struct TokenService {
    identity: Identity,
    signer: Signer,
    /// The `service` (audience) tokens are for: the gateway's public name.
    service: String,
    failures: SignInThrottle,
    /// Whether anonymous callers' tokens carry pull access (the deployment
    /// allows anonymous pulls under a default organisation's policy).
    anonymous_pulls: bool,
    /// Where failed sign-ins are recorded.
    audit: crate::audit::Auditor,
}

impl TokenService {
    /// A service issuing tokens for `service` (the gateway's host name).
    pub fn new(identity: Identity, signer: Signer, service: impl Into<String>) -> TokenService {
        TokenService {
            identity,
            signer,
            service: service.into(),
            failures: SignInThrottle::default(),
            anonymous_pulls: false,
            audit: crate::audit::Auditor::disabled(),
        }
    }

    /// Records failed sign-ins in `audit`.
    pub fn with_audit(mut self, audit: crate::audit::Auditor) -> TokenService {
        self.audit = audit;
        self
    }

    /// Lets anonymous callers' tokens carry pull access.
    pub fn with_anonymous_pulls(mut self, allowed: bool) -> TokenService {
        self.anonymous_pulls = allowed;
        self
    }

    /// The audience tokens are issued for.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Authenticates `credentials` (None: anonymous) from `source` and issues
    /// a token for what `scopes` ask that may be granted.
    pub fn issue(
        &self,
        credentials: Option<(&str, &str)>,
        source: Option<IpAddr>,
        scopes: &[String],
    ) -> Result<TokenResponse, TokenError> {
        let (subject, pat) = match credentials {
            None => (String::new(), None),
            Some((user, secret)) => {
                let mut keys = vec![format!("user:{user}")];
                keys.extend(source.map(|ip| format!("ip:{ip}")));
                if self.failures.limited(&keys) {
                    self.record_failure(user, source, scopes, &TokenError::RateLimited);
                    return Err(TokenError::RateLimited);
                }
                match self.identity.sign_in(user, secret) {
                    Ok(token) => (user.to_owned(), Some(token.id)),
                    Err(e) => {
                        self.failures.failed(keys);
                        let e = TokenError::from(e);
                        self.record_failure(user, source, scopes, &e);
                        return Err(e);
                    }
                }
            }
        };
        // Anonymous callers get a token without access unless anonymous pulls
        // are allowed; the registry endpoints answer them (sign-in required,
        // or the default organisation's policy).
        let access: Vec<Access> = if subject.is_empty() && !self.anonymous_pulls {
            Vec::new()
        } else {
            let mut granted: Vec<Access> = scopes
                .iter()
                .filter_map(|s| parse_scope(s))
                .filter_map(|s| grant(&s))
                .collect();
            granted.dedup();
            granted
        };
        let issued = time::OffsetDateTime::now_utc();
        let iat = issued.unix_timestamp();
        let ttl = i64::try_from(TOKEN_TTL.as_secs()).unwrap_or(300);
        let mut jti = [0u8; 12];
        getrandom::fill(&mut jti).map_err(|e| TokenError::Signing(e.to_string()))?;
        let claims = Claims {
            iss: self.service.clone(),
            sub: subject,
            aud: self.service.clone(),
            exp: iat + ttl,
            nbf: iat - 1,
            iat,
            jti: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(jti),
            access,
            pat,
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.signer.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.signer.encoding)
            .map_err(|e| TokenError::Signing(e.to_string()))?;
        Ok(TokenResponse {
            access_token: token.clone(),
            token,
            expires_in: TOKEN_TTL.as_secs(),
            issued_at: issued
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        })
    }

    /// Verifies a token presented to a registry endpoint: signature,
    /// audience, and its times (`exp` passed, `nbf` and `iat` not yet
    /// reached), each with [`CLOCK_SKEW`].
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_audience(&[&self.service]);
        validation.leeway = CLOCK_SKEW;
        validation.validate_nbf = true;
        let claims = jsonwebtoken::decode::<Claims>(token, &self.signer.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| TokenError::Invalid(e.to_string()))?;
        let skew = i64::try_from(CLOCK_SKEW).unwrap_or(0);
        if claims.iat > crate::store::now() + skew {
            return Err(TokenError::Invalid(
                "the token's issue time (iat) is in the future".to_owned(),
            ));
        }
        Ok(claims)
    }

    /// Records a failed sign-in: the token door, the user named, the source
    /// address, what was asked for, and why it failed.
    fn record_failure(
        &self,
        user: &str,
        source: Option<IpAddr>,
        scopes: &[String],
        e: &TokenError,
    ) {
        tracing::info!(target: "imagegate::audit", door = DOOR, user, source = source.map(|s| s.to_string()), error = %e, "sign-in failed");
        let asked = scopes
            .iter()
            .filter_map(|s| parse_scope(s))
            .map(|s| s.name)
            .collect::<Vec<_>>()
            .join(" ");
        self.audit.record_event(crate::store::AuditEvent {
            time_ms: crate::store::now_ms(),
            door: DOOR.to_owned(),
            user: Some(user.to_owned()),
            source: source.map(|s| s.to_string()),
            image: asked.clone(),
            input: asked,
            decision: "deny".to_owned(),
            reason: SIGN_IN_FAILED.to_owned(),
            mode: "enforce".to_owned(),
            message: e.to_string(),
            ..crate::store::AuditEvent::default()
        });
    }
}

impl Claims {
    /// Whether this token lets its bearer pull `repository`.
    pub fn may_pull(&self, repository: &str) -> bool {
        self.access.iter().any(|a| {
            a.kind == "repository" && a.name == repository && a.actions.iter().any(|x| x == "pull")
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::SqliteStore;

    fn service() -> (TokenService, String) {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).unwrap();
        let dir = std::env::temp_dir().join(format!(
            "imagegate-token-{}-{}",
            std::process::id(),
            u64::from_le_bytes(b)
        ));
        let identity = Identity::new(Arc::new(SqliteStore::open(&dir).unwrap()));
        identity
            .create_user("alice", "correct horse battery")
            .unwrap();
        let pat = identity
            .create_token("alice", "laptop", None)
            .unwrap()
            .secret;
        (
            TokenService::new(
                identity,
                Signer::load_or_create(&dir).unwrap(),
                "gateway.corp.example",
            ),
            pat,
        )
    }

    #[test]
    fn scopes_parse_from_both_ends() {
        assert_eq!(
            parse_scope("repository:ghcr.io/corp/app:pull,push"),
            Some(Scope {
                kind: "repository".into(),
                name: "ghcr.io/corp/app".into(),
                actions: vec!["pull".into(), "push".into()]
            })
        );
        assert_eq!(parse_scope("registry:catalog:*").unwrap().name, "catalog");
        assert_eq!(parse_scope("nonsense"), None);
    }

    #[test]
    fn only_pull_on_valid_repositories_is_granted() {
        let (s, pat) = service();
        let scopes = [
            "repository:library/nginx:pull,push".to_owned(),
            "repository:someuser/app:push".to_owned(),
            "registry:catalog:*".to_owned(),
            "repository:library/%2e%2e:pull".to_owned(),
            "repository:Library/nginx:pull".to_owned(),
        ];
        let t = s.issue(Some(("alice", &pat)), None, &scopes).unwrap();
        assert_eq!(t.token, t.access_token);
        assert_eq!(t.expires_in, 300);
        let claims = s.verify(&t.token).unwrap();
        assert_eq!(claims.sub, "alice");
        assert_eq!(
            claims.access,
            [Access {
                kind: "repository".into(),
                name: "library/nginx".into(),
                actions: vec!["pull".into()]
            }]
        );
        assert!(claims.may_pull("library/nginx"));
        assert!(
            !claims.may_pull("library/redis"),
            "a token for one repository does not open another"
        );
        assert_eq!(claims.exp - claims.iat, 300);
        let header = jsonwebtoken::decode_header(&t.token).unwrap();
        assert_eq!(header.alg, Algorithm::ES256);
        assert_eq!(header.kid.as_deref(), Some(s.signer.kid()));
    }

    #[test]
    fn anonymous_callers_get_a_token_without_access() {
        let (s, _) = service();
        let t = s
            .issue(None, None, &["repository:library/nginx:pull".to_owned()])
            .unwrap();
        let claims = s.verify(&t.token).unwrap();
        assert_eq!(claims.sub, "");
        assert!(claims.access.is_empty());
    }

    #[test]
    fn bad_credentials_are_refused_and_rate_limited() {
        let (s, pat) = service();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(
            s.issue(Some(("alice", "correct horse battery")), Some(ip), &[])
                .unwrap_err(),
            TokenError::SignIn(SignInError::PasswordNotAccepted)
        );
        for _ in 1..MAX_FAILURES {
            assert!(matches!(
                s.issue(Some(("alice", "igpat_nope")), Some(ip), &[]),
                Err(TokenError::SignIn(_))
            ));
        }
        assert_eq!(
            s.issue(Some(("alice", &pat)), Some(ip), &[]).unwrap_err(),
            TokenError::RateLimited
        );
    }

    #[test]
    fn tampered_foreign_and_wrong_audience_tokens_are_refused() {
        let (s, pat) = service();
        let t = s
            .issue(
                Some(("alice", &pat)),
                None,
                &["repository:library/nginx:pull".to_owned()],
            )
            .unwrap()
            .token;
        let mut parts: Vec<String> = t.split('.').map(str::to_owned).collect();
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&parts[1])
            .unwrap();
        let forged = String::from_utf8(claims)
            .unwrap()
            .replace("library/nginx", "someuser/evil");
        parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(forged);
        assert!(
            s.verify(&parts.join(".")).is_err(),
            "a changed claim breaks the signature"
        );
        let (other, other_pat) = service();
        let foreign = other
            .issue(Some(("alice", &other_pat)), None, &[])
            .unwrap()
            .token;
        assert!(
            s.verify(&foreign).is_err(),
            "another key's token is refused"
        );
        assert!(s.verify("not.a.jwt").is_err());
    }

    /// A token signed by `s` with `claims` changed by `change`.
    fn signed(s: &TokenService, change: impl FnOnce(&mut Claims)) -> String {
        let now = crate::store::now();
        let mut claims = Claims {
            iss: s.service.clone(),
            sub: "alice".into(),
            aud: s.service.clone(),
            exp: now + 300,
            nbf: now - 1,
            iat: now,
            jti: "j".into(),
            access: vec![],
            pat: None,
        };
        change(&mut claims);
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(s.signer.kid.clone());
        jsonwebtoken::encode(&header, &claims, &s.signer.encoding).unwrap()
    }

    #[test]
    fn tokens_not_yet_valid_or_issued_in_the_future_are_refused() {
        let (s, _) = service();
        let now = crate::store::now();
        assert!(s.verify(&signed(&s, |_| {})).is_ok());
        let e = s
            .verify(&signed(&s, |c| c.nbf = now + 3600))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("invalid token: "), "{e}");
        let e = s
            .verify(&signed(&s, |c| c.iat = now + 3600))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "invalid token: the token's issue time (iat) is in the future"
        );
        // A small skew between clocks is allowed.
        assert!(s.verify(&signed(&s, |c| c.nbf = now + 3)).is_ok());
        assert!(s.verify(&signed(&s, |c| c.iat = now + 3)).is_ok());
        assert!(s.verify(&signed(&s, |c| c.exp = now - 60)).is_err());
    }

    #[test]
    fn a_token_names_the_personal_access_token_it_was_issued_for() {
        let (s, pat) = service();
        let t = s.issue(Some(("alice", &pat)), None, &[]).unwrap();
        let id = s.identity.store().tokens("alice").unwrap()[0].id.clone();
        assert_eq!(s.verify(&t.token).unwrap().pat, Some(id));
        let anonymous = s.issue(None, None, &[]).unwrap();
        assert_eq!(s.verify(&anonymous.token).unwrap().pat, None);
    }

    #[tokio::test]
    async fn failed_sign_ins_are_recorded_as_the_token_doors_with_user_and_source() {
        let (s, _) = service();
        let store = s.identity.store().clone();
        let (auditor, writer) = crate::audit::Auditor::start(
            store.clone(),
            std::sync::Arc::new(crate::metrics::Metrics::new()),
            100,
        );
        let s = s.with_audit(auditor);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let scope = ["repository:library/nginx:pull".to_owned()];
        let _ = s.issue(Some(("alice", "igpat_wrong")), Some(ip), &scope);
        let _ = s.issue(Some(("alice", "correct horse battery")), Some(ip), &[]);
        writer.close().await;
        let events = store
            .audit_events(&crate::store::AuditFilter::default())
            .unwrap();
        let seen: Vec<_> = events
            .iter()
            .map(|e| {
                (
                    e.door.as_str(),
                    e.user.as_deref(),
                    e.source.as_deref(),
                    e.decision.as_str(),
                    e.reason.as_str(),
                    e.message.as_str(),
                    e.image.as_str(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (
                    "token",
                    Some("alice"),
                    Some("192.0.2.7"),
                    "deny",
                    "sign_in_failed",
                    "invalid username or personal access token",
                    "library/nginx"
                ),
                (
                    "token",
                    Some("alice"),
                    Some("192.0.2.7"),
                    "deny",
                    "sign_in_failed",
                    "sign in with a personal access token, not the account password",
                    ""
                )
            ]
        );
    }

    #[test]
    fn the_signing_key_is_generated_once_and_kept() {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).unwrap();
        let dir = std::env::temp_dir().join(format!("imagegate-key-{}", u64::from_le_bytes(b)));
        let a = Signer::load_or_create(&dir).unwrap();
        let b = Signer::load_or_create(&dir).unwrap();
        assert_eq!(a.kid(), b.kid());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(SIGNING_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0);
        }
    }
}

/// The token endpoint over HTTP: `GET /token` (Docker's flow: Basic
/// credentials, `scope` parameters) and `POST /token` (the OAuth2 password
/// grant newer clients use).
pub mod http {
    use std::net::SocketAddr;
    use std::sync::Arc;

    use axum::Json;
    use axum::Router;
    use axum::body::Body;
    use axum::extract::{ConnectInfo, State};
    use axum::http::{HeaderMap, Request, StatusCode, header};
    use axum::response::{IntoResponse, Response};
    use axum::routing::get;
    use base64::Engine;

    use super::{TokenError, TokenService};
    use crate::body::read_body;
    use crate::gateway::wire::{ErrorBody, ErrorCode};

    /// The largest `POST /token` form accepted.
    const MAX_FORM: usize = 64 * 1024;

    /// `/token`, GET and POST.
    pub fn routes(service: Arc<TokenService>) -> Router {
        Router::new()
            .route("/token", get(get_token).post(post_token))
            .with_state(service)
    }

    fn source(request: &Request<Body>) -> Option<std::net::IpAddr> {
        request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
    }

    /// `Authorization: Basic base64(user:secret)`; `Err` when present but malformed.
    fn basic(headers: &HeaderMap) -> Result<Option<(String, String)>, String> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Ok(None);
        };
        let value = value
            .to_str()
            .map_err(|_| "Authorization header is not text".to_owned())?;
        let Some(encoded) = value
            .strip_prefix("Basic ")
            .or_else(|| value.strip_prefix("basic "))
        else {
            return Err("the token endpoint takes Basic credentials".to_owned());
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| "Basic credentials are not base64".to_owned())?;
        let text =
            String::from_utf8(decoded).map_err(|_| "Basic credentials are not UTF-8".to_owned())?;
        let (user, secret) = text
            .split_once(':')
            .ok_or_else(|| "Basic credentials have no ':'".to_owned())?;
        Ok(Some((user.to_owned(), secret.to_owned())))
    }

    fn error(status: StatusCode, code: ErrorCode, message: String) -> Response {
        let mut response = (status, Json(ErrorBody::one(code, message))).into_response();
        if status == StatusCode::UNAUTHORIZED
            && let Ok(v) = "Basic realm=\"imagegate\"".parse()
        {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        response
    }

    fn answer(result: Result<super::TokenResponse, TokenError>) -> Response {
        match result {
            Ok(token) => Json(token).into_response(),
            Err(TokenError::RateLimited) => error(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::Toomanyrequests,
                TokenError::RateLimited.to_string(),
            ),
            Err(e @ TokenError::SignIn(_)) => error(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                e.to_string(),
            ),
            Err(e) => {
                tracing::error!(error = %e, "token endpoint failed");
                error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorCode::Unsupported,
                    "the token service failed; see the server log".to_owned(),
                )
            }
        }
    }

    async fn get_token(
        State(service): State<Arc<TokenService>>,
        request: Request<Body>,
    ) -> Response {
        let credentials = match basic(request.headers()) {
            Ok(c) => c,
            Err(message) => {
                return error(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message);
            }
        };
        let query = request.uri().query().unwrap_or_default();
        let pairs: Vec<(String, String)> = match serde_urlencoded::from_str(query) {
            Ok(p) => p,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::Unsupported,
                    format!("bad query: {e}"),
                );
            }
        };
        let scopes: Vec<String> = pairs
            .iter()
            .filter(|(k, _)| k == "scope")
            .flat_map(|(_, v)| v.split(' ').map(str::to_owned))
            .collect();
        let ip = source(&request);
        // Signing in reads the store (and, for a password, runs argon2): off
        // the runtime's threads.
        let issued = tokio::task::spawn_blocking(move || {
            service.issue(
                credentials.as_ref().map(|(u, s)| (u.as_str(), s.as_str())),
                ip,
                &scopes,
            )
        })
        .await;
        answer(issued.unwrap_or_else(|e| Err(TokenError::Signing(e.to_string()))))
    }

    async fn post_token(
        State(service): State<Arc<TokenService>>,
        request: Request<Body>,
    ) -> Response {
        let ip = source(&request);
        let body = match read_body(request.into_body(), MAX_FORM).await {
            Ok(b) => b,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::Unsupported,
                    e.to_string(),
                );
            }
        };
        let form: Vec<(String, String)> = match serde_urlencoded::from_bytes(&body) {
            Ok(f) => f,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::Unsupported,
                    format!("bad form: {e}"),
                );
            }
        };
        let field = |name: &str| {
            form.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        if field("grant_type") != Some("password") {
            return (
                StatusCode::BAD_REQUEST,
                Json(serde_json::json!({"error": "unsupported_grant_type", "error_description": "imagegate issues tokens for grant_type=password (username and personal access token)"})),
            )
                .into_response();
        }
        let (Some(user), Some(secret)) = (field("username"), field("password")) else {
            return error(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                "username and password are required".to_owned(),
            );
        };
        let (user, secret) = (user.to_owned(), secret.to_owned());
        let scopes: Vec<String> = field("scope")
            .unwrap_or_default()
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let issued =
            tokio::task::spawn_blocking(move || service.issue(Some((&user, &secret)), ip, &scopes))
                .await;
        answer(issued.unwrap_or_else(|e| Err(TokenError::Signing(e.to_string()))))
    }
}
