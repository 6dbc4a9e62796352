//! The doors over real HTTP on loopback, as kube-apiserver calls them, in two
//! figures, each a ratio against a baseline measured in the same run
//! (interleaved rounds; the median ratio is printed):
//!
//! 1. **durable audit**: admission reviews per second (32 keep-alive
//!    connections) when each answer waits for its events' commit, against the
//!    same server answering before the commit (the batched audit of before).
//!    Target: at least 0.8x.
//! 2. **Insights contention**: admission p99 latency (8 connections) while an
//!    owner's Insights over 30 days is loaded in a loop on a large log (EVENTS
//!    events, default 300,000), against the p99 without that loop. Target: at
//!    most 2x.
//!
//! Run: `cargo bench --bench doors` (`-- --quick` for shorter rounds and a
//! smaller log; `IMAGEGATE_BENCH_EVENTS=N` for another size).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use imagegate_core::Policy;
use imagegate_server::audit::Auditor;
use imagegate_server::config::{Config, FileConfig, Overrides};
use imagegate_server::identity::Identity;
use imagegate_server::metrics::Metrics;
use imagegate_server::state::AppState;
use imagegate_server::store::{AuditEvent, Role, SqliteStore, Store, now_ms};

const POLICY: &str = include_str!("../examples/policy.yaml");

fn review(uid: usize) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": format!("bench-{uid}"), "operation": "CREATE", "namespace": "default",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "userInfo": {"username": "alice"},
            "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                "spec": {"containers": [
                    {"name": "web", "image": "nginx:1.25"},
                    {"name": "tool", "image": "someuser/custom-image:1"},
                    {"name": "proxy", "image": "ghcr.io/corp/proxy:2.1"}
                ]}}
        }
    }))
    .expect("json")
}

/// One keep-alive HTTP/1.1 client connection, read by Content-Length.
struct Client {
    stream: BufReader<TcpStream>,
    head: String,
}

impl Client {
    fn connect(addr: SocketAddr, method: &str, path: &str, extra: &str) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Client {
            stream: BufReader::new(stream),
            head: format!(
                "{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n{extra}"
            ),
        }
    }

    /// Sends `body`, reads the answer, returns its status.
    fn call(&mut self, body: &[u8]) -> u16 {
        let request = format!("{}Content-Length: {}\r\n\r\n", self.head, body.len());
        let s = self.stream.get_mut();
        s.write_all(request.as_bytes()).expect("write");
        s.write_all(body).expect("write");
        let mut line = String::new();
        self.stream.read_line(&mut line).expect("status line");
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status");
        let mut length = 0usize;
        loop {
            line.clear();
            self.stream.read_line(&mut line).expect("header");
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().expect("length");
            }
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).expect("body");
        status
    }
}

/// `clients` connections posting reviews for `time`: reviews per second and
/// every latency.
fn load(addr: SocketAddr, clients: usize, time: Duration) -> (f64, Vec<Duration>) {
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut client = Client::connect(addr, "POST", "/admission/validate", "");
                let mut latencies = Vec::new();
                let mut i = c * 10_000_000;
                while !stop.load(Ordering::Relaxed) {
                    let body = review(i);
                    let started = Instant::now();
                    assert_eq!(client.call(&body), 200);
                    latencies.push(started.elapsed());
                    i += 1;
                }
                latencies
            })
        })
        .collect();
    let started = Instant::now();
    std::thread::sleep(time);
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in threads {
        all.extend(t.join().expect("client"));
    }
    let rate = all.len() as f64 / started.elapsed().as_secs_f64();
    (rate, all)
}

fn p99(latencies: &mut [Duration]) -> Duration {
    latencies.sort();
    latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "imagegate-bench-doors-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// The admission door with its audit on a fresh store, durable or not.
fn admission_server(
    runtime: &tokio::runtime::Runtime,
    name: &str,
    durable: bool,
) -> (SocketAddr, Arc<Metrics>) {
    let dir = temp_dir(name);
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir).expect("store"));
    runtime.block_on(async move {
        let metrics = Arc::new(Metrics::new());
        let (auditor, writer) = Auditor::start(store, metrics.clone(), 10_000);
        let shown = metrics.clone();
        std::mem::forget(writer);
        let auditor = if durable {
            auditor
        } else {
            auditor.answering_before_commit()
        };
        let (_tx, policy) =
            tokio::sync::watch::channel(Arc::new(Policy::load(POLICY).expect("policy")));
        std::mem::forget(_tx);
        let state = AppState {
            policy,
            metrics,
            max_body_bytes: 4 << 20,
            audit: auditor,
            policy_org: None,
            require_client_certificate: false,
        };
        let app = imagegate_server::router(state, Arc::new(AtomicBool::new(true)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        (addr, shown)
    })
}

fn durable_audit(quick: bool) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (durable, metrics) = admission_server(&runtime, "durable", true);
    let (batched, _) = admission_server(&runtime, "batched", false);
    let time = Duration::from_secs(if quick { 1 } else { 3 });
    let rounds = if quick { 3 } else { 5 };
    let mut ratios = Vec::new();
    for round in 0..rounds {
        let (b, _) = load(batched, 32, time);
        let (d, _) = load(durable, 32, time);
        println!(
            "  round {round}: answered after commit {d:.0}/s, before commit {b:.0}/s: {:.2}x",
            d / b
        );
        ratios.push(d / b);
    }
    let count = |name: &str| -> f64 {
        metrics
            .encode()
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    println!(
        "  {:.1} events per transaction when answers wait for their commit",
        count("imagegate_audit_events_total{result=\"written\"} ")
            / count("imagegate_audit_transactions_total ")
    );
    println!(
        "durable audit: admission reviews/s answered after their commit vs before it (32 connections): {:.2}x (target >= 0.8x)",
        median(ratios)
    );
}

fn insights_contention(quick: bool) {
    let events: usize = std::env::var("IMAGEGATE_BENCH_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(if quick { 100_000 } else { 300_000 });
    let dir = temp_dir("insights");
    let sqlite = Arc::new(SqliteStore::open(&dir).expect("store"));
    let store: Arc<dyn Store> = sqlite.clone();
    let identity = Identity::new(store.clone());
    identity
        .create_org("corp", &["corp".to_owned()])
        .expect("org");
    identity
        .create_user("olga", "correct horse battery")
        .expect("user");
    store
        .set_member("corp", "olga", Role::Owner)
        .expect("member");
    let pat = identity
        .create_token("olga", "bench", None)
        .expect("pat")
        .secret;
    let now = now_ms();
    let span = 30 * 86_400_000i64;
    let seeded = Instant::now();
    for chunk in (0..events).collect::<Vec<_>>().chunks(5_000) {
        let batch: Vec<AuditEvent> = chunk
            .iter()
            .map(|&i| {
                let image = format!("docker.io/team{}/tool{}:1", i % 40, (i * 7) % 2000);
                AuditEvent {
                    time_ms: now - span + (i as i64) * (span / events as i64),
                    door: "gateway".into(),
                    org: Some("corp".into()),
                    user: Some(format!("user{}", i % 50)),
                    input: image.clone(),
                    image,
                    category: Some("community".into()),
                    decision: if i % 5 == 0 { "deny" } else { "allow" }.into(),
                    reason: "category_not_allowed".into(),
                    mode: "enforce".into(),
                    message: "image access denied: community images not allowed".into(),
                    path: Some("manifest".into()),
                    ..AuditEvent::default()
                }
            })
            .collect();
        store.append_audit(&batch).expect("seed");
    }
    println!(
        "  seeded {events} events in {:.1}s",
        seeded.elapsed().as_secs_f64()
    );
    let config = Config::resolve(
        Overrides {
            listen: Some("127.0.0.1:0".into()),
            data_dir: Some(dir),
            policy_org: Some("corp".into()),
            ..Overrides::default()
        },
        FileConfig::default(),
    )
    .expect("config");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(imagegate_server::serve_store(
            config,
            store,
            std::future::pending(),
            move |addr| {
                let _ = tx.send(addr);
            },
        ))
    });
    let addr = rx.recv().expect("listening");
    let time = Duration::from_secs(if quick { 2 } else { 4 });
    let rounds = if quick { 3 } else { 5 };
    let mut ratios = Vec::new();
    for round in 0..rounds {
        let (_, mut quiet) = load(addr, 8, time);
        let stop = Arc::new(AtomicBool::new(false));
        let looping = {
            let (stop, pat) = (stop.clone(), pat.clone());
            std::thread::spawn(move || {
                let mut owner = Client::connect(
                    addr,
                    "GET",
                    "/api/v1/orgs/corp/insights?range=30d",
                    &format!("Authorization: Bearer {pat}\r\n"),
                );
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    assert_eq!(owner.call(b""), 200);
                    n += 1;
                }
                n
            })
        };
        let (_, mut busy) = load(addr, 8, time);
        stop.store(true, Ordering::Relaxed);
        let pages = looping.join().expect("insights loop");
        let (q, b) = (p99(&mut quiet), p99(&mut busy));
        let ratio = b.as_secs_f64() / q.as_secs_f64();
        println!(
            "  round {round}: admission p99 {:.2} ms with {pages} Insights pages loaded meanwhile, {:.2} ms without: {ratio:.2}x",
            b.as_secs_f64() * 1e3,
            q.as_secs_f64() * 1e3
        );
        ratios.push(ratio);
    }
    let _ = sqlite;
    println!(
        "Insights contention: admission p99 with an Insights (30 days, {events} events) loop vs without (8 connections): {:.2}x (target <= 2x)",
        median(ratios)
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    durable_audit(quick);
    insights_contention(quick);
}
