//! The token endpoint over HTTP, as docker, podman and skopeo call it.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use http_body_util::BodyExt;
use imagegate_server::identity::Identity;
use imagegate_server::store::SqliteStore;
use imagegate_server::token::{Signer, TokenService, http};
use serde_json::Value;
use tower::ServiceExt;

fn setup() -> (Router, Arc<TokenService>, String) {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap();
    let dir = std::env::temp_dir().join(format!("imagegate-token-http-{}", u64::from_le_bytes(b)));
    let identity = Identity::new(Arc::new(SqliteStore::open(&dir).unwrap()));
    identity
        .create_user("alice", "correct horse battery")
        .unwrap();
    let pat = identity
        .create_token("alice", "laptop", None)
        .unwrap()
        .secret;
    let service = Arc::new(TokenService::new(
        identity,
        Signer::load_or_create(&dir).unwrap(),
        "gateway.corp.example",
    ));
    (http::routes(service.clone()), service, pat)
}

async fn send(app: Router, request: Request<Body>) -> (StatusCode, Option<String>, Value) {
    let response = app.oneshot(request).await.unwrap();
    let status = response.status();
    let www = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        www,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn basic(user: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"))
    )
}

#[tokio::test]
async fn docker_style_get_with_basic_credentials_gets_a_pull_token() {
    let (app, service, pat) = setup();
    let request = Request::get("/token?account=alice&scope=repository%3Alibrary%2Fnginx%3Apull%2Cpush&scope=registry%3Acatalog%3A*&service=gateway.corp.example")
        .header("authorization", basic("alice", &pat))
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = send(app, request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token"], body["access_token"]);
    assert_eq!(body["expires_in"], 300);
    let claims = service.verify(body["token"].as_str().unwrap()).unwrap();
    assert_eq!(claims.sub, "alice");
    assert!(claims.may_pull("library/nginx"));
    assert_eq!(
        claims.access.len(),
        1,
        "push and catalog are never granted: {:?}",
        claims.access
    );
}

#[tokio::test]
async fn oauth2_password_grant_works_and_other_grants_are_refused() {
    let (app, service, pat) = setup();
    let form = format!(
        "grant_type=password&username=alice&password={pat}&scope=repository%3Acorp%2Fapp%3Apull&service=gateway.corp.example&client_id=podman"
    );
    let request = Request::post("/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(form))
        .unwrap();
    let (status, _, body) = send(app.clone(), request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        service
            .verify(body["access_token"].as_str().unwrap())
            .unwrap()
            .may_pull("corp/app")
    );
    let request = Request::post("/token")
        .body(Body::from("grant_type=refresh_token&refresh_token=x"))
        .unwrap();
    let (status, _, body) = send(app, request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "unsupported_grant_type");
}

#[tokio::test]
async fn wrong_credentials_get_401_with_a_clear_message() {
    let (app, _, _) = setup();
    for (auth, message) in [
        (
            basic("alice", "correct horse battery"),
            "sign in with a personal access token, not the account password",
        ),
        (
            basic("alice", "igpat_wrong"),
            "invalid username or personal access token",
        ),
        (
            "Bearer abc".to_owned(),
            "the token endpoint takes Basic credentials",
        ),
        ("Basic !!!".to_owned(), "Basic credentials are not base64"),
    ] {
        let request = Request::get("/token?scope=repository%3Alibrary%2Fnginx%3Apull")
            .header("authorization", auth)
            .body(Body::empty())
            .unwrap();
        let (status, www, body) = send(app.clone(), request).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(www.as_deref(), Some("Basic realm=\"imagegate\""));
        assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");
        assert_eq!(body["errors"][0]["message"], message);
    }
}

#[tokio::test]
async fn anonymous_requests_get_a_token_with_no_access() {
    let (app, service, _) = setup();
    let (status, _, body) = send(
        app,
        Request::get("/token?scope=repository%3Alibrary%2Fnginx%3Apull")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        service
            .verify(body["token"].as_str().unwrap())
            .unwrap()
            .access
            .is_empty()
    );
}
