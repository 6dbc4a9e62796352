//! Where the upstream client may go beyond the configured upstreams: which
//! redirects it follows ([`follow`], a pure decision), which DNS answers it
//! accepts ([`Resolver`]), and the gateway's own listeners it never reaches
//! ([`Listeners`]). Nothing here sends a request.
//!
//! A redirect is followed over HTTPS (or plain HTTP from a plain-HTTP
//! upstream), at most [`MAX_REDIRECTS`] in a chain, never to the unspecified
//! address or the gateway's own listeners, and to loopback or link-local
//! addresses only from an upstream that is itself on one. Names are checked
//! twice: `localhost` is loopback by name (RFC 6761), and any other name that
//! is not a configured upstream or auth host must not resolve to a loopback,
//! link-local or unspecified address (which also closes DNS rebinding).

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The most redirects followed in one chain.
pub const MAX_REDIRECTS: usize = 5;

/// Addresses the gateway does not follow a redirect to on their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressClass {
    /// `127.0.0.0/8`, `::1`, and the name `localhost`.
    Loopback,
    /// `169.254.0.0/16` (cloud metadata services live there), `fe80::/10`.
    LinkLocal,
    /// `0.0.0.0`, `::`: a connection to it reaches this machine.
    Unspecified,
}

impl std::fmt::Display for AddressClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AddressClass::Loopback => "loopback",
            AddressClass::LinkLocal => "link-local",
            AddressClass::Unspecified => "unspecified",
        })
    }
}

/// The class of `ip` (IPv4-mapped IPv6 addresses as their IPv4 address), if
/// it is one the gateway does not follow a redirect to on its own.
pub fn class_of(ip: IpAddr) -> Option<AddressClass> {
    match ip.to_canonical() {
        ip if ip.is_unspecified() => Some(AddressClass::Unspecified),
        ip if ip.is_loopback() => Some(AddressClass::Loopback),
        IpAddr::V4(v4) if v4.is_link_local() => Some(AddressClass::LinkLocal),
        IpAddr::V6(v6) if v6.is_unicast_link_local() => Some(AddressClass::LinkLocal),
        _ => None,
    }
}

/// Why a redirect is not followed. Its `Display` completes "which the
/// gateway does not follow: ...".
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The chain is too long.
    #[error("it would be redirect number {hop}, and at most {MAX_REDIRECTS} are followed")]
    TooManyRedirects {
        /// The redirect's place in the chain.
        hop: usize,
    },
    /// HTTPS to plain HTTP.
    #[error("it leaves HTTPS for plain HTTP")]
    Downgrade,
    /// Neither HTTPS nor HTTP.
    #[error("{scheme}: is not followed, only https: (and http: from a plain-HTTP upstream)")]
    Scheme {
        /// The target's scheme.
        scheme: String,
    },
    /// No host to go to.
    #[error("it names no host")]
    NoHost,
    /// The target is one of the gateway's own listeners.
    #[error("it is the gateway's own listener {0}")]
    OwnListener(SocketAddr),
    /// The target is the unspecified address (this machine).
    #[error("it is the unspecified address, which reaches this machine")]
    Unspecified,
    /// A loopback or link-local target from an upstream not on one.
    #[error("it is a {0} address, and the upstream is not on one")]
    Address(AddressClass),
    /// A name that resolves to an address of such a class.
    #[error("it resolves to {addr}, a {class} address")]
    Resolves {
        /// The address it resolved to.
        addr: IpAddr,
        /// Its class.
        class: AddressClass,
    },
}

/// A redirect (or a name) the upstream client refused, as its requests'
/// error source: where it led and why not.
#[derive(Clone, Debug, thiserror::Error)]
#[error("the gateway does not go to {target}: {why}")]
pub struct Refused {
    /// The target, without query, fragment or user info (signed storage
    /// URLs carry credentials there), or the name that was refused.
    pub target: String,
    /// Why.
    pub why: Refusal,
}

impl Refused {
    /// The refusal among `error`'s causes, if it has one.
    pub fn find<'e>(error: &'e (dyn std::error::Error + 'static)) -> Option<&'e Refused> {
        let mut cause = Some(error);
        while let Some(e) = cause {
            if let Some(refused) = e.downcast_ref::<Refused>() {
                return Some(refused);
            }
            cause = e.source();
        }
        None
    }
}

/// `url` fit to show and log: scheme, host, port and path only.
pub fn shown(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.set_fragment(None);
    // Both fail only for URLs that cannot have user info, which have none.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

/// The gateway's own listening addresses, learned once bound (port 0 is
/// chosen by the system). A listener on `0.0.0.0` or `::` is every local
/// address with its port.
#[derive(Debug, Default)]
pub struct Listeners(RwLock<Vec<SocketAddr>>);

impl Listeners {
    /// Replaces the known listeners.
    pub fn set(&self, addrs: impl IntoIterator<Item = SocketAddr>) {
        let mut known = self.0.write().unwrap_or_else(|p| p.into_inner());
        *known = addrs.into_iter().collect();
    }

    /// The known listeners.
    pub fn get(&self) -> Vec<SocketAddr> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Whether `ip` is one of this machine's addresses: binding to it succeeds
/// only then (nothing is sent).
pub fn is_local_address(ip: IpAddr) -> bool {
    std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

/// The listener among `listeners` that a connection to `addr` reaches.
pub fn own_listener(
    addr: SocketAddr,
    listeners: &[SocketAddr],
    is_local: &dyn Fn(IpAddr) -> bool,
) -> Option<SocketAddr> {
    let ip = addr.ip().to_canonical();
    listeners.iter().copied().find(|listener| {
        let own = listener.ip().to_canonical();
        listener.port() == addr.port()
            && (own == ip
                // A connection to 0.0.0.0 or :: reaches this machine.
                || ip.is_unspecified()
                // A wildcard listener (either family: Linux's [::] takes
                // IPv4 too) is behind every local address.
                || own.is_unspecified() && (ip.is_loopback() || is_local(ip)))
    })
}

/// The addresses a URL host stands for, when that is known without DNS: an
/// IP literal, or `localhost` and its subdomains (RFC 6761).
fn addresses_of(url: &Url) -> Option<Vec<IpAddr>> {
    let host = url.host_str()?;
    // The URL parser has made IP literals canonical (`2130706433` is
    // `127.0.0.1`); IPv6 ones keep their brackets.
    let literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return Some(vec![ip]);
    }
    let name = normal_name(host);
    (name == "localhost" || name.ends_with(".localhost")).then(|| {
        vec![
            IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        ]
    })
}

/// Whether the gateway follows a redirect to `next`, the `hop`th of a chain
/// whose first request went to `origin` (the upstream's own URL).
/// `listeners` are the gateway's own; `is_local` says whether an address is
/// this machine's (see [`is_local_address`]).
pub fn follow(
    origin: &Url,
    next: &Url,
    hop: usize,
    listeners: &[SocketAddr],
    is_local: &dyn Fn(IpAddr) -> bool,
) -> Result<(), Refusal> {
    if hop > MAX_REDIRECTS {
        return Err(Refusal::TooManyRedirects { hop });
    }
    match (origin.scheme(), next.scheme()) {
        (_, "https") | ("http", "http") => {}
        ("https", "http") => return Err(Refusal::Downgrade),
        (_, scheme) => {
            return Err(Refusal::Scheme {
                scheme: scheme.to_owned(),
            });
        }
    }
    let Some(port) = next.port_or_known_default() else {
        return Err(Refusal::NoHost);
    };
    if next.host_str().is_none_or(str::is_empty) {
        return Err(Refusal::NoHost);
    }
    // Names other than localhost are checked when they resolve.
    let Some(addresses) = addresses_of(next) else {
        return Ok(());
    };
    for ip in &addresses {
        if let Some(own) = own_listener(SocketAddr::new(*ip, port), listeners, is_local) {
            return Err(Refusal::OwnListener(own));
        }
    }
    let origin_classes: Vec<AddressClass> = addresses_of(origin)
        .unwrap_or_default()
        .into_iter()
        .filter_map(class_of)
        .collect();
    for ip in addresses {
        match class_of(ip) {
            None => {}
            Some(AddressClass::Unspecified) => return Err(Refusal::Unspecified),
            // The upstream is itself on such an address (tests, a registry
            // beside the gateway): its redirects may stay there.
            Some(class) if origin_classes.contains(&class) => {}
            Some(class) => return Err(Refusal::Address(class)),
        }
    }
    Ok(())
}

/// The upstream client's DNS resolver. The configured upstreams' own names
/// and auth hosts resolve as the system resolves them; any other name (a
/// redirect target, a token realm an upstream names) is refused when one of
/// its addresses is loopback, link-local or unspecified.
#[derive(Clone, Debug)]
pub struct Resolver {
    trusted: Arc<HashSet<String>>,
}

impl Resolver {
    /// A resolver that trusts `names` (compared without case or a trailing dot).
    pub fn new(names: impl IntoIterator<Item = String>) -> Resolver {
        Resolver {
            trusted: Arc::new(names.into_iter().map(|n| normal_name(&n)).collect()),
        }
    }

    /// Whether `name` is one of the configured names.
    pub fn trusts(&self, name: &str) -> bool {
        self.trusted.contains(&normal_name(name))
    }
}

fn normal_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Refuses `addrs`, the answer for an untrusted `name`, when one of them is
/// of a class the gateway does not go to.
pub fn screen(name: &str, addrs: &[SocketAddr]) -> Result<(), Refused> {
    for addr in addrs {
        if let Some(class) = class_of(addr.ip()) {
            return Err(Refused {
                target: name.to_owned(),
                why: Refusal::Resolves {
                    addr: addr.ip(),
                    class,
                },
            });
        }
    }
    Ok(())
}

impl Resolve for Resolver {
    fn resolve(&self, name: Name) -> Resolving {
        let trusted = self.trusts(name.as_str());
        let name = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            if !trusted {
                screen(&name, &addrs)?;
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    const PUBLIC: &str = "https://registry.example/v2/library/nginx/blobs/sha256:0";
    const ON_LOOPBACK: &str = "http://127.0.0.1:5000/v2/library/nginx/blobs/sha256:0";

    /// This machine's addresses, for the table: loopback and 192.0.2.2.
    fn local(ip: IpAddr) -> bool {
        ip.is_loopback() || ip == IpAddr::from([192, 0, 2, 2])
    }

    /// Name, the upstream's URL, the redirect target, its hop, the
    /// gateway's listeners, what is decided.
    type Case<'a> = (
        &'a str,
        &'a str,
        &'a str,
        usize,
        &'a [SocketAddr],
        Result<(), Refusal>,
    );

    #[test]
    fn case_redirects_are_followed_only_where_the_rule_allows() {
        use Refusal::*;
        let listeners: Vec<SocketAddr> = vec!["0.0.0.0:8443".parse().unwrap()];
        let loopback_listener: Vec<SocketAddr> = vec!["127.0.0.1:8443".parse().unwrap()];
        let v6_listener: Vec<SocketAddr> = vec!["[::]:8443".parse().unwrap()];
        let none: Vec<SocketAddr> = vec![];
        let on_80: Vec<SocketAddr> = vec!["0.0.0.0:80".parse().unwrap()];
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            ("storage_over_https", PUBLIC, "https://storage.example/b?sig=x", 1, &listeners, Ok(())),
            ("https_to_http_downgrade", PUBLIC, "http://storage.example/b", 1, &listeners, Err(Downgrade)),
            ("http_from_a_plain_http_upstream", ON_LOOPBACK, "http://storage.example/b", 1, &none, Ok(())),
            ("https_from_a_plain_http_upstream", ON_LOOPBACK, "https://storage.example/b", 1, &none, Ok(())),
            ("ftp", PUBLIC, "ftp://storage.example/b", 1, &none, Err(Scheme { scheme: "ftp".into() })),
            ("file", ON_LOOPBACK, "file:///etc/passwd", 1, &none, Err(Scheme { scheme: "file".into() })),
            ("fifth_hop", PUBLIC, "https://storage.example/b", 5, &none, Ok(())),
            ("sixth_hop", PUBLIC, "https://storage.example/b", 6, &none, Err(TooManyRedirects { hop: 6 })),
            ("loopback_v4", PUBLIC, "https://127.0.0.1/b", 1, &none, Err(Address(AddressClass::Loopback))),
            ("loopback_v4_elsewhere_in_8", PUBLIC, "https://127.0.0.2:9000/b", 1, &none, Err(Address(AddressClass::Loopback))),
            ("loopback_v4_decimal", PUBLIC, "https://2130706433/b", 1, &none, Err(Address(AddressClass::Loopback))),
            ("loopback_v4_short", PUBLIC, "https://127.1/b", 1, &none, Err(Address(AddressClass::Loopback))),
            ("loopback_v6", PUBLIC, "https://[::1]/b", 1, &none, Err(Address(AddressClass::Loopback))),
            ("loopback_v4_mapped", PUBLIC, "https://[::ffff:127.0.0.1]/b", 1, &none, Err(Address(AddressClass::Loopback))),
            ("localhost", PUBLIC, "https://localhost/b", 1, &none, Err(Address(AddressClass::Loopback))),
            ("localhost_upper_case_trailing_dot", PUBLIC, "https://LOCALHOST./b", 1, &none, Err(Address(AddressClass::Loopback))),
            ("localhost_subdomain", PUBLIC, "https://evil.localhost/b", 1, &none, Err(Address(AddressClass::Loopback))),
            ("a_name_merely_starting_with_localhost", PUBLIC, "https://localhost.example/b", 1, &none, Ok(())),
            ("cloud_metadata", PUBLIC, "https://169.254.169.254/latest/meta-data/", 1, &none, Err(Address(AddressClass::LinkLocal))),
            ("cloud_metadata_v4_mapped", PUBLIC, "https://[::ffff:169.254.169.254]/", 1, &none, Err(Address(AddressClass::LinkLocal))),
            ("link_local_v6", PUBLIC, "https://[fe80::1]/b", 1, &none, Err(Address(AddressClass::LinkLocal))),
            ("link_local_v6_end_of_range", PUBLIC, "https://[febf::1]/b", 1, &none, Err(Address(AddressClass::LinkLocal))),
            ("not_link_local_v6", PUBLIC, "https://[fec0::1]/b", 1, &none, Ok(())),
            ("unspecified_v4", PUBLIC, "https://0.0.0.0/b", 1, &none, Err(Unspecified)),
            ("unspecified_v6", PUBLIC, "https://[::]/b", 1, &none, Err(Unspecified)),
            ("unspecified_from_loopback", ON_LOOPBACK, "http://0.0.0.0:9000/b", 1, &none, Err(Unspecified)),
            ("unspecified_on_the_gateways_port", ON_LOOPBACK, "http://0.0.0.0:8443/metrics", 1, &loopback_listener, Err(OwnListener(loopback_listener[0]))),
            ("loopback_from_an_upstream_on_loopback", ON_LOOPBACK, "http://127.0.0.1:9000/b", 1, &listeners, Ok(())),
            ("v6_loopback_from_an_upstream_on_loopback", ON_LOOPBACK, "http://[::1]:9000/b", 1, &listeners, Ok(())),
            ("link_local_from_an_upstream_on_loopback", ON_LOOPBACK, "http://169.254.169.254/", 1, &none, Err(Address(AddressClass::LinkLocal))),
            ("loopback_from_localhost_by_name", "http://localhost:5000/v2/", "http://127.0.0.1:9000/b", 1, &none, Ok(())),
            ("link_local_from_an_upstream_on_link_local", "http://[fe80::2]:5000/v2/", "http://[fe80::3]:9000/b", 1, &none, Ok(())),
            ("the_gateways_port_on_a_wildcard_listener", ON_LOOPBACK, "http://127.0.0.1:8443/metrics", 1, &listeners, Err(OwnListener(listeners[0]))),
            ("the_gateways_port_by_a_local_address", PUBLIC, "https://192.0.2.2:8443/metrics", 1, &listeners, Err(OwnListener(listeners[0]))),
            ("the_gateways_port_on_another_machine", PUBLIC, "https://192.0.2.9:8443/b", 1, &listeners, Ok(())),
            ("the_gateways_port_by_localhost", ON_LOOPBACK, "http://localhost:8443/metrics", 1, &loopback_listener, Err(OwnListener(loopback_listener[0]))),
            ("the_gateways_port_mapped", ON_LOOPBACK, "http://[::ffff:127.0.0.1]:8443/metrics", 1, &loopback_listener, Err(OwnListener(loopback_listener[0]))),
            ("the_gateways_port_behind_a_v6_wildcard", ON_LOOPBACK, "http://127.0.0.1:8443/metrics", 1, &v6_listener, Err(OwnListener(v6_listener[0]))),
            ("the_gateways_default_port", ON_LOOPBACK, "http://127.0.0.1/metrics", 1, &on_80, Err(OwnListener(on_80[0]))),
            ("another_port_beside_a_loopback_listener", ON_LOOPBACK, "http://127.0.0.1:8444/b", 1, &loopback_listener, Ok(())),
            ("the_upstreams_own_host", PUBLIC, "https://registry.example/v2/other", 1, &listeners, Ok(())),
            ("the_upstreams_own_loopback_host", ON_LOOPBACK, "http://127.0.0.1:5000/v2/other", 1, &listeners, Ok(())),
        ];
        for (name, origin, next, hop, listeners, expected) in cases {
            assert_eq!(
                follow(&url(origin), &url(next), hop, listeners, &local),
                expected,
                "case::{name}: {origin} -> {next}"
            );
        }
    }

    #[test]
    fn case_refusals_read_as_the_end_of_a_sentence() {
        let refused = Refused {
            target: shown(&url("http://user:pw@127.0.0.1:9/b?X-Amz-Signature=s#f")),
            why: Refusal::Address(AddressClass::Loopback),
        };
        assert_eq!(
            refused.to_string(),
            "the gateway does not go to http://127.0.0.1:9/b: it is a loopback address, and the upstream is not on one"
        );
        assert_eq!(
            Refusal::TooManyRedirects { hop: 6 }.to_string(),
            "it would be redirect number 6, and at most 5 are followed"
        );
        assert_eq!(
            Refusal::OwnListener("0.0.0.0:8443".parse().unwrap()).to_string(),
            "it is the gateway's own listener 0.0.0.0:8443"
        );
    }

    #[test]
    fn case_untrusted_names_must_not_resolve_to_loopback_link_local_or_unspecified() {
        let addr = |s: &str| -> SocketAddr { s.parse().unwrap() };
        assert!(screen("storage.example", &[addr("203.0.113.7:0")]).is_ok());
        assert!(screen("minio.corp", &[addr("10.1.2.3:0")]).is_ok());
        for (answer, class) in [
            ("127.0.0.1:0", AddressClass::Loopback),
            ("[::1]:0", AddressClass::Loopback),
            ("[::ffff:127.0.0.1]:0", AddressClass::Loopback),
            ("169.254.169.254:0", AddressClass::LinkLocal),
            ("[fe80::1]:0", AddressClass::LinkLocal),
            ("0.0.0.0:0", AddressClass::Unspecified),
        ] {
            // A public answer beside it does not make it safe.
            let e = screen("rebind.example", &[addr("203.0.113.7:0"), addr(answer)]).unwrap_err();
            assert_eq!(e.target, "rebind.example");
            assert!(
                matches!(e.why, Refusal::Resolves { class: c, .. } if c == class),
                "{answer}: {e}"
            );
        }
    }

    #[tokio::test]
    async fn case_the_resolver_refuses_localhost_unless_it_is_configured() {
        let name = || "localhost".parse::<Name>().unwrap();
        let refused = Resolver::new(["registry.example".to_owned()])
            .resolve(name())
            .await
            .err()
            .expect("localhost resolves to loopback");
        let refused = Refused::find(&*refused).expect("a Refused");
        assert_eq!(refused.target, "localhost");
        assert!(matches!(
            refused.why,
            Refusal::Resolves {
                class: AddressClass::Loopback,
                ..
            }
        ));
        let trusted = Resolver::new(["LOCALHOST.".to_owned()]);
        assert!(trusted.trusts("localhost"));
        assert!(trusted.resolve(name()).await.is_ok());
    }

    #[tokio::test]
    async fn case_a_refused_name_reaches_the_caller_of_reqwest_as_a_refusal() {
        crate::tls::install_crypto_provider();
        let client = reqwest::Client::builder()
            .dns_resolver(Resolver::new(Vec::new()))
            .no_proxy()
            .build()
            .unwrap();
        let e = client.get("http://localhost:9/").send().await.unwrap_err();
        let refused = Refused::find(&e).expect("the refusal among the causes");
        assert_eq!(refused.target, "localhost");
    }

    #[test]
    fn case_a_wildcard_listener_is_behind_every_local_address_with_its_port() {
        let wildcard: SocketAddr = "0.0.0.0:8443".parse().unwrap();
        let at = |s: &str| own_listener(s.parse().unwrap(), &[wildcard], &local);
        assert_eq!(at("127.0.0.1:8443"), Some(wildcard));
        assert_eq!(at("[::1]:8443"), Some(wildcard));
        assert_eq!(at("192.0.2.2:8443"), Some(wildcard));
        assert_eq!(at("192.0.2.9:8443"), None, "another machine");
        assert_eq!(at("192.0.2.2:8444"), None, "another port");
        assert!(is_local_address(IpAddr::from([127, 0, 0, 1])));
        assert!(!is_local_address(IpAddr::from([203, 0, 113, 7])));
    }
}
