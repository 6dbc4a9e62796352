//! The REST API under /api/v1, answered in process: Bearer PATs, the error
//! shape, owner/member permissions, cross-organisation refusals, structured
//! image and registry access edits, the record of changes, and the OpenAPI
//! document covering every route.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use imagegate_server::api::{self, Api};
use imagegate_server::identity::Identity;
use imagegate_server::store::{Role, SqliteStore, Store};
use serde_json::{Value, json};
use tower::ServiceExt;

struct Setup {
    app: Router,
    identity: Identity,
    /// Owner of corp.
    olga: String,
    /// Member of corp.
    alice: String,
    /// Owner of rival, in no way part of corp.
    rita: String,
}

fn setup() -> Setup {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap();
    let dir = std::env::temp_dir().join(format!("imagegate-api-{}", u64::from_le_bytes(b)));
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir).unwrap());
    let identity = Identity::new(store.clone());
    identity.create_org("corp", &["corp".to_owned()]).unwrap();
    identity.create_org("rival", &["rival".to_owned()]).unwrap();
    let mut pats = Vec::new();
    for (user, org, role) in [
        ("olga", "corp", Role::Owner),
        ("alice", "corp", Role::Member),
        ("rita", "rival", Role::Owner),
    ] {
        identity.create_user(user, "correct horse battery").unwrap();
        store.set_member(org, user, role).unwrap();
        pats.push(identity.create_token(user, "api", None).unwrap().secret);
    }
    let [olga, alice, rita] = <[String; 3]>::try_from(pats).unwrap();
    Setup {
        app: api::routes(Arc::new(Api::new(identity.clone()))),
        identity,
        olga,
        alice,
        rita,
    }
}

impl Setup {
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            request = request.header("authorization", format!("Bearer {t}"));
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let www = response.headers().get("www-authenticate").cloned();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value: Value = if status == StatusCode::NO_CONTENT {
            assert!(bytes.is_empty());
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
        };
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(www.unwrap(), r#"Bearer realm="imagegate""#);
        }
        (status, value)
    }

    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    async fn put(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, Some(token), Some(&body.to_string()))
            .await
    }
}

fn error(body: &Value) -> (&str, &str) {
    (
        body["error"]["code"].as_str().unwrap_or_default(),
        body["error"]["message"].as_str().unwrap_or_default(),
    )
}

#[tokio::test]
async fn the_api_takes_a_personal_access_token_as_bearer_and_says_who_you_are() {
    let s = setup();
    let (status, me) = s.get("/api/v1/me", &s.olga).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        me,
        json!({"user": "olga", "organisations": [{"name": "corp", "role": "owner"}], "administrator": false})
    );

    let (status, body) = s.call(Method::GET, "/api/v1/me", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error(&body).0, "unauthorized");
    let (status, body) = s.get("/api/v1/me", "igpat_not-a-real-token").await;
    assert_eq!(
        (status, error(&body)),
        (
            StatusCode::UNAUTHORIZED,
            ("unauthorized", "invalid personal access token")
        )
    );
    // The account password is no bearer token.
    let (status, _) = s.get("/api/v1/me", "correct horse battery").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A revoked token stops working at once.
    let id = s.identity.store().tokens("alice").unwrap()[0].id.clone();
    s.identity.revoke_token("alice", &id).unwrap();
    let (status, body) = s.get("/api/v1/me", &s.alice).await;
    assert_eq!(
        (status, error(&body).1),
        (
            StatusCode::UNAUTHORIZED,
            "this personal access token was revoked"
        )
    );
}

#[tokio::test]
async fn every_api_answer_tells_browsers_not_to_sniff_its_type() {
    let s = setup();
    let answers = [
        (Method::GET, "/api/v1/me", Some(&s.olga), None),
        (Method::GET, "/api/v1/me", None, None),
        (Method::GET, "/api/v1/no-such-path", Some(&s.olga), None),
        (Method::GET, "/api/v1/openapi.json", None, None),
        (
            Method::PUT,
            "/api/v1/orgs/corp/image-access",
            Some(&s.olga),
            Some("{not json"),
        ),
    ];
    for (method, path, token, body) in answers {
        let mut request = Request::builder().method(method.clone()).uri(path);
        if let Some(t) = token {
            request = request.header("authorization", format!("Bearer {t}"));
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let response = s
            .app
            .clone()
            .oneshot(
                request
                    .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
                    .unwrap(),
            )
            .await
            .unwrap();
        let what = format!("{method} {path}: {}", response.status());
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/"),
            "{what}"
        );
        assert_eq!(
            response
                .headers()
                .get("x-content-type-options")
                .map(|v| v.to_str().unwrap()),
            Some("nosniff"),
            "{what}"
        );
    }
}

#[tokio::test]
async fn members_see_image_access_read_only_and_their_changes_are_refused() {
    let s = setup();
    let (status, view) = s.get("/api/v1/orgs/corp/image-access", &s.alice).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        view,
        json!({
            "org": "corp",
            "enabled": false,
            "categories": {"organization": true, "official": true, "verified_publisher": true, "community": false},
            "organization_namespaces": ["corp"],
            "verified_publishers": [],
            "editable": false
        }),
        "off by default; when switched on, community is off"
    );
    let before = s.identity.org("corp").unwrap().policy;
    let update = json!({"enabled": true, "categories": {"official": true, "verified_publisher": true, "community": true}});
    let (status, body) = s
        .put("/api/v1/orgs/corp/image-access", &s.alice, update.clone())
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        error(&body),
        (
            "forbidden",
            "only owners of corp can change its image access; members see it read-only"
        )
    );
    for (path, body) in [
        (
            "/api/v1/orgs/corp/registry-access",
            json!({"enabled": true, "allow": ["docker.io"]}),
        ),
        ("/api/v1/orgs/corp/policy", json!({"yaml": before.clone()})),
    ] {
        let (status, _) = s.put(path, &s.alice, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(
        s.identity.org("corp").unwrap().policy,
        before,
        "nothing changed"
    );
    assert!(
        s.identity
            .store()
            .policy_changes("corp", 10)
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn an_owner_switches_image_access_on_and_the_policy_and_the_record_follow() {
    let s = setup();
    let update = json!({"enabled": true, "categories": {"official": true, "verified_publisher": false, "community": false}, "verified_publishers": ["bitnami"]});
    let (status, view) = s
        .put("/api/v1/orgs/corp/image-access", &s.olga, update)
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["enabled"], true);
    assert_eq!(
        view["categories"],
        json!({"organization": true, "official": true, "verified_publisher": false, "community": false})
    );
    assert_eq!(view["verified_publishers"], json!(["bitnami"]));
    assert_eq!(
        view["organization_namespaces"],
        json!(["corp"]),
        "kept when not given"
    );
    // The stored policy decides accordingly.
    let policy = imagegate_core::Policy::load(&s.identity.org("corp").unwrap().policy).unwrap();
    let decide = |image: &str| {
        imagegate_core::decide(
            &policy,
            &imagegate_core::Input {
                image,
                namespace: None,
                user: None,
                break_glass: false,
                owner: false,
            },
        )
    };
    assert_eq!(
        decide("someuser/custom-image:1").message,
        "image access denied: community images not allowed"
    );
    assert_eq!(
        decide("bitnami/redis:7").message,
        "image access denied: verified publisher images not allowed"
    );
    assert!(decide("corp/app:1").is_allowed());
    assert!(decide("nginx:1.27").is_allowed());
    // The change is recorded: who, what, before and after.
    let (status, changes) = s.get("/api/v1/orgs/corp/changes", &s.alice).await;
    assert_eq!(status, StatusCode::OK);
    let changes = changes.as_array().unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(
        (&changes[0]["user"], &changes[0]["what"]),
        (&json!("olga"), &json!("image_access"))
    );
    assert!(
        changes[0]["before"]
            .as_str()
            .unwrap()
            .contains("enabled: false")
    );
    assert!(
        changes[0]["after"]
            .as_str()
            .unwrap()
            .contains("enabled: true")
    );
    // Organisation images cannot be switched off.
    let off = json!({"enabled": true, "categories": {"organization": false, "official": true, "verified_publisher": true, "community": false}});
    let (status, body) = s.put("/api/v1/orgs/corp/image-access", &s.olga, off).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error(&body).0, "invalid");
}

#[tokio::test]
async fn registry_access_entries_are_checked_with_the_policy_pattern_rules() {
    let s = setup();
    let bad = json!({"enabled": true, "allow": ["docker.io", "ghcr.io/Corp", "ghcr.io/corp"]});
    let (status, body) = s
        .put("/api/v1/orgs/corp/registry-access", &s.olga, bad)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["details"][0]["path"], "allow[1]");
    assert!(
        body["error"]["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("ghcr.io/Corp")
    );
    assert_eq!(body["error"]["details"].as_array().unwrap().len(), 1);

    let good = json!({"enabled": true, "allow": ["docker.io", "ghcr.io/corp"]});
    let (status, view) = s
        .put("/api/v1/orgs/corp/registry-access", &s.olga, good)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        view,
        json!({"org": "corp", "enabled": true, "allow": ["docker.io", "ghcr.io/corp"], "editable": true})
    );
    let policy = imagegate_core::Policy::load(&s.identity.org("corp").unwrap().policy).unwrap();
    let d = imagegate_core::decide(
        &policy,
        &imagegate_core::Input {
            image: "ghcr.io/corporate/app:1",
            namespace: None,
            user: None,
            break_glass: false,
            owner: false,
        },
    );
    assert_eq!(d.message, "registry access to ghcr.io is not allowed");
}

#[tokio::test]
async fn a_policy_that_does_not_load_is_refused_with_each_problem_and_where() {
    let s = setup();
    let broken = "apiVersion: imagegate.dev/v1\nkind: ImagePolicy\nmetadata:\n  name: corp\nspec:\n  mode: sometimes\n";
    let (status, body) = s
        .put("/api/v1/orgs/corp/policy", &s.olga, json!({"yaml": broken}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error(&body), ("invalid", "the policy does not load"));
    let detail = &body["error"]["details"][0];
    assert_eq!(
        (&detail["path"], &detail["line"]),
        (&json!("spec.mode"), &json!(6))
    );

    let good = broken.replace("sometimes", "warn");
    let (status, view) = s
        .put("/api/v1/orgs/corp/policy", &s.olga, json!({"yaml": good}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["yaml"], good);
    assert_eq!(view["editable"], true);
    let (_, view) = s.get("/api/v1/orgs/corp/policy", &s.alice).await;
    assert_eq!(
        (&view["yaml"], &view["editable"]),
        (&json!(good), &json!(false))
    );
}

#[tokio::test]
async fn another_organisations_owner_can_neither_see_nor_touch_it() {
    let s = setup();
    for path in [
        "/api/v1/orgs/corp",
        "/api/v1/orgs/corp/policy",
        "/api/v1/orgs/corp/image-access",
        "/api/v1/orgs/corp/registry-access",
        "/api/v1/orgs/corp/members",
        "/api/v1/orgs/corp/changes",
    ] {
        let (status, body) = s.get(path, &s.rita).await;
        assert_eq!(
            (status, error(&body)),
            (
                StatusCode::NOT_FOUND,
                ("not_found", "organisation corp not found")
            ),
            "{path}"
        );
    }
    let update = json!({"enabled": true, "categories": {"official": true, "verified_publisher": true, "community": true}});
    let (status, _) = s
        .put("/api/v1/orgs/corp/image-access", &s.rita, update)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Exactly as for an organisation that does not exist.
    let (status, body) = s.get("/api/v1/orgs/nosuch", &s.rita).await;
    assert_eq!(
        (status, error(&body).1),
        (StatusCode::NOT_FOUND, "organisation nosuch not found")
    );
    let (status, members) = s.get("/api/v1/orgs/corp/members", &s.alice).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        members,
        json!([{"name": "alice", "role": "member"}, {"name": "olga", "role": "owner"}])
    );
}

#[tokio::test]
async fn bad_bodies_and_unknown_paths_are_answered_in_the_api_error_shape() {
    let s = setup();
    let path = "/api/v1/orgs/corp/image-access";
    for body in [
        "{not json",
        r#"{"enabled": "yes", "categories": {}}"#,
        r#"{"enabled": true, "categories": {"official": true, "verified_publisher": true, "community": false}, "extra": 1}"#,
    ] {
        let (status, value) = s.call(Method::PUT, path, Some(&s.olga), Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(error(&value).0, "bad_request");
        assert!(!error(&value).1.is_empty());
    }
    let (status, value) = s.get("/api/v1/no/such/thing", &s.olga).await;
    assert_eq!(
        (status, error(&value).0),
        (StatusCode::NOT_FOUND, "not_found")
    );
}

#[tokio::test]
async fn the_openapi_document_covers_every_route_with_bearer_or_session_security() {
    let s = setup();
    let (status, doc) = s
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let mut operations: Vec<String> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            operations.push(format!("{} {path}", method.to_uppercase()));
            assert_eq!(
                op["security"],
                json!([{"bearer": []}, {"session": []}]),
                "{method} {path}"
            );
            assert!(
                op["responses"]["401"].is_object(),
                "{method} {path} documents 401"
            );
        }
    }
    operations.sort();
    assert_eq!(
        operations,
        [
            "DELETE /api/v1/orgs/{org}/access-requests/{id}",
            "DELETE /api/v1/orgs/{org}/members/{user}",
            "DELETE /api/v1/tokens/{id}",
            "GET /api/v1/me",
            "GET /api/v1/orgs/{org}",
            "GET /api/v1/orgs/{org}/access-requests",
            "GET /api/v1/orgs/{org}/access-requests/{id}",
            "GET /api/v1/orgs/{org}/audit",
            "GET /api/v1/orgs/{org}/changes",
            "GET /api/v1/orgs/{org}/image-access",
            "GET /api/v1/orgs/{org}/insights",
            "GET /api/v1/orgs/{org}/members",
            "GET /api/v1/orgs/{org}/policy",
            "GET /api/v1/orgs/{org}/registry-access",
            "GET /api/v1/tokens",
            "POST /api/v1/orgs",
            "POST /api/v1/orgs/{org}/access-requests",
            "POST /api/v1/orgs/{org}/access-requests/{id}/approve",
            "POST /api/v1/orgs/{org}/access-requests/{id}/decline",
            "POST /api/v1/tokens",
            "PUT /api/v1/orgs/{org}/image-access",
            "PUT /api/v1/orgs/{org}/members/{user}",
            "PUT /api/v1/orgs/{org}/policy",
            "PUT /api/v1/orgs/{org}/registry-access",
        ]
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["session"],
        json!({"type": "apiKey", "in": "cookie", "name": "imagegate_session",
            "description": "The console's session cookie; a change also sends the session's CSRF token in X-CSRF-Token"})
    );
    // Every documented operation is served: none answers "no such API path".
    for op in &operations {
        let (method, path) = op.split_once(' ').unwrap();
        let path = path
            .replace("{org}", "corp")
            .replace("{user}", "alice")
            .replace("{id}", "7");
        let body = (method == "PUT" || method == "POST").then_some("{}");
        let (status, value) = s
            .call(method.parse().unwrap(), &path, Some(&s.olga), body)
            .await;
        assert_ne!(error(&value).1, "no such API path", "{op}: {status}");
    }
}

#[tokio::test]
async fn owners_manage_members_and_an_organisation_keeps_an_owner() {
    let s = setup();
    s.identity
        .create_user("bob", "correct horse battery")
        .unwrap();
    let member = |role: &str| json!({"role": role});
    let (status, body) = s
        .put("/api/v1/orgs/corp/members/bob", &s.olga, member("member"))
        .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"name": "bob", "role": "member"}))
    );
    let (status, _) = s
        .put("/api/v1/orgs/corp/members/bob", &s.olga, member("owner"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        s.identity
            .memberships("bob")
            .unwrap()
            .contains(&("corp".to_owned(), Role::Owner))
    );

    let (status, body) = s
        .put("/api/v1/orgs/corp/members/bob", &s.alice, member("member"))
        .await;
    assert_eq!(
        (status, error(&body).0),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    let (status, _) = s
        .put("/api/v1/orgs/corp/members/rita", &s.rita, member("owner"))
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another organisation's owner cannot add herself"
    );
    let (status, body) = s
        .put(
            "/api/v1/orgs/corp/members/nobody",
            &s.olga,
            member("member"),
        )
        .await;
    assert_eq!(
        (status, error(&body).1),
        (StatusCode::NOT_FOUND, "user nobody not found")
    );
    let (status, body) = s
        .put("/api/v1/orgs/corp/members/bob", &s.olga, member("admin"))
        .await;
    assert_eq!(
        (status, error(&body).1),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "role \"admin\" is not owner or member"
        )
    );

    let (status, _) = s
        .call(
            Method::DELETE,
            "/api/v1/orgs/corp/members/bob",
            Some(&s.olga),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = s
        .call(
            Method::DELETE,
            "/api/v1/orgs/corp/members/bob",
            Some(&s.olga),
            None,
        )
        .await;
    assert_eq!(
        (status, error(&body).1),
        (StatusCode::NOT_FOUND, "bob is not a member of corp")
    );
    for (method, body) in [
        (Method::PUT, Some(r#"{"role": "member"}"#)),
        (Method::DELETE, None),
    ] {
        let (status, value) = s
            .call(
                method,
                "/api/v1/orgs/corp/members/olga",
                Some(&s.olga),
                body,
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            error(&value).1,
            "olga is the last owner of corp: make another member an owner first"
        );
    }
    let (_, changes) = s.get("/api/v1/orgs/corp/changes", &s.alice).await;
    let seen: Vec<(&str, &str, &str)> = changes
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["what"].as_str().unwrap(),
                c["before"].as_str().unwrap(),
                c["after"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("members", "bob: owner", "bob: not a member"),
            ("members", "bob: member", "bob: owner"),
            ("members", "bob: not a member", "bob: member"),
        ]
    );
}

#[tokio::test]
async fn users_create_list_and_revoke_their_own_tokens_and_the_secret_is_shown_once() {
    let s = setup();
    let (status, created) = s
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(&s.alice),
            Some(r#"{"name": "ci", "expires_days": 30}"#),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let secret = created["token"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("igpat_"));
    assert_eq!(created["name"], "ci");
    assert!(created["expires"].is_string());
    let (status, me) = s.get("/api/v1/me", &secret).await;
    assert_eq!((status, &me["user"]), (StatusCode::OK, &json!("alice")));
    let (_, listed) = s.get("/api/v1/tokens", &s.alice).await;
    let listed = listed.as_array().unwrap();
    let names: Vec<&str> = listed.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&"ci") && names.contains(&"api"));
    assert!(
        listed.iter().all(|t| t.get("token").is_none()),
        "the secret is never listed"
    );
    assert!(!listed.iter().any(|t| t.to_string().contains(&secret)));

    let id = created["id"].as_str().unwrap();
    let (status, _) = s
        .call(
            Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            Some(&s.olga),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another user's token is not yours to revoke"
    );
    let (status, _) = s
        .call(
            Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            Some(&s.alice),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = s.get("/api/v1/me", &secret).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = s
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(&s.alice),
            Some(r#"{"name": "x", "expires_days": 0}"#),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(error(&body).1.contains("expires_days"), "{body}");
}

#[tokio::test]
async fn members_read_their_organisations_audit_log_with_filters_and_nothing_else() {
    use imagegate_server::store::AuditEvent;
    let s = setup();
    let event = |t: i64, org: &str, user: &str, image: &str, decision: &str| AuditEvent {
        time_ms: t,
        door: "gateway".into(),
        org: Some(org.into()),
        user: Some(user.into()),
        image: image.into(),
        input: image.into(),
        decision: decision.into(),
        reason: if decision == "deny" {
            "category_not_allowed"
        } else {
            "allowed"
        }
        .into(),
        mode: "enforce".into(),
        message: "m".into(),
        ..AuditEvent::default()
    };
    let now = imagegate_server::store::now_ms();
    s.identity
        .store()
        .append_audit(&[
            event(
                now - 7_200_000,
                "corp",
                "alice",
                "docker.io/someuser/old:1",
                "deny",
            ),
            event(
                now - 60_000,
                "corp",
                "alice",
                "docker.io/someuser/custom-image:1",
                "deny",
            ),
            event(
                now - 30_000,
                "corp",
                "olga",
                "docker.io/library/nginx:1.27",
                "allow",
            ),
            event(
                now - 10_000,
                "rival",
                "rita",
                "docker.io/rival/secret:1",
                "allow",
            ),
        ])
        .unwrap();
    let images = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| e["image"].as_str().unwrap().to_owned())
            .collect()
    };
    let (status, all) = s.get("/api/v1/orgs/corp/audit", &s.alice).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        images(&all),
        [
            "docker.io/someuser/old:1",
            "docker.io/someuser/custom-image:1",
            "docker.io/library/nginx:1.27"
        ],
        "oldest first, and never another organisation's"
    );
    assert_eq!(all[0]["decision"], "deny");
    assert!(all[0]["time"].as_str().unwrap().ends_with('Z'));
    let (_, refused) = s
        .get("/api/v1/orgs/corp/audit?decision=deny&since=1h", &s.alice)
        .await;
    assert_eq!(images(&refused), ["docker.io/someuser/custom-image:1"]);
    let (_, matched) = s
        .get(
            "/api/v1/orgs/corp/audit?image=docker.io/someuser/*&limit=1",
            &s.alice,
        )
        .await;
    assert_eq!(images(&matched), ["docker.io/someuser/custom-image:1"]);
    let (_, by_user) = s.get("/api/v1/orgs/corp/audit?user=olga", &s.alice).await;
    assert_eq!(images(&by_user), ["docker.io/library/nginx:1.27"]);

    for (query, code, says) in [
        (
            "decision=maybe",
            StatusCode::UNPROCESSABLE_ENTITY,
            "decision \"maybe\" is not allow or deny",
        ),
        (
            "since=yesterday",
            StatusCode::UNPROCESSABLE_ENTITY,
            "since \"yesterday\": expected RFC 3339",
        ),
        (
            "limit=0",
            StatusCode::UNPROCESSABLE_ENTITY,
            "limit 0 is not between 1 and 1000",
        ),
        ("image=Foo/Bar", StatusCode::UNPROCESSABLE_ENTITY, "image "),
        ("colour=red", StatusCode::BAD_REQUEST, "colour"),
    ] {
        let (status, body) = s
            .get(&format!("/api/v1/orgs/corp/audit?{query}"), &s.alice)
            .await;
        assert_eq!(status, code, "{query}: {body}");
        assert!(error(&body).1.contains(says), "{query}: {body}");
    }
    let (status, _) = s.get("/api/v1/orgs/corp/audit", &s.rita).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

impl Setup {
    async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(token), Some(&body.to_string()))
            .await
    }

    /// corp: image access on, official images allowed, community not.
    async fn community_off(&self) {
        let (status, _) = self
            .put(
                "/api/v1/orgs/corp/image-access",
                &self.olga,
                json!({"enabled": true, "categories": {"official": true, "verified_publisher": false, "community": false}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }

    /// What corp's policy decides for `user` (a member) pulling `image` now.
    fn decides(&self, user: &str, image: &str) -> imagegate_core::Decision {
        let policy =
            imagegate_core::Policy::load(&self.identity.org("corp").unwrap().policy).unwrap();
        imagegate_core::decide(
            &policy,
            &imagegate_core::Input {
                image,
                user: Some(user),
                ..imagegate_core::Input::default()
            },
        )
    }
}

const REQUESTS: &str = "/api/v1/orgs/corp/access-requests";

#[tokio::test]
async fn a_member_asks_for_a_refused_image_and_an_owners_approval_allows_exactly_that_repository() {
    let s = setup();
    s.community_off().await;
    assert!(!s.decides("alice", "someuser/custom-image:1").is_allowed());

    let ask = json!({"image": "someuser/custom-image:1", "reason": "the CI lint step uses it"});
    let (status, r) = s.post(REQUESTS, &s.alice, ask.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    assert_eq!(r["state"], "open");
    assert_eq!(r["user"], "alice");
    assert_eq!(r["image"], "docker.io/someuser/custom-image:1");
    assert_eq!(r["repository"], "docker.io/someuser/custom-image");
    assert_eq!(
        r["refusal"],
        "image access denied: community images not allowed"
    );
    assert_eq!(r["reason"], "the CI lint step uses it");
    let id = r["id"].as_i64().unwrap();
    // Asking again is the same request, not a second one.
    let (status, again) = s.post(REQUESTS, &s.alice, ask).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["id"], id);

    // Members see their own; owners see all; another organisation sees nothing.
    let (_, mine) = s.get(REQUESTS, &s.alice).await;
    assert_eq!(mine.as_array().unwrap().len(), 1);
    let (_, open) = s.get(&format!("{REQUESTS}?state=open"), &s.olga).await;
    assert_eq!(open[0]["id"], id);
    let (status, body) = s.get(&format!("{REQUESTS}/{id}"), &s.rita).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = s.get(&format!("{REQUESTS}?state=maybe"), &s.olga).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        error(&body).1,
        "state \"maybe\" is not one of open, approved, declined, withdrawn"
    );

    // Only owners decide.
    let (status, body) = s
        .post(&format!("{REQUESTS}/{id}/approve"), &s.alice, json!({}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        error(&body).1,
        "only owners of corp can approve or decline access requests"
    );
    let (status, _) = s
        .post(
            &format!("/api/v1/orgs/rival/access-requests/{id}/approve"),
            &s.rita,
            json!({}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "rival cannot reach corp's request by number"
    );

    let (status, done) = s
        .post(
            &format!("{REQUESTS}/{id}/approve"),
            &s.olga,
            json!({"note": "ok for CI; pin a digest"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["state"], "approved");
    assert_eq!(done["decided_by"], "olga");
    assert_eq!(done["note"], "ok for CI; pin a digest");
    // The member sees the outcome.
    let (_, seen) = s.get(&format!("{REQUESTS}/{id}"), &s.alice).await;
    assert_eq!(seen["state"], "approved");

    // Exactly that repository: any tag of it, nothing beside it.
    assert!(s.decides("alice", "someuser/custom-image:1").is_allowed());
    assert!(s.decides("alice", "someuser/custom-image:2").is_allowed());
    assert!(!s.decides("alice", "someuser/custom-image-2:1").is_allowed());
    assert!(!s.decides("alice", "someuser/other:1").is_allowed());
    let (_, changes) = s.get("/api/v1/orgs/corp/changes?limit=1", &s.olga).await;
    assert_eq!(changes[0]["user"], "olga");
    assert_eq!(changes[0]["what"], format!("access_request {id}"));
    assert!(
        changes[0]["after"]
            .as_str()
            .unwrap()
            .contains("allow: docker.io/someuser/custom-image"),
        "{}",
        changes[0]["after"]
    );

    let (status, body) = s
        .post(&format!("{REQUESTS}/{id}/decline"), &s.olga, json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        error(&body).1,
        format!("access request {id} is already approved by olga")
    );
    // Now allowed, so there is nothing to ask for.
    let (status, body) = s
        .post(
            REQUESTS,
            &s.alice,
            json!({"image": "someuser/custom-image:3", "reason": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        error(&body).1,
        "docker.io/someuser/custom-image:3 is already allowed for you in corp: there is nothing to ask for"
    );
}

#[tokio::test]
async fn owners_decline_with_a_note_requesters_withdraw_and_requests_that_cannot_help_are_refused()
{
    let s = setup();
    s.community_off().await;
    let (_, declined) = s
        .post(
            REQUESTS,
            &s.alice,
            json!({"image": "someuser/other:1", "reason": "trying it"}),
        )
        .await;
    let id = declined["id"].as_i64().unwrap();
    let (status, d) = s
        .post(
            &format!("{REQUESTS}/{id}/decline"),
            &s.olga,
            json!({"note": "use corp/other instead"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (d["state"].as_str(), d["note"].as_str()),
        (Some("declined"), Some("use corp/other instead"))
    );
    let (_, seen) = s.get(&format!("{REQUESTS}/{id}"), &s.alice).await;
    assert_eq!(seen["state"], "declined");
    assert!(!s.decides("alice", "someuser/other:1").is_allowed());

    let (_, w) = s
        .post(
            REQUESTS,
            &s.alice,
            json!({"image": "someuser/third:1", "reason": "maybe"}),
        )
        .await;
    let wid = w["id"].as_i64().unwrap();
    let (status, _) = s
        .call(
            Method::DELETE,
            &format!("{REQUESTS}/{wid}"),
            Some(&s.olga),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "only the requester withdraws"
    );
    let (status, w) = s
        .call(
            Method::DELETE,
            &format!("{REQUESTS}/{wid}"),
            Some(&s.alice),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(w["state"], "withdrawn");
    let (status, _) = s
        .post(&format!("{REQUESTS}/{wid}/approve"), &s.olga, json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    for (ask, says) in [
        (
            json!({"image": "nginx:1.27", "reason": "x"}),
            "docker.io/library/nginx:1.27 is already allowed for you in corp: there is nothing to ask for",
        ),
        (
            json!({"image": "someuser/x:1", "reason": "  "}),
            "say why you need this image: owners decide on the reason",
        ),
        (
            json!({"image": "no spaces allowed", "reason": "x"}),
            "image: ",
        ),
    ] {
        let (status, body) = s.post(REQUESTS, &s.alice, ask.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{ask}");
        assert!(error(&body).1.starts_with(says), "{ask}: {body}");
    }
    let (status, _) = s
        .post(
            REQUESTS,
            &s.alice,
            json!({"image": "x", "why": "unknown field"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // A deny rule ahead of any exception: asking cannot help, and is refused
    // with the rule's refusal.
    let policy = s.identity.org("corp").unwrap().policy.replace(
        "spec:\n",
        "spec:\n  rules:\n  - deny: docker.io/someuser/blocked\n    message: blocked by security\n",
    );
    let (status, body) = s
        .put("/api/v1/orgs/corp/policy", &s.olga, json!({"yaml": policy}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}\n{policy}");
    let (status, body) = s
        .post(
            REQUESTS,
            &s.alice,
            json!({"image": "someuser/blocked:1", "reason": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        error(&body).1,
        "an exception for docker.io/someuser/blocked would not let you pull docker.io/someuser/blocked:1: blocked by security (rule_denied). Ask an owner of corp to change the policy"
    );

    // A request the policy overtook: approving is refused, nothing changes.
    let (_, r) = s
        .post(
            REQUESTS,
            &s.alice,
            json!({"image": "someuser/late:1", "reason": "x"}),
        )
        .await;
    let late = r["id"].as_i64().unwrap();
    let policy = s.identity.org("corp").unwrap().policy.replace(
        "  rules:\n",
        "  rules:\n  - deny: docker.io/someuser/late\n",
    );
    let (status, _) = s
        .put("/api/v1/orgs/corp/policy", &s.olga, json!({"yaml": policy}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let before = s.identity.org("corp").unwrap().policy;
    let (status, body) = s
        .post(&format!("{REQUESTS}/{late}/approve"), &s.olga, json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        error(&body)
            .1
            .starts_with("approving would not let alice pull docker.io/someuser/late:1: "),
        "{body}"
    );
    assert_eq!(s.identity.org("corp").unwrap().policy, before);
    let (_, still) = s.get(&format!("{REQUESTS}/{late}"), &s.alice).await;
    assert_eq!(still["state"], "open");
}

#[tokio::test]
async fn insights_count_attempts_over_time_and_the_most_refused_images_and_people_for_owners() {
    use imagegate_server::store::AuditEvent;
    let s = setup();
    let now = imagegate_server::store::now_ms();
    let event =
        |ago_min: i64, org: &str, user: &str, image: &str, decision: &str, path: &str| AuditEvent {
            time_ms: now - ago_min * 60_000,
            door: if path.starts_with("spec.") {
                "admission"
            } else {
                "gateway"
            }
            .into(),
            org: Some(org.into()),
            user: Some(user.into()),
            image: image.into(),
            input: image.into(),
            category: Some(
                if image.contains("library/") {
                    "official"
                } else {
                    "community"
                }
                .into(),
            ),
            decision: decision.into(),
            reason: if decision == "deny" {
                "category_not_allowed"
            } else {
                "allowed"
            }
            .into(),
            mode: "enforce".into(),
            message: "m".into(),
            path: Some(path.into()),
            ..AuditEvent::default()
        };
    let custom = "docker.io/someuser/custom-image:1";
    s.identity
        .store()
        .append_audit(&[
            event(300, "corp", "alice", custom, "deny", "manifest"),
            event(200, "corp", "alice", custom, "deny", "manifest"),
            event(
                100,
                "corp",
                "dave",
                "docker.io/someuser/custom-image:2",
                "deny",
                "manifest",
            ),
            event(
                90,
                "corp",
                "alice",
                "ghcr.io/x/y:1",
                "deny",
                "spec.containers[0].image",
            ),
            event(
                50,
                "corp",
                "olga",
                "docker.io/library/nginx:1.27",
                "allow",
                "manifest",
            ),
            // A pull's blobs are part of the attempt, not attempts of their own.
            event(
                50,
                "corp",
                "olga",
                "docker.io/library/nginx:1.27",
                "allow",
                "blob",
            ),
            event(
                50,
                "corp",
                "olga",
                "docker.io/library/nginx:1.27",
                "allow",
                "blob",
            ),
            // Too old for 24h; another organisation's.
            event(60 * 30, "corp", "alice", custom, "deny", "manifest"),
            event(10, "rival", "rita", custom, "deny", "manifest"),
        ])
        .unwrap();
    let (status, i) = s.get("/api/v1/orgs/corp/insights?range=24h", &s.olga).await;
    assert_eq!(status, StatusCode::OK, "{i}");
    assert_eq!(
        (i["allowed"].as_u64(), i["refused"].as_u64()),
        (Some(1), Some(4))
    );
    assert_eq!(i["bucket_seconds"], 3600);
    let series = i["series"].as_array().unwrap();
    assert_eq!(series.len(), 24);
    let sum = |k: &str| series.iter().map(|p| p[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!((sum("allowed"), sum("refused")), (1, 4));
    assert_eq!(
        i["top_refused_images"][0],
        json!({"repository": "docker.io/someuser/custom-image", "refusals": 3, "users": 2,
            "reason": "category_not_allowed", "last": i["top_refused_images"][0]["last"]})
    );
    assert_eq!(i["top_refused_images"][1]["repository"], "ghcr.io/x/y");
    assert_eq!(
        i["top_users"],
        json!([{"name": "alice", "refusals": 3}, {"name": "dave", "refusals": 1}])
    );
    assert_eq!(
        i["by_category"],
        json!([{"name": "community", "refusals": 4}])
    );
    assert_eq!(
        i["by_registry"],
        json!([{"name": "docker.io", "refusals": 3}, {"name": "ghcr.io", "refusals": 1}])
    );
    let (_, week) = s.get("/api/v1/orgs/corp/insights", &s.olga).await;
    assert_eq!(
        (week["range"].as_str(), week["refused"].as_u64()),
        (Some("7d"), Some(5))
    );

    let (status, body) = s.get("/api/v1/orgs/corp/insights", &s.alice).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error(&body).1, "only owners of corp can see its insights");
    let (status, body) = s.get("/api/v1/orgs/corp/insights?range=1y", &s.olga).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        error(&body).1,
        "range \"1y\" is not one of 24h, 7d, 30d, 90d"
    );
    let (status, _) = s.get("/api/v1/orgs/corp/insights", &s.rita).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn administrators_create_organisations_and_own_them_and_nobody_else_can() {
    let s = setup();
    let new = json!({"name": "newco", "namespaces": ["newco"]});
    let (status, body) = s.post("/api/v1/orgs", &s.olga, new.clone()).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "an owner of corp is no administrator"
    );
    assert!(
        error(&body)
            .1
            .starts_with("only administrators create organisations")
    );

    s.identity.store().set_administrator("olga", true).unwrap();
    let (status, org) = s.post("/api/v1/orgs", &s.olga, new.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{org}");
    assert_eq!(
        org,
        json!({"name": "newco", "namespaces": ["newco"], "role": "owner"})
    );
    let (_, me) = s.get("/api/v1/me", &s.olga).await;
    assert_eq!(me["administrator"], true);
    assert!(
        me["organisations"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "newco", "role": "owner"}))
    );
    // Image access starts off, as Docker's does.
    let (_, ia) = s.get("/api/v1/orgs/newco/image-access", &s.olga).await;
    assert_eq!(ia["enabled"], false);

    for (body, says) in [
        (new, "organisation newco already exists"),
        (
            json!({"name": "Bad Name"}),
            "organisation name \"Bad Name\" must be",
        ),
        (
            json!({"name": "ok", "namespaces": ["a/b"]}),
            "namespace \"a/b\" is not a Docker Hub namespace",
        ),
    ] {
        let (status, answer) = s.post("/api/v1/orgs", &s.olga, body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(error(&answer).1.starts_with(says), "{body}: {answer}");
    }
}

#[tokio::test]
async fn what_schemathesis_found_is_answered_in_the_api_error_shape() {
    let s = setup();
    // An unparsable query was axum's plain-text 400, and undocumented.
    let (status, body) = s.get("/api/v1/orgs/corp/changes?limit=-1", &s.alice).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error(&body).0, "bad_request");
    let (status, body) = s.get("/api/v1/orgs/corp/changes?limit=0", &s.alice).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error(&body).1, "limit 0 is not between 1 and 1000");
    // A token for 5.8 million years was accepted.
    let (status, body) = s
        .post(
            "/api/v1/tokens",
            &s.alice,
            json!({"name": "forever", "expires_days": 2_147_483_648u64}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        error(&body).1,
        "expires_days must be between 1 and 3650 days, not 2147483648"
    );
}
