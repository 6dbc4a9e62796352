//! `imagegate serve` and `imagegate certs`: the running binary over real HTTPS,
//! with curl verifying the certificate `imagegate certs` made.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

const SERVICE_HOST: &str = "imagegate.imagegate.svc";
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/crates/server/tests/fixtures");

/// A running `imagegate serve`, killed when dropped.
struct Server {
    child: Child,
    port: u16,
    logs: mpsc::Receiver<String>,
    /// Log lines read while waiting for others.
    seen: Vec<String>,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_imagegate"));
        command
            .arg("serve")
            .args([
                "--listen",
                "127.0.0.1:0",
                "--reload-interval-seconds",
                "1",
                "--shutdown-grace-seconds",
                "5",
            ])
            .args(args)
            .env_remove("IMAGEGATE_POLICY")
            .env("IMAGEGATE_DATA_DIR", data_dir());
        Server::spawn(command)
    }

    /// Starts `command` (an `imagegate serve` with JSON logs on standard
    /// output) and waits for it to listen.
    fn spawn(mut command: Command) -> Server {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("imagegate serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, logs) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child,
            port: 0,
            logs,
            seen: Vec::new(),
        };
        let line = server.wait_for_log("listening", Duration::from_secs(20));
        let log: Value = serde_json::from_str(&line).expect("JSON log line");
        let addr = log["addr"].as_str().expect("addr");
        server.port = addr.rsplit(':').next().unwrap().parse().unwrap();
        server
    }

    /// Waits for a log line containing `needle`, returning it.
    fn wait_for_log(&mut self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.logs.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(line) => self.seen.push(line),
                Err(_) => panic!("no log line containing {needle:?} within {within:?}"),
            }
        }
    }

    /// Sends SIGTERM.
    fn terminate(&self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
    }

    /// Waits for the process to exit with status 0 within 10 s.
    fn wait_for_clean_exit(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "exit status {status}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "still running 10 s after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://{SERVICE_HOST}:{}{path}", self.port)
    }

    /// POSTs with curl, verifying the server against `ca`. Returns (status, body).
    fn post(&self, ca: &Path, path: &str, body: &[u8]) -> (u16, Value) {
        let (status, text) = curl(&self.url(path), self.port, ca, Some(body));
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    fn get(&self, ca: &Path, path: &str) -> (u16, String) {
        curl(&self.url(path), self.port, ca, None)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn curl(url: &str, port: u16, ca: &Path, body: Option<&[u8]>) -> (u16, String) {
    curl_to(url, SERVICE_HOST, port, ca, body)
}

/// curl `url`, resolving `host` to 127.0.0.1 and verifying the server against `ca`.
fn curl_to(url: &str, host: &str, port: u16, ca: &Path, body: Option<&[u8]>) -> (u16, String) {
    curl_as(url, host, port, ca, None, body)
}

/// [`curl_to`], presenting the client certificate `client.crt` (and its
/// `client.key`) from the directory `client` when given.
fn curl_as(
    url: &str,
    host: &str,
    port: u16,
    ca: &Path,
    client: Option<&Path>,
    body: Option<&[u8]>,
) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["--silent", "--show-error", "--max-time", "10", "--cacert"])
        .arg(ca);
    if let Some(dir) = client {
        cmd.arg("--cert")
            .arg(dir.join("client.crt"))
            .arg("--key")
            .arg(dir.join("client.key"));
    }
    cmd.args([
        "--resolve",
        &format!("{host}:{port}:127.0.0.1"),
        "--write-out",
        "\n%{http_code}",
    ]);
    if body.is_some() {
        cmd.args([
            "-H",
            "content-type: application/json",
            "--data-binary",
            "@-",
        ]);
    }
    cmd.arg(url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("curl runs (scripts/test installs it)");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        if let Some(b) = body {
            stdin.write_all(b).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "000"));
    let code: u16 = code.trim().parse().unwrap_or(0);
    if code == 0 {
        return (0, String::from_utf8_lossy(&out.stderr).into_owned());
    }
    (code, body.to_owned())
}

/// Runs `imagegate serve --policy POLICY`, expects it to refuse to start with
/// exit status 2, and returns what it printed on stderr.
fn serve_fails_at_start(policy: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_imagegate"))
        .args(["serve", "--listen", "127.0.0.1:0", "--policy"])
        .arg(policy)
        .env("IMAGEGATE_DATA_DIR", data_dir())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A fresh data directory for one server.
fn data_dir() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    temp_dir(&format!("data-{n}"))
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("imagegate-serve-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `imagegate certs` into `dir` and returns the caBundle it printed.
fn certs(dir: &Path) -> String {
    certs_with(dir, &[])
}

/// [`certs`] with more arguments (`--client NAME`).
fn certs_with(dir: &Path, more: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_imagegate"))
        .args([
            "certs",
            "--service",
            "imagegate",
            "--namespace",
            "imagegate",
            "--out",
        ])
        .arg(dir)
        .args(more)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn fixture(path: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(format!("{FIXTURES}/{path}")).unwrap()).unwrap()
}

#[test]
fn certs_prints_a_ca_bundle_for_an_ecdsa_p256_serving_certificate() {
    use base64::Engine;
    let dir = temp_dir("certs");
    let bundle = certs(&dir);
    let pem = base64::engine::general_purpose::STANDARD
        .decode(&bundle)
        .unwrap();
    assert_eq!(
        pem,
        std::fs::read(dir.join("ca.crt")).unwrap(),
        "caBundle is ca.crt, base64"
    );
    let key = std::fs::read_to_string(dir.join("tls.key")).unwrap();
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("tls.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the key is readable by its owner only");
    }
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(dir.join("tls.crt"))
        .output()
        .expect("openssl runs (scripts/test installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("prime256v1") || text.contains("P-256"),
        "{text}"
    );
    assert!(text.contains("DNS:imagegate.imagegate.svc"), "{text}");
    let verify = Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(dir.join("ca.crt"))
        .arg(dir.join("tls.crt"))
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "the serving certificate chains to the CA: {}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

#[test]
fn certs_client_issues_a_client_certificate_that_verifies_for_client_auth_against_the_ca() {
    use base64::Engine;
    let dir = temp_dir("certs-client");
    let bundle = certs_with(&dir, &["--client", "kube-apiserver"]);
    let pem = base64::engine::general_purpose::STANDARD
        .decode(&bundle)
        .unwrap();
    assert_eq!(pem, std::fs::read(dir.join("ca.crt")).unwrap());
    for file in ["ca.crt", "ca.key", "tls.crt", "tls.key"] {
        assert!(dir.join(file).is_file(), "{file} is still written");
    }
    let key = std::fs::read_to_string(dir.join("client.key")).unwrap();
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("client.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the client key is its owner's only");
    }
    let verify = |cert: &str| {
        Command::new("openssl")
            .args(["verify", "-purpose", "sslclient", "-CAfile"])
            .arg(dir.join("ca.crt"))
            .arg(dir.join(cert))
            .output()
            .expect("openssl runs (scripts/test installs it)")
    };
    let out = verify("client.crt");
    assert!(
        out.status.success(),
        "the client certificate chains to the CA for client authentication: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !verify("tls.crt").status.success(),
        "the serving certificate is not one for client authentication"
    );
    let text = Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-subject",
            "-ext",
            "extendedKeyUsage",
            "-in",
        ])
        .arg(dir.join("client.crt"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("CN = kube-apiserver") || text.contains("CN=kube-apiserver"),
        "{text}"
    );
    assert!(text.contains("TLS Web Client Authentication"), "{text}");
    assert!(!text.contains("TLS Web Server Authentication"), "{text}");

    // Without --client, imagegate certs writes what it always wrote.
    let plain = temp_dir("certs-no-client");
    certs(&plain);
    assert!(!plain.join("client.crt").exists());
    assert!(!plain.join("client.key").exists());
}

#[test]
fn an_admission_client_ca_without_tls_is_refused_at_start_naming_both_settings() {
    // Under `timeout`: a server that wrongly starts fails the test, not hangs it.
    let out = Command::new("timeout")
        .arg("20")
        .arg(env!("CARGO_BIN_EXE_imagegate"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("IMAGEGATE_POLICY")
        .env_remove("IMAGEGATE_TLS_CERT")
        .env_remove("IMAGEGATE_TLS_KEY")
        .env("IMAGEGATE_DATA_DIR", data_dir())
        .env("IMAGEGATE_ADMISSION_CLIENT_CA", "client-ca.crt")
        .output()
        .expect("timeout (coreutils) runs imagegate");
    assert_eq!(out.status.code(), Some(2), "{}", crate::stderr(&out));
    let err = crate::stderr(&out);
    assert!(
        err.contains("admissionClientCa: client certificates are verified in the TLS handshake: give tlsCert and tlsKey (--tls-cert, --tls-key) too"),
        "{err}"
    );
}

#[test]
fn with_an_admission_client_ca_the_admission_doors_answer_only_kube_apiservers_certificate() {
    let dir = temp_dir("client-ca");
    certs_with(&dir, &["--client", "kube-apiserver"]);
    let other = temp_dir("client-ca-other");
    certs_with(&other, &["--client", "kube-apiserver"]);
    let ca = dir.join("ca.crt");
    let client_ca = dir.join("client-ca.crt");
    std::fs::copy(&ca, &client_ca).unwrap();
    let data = dir.join("data");
    let policy = format!("{FIXTURES}/policy.yaml");
    let mut server = Server::start(&[
        "--tls-cert",
        dir.join("tls.crt").to_str().unwrap(),
        "--tls-key",
        dir.join("tls.key").to_str().unwrap(),
        "--admission-client-ca",
        client_ca.to_str().unwrap(),
        "--policy",
        &policy,
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let port = server.port;
    let call = |path: &str, client: Option<&Path>, body: Option<&[u8]>| {
        let (status, text) = curl_as(
            &format!("https://{SERVICE_HOST}:{port}{path}"),
            SERVICE_HOST,
            port,
            &ca,
            client,
            body,
        );
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    };
    let admission = fixture("admission/deployment-create-v1.json");
    let admission_body = serde_json::to_vec(&admission["request"]).unwrap();
    let image = fixture("imagepolicy/denied.json");
    let image_body = serde_json::to_vec(&image["request"]).unwrap();
    let required = "a client certificate from the configured admission client CA (--admission-client-ca) is required";

    // kube-apiserver's certificate: the usual answers.
    let (status, got) = call("/admission/validate", Some(&dir), Some(&admission_body));
    assert_eq!((status, &got), (200, &admission["response"]));
    let (status, got) = call("/imagepolicy", Some(&dir), Some(&image_body));
    assert_eq!((status, &got), (200, &image["response"]));

    // No certificate: refused in each door's own format, and logged.
    let (status, got) = call("/admission/validate", None, Some(&admission_body));
    assert_eq!(status, 401, "{got}");
    assert_eq!(got["kind"], "AdmissionReview", "{got}");
    assert_eq!(got["response"]["allowed"], false, "{got}");
    assert_eq!(got["response"]["status"]["code"], 401, "{got}");
    assert_eq!(got["response"]["status"]["message"], required, "{got}");
    let line = server.wait_for_log("refused an admission call", Duration::from_secs(5));
    assert!(line.contains(r#""door":"admission""#), "{line}");
    let (status, got) = call("/imagepolicy", None, Some(&image_body));
    assert_eq!(status, 401, "{got}");
    assert_eq!(got["kind"], "ImageReview", "{got}");
    assert_eq!(got["status"]["allowed"], false, "{got}");
    assert_eq!(got["status"]["reason"], required, "{got}");

    // A certificate from another CA, or the CA's serving certificate (no
    // ClientAuth usage), fails the handshake.
    let (status, err) = call("/admission/validate", Some(&other), Some(&admission_body));
    assert_eq!(
        status, 0,
        "another CA's client certificate is refused: {err}"
    );
    let (status, err) = call("/imagepolicy", Some(&other), Some(&image_body));
    assert_eq!(
        status, 0,
        "another CA's client certificate is refused: {err}"
    );
    let serving = temp_dir("client-ca-serving");
    std::fs::copy(dir.join("tls.crt"), serving.join("client.crt")).unwrap();
    std::fs::copy(dir.join("tls.key"), serving.join("client.key")).unwrap();
    let (status, err) = call("/admission/validate", Some(&serving), Some(&admission_body));
    assert_eq!(
        status, 0,
        "a serving certificate is no client certificate: {err}"
    );

    // The rest of the listener needs no certificate.
    assert_eq!(
        call("/healthz", None, None),
        (200, Value::String("ok\n".to_owned()))
    );
    let (status, got) = call("/v2/", None, None);
    assert_eq!(
        status, 401,
        "the gateway answers, asking for its own sign-in: {got}"
    );
    assert_eq!(got["errors"][0]["code"], "UNAUTHORIZED", "{got}");

    // Rotating the client CA file applies without a restart, and keeps
    // refusing callers without a certificate.
    std::fs::copy(other.join("ca.crt"), &client_ca).unwrap();
    server.wait_for_log("TLS certificate reloaded", Duration::from_secs(15));
    let (status, got) = call("/imagepolicy", Some(&other), Some(&image_body));
    assert_eq!((status, &got), (200, &image["response"]));
    let (status, err) = call("/imagepolicy", Some(&dir), Some(&image_body));
    assert_eq!(
        status, 0,
        "the old CA's client certificate no longer verifies: {err}"
    );
    let (status, got) = call("/imagepolicy", None, Some(&image_body));
    assert_eq!(status, 401, "{got}");
    assert_eq!(got["status"]["reason"], required, "{got}");

    // Only the certified review reached the audit log (one event per image).
    stop(&mut server);
    let out = crate::imagegate(
        &[
            "audit",
            "--data-dir",
            data.to_str().unwrap(),
            "--door",
            "admission",
            "--format",
            "json",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", crate::stderr(&out));
    assert_eq!(
        crate::stdout(&out).lines().count(),
        3,
        "{}",
        crate::stdout(&out)
    );
}

#[test]
fn both_doors_answer_golden_reviews_over_verified_https() {
    let dir = temp_dir("golden");
    certs(&dir);
    let ca = dir.join("ca.crt");
    let policy = format!("{FIXTURES}/policy.yaml");
    let server = Server::start(&[
        "--tls-cert",
        dir.join("tls.crt").to_str().unwrap(),
        "--tls-key",
        dir.join("tls.key").to_str().unwrap(),
        "--policy",
        &policy,
    ]);
    assert_eq!(server.get(&ca, "/healthz"), (200, "ok\n".to_owned()));
    for name in [
        "deployment-create-v1",
        "cronjob-create-v1",
        "pod-ephemeralcontainers-v1",
        "pod-create-v1beta1",
        "deployment-exempt-namespace-v1",
    ] {
        let f = fixture(&format!("admission/{name}.json"));
        let (status, got) = server.post(
            &ca,
            "/admission/validate",
            &serde_json::to_vec(&f["request"]).unwrap(),
        );
        assert_eq!((status, &got), (200, &f["response"]), "{name}");
    }
    for name in ["denied", "allowed", "break-glass"] {
        let f = fixture(&format!("imagepolicy/{name}.json"));
        let (status, got) = server.post(
            &ca,
            "/imagepolicy",
            &serde_json::to_vec(&f["request"]).unwrap(),
        );
        assert_eq!((status, &got), (200, &f["response"]), "{name}");
    }
    let (status, got) = server.post(&ca, "/admission/validate", b"{not json");
    assert_eq!(status, 400, "{got}");
    let (_, metrics) = server.get(&ca, "/metrics");
    assert!(
        metrics.contains(r#"imagegate_break_glass_total{door="imagepolicy"} 1"#),
        "{metrics}"
    );

    // A client that does not trust the CA is refused by the TLS handshake.
    let other = temp_dir("other-ca");
    certs(&other);
    let (status, err) = server.get(&other.join("ca.crt"), "/healthz");
    assert_eq!(status, 0, "an unknown CA must fail verification: {err}");
}

#[test]
fn policy_and_certificate_changes_apply_without_a_restart() {
    let dir = temp_dir("reload");
    certs(&dir);
    let ca = dir.join("ca.crt");
    let policy = dir.join("policy.yaml");
    std::fs::copy(format!("{FIXTURES}/policy.yaml"), &policy).unwrap();
    let mut server = Server::start(&[
        "--tls-cert",
        dir.join("tls.crt").to_str().unwrap(),
        "--tls-key",
        dir.join("tls.key").to_str().unwrap(),
        "--policy",
        policy.to_str().unwrap(),
    ]);
    let review = serde_json::to_vec(&fixture("imagepolicy/denied.json")["request"]).unwrap();
    let (_, got) = server.post(&ca, "/imagepolicy", &review);
    assert_eq!(got["status"]["allowed"], false);

    // A policy that allows community images and any registry takes effect.
    let open = std::fs::read_to_string(&policy)
        .unwrap()
        .replace(
            "allow: [official, organization]",
            "allow: [official, organization, community]",
        )
        .replace(
            "  registryAccess:\n    enabled: true",
            "  registryAccess:\n    enabled: false",
        );
    std::fs::write(&policy, open).unwrap();
    server.wait_for_log("policy reloaded", Duration::from_secs(15));
    let (_, got) = server.post(&ca, "/imagepolicy", &review);
    assert_eq!(got["status"]["allowed"], true, "{got}");

    // A broken policy is refused and the last good one stays in force.
    std::fs::write(&policy, "apiVersion: imagegate.dev/v1\nkind: ImagePolicy\nmetadata: {name: x}\nspec:\n  mdoe: warn\n").unwrap();
    let line = server.wait_for_log("policy reload failed", Duration::from_secs(15));
    assert!(
        line.contains("spec.mdoe"),
        "the log names the bad field: {line}"
    );
    let (_, got) = server.post(&ca, "/imagepolicy", &review);
    assert_eq!(
        got["status"]["allowed"], true,
        "the last good policy stays: {got}"
    );

    // cert-manager rotation: a new CA and certificate are served without a restart.
    let rotated = temp_dir("rotated");
    certs(&rotated);
    std::fs::copy(rotated.join("tls.key"), dir.join("tls.key")).unwrap();
    std::fs::copy(rotated.join("tls.crt"), dir.join("tls.crt")).unwrap();
    server.wait_for_log("TLS certificate reloaded", Duration::from_secs(15));
    assert_eq!(server.get(&rotated.join("ca.crt"), "/healthz").0, 200);
    assert_eq!(
        server.get(&ca, "/healthz").0,
        0,
        "the old CA no longer verifies"
    );
}

#[test]
fn sigterm_lets_the_server_stop_cleanly() {
    let mut server = Server::start(&[]);
    server.terminate();
    server.wait_for_log("shutting down", Duration::from_secs(10));
    server.wait_for_clean_exit();
}

#[test]
fn serve_refuses_a_broken_policy_at_start_naming_file_and_line() {
    let dir = temp_dir("broken");
    let policy = dir.join("policy.yaml");
    std::fs::write(&policy, "apiVersion: imagegate.dev/v1\nkind: ImagePolicy\nmetadata: {name: x}\nspec:\n  rules:\n    - deny: Nginx\n").unwrap();
    let err = serve_fails_at_start(&policy);
    assert!(
        err.contains(&format!("{}:6:13: spec.rules[0].deny", policy.display())),
        "{err}"
    );
}

#[test]
fn serve_reads_its_config_file_relative_to_itself_and_flags_override_it() {
    let dir = temp_dir("config");
    certs(&dir);
    std::fs::copy(format!("{FIXTURES}/policy.yaml"), dir.join("policy.yaml")).unwrap();
    std::fs::write(
        dir.join("serve.yaml"),
        "listen: 127.0.0.1:1\npolicy: policy.yaml\ntlsCert: tls.crt\ntlsKey: tls.key\nlogFormat: json\n",
    )
    .unwrap();
    let server = Server::start(&["--config", dir.join("serve.yaml").to_str().unwrap()]);
    assert_ne!(server.port, 1, "--listen overrides the file");
    let f = fixture("imagepolicy/denied.json");
    let (status, got) = server.post(
        &dir.join("ca.crt"),
        "/imagepolicy",
        &serde_json::to_vec(&f["request"]).unwrap(),
    );
    assert_eq!((status, &got), (200, &f["response"]));
}

#[test]
fn serve_refuses_a_rego_syntax_error_at_start_naming_file_and_line() {
    let dir = temp_dir("rego-broken");
    std::fs::write(
        dir.join("bad.rego"),
        "package x\nimport rego.v1\ndeny contains msg if {\n  msg := \n}\n",
    )
    .unwrap();
    let policy = dir.join("policy.yaml");
    std::fs::write(&policy, "apiVersion: imagegate.dev/v1\nkind: ImagePolicy\nmetadata: {name: x}\nspec:\n  rego: [bad.rego]\n").unwrap();
    let err = serve_fails_at_start(&policy);
    assert!(err.contains("spec.rego[0]: bad.rego:4:"), "{err}");
}

#[test]
fn the_example_config_serves_both_doors_over_https() {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let mut command = Command::new(env!("CARGO_BIN_EXE_imagegate"));
    command
        .args([
            "serve",
            "--config",
            &format!("{examples}/admission.yaml"),
            "--listen",
            "127.0.0.1:0",
        ])
        .env("IMAGEGATE_DATA_DIR", data_dir());
    let server = Server::spawn(command);
    let ca = Path::new(examples).join("certs/ca.crt");
    let url = |path: &str| format!("https://localhost:{}{path}", server.port);
    let post = |path: &str, body: &Value| {
        let (code, text) = curl_to(
            &url(path),
            "localhost",
            server.port,
            &ca,
            Some(&serde_json::to_vec(body).unwrap()),
        );
        let parsed = serde_json::from_str::<Value>(&text);
        (code, parsed.unwrap_or(Value::String(text)))
    };
    let (code, got) = post(
        "/imagepolicy",
        &fixture("imagepolicy/denied.json")["request"],
    );
    assert_eq!(code, 200);
    assert_eq!(got["status"]["allowed"], false);
    assert_eq!(
        got["status"]["reason"],
        r#"spec.containers[1] image "someuser/custom-image:1": image access denied: community images not allowed; spec.containers[2] image "quay.io/org/cache:1": registry access to quay.io is not allowed"#
    );
    let (code, got) = post(
        "/admission/validate",
        &fixture("admission/deployment-create-v1.json")["request"],
    );
    assert_eq!(code, 200);
    assert_eq!(
        got["response"]["status"]["message"],
        r#"spec.template.spec.initContainers[0] (setup) image "someuser/custom-image:1": image access denied: community images not allowed"#
    );

    // A newcomer's first images, untagged as people type them: the seed's
    // words, not the example's `:latest` rule.
    let mut pod = fixture("admission/pod-create-v1.json")["request"].clone();
    pod["request"]["object"]["spec"]["initContainers"][0]["image"] = "someuser/custom-image".into();
    let (_, got) = post("/admission/validate", &pod);
    assert_eq!(
        got["response"]["status"]["message"],
        r#"spec.initContainers[0] (setup) image "someuser/custom-image": image access denied: community images not allowed"#
    );

    // The README's own command, from the repository's root.
    let out = Command::new("curl")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "--silent",
            "--show-error",
            "--cacert",
            "examples/certs/ca.crt",
        ])
        .arg(url("/imagepolicy"))
        .args(["-d", "@examples/review.json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["status"]["allowed"], false);
    assert_eq!(
        got["status"]["reason"],
        r#"spec.containers[1] image "someuser/custom-image": image access denied: community images not allowed"#
    );
}

#[test]
fn sigterm_lets_an_in_flight_review_finish() {
    let mut server = Server::start(&["--policy", &format!("{FIXTURES}/policy.yaml")]);
    let mut review = fixture("admission/deployment-create-v1.json")["request"].clone();
    review["request"]["object"]["metadata"]["annotations"]["padding"] =
        Value::String("x".repeat(1_500_000));
    let dir = temp_dir("in-flight");
    let body = dir.join("review.json");
    std::fs::write(&body, serde_json::to_vec(&review).unwrap()).unwrap();
    // ~3 s to upload at 500 KB/s: the SIGTERM lands mid-request.
    let curl = Command::new("curl")
        .args([
            "--silent",
            "--max-time",
            "20",
            "--limit-rate",
            "500K",
            "-H",
            "content-type: application/json",
            "--data-binary",
        ])
        .arg(format!("@{}", body.display()))
        .args(["--write-out", "\n%{http_code}"])
        .arg(format!(
            "http://127.0.0.1:{}/admission/validate",
            server.port
        ))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = curl.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let (answer, code) = text.rsplit_once('\n').unwrap();
    assert_eq!(code, "200", "the in-flight review was answered: {answer}");
    let answer: Value = serde_json::from_str(answer).unwrap();
    assert_eq!(answer["response"]["allowed"], false);
    server.wait_for_log("shutting down", Duration::from_secs(5));
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status}");
}

/// Sends SIGTERM and waits for a clean exit.
fn stop(server: &mut Server) {
    server.terminate();
    server.wait_for_clean_exit();
}

#[test]
fn every_admission_decision_is_in_the_audit_log_and_imagegate_audit_filters_it() {
    let dir = temp_dir("audit");
    certs(&dir);
    let ca = dir.join("ca.crt");
    let data = dir.join("data");
    let policy = format!("{FIXTURES}/policy.yaml");
    let mut server = Server::start(&[
        "--tls-cert",
        dir.join("tls.crt").to_str().unwrap(),
        "--tls-key",
        dir.join("tls.key").to_str().unwrap(),
        "--policy",
        &policy,
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let f = fixture("admission/deployment-create-v1.json");
    let (status, _) = server.post(
        &ca,
        "/admission/validate",
        &serde_json::to_vec(&f["request"]).unwrap(),
    );
    assert_eq!(status, 200);
    let f = fixture("imagepolicy/denied.json");
    let (status, _) = server.post(
        &ca,
        "/imagepolicy",
        &serde_json::to_vec(&f["request"]).unwrap(),
    );
    assert_eq!(status, 200);
    // A clean shutdown writes everything that was acknowledged.
    stop(&mut server);

    let audit = |args: &[&str]| {
        let mut all = vec!["audit", "--data-dir", data.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = crate::imagegate(&all, b"");
        assert_eq!(out.status.code(), Some(0), "{}", crate::stderr(&out));
        crate::stdout(&out)
    };
    let lines: Vec<Value> = audit(&["--format", "json", "--door", "admission"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "one event per image: {lines:?}");
    let community = &lines[0];
    let fields: Vec<&str> = community
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = vec![
        "time",
        "door",
        "org",
        "user",
        "source",
        "image",
        "input",
        "category",
        "decision",
        "reason",
        "mode",
        "message",
        "namespace",
        "request",
        "path",
    ];
    expected.sort_unstable();
    let mut fields_sorted = fields.clone();
    fields_sorted.sort_unstable();
    assert_eq!(fields_sorted, expected);
    assert_eq!(community["image"], "docker.io/someuser/custom-image:1");
    assert_eq!(community["input"], "someuser/custom-image:1");
    assert_eq!(community["user"], "kubernetes-admin");
    assert_eq!(community["namespace"], "default");
    assert_eq!(community["request"], "705ab4f5-6393-11e8-b7cc-42010a800002");
    assert_eq!(community["decision"], "deny");
    assert_eq!(community["reason"], "category_not_allowed");
    assert_eq!(community["category"], "community");
    assert_eq!(
        community["message"],
        "image access denied: community images not allowed"
    );
    assert_eq!(community["path"], "spec.template.spec.initContainers[0]");
    assert!(community["time"].as_str().unwrap().ends_with('Z'));

    let denied = audit(&["--format", "json", "--decision", "deny"]);
    assert!(
        denied.lines().all(|l| l.contains("\"decision\":\"deny\"")),
        "{denied}"
    );
    assert!(
        denied
            .lines()
            .any(|l| l.contains("\"door\":\"imagepolicy\"")),
        "{denied}"
    );
    let nginx = audit(&[
        "--format",
        "json",
        "--image",
        "docker.io/library/*",
        "--door",
        "admission",
    ]);
    assert_eq!(nginx.lines().count(), 1, "{nginx}");
    assert!(nginx.contains("docker.io/library/nginx:1.25"));
    assert_eq!(audit(&["--format", "json", "--user", "nobody"]), "");
    assert_eq!(
        audit(&["--format", "json", "--since", "2099-01-01T00:00:00Z"]),
        ""
    );
    let all = audit(&["--format", "json"]);
    assert!(all.lines().count() > 3);
    assert_eq!(audit(&["--format", "json", "--since", "1h"]), all);

    let csv = audit(&["--format", "csv", "--door", "admission"]);
    let mut rows = csv.lines();
    assert_eq!(
        rows.next(),
        Some(
            "time,door,org,user,source,image,input,category,decision,reason,mode,message,namespace,request,path"
        )
    );
    assert_eq!(rows.count(), 3);
    let text = audit(&["--door", "admission", "--limit", "1"]);
    assert_eq!(text.lines().count(), 1);
    assert!(
        text.contains("admission") && text.contains("kubernetes-admin"),
        "{text}"
    );

    let bad = crate::imagegate(
        &[
            "audit",
            "--data-dir",
            data.to_str().unwrap(),
            "--since",
            "yesterday",
        ],
        b"",
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        crate::stderr(&bad).contains("--since \"yesterday\": expected RFC 3339"),
        "{}",
        crate::stderr(&bad)
    );
}

#[test]
fn policy_org_gives_the_admission_doors_the_stores_policy_and_its_changes_within_seconds() {
    let dir = temp_dir("policy-org");
    certs(&dir);
    let ca = dir.join("ca.crt");
    let data = dir.join("data");
    let d = data.to_str().unwrap();
    let admin = |args: &[&str]| {
        let mut all = vec!["admin", "--data-dir", d];
        all.extend_from_slice(args);
        let out = crate::imagegate(&all, b"");
        assert_eq!(out.status.code(), Some(0), "{}", crate::stderr(&out));
    };
    admin(&["org", "create", "corp", "--namespace", "corp"]);
    let policy = format!("{FIXTURES}/policy.yaml");
    admin(&["org", "policy", "set", "corp", "--file", &policy]);
    let server = Server::start(&[
        "--tls-cert",
        dir.join("tls.crt").to_str().unwrap(),
        "--tls-key",
        dir.join("tls.key").to_str().unwrap(),
        "--policy-org",
        "corp",
        "--data-dir",
        d,
    ]);
    // First start on this data directory: the signing key was generated, owner-only.
    let key = std::fs::metadata(data.join("signing-key.pem")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(key.permissions().mode() & 0o777, 0o600);

    let review =
        serde_json::to_vec(&fixture("admission/deployment-create-v1.json")["request"]).unwrap();
    let (_, got) = server.post(&ca, "/admission/validate", &review);
    assert_eq!(got["response"]["allowed"], false, "{got}");

    let open = temp_dir("policy-org-open").join("open.yaml");
    std::fs::write(
        &open,
        std::fs::read_to_string(&policy).unwrap().replace(
            "allow: [official, organization]",
            "allow: [official, organization, community]",
        ),
    )
    .unwrap();
    admin(&[
        "org",
        "policy",
        "set",
        "corp",
        "--file",
        open.to_str().unwrap(),
    ]);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, got) = server.post(&ca, "/admission/validate", &review);
        if got["response"]["allowed"] == true {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the store's new policy did not apply: {got}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The admission doors' decisions are corp's: its activity and insights
    // count them.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = crate::imagegate(
            &[
                "audit",
                "--data-dir",
                d,
                "--org",
                "corp",
                "--door",
                "admission",
                "--format",
                "json",
            ],
            b"",
        );
        let events: Vec<serde_json::Value> = crate::stdout(&out)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if events.iter().any(|e| e["decision"] == "deny")
            && events.iter().any(|e| e["decision"] == "allow")
        {
            assert!(events.iter().all(|e| e["org"] == "corp"), "{events:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "corp's audit log has no admission decisions: {events:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn policy_and_policy_org_together_are_refused() {
    let out = crate::imagegate(
        &[
            "serve",
            "--policy",
            "p.yaml",
            "--policy-org",
            "corp",
            "--data-dir",
            data_dir().to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        crate::stderr(&out).contains("--policy-org"),
        "{}",
        crate::stderr(&out)
    );
}

#[test]
fn the_first_start_creates_an_administrator_whose_password_signs_in_to_the_console() {
    let dir = temp_dir("first-start");
    certs(&dir);
    let ca = dir.join("ca.crt");
    let data = dir.join("data");
    let tls = [
        "--tls-cert".to_owned(),
        dir.join("tls.crt").to_str().unwrap().to_owned(),
        "--tls-key".to_owned(),
        dir.join("tls.key").to_str().unwrap().to_owned(),
        "--data-dir".to_owned(),
        data.to_str().unwrap().to_owned(),
    ];
    let args: Vec<&str> = tls.iter().map(String::as_str).collect();
    let mut server = Server::start(&args);
    let line = server
        .seen
        .iter()
        .find(|l| l.contains("first start: created the administrator"))
        .expect("the first start says who and the password")
        .clone();
    let log: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(log["user"], "admin");
    // Where to sign in, in the same line: the address listened on.
    let console = format!("https://127.0.0.1:{}/console", server.port);
    assert_eq!(log["console"], console.as_str());
    assert!(
        log["message"].as_str().unwrap().contains(&console),
        "{line}"
    );
    let password = log["password"].as_str().unwrap().to_owned();
    assert!(password.len() >= 24, "{password}");

    // Sign in as a browser would: fetch the form (and its cookie), post it.
    let jar = dir.join("cookies");
    let run = |args: &[&str]| {
        let o = Command::new("curl")
            .args(["--silent", "--show-error", "--cacert"])
            .arg(&ca)
            .args([
                "--resolve",
                &format!("{SERVICE_HOST}:{}:127.0.0.1", server.port),
            ])
            .args([
                "--cookie",
                jar.to_str().unwrap(),
                "--cookie-jar",
                jar.to_str().unwrap(),
            ])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let form = run(&[&server.url("/console/sign-in")]);
    let marker = r#"name="login" value=""#;
    let login = form[form.find(marker).unwrap() + marker.len()..]
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let answer = run(&[
        "--write-out",
        "%{http_code} %{redirect_url}",
        "--output",
        "/dev/null",
        "--data-urlencode",
        &format!("login={login}"),
        "--data-urlencode",
        "username=admin",
        "--data-urlencode",
        &format!("password={password}"),
        &server.url("/console/sign-in"),
    ]);
    assert_eq!(answer, format!("303 {}", server.url("/console")));
    let jar_text = std::fs::read_to_string(&jar).unwrap();
    let session = jar_text
        .lines()
        .find(|l| l.contains("imagegate_session"))
        .expect("a session cookie");
    assert!(session.starts_with("#HttpOnly_"), "HttpOnly: {session}");
    assert!(
        session.split('\t').nth(3) == Some("TRUE"),
        "Secure over TLS: {session}"
    );
    let home = run(&[&server.url("/console")]);
    assert!(home.contains("Signed in as admin"), "{home}");

    // A second start on the same store creates no one and prints no password.
    stop(&mut server);
    let server = Server::start(&args);
    assert!(!server.seen.iter().any(|l| l.contains("first start")));
    drop(server);
}

/// The shipped Deployment as a pod runs it: `readOnlyRootFilesystem`, the
/// ConfigMap and the TLS Secret mounted read-only, a working directory that
/// cannot be written, and only the Deployment's own volumes to write in. The
/// shipped `serve.yaml` must start and be ready there, its store in the
/// writable volume. (Each mount path is placed under a temporary root, and the
/// read-only mounts are bind mounts in a private mount namespace.)
#[test]
fn the_shipped_kubernetes_config_starts_from_a_read_only_working_directory() {
    let deploy = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/kubernetes");
    let docs = |file: &str| -> Vec<Value> {
        let text = std::fs::read_to_string(format!("{deploy}/{file}")).unwrap();
        serde_saphyr::from_multiple::<Value>(&text).unwrap()
    };
    let config_map = docs("10-config.yaml")
        .into_iter()
        .find(|d| d["kind"] == "ConfigMap")
        .unwrap();
    let deployment = docs("20-deployment.yaml")
        .into_iter()
        .find(|d| d["kind"] == "Deployment")
        .unwrap();
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);

    let root = temp_dir("pod-root");
    let work = root.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let mut serve_yaml = config_map["data"]["serve.yaml"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut read_only = vec![work.clone()];
    let mut writable = Vec::new();
    for mount in container["volumeMounts"].as_array().unwrap() {
        let path = mount["mountPath"].as_str().unwrap();
        let here = root.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(&here).unwrap();
        let volume = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == mount["name"])
            .unwrap_or_else(|| panic!("no volume {} for {path}", mount["name"]));
        if volume.get("configMap").is_some() {
            for (name, text) in config_map["data"].as_object().unwrap() {
                std::fs::write(here.join(name), text.as_str().unwrap()).unwrap();
            }
        } else if volume.get("secret").is_some() {
            certs(&here);
        }
        if mount["readOnly"] == true {
            read_only.push(here.clone());
        } else {
            writable.push(here.clone());
        }
        serve_yaml = serve_yaml.replace(&format!("{path}/"), &format!("{}/", here.display()));
        serve_yaml = serve_yaml.replace(&format!(": {path}\n"), &format!(": {}\n", here.display()));
    }
    assert!(
        !writable.is_empty(),
        "the Deployment gives the server no writable volume for its data directory"
    );
    let config = root.join("etc/imagegate/serve.yaml");
    std::fs::write(&config, &serve_yaml).unwrap();

    // Bind each read-only place onto itself read-only, then become
    // imagegate, in a mount namespace of its own.
    let mut script = String::from("set -e\n");
    for dir in &read_only {
        let d = dir.display();
        script += &format!("mount --bind '{d}' '{d}'\nmount -o remount,bind,ro '{d}'\n");
    }
    script += &format!("cd '{}'\nexec \"$@\"\n", work.display());
    let mut command = Command::new("unshare");
    command
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
            "sh",
        ])
        .arg(env!("CARGO_BIN_EXE_imagegate"))
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("IMAGEGATE_DATA_DIR")
        .env_remove("IMAGEGATE_POLICY");
    let server = Server::spawn(command);
    let ca = root.join("tls/ca.crt");
    let (code, body) = server.get(&ca, "/readyz");
    assert_eq!(code, 200, "{body}");
    let (code, got) = server.post(
        &ca,
        "/admission/validate",
        &serde_json::to_vec(&fixture("admission/deployment-create-v1.json")["request"]).unwrap(),
    );
    assert_eq!(code, 200);
    // The shipped policy is in warn mode: allowed, with the refusal as a warning.
    assert_eq!(got["response"]["allowed"], true, "{got}");
    assert_eq!(
        got["response"]["warnings"][0],
        r#"spec.template.spec.initContainers[0] (setup) image "someuser/custom-image:1": image access denied: community images not allowed"#
    );
    let stored = writable
        .iter()
        .any(|dir| std::fs::read_dir(dir).unwrap().next().is_some());
    assert!(stored, "the store is in the Deployment's writable volume");
    assert_eq!(
        std::fs::read_dir(&work).unwrap().count(),
        0,
        "nothing written to the working directory"
    );
}

/// `imagegate certs --proxy-ca DIR` makes a CA that OpenSSL reads as one
/// (CA:TRUE, leaves only), with its key private, from which the proxy
/// door's per-host certificates verify for their host and no other.
#[test]
fn certs_proxy_ca_makes_a_ca_whose_host_certificates_openssl_verifies() {
    use imagegate_server::proxy::ca::ProxyCa;
    use imagegate_server::proxy::target::Target;
    use std::os::unix::fs::PermissionsExt;

    let dir = temp_dir("proxy-ca");
    let out = Command::new(env!("CARGO_BIN_EXE_imagegate"))
        .args(["certs", "--proxy-ca"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("the registry proxy's CA"));
    let mode = std::fs::metadata(dir.join("ca.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(dir.join("ca.crt"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(text.contains("CA:TRUE, pathlen:0"), "{text}");
    assert!(text.contains("Certificate Sign"), "{text}");

    let ca = ProxyCa::from_pem(
        &std::fs::read_to_string(dir.join("ca.crt")).unwrap(),
        &std::fs::read_to_string(dir.join("ca.key")).unwrap(),
    )
    .unwrap();
    let hub = Target::parse("registry-1.docker.io:443").unwrap();
    let leaf = ca.for_host(hub.host()).unwrap();
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        base64_lines(leaf.cert[0].as_ref())
    );
    let leaf_file = dir.join("leaf.crt");
    std::fs::write(&leaf_file, pem).unwrap();
    let verify = |host: &str| {
        Command::new("openssl")
            .args([
                "verify",
                "-purpose",
                "sslserver",
                "-verify_hostname",
                host,
                "-CAfile",
            ])
            .arg(dir.join("ca.crt"))
            .arg(&leaf_file)
            .output()
            .unwrap()
    };
    let ok = verify("registry-1.docker.io");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    assert!(!verify("ghcr.io").status.success());

    // Not both at once: the proxy CA is made on its own.
    let both = Command::new(env!("CARGO_BIN_EXE_imagegate"))
        .args(["certs", "--client", "kube-apiserver", "--proxy-ca"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(both.status.code(), Some(2));
}

/// Base64 in 64-character lines, as PEM has it.
fn base64_lines(der: &[u8]) -> String {
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    text.as_bytes()
        .chunks(64)
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}
