//! The registries behind the gateway: one [`Upstream`] per registry host, each
//! with its URL and optional credentials, reached anonymously, with Basic
//! auth, or through its own Bearer token flow (Docker Hub's), tokens cached
//! until they expire. Credentials go only to the upstream's own scheme, host
//! and port, or an auth host configured for it (`host` meaning the scheme's
//! default port, or `host:port`), never to whatever realm a challenge names.
//! Redirects are followed as [`egress`] decides, and a refused one is
//! [`UpstreamError::Redirect`], not an unreachable upstream.
//! Bodies are not read here: callers stream them.

use std::collections::HashMap;
use std::net::{Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use imagegate_core::reference::is_docker_hub_host;
use reqwest::Url;
use serde::Deserialize;

use super::egress::{self, Listeners, Refusal, Refused};

/// The key Docker Hub's upstream is filed under.
pub const DOCKER_HUB: &str = "docker.io";
/// Docker Hub's registry endpoint.
pub const DOCKER_HUB_URL: &str = "https://registry-1.docker.io";
/// Docker Hub's token service host.
pub const DOCKER_HUB_AUTH_HOST: &str = "auth.docker.io";

/// How long an upstream token is kept when the token endpoint does not say
/// (the token spec's default).
const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(60);
/// Tokens are renewed this long before they expire.
const TOKEN_MARGIN: Duration = Duration::from_secs(10);
/// The largest token response read.
const MAX_TOKEN_RESPONSE: usize = 64 * 1024;
/// Cached tokens per upstream, at most.
const MAX_CACHED_TOKENS: usize = 10_000;

/// One upstream as configured. Its `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    /// The registry host it serves (`docker.io`, `ghcr.io`, `registry.corp:5000`),
    /// compared without case.
    pub host: String,
    /// Its base URL (`https://registry-1.docker.io`).
    pub url: String,
    /// Username and password (or token) for it.
    pub credentials: Option<(String, String)>,
    /// Token service hosts the credentials may also be sent to: `host` (on
    /// the realm's default port) or `host:port`.
    pub auth_hosts: Vec<String>,
}

impl std::fmt::Debug for UpstreamConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamConfig")
            .field("host", &self.host)
            .field("url", &self.url)
            .field(
                "credentials",
                &self
                    .credentials
                    .as_ref()
                    .map(|(user, _)| (user, "<redacted>")),
            )
            .field("auth_hosts", &self.auth_hosts)
            .finish()
    }
}

impl UpstreamConfig {
    /// Docker Hub, anonymously.
    pub fn docker_hub() -> UpstreamConfig {
        UpstreamConfig {
            host: DOCKER_HUB.to_owned(),
            url: DOCKER_HUB_URL.to_owned(),
            credentials: None,
            auth_hosts: vec![DOCKER_HUB_AUTH_HOST.to_owned()],
        }
    }
}

/// Why an upstream request failed before an answer came.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The upstream could not be reached or broke off.
    #[error("upstream {host} is unreachable: {source}")]
    Unreachable {
        /// The upstream.
        host: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The upstream's token service failed.
    #[error("upstream {host}'s token service failed: {message}")]
    Token {
        /// The upstream.
        host: String,
        /// What went wrong.
        message: String,
    },
    /// The upstream redirected where the gateway does not go.
    #[error("upstream {host} redirected to {target}, which the gateway does not follow: {why}")]
    Redirect {
        /// The upstream.
        host: String,
        /// Where to, without query or user info (or the name that was refused).
        target: String,
        /// Why not.
        why: Refusal,
    },
}

/// A host that may receive an upstream's credentials, parsed from
/// `auth_hosts`: `host` (the realm scheme's default port) or `host:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct AuthHost {
    /// As a URL writes it: lower case, IP literals canonical, IPv6 in brackets.
    host: String,
    port: Option<u16>,
}

impl AuthHost {
    fn parse(text: &str) -> Result<AuthHost, String> {
        let bad = || format!("auth host {text:?} is not HOST or HOST:PORT");
        let (host, port) = if let Ok(v6) = text.parse::<Ipv6Addr>() {
            (format!("[{v6}]"), None)
        } else if let Some(rest) = text.strip_prefix('[') {
            let (v6, after) = rest.split_once(']').ok_or_else(bad)?;
            let port = match after {
                "" => None,
                after => Some(after.strip_prefix(':').ok_or_else(bad)?),
            };
            (format!("[{v6}]"), port)
        } else {
            match text.split_once(':') {
                Some((host, port)) => (host.to_owned(), Some(port)),
                None => (text.to_owned(), None),
            }
        };
        if host.is_empty() || host.contains(['/', '@', '?', '#', '\\']) {
            return Err(bad());
        }
        let port = port
            .map(|p| p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad))
            .transpose()?;
        let host = Url::parse(&format!("http://{host}/"))
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .ok_or_else(bad)?;
        Ok(AuthHost { host, port })
    }

    /// Whether `url` is on this host and port.
    fn admits(&self, url: &Url) -> bool {
        let default = match url.scheme() {
            "https" => 443,
            "http" => 80,
            _ => return false,
        };
        url.host_str()
            .is_some_and(|h| h.eq_ignore_ascii_case(&self.host))
            && url.port_or_known_default() == Some(self.port.unwrap_or(default))
    }
}

/// An upstream registry and its cached tokens.
#[derive(Debug)]
pub struct Upstream {
    config: UpstreamConfig,
    base: reqwest::Url,
    auth_hosts: Vec<AuthHost>,
    tokens: Mutex<HashMap<String, (HeaderValue, Instant)>>,
    /// Set once the upstream has asked for Basic credentials.
    basic: std::sync::atomic::AtomicBool,
    /// `Basic base64(user:password)`, built once.
    basic_header: Option<HeaderValue>,
}

/// All upstreams, by registry host, sharing one HTTP client.
#[derive(Debug)]
pub struct Upstreams {
    by_host: HashMap<String, Upstream>,
    client: reqwest::Client,
    /// Where the gateway itself listens: never a redirect's target.
    listeners: Arc<Listeners>,
}

/// A configuration problem with one upstream.
#[derive(Debug, thiserror::Error)]
#[error("upstream {host}: {message}")]
pub struct ConfigError {
    /// The upstream's host.
    pub host: String,
    /// What is wrong.
    pub message: String,
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm=...`.
    Basic,
    /// `Bearer realm=...,service=...,scope=...`.
    Bearer {
        /// The token endpoint.
        realm: String,
        /// The service parameter.
        service: Option<String>,
        /// The scope parameter.
        scope: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` value (RFC 7235 auth-params, quoted or not).
/// `None` when it is neither a Basic nor a Bearer challenge with a realm.
pub fn parse_challenge(value: &str) -> Option<Challenge> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut params: HashMap<String, String> = HashMap::new();
    let mut rest = rest.trim_start();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let key = key.trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (val, remainder) = if let Some(quoted) = after.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => out.push(chars.next()?.1),
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => out.push(c),
                }
            }
            (out, quoted.get(end?..)?)
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after.get(..end)?.trim().to_owned(), after.get(end..)?)
        };
        params.insert(key, val);
        rest = remainder.trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    Some(Challenge::Bearer {
        realm: params.remove("realm")?,
        service: params.remove("service"),
        scope: params.remove("scope"),
    })
}

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl Upstreams {
    /// Builds the upstreams; Docker Hub is added as `docker.io` unless configured.
    pub fn new(configs: Vec<UpstreamConfig>) -> Result<Upstreams, ConfigError> {
        crate::tls::install_crypto_provider();
        let mut by_host = HashMap::new();
        let hub_configured = configs.iter().any(|c| is_docker_hub_host(&c.host));
        let all = configs
            .into_iter()
            .chain((!hub_configured).then(UpstreamConfig::docker_hub));
        for mut config in all {
            let key = host_key(&config.host);
            let base = reqwest::Url::parse(&config.url).map_err(|e| ConfigError {
                host: config.host.clone(),
                message: format!("{:?} is not a URL: {e}", config.url),
            })?;
            if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
                return Err(ConfigError {
                    host: config.host.clone(),
                    message: format!("{:?} is not an http(s) URL with a host", config.url),
                });
            }
            if is_docker_hub_host(&config.host)
                && !config
                    .auth_hosts
                    .iter()
                    .any(|h| h.eq_ignore_ascii_case(DOCKER_HUB_AUTH_HOST))
                && base.host_str() == Some("registry-1.docker.io")
            {
                config.auth_hosts.push(DOCKER_HUB_AUTH_HOST.to_owned());
            }
            let auth_hosts = config
                .auth_hosts
                .iter()
                .map(|h| AuthHost::parse(h))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|message| ConfigError {
                    host: config.host.clone(),
                    message,
                })?;
            if by_host.contains_key(&key) {
                return Err(ConfigError {
                    host: config.host,
                    message: "configured twice".to_owned(),
                });
            }
            let basic_header = config.credentials.as_ref().and_then(|(user, password)| {
                use base64::Engine;
                let encoded =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                let mut value = HeaderValue::from_str(&format!("Basic {encoded}")).ok()?;
                value.set_sensitive(true);
                Some(value)
            });
            by_host.insert(
                key,
                Upstream {
                    config,
                    base,
                    auth_hosts,
                    tokens: Mutex::new(HashMap::new()),
                    basic: std::sync::atomic::AtomicBool::new(false),
                    basic_header,
                },
            );
        }
        // The names the gateway was configured with may resolve anywhere
        // (a registry beside it on loopback); any other name is screened.
        let resolver = egress::Resolver::new(by_host.values().flat_map(|u: &Upstream| {
            u.base
                .host_str()
                .map(str::to_owned)
                .into_iter()
                .chain(u.auth_hosts.iter().map(|a| a.host.clone()))
        }));
        let listeners = Arc::new(Listeners::default());
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .redirect(redirect_policy(listeners.clone()))
            .dns_resolver(resolver)
            // HTTP/1.1 upstream: large reads with no flow-control windows on
            // the blob path (measured in bench/gateway.sh); concurrency
            // comes from the connection pool.
            .http1_only()
            .user_agent(concat!("imagegate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError {
                host: String::new(),
                message: format!("cannot build the HTTP client: {e}"),
            })?;
        Ok(Upstreams {
            by_host,
            client,
            listeners,
        })
    }

    /// Tells the upstreams where the gateway listens, once bound: no
    /// redirect is followed to those addresses.
    pub fn set_listeners(&self, addrs: impl IntoIterator<Item = SocketAddr>) {
        self.listeners.set(addrs);
    }

    /// The upstream serving registry `host` (Docker Hub under any of its names).
    /// A lookup key only: nothing not configured is ever dialled.
    pub fn get(&self, host: &str) -> Option<&Upstream> {
        self.by_host.get(&host_key(host))
    }

    /// The configured registry hosts.
    pub fn hosts(&self) -> impl Iterator<Item = &str> {
        self.by_host.values().map(|u| u.config.host.as_str())
    }

    /// Sends `method` for `/v2/<repository>/<rest>` to `upstream`, with
    /// `forward` headers (Accept, Range), authenticating as the upstream asks.
    /// The body of the answer is left unread.
    pub async fn send(
        &self,
        upstream: &Upstream,
        method: Method,
        repository: &str,
        rest: &str,
        forward: &HeaderMap,
    ) -> Result<reqwest::Response, UpstreamError> {
        let scope = format!("repository:{repository}:pull");
        let mut url = upstream.base.clone();
        {
            let base_path = url.path().trim_end_matches('/').to_owned();
            url.set_path(&format!("{base_path}/v2/{repository}/{rest}"));
        }
        let mut retried = false;
        loop {
            let mut request = self.client.request(method.clone(), url.clone());
            for (name, value) in forward {
                request = request.header(name, value);
            }
            if let Some(auth) = upstream.authorization(&scope) {
                request = request.header(header::AUTHORIZATION, auth);
            }
            let response = request
                .send()
                .await
                .map_err(|source| match Refused::find(&source) {
                    Some(refused) => UpstreamError::Redirect {
                        host: upstream.config.host.clone(),
                        target: refused.target.clone(),
                        why: refused.why.clone(),
                    },
                    None => UpstreamError::Unreachable {
                        host: upstream.config.host.clone(),
                        source,
                    },
                })?;
            // A redirect to a name is screened by DNS class only; the
            // address it reached shows whether that was the gateway itself.
            // The answer is dropped unread.
            if response.url() != &url
                && let Some(peer) = response.remote_addr()
                && let Some(own) =
                    egress::own_listener(peer, &self.listeners.get(), &egress::is_local_address)
            {
                return Err(UpstreamError::Redirect {
                    host: upstream.config.host.clone(),
                    target: egress::shown(response.url()),
                    why: Refusal::OwnListener(own),
                });
            }
            if response.status() != StatusCode::UNAUTHORIZED || retried {
                return Ok(response);
            }
            let challenge = response
                .headers()
                .get_all(header::WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .filter_map(parse_challenge)
                .next();
            match challenge {
                Some(Challenge::Basic) if upstream.config.credentials.is_some() => {
                    upstream
                        .basic
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                }
                Some(Challenge::Bearer { realm, service, .. }) => {
                    self.fetch_token(upstream, &realm, service.as_deref(), &scope)
                        .await?;
                }
                _ => return Ok(response),
            }
            retried = true;
        }
    }

    async fn fetch_token(
        &self,
        upstream: &Upstream,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<(), UpstreamError> {
        let fail = |message: String| UpstreamError::Token {
            host: upstream.config.host.clone(),
            message,
        };
        let mut url = reqwest::Url::parse(realm)
            .map_err(|e| fail(format!("realm {realm:?} is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(fail(format!("realm {realm:?} is not http(s)")));
        }
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            query.append_pair("scope", scope);
        }
        let mut request = self.client.get(url.clone());
        if let Some((user, password)) = &upstream.config.credentials {
            if upstream.may_receive_credentials(&url) {
                request = request.basic_auth(user, Some(password));
            } else {
                tracing::warn!(
                    upstream = %upstream.config.host,
                    realm = %realm,
                    "upstream names a token realm on a host not configured for it; asking anonymously"
                );
            }
        }
        let mut response = request.send().await.map_err(|e| match Refused::find(&e) {
            Some(refused) => fail(format!("{realm} is not asked: {}", refused.why)),
            None => fail(format!("cannot reach {realm}: {e}")),
        })?;
        if !response.status().is_success() {
            return Err(fail(format!("{realm} answered {}", response.status())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| fail(format!("reading {realm}: {e}")))?
        {
            if body.len() + chunk.len() > MAX_TOKEN_RESPONSE {
                return Err(fail(format!("{realm} answered more than 64 KiB")));
            }
            body.extend_from_slice(&chunk);
        }
        let answer: TokenAnswer = serde_json::from_slice(&body)
            .map_err(|e| fail(format!("{realm} answered no token: {e}")))?;
        let token = answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| fail(format!("{realm} answered no token")))?;
        let value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            fail(format!(
                "{realm} answered a token that is not a header value"
            ))
        })?;
        let ttl = answer
            .expires_in
            .map_or(DEFAULT_TOKEN_TTL, Duration::from_secs)
            .saturating_sub(TOKEN_MARGIN)
            .max(Duration::from_secs(1));
        let mut tokens = upstream.tokens.lock().unwrap_or_else(|p| p.into_inner());
        if tokens.len() >= MAX_CACHED_TOKENS {
            let now = Instant::now();
            tokens.retain(|_, (_, until)| *until > now);
            if tokens.len() >= MAX_CACHED_TOKENS {
                tokens.clear();
            }
        }
        tokens.insert(scope.to_owned(), (value, Instant::now() + ttl));
        Ok(())
    }
}

impl Upstream {
    /// The registry host it serves.
    pub fn host(&self) -> &str {
        &self.config.host
    }

    /// The Authorization to send for `scope`: a cached Bearer token, else
    /// Basic credentials once the upstream asked for them.
    fn authorization(&self, scope: &str) -> Option<HeaderValue> {
        {
            let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((value, until)) = tokens.get(scope)
                && *until > Instant::now()
            {
                return Some(value.clone());
            }
        }
        if self.basic.load(std::sync::atomic::Ordering::Relaxed) {
            return self.basic_header.clone();
        }
        None
    }

    /// Whether `realm` may receive this upstream's credentials: over HTTPS
    /// (or HTTP from a plain-HTTP upstream), at the upstream's own scheme,
    /// host and port, or at a configured auth host and its port. Hosts
    /// compare without case; a port left out is the scheme's default.
    fn may_receive_credentials(&self, realm: &reqwest::Url) -> bool {
        let Some(host) = realm.host_str() else {
            return false;
        };
        let secure_enough =
            realm.scheme() == "https" || realm.scheme() == "http" && self.base.scheme() == "http";
        if !secure_enough {
            return false;
        }
        let own = realm.scheme() == self.base.scheme()
            && self
                .base
                .host_str()
                .is_some_and(|own| own.eq_ignore_ascii_case(host))
            && realm.port_or_known_default() == self.base.port_or_known_default();
        own || self.auth_hosts.iter().any(|a| a.admits(realm))
    }
}

/// The client's redirect policy: [`egress::follow`] for each hop, from the
/// chain's first URL (the upstream's, or a token realm's), against the
/// gateway's listeners as they are when the redirect comes.
fn redirect_policy(listeners: Arc<Listeners>) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        // reqwest lists the URLs requested so far: the hop is their count.
        let hop = attempt.previous().len();
        let origin = attempt.previous().first().unwrap_or(attempt.url());
        let decided = egress::follow(
            origin,
            attempt.url(),
            hop,
            &listeners.get(),
            &egress::is_local_address,
        );
        match decided {
            Ok(()) => attempt.follow(),
            Err(why) => {
                let target = egress::shown(attempt.url());
                attempt.error(Refused { target, why })
            }
        }
    })
}

fn host_key(host: &str) -> String {
    if is_docker_hub_host(host) {
        DOCKER_HUB.to_owned()
    } else {
        host.to_ascii_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_challenges_parse_quoted_and_bare_parameters() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/nginx:pull".into()),
            })
        );
        assert_eq!(
            parse_challenge("bearer realm=https://r.example/t, service=r"),
            Some(Challenge::Bearer {
                realm: "https://r.example/t".into(),
                service: Some("r".into()),
                scope: None,
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge(r#"Bearer realm="a\"b",service="x""#),
            Some(Challenge::Bearer {
                realm: "a\"b".into(),
                service: Some("x".into()),
                scope: None
            })
        );
    }

    #[test]
    fn case_broken_challenges_are_none_not_panics() {
        for v in [
            "",
            "Bearer",
            "Bearer service=x",
            "Bearer realm=\"unterminated",
            "Bearer realm",
            "Negotiate abc",
            "Bearer realm=\"a\\",
        ] {
            assert!(
                !matches!(parse_challenge(v), Some(Challenge::Bearer { .. })),
                "{v}"
            );
        }
    }

    #[test]
    fn case_credentials_go_only_to_the_upstreams_own_or_configured_hosts() {
        let ups = Upstreams::new(vec![UpstreamConfig {
            host: "ghcr.io".into(),
            url: "https://ghcr.io".into(),
            credentials: Some(("u".into(), "p".into())),
            auth_hosts: vec!["auth.ghcr.example".into()],
        }])
        .unwrap();
        let u = ups.get("GHCR.IO").unwrap();
        let ok = |s: &str| u.may_receive_credentials(&reqwest::Url::parse(s).unwrap());
        assert!(ok("https://ghcr.io/token"));
        assert!(ok("https://AUTH.ghcr.example/token"));
        assert!(!ok("https://ghcr.io.evil.example/token"));
        assert!(!ok("https://evil.example/token"));
        assert!(!ok("http://ghcr.io/token"), "no downgrade to plain HTTP");
        let hub = ups.get("index.docker.io").unwrap();
        assert_eq!(hub.host(), "docker.io");
        assert!(hub.may_receive_credentials(
            &reqwest::Url::parse("https://auth.docker.io/token").unwrap()
        ));
        assert!(ups.get("quay.io").is_none());
    }

    #[test]
    fn case_credentials_go_only_to_the_same_scheme_host_and_port() {
        let ups = Upstreams::new(vec![
            UpstreamConfig {
                host: "ghcr.io".into(),
                url: "https://ghcr.io".into(),
                credentials: Some(("u".into(), "p".into())),
                auth_hosts: vec!["auth.ghcr.example".into(), "token.ghcr.example:5001".into()],
            },
            UpstreamConfig {
                host: "registry.test:15001".into(),
                url: "http://127.0.0.1:15001".into(),
                credentials: Some(("u".into(), "p".into())),
                auth_hosts: vec!["[::1]:15003".into(), "::2".into()],
            },
        ])
        .unwrap();
        let u = ups.get("ghcr.io").unwrap();
        let plain = ups.get("registry.test:15001").unwrap();
        #[rustfmt::skip]
        let cases = [
            (u, "https://ghcr.io:443/token", true, "the default port is the only equivalence"),
            (u, "https://ghcr.io:8443/token", false, "another port of the upstream's host"),
            (u, "https://auth.ghcr.example/token", true, "an auth host without a port: the default one"),
            (u, "https://auth.ghcr.example:443/token", true, "written out"),
            (u, "https://auth.ghcr.example:8443/token", false, "an auth host on another port"),
            (u, "https://token.ghcr.example:5001/token", true, "an auth host on its configured port"),
            (u, "https://token.ghcr.example/token", false, "not its default port"),
            (u, "https://token.ghcr.example:5002/token", false, "another port"),
            (u, "http://auth.ghcr.example/token", false, "no plain HTTP from an HTTPS upstream"),
            (plain, "http://127.0.0.1:15001/token", true, "its own scheme, host and port"),
            (plain, "http://127.0.0.1:15002/token", false, "another port on its host"),
            (plain, "https://127.0.0.1:15001/token", false, "another scheme"),
            (plain, "http://127.0.0.1/token", false, "the default port is not 15001"),
            (plain, "http://[::1]:15003/token", true, "an IPv6 auth host and port"),
            (plain, "http://[0:0::1]:15003/token", true, "IPv6 compares as an address"),
            (plain, "http://[::1]:15004/token", false, "another port"),
            (plain, "http://[::2]/token", true, "a bare IPv6 auth host: the default port"),
        ];
        for (upstream, realm, expected, why) in cases {
            assert_eq!(
                upstream.may_receive_credentials(&reqwest::Url::parse(realm).unwrap()),
                expected,
                "{realm}: {why}"
            );
        }
    }

    #[test]
    fn case_auth_hosts_that_are_not_host_or_host_and_port_name_the_upstream() {
        for bad in [
            "",
            "auth.example:",
            "auth.example:0",
            "auth.example:65536",
            "auth.example:http",
            "https://auth.example",
            "auth.example/token",
            "user@auth.example",
            "[::1",
            "[::1]5001",
            "auth.example:1:2",
        ] {
            let e = Upstreams::new(vec![UpstreamConfig {
                host: "ghcr.io".into(),
                url: "https://ghcr.io".into(),
                credentials: None,
                auth_hosts: vec![bad.into()],
            }])
            .unwrap_err()
            .to_string();
            assert_eq!(
                e,
                format!("upstream ghcr.io: auth host {bad:?} is not HOST or HOST:PORT")
            );
        }
    }

    #[test]
    fn case_bad_upstream_urls_name_the_upstream() {
        let e = Upstreams::new(vec![UpstreamConfig {
            host: "ghcr.io".into(),
            url: "ftp://x".into(),
            credentials: None,
            auth_hosts: vec![],
        }])
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("upstream ghcr.io: "), "{e}");
    }
}
