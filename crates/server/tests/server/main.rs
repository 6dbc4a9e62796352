//! imagegate-server's in-process tests: the router answered with
//! `Router::oneshot`, against golden requests shaped like kube-apiserver's.

mod api;
mod bad_input;
mod client_certificate;
mod console;
mod contention;
mod deploy;
mod gateway;
mod golden;
mod token;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use imagegate_core::Policy;
use imagegate_server::state::AppState;
use tower::ServiceExt;

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// A router over the fixture policy `name`.
pub fn app(policy: &str) -> Router {
    let policy =
        imagegate_server::state::load_policy(std::path::Path::new(&format!("{FIXTURES}/{policy}")))
            .unwrap();
    app_with(policy, 4 * 1024 * 1024)
}

pub fn app_with(policy: Policy, max_body_bytes: usize) -> Router {
    imagegate_server::router(
        AppState::fixed(policy, max_body_bytes),
        Arc::new(AtomicBool::new(true)),
    )
}

/// POSTs `body` to `path` and returns the status and the body parsed as JSON
/// (or as a JSON string when it is not JSON).
pub async fn post(
    app: Router,
    path: &str,
    body: impl Into<Body>,
) -> (StatusCode, serde_json::Value) {
    let request = Request::post(path)
        .header("content-type", "application/json")
        .body(body.into())
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
    });
    (status, value)
}

pub async fn get(app: Router, path: &str) -> (StatusCode, String) {
    let response = app
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}
