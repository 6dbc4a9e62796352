//! What a registry request costs to authenticate: resolving a caller from a
//! token the gateway has seen (a hash lookup; its organisations re-read from
//! the store at most once a second) relative to one ES256 signature check of
//! the same token (the baseline, measured in the same run). The gateway's
//! wall-time, memory and upstream-request figures are in bench/gateway.sh.
//!
//! Run: `cargo bench --bench gateway` (add `-- --quick` for a short run).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use imagegate_server::gateway::caller::Callers;
use imagegate_server::identity::Identity;
use imagegate_server::metrics::Metrics;
use imagegate_server::store::{Role, SqliteStore, Store};
use imagegate_server::token::{Signer, TokenService};

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let dir = std::env::temp_dir().join(format!("imagegate-bench-gateway-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir).expect("store"));
    let identity = Identity::new(store.clone());
    identity
        .create_org("corp", &["corp".to_owned()])
        .expect("org");
    identity.create_user("dev", "bench password").expect("user");
    store
        .set_member("corp", "dev", Role::Member)
        .expect("member");
    let pat = identity
        .create_token("dev", "bench", None)
        .expect("pat")
        .secret;
    let tokens = Arc::new(TokenService::new(
        identity.clone(),
        Signer::load_or_create(&dir).expect("key"),
        "gateway.bench",
    ));
    let jwt = tokens
        .issue(
            Some(("dev", &pat)),
            None,
            &["repository:library/nginx:pull".to_owned()],
        )
        .expect("token")
        .token;
    let callers = Arc::new(Callers::new(
        tokens.clone(),
        identity,
        None,
        false,
        Arc::new(Metrics::new()),
    ));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let resolve = || {
        rt.block_on(callers.resolve(black_box(&jwt)))
            .expect("resolves")
    };
    resolve();

    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(if quick { 200 } else { 1000 }))
        .measurement_time(Duration::from_secs(if quick { 1 } else { 3 }))
        .configure_from_args();
    c.bench_function("gateway/resolve_seen_token", |b| {
        b.iter(|| black_box(resolve()))
    });
    c.bench_function("token/es256_verify", |b| {
        b.iter(|| black_box(tokens.verify(black_box(&jwt)).is_ok()))
    });
    c.final_summary();

    let rounds = if quick { 200 } else { 2000 };
    let batches = if quick { 9 } else { 31 };
    let mut ratios: Vec<f64> = (0..batches)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..rounds {
                black_box(resolve());
            }
            let cached = start.elapsed().as_secs_f64();
            let start = Instant::now();
            for _ in 0..rounds {
                black_box(tokens.verify(&jwt).is_ok());
            }
            cached / start.elapsed().as_secs_f64()
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    println!(
        "\na registry request's token check, seen token vs one ES256 verify: {:.3}x (median of {batches} interleaved batches)",
        ratios[ratios.len() / 2]
    );
    let _ = std::fs::remove_dir_all(&dir);
}
