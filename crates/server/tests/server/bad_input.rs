//! Bad input gets HTTP 400 in the door's own format, never a panic and never
//! an allow.

use axum::http::StatusCode;
use imagegate_core::Policy;
use serde_json::{Value, json};

use crate::{FIXTURES, app, app_with, post};

fn deployment_request() -> Value {
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{FIXTURES}/admission/deployment-create-v1.json"))
            .unwrap(),
    )
    .unwrap();
    fixture["request"].clone()
}

async fn admission_400(body: Vec<u8>, needle: &str) {
    let (status, got) = post(app("policy.yaml"), "/admission/validate", body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{got}");
    assert_eq!(got["kind"], "AdmissionReview");
    assert_eq!(got["response"]["allowed"], false, "{got}");
    assert_eq!(got["response"]["status"]["code"], 400, "{got}");
    let message = got["response"]["status"]["message"].as_str().unwrap();
    assert!(message.contains(needle), "{message}");
}

#[tokio::test]
async fn malformed_json_is_a_400_review() {
    admission_400(
        b"{\"kind\": \"AdmissionReview\",".to_vec(),
        "request body is not an AdmissionReview",
    )
    .await;
    admission_400(b"".to_vec(), "request body is not an AdmissionReview").await;
    admission_400(b"[]".to_vec(), "request body is not an AdmissionReview").await;
}

#[tokio::test]
async fn a_wrong_api_version_or_kind_is_a_400_review() {
    let mut r = deployment_request();
    r["apiVersion"] = json!("admission.k8s.io/v2");
    admission_400(
        serde_json::to_vec(&r).unwrap(),
        "expected kind AdmissionReview",
    )
    .await;
    let mut r = deployment_request();
    r["kind"] = json!("ImageReview");
    admission_400(serde_json::to_vec(&r).unwrap(), "got kind \"ImageReview\"").await;
}

#[tokio::test]
async fn a_missing_request_is_a_400_review_in_the_version_asked() {
    let body = json!({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1beta1"});
    let (status, got) = post(
        app("policy.yaml"),
        "/admission/validate",
        serde_json::to_vec(&body).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(got["apiVersion"], "admission.k8s.io/v1beta1");
    assert_eq!(
        got["response"]["status"]["message"],
        "AdmissionReview has no request"
    );
}

#[tokio::test]
async fn a_five_megabyte_body_is_refused_before_it_is_parsed() {
    let mut r = deployment_request();
    r["request"]["object"]["metadata"]["annotations"]["big"] = json!("x".repeat(5 * 1024 * 1024));
    admission_400(
        serde_json::to_vec(&r).unwrap(),
        "request body is larger than the 4194304 bytes accepted",
    )
    .await;
}

#[tokio::test]
async fn a_non_utf8_body_is_a_400_review() {
    let mut body = serde_json::to_vec(&deployment_request()).unwrap();
    let at = body.windows(6).position(|w| w == b"nginx:").unwrap();
    body[at] = 0xff;
    admission_400(body, "request body is not an AdmissionReview").await;
}

#[tokio::test]
async fn a_container_without_a_readable_image_is_refused_not_skipped() {
    let mut r = deployment_request();
    r["request"]["object"]["spec"]["template"]["spec"]["containers"][0]["image"] = json!(42);
    let (status, got) = post(
        app("policy.yaml"),
        "/admission/validate",
        serde_json::to_vec(&r).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["response"]["allowed"], false);
    assert_eq!(
        got["response"]["status"]["message"],
        "imagegate cannot inspect the object: spec.template.spec.containers[0].image: image must be a string"
    );
}

#[tokio::test]
async fn deletes_are_allowed_without_inspection() {
    let mut r = deployment_request();
    r["request"]["operation"] = json!("DELETE");
    r["request"]["oldObject"] = r["request"]["object"].take();
    let (status, got) = post(
        app("policy.yaml"),
        "/admission/validate",
        serde_json::to_vec(&r).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["response"]["allowed"], true, "{got}");
}

#[tokio::test]
async fn bad_image_reviews_are_400_image_reviews() {
    for (body, needle) in [
        (b"not json".to_vec(), "request body is not an ImageReview"),
        (br#"{"apiVersion":"imagepolicy.k8s.io/v1","kind":"ImageReview","spec":{}}"#.to_vec(), "expected kind ImageReview in imagepolicy.k8s.io/v1alpha1"),
        (br#"{"apiVersion":"imagepolicy.k8s.io/v1alpha1","kind":"ImageReview","spec":{"containers":[{"image":7}]}}"#.to_vec(), "request body is not an ImageReview"),
        (vec![b'{'; 5 * 1024 * 1024], "request body is larger than"),
    ] {
        let (status, got) = post(app("policy.yaml"), "/imagepolicy", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{got}");
        assert_eq!(got["kind"], "ImageReview");
        assert_eq!(got["status"]["allowed"], false);
        let reason = got["status"]["reason"].as_str().unwrap();
        assert!(reason.contains(needle), "{reason}");
    }
}

#[tokio::test]
async fn the_body_limit_is_configurable() {
    let body = serde_json::to_vec(&deployment_request()).unwrap();
    let (status, _) = post(
        app_with(Policy::default(), 1024),
        "/admission/validate",
        body,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
