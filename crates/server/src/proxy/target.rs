//! The target of an HTTP `CONNECT` request (RFC 9110 §9.3.6: authority-form,
//! `host ":" port`), read strictly: the proxy decides by the host, so a
//! target that could be read two ways is refused, never guessed at. A DNS
//! name is kept lowercased as ASCII labels (letters, digits, inner hyphens;
//! clients send internationalised names as punycode); an IP literal is kept
//! as an address, for the proxy to refuse by its own rule. Userinfo,
//! percent-encoding, a trailing dot, an empty label, a missing or
//! out-of-range port are errors naming the input.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use imagegate_core::reference::quote_input;

/// The longest DNS name (RFC 1035 §2.3.4), without a trailing dot.
const MAX_NAME: usize = 253;
/// The longest DNS label.
const MAX_LABEL: usize = 63;

/// Where a `CONNECT` asks to go.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    host: Host,
    port: u16,
}

/// The host of a [`Target`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    /// A DNS name, lowercased: `registry-1.docker.io`.
    Name(String),
    /// An IPv4 or IPv6 literal (`10.0.0.1`, `[::1]`).
    Ip(IpAddr),
}

/// Why a `CONNECT` target was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid CONNECT target {}: {kind}", quote_input(input))]
pub struct TargetError {
    /// The target as the client sent it.
    pub input: String,
    /// What is wrong with it.
    pub kind: TargetErrorKind,
}

/// What is wrong with a `CONNECT` target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetErrorKind {
    /// No `:port`.
    #[error("no port (CONNECT takes host:port)")]
    NoPort,
    /// The port is not a number from 1 to 65535.
    #[error("the port is not a number from 1 to 65535")]
    BadPort,
    /// `user@host`.
    #[error("it carries userinfo (@), which a CONNECT target cannot")]
    Userinfo,
    /// `%2e` and the like.
    #[error("it is percent-encoded")]
    PercentEncoded,
    /// Nothing before the port.
    #[error("the host is empty")]
    EmptyHost,
    /// Longer than a DNS name can be.
    #[error("the host is longer than 253 characters")]
    TooLong,
    /// `a..b`, `.a`.
    #[error("the host has an empty label")]
    EmptyLabel,
    /// `registry-1.docker.io.`
    #[error("the host ends with a dot")]
    TrailingDot,
    /// A label of more than 63 characters.
    #[error("a label of the host is longer than 63 characters")]
    LongLabel,
    /// Anything but ASCII letters, digits and inner hyphens in a name.
    #[error(
        "the host is not a DNS name (letters, digits and inner hyphens; punycode for other scripts)"
    )]
    NotAName,
    /// `[...]` that is not an IPv6 address.
    #[error("the bracketed host is not an IPv6 address")]
    BadIpv6,
}

impl Target {
    /// Reads a `CONNECT` request target.
    ///
    /// ```
    /// use imagegate_server::proxy::target::{Host, Target};
    /// let t = Target::parse("Registry-1.Docker.IO:443").unwrap();
    /// assert_eq!(t.host(), &Host::Name("registry-1.docker.io".into()));
    /// assert_eq!(t.port(), 443);
    /// assert_eq!(t.to_string(), "registry-1.docker.io:443");
    /// assert!(Target::parse("user@ghcr.io:443").is_err());
    /// ```
    pub fn parse(input: &str) -> Result<Target, TargetError> {
        let fail = |kind| TargetError {
            input: input.to_owned(),
            kind,
        };
        if input.contains('@') {
            return Err(fail(TargetErrorKind::Userinfo));
        }
        if input.contains('%') {
            return Err(fail(TargetErrorKind::PercentEncoded));
        }
        let (host, port) = input
            .rsplit_once(':')
            .ok_or(fail(TargetErrorKind::NoPort))?;
        let port = parse_port(port).ok_or(fail(TargetErrorKind::BadPort))?;
        let host = if let Some(inner) = host.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or(fail(TargetErrorKind::BadIpv6))?;
            Host::Ip(IpAddr::V6(
                inner
                    .parse::<Ipv6Addr>()
                    .map_err(|_| fail(TargetErrorKind::BadIpv6))?,
            ))
        } else if let Ok(v4) = host.parse::<std::net::Ipv4Addr>() {
            Host::Ip(IpAddr::V4(v4))
        } else {
            Host::Name(parse_name(host).map_err(fail)?)
        };
        Ok(Target { host, port })
    }

    /// The host.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// Digits only (no sign, no spaces), 1 to 65535, at most five of them.
fn parse_port(port: &str) -> Option<u16> {
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    port.parse::<u16>().ok().filter(|p| *p != 0)
}

fn parse_name(host: &str) -> Result<String, TargetErrorKind> {
    if host.is_empty() {
        return Err(TargetErrorKind::EmptyHost);
    }
    if host.len() > MAX_NAME + 1 {
        return Err(TargetErrorKind::TooLong);
    }
    if host.ends_with('.') {
        return Err(TargetErrorKind::TrailingDot);
    }
    if host.len() > MAX_NAME {
        return Err(TargetErrorKind::TooLong);
    }
    for label in host.split('.') {
        if label.is_empty() {
            return Err(TargetErrorKind::EmptyLabel);
        }
        if label.len() > MAX_LABEL {
            return Err(TargetErrorKind::LongLabel);
        }
        let ldh = label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !ldh || label.starts_with('-') || label.ends_with('-') {
            return Err(TargetErrorKind::NotAName);
        }
    }
    Ok(host.to_ascii_lowercase())
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Name(name) => write!(f, "{name}:{}", self.port),
            Host::Ip(IpAddr::V4(v4)) => write!(f, "{v4}:{}", self.port),
            Host::Ip(IpAddr::V6(v6)) => write!(f, "[{v6}]:{}", self.port),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(input: &str) -> TargetErrorKind {
        Target::parse(input).unwrap_err().kind
    }

    #[test]
    fn registry_hosts_are_read_lowercased_with_their_port() {
        for (input, host, port) in [
            ("registry-1.docker.io:443", "registry-1.docker.io", 443),
            ("GHCR.IO:443", "ghcr.io", 443),
            ("localhost:5000", "localhost", 5000),
            ("xn--bcher-kva.example:443", "xn--bcher-kva.example", 443),
            ("a1.b-2.c:65535", "a1.b-2.c", 65535),
        ] {
            let t = Target::parse(input).unwrap();
            assert_eq!(t.host(), &Host::Name(host.to_owned()), "{input}");
            assert_eq!(t.port(), port, "{input}");
        }
    }

    #[test]
    fn ip_literals_are_kept_as_addresses() {
        let t = Target::parse("10.0.0.1:443").unwrap();
        assert_eq!(t.host(), &Host::Ip("10.0.0.1".parse().unwrap()));
        let t = Target::parse("[::1]:443").unwrap();
        assert_eq!(t.host(), &Host::Ip("::1".parse().unwrap()));
        assert_eq!(t.to_string(), "[::1]:443");
        // Not an IPv4 address: DNS allows numeric labels, so it is a name
        // (which no upstream serves).
        assert_eq!(
            Target::parse("999.1.1.1:443").unwrap().host(),
            &Host::Name("999.1.1.1".into())
        );
    }

    #[test]
    fn hostile_targets_are_refused_naming_what_is_wrong() {
        use TargetErrorKind::*;
        let long_label = format!("{}.io:443", "a".repeat(64));
        let long_name = format!("{}:443", vec!["a".repeat(63); 4].join("."));
        for (input, expected) in [
            ("ghcr.io", NoPort),
            ("ghcr.io:", BadPort),
            ("ghcr.io:0", BadPort),
            ("ghcr.io:65536", BadPort),
            ("ghcr.io:+443", BadPort),
            ("ghcr.io: 443", BadPort),
            ("ghcr.io:0443x", BadPort),
            ("ghcr.io:000443", BadPort),
            ("user:pass@ghcr.io:443", Userinfo),
            ("ghcr.io@evil.example:443", Userinfo),
            ("ghcr%2eio:443", PercentEncoded),
            (":443", EmptyHost),
            ("ghcr..io:443", EmptyLabel),
            (".ghcr.io:443", EmptyLabel),
            ("ghcr.io.:443", TrailingDot),
            (long_label.as_str(), LongLabel),
            (long_name.as_str(), TooLong),
            ("ghcr.io\u{2024}evil:443", NotAName),
            ("gh\u{0441}r.io:443", NotAName),
            ("-ghcr.io:443", NotAName),
            ("ghcr-.io:443", NotAName),
            ("ghcr_io:443", NotAName),
            ("ghcr.io/x:443", NotAName),
            ("ghcr.io:443:443", NotAName),
            ("[::1:443", BadIpv6),
            ("[evil]:443", BadIpv6),
            ("::1:443", NotAName),
        ] {
            assert_eq!(kind(input), expected, "{input:?}");
        }
    }

    #[test]
    fn the_error_quotes_the_input_and_says_why() {
        assert_eq!(
            Target::parse("user@ghcr.io:443").unwrap_err().to_string(),
            r#"invalid CONNECT target "user@ghcr.io:443": it carries userinfo (@), which a CONNECT target cannot"#
        );
        let huge = "a".repeat(10_000);
        let message = Target::parse(&huge).unwrap_err().to_string();
        assert!(
            message.len() < 1_000 && message.contains("(10000 bytes)"),
            "a long target is not echoed whole: {message}"
        );
    }

    #[test]
    fn display_round_trips() {
        for input in [
            "Registry-1.Docker.IO:443",
            "10.0.0.1:8443",
            "[2001:DB8::1]:443",
        ] {
            let t = Target::parse(input).unwrap();
            assert_eq!(Target::parse(&t.to_string()).unwrap(), t, "{input}");
        }
    }
}
