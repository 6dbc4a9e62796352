//! `imagegate serve` as the registry gateway in front of test registries:
//! its store prepared with `imagegate admin`, HTTPS with a [`TestCa`]
//! certificate, its port picked by the kernel and read from its log, killed
//! on drop; and curl as the bare HTTP client for what no registry client
//! shows (a blob by digest, a `Range`).

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::registry::{Registry, TestCa};
use super::{DEFAULT_TIMEOUT, Run, Scratch, clean_command, require, run};

/// A data directory (the store and the signing key) for one gateway, managed
/// with `imagegate admin` before and while the gateway runs.
pub struct DataDir {
    scratch: Scratch,
}

impl Default for DataDir {
    fn default() -> Self {
        Self::new()
    }
}

impl DataDir {
    pub fn new() -> DataDir {
        DataDir {
            scratch: Scratch::new("gateway-data"),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.scratch.path().join("data")
    }

    /// `imagegate admin --data-dir DIR ARGS`, with `stdin`.
    pub fn admin(&self, args: &[&str], stdin: &[u8]) -> Run {
        let mut cmd = clean_command(env!("CARGO_BIN_EXE_imagegate"));
        cmd.arg("admin")
            .arg("--data-dir")
            .arg(self.path())
            .args(args);
        run(cmd, Some(stdin), DEFAULT_TIMEOUT)
    }

    /// Creates `user` with the account `password` and returns a new personal
    /// access token of theirs.
    pub fn user_with_token(&self, user: &str, password: &str) -> String {
        self.admin(
            &["user", "create", user],
            format!("{password}\n").as_bytes(),
        )
        .success();
        let token = self
            .admin(&["token", "create", user, "--name", "e2e"], b"")
            .success();
        token.stdout.trim().to_owned()
    }

    /// Stores `policy` (YAML) as `org`'s policy.
    pub fn set_policy(&self, org: &str, policy: &str) {
        let file = self.scratch.join(&format!("policy-{org}.yaml"));
        std::fs::write(&file, policy).unwrap();
        self.admin(
            &[
                "org",
                "policy",
                "set",
                org,
                "--file",
                file.to_str().unwrap(),
            ],
            b"",
        )
        .success();
    }
}

/// A running `imagegate serve` with its own data directory, killed on drop.
/// It answers at `https://localhost:PORT` (the certificate covers `localhost`
/// and `127.0.0.1`).
pub struct Gateway {
    child: Child,
    port: u16,
    data: DataDir,
    log: PathBuf,
    ca: PathBuf,
}

impl Gateway {
    /// Serves `data` over HTTPS with `ca`'s certificate, relaying registry
    /// host `HOST` to `REGISTRY` for each of `upstreams`, and giving each
    /// registry that has credentials its htpasswd user and password
    /// (`--upstream-credentials HOST=USER:PASSWORD_FILE`) when
    /// `upstream_credentials` is true.
    pub fn start(
        data: DataDir,
        ca: &TestCa,
        upstreams: &[(&str, &Registry)],
        upstream_credentials: bool,
    ) -> Gateway {
        let log = data.scratch.path().join("serve.log");
        let mut cmd = clean_command(env!("CARGO_BIN_EXE_imagegate"));
        cmd.arg("serve")
            .args(["--listen", "127.0.0.1:0", "--reload-interval-seconds", "1"])
            .arg("--data-dir")
            .arg(data.path())
            .arg("--tls-cert")
            .arg(ca.cert())
            .arg("--tls-key")
            .arg(ca.key());
        // An HTTPS upstream (Registry::start_tls) is verified against
        // SSL_CERT_FILE, as in bench/gateway.sh: here, the test CA alone.
        cmd.env("SSL_CERT_FILE", ca.ca());
        for (host, registry) in upstreams {
            cmd.arg("--upstream")
                .arg(format!("{host}={}", registry.url()));
            if let (true, Some((user, password))) = (upstream_credentials, registry.credentials()) {
                let file = data.scratch.join(&format!("upstream-{host}.password"));
                std::fs::write(&file, format!("{password}\n")).unwrap();
                cmd.arg("--upstream-credentials")
                    .arg(format!("{host}={user}:{}", file.display()));
            }
        }
        let out = std::fs::File::create(&log).unwrap();
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        let child = cmd.spawn().expect("imagegate serve starts");
        let mut gateway = Gateway {
            child,
            port: 0,
            data,
            log,
            ca: ca.ca(),
        };
        gateway.port = gateway.wait_listening();
        gateway.wait_healthy();
        gateway
    }

    /// The port from the `listening` log line (`"addr":"127.0.0.1:PORT"`).
    fn wait_listening(&mut self) -> u16 {
        let started = Instant::now();
        loop {
            let log = self.log();
            if let Some(line) = log.lines().find(|l| l.contains("\"listening\"")) {
                let line: serde_json::Value = serde_json::from_str(line).unwrap();
                let addr = line["addr"].as_str().expect("the listening line has addr");
                return addr.rsplit_once(':').unwrap().1.parse().unwrap();
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("imagegate serve exited with {status}:\n{log}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "imagegate serve is not listening after 30 s:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_healthy(&self) {
        let started = Instant::now();
        loop {
            let (status, _) = self.curl(&["/healthz"]);
            if status == 200 {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "https://{}/healthz does not answer 200 after 20 s:\n{}",
                self.host_port(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// `localhost:PORT`: the registry part of image references through it.
    pub fn host_port(&self) -> String {
        format!("localhost:{}", self.port)
    }

    /// The data directory, for `imagegate admin` while it runs.
    pub fn data(&self) -> &DataDir {
        &self.data
    }

    /// Everything it logged so far (JSON lines).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// curl, verifying the gateway against the test CA: `args` are curl's,
    /// with the first argument starting with `/` taken as a path on the
    /// gateway. Returns the HTTP status and the response body (headers
    /// included if `--include` is among `args`); status 0 if no answer came.
    pub fn curl(&self, args: &[&str]) -> (u16, Vec<u8>) {
        require("curl");
        let mut cmd = clean_command("curl");
        cmd.args(["--silent", "--show-error", "--max-time", "30", "--cacert"])
            .arg(&self.ca);
        for arg in args {
            if arg.starts_with('/') {
                cmd.arg(format!("https://{}{arg}", self.host_port()));
            } else {
                cmd.arg(arg);
            }
        }
        cmd.args(["--output", "-", "--write-out", "\n%{http_code}"]);
        let out = cmd.output().unwrap();
        let mut body = out.stdout;
        let split = body.iter().rposition(|&b| b == b'\n').unwrap_or(0);
        let code = String::from_utf8_lossy(&body[split..]).trim().to_owned();
        body.truncate(split);
        (code.parse().unwrap_or(0), body)
    }

    /// A registry token from `/token` for `scope` (`repository:NAME:pull`),
    /// signed in as `user` with `secret`, found the way clients find it: from
    /// the challenge of an unauthenticated request.
    pub fn token(&self, user: &str, secret: &str, scope: &str) -> String {
        let (status, head) = self.curl(&["--head", "/v2/"]);
        assert_eq!(status, 401, "{}", String::from_utf8_lossy(&head));
        let head = String::from_utf8(head).unwrap();
        let challenge = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("www-authenticate")
                    .then(|| value.trim())
            })
            .unwrap_or_else(|| panic!("no challenge in {head}"));
        let param = |name: &str| {
            let start = challenge.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
            let end = challenge[start..].find('"').unwrap() + start;
            challenge[start..end].to_owned()
        };
        let realm = param("realm");
        assert_eq!(realm, format!("https://{}/token", self.host_port()));
        let path = format!("/token?service={}&scope={scope}", param("service"));
        let (status, body) = self.curl(&["--user", &format!("{user}:{secret}"), &path]);
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|_| {
            panic!(
                "/token answered {status}: {}",
                String::from_utf8_lossy(&body)
            )
        });
        assert_eq!(status, 200, "/token answered {body}");
        body["token"].as_str().unwrap().to_owned()
    }
}

impl Gateway {
    /// Stops it with SIGTERM, as a clean shutdown, and waits for it to exit
    /// successfully: every acknowledged audit event is then in the store.
    pub fn stop(&mut self) {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(sent.success());
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "imagegate serve exited with {status}:\n{}",
                    self.log()
                );
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "imagegate serve still runs 20 s after SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- imagegate serve log\n{}", self.log());
        }
    }
}
