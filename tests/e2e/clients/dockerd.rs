//! A real Docker Engine for end-to-end tests: Debian's `dockerd` 20.10 with
//! the containerd it starts itself, every piece of its state in a scratch
//! directory, and the docker CLI of the same package (`/usr/bin/docker`) and
//! docker-compose talking to it. Never touches the machine's engine,
//! containers, credentials or `/etc/docker`.
//!
//! What it takes, found out on Debian 12 (docker.io 20.10.24, containerd 1.6):
//!
//! - Its own `--data-root`, `--exec-root` (containerd's socket, state and
//!   config go under both), `--pidfile` and `-H unix://…/docker.sock`;
//!   `--bridge none --iptables=false --ip6tables=false`, so it neither makes
//!   a network nor touches the firewall (pulls and builds need neither).
//!   overlay2 works in the scratch directory; vfs is the fallback.
//! - A private `/etc/docker`: dockerd writes its `key.json` there and reads
//!   `certs.d/HOST:PORT/ca.crt` from there only. It runs under
//!   `unshare --mount` with a scratch directory bind-mounted over
//!   `/etc/docker`, so the machine's stays as it is, and a CA written into
//!   that directory later (a gateway started after the engine) is seen at
//!   the next pull: dockerd reads certs.d per request.
//! - dockerd counts every registry on a loopback address (127.0.0.0/8, and
//!   so `localhost:PORT`) as insecure, always: it does not verify their TLS
//!   certificate (and would try plain HTTP after an HTTPS failure). So these
//!   tests show what the engine does with the gateway's answers, not that it
//!   trusts the gateway's CA; the CA is installed all the same, as a real
//!   engine in front of a real gateway needs it.
//! - Its own containerd: dockerd 20.10 uses the machine's containerd when
//!   `/run/containerd/containerd.sock` exists, so the namespace hides that
//!   directory under an empty tmpfs, and dockerd starts one of its own.
//! - It is stopped when [`Dockerd`] is dropped, even when the test fails:
//!   SIGTERM, then SIGKILL; containerd is dockerd's child with a parent-death
//!   signal, and is checked gone by its pid file. `setpriv --pdeathsig KILL`
//!   stops dockerd if the test process itself dies first.
//!
//! Which CLI: `/usr/bin/docker`, the docker.io package's own (20.10, the
//! engine's release), not whichever `docker` comes first in PATH (a newer
//! CLI may be installed elsewhere): the words a user of this engine sees are
//! the daemon's, and the CLI that ships with it is the one they have.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::{DEFAULT_TIMEOUT, Run, Scratch, clean_command, require, run};

/// The docker.io package's CLI.
pub const DOCKER_CLI: &str = "/usr/bin/docker";

/// A running dockerd (and its containerd) with everything in a scratch
/// directory, stopped on drop.
pub struct Dockerd {
    child: Option<Child>,
    socket: PathBuf,
    storage_driver: &'static str,
    scratch: Scratch,
}

impl Dockerd {
    /// Starts dockerd and waits until its API answers (about a second).
    pub fn start() -> Dockerd {
        require("unshare");
        require("setpriv");
        assert!(
            Path::new(DOCKER_CLI).exists() && sbin_path().is_some(),
            "dockerd, containerd and {DOCKER_CLI} are not all installed, and this \
             end-to-end test needs them: run scripts/test, which installs them, \
             or `apt-get install docker.io`"
        );
        let scratch = Scratch::new("dockerd");
        for dir in ["etc-docker/certs.d", "docker-config", "home", "tmp"] {
            std::fs::create_dir_all(scratch.path().join(dir)).unwrap();
        }
        let mut dockerd = Dockerd {
            child: None,
            socket: scratch.path().join("docker.sock"),
            storage_driver: "overlay2",
            scratch,
        };
        let mut failures = Vec::new();
        for driver in ["overlay2", "vfs"] {
            dockerd.storage_driver = driver;
            match dockerd.launch() {
                Ok(()) => return dockerd,
                Err(log) => {
                    failures.push(format!("--- with --storage-driver {driver}\n{log}"));
                    dockerd.stop_quietly();
                }
            }
        }
        panic!("dockerd does not start:\n{}", failures.join("\n"));
    }

    fn launch(&mut self) -> Result<(), String> {
        let dir = self.scratch.path();
        let _ = std::fs::remove_file(&self.socket);
        let log = std::fs::File::create(self.log_path()).unwrap();
        let mut cmd = clean_command("setpriv");
        // sh runs inside the new mount namespace: its mounts are seen by
        // dockerd (and containerd) alone; `exec` keeps dockerd's pid ours.
        // (A machine without /etc/docker gets an empty one to mount over:
        // Debian's docker.io ships it.)
        cmd.args(["--pdeathsig", "KILL", "--", "unshare", "--mount"])
            .args(["--propagation", "private", "--", "sh", "-c"])
            .arg(
                "[ -d /etc/docker ] || mkdir /etc/docker; \
                 mount --bind \"$1\" /etc/docker && shift || exit 1; \
                 if [ -e /run/containerd ]; then mount -t tmpfs tmpfs /run/containerd || exit 1; fi; \
                 exec \"$@\"",
            )
            .arg("sh")
            .arg(dir.join("etc-docker"))
            .arg("dockerd")
            .arg(format!("--data-root={}", dir.join("data").display()))
            .arg(format!("--exec-root={}", dir.join("exec").display()))
            .arg(format!("--pidfile={}", dir.join("dockerd.pid").display()))
            .arg(format!("--host=unix://{}", self.socket.display()))
            .arg(format!("--storage-driver={}", self.storage_driver))
            .args(["--bridge=none", "--iptables=false", "--ip6tables=false"])
            .arg("--ip-masq=false")
            .env("PATH", sbin_path().unwrap_or_default())
            .env("HOME", dir.join("home"))
            .env("TMPDIR", dir.join("tmp"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        use std::os::unix::process::CommandExt as _;
        cmd.process_group(0);
        let child = cmd.spawn().expect("dockerd starts");
        let child = self.child.insert(child);
        let started = Instant::now();
        loop {
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                break;
            }
            if let Some(status) = child.try_wait().unwrap() {
                return Err(format!("dockerd exited with {status}:\n{}", self.log()));
            }
            if started.elapsed() > Duration::from_secs(60) {
                return Err(format!(
                    "dockerd is not listening on {} after 60 s:\n{}",
                    self.socket.display(),
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // The socket is bound before the API serves; wait for an answer.
        let version = self.docker(&["version", "--format", "{{.Server.Version}}"]);
        if !version.status.success() {
            return Err(format!("{version}\n--- dockerd log\n{}", self.log()));
        }
        Ok(())
    }

    fn log_path(&self) -> PathBuf {
        self.scratch.path().join("dockerd.log")
    }

    /// Everything dockerd (and its containerd) logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// `unix://…/docker.sock`, for `DOCKER_HOST`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The storage driver it runs with (`overlay2`, or `vfs` where overlay
    /// does not work).
    pub fn storage_driver(&self) -> &'static str {
        self.storage_driver
    }

    /// The docker CLI's and docker-compose's configuration (`DOCKER_CONFIG`):
    /// `docker login` writes its credentials there.
    pub fn docker_config(&self) -> PathBuf {
        self.scratch.path().join("docker-config")
    }

    /// The directory dockerd sees as `/etc/docker`.
    pub fn etc_docker(&self) -> PathBuf {
        self.scratch.path().join("etc-docker")
    }

    /// Makes the engine trust `ca` (a PEM file) for `host_port`: its private
    /// `/etc/docker/certs.d/HOST:PORT/ca.crt`, read at each pull.
    pub fn trust(&self, host_port: &str, ca: &Path) {
        let file = self
            .scratch
            .join(&format!("etc-docker/certs.d/{host_port}/ca.crt"));
        std::fs::copy(ca, file).unwrap();
    }

    fn command(&self, program: &str) -> Command {
        let dir = self.scratch.path();
        let mut cmd = clean_command(program);
        cmd.env("HOME", dir.join("home"))
            .env("TMPDIR", dir.join("tmp"))
            .env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", self.docker_config())
            .env("DOCKER_BUILDKIT", "0")
            .env("DOCKER_CLI_HINTS", "false")
            .env("COMPOSE_INTERACTIVE_NO_CLI", "1")
            .current_dir(dir);
        cmd
    }

    /// `docker ARGS` (the docker.io package's CLI) against this engine.
    pub fn docker(&self, args: &[&str]) -> Run {
        self.docker_with(args, None)
    }

    fn docker_with(&self, args: &[&str], stdin: Option<&[u8]>) -> Run {
        let mut cmd = self.command(DOCKER_CLI);
        cmd.args(args);
        run(cmd, stdin, DEFAULT_TIMEOUT)
    }

    /// `docker login -u USER --password-stdin HOST_PORT`: the engine checks
    /// the credentials against the registry, the CLI stores them.
    pub fn login(&self, host_port: &str, user: &str, password: &str) -> Run {
        self.docker_with(
            &["login", "-u", user, "--password-stdin", host_port],
            Some(password.as_bytes()),
        )
    }

    /// `DOCKER_BUILDKIT=0 docker build -t TAG` (the classic builder) of a
    /// context holding only this Dockerfile.
    pub fn build(&self, dockerfile: &str, tag: &str) -> Run {
        let context = Scratch::new("dockerd-build-context");
        std::fs::write(context.join("Dockerfile"), dockerfile).unwrap();
        self.docker(&["build", "-t", tag, context.path().to_str().unwrap()])
    }

    /// `docker-compose -f FILE -p PROJECT ARGS` with this compose file,
    /// against this engine.
    pub fn compose(&self, compose_yaml: &str, args: &[&str]) -> Run {
        require("docker-compose");
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let file = self
            .scratch
            .join(&format!("compose-{n}/docker-compose.yml"));
        std::fs::write(&file, compose_yaml).unwrap();
        let project = format!("e2e{}x{n}", std::process::id());
        let mut cmd = self.command("docker-compose");
        cmd.args(["-f", file.to_str().unwrap(), "-p", &project])
            .args(args);
        run(cmd, None, DEFAULT_TIMEOUT)
    }

    /// Whether dockerd runs a containerd of its own (not the machine's).
    pub fn runs_its_own_containerd(&self) -> bool {
        self.containerd_pid()
            .is_some_and(|pid| alive(pid, self.scratch.path()))
    }

    /// containerd's pid, from the file dockerd keeps in its exec root.
    fn containerd_pid(&self) -> Option<u32> {
        let pid = self.scratch.path().join("exec/containerd/containerd.pid");
        std::fs::read_to_string(pid).ok()?.trim().parse().ok()
    }

    /// Stops dockerd (SIGTERM: it stops its containerd) and asserts that
    /// neither process is left and the socket is gone.
    pub fn stop(&mut self) {
        let containerd = self.containerd_pid();
        let status = self.stop_quietly();
        assert!(
            status.is_some_and(|s| s.success()),
            "dockerd did not exit cleanly on SIGTERM ({status:?}):\n{}",
            self.log()
        );
        if let Some(pid) = containerd {
            assert!(
                !alive(pid, self.scratch.path()),
                "containerd (pid {pid}) still runs after dockerd stopped"
            );
        }
        assert!(
            !self.socket.exists(),
            "dockerd left its socket {}",
            self.socket.display()
        );
        let left = running_in(self.scratch.path());
        assert!(
            left.is_empty(),
            "processes of this engine still run after it stopped: {left:?}"
        );
    }

    /// SIGTERM, up to 20 s for a clean exit, then SIGKILL; and containerd
    /// killed by its pid if it outlived dockerd. Returns dockerd's status.
    fn stop_quietly(&mut self) -> Option<std::process::ExitStatus> {
        let containerd = self.containerd_pid();
        let mut child = self.child.take()?;
        let status = match child.try_wait() {
            Ok(Some(status)) => Some(status),
            _ => {
                signal("TERM", child.id());
                let started = Instant::now();
                loop {
                    if let Ok(Some(status)) = child.try_wait() {
                        break Some(status);
                    }
                    if started.elapsed() > Duration::from_secs(20) {
                        let _ = child.kill();
                        let _ = child.wait();
                        break None;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        };
        if let Some(pid) = containerd
            && alive(pid, self.scratch.path())
        {
            signal("KILL", pid);
            let started = Instant::now();
            while alive(pid, self.scratch.path()) && started.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        status
    }
}

/// PATH with `/usr/sbin` and `/sbin` after the caller's (a root shell may
/// lack them), if dockerd and containerd are then found.
fn sbin_path() -> Option<std::ffi::OsString> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")]);
    let found = |tool: &str| dirs.iter().any(|d| d.join(tool).is_file());
    (found("dockerd") && found("containerd"))
        .then(|| std::env::join_paths(&dirs).ok())
        .flatten()
}

/// Whether `pid` runs, and is ours: its command line names `dir`.
fn alive(pid: u32, dir: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // A zombie has exited; its parent has not reaped it yet.
    let zombie = stat
        .rsplit_once(") ")
        .is_some_and(|(_, rest)| rest.starts_with('Z'));
    !zombie
        && String::from_utf8_lossy(&cmdline)
            .contains(dir.to_str().unwrap_or("/nonexistent-scratch"))
}

/// The processes whose command line names `dir` (a shim, a containerd).
fn running_in(dir: &Path) -> Vec<(u32, String)> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| alive(pid, dir))
        .map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            (pid, String::from_utf8_lossy(&cmdline).replace('\0', " "))
        })
        .collect()
}

fn signal(name: &str, pid: u32) {
    let _ = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if std::thread::panicking() && self.child.is_some() {
            eprintln!("--- dockerd log\n{}", self.log());
        }
        self.stop_quietly();
    }
}
