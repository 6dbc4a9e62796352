//! What an owner's look at the log costs on a large store: Insights over 7
//! and 30 days, and the Activity page with an image filter, each relative to
//! the Activity page's first page without one (an indexed read of 51 events;
//! the baseline, measured in the same run). The store holds EVENTS audit
//! events (default 1,000,000) spread over 30 days: 50 people, 2,000 images,
//! one attempt in five refused, a pull's blobs beside its manifest.
//!
//! Run: `cargo bench --bench insights` (`-- --quick` for 200,000 events and
//! fewer rounds; `IMAGEGATE_BENCH_EVENTS=N` for another size).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use imagegate_server::audit::{Filters, read};
use imagegate_server::insights::insights;
use imagegate_server::store::{AuditEvent, AuditFilter, SqliteStore, Store, now_ms};

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let events: usize = std::env::var("IMAGEGATE_BENCH_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(if quick { 200_000 } else { 1_000_000 });
    let dir = std::env::temp_dir().join(format!("imagegate-bench-insights-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir).expect("store"));
    store
        .create_org(&imagegate_server::store::Org {
            name: "corp".into(),
            namespaces: vec!["corp".into()],
            policy: String::new(),
        })
        .expect("org");

    let now = now_ms();
    let span = 30 * 86_400_000i64;
    let started = Instant::now();
    let mut batch = Vec::with_capacity(1000);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for i in 0..events {
        let r = next();
        let refused = r % 5 == 0;
        let image = format!("docker.io/team{}/tool{}:1", r % 40, (r >> 8) % 2000);
        batch.push(AuditEvent {
            time_ms: now - span + (i as i64) * (span / events as i64),
            door: "gateway".into(),
            org: Some("corp".into()),
            user: Some(format!("user{}", (r >> 20) % 50)),
            image: image.clone(),
            input: image,
            category: Some("community".into()),
            decision: if refused { "deny" } else { "allow" }.into(),
            reason: if refused {
                "category_not_allowed"
            } else {
                "allowed"
            }
            .into(),
            mode: "enforce".into(),
            message: "m".into(),
            path: Some(
                if refused || r % 3 == 0 {
                    "manifest"
                } else {
                    "blob"
                }
                .into(),
            ),
            ..AuditEvent::default()
        });
        if batch.len() == 1000 {
            store.append_audit(&batch).expect("append");
            batch.clear();
        }
    }
    store.append_audit(&batch).expect("append");
    println!(
        "{events} events written in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    let first_page = || {
        let filter = AuditFilter {
            org: Some("corp".into()),
            limit: Some(51),
            ..AuditFilter::default()
        };
        black_box(store.audit_events(&filter).expect("page").len())
    };
    let filtered_page = || {
        let (mut filter, glob) = Filters {
            image: Some("docker.io/team7/*"),
            decision: Some("deny"),
            ..Filters::default()
        }
        .compile("corp", now_ms())
        .expect("filters");
        filter.limit = Some(51);
        black_box(
            read(store.as_ref(), &filter, glob.as_ref())
                .expect("page")
                .len(),
        )
    };
    let week = || black_box(insights(store.as_ref(), "corp", "7d").expect("7d").refused);
    let month = || {
        black_box(
            insights(store.as_ref(), "corp", "30d")
                .expect("30d")
                .refused,
        )
    };

    let rounds = if quick { 3 } else { 5 };
    let time = |f: &dyn Fn() -> usize, n: usize| {
        let start = Instant::now();
        for _ in 0..n {
            f();
        }
        start.elapsed().as_secs_f64() / n as f64
    };
    let week_ = || week() as usize;
    let month_ = || month() as usize;
    let mut results: Vec<(&str, Vec<f64>)> = vec![
        ("Insights, 7 days", Vec::new()),
        ("Insights, 30 days", Vec::new()),
        ("Activity, image pattern and decision filter", Vec::new()),
    ];
    let mut bases = Vec::new();
    for _ in 0..rounds {
        let base = time(&first_page, 200);
        bases.push(base);
        results[0].1.push(time(&week_, 1) / base);
        results[1].1.push(time(&month_, 1) / base);
        results[2].1.push(time(&filtered_page, 1) / base);
    }
    bases.sort_by(f64::total_cmp);
    println!(
        "\nrelative to the Activity page's first page ({:.3} ms here, for scale only), with {events} events (median of {rounds} interleaved rounds):",
        bases[bases.len() / 2] * 1000.0
    );
    for (what, mut ratios) in results {
        ratios.sort_by(f64::total_cmp);
        println!("  {what}: {:.0}x", ratios[ratios.len() / 2]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
