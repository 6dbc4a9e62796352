//! `imagegate certs`: a CA and an ECDSA P-256 serving certificate for the
//! webhook's Service, and the base64 `caBundle` for the webhook configuration;
//! with `--client NAME`, also a client certificate from the same CA for
//! kube-apiserver to present to the admission doors (`--admission-client-ca`).

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};

use crate::EXIT_OK;

#[derive(clap::Args)]
pub struct Args {
    /// The webhook's Service name.
    #[arg(long, default_value = "imagegate")]
    service: String,
    /// The Service's namespace.
    #[arg(long, default_value = "imagegate")]
    namespace: String,
    /// More DNS names for the serving certificate.
    #[arg(long = "dns", value_name = "NAME")]
    dns: Vec<String>,
    /// IP addresses for the serving certificate.
    #[arg(long = "ip", value_name = "ADDR")]
    ip: Vec<IpAddr>,
    /// Also issue a client certificate (ClientAuth) with this common name,
    /// written to client.crt and client.key: kube-apiserver's identity at the
    /// admission doors when imagegate serve has --admission-client-ca ca.crt.
    #[arg(long, value_name = "NAME", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    client: Option<String>,
    /// Instead of the webhook's certificates, make the registry proxy's CA
    /// (ca.crt and ca.key in DIR): the CA the proxy door issues each
    /// registry host's certificate from, for Docker Engines and containerd
    /// to trust.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["client", "dns", "ip", "service", "namespace", "out"])]
    proxy_ca: Option<PathBuf>,
    /// Directory to write ca.crt, ca.key, tls.crt and tls.key into.
    #[arg(long, value_name = "DIR", default_value = ".")]
    out: PathBuf,
    /// Days the certificates are valid.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=3650))]
    days: u32,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    if let Some(dir) = &args.proxy_ca {
        return proxy_ca(dir, args.days);
    }
    let now = time::OffsetDateTime::now_utc();
    let until = now + time::Duration::days(i64::from(args.days));

    let mut ca_params = CertificateParams::default();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "imagegate webhook CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = now;
    ca_params.not_after = until;
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).context("generating the CA key")?;
    let ca_key_pem = ca_key.serialize_pem();
    let ca =
        CertifiedIssuer::self_signed(ca_params, ca_key).context("signing the CA certificate")?;

    let service = format!("{}.{}.svc", args.service, args.namespace);
    let mut names = vec![
        args.service.clone(),
        format!("{}.{}", args.service, args.namespace),
        service.clone(),
        format!("{service}.cluster.local"),
    ];
    names.extend(args.dns.iter().cloned());
    let mut params = CertificateParams::new(names).context("the DNS names")?;
    params
        .subject_alt_names
        .extend(args.ip.iter().map(|ip| SanType::IpAddress(*ip)));
    params
        .distinguished_name
        .push(DnType::CommonName, service.as_str());
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = now;
    params.not_after = until;
    let key =
        KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).context("generating the serving key")?;
    let cert = params
        .signed_by(&key, &ca)
        .context("signing the serving certificate")?;

    let client = match &args.client {
        Some(name) => {
            let mut params = CertificateParams::default();
            params.distinguished_name = DistinguishedName::new();
            params
                .distinguished_name
                .push(DnType::CommonName, name.as_str());
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            params.not_before = now;
            params.not_after = until;
            let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
                .context("generating the client key")?;
            let cert = params
                .signed_by(&key, &ca)
                .context("signing the client certificate")?;
            Some((name, cert, key))
        }
        None => None,
    };

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    write(&args.out.join("ca.crt"), &ca.pem(), false)?;
    write(&args.out.join("ca.key"), &ca_key_pem, true)?;
    write(&args.out.join("tls.crt"), &cert.pem(), false)?;
    write(&args.out.join("tls.key"), &key.serialize_pem(), true)?;
    eprintln!(
        "wrote ca.crt, ca.key, tls.crt and tls.key to {} for {service}, valid {} days; caBundle on stdout",
        args.out.display(),
        args.days
    );
    if let Some((name, cert, key)) = client {
        write(&args.out.join("client.crt"), &cert.pem(), false)?;
        write(&args.out.join("client.key"), &key.serialize_pem(), true)?;
        eprintln!(
            "wrote client.crt and client.key to {} for client {name} (client authentication), signed by ca.crt",
            args.out.display()
        );
    }
    let bundle = base64::engine::general_purpose::STANDARD.encode(ca.pem());
    let mut out = std::io::stdout();
    writeln!(out, "{bundle}")?;
    Ok(EXIT_OK)
}

/// `imagegate certs --proxy-ca DIR`.
fn proxy_ca(dir: &Path, days: u32) -> anyhow::Result<u8> {
    let ca = imagegate_server::proxy::ca::ProxyCa::generate(days)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    write(&dir.join("ca.crt"), &ca.cert_pem, false)?;
    write(&dir.join("ca.key"), &ca.key_pem, true)?;
    eprintln!(
        "wrote ca.crt and ca.key to {}: the registry proxy's CA, valid {days} days; the daemons that use the proxy trust ca.crt, and ca.key stays with imagegate serve",
        dir.display()
    );
    Ok(EXIT_OK)
}

fn write(path: &Path, text: &str, secret: bool) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let _ = secret;
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
