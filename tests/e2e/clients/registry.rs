//! The CNCF distribution registry (`/usr/bin/docker-registry`) on a free
//! loopback port, plain HTTP or HTTPS with a test CA, optionally behind
//! htpasswd Basic auth; and that test CA, made by `imagegate certs`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Scratch, require};

/// A CA and a serving certificate for `localhost` and `127.0.0.1` (and the
/// webhook names `imagegate certs` always adds), made by `imagegate certs`.
pub struct TestCa {
    scratch: Scratch,
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

impl TestCa {
    pub fn new() -> TestCa {
        let scratch = Scratch::new("ca");
        let out = Command::new(env!("CARGO_BIN_EXE_imagegate"))
            .args([
                "certs",
                "--dns",
                "localhost",
                "--ip",
                "127.0.0.1",
                "--days",
                "2",
                "--out",
            ])
            .arg(scratch.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "imagegate certs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // A directory holding only the CA, for --cert-dir style flags (they
        // take every *.key in the directory for a client key pair).
        std::fs::copy(scratch.path().join("ca.crt"), scratch.join("trust/ca.crt")).unwrap();
        TestCa { scratch }
    }

    /// The CA certificate (PEM).
    pub fn ca(&self) -> PathBuf {
        self.scratch.path().join("ca.crt")
    }

    /// A directory holding only `ca.crt`: for `skopeo --src-cert-dir`,
    /// `podman pull --cert-dir`, `buildah pull --cert-dir`.
    pub fn cert_dir(&self) -> PathBuf {
        self.scratch.path().join("trust")
    }

    /// The serving certificate (PEM), for `imagegate serve --tls-cert`.
    pub fn cert(&self) -> PathBuf {
        self.scratch.path().join("tls.crt")
    }

    /// The serving key (PEM), for `imagegate serve --tls-key`.
    pub fn key(&self) -> PathBuf {
        self.scratch.path().join("tls.key")
    }
}

/// A running distribution registry with its storage in a scratch directory,
/// killed on drop. Its log (access log included) is [`Registry::log`].
pub struct Registry {
    child: Child,
    port: u16,
    tls: Option<PathBuf>,
    credentials: Option<(String, String)>,
    scratch: Scratch,
}

impl Registry {
    /// A plain-HTTP registry, with Basic auth for `(user, password)` if given.
    pub fn start(htpasswd: Option<(&str, &str)>) -> Registry {
        Self::launch(htpasswd, None)
    }

    /// An HTTPS registry serving `ca`'s certificate (valid for `localhost`
    /// and `127.0.0.1`), with Basic auth for `(user, password)` if given.
    pub fn start_tls(htpasswd: Option<(&str, &str)>, ca: &TestCa) -> Registry {
        Self::launch(htpasswd, Some(ca))
    }

    fn launch(htpasswd: Option<(&str, &str)>, ca: Option<&TestCa>) -> Registry {
        require("docker-registry");
        require("curl");
        let mut scratch = Scratch::new("registry");
        let mut auth = String::new();
        if let Some((user, password)) = htpasswd {
            require("htpasswd");
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .unwrap();
            assert!(out.status.success(), "htpasswd -Bbn failed");
            std::fs::write(scratch.join("htpasswd"), &out.stdout).unwrap();
            auth = format!(
                "auth:\n  htpasswd:\n    realm: e2e\n    path: {}\n",
                scratch.path().join("htpasswd").display()
            );
        }
        let tls = ca.map(|ca| {
            format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                ca.cert().display(),
                ca.key().display()
            )
        });
        // A port picked by the kernel can be taken again before the registry
        // binds it: try a few.
        for _ in 0..5 {
            let port = free_port();
            let config = format!(
                "version: 0.1\n\
                 log:\n  level: info\n  formatter: text\n\
                 storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n\
                 http:\n  addr: 127.0.0.1:{port}\n  secret: imagegate-e2e\n{tls}\
                 {auth}",
                storage = scratch.path().join("storage").display(),
                tls = tls.clone().unwrap_or_default(),
            );
            let config_path = scratch.join("config.yml");
            std::fs::write(&config_path, config).unwrap();
            let log = std::fs::File::create(scratch.join("registry.log")).unwrap();
            let child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("docker-registry starts");
            let mut registry = Registry {
                child,
                port,
                tls: ca.map(TestCa::ca),
                credentials: htpasswd.map(|(u, p)| (u.to_owned(), p.to_owned())),
                scratch,
            };
            match registry.wait_ready() {
                Ok(()) => return registry,
                Err(log) if log.contains("address already in use") => {
                    scratch = registry.into_scratch();
                }
                Err(log) => panic!("docker-registry did not start:\n{log}"),
            }
        }
        panic!("docker-registry found no free port in 5 tries");
    }

    fn into_scratch(mut self) -> Scratch {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let scratch = Scratch::new("registry");
        std::mem::replace(&mut self.scratch, scratch)
    }

    /// Waits until `/v2/` answers (200, or 401 behind auth); Err(log) if the
    /// registry exited first.
    fn wait_ready(&mut self) -> Result<(), String> {
        let started = Instant::now();
        loop {
            if self.child.try_wait().unwrap().is_some() {
                return Err(self.log());
            }
            let mut curl = Command::new("curl");
            curl.args([
                "--silent",
                "--output",
                "/dev/null",
                "--write-out",
                "%{http_code}",
            ]);
            if let Some(ca) = &self.tls {
                curl.arg("--cacert").arg(ca);
            }
            let out = curl.arg(format!("{}/v2/", self.url())).output().unwrap();
            if matches!(&out.stdout[..], b"200" | b"401") {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(20) {
                panic!(
                    "docker-registry does not answer /v2/ after 20 s:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.host_port())
    }

    /// `127.0.0.1:PORT`: the registry part of image references. Over TLS,
    /// `localhost:PORT` verifies too (see [`Registry::port`]).
    pub fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The CA to verify it with, when it serves HTTPS.
    pub fn ca(&self) -> Option<&std::path::Path> {
        self.tls.as_deref()
    }

    /// The htpasswd user and password, if it has them.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// Everything the registry logged so far, access log included.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.scratch.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
