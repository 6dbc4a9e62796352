//! With an admission client CA, the admission doors answer only a connection
//! that presented a verified client certificate, and refuse others in their
//! own format; the rest of the router needs none. (The handshake itself is
//! exercised over real TLS in tests/e2e/serve.rs.)

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum_server::tls::TlsInfo;
use http_body_util::BodyExt;
use imagegate_server::apiserver::CERTIFICATE_REQUIRED;
use imagegate_server::state::AppState;
use serde_json::Value;
use tower::ServiceExt;

use crate::FIXTURES;

fn app_requiring_client_certificates() -> Router {
    let policy = imagegate_server::state::load_policy(std::path::Path::new(&format!(
        "{FIXTURES}/policy.yaml"
    )))
    .unwrap();
    let mut state = AppState::fixed(policy, 4 * 1024 * 1024);
    state.require_client_certificate = true;
    imagegate_server::router(state, Arc::new(AtomicBool::new(true)))
}

fn fixture(path: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(format!("{FIXTURES}/{path}")).unwrap()).unwrap()
}

/// POSTs the fixture's request to `path`, with `tls` as the connection's TLS
/// session when given; returns the status and the JSON body.
async fn post(path: &str, fixture_name: &str, tls: Option<TlsInfo>) -> (StatusCode, Value, Value) {
    let f = fixture(fixture_name);
    let mut request = Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(&f["request"]).unwrap()))
        .unwrap();
    if let Some(tls) = tls {
        request.extensions_mut().insert(Arc::new(tls));
    }
    let response = app_requiring_client_certificates()
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap(),
        f["response"].clone(),
    )
}

fn session(peer_certificates: Vec<Vec<u8>>) -> TlsInfo {
    let mut tls = TlsInfo::default();
    tls.peer_certificates = peer_certificates;
    tls
}

#[tokio::test]
async fn an_admission_review_without_a_client_certificate_gets_a_401_admission_review() {
    for tls in [None, Some(session(Vec::new()))] {
        let (status, got, _) = post(
            "/admission/validate",
            "admission/deployment-create-v1.json",
            tls,
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{got}");
        assert_eq!(got["kind"], "AdmissionReview");
        assert_eq!(got["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(got["response"]["allowed"], false);
        assert_eq!(got["response"]["status"]["code"], 401);
        assert_eq!(got["response"]["status"]["reason"], "Unauthorized");
        assert_eq!(
            got["response"]["status"]["message"],
            "a client certificate from the configured admission client CA (--admission-client-ca) is required"
        );
        assert_eq!(got["response"]["status"]["message"], CERTIFICATE_REQUIRED);
    }
}

#[tokio::test]
async fn an_image_review_without_a_client_certificate_gets_a_401_image_review() {
    let (status, got, _) = post("/imagepolicy", "imagepolicy/allowed.json", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{got}");
    assert_eq!(got["kind"], "ImageReview");
    assert_eq!(got["apiVersion"], "imagepolicy.k8s.io/v1alpha1");
    assert_eq!(got["status"]["allowed"], false);
    assert_eq!(
        got["status"]["reason"],
        "a client certificate from the configured admission client CA (--admission-client-ca) is required"
    );
}

#[tokio::test]
async fn a_connection_that_presented_a_verified_certificate_gets_the_usual_answers() {
    let (status, got, want) = post(
        "/admission/validate",
        "admission/deployment-create-v1.json",
        Some(session(vec![b"DER".to_vec()])),
    )
    .await;
    assert_eq!((status, &got), (StatusCode::OK, &want));
    let (status, got, want) = post(
        "/imagepolicy",
        "imagepolicy/denied.json",
        Some(session(vec![b"DER".to_vec()])),
    )
    .await;
    assert_eq!((status, &got), (StatusCode::OK, &want));
}

#[tokio::test]
async fn health_and_metrics_need_no_client_certificate() {
    for path in ["/healthz", "/readyz", "/metrics"] {
        let response = app_requiring_client_certificates()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
}
