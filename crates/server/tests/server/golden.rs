//! Golden reviews: every fixture under tests/fixtures/{admission,imagepolicy}
//! holds a request shaped as kube-apiserver sends it and the full response
//! expected, written by hand (tests/fixtures/generate.py), not captured.

use axum::http::StatusCode;
use serde_json::Value;

use crate::{FIXTURES, app, get, post};

async fn run_dir(dir: &str, path: &str, at_least: usize) {
    let mut entries: Vec<_> = std::fs::read_dir(format!("{FIXTURES}/{dir}"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    entries.sort();
    assert!(
        entries.len() >= at_least,
        "{dir} has {} fixtures",
        entries.len()
    );
    let mut failures = Vec::new();
    for file in &entries {
        let fixture: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        let policy = fixture["policy"].as_str().unwrap();
        let request = serde_json::to_vec(&fixture["request"]).unwrap();
        let (status, got) = post(app(policy), path, request).await;
        if status != StatusCode::OK || got != fixture["response"] {
            failures.push(format!(
                "{}: status {status}\n  expected {}\n  got      {}",
                file.display(),
                fixture["response"],
                got
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} fixtures differ:\n{}",
        failures.len(),
        entries.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn admission_reviews_get_the_full_expected_response() {
    run_dir("admission", "/admission/validate", 22).await;
}

#[tokio::test]
async fn image_reviews_get_the_full_expected_response() {
    run_dir("imagepolicy", "/imagepolicy", 9).await;
}

#[tokio::test]
async fn kubectl_debug_on_kubernetes_1_22_is_refused_like_the_subresource_not_waved_through() {
    // Kubernetes 1.16 to 1.22 send pods/ephemeralcontainers as kind
    // EphemeralContainers, its list at the top of the object.
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{FIXTURES}/admission/ephemeralcontainers-kind-v1.json"
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        fixture["request"]["request"]["kind"]["kind"],
        "EphemeralContainers"
    );
    let (status, got) = post(
        app("policy.yaml"),
        "/admission/validate",
        serde_json::to_vec(&fixture["request"]).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["response"]["allowed"], false);
    assert_eq!(
        got["response"]["warnings"],
        Value::Null,
        "no not-inspected warning"
    );
    assert_eq!(got["response"]["status"]["code"], 403);
    assert_eq!(
        got["response"]["status"]["message"],
        r#"ephemeralContainers[0] (debugger-x7k2p) image "someuser/toolbox:latest": image access denied: community images not allowed"#
    );
}

#[tokio::test]
async fn the_refusal_names_the_container_path_and_the_contract_message() {
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{FIXTURES}/admission/deployment-create-v1.json"))
            .unwrap(),
    )
    .unwrap();
    let (_, got) = post(
        app("policy.yaml"),
        "/admission/validate",
        serde_json::to_vec(&fixture["request"]).unwrap(),
    )
    .await;
    assert_eq!(got["response"]["allowed"], false);
    assert_eq!(
        got["response"]["uid"],
        "705ab4f5-6393-11e8-b7cc-42010a800002"
    );
    assert_eq!(got["response"]["status"]["code"], 403);
    assert_eq!(
        got["response"]["status"]["message"],
        r#"spec.template.spec.initContainers[0] (setup) image "someuser/custom-image:1": image access denied: community images not allowed"#
    );
}

/// The operator reads which image it was from the refusal alone, at both
/// Kubernetes doors, with the core's words verbatim at the end.
#[tokio::test]
async fn the_refusal_names_the_image_at_both_admission_doors() {
    let pod = serde_json::json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "u-3", "operation": "CREATE", "namespace": "default",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "userInfo": {"username": "alice"},
            "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                "spec": {"containers": [
                    {"name": "c0", "image": "nginx:1.25"},
                    {"name": "c1", "image": "ghcr.io/corp/proxy:2"},
                    {"name": "c2", "image": "someuser/miner"}
                ]}}
        }
    });
    let (_, got) = post(
        app("policy.yaml"),
        "/admission/validate",
        serde_json::to_vec(&pod).unwrap(),
    )
    .await;
    assert_eq!(
        got["response"]["status"]["message"],
        r#"spec.containers[2] (c2) image "someuser/miner": image access denied: community images not allowed"#
    );

    let review = serde_json::json!({
        "apiVersion": "imagepolicy.k8s.io/v1alpha1", "kind": "ImageReview",
        "spec": {"namespace": "default", "containers": [
            {"image": "nginx:1.25"}, {"image": "ghcr.io/corp/proxy:2"}, {"image": "someuser/miner"}
        ]}
    });
    let (_, got) = post(
        app("policy.yaml"),
        "/imagepolicy",
        serde_json::to_vec(&review).unwrap(),
    )
    .await;
    assert_eq!(got["status"]["allowed"], false);
    assert_eq!(
        got["status"]["reason"],
        r#"spec.containers[2] image "someuser/miner": image access denied: community images not allowed"#
    );
}

#[tokio::test]
async fn decisions_are_counted_in_metrics_by_door_reason_and_mode() {
    let app = app("policy.yaml");
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{FIXTURES}/imagepolicy/denied.json")).unwrap(),
    )
    .unwrap();
    let _ = post(
        app.clone(),
        "/imagepolicy",
        serde_json::to_vec(&fixture["request"]).unwrap(),
    )
    .await;
    let (status, text) = get(app, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        text.contains(r#"imagegate_decisions_total{door="imagepolicy",decision="deny",reason="category_not_allowed",mode="enforce"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"imagegate_request_duration_seconds_count{door="imagepolicy"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn health_and_readiness_answer() {
    assert_eq!(get(app("policy.yaml"), "/healthz").await.0, StatusCode::OK);
    assert_eq!(get(app("policy.yaml"), "/readyz").await.0, StatusCode::OK);
    assert_eq!(
        get(app("policy.yaml"), "/nope").await.0,
        StatusCode::NOT_FOUND
    );
}
