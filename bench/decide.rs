//! Decision benchmarks. Criterion reports each benchmark; then the ratios the
//! core issue sets are measured in this same process by interleaving the two
//! sides in alternating batches (the machine is shared and noisy, so absolute
//! times drift and only ratios within one run mean anything):
//!
//! * a decision against a realistic policy (image access on, 25 registries,
//!   100 rules) relative to one `globset` match over the same 100 patterns
//!   written as globs (aim: at most 4x);
//! * a decision with 10,000 rules relative to one with 10 rules (aim: at most 3x);
//! * decisions on two threads relative to one (aim: at least 1.8x throughput).
//!
//! Run: `cargo bench --bench decide` (add `-- --quick` for a short run).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use imagegate_core::{Input, Policy, Reference, decide};

/// A policy shaped like a real organisation's: image access on, 25 registries,
/// `rules` rules. Big policies grow by listing repositories; the three rules
/// with wildcard registries stay three.
fn policy_text(rules: usize) -> (String, Vec<String>) {
    let mut text = String::from(
        "apiVersion: imagegate.dev/v1\nkind: ImagePolicy\nmetadata:\n  name: bench\nspec:\n  mode: enforce\n  imageAccess:\n    enabled: true\n    allow: [official, verified_publisher]\n    organizationNamespaces: [corp, corp-labs, corp-data]\n    verifiedPublishers: [bitnami, grafana, hashicorp, elastic, datadog, newrelic, sonatype, jfrog]\n  registryAccess:\n    enabled: true\n    allow:\n",
    );
    let registries = [
        "docker.io",
        "registry.corp.example",
        "ghcr.io/corp",
        "*.corp.example",
        "quay.io",
        "gcr.io/corp-project",
        "us-docker.pkg.dev/corp-project",
        "public.ecr.aws/corp",
        "mcr.microsoft.com",
        "registry.k8s.io",
        "nvcr.io/nvidia",
        "localhost:5000",
        "harbor.corp.example:8443",
        "registry.gitlab.com/corp",
        "cgr.dev/chainguard",
        "ghcr.io/actions",
        "ghcr.io/fluxcd",
        "ghcr.io/kyverno",
        "docker.elastic.co",
        "registry.access.redhat.com",
        "registry.redhat.io",
        "gcr.io/distroless",
        "k8s.gcr.io",
        "mirror.gcr.io",
        "artifactory.corp.example/docker-remote",
    ];
    assert_eq!(registries.len(), 25);
    for r in registries {
        text.push_str(&format!("      - \"{r}\"\n"));
    }
    text.push_str("  rules:\n");
    let mut globs = Vec::new();
    let literal = rules.saturating_sub(3);
    for i in 0..literal {
        let (pattern, glob) = match i % 4 {
            0 => (
                format!("allow: \"docker.io/vendor-{i}/tool-{i}\""),
                format!("docker.io/vendor-{i}/tool-{i}:*"),
            ),
            1 => (
                format!("deny: \"ghcr.io/corp/legacy-{i}-*\""),
                format!("ghcr.io/corp/legacy-{i}-*:*"),
            ),
            2 => (
                format!("allow: \"quay.io/partner-{i}/**\""),
                format!("quay.io/partner-{i}/**"),
            ),
            _ => (
                format!("deny: \"docker.io/library/app-{i}:1.*\""),
                format!("docker.io/library/app-{i}:1.*"),
            ),
        };
        text.push_str(&format!("    - {pattern}\n"));
        globs.push(glob);
    }
    text.push_str("    - deny: \"*.untrusted.example/**\"\n");
    globs.push("*.untrusted.example/**".to_owned());
    text.push_str("    - allow: \"**/vetted-*\"\n");
    globs.push("**/vetted-*:*".to_owned());
    text.push_str("    - deny: \"**:latest\"\n      message: pin a version\n");
    globs.push("**:latest".to_owned());
    (text, globs)
}

/// The references a busy gateway sees: official, community, organisation,
/// other registries, pinned, look-alikes.
fn images() -> Vec<String> {
    let digest = "sha256:e6693c20186f837fc393390135d8a598a96a833917917789d63766cab6c59582";
    let mut out = Vec::new();
    for k in 0..8 {
        out.push(format!("nginx:1.2{k}"));
        out.push(format!("docker.io/library/redis:7.{k}"));
        out.push(format!("someuser{k}/custom-image:{k}"));
        out.push(format!("docker.io/vendor-{}/tool-{}:2", k * 4, k * 4));
        out.push(format!("ghcr.io/corp/app-{k}:1.{k}"));
        out.push(format!("ghcr.io/corp/legacy-{}-x:3", k * 4 + 1));
        out.push(format!("quay.io/partner-{}/img@{digest}", k * 4 + 2));
        out.push(format!("registry.corp.example/team-{k}/svc:{k}.0"));
        out.push(format!("evil{k}.io/x:1"));
        out.push(format!("corp/app-{k}:1"));
        out.push(format!("bitnami/postgresql:16.{k}"));
        out.push(format!("ghcr.io/corporate/app-{k}:1"));
    }
    out
}

fn load(rules: usize) -> (Policy, Vec<String>) {
    let (text, globs) = policy_text(rules);
    (Policy::load(&text).expect("bench policy loads"), globs)
}

fn globset(globs: &[String]) -> GlobSet {
    let mut b = GlobSetBuilder::new();
    for g in globs {
        b.add(
            GlobBuilder::new(g)
                .literal_separator(true)
                .build()
                .expect("glob"),
        );
    }
    b.build().expect("globset")
}

/// Runs `f` over `items` in a loop and returns the time per call.
fn per_call<T>(items: &[T], rounds: usize, mut f: impl FnMut(&T)) -> Duration {
    let start = Instant::now();
    for _ in 0..rounds {
        for item in items {
            f(item);
        }
    }
    start.elapsed() / u32::try_from(rounds * items.len()).expect("small")
}

/// Interleaves batches of `a` and `b` and returns the median of per-batch
/// time(a) / time(b).
fn ratio(mut a: impl FnMut() -> Duration, mut b: impl FnMut() -> Duration, batches: usize) -> f64 {
    let mut ratios: Vec<f64> = (0..batches)
        .map(|_| {
            let ta = a().as_secs_f64();
            let tb = b().as_secs_f64();
            ta / tb
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    ratios[ratios.len() / 2]
}

fn report(what: &str, value: f64, aim: &str, met: bool) {
    println!(
        "{what:<72} {value:>6.2}x  (aim: {aim}) {}",
        if met { "ok" } else { "MISSED" }
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let images = images();
    let (realistic, globs) = load(100);
    let (small, _) = load(10);
    let (big, _) = load(10_000);
    let set = globset(&globs);
    // The globset side matches already-normalised strings: parsing is ours alone.
    let normalised: Vec<String> = images
        .iter()
        .map(|i| Reference::parse(i).expect("valid").to_string())
        .collect();

    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(if quick { 200 } else { 1000 }))
        .measurement_time(Duration::from_secs(if quick { 1 } else { 3 }))
        .configure_from_args();
    let mut i = 0usize;
    c.bench_function("decide/realistic_100_rules", |b| {
        b.iter(|| {
            i = (i + 1) % images.len();
            black_box(decide(&realistic, &Input::image(&images[i])))
        })
    });
    let mut hits = Vec::new();
    c.bench_function("globset/100_globs", |b| {
        b.iter(|| {
            i = (i + 1) % normalised.len();
            set.matches_into(black_box(&normalised[i]), &mut hits);
            black_box(hits.first().copied())
        })
    });
    c.bench_function("decide/10_rules", |b| {
        b.iter(|| {
            i = (i + 1) % images.len();
            black_box(decide(&small, &Input::image(&images[i])))
        })
    });
    c.bench_function("decide/10000_rules", |b| {
        b.iter(|| {
            i = (i + 1) % images.len();
            black_box(decide(&big, &Input::image(&images[i])))
        })
    });
    c.final_summary();

    let rounds = if quick { 50 } else { 200 };
    let batches = if quick { 9 } else { 31 };
    println!("\nratios, measured in this run ({batches} interleaved batches, median):");
    let decide_all = |p: &Policy| {
        per_call(&images, rounds, |img| {
            black_box(decide(p, &Input::image(img)));
        })
    };
    let r = ratio(
        || decide_all(&realistic),
        || {
            let mut hits = Vec::new();
            per_call(&normalised, rounds, |s| {
                set.matches_into(black_box(s), &mut hits);
                black_box(hits.first().copied());
            })
        },
        batches,
    );
    report(
        "decision, realistic policy (100 rules) vs one globset match over 100 globs",
        r,
        "<= 4x",
        r <= 4.0,
    );
    let r = ratio(|| decide_all(&big), || decide_all(&small), batches);
    report(
        "decision with 10,000 rules vs 10 rules",
        r,
        "<= 3x",
        r <= 3.0,
    );

    // Throughput on two threads relative to one: each thread decides the same
    // amount; speedup = 2 * time(one thread) / time(two threads).
    let one = || decide_all(&realistic);
    let two = || {
        let start = Instant::now();
        std::thread::scope(|s| {
            let a = s.spawn(|| decide_all(&realistic));
            let b = s.spawn(|| decide_all(&realistic));
            let _ = (a.join(), b.join());
        });
        // Time per decision across both threads, so the ratio reads as a speedup.
        start.elapsed() / u32::try_from(2 * rounds * images.len()).expect("small")
    };
    let r = ratio(one, two, batches);
    report(
        "decisions on two threads vs one (throughput)",
        r,
        ">= 1.8x",
        r >= 1.8,
    );
}
