//! The proxy CA: the registry proxy door terminates a client's TLS with a
//! certificate for the host it asked to `CONNECT` to, issued here on the
//! fly from a CA the client's daemon trusts (`imagegate certs --proxy-ca
//! DIR` makes one), and cached per host. Issues only; reads no files
//! itself beyond what its caller hands it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;

use super::target::Host;

/// How many hosts' certificates are kept; past it the cache starts over
/// (a daemon talks to a handful of registries).
const CACHE_HOSTS: usize = 1024;
/// How long an issued certificate is valid, from a little before now.
const LEAF_DAYS: i64 = 7;

/// Why the proxy CA could not be read or could not issue.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// The CA's certificate or key is not usable.
    #[error("proxy CA {what}: {detail}")]
    Load {
        /// `certificate` or `key`.
        what: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// Signing a host's certificate failed.
    #[error("cannot issue a certificate for {host}: {detail}")]
    Issue {
        /// The host.
        host: String,
        /// What failed.
        detail: String,
    },
}

/// A proxy CA made by [`ProxyCa::generate`], as PEM.
pub struct GeneratedCa {
    /// The CA certificate, for the daemons to trust.
    pub cert_pem: String,
    /// Its private key, for `imagegate serve --proxy-ca-key`.
    pub key_pem: String,
}

/// The CA that signs the proxy's per-host certificates, with their cache.
pub struct ProxyCa {
    issuer: Issuer<'static, KeyPair>,
    issued: Mutex<HashMap<Host, Arc<CertifiedKey>>>,
}

impl ProxyCa {
    /// A new CA (ECDSA P-256, may sign leaves only), valid `days` days.
    pub fn generate(days: u32) -> Result<GeneratedCa, CaError> {
        let fail = |detail: rcgen::Error| CaError::Load {
            what: "certificate",
            detail: detail.to_string(),
        };
        let now = time::OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params
            .distinguished_name
            .push(DnType::CommonName, "imagegate registry proxy CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = now + time::Duration::days(i64::from(days));
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(fail)?;
        let cert = params.self_signed(&key).map_err(fail)?;
        Ok(GeneratedCa {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// The CA from its certificate and key, both PEM.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<ProxyCa, CaError> {
        let key = KeyPair::from_pem(key_pem).map_err(|e| CaError::Load {
            what: "key",
            detail: e.to_string(),
        })?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key).map_err(|e| CaError::Load {
            what: "certificate",
            detail: e.to_string(),
        })?;
        Ok(ProxyCa {
            issuer,
            issued: Mutex::new(HashMap::new()),
        })
    }

    /// The certificate and key for `host`: issued on its first connection,
    /// then the same one from the cache.
    pub fn for_host(&self, host: &Host) -> Result<Arc<CertifiedKey>, CaError> {
        if let Some(found) = self.lock().get(host) {
            return Ok(found.clone());
        }
        let issued = Arc::new(self.issue(host)?);
        let mut cache = self.lock();
        if cache.len() >= CACHE_HOSTS {
            cache.clear();
        }
        Ok(cache.entry(host.clone()).or_insert(issued).clone())
    }

    /// How many hosts have a certificate in the cache.
    pub fn cached(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Host, Arc<CertifiedKey>>> {
        self.issued.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn issue(&self, host: &Host) -> Result<CertifiedKey, CaError> {
        let shown = match host {
            Host::Name(name) => name.clone(),
            Host::Ip(ip) => ip.to_string(),
        };
        let fail = |detail: String| CaError::Issue {
            host: shown.clone(),
            detail,
        };
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![match host {
            Host::Name(name) => SanType::DnsName(
                name.as_str()
                    .try_into()
                    .map_err(|e: rcgen::Error| fail(e.to_string()))?,
            ),
            Host::Ip(ip) => SanType::IpAddress(IpAddr::clone(ip)),
        }];
        params
            .distinguished_name
            .push(DnType::CommonName, shown.as_str());
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = now + time::Duration::days(LEAF_DAYS);
        let key =
            KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| fail(e.to_string()))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| fail(e.to_string()))?;
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signer =
            rustls::crypto::ring::sign::any_ecdsa_type(&der).map_err(|e| fail(e.to_string()))?;
        Ok(CertifiedKey::new(vec![cert.der().clone()], signer))
    }
}

#[cfg(test)]
mod tests {
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

    use super::*;
    use crate::proxy::target::Target;

    fn verifier(ca_pem: &str) -> Arc<rustls::client::WebPkiServerVerifier> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap()
    }

    fn verifies(v: &rustls::client::WebPkiServerVerifier, key: &CertifiedKey, name: &str) -> bool {
        v.verify_server_cert(
            &key.cert[0],
            &[],
            &ServerName::try_from(name.to_owned()).unwrap(),
            &[],
            UnixTime::now(),
        )
        .is_ok()
    }

    #[test]
    fn a_host_gets_a_certificate_the_ca_vouches_for_and_only_for_that_host() {
        let made = ProxyCa::generate(30).unwrap();
        let ca = ProxyCa::from_pem(&made.cert_pem, &made.key_pem).unwrap();
        let v = verifier(&made.cert_pem);
        let hub = Target::parse("registry-1.docker.io:443").unwrap();
        let key = ca.for_host(hub.host()).unwrap();
        assert!(verifies(&v, &key, "registry-1.docker.io"));
        assert!(!verifies(&v, &key, "ghcr.io"));
        assert!(!verifies(&v, &key, "evil.registry-1.docker.io"));
        let ip = Target::parse("10.0.0.7:443").unwrap();
        assert!(verifies(&v, &ca.for_host(ip.host()).unwrap(), "10.0.0.7"));
        // Another CA's daemon trusts none of it.
        let other = ProxyCa::generate(30).unwrap();
        assert!(!verifies(
            &verifier(&other.cert_pem),
            &key,
            "registry-1.docker.io"
        ));
    }

    #[test]
    fn a_later_connection_to_the_same_host_reuses_its_certificate() {
        let made = ProxyCa::generate(30).unwrap();
        let ca = ProxyCa::from_pem(&made.cert_pem, &made.key_pem).unwrap();
        let host = Target::parse("ghcr.io:443").unwrap();
        let first = ca.for_host(host.host()).unwrap();
        let again = ca.for_host(host.host()).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(ca.cached(), 1);
    }

    #[test]
    fn a_broken_ca_is_refused_naming_the_part() {
        let made = ProxyCa::generate(30).unwrap();
        let e = ProxyCa::from_pem(&made.cert_pem, "not a key")
            .err()
            .unwrap();
        assert!(e.to_string().starts_with("proxy CA key: "), "{e}");
        let e = ProxyCa::from_pem("not a certificate", &made.key_pem)
            .err()
            .unwrap();
        assert!(e.to_string().starts_with("proxy CA certificate: "), "{e}");
    }
}
