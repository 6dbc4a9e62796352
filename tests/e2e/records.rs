//! The audit record under faults: a decision that was answered is in the
//! store after `kill -9`; a store that cannot take the record (a full disk,
//! its file removed) turns `/readyz` to 503 and, with `--audit-required`,
//! makes the doors refuse rather than decide unrecorded.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const POLICY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/crates/server/tests/fixtures/policy.yaml"
);

/// `imagegate serve` over plain HTTP on loopback, killed when dropped.
struct Serve {
    child: Child,
    port: u16,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Serve {
    fn start(data_dir: &Path, args: &[&str]) -> Serve {
        let mut child = Command::new(env!("CARGO_BIN_EXE_imagegate"))
            .args(["serve", "--listen", "127.0.0.1:0", "--policy", POLICY])
            .arg("--data-dir")
            .arg(data_dir)
            .args(args)
            .env_remove("IMAGEGATE_POLICY")
            .env_remove("IMAGEGATE_DATA_DIR")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("imagegate serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if line.contains("\"listening\"") {
                        let _ = tx.send(line.clone());
                    }
                    logs.lock().unwrap().push(line);
                }
            });
        }
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("imagegate serve logs `listening` within 30 s");
        let log: Value = serde_json::from_str(&line).expect("a JSON log line");
        let port = log["addr"]
            .as_str()
            .and_then(|a| a.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .expect("the listening address");
        Serve { child, port, logs }
    }

    /// One HTTP/1.1 exchange on a new connection.
    fn request(&self, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        let mut conn = Connection::open(self.port).expect("connects");
        conn.send(method, path, body).expect("an answer")
    }

    fn review(&self, uid: &str) -> (u16, Value) {
        let (status, body) = self.request("POST", "/admission/validate", &review(uid));
        (
            status,
            serde_json::from_str(&body).unwrap_or(Value::String(body)),
        )
    }

    fn logged(&self, needle: &str) -> bool {
        self.logs.lock().unwrap().iter().any(|l| l.contains(needle))
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A keep-alive HTTP/1.1 connection, read by Content-Length.
struct Connection {
    stream: BufReader<TcpStream>,
}

impl Connection {
    fn open(port: u16) -> std::io::Result<Connection> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream: BufReader::new(stream),
        })
    }

    fn send(&mut self, method: &str, path: &str, body: &[u8]) -> std::io::Result<(u16, String)> {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: imagegate\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let stream = self.stream.get_mut();
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        let broken = || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "no full answer");
        let mut status_line = String::new();
        if self.stream.read_line(&mut status_line)? == 0 {
            return Err(broken());
        }
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(broken)?;
        let mut length = 0;
        loop {
            let mut line = String::new();
            if self.stream.read_line(&mut line)? == 0 {
                return Err(broken());
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().map_err(|_| broken())?;
            }
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body)?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

/// An AdmissionReview of a Pod with an allowed and a refused container.
fn review(uid: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "default",
            "operation": "CREATE",
            "userInfo": {"username": "alice"},
            "object": {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "namespace": "default"},
                "spec": {"containers": [
                    {"name": "web", "image": "nginx:1.27"},
                    {"name": "miner", "image": "someuser/miner:1"}
                ]}
            }
        }
    }))
    .unwrap()
}

fn fresh_dir(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "imagegate-records-{}-{name}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The `request` (AdmissionReview uid) of every event `imagegate audit`
/// reads from `data_dir`.
fn recorded_uids(data_dir: &Path) -> HashSet<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_imagegate"))
        .args(["audit", "--format", "json", "--data-dir"])
        .arg(data_dir)
        .env_remove("IMAGEGATE_DATA_DIR")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "imagegate audit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["request"].as_str().map(str::to_owned)
        })
        .collect()
}

#[test]
fn every_answered_review_is_in_the_audit_log_after_kill_9() {
    for run in 0..3 {
        let dir = fresh_dir("kill");
        let server = Serve::start(&dir, &[]);
        let answered = Arc::new(Mutex::new(Vec::new()));
        let count = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..16)
            .map(|c| {
                let (answered, count, stop) = (answered.clone(), count.clone(), stop.clone());
                let port = server.port;
                std::thread::spawn(move || {
                    let Ok(mut conn) = Connection::open(port) else {
                        return;
                    };
                    // Bounded: the server is killed long before this.
                    for i in 0..5_000 {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        let uid = format!("run{run}-client{c}-{i}");
                        let Ok((status, body)) =
                            conn.send("POST", "/admission/validate", &review(&uid))
                        else {
                            return;
                        };
                        let v: Value = serde_json::from_str(&body).unwrap();
                        assert_eq!(status, 200, "{body}");
                        assert_eq!(v["response"]["uid"], uid.as_str());
                        assert_eq!(v["response"]["allowed"], false, "{body}");
                        answered.lock().unwrap().push(uid);
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        while count.load(Ordering::Relaxed) < 400 {
            assert!(
                Instant::now() < deadline,
                "fewer than 400 reviews answered in 60 s"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        // SIGKILL, mid-load: no flush, no shutdown.
        let mut server = server;
        server.child.kill().unwrap();
        server.child.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.join().unwrap();
        }
        let answered = answered.lock().unwrap().clone();
        let recorded = recorded_uids(&dir);
        let lost: Vec<&String> = answered.iter().filter(|u| !recorded.contains(*u)).collect();
        assert!(
            lost.is_empty(),
            "run {run}: {} of {} answered reviews are not in the audit log, e.g. {:?}",
            lost.len(),
            answered.len(),
            lost.iter().take(5).collect::<Vec<_>>()
        );
    }
}

/// A tmpfs of `size` mounted at a fresh directory, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = fresh_dir("tmpfs");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs to fill it up and needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir)
    }

    /// Writes zeros into `fill` until the file system is full.
    fn fill(&self) {
        let mut f = std::fs::File::create(self.0.join("fill")).unwrap();
        let block = vec![0u8; 4096];
        loop {
            match f.write_all(&block) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => panic!("filling the tmpfs: {e}"),
            }
        }
        let _ = f.sync_all();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Sends reviews until `/readyz` answers 503 (the store refused a write),
/// returning the last review's answer and the readiness body.
fn review_until_unready(server: &Serve) -> (u16, Value, String) {
    for i in 0..2_000 {
        let (status, v) = server.review(&format!("full-{i}"));
        let (ready, body) = server.request("GET", "/readyz", b"");
        if ready == 503 {
            return (status, v, body);
        }
        assert_eq!(ready, 200, "{body}");
    }
    panic!("2,000 reviews on a full disk and /readyz still answers 200");
}

fn metric(server: &Serve, line_start: &str) -> f64 {
    let (_, text) = server.request("GET", "/metrics", b"");
    text.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {line_start} in\n{text}"))
}

#[test]
fn a_full_disk_turns_readyz_to_503_and_the_doors_keep_deciding_until_it_frees_up() {
    let disk = Tmpfs::mount("8m");
    let server = Serve::start(&disk.0, &[]);
    let (status, v) = server.review("before");
    assert_eq!(
        (status, v["response"]["allowed"].clone()),
        (200, json!(false))
    );
    disk.fill();
    let (status, v, ready) = review_until_unready(&server);
    // By default the door keeps deciding, unrecorded.
    assert_eq!(status, 200);
    assert_eq!(v["response"]["allowed"], false);
    assert!(
        v["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("image access denied: community images not allowed"),
        "{v}"
    );
    assert!(
        ready.starts_with("audit log unavailable: store "),
        "{ready}"
    );
    assert!(ready.contains("imagegate.db"), "{ready}");
    assert_eq!(metric(&server, "imagegate_audit_store_up "), 0.0);
    assert!(
        metric(
            &server,
            "imagegate_audit_events_total{result=\"dropped_error\"} "
        ) >= 1.0
    );
    assert!(metric(&server, "imagegate_audit_store_failures_total ") >= 1.0);
    assert!(server.logged("the audit log cannot be written"));

    // Space again: the writer's probe finds the store writable, unasked.
    std::fs::remove_file(disk.0.join("fill")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.request("GET", "/readyz", b"").0 != 200 {
        assert!(
            Instant::now() < deadline,
            "/readyz still 503 10 s after the disk freed up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(metric(&server, "imagegate_audit_store_up "), 1.0);
    server.review("after");
    let recorded = recorded_uids(&disk.0);
    assert!(
        recorded.contains("before") && recorded.contains("after"),
        "{recorded:?}"
    );
}

#[test]
fn with_audit_required_a_full_disk_refuses_reviews_in_words() {
    let disk = Tmpfs::mount("8m");
    let server = Serve::start(&disk.0, &["--audit-required"]);
    let (status, v) = server.review("before");
    assert_eq!(status, 200);
    assert!(
        v["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("community images not allowed"),
        "{v}"
    );
    disk.fill();
    let (status, v, _) = review_until_unready(&server);
    assert_eq!(status, 200, "an AdmissionReview answer, not an HTTP error");
    assert_eq!(v["response"]["allowed"], false);
    assert_eq!(v["response"]["status"]["message"], "audit log unavailable");
    assert_eq!(v["response"]["status"]["code"], 503);
    // An image that would be allowed is refused too, while unrecorded.
    let allowed_only = String::from_utf8(review("allowed-only"))
        .unwrap()
        .replace("someuser/miner:1", "nginx:1.27");
    let (_, body) = server.request("POST", "/admission/validate", allowed_only.as_bytes());
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["response"]["allowed"], false, "{v}");
    assert_eq!(v["response"]["status"]["message"], "audit log unavailable");
}

#[test]
fn a_removed_database_file_is_noticed_and_with_audit_required_the_admission_doors_refuse() {
    let dir = fresh_dir("removed");
    let server = Serve::start(&dir, &["--audit-required"]);
    let (_, v) = server.review("before");
    assert_eq!(v["response"]["allowed"], false);
    assert_ne!(v["response"]["status"]["message"], "audit log unavailable");
    std::fs::remove_file(dir.join("imagegate.db")).unwrap();

    // Noticed without traffic, by the writer's probe.
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let (status, body) = server.request("GET", "/readyz", b"");
        if status == 503 {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz still 200 10 s after the file was removed"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        body.contains("the database file was removed while imagegate had it open"),
        "{body}"
    );
    let (_, v) = server.review("after");
    assert_eq!(v["response"]["allowed"], false);
    assert_eq!(v["response"]["status"]["message"], "audit log unavailable");
    let (status, body) = server.request(
        "POST",
        "/imagepolicy",
        br#"{"apiVersion":"imagepolicy.k8s.io/v1alpha1","kind":"ImageReview","spec":{"containers":[{"image":"nginx:1.27"}],"namespace":"default"}}"#,
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status, 200);
    assert_eq!(v["status"]["allowed"], false, "{v}");
    assert_eq!(v["status"]["reason"], "audit log unavailable");
    assert!(server.logged("the database file was removed"));
}

#[test]
fn a_database_overwritten_while_serving_turns_readyz_to_503() {
    let dir = fresh_dir("corrupt");
    let server = Serve::start(&dir, &[]);
    server.review("before");
    assert_eq!(server.request("GET", "/readyz", b"").0, 200);
    // In place: same file, garbage where its header and first pages were.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("imagegate.db"))
        .unwrap();
    f.write_all(&vec![0x5a; 16 * 1024]).unwrap();
    f.sync_all().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = server.request("GET", "/readyz", b"");
        if status == 503 {
            assert!(body.starts_with("audit log unavailable: store "), "{body}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz still 200 10 s after the database was overwritten"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
