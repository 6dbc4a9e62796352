//! One AdmissionReview decision: a Deployment with three containers, parsed,
//! decided and answered, relative to the three `decide` calls it makes (the
//! baseline, measured in the same run), so the ratio is the cost of speaking
//! the protocol.
//!
//! Run: `cargo bench --bench admission` (add `-- --quick` for a short run).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use imagegate_core::{Input, Policy, decide};
use imagegate_server::state::AppState;

const POLICY: &str = include_str!("../examples/policy.yaml");

fn review() -> Vec<u8> {
    let body = serde_json::json!({
        "kind": "AdmissionReview",
        "apiVersion": "admission.k8s.io/v1",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "name": "web", "namespace": "default", "operation": "CREATE",
            "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]},
            "object": {
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "initContainers": [{"name": "setup", "image": "someuser/custom-image:1"}],
                        "containers": [
                            {"name": "web", "image": "nginx:1.25", "ports": [{"containerPort": 80}]},
                            {"name": "proxy", "image": "ghcr.io/corp/proxy:2.1"}
                        ]
                    }
                }}
            },
            "oldObject": null, "dryRun": false,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}
        }
    });
    serde_json::to_vec(&body).expect("json")
}

const IMAGES: [&str; 3] = [
    "someuser/custom-image:1",
    "nginx:1.25",
    "ghcr.io/corp/proxy:2.1",
];

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let policy = Policy::load(POLICY).expect("policy");
    let state = AppState::fixed(policy.clone(), 4 * 1024 * 1024);
    let body = review();
    // Audit records go to a tracing subscriber; none is installed here, as in a
    // server whose audit target is filtered out.
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(if quick { 200 } else { 1000 }))
        .measurement_time(Duration::from_secs(if quick { 1 } else { 3 }))
        .configure_from_args();
    c.bench_function("admission/deployment_3_containers", |b| {
        b.iter(|| {
            black_box(
                imagegate_server::admission::review(&state, black_box(&body), &mut Vec::new())
                    .is_ok(),
            )
        })
    });
    c.bench_function("decide/3_images", |b| {
        b.iter(|| {
            for image in IMAGES {
                black_box(decide(&policy, &Input::image(black_box(image))));
            }
        })
    });
    c.final_summary();

    let rounds = if quick { 200 } else { 2000 };
    let batches = if quick { 9 } else { 31 };
    let mut ratios: Vec<f64> = (0..batches)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..rounds {
                black_box(
                    imagegate_server::admission::review(&state, &body, &mut Vec::new()).is_ok(),
                );
            }
            let review = start.elapsed().as_secs_f64();
            let start = Instant::now();
            for _ in 0..rounds {
                for image in IMAGES {
                    black_box(decide(&policy, &Input::image(image)));
                }
            }
            review / start.elapsed().as_secs_f64()
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    println!(
        "\none AdmissionReview (Deployment, 3 containers) vs its 3 decide calls: {:.1}x (median of {batches} interleaved batches)",
        ratios[ratios.len() / 2]
    );
}
