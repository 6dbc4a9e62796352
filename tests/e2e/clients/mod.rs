//! Real registries and real clients for end-to-end tests: the CNCF distribution
//! registry as an upstream, images built here and pushed with skopeo, and
//! skopeo, podman, buildah, the docker CLI (against `podman system service`)
//! and docker-compose, each with state of its own in a scratch directory; and
//! a real Docker Engine ([`Dockerd`]: dockerd and its containerd, with the
//! docker CLI and docker-compose against it). Never touches the machine's
//! container storage, credentials or trust.
//!
//! What each client needs, found out on Debian 12 (skopeo 1.9, podman and
//! its Docker API 4.3, buildah 1.28, docker-compose 1.29):
//!
//! | | trust a CA | credentials | state |
//! | --- | --- | --- | --- |
//! | skopeo | `$HOME/.config/containers/certs.d/HOST:PORT/ca.crt`, or `--cert-dir` | `REGISTRY_AUTH_FILE` (`skopeo login`), or `--creds` | `--registries-conf` (it ignores `CONTAINERS_REGISTRIES_CONF`) |
//! | podman, buildah | the same certs.d, or `--cert-dir` | the same file | `--root`, `--runroot`, vfs; `CONTAINERS_REGISTRIES_CONF` |
//! | docker CLI, docker-compose | the podman service's certs.d (its HOME) | `DOCKER_CONFIG/config.json`, sent to the service per request | the service's storage |
//!
//! `insecure = true` in registries.conf lets them all reach a plain-HTTP
//! registry. Two traps: podman's Docker API does not verify TLS for a
//! `docker login localhost:PORT` (compat/auth.go, "support for local
//! testing"), so login tests use `127.0.0.1:PORT`; and docker-compose 1.29
//! exits 0 when a pull through podman is refused ([`Client::reports_refusals`]).
//! Every other client prints the registry's error as containers/image words it,
//! `reading manifest TAG in HOST/NAME: denied: <message>` (a 401:
//! `unauthorized: <message>`); the docker CLI shows podman's words, not
//! dockerd's. The real dockerd words a refusal `Error response from daemon:
//! pull access denied for HOST/NAME, repository does not exist or may require
//! 'docker login': denied: <message>` (docker-compose against it: `ERROR: for
//! SERVICE  pull access denied …`, exit 1), and a refused login `Error
//! response from daemon: Get "https://HOST/v2/": unauthorized: <message>`.
//! A token endpoint's refusal shows as `unable to retrieve auth token: invalid
//! username/password: unauthorized: <message>` on a pull, but no `login`
//! shows it: containers/common says `invalid username/password` (the reason
//! is at `--log-level=debug`), podman's Docker API `401 Unauthorized`.
//!
//! [`Gateway`] runs `imagegate serve` in front of such registries, its store
//! prepared with `imagegate admin` ([`DataDir`]).

pub mod dockerd;
pub mod gateway;
pub mod image;
pub mod registry;
mod selftest;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub use dockerd::Dockerd;
pub use gateway::{DataDir, Gateway};
pub use image::{Image, Layer, push_image};
pub use registry::{Registry, TestCa};

/// How long one client command may take before the test fails.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Fails the test, loudly, when `tool` is not on PATH: the end-to-end suite
/// never skips a client silently. `scripts/test` installs every one of them.
pub fn require(tool: &str) {
    if find_in_path(tool).is_some() {
        return;
    }
    let install = match tool {
        "htpasswd" => "apt-get install apache2-utils".to_owned(),
        "docker" => "apt-get install docker.io (or any docker CLI)".to_owned(),
        "chromedriver" => "apt-get install chromium-driver".to_owned(),
        "st" => "python3 -m pip install --user schemathesis".to_owned(),
        other => format!("apt-get install {other}"),
    };
    panic!(
        "`{tool}` is not installed, and this end-to-end test needs it: \
         run scripts/test, which installs it, or `{install}`"
    );
}

fn find_in_path(tool: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// What a finished command did.
#[derive(Debug)]
pub struct Run {
    /// The command line, for messages.
    pub command: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

impl Run {
    /// Panics, showing everything the command printed, unless it exited 0.
    #[track_caller]
    pub fn success(self) -> Run {
        assert!(self.status.success(), "expected success: {self}");
        self
    }

    /// Panics, showing everything the command printed, if it exited 0.
    #[track_caller]
    pub fn failure(self) -> Run {
        assert!(!self.status.success(), "expected failure: {self}");
        self
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` exited with {} after {:.1?}\n--- stdout\n{}\n--- stderr\n{}",
            self.command, self.status, self.took, self.stdout, self.stderr
        )
    }
}

/// Runs `cmd` to completion with `stdin`, failing the test after `timeout`.
pub fn run(mut cmd: Command, stdin: Option<&[u8]>, timeout: Duration) -> Run {
    let command = format!(
        "{} {}",
        cmd.get_program().to_string_lossy(),
        cmd.get_args()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("`{command}` does not start: {e}"));
    if let Some(bytes) = stdin {
        let mut input = child.stdin.take().unwrap();
        let bytes = bytes.to_vec();
        std::thread::spawn(move || {
            let _ = input.write_all(&bytes);
        });
    }
    let stdout = drain(child.stdout.take().unwrap());
    let stderr = drain(child.stderr.take().unwrap());
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            let out = String::from_utf8_lossy(&stdout.join().unwrap()).into_owned();
            let err = String::from_utf8_lossy(&stderr.join().unwrap()).into_owned();
            panic!(
                "`{command}` still running after {timeout:?}\n--- stdout\n{out}\n--- stderr\n{err}"
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        command,
        status,
        stdout: String::from_utf8_lossy(&stdout.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&stderr.join().unwrap()).into_owned(),
        took: started.elapsed(),
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

/// A fresh directory, removed when dropped (kept, and named, when a test panics).
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(label: &str) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("imagegate-e2e-{}-{label}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `path` inside this directory, its parent directories created.
    pub fn join(&self, path: &str) -> PathBuf {
        let p = self.0.join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept {} for inspection", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The environment every client command starts from: PATH and nothing else
/// of the caller's, so a developer's DOCKER_HOST or REGISTRY_AUTH_FILE cannot
/// leak into a test.
fn clean_command(program: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("LANG", "C.UTF-8");
    cmd
}

/// One test's client machine: its own container storage (vfs) for podman,
/// buildah and a `podman system service`, its own credentials
/// (`REGISTRY_AUTH_FILE`, `DOCKER_CONFIG`), its own registries.conf and its
/// own trusted CAs (`$HOME/.config/containers/certs.d`). The service, which
/// the docker CLI and docker-compose talk to, starts on first use and is
/// killed on drop.
///
/// Configure trust ([`Clients::trust`], [`Clients::insecure`]) before the
/// first command: containers/image caches registries.conf per process.
pub struct Clients {
    service: OnceLock<PodmanService>,
    scratch: Scratch,
    insecure: std::sync::Mutex<Vec<String>>,
}

impl Default for Clients {
    fn default() -> Self {
        Self::new()
    }
}

impl Clients {
    pub fn new() -> Clients {
        let scratch = Scratch::new("clients");
        std::fs::write(scratch.join("auth.json"), "{}\n").unwrap();
        std::fs::create_dir_all(scratch.join("docker")).unwrap();
        std::fs::create_dir_all(scratch.join("home/.config/containers/certs.d")).unwrap();
        std::fs::create_dir_all(scratch.join("xdg-run")).unwrap();
        std::fs::create_dir_all(scratch.join("tmp")).unwrap();
        let clients = Clients {
            service: OnceLock::new(),
            scratch,
            insecure: std::sync::Mutex::new(Vec::new()),
        };
        clients.write_registries_conf();
        clients
    }

    /// Makes every client (and the podman service) verify `host_port`
    /// against `ca` (a PEM file): `certs.d/<host_port>/ca.crt` under this
    /// machine's HOME, which containers/image reads before /etc.
    pub fn trust(&self, host_port: &str, ca: &Path) {
        self.assert_not_started("trust");
        let dir = self.scratch.join(&format!(
            "home/.config/containers/certs.d/{host_port}/ca.crt"
        ));
        std::fs::copy(ca, dir).unwrap();
    }

    /// Lets every client reach `host_port` over plain HTTP or unverified TLS
    /// (`insecure = true` in this machine's registries.conf).
    pub fn insecure(&self, host_port: &str) {
        self.assert_not_started("insecure");
        self.insecure.lock().unwrap().push(host_port.to_owned());
        self.write_registries_conf();
    }

    fn assert_not_started(&self, what: &str) {
        assert!(
            self.service.get().is_none(),
            "call Clients::{what} before the podman service starts: it reads its configuration once"
        );
    }

    fn write_registries_conf(&self) {
        let mut conf =
            String::from("unqualified-search-registries = []\nshort-name-mode = \"disabled\"\n");
        for host in self.insecure.lock().unwrap().iter() {
            conf.push_str(&format!(
                "\n[[registry]]\nlocation = \"{host}\"\ninsecure = true\n"
            ));
        }
        std::fs::write(self.scratch.join("registries.conf"), conf).unwrap();
    }

    /// The credentials file skopeo, podman and buildah share (`REGISTRY_AUTH_FILE`).
    pub fn auth_file(&self) -> PathBuf {
        self.scratch.path().join("auth.json")
    }

    /// The docker CLI's and docker-compose's configuration (`DOCKER_CONFIG`).
    pub fn docker_config(&self) -> PathBuf {
        self.scratch.path().join("docker")
    }

    fn command(&self, program: &str) -> Command {
        let dir = self.scratch.path();
        let mut cmd = clean_command(program);
        cmd.env("HOME", dir.join("home"))
            .env("XDG_RUNTIME_DIR", dir.join("xdg-run"))
            .env("TMPDIR", dir.join("tmp"))
            .env("CONTAINERS_REGISTRIES_CONF", dir.join("registries.conf"))
            .env("REGISTRY_AUTH_FILE", dir.join("auth.json"))
            .env("DOCKER_CONFIG", dir.join("docker"))
            .current_dir(dir);
        cmd
    }

    /// Global podman options that keep its state in this machine's directory.
    fn podman_state(&self, name: &str) -> Vec<String> {
        let dir = self.scratch.path().join(name);
        vec![
            format!("--root={}", dir.join("root").display()),
            format!("--runroot={}", dir.join("run").display()),
            format!("--tmpdir={}", dir.join("tmp").display()),
            format!("--network-config-dir={}", dir.join("networks").display()),
            "--storage-driver=vfs".to_owned(),
            "--events-backend=file".to_owned(),
            "--cgroup-manager=cgroupfs".to_owned(),
        ]
    }

    /// Runs a client program with this machine's environment.
    pub fn run(&self, program: &str, args: &[&str], stdin: Option<&[u8]>) -> Run {
        require(program);
        let mut cmd = self.command(program);
        match program {
            // skopeo 1.9 ignores CONTAINERS_REGISTRIES_CONF; its flag is hidden.
            "skopeo" => {
                cmd.arg(format!(
                    "--registries-conf={}",
                    self.scratch.path().join("registries.conf").display()
                ));
            }
            "podman" => {
                cmd.args(self.podman_state("podman"));
            }
            "buildah" => {
                let dir = self.scratch.path().join("buildah");
                cmd.arg(format!("--root={}", dir.join("root").display()))
                    .arg(format!("--runroot={}", dir.join("run").display()))
                    .arg("--storage-driver=vfs");
            }
            "docker" | "docker-compose" => {
                let service = self.service();
                cmd.env(
                    "DOCKER_HOST",
                    format!("unix://{}", service.socket.display()),
                )
                .env("DOCKER_BUILDKIT", "0")
                .env("DOCKER_CLI_HINTS", "false")
                .env("COMPOSE_INTERACTIVE_NO_CLI", "1");
            }
            _ => {}
        }
        cmd.args(args);
        run(cmd, stdin, DEFAULT_TIMEOUT)
    }

    pub fn skopeo(&self, args: &[&str]) -> Run {
        self.run("skopeo", args, None)
    }

    pub fn podman(&self, args: &[&str]) -> Run {
        self.run("podman", args, None)
    }

    pub fn buildah(&self, args: &[&str]) -> Run {
        self.run("buildah", args, None)
    }

    /// The docker CLI against this machine's podman service.
    pub fn docker(&self, args: &[&str]) -> Run {
        self.run("docker", args, None)
    }

    /// `TOOL login -u USER --password-stdin HOST_PORT` for skopeo, podman,
    /// buildah (all into [`Clients::auth_file`]) or docker (into
    /// [`Clients::docker_config`], checked by the podman service).
    pub fn login(&self, tool: &str, host_port: &str, user: &str, password: &str) -> Run {
        self.run(
            tool,
            &["login", "-u", user, "--password-stdin", host_port],
            Some(password.as_bytes()),
        )
    }

    /// `DOCKER_BUILDKIT=0 docker build -t TAG` of a context holding only
    /// this Dockerfile. A FROM image already in the service's storage is not
    /// pulled again; `Client::DockerBuild` pulls it every time.
    pub fn docker_build(&self, dockerfile: &str, tag: &str) -> Run {
        self.docker_build_with(dockerfile, tag, &[])
    }

    fn docker_build_with(&self, dockerfile: &str, tag: &str, options: &[&str]) -> Run {
        let context = Scratch::new("build-context");
        std::fs::write(context.join("Dockerfile"), dockerfile).unwrap();
        let mut args = vec!["build", "-t", tag];
        args.extend_from_slice(options);
        args.push(context.path().to_str().unwrap());
        self.docker(&args)
    }

    /// `docker-compose -f FILE -p PROJECT ARGS` with this compose file.
    ///
    /// Beware: docker-compose 1.29 ignores the error events podman's Docker
    /// API streams (they carry `progressDetail`), so a refused `pull` exits 0.
    /// Check what arrived with `docker image inspect`.
    pub fn compose(&self, compose_yaml: &str, args: &[&str]) -> Run {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let file = self
            .scratch
            .join(&format!("compose-{n}/docker-compose.yml"));
        std::fs::write(&file, compose_yaml).unwrap();
        let project = format!("e2e{}x{n}", std::process::id());
        let mut full = vec!["-f", file.to_str().unwrap(), "-p", &project];
        full.extend_from_slice(args);
        self.run("docker-compose", &full, None)
    }

    /// Pulls `reference` (`HOST:PORT/NAME:TAG` or `…@sha256:…`) the way
    /// `client` does, with this machine's credentials and trust.
    pub fn pull(&self, client: Client, reference: &str) -> Run {
        match client {
            Client::Skopeo => {
                let out = Scratch::new("skopeo-pull");
                self.skopeo(&[
                    "copy",
                    "--quiet",
                    &format!("docker://{reference}"),
                    &format!("oci:{}:pulled", out.path().display()),
                ])
            }
            Client::Podman => self.podman(&["pull", "--quiet", reference]),
            Client::Buildah => self.buildah(&["pull", "--quiet", reference]),
            Client::Docker => self.docker(&["pull", reference]),
            Client::DockerBuild => self.docker_build_with(
                &format!("FROM {reference}\nLABEL dev.imagegate.e2e=built\n"),
                "e2e-built:latest",
                &["--pull"],
            ),
            Client::Compose => self.compose(
                &format!("services:\n  app:\n    image: {reference}\n"),
                &["pull"],
            ),
        }
    }

    /// `POST /images/create` on the podman service, as docker-compose pulls
    /// (`X-Registry-Auth` with `user` and `secret`): the raw JSON stream.
    pub fn docker_api_pull(&self, reference: &str, user: &str, secret: &str) -> String {
        use base64::Engine as _;
        require("curl");
        let (image, tag) = reference.rsplit_once(':').unwrap();
        let server = image.split('/').next().unwrap();
        let auth = base64::engine::general_purpose::URL_SAFE.encode(
            serde_json::json!({"username": user, "password": secret, "serveraddress": server})
                .to_string(),
        );
        let socket = self.service().socket.display().to_string();
        let mut cmd = clean_command("curl");
        cmd.args(["--silent", "--show-error", "--unix-socket", &socket])
            .args(["-X", "POST", "-H", &format!("X-Registry-Auth: {auth}")])
            .arg(format!(
                "http://podman/v1.41/images/create?fromImage={image}&tag={tag}"
            ));
        run(cmd, None, DEFAULT_TIMEOUT).success().stdout
    }

    /// The running podman service, started on first use.
    pub fn service(&self) -> &PodmanService {
        self.service.get_or_init(|| self.start_service())
    }

    fn start_service(&self) -> PodmanService {
        require("podman");
        let socket = self.scratch.path().join("podman.sock");
        let log_path = self.scratch.path().join("podman-service.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let started = Instant::now();
        let mut cmd = self.command("podman");
        cmd.args(self.podman_state("service"))
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let mut child = cmd.spawn().expect("podman system service starts");
        loop {
            if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
                break;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "podman system service exited with {status}:\n{}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "podman system service is not listening on {} after 30 s",
                socket.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        PodmanService {
            child,
            socket,
            log: log_path,
        }
    }
}

/// The ways an image is pulled in the end-to-end tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Client {
    /// `skopeo copy docker://… oci:…`
    Skopeo,
    /// `podman pull`
    Podman,
    /// `buildah pull`
    Buildah,
    /// `docker pull` through the podman service
    Docker,
    /// `DOCKER_BUILDKIT=0 docker build --pull` of `FROM <image>` + a `LABEL`
    DockerBuild,
    /// `docker-compose pull` of a one-service compose file
    Compose,
}

impl Client {
    pub const ALL: [Client; 6] = [
        Client::Skopeo,
        Client::Podman,
        Client::Buildah,
        Client::Docker,
        Client::DockerBuild,
        Client::Compose,
    ];

    /// Whether a refused pull fails with the registry's message on stderr.
    /// docker-compose 1.29 does not: it skips the error events podman's
    /// Docker API streams (they carry `progressDetail`) and exits 0 having
    /// pulled nothing.
    pub fn reports_refusals(self) -> bool {
        self != Client::Compose
    }
}

/// `podman system service` on a unix socket: the Docker API for the docker
/// CLI and docker-compose.
pub struct PodmanService {
    child: Child,
    socket: PathBuf,
    log: PathBuf,
}

impl PodmanService {
    /// What the service logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for PodmanService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
