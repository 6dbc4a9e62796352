//! A long read by a person never stalls a door: the console's and API's
//! store calls run off the async runtime's threads, and long reads
//! (Insights, Activity, exports) use a connection of their own. Shown by
//! ordering, not by timing: with the long-read connection held, a crowd of
//! Insights requests waits on it while the doors keep answering.

use std::sync::Arc;
use std::time::Duration;

use imagegate_server::config::{Config, FileConfig, Overrides};
use imagegate_server::identity::Identity;
use imagegate_server::store::{Role, SqliteStore, Store};
use serde_json::{Value, json};

/// More Insights requests than the runtime has threads.
const INSIGHTS: usize = 8;

// The clients run on the test's own runtime, the server on a runtime of
// its own with two threads: a server thread blocked on the store cannot
// stop the test's clock, so a stalled door fails the test, not hangs it.
#[tokio::test]
// Holding the store's long-read lock across the requests is the point.
#[allow(clippy::await_holding_lock)]
async fn the_doors_answer_while_insights_requests_wait_on_a_long_read() {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap();
    let dir = std::env::temp_dir().join(format!("imagegate-contention-{}", u64::from_le_bytes(b)));
    let sqlite = Arc::new(SqliteStore::open(&dir).unwrap());
    let store: Arc<dyn Store> = sqlite.clone();
    let identity = Identity::new(store.clone());
    identity.create_org("corp", &["corp".to_owned()]).unwrap();
    identity
        .create_user("olga", "correct horse battery")
        .unwrap();
    store.set_member("corp", "olga", Role::Owner).unwrap();
    let pat = identity.create_token("olga", "t", None).unwrap().secret;

    let config = Config::resolve(
        Overrides {
            listen: Some("127.0.0.1:0".into()),
            data_dir: Some(dir),
            policy_org: Some("corp".into()),
            ..Overrides::default()
        },
        FileConfig::default(),
    )
    .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (listening, bound) = tokio::sync::oneshot::channel();
    let server = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(imagegate_server::serve_store(
            config,
            store,
            async {
                let _ = stopped.await;
            },
            move |addr| {
                let _ = listening.send(addr);
            },
        ))
    });
    let addr: std::net::SocketAddr = bound.await.unwrap();
    let client = reqwest::Client::new();

    // An owner's Insights requests, all stuck on the long-read connection.
    let held = sqlite.hold_long_reads();
    let insights: Vec<_> = (0..INSIGHTS)
        .map(|_| {
            let (client, pat) = (client.clone(), pat.clone());
            tokio::spawn(async move {
                client
                    .get(format!("http://{addr}/api/v1/orgs/corp/insights?range=30d"))
                    .bearer_auth(pat)
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    let waiting = tokio::time::timeout(Duration::from_secs(30), async {
        while sqlite.waiting_long_reads() < INSIGHTS {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;

    assert!(
        waiting.is_ok(),
        "the Insights requests never reached the long read"
    );

    // The doors answer meanwhile: an admission review (recorded before its
    // answer, on the writer's connection) and the registry's token service.
    let review = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "u-1", "operation": "CREATE", "namespace": "default",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "userInfo": {"username": "alice"},
            "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}}
        }
    });
    let doors = tokio::time::timeout(Duration::from_secs(30), async {
        for i in 0..20 {
            let answer = client
                .post(format!("http://{addr}/admission/validate"))
                .header("content-type", "application/json")
                .body(review.to_string())
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let answer: Value = serde_json::from_str(&answer).unwrap();
            assert_eq!(answer["response"]["allowed"], true, "review {i}: {answer}");
            let token = client
                .get(format!(
                    "http://{addr}/token?scope=repository:library/nginx:pull"
                ))
                .basic_auth("olga", Some(&pat))
                .send()
                .await
                .unwrap();
            assert_eq!(token.status(), 200);
        }
    })
    .await;
    assert!(
        doors.is_ok(),
        "the doors stopped answering while Insights waited on a long read"
    );
    assert_eq!(
        sqlite.waiting_long_reads(),
        INSIGHTS,
        "every Insights request was still waiting while the doors answered"
    );
    assert!(insights.iter().all(|t| !t.is_finished()));

    // Released, Insights answers too.
    drop(held);
    for t in insights {
        assert_eq!(t.await.unwrap(), 200);
    }
    let recorded = sqlite
        .audit_events(&imagegate_server::store::AuditFilter {
            door: Some("admission".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(recorded.len(), 20, "every answered review is recorded");
    stop.send(()).unwrap();
    server.join().unwrap().unwrap();
}
