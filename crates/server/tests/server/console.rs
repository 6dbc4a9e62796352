//! The console, answered in process: sign-in into a session cookie with the
//! right flags, login CSRF and form CSRF, session fixation, rate-limited
//! failures, and the Image access page (owners edit, members read only and
//! are refused even with a hand-made POST).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt;
use imagegate_server::console::{self, Console, LOGIN_COOKIE, SESSION_COOKIE};
use imagegate_server::identity::Identity;
use imagegate_server::store::{Role, SqliteStore, Store};
use tower::ServiceExt;

struct Setup {
    app: Router,
    identity: Identity,
}

fn setup_with(tls: bool) -> Setup {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap();
    let dir = std::env::temp_dir().join(format!("imagegate-console-{}", u64::from_le_bytes(b)));
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir).unwrap());
    let identity = Identity::new(store.clone());
    identity.create_org("corp", &["corp".to_owned()]).unwrap();
    identity.create_org("rival", &[]).unwrap();
    for (user, org, role) in [
        ("olga", "corp", Role::Owner),
        ("alice", "corp", Role::Member),
        ("rita", "rival", Role::Owner),
    ] {
        identity.create_user(user, "correct horse battery").unwrap();
        store.set_member(org, user, role).unwrap();
    }
    Setup {
        app: console::routes(Arc::new(Console::new(identity.clone(), tls))),
        identity,
    }
}

fn setup() -> Setup {
    setup_with(false)
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap())
            .unwrap_or_default()
    }

    /// The `Set-Cookie` value for `name`, whole.
    fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .find(|c| c.starts_with(&format!("{name}=")))
    }

    fn cookie_value(&self, name: &str) -> Option<String> {
        self.set_cookie(name)
            .map(|c| c.split(';').next().unwrap()[name.len() + 1..].to_owned())
    }

    /// The value of the hidden input `name` in the page.
    fn hidden(&self, name: &str) -> String {
        let marker = format!(r#"name="{name}" value=""#);
        let at = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("{name} in {}", self.body))
            + marker.len();
        self.body[at..].split('"').next().unwrap().to_owned()
    }
}

impl Setup {
    async fn send(
        &self,
        method: &str,
        path: &str,
        cookies: &[(&str, &str)],
        form: Option<&str>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        if !cookies.is_empty() {
            let c: Vec<String> = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            request = request.header(header::COOKIE, c.join("; "));
        }
        if form.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        let response = self
            .app
            .clone()
            .oneshot(
                request
                    .body(form.map_or_else(Body::empty, |f| Body::from(f.to_owned())))
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            headers,
            body: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }

    /// Signs in through the form; returns the session cookie's value.
    async fn sign_in(&self, user: &str) -> String {
        let page = self.send("GET", "/console/sign-in", &[], None).await;
        let login = page.cookie_value(LOGIN_COOKIE).unwrap();
        let form = format!("login={login}&username={user}&password=correct+horse+battery");
        let answer = self
            .send(
                "POST",
                "/console/sign-in",
                &[(LOGIN_COOKIE, &login)],
                Some(&form),
            )
            .await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
        answer.cookie_value(SESSION_COOKIE).unwrap()
    }

    async fn csrf(&self, session: &str, path: &str) -> String {
        self.send("GET", path, &[(SESSION_COOKIE, session)], None)
            .await
            .hidden("csrf")
    }
}

const PAGE: &str = "/console/orgs/corp/image-access";

#[tokio::test]
async fn signing_in_sets_a_session_cookie_that_scripts_cannot_read() {
    let s = setup();
    let answer = s.send("GET", "/console", &[], None).await;
    assert_eq!(
        (answer.status, answer.location()),
        (StatusCode::SEE_OTHER, "/console/sign-in")
    );
    let page = s.send("GET", "/console/sign-in", &[], None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body
            .contains(r#"<label for="username">Username</label>"#)
    );
    assert!(
        page.body
            .contains(r#"<label for="password">Password</label>"#)
    );
    let login = page.cookie_value(LOGIN_COOKIE).unwrap();
    assert_eq!(page.hidden("login"), login);
    let form = format!("login={login}&username=olga&password=correct+horse+battery");
    let answer = s
        .send(
            "POST",
            "/console/sign-in",
            &[(LOGIN_COOKIE, &login)],
            Some(&form),
        )
        .await;
    assert_eq!(
        (answer.status, answer.location()),
        (StatusCode::SEE_OTHER, "/console")
    );
    let cookie = answer.set_cookie(SESSION_COOKIE).unwrap();
    assert!(cookie.contains("; HttpOnly"), "{cookie}");
    assert!(cookie.contains("; SameSite=Lax"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain HTTP here: {cookie}");
    let session = answer.cookie_value(SESSION_COOKIE).unwrap();
    let home = s
        .send("GET", "/console", &[(SESSION_COOKIE, &session)], None)
        .await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.body.contains("Signed in as olga"));
    assert!(
        home.body
            .contains(r#"<a href="/console/orgs/corp/image-access">corp</a>"#)
    );

    // Over TLS the cookie is Secure too.
    let s = setup_with(true);
    let page = s.send("GET", "/console/sign-in", &[], None).await;
    assert!(page.set_cookie(LOGIN_COOKIE).unwrap().contains("; Secure"));
    let login = page.cookie_value(LOGIN_COOKIE).unwrap();
    let form = format!("login={login}&username=olga&password=correct+horse+battery");
    let answer = s
        .send(
            "POST",
            "/console/sign-in",
            &[(LOGIN_COOKIE, &login)],
            Some(&form),
        )
        .await;
    assert!(
        answer
            .set_cookie(SESSION_COOKIE)
            .unwrap()
            .contains("; Secure")
    );
}

#[tokio::test]
async fn a_sign_in_form_from_elsewhere_is_refused_and_failures_are_limited() {
    let s = setup();
    // Login CSRF: a form posted from another site has no matching cookie.
    let form = "login=forged&username=olga&password=correct+horse+battery";
    let answer = s.send("POST", "/console/sign-in", &[], Some(form)).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(answer.set_cookie(SESSION_COOKIE).is_none());
    let answer = s
        .send(
            "POST",
            "/console/sign-in",
            &[(LOGIN_COOKIE, "other")],
            Some(form),
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);

    let page = s.send("GET", "/console/sign-in", &[], None).await;
    let login = page.cookie_value(LOGIN_COOKIE).unwrap();
    let wrong = format!("login={login}&username=alice&password=wrong");
    for _ in 0..imagegate_server::throttle::MAX_FAILURES {
        let answer = s
            .send(
                "POST",
                "/console/sign-in",
                &[(LOGIN_COOKIE, &login)],
                Some(&wrong),
            )
            .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert!(answer.body.contains("Invalid username or password."));
    }
    let right = format!("login={login}&username=alice&password=correct+horse+battery");
    let answer = s
        .send(
            "POST",
            "/console/sign-in",
            &[(LOGIN_COOKIE, &login)],
            Some(&right),
        )
        .await;
    assert_eq!(
        answer.status,
        StatusCode::TOO_MANY_REQUESTS,
        "limited even with the right password"
    );
    assert!(answer.body.contains("Too many failed sign-ins"));
    assert!(answer.set_cookie(SESSION_COOKIE).is_none());
    // An unknown user is answered as a wrong password.
    let unknown = format!("login={login}&username=nobody&password=x");
    let answer = s
        .send(
            "POST",
            "/console/sign-in",
            &[(LOGIN_COOKIE, &login)],
            Some(&unknown),
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_session_id_planted_before_sign_in_is_never_the_signed_in_one() {
    let s = setup();
    let page = s.send("GET", "/console/sign-in", &[], None).await;
    let login = page.cookie_value(LOGIN_COOKIE).unwrap();
    let planted = "attacker-chosen-session-id";
    let form = format!("login={login}&username=olga&password=correct+horse+battery");
    let answer = s
        .send(
            "POST",
            "/console/sign-in",
            &[(LOGIN_COOKIE, &login), (SESSION_COOKIE, planted)],
            Some(&form),
        )
        .await;
    let session = answer.cookie_value(SESSION_COOKIE).unwrap();
    assert_ne!(session, planted);
    assert!(session.len() >= 40, "256 random bits");
    let as_attacker = s
        .send("GET", "/console", &[(SESSION_COOKIE, planted)], None)
        .await;
    assert_eq!(as_attacker.location(), "/console/sign-in");
    // Signing out ends the session for good.
    let csrf = s.csrf(&session, "/console").await;
    let out = s
        .send(
            "POST",
            "/console/sign-out",
            &[(SESSION_COOKIE, &session)],
            Some(&format!("csrf={csrf}")),
        )
        .await;
    assert_eq!(
        (out.status, out.location()),
        (StatusCode::SEE_OTHER, "/console/sign-in")
    );
    assert!(
        out.set_cookie(SESSION_COOKIE)
            .unwrap()
            .contains("Max-Age=0")
    );
    let after = s
        .send("GET", "/console", &[(SESSION_COOKIE, &session)], None)
        .await;
    assert_eq!(after.location(), "/console/sign-in");
}

#[tokio::test]
async fn an_owner_switches_image_access_on_with_community_off_from_the_page() {
    let s = setup();
    let session = s.sign_in("olga").await;
    let page = s
        .send("GET", PAGE, &[(SESSION_COOKIE, &session)], None)
        .await;
    assert_eq!(page.status, StatusCode::OK);
    // Every category has a labelled box; Organization images are checked and fixed.
    for (id, label) in [
        ("enabled", "Restrict the Docker Hub images members may pull"),
        ("organization", "Organization images"),
        ("official", "Docker Official Images"),
        ("verified_publisher", "Docker Verified Publisher Images"),
        ("community", "Community images"),
    ] {
        assert!(
            page.body
                .contains(&format!(r#"<label for="{id}">{label}</label>"#)),
            "{id}"
        );
    }
    assert!(
        page.body
            .contains(r#"<input type="checkbox" id="organization" checked disabled"#)
    );
    assert!(
        page.body
            .contains(r#"<button type="submit">Save changes</button>"#)
    );
    let csrf = page.hidden("csrf");
    let form = format!("csrf={csrf}&enabled=on&official=on&verified_publisher=on");
    let saved = s
        .send("POST", PAGE, &[(SESSION_COOKIE, &session)], Some(&form))
        .await;
    assert_eq!(
        (saved.status, saved.location()),
        (
            StatusCode::SEE_OTHER,
            "/console/orgs/corp/image-access?saved=1"
        )
    );
    let ia = imagegate_server::settings::image_access(&s.identity, "corp").unwrap();
    assert!(ia.enabled && ia.official && ia.verified_publisher && !ia.community);
    let changes = s.identity.store().policy_changes("corp", 5).unwrap();
    assert_eq!(
        (changes[0].user.as_str(), changes[0].what.as_str()),
        ("olga", "image_access")
    );
    let page = s
        .send(
            "GET",
            "/console/orgs/corp/image-access?saved=1",
            &[(SESSION_COOKIE, &session)],
            None,
        )
        .await;
    assert!(page.body.contains("Saved."));
    assert!(
        page.body
            .contains(r#"id="enabled" name="enabled" value="on" checked"#)
    );
    assert!(
        page.body
            .contains(r#"id="community" name="community" value="on" aria-describedby"#),
        "community unchecked"
    );
}

#[tokio::test]
async fn members_see_every_control_disabled_and_a_hand_made_post_is_refused() {
    let s = setup();
    let session = s.sign_in("alice").await;
    let page = s
        .send("GET", PAGE, &[(SESSION_COOKIE, &session)], None)
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body
            .contains("Only owners of corp manage image access.")
    );
    for id in ["enabled", "official", "verified_publisher", "community"] {
        let at = page.body.find(&format!(r#"id="{id}""#)).unwrap();
        let tag = &page.body[at..at + page.body[at..].find('>').unwrap()];
        assert!(tag.contains("disabled"), "{id}: {tag}");
    }
    assert!(!page.body.contains("Save changes"));
    // Off: every category is allowed, and the page says so in words.
    assert!(page.body.contains("Off: every category is allowed."));
    s.community_off();
    let page = s
        .send("GET", PAGE, &[(SESSION_COOKIE, &session)], None)
        .await;
    assert!(
        page.body
            .contains("On: only the categories marked allowed below.")
    );
    assert!(
        page.body
            .contains(r#"<p id="official-about"><strong class="allowed">Allowed. </strong>"#)
    );
    assert!(
        page.body
            .contains(r#"<p id="community-about"><strong class="refused">Not allowed. </strong>"#)
    );
    let before = s.identity.org("corp").unwrap().policy;
    let csrf = page.hidden("csrf");
    let form = format!("csrf={csrf}&enabled=on&official=on&verified_publisher=on&community=on");
    let refused = s
        .send("POST", PAGE, &[(SESSION_COOKIE, &session)], Some(&form))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        refused
            .body
            .contains("Only owners of corp can change image access")
    );
    assert_eq!(s.identity.org("corp").unwrap().policy, before);
}

#[tokio::test]
async fn forms_without_the_sessions_csrf_token_are_refused() {
    let s = setup();
    let session = s.sign_in("olga").await;
    let before = s.identity.org("corp").unwrap().policy;
    for form in [
        "enabled=on&community=on",
        "csrf=&enabled=on",
        "csrf=guess&enabled=on&community=on",
    ] {
        let answer = s
            .send("POST", PAGE, &[(SESSION_COOKIE, &session)], Some(form))
            .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{form}");
    }
    // Another session's token does not fit this one.
    let other = s.sign_in("olga").await;
    let their = s.csrf(&other, PAGE).await;
    let answer = s
        .send(
            "POST",
            PAGE,
            &[(SESSION_COOKIE, &session)],
            Some(&format!("csrf={their}&enabled=on")),
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(s.identity.org("corp").unwrap().policy, before);
    // Without a session there is nothing to post as.
    let answer = s.send("POST", PAGE, &[], Some("csrf=x&enabled=on")).await;
    assert_eq!(answer.location(), "/console/sign-in");
}

#[tokio::test]
async fn another_organisations_owner_sees_nothing_of_it() {
    let s = setup();
    let session = s.sign_in("rita").await;
    let page = s
        .send("GET", PAGE, &[(SESSION_COOKIE, &session)], None)
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.body.contains("Organisation corp not found."));
    let csrf = s.csrf(&session, "/console").await;
    let answer = s
        .send(
            "POST",
            PAGE,
            &[(SESSION_COOKIE, &session)],
            Some(&format!("csrf={csrf}&enabled=on&community=on")),
        )
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
}

const REGISTRIES: &str = "/console/orgs/corp/registry-access";

#[tokio::test]
async fn an_owner_edits_the_allowed_registries_and_bad_entries_are_refused_by_line() {
    let s = setup();
    let session = s.sign_in("olga").await;
    let page = s
        .send("GET", REGISTRIES, &[(SESSION_COOKIE, &session)], None)
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body
            .contains(r#"<label for="allow">Allowed registries, one per line</label>"#)
    );
    assert!(
        page.body
            .contains(r#"<a href="/console/orgs/corp/image-access">Image access</a>"#)
    );
    assert!(
        page.body
            .contains(r#"<strong aria-current="page">Registry access</strong>"#)
    );
    let csrf = page.hidden("csrf");

    let bad = format!(
        "csrf={csrf}&enabled=on&allow=docker.io%0Aghcr.io%2FCorp%0A%0Aghcr.io.evil.io%2F..%2Fx"
    );
    let refused = s
        .send(
            "POST",
            REGISTRIES,
            &[(SESSION_COOKIE, &session)],
            Some(&bad),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.body.contains("Not saved: fix these entries."));
    assert!(
        refused.body.contains("<li>line 2: invalid pattern"),
        "{}",
        refused.body
    );
    assert!(
        refused.body.contains("<li>line 4: invalid pattern"),
        "{}",
        refused.body
    );
    assert!(!refused.body.contains("line 1:"), "docker.io is fine");
    assert!(
        refused
            .body
            .contains("docker.io\nghcr.io/Corp\n\nghcr.io.evil.io/../x</textarea>"),
        "what was typed is kept"
    );
    assert!(
        !imagegate_server::settings::registry_access(&s.identity, "corp")
            .unwrap()
            .enabled
    );

    let good = format!("csrf={csrf}&enabled=on&allow=docker.io%0D%0A+ghcr.io%2Fcorp+%0D%0A");
    let saved = s
        .send(
            "POST",
            REGISTRIES,
            &[(SESSION_COOKIE, &session)],
            Some(&good),
        )
        .await;
    assert_eq!(
        (saved.status, saved.location()),
        (
            StatusCode::SEE_OTHER,
            "/console/orgs/corp/registry-access?saved=1"
        )
    );
    let ra = imagegate_server::settings::registry_access(&s.identity, "corp").unwrap();
    assert!(ra.enabled);
    assert_eq!(ra.allow, ["docker.io", "ghcr.io/corp"]);
    let page = s
        .send("GET", REGISTRIES, &[(SESSION_COOKIE, &session)], None)
        .await;
    assert!(page.body.contains(">docker.io\nghcr.io/corp</textarea>"));
}

#[tokio::test]
async fn members_see_the_registries_read_only_and_cannot_post_them() {
    let s = setup();
    let session = s.sign_in("alice").await;
    let page = s
        .send("GET", REGISTRIES, &[(SESSION_COOKIE, &session)], None)
        .await;
    assert!(
        page.body
            .contains("Only owners of corp manage registry access.")
    );
    assert!(
        page.body
            .contains(r#"<textarea id="allow" name="allow" rows="8" cols="48" disabled"#)
    );
    assert!(!page.body.contains("Save changes"));
    let csrf = page.hidden("csrf");
    let answer = s
        .send(
            "POST",
            REGISTRIES,
            &[(SESSION_COOKIE, &session)],
            Some(&format!("csrf={csrf}&enabled=on&allow=evil.example")),
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(
        !imagegate_server::settings::registry_access(&s.identity, "corp")
            .unwrap()
            .enabled
    );
}

#[tokio::test]
async fn the_console_session_signs_in_to_the_api_and_changes_need_its_csrf_token() {
    let s = setup();
    let session = s.sign_in("olga").await;
    let csrf = s.csrf(&session, "/console").await;
    let api = imagegate_server::api::routes(Arc::new(imagegate_server::api::Api::new(
        s.identity.clone(),
    )));
    let call = |method: &str, path: &str, token: Option<&str>, body: Option<&str>| {
        let mut r = Request::builder()
            .method(method)
            .uri(path)
            .header(header::COOKIE, format!("{SESSION_COOKIE}={session}"));
        if let Some(t) = token {
            r = r.header("x-csrf-token", t);
        }
        if body.is_some() {
            r = r.header(header::CONTENT_TYPE, "application/json");
        }
        let request = r
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
            .unwrap();
        let api = api.clone();
        async move {
            let response = api.oneshot(request).await.unwrap();
            let status = response.status();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8(bytes.to_vec()).unwrap())
        }
    };
    let (status, me) = call("GET", "/api/v1/me", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(me.contains(r#""user":"olga""#));
    let body = r#"{"enabled": true, "categories": {"official": true, "verified_publisher": true, "community": false}}"#;
    let (status, refused) = call("PUT", "/api/v1/orgs/corp/image-access", None, Some(body)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert!(refused.contains("X-CSRF-Token"));
    let (status, _) = call(
        "PUT",
        "/api/v1/orgs/corp/image-access",
        Some("guess"),
        Some(body),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        !imagegate_server::settings::image_access(&s.identity, "corp")
            .unwrap()
            .enabled
    );
    let (status, _) = call(
        "PUT",
        "/api/v1/orgs/corp/image-access",
        Some(&csrf),
        Some(body),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        imagegate_server::settings::image_access(&s.identity, "corp")
            .unwrap()
            .enabled
    );
}

#[tokio::test]
async fn a_user_creates_a_token_sees_it_once_and_revokes_it() {
    let s = setup();
    let session = s.sign_in("alice").await;
    let page = s
        .send(
            "GET",
            "/console/tokens",
            &[(SESSION_COOKIE, &session)],
            None,
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("You have no tokens."));
    assert!(
        page.body
            .contains(r#"<label for="name">Name (what it is for)</label>"#)
    );
    let csrf = page.hidden("csrf");
    let created = s
        .send(
            "POST",
            "/console/tokens",
            &[(SESSION_COOKIE, &session)],
            Some(&format!("csrf={csrf}&name=laptop&expires_days=30")),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(
        created.headers.get(header::CACHE_CONTROL).unwrap(),
        "no-store"
    );
    let marker = r#"id="secret" readonly value=""#;
    let at = created.body.find(marker).expect("the secret is shown") + marker.len();
    let secret = created.body[at..].split('"').next().unwrap().to_owned();
    assert!(secret.starts_with("igpat_"));
    assert!(created.body.contains(r#"<button type="button" id="copy""#));
    // It works where tokens work, and is never shown again.
    assert_eq!(s.identity.bearer(&secret).unwrap().unwrap().user, "alice");
    let page = s
        .send(
            "GET",
            "/console/tokens",
            &[(SESSION_COOKIE, &session)],
            None,
        )
        .await;
    assert!(!page.body.contains(&secret));
    assert!(page.body.contains("<td>laptop</td>"));
    assert!(page.body.contains("<td>active</td>"));

    // Another user cannot revoke it; its owner can, and it stops working.
    let id = s.identity.store().tokens("alice").unwrap()[0].id.clone();
    let olga = s.sign_in("olga").await;
    let olga_csrf = s.csrf(&olga, "/console/tokens").await;
    let path = format!("/console/tokens/{id}/revoke");
    let refused = s
        .send(
            "POST",
            &path,
            &[(SESSION_COOKIE, &olga)],
            Some(&format!("csrf={olga_csrf}")),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(s.identity.bearer(&secret).unwrap().is_ok());
    let forged = s
        .send(
            "POST",
            &path,
            &[(SESSION_COOKIE, &session)],
            Some("csrf=guess"),
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let revoked = s
        .send(
            "POST",
            &path,
            &[(SESSION_COOKIE, &session)],
            Some(&format!("csrf={csrf}")),
        )
        .await;
    assert_eq!(
        (revoked.status, revoked.location()),
        (StatusCode::SEE_OTHER, "/console/tokens")
    );
    assert!(s.identity.bearer(&secret).unwrap().is_err());
    let page = s
        .send(
            "GET",
            "/console/tokens",
            &[(SESSION_COOKIE, &session)],
            None,
        )
        .await;
    assert!(page.body.contains("<td>revoked</td>"));

    let bad = s
        .send(
            "POST",
            "/console/tokens",
            &[(SESSION_COOKIE, &session)],
            Some(&format!("csrf={csrf}&name=&expires_days=30")),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.body
            .contains("token name must be 1 to 100 printable characters")
    );
}

/// The Content-Security-Policy every console answer carries, as a browser
/// reads it.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; script-src 'self'; \
    img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Signed out and in: the sign-in page, a redirect, the home page, a new
/// token's page, another organisation's 404, a CSV export and the files.
async fn console_answers(s: &Setup) -> Vec<(&'static str, Answer)> {
    let session = s.sign_in("alice").await;
    let cookie = [(SESSION_COOKIE, session.as_str())];
    let csrf = s.csrf(&session, "/console/tokens").await;
    vec![
        (
            "sign-in page",
            s.send("GET", "/console/sign-in", &[], None).await,
        ),
        ("redirect", s.send("GET", "/console", &[], None).await),
        ("home", s.send("GET", "/console", &cookie, None).await),
        (
            "new token",
            s.send(
                "POST",
                "/console/tokens",
                &cookie,
                Some(&format!("csrf={csrf}&name=laptop&expires_days=30")),
            )
            .await,
        ),
        (
            "not found",
            s.send("GET", "/console/orgs/rival/activity", &cookie, None)
                .await,
        ),
        (
            "export",
            s.send("GET", "/console/orgs/corp/activity.csv", &cookie, None)
                .await,
        ),
        (
            "stylesheet",
            s.send("GET", "/console/console.css", &[], None).await,
        ),
        (
            "script",
            s.send("GET", "/console/console.js", &[], None).await,
        ),
    ]
}

#[tokio::test]
async fn every_console_answer_forbids_framing_sniffing_and_other_sites_content() {
    let s = setup();
    for (what, answer) in console_answers(&s).await {
        let header = |name| answer.headers.get(name).map(|v| v.to_str().unwrap());
        assert_eq!(
            header(header::CONTENT_SECURITY_POLICY),
            Some(CONTENT_SECURITY_POLICY),
            "{what}"
        );
        assert_eq!(header(header::X_FRAME_OPTIONS), Some("DENY"), "{what}");
        assert_eq!(
            header(header::X_CONTENT_TYPE_OPTIONS),
            Some("nosniff"),
            "{what}"
        );
        assert_eq!(
            header(header::REFERRER_POLICY),
            Some("same-origin"),
            "{what}"
        );
    }
}

#[tokio::test]
async fn console_pages_have_no_inline_style_or_script_and_load_the_consoles_own_files() {
    let s = setup();
    let answers = console_answers(&s).await;
    let pages: Vec<_> = answers
        .iter()
        .filter(|(_, a)| {
            a.headers
                .get(header::CONTENT_TYPE)
                .is_some_and(|t| t == "text/html; charset=utf-8")
        })
        .collect();
    assert_eq!(pages.len(), 4, "sign-in, home, new token, not found");
    for (what, page) in pages {
        let body = &page.body;
        assert!(
            body.contains(r#"<link rel="stylesheet" href="/console/console.css">"#),
            "{what}: {body}"
        );
        assert!(!body.contains("<style"), "{what}: {body}");
        assert!(!body.contains(" style="), "{what}: {body}");
        assert!(!body.contains("javascript:"), "{what}: {body}");
        // An event handler attribute (` onclick="`) is inline script.
        let handler = body.match_indices(" on").find(|(at, _)| {
            let name = body[at + 3..].split('=').next().unwrap();
            !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase())
        });
        assert_eq!(handler, None, "{what}: {body}");
        // Every script is the console's file.
        assert_eq!(
            body.matches("<script").count(),
            body.matches(r#"<script src="/console/console.js">"#)
                .count(),
            "{what}: {body}"
        );
    }
    let (_, new_token) = answers.iter().find(|(w, _)| *w == "new token").unwrap();
    assert!(
        new_token
            .body
            .contains(r#"<button type="button" id="copy">Copy</button><script src="/console/console.js"></script>"#),
        "{}",
        new_token.body
    );

    let (_, css) = answers.iter().find(|(w, _)| *w == "stylesheet").unwrap();
    assert_eq!(css.status, StatusCode::OK);
    assert_eq!(css.headers[header::CONTENT_TYPE], "text/css; charset=utf-8");
    assert!(css.body.contains("header{display:flex;"), "{}", css.body);
    let (_, js) = answers.iter().find(|(w, _)| *w == "script").unwrap();
    assert_eq!(js.status, StatusCode::OK);
    assert_eq!(
        js.headers[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    assert!(
        js.body.contains(r#"document.getElementById("copy")"#),
        "{}",
        js.body
    );
}

#[tokio::test]
async fn owners_add_change_and_remove_members_and_the_last_owner_stays() {
    let s = setup();
    s.identity
        .create_user("bob", "correct horse battery")
        .unwrap();
    let session = s.sign_in("olga").await;
    let members = "/console/orgs/corp/members";
    let page = s
        .send("GET", members, &[(SESSION_COOKIE, &session)], None)
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("<td>alice</td>"));
    assert!(
        page.body
            .contains(r#"<label for="username">Username</label>"#)
    );
    let csrf = page.hidden("csrf");
    let post = |path: String, form: String| {
        let session = session.clone();
        let s = &s;
        async move {
            s.send("POST", &path, &[(SESSION_COOKIE, &session)], Some(&form))
                .await
        }
    };
    let added = post(
        members.to_owned(),
        format!("csrf={csrf}&username=bob&role=member"),
    )
    .await;
    assert_eq!(
        (added.status, added.location()),
        (StatusCode::SEE_OTHER, members)
    );
    let changed = post(format!("{members}/bob"), format!("csrf={csrf}&role=owner")).await;
    assert_eq!(changed.status, StatusCode::SEE_OTHER);
    assert!(
        s.identity
            .members("corp")
            .unwrap()
            .contains(&("bob".to_owned(), Role::Owner))
    );
    let removed = post(format!("{members}/bob/remove"), format!("csrf={csrf}")).await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER);
    assert!(
        !s.identity
            .members("corp")
            .unwrap()
            .iter()
            .any(|(u, _)| u == "bob")
    );

    let last = post(format!("{members}/olga/remove"), format!("csrf={csrf}")).await;
    assert_eq!(last.status, StatusCode::UNPROCESSABLE_ENTITY);
    // The page does not offer it either.
    assert!(
        !last
            .body
            .contains(r#"action="/console/orgs/corp/members/olga/remove""#)
    );
    assert!(last.body.contains("the last owner stays"));
    assert!(
        last.body
            .contains(r#"action="/console/orgs/corp/members/alice/remove""#)
    );
    assert!(
        last.body
            .contains("olga is the last owner of corp: make another member an owner first")
    );
    let nobody = post(
        members.to_owned(),
        format!("csrf={csrf}&username=nobody&role=member"),
    )
    .await;
    assert_eq!(nobody.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(nobody.body.contains("user nobody not found"));
    let changes = s.identity.store().policy_changes("corp", 10).unwrap();
    assert_eq!(changes.len(), 3, "added, made owner, removed");

    // A member sees the list only, and a hand-made change is refused.
    let alice = s.sign_in("alice").await;
    let page = s
        .send("GET", members, &[(SESSION_COOKIE, &alice)], None)
        .await;
    assert!(
        page.body
            .contains("Only owners of corp manage its members.")
    );
    assert!(!page.body.contains("Add member"));
    let csrf = page.hidden("csrf");
    let refused = s
        .send(
            "POST",
            members,
            &[(SESSION_COOKIE, &alice)],
            Some(&format!("csrf={csrf}&username=alice&role=owner")),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        s.identity
            .members("corp")
            .unwrap()
            .contains(&("alice".to_owned(), Role::Member))
    );
}

#[tokio::test]
async fn the_policy_page_shows_problems_in_place_and_tries_any_image_with_its_explain_chain() {
    let s = setup();
    let session = s.sign_in("olga").await;
    let policy = "/console/orgs/corp/policy";
    let page = s
        .send("GET", policy, &[(SESSION_COOKIE, &session)], None)
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body
            .contains(r#"<label for="yaml">Policy (YAML)</label>"#)
    );
    assert!(page.body.contains("imageAccess:"));
    let csrf = page.hidden("csrf");

    let broken = "apiVersion: imagegate.dev/v1\r\nkind: ImagePolicy\r\nmetadata:\r\n  name: corp\r\nspec:\r\n  mode: sometimes\r\n";
    let form = format!("csrf={csrf}&yaml={}", urlencode(broken));
    let refused = s
        .send("POST", policy, &[(SESSION_COOKIE, &session)], Some(&form))
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused
            .body
            .contains("Not saved: the policy does not load.")
    );
    assert!(
        refused
            .body
            .contains("<li>line 6, column 9: <code>spec.mode</code>: "),
        "{}",
        refused.body
    );
    assert!(
        refused.body.contains("mode: sometimes\n</textarea>"),
        "the text is kept"
    );

    let good = "apiVersion: imagegate.dev/v1\nkind: ImagePolicy\nmetadata:\n  name: corp\nspec:\n  imageAccess:\n    enabled: true\n    organizationNamespaces: [corp]\n";
    let form = format!("csrf={csrf}&yaml={}", urlencode(good));
    let saved = s
        .send("POST", policy, &[(SESSION_COOKIE, &session)], Some(&form))
        .await;
    assert_eq!(
        (saved.status, saved.location()),
        (StatusCode::SEE_OTHER, "/console/orgs/corp/policy?saved=1")
    );
    assert_eq!(s.identity.org("corp").unwrap().policy, good);

    let alice = s.sign_in("alice").await;
    let tried = s
        .send(
            "GET",
            "/console/orgs/corp/policy?image=someuser%2Fcustom-image%3A1",
            &[(SESSION_COOKIE, &alice)],
            None,
        )
        .await;
    assert_eq!(tried.status, StatusCode::OK);
    assert!(
        tried.body.contains(
            "<strong>Refused</strong>: image access denied: community images not allowed"
        ),
        "{}",
        tried.body
    );
    assert!(
        tried
            .body
            .contains("<code>docker.io/someuser/custom-image:1</code>")
    );
    assert!(tried.body.contains("How the policy decided"));
    assert!(
        tried.body.contains("<td>image access</td>"),
        "{}",
        tried.body
    );
    // Members read the policy and may try images, but cannot save.
    assert!(tried.body.contains(r#"spellcheck="false" readonly"#));
    let refused = s
        .send(
            "POST",
            policy,
            &[(SESSION_COOKIE, &alice)],
            Some(&format!("csrf={}&yaml=x", tried.hidden("csrf"))),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Setup {
    /// corp: image access on, official images allowed, community not.
    fn community_off(&self) {
        let mut ia = imagegate_server::settings::image_access(&self.identity, "corp").unwrap();
        ia.enabled = true;
        ia.official = true;
        ia.community = false;
        imagegate_server::settings::set_image_access(&self.identity, "corp", "olga", &ia).unwrap();
    }

    async fn get(&self, session: &str, path: &str) -> Answer {
        self.send("GET", path, &[(SESSION_COOKIE, session)], None)
            .await
    }

    async fn post(&self, session: &str, path: &str, form: &str) -> Answer {
        self.send("POST", path, &[(SESSION_COOKIE, session)], Some(form))
            .await
    }
}

const REQUESTS_PAGE: &str = "/console/orgs/corp/access-requests";

#[tokio::test]
async fn a_member_follows_the_ask_link_through_sign_in_and_an_owner_approves_on_the_page() {
    let s = setup();
    s.community_off();
    let link = "/console/orgs/corp/access-requests/new?image=someuser/custom-image:1";
    // Signed out: to the sign-in page, which brings them back.
    let away = s.send("GET", link, &[], None).await;
    assert_eq!(away.status, StatusCode::SEE_OTHER);
    let next = format!("next={}", urlencode(link));
    assert_eq!(away.location(), format!("/console/sign-in?{next}"));
    let page = s.send("GET", away.location(), &[], None).await;
    assert_eq!(page.hidden("next"), link);
    let login = page.cookie_value(LOGIN_COOKIE).unwrap();
    let signed = s
        .send(
            "POST",
            "/console/sign-in",
            &[(LOGIN_COOKIE, &login)],
            Some(&format!(
                "login={login}&username=alice&password=correct+horse+battery&{next}"
            )),
        )
        .await;
    assert_eq!(
        (signed.status, signed.location()),
        (StatusCode::SEE_OTHER, link)
    );
    let alice = signed.cookie_value(SESSION_COOKIE).unwrap();

    let form = s.get(&alice, link).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(
        form.body.contains(
            "Today <code>docker.io/someuser/custom-image:1</code> is refused: image access denied: community images not allowed"
        ),
        "{}",
        form.body
    );
    assert!(
        form.body
            .contains(r#"name="image" value="someuser/custom-image:1""#)
    );
    assert!(
        !form.body.contains("Open requests"),
        "members do not see others' requests"
    );
    let csrf = form.hidden("csrf");
    // No reason: the form comes back with what is wrong and what was typed.
    let refused = s
        .post(
            &alice,
            REQUESTS_PAGE,
            &format!("csrf={csrf}&image=someuser%2Fcustom-image%3A1&reason="),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.body.contains("say why you need this image"));
    assert!(refused.body.contains(r#"value="someuser/custom-image:1""#));
    let filed = s
        .post(
            &alice,
            REQUESTS_PAGE,
            &format!("csrf={csrf}&image=someuser%2Fcustom-image%3A1&reason=the+CI+lint+step"),
        )
        .await;
    assert_eq!(filed.status, StatusCode::SEE_OTHER, "{}", filed.body);
    let id = s
        .identity
        .store()
        .access_requests("corp", Some("open"), None, 10)
        .unwrap()[0]
        .id;
    assert_eq!(filed.location(), format!("{REQUESTS_PAGE}?filed={id}"));
    let mine = s.get(&alice, filed.location()).await;
    assert!(mine.body.contains(&format!("Request {id} sent.")));
    assert!(
        mine.body
            .contains(r#"<span class="state open">open</span>"#)
    );

    // A member cannot approve, however the form is made.
    let approve = format!("{REQUESTS_PAGE}/{id}/approve");
    let denied = s.post(&alice, &approve, &format!("csrf={csrf}")).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);

    let olga = s.sign_in("olga").await;
    let owners = s.get(&olga, REQUESTS_PAGE).await;
    assert!(owners.body.contains("Open requests (1)"));
    assert!(owners.body.contains("the CI lint step"));
    assert!(
        owners
            .body
            .contains("allow: docker.io/someuser/custom-image")
    );
    let ocsrf = owners.hidden("csrf");
    let no_csrf = s.post(&olga, &approve, "note=x").await;
    assert_eq!(no_csrf.status, StatusCode::FORBIDDEN);
    let done = s
        .post(&olga, &approve, &format!("csrf={ocsrf}&note=pin+a+digest"))
        .await;
    assert_eq!(
        (done.status, done.location()),
        (
            StatusCode::SEE_OTHER,
            format!("{REQUESTS_PAGE}?filed={id}&done=approved").as_str()
        )
    );
    let outcome = s.get(&alice, REQUESTS_PAGE).await;
    assert!(
        outcome
            .body
            .contains(r#"<span class="state approved">approved</span>"#)
    );
    assert!(outcome.body.contains("olga: “pin a digest”"));
    let again = s.post(&olga, &approve, &format!("csrf={ocsrf}")).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(
        again
            .body
            .contains(&format!("access request {id} is already approved by olga"))
    );
    let ia_now = s.identity.org("corp").unwrap().policy;
    assert!(
        ia_now.contains("allow: docker.io/someuser/custom-image"),
        "{ia_now}"
    );
}

#[tokio::test]
async fn sign_in_goes_back_only_to_console_paths() {
    let s = setup();
    for (next, lands) in [
        (
            "/console/orgs/corp/activity?user=alice",
            "/console/orgs/corp/activity?user=alice",
        ),
        ("https://evil.example/console", "/console"),
        ("//evil.example/console", "/console"),
        ("/console\\@evil.example", "/console"),
        ("/elsewhere", "/console"),
    ] {
        let page = s.send("GET", "/console/sign-in", &[], None).await;
        let login = page.cookie_value(LOGIN_COOKIE).unwrap();
        let answer = s
            .send(
                "POST",
                "/console/sign-in",
                &[(LOGIN_COOKIE, &login)],
                Some(&format!(
                    "login={login}&username=alice&password=correct+horse+battery&next={}",
                    urlencode(next)
                )),
            )
            .await;
        assert_eq!(answer.location(), lands, "{next}");
    }
}

fn gateway_event(
    ms: i64,
    org: &str,
    user: &str,
    image: &str,
    decision: &str,
) -> imagegate_server::store::AuditEvent {
    imagegate_server::store::AuditEvent {
        time_ms: ms,
        door: "gateway".into(),
        org: Some(org.into()),
        user: Some(user.into()),
        image: image.into(),
        input: image.into(),
        category: Some("community".into()),
        decision: decision.into(),
        reason: if decision == "deny" {
            "category_not_allowed"
        } else {
            "allowed"
        }
        .into(),
        mode: "enforce".into(),
        message: if decision == "deny" {
            "image access denied: community images not allowed"
        } else {
            "allowed"
        }
        .into(),
        path: Some("manifest".into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn the_activity_page_filters_pages_and_exports_csv() {
    let s = setup();
    let now = imagegate_server::store::now_ms();
    let mut events: Vec<_> = (0..60)
        .map(|i| {
            gateway_event(
                now - 60_000 * (60 - i),
                "corp",
                "alice",
                &format!("docker.io/someuser/tool:{i}"),
                "deny",
            )
        })
        .collect();
    events.push(gateway_event(
        now - 1000,
        "corp",
        "olga",
        "docker.io/library/nginx:1.27",
        "allow",
    ));
    events.push(gateway_event(
        now - 500,
        "rival",
        "rita",
        "docker.io/rival/secret:1",
        "allow",
    ));
    // A rule's refusal: no exception is asked for that way.
    events[58].reason = "rule_denied".into();
    s.identity.store().append_audit(&events).unwrap();
    let alice = s.sign_in("alice").await;
    s.community_off();
    let page = s.get(&alice, "/console/orgs/corp/activity").await;
    assert_eq!(page.status, StatusCode::OK);
    // Changes to the policy are there too: who, what, before and after.
    assert!(
        page.body.contains("<td>olga</td><td>image_access</td>"),
        "{}",
        page.body
    );
    let rows = |a: &Answer| a.body.matches("<tr><td><time").count();
    assert_eq!(rows(&page), 50, "a page is 50 events");
    assert!(
        page.body.find("library/nginx").unwrap() < page.body.find("someuser/tool:59").unwrap(),
        "newest first"
    );
    assert!(!page.body.contains("rival/secret"));
    assert!(
        page.body
            .contains(r#"<a href="/console/orgs/corp/activity?page=1" rel="next">"#)
    );
    assert!(
        page.body
            .contains("/console/orgs/corp/access-requests/new?image=docker.io/someuser/tool:59"),
        "her refusals link to a request"
    );
    assert!(page.body.contains("docker.io/someuser/tool:58"));
    assert!(
        !page
            .body
            .contains("/console/orgs/corp/access-requests/new?image=docker.io/someuser/tool:58"),
        "only image and registry access refusals link to a request"
    );
    let older = s.get(&alice, "/console/orgs/corp/activity?page=1").await;
    assert_eq!(rows(&older), 11);
    assert!(older.body.contains(r#"rel="prev""#) && !older.body.contains(r#"rel="next""#));

    let denied = s
        .get(&alice, "/console/orgs/corp/activity?decision=deny&user=alice&image=docker.io%2Fsomeuser%2Ftool&since=2h")
        .await;
    assert_eq!(rows(&denied), 50);
    assert!(
        denied
            .body
            .contains(r#"<option value="deny" selected>refused</option>"#)
    );
    let one = s.get(&alice, "/console/orgs/corp/activity?user=olga").await;
    assert_eq!(rows(&one), 1);
    let bad = s
        .get(&alice, "/console/orgs/corp/activity?since=yesterday")
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.body
            .contains("Filter not applied: since &quot;yesterday&quot;: expected RFC 3339"),
        "{}",
        bad.body
    );

    let csv = s
        .get(&alice, "/console/orgs/corp/activity.csv?decision=deny")
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(csv.headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    assert!(
        csv.headers[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .starts_with("attachment;")
    );
    let lines: Vec<&str> = csv.body.lines().collect();
    assert_eq!(lines[0], imagegate_server::audit::FIELDS.join(","));
    assert_eq!(lines.len(), 61, "every refusal, not one page");
    assert!(
        lines[1].contains("docker.io/someuser/tool:0"),
        "oldest first"
    );
    let none = s
        .get(&alice, "/console/orgs/corp/activity.csv?user=nobody")
        .await;
    assert_eq!(
        none.body.trim_end(),
        imagegate_server::audit::FIELDS.join(",")
    );
    let rita = s.sign_in("rita").await;
    let other = s.get(&rita, "/console/orgs/corp/activity.csv").await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_insights_page_draws_attempts_and_ranks_refusals_for_owners_only() {
    let s = setup();
    let now = imagegate_server::store::now_ms();
    s.identity
        .store()
        .append_audit(&[
            // More than an hour apart: two hourly bars.
            gateway_event(
                now - 3 * 3_600_000,
                "corp",
                "alice",
                "docker.io/someuser/custom-image:1",
                "deny",
            ),
            gateway_event(
                now - 5_400_000,
                "corp",
                "dave",
                "docker.io/someuser/custom-image:2",
                "deny",
            ),
            gateway_event(
                now - 60_000,
                "corp",
                "olga",
                "docker.io/library/nginx:1.27",
                "allow",
            ),
        ])
        .unwrap();
    let olga = s.sign_in("olga").await;
    let page = s.get(&olga, "/console/orgs/corp/insights?range=24h").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body
            .contains(r#"role="img" aria-labelledby="chart-title chart-desc""#)
    );
    assert!(
        page.body
            .contains("3 attempts in the last 24h: 1 allowed, 2 refused")
    );
    assert_eq!(page.body.matches(r#"<rect class="r""#).count(), 2);
    assert_eq!(page.body.matches(r#"<rect class="a""#).count(), 1);
    assert!(
        page.body
            .contains("<td><code>docker.io/someuser/custom-image</code></td><td>2</td><td>2")
    );
    assert!(
        page.body
            .contains(r#"<strong aria-current="true">24h</strong>"#)
    );
    let nav = s.get(&olga, PAGE).await;
    assert!(nav.body.contains(r#"href="/console/orgs/corp/insights""#));

    let alice = s.sign_in("alice").await;
    let refused = s.get(&alice, "/console/orgs/corp/insights").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        refused
            .body
            .contains("Only owners of corp see its insights.")
    );
    let nav = s.get(&alice, PAGE).await;
    assert!(
        !nav.body.contains("/insights"),
        "members are not offered it"
    );
}

#[tokio::test]
async fn administrators_create_organisations_from_the_home_page() {
    let s = setup();
    let olga = s.sign_in("olga").await;
    let home = s.get(&olga, "/console").await;
    assert!(!home.body.contains("Create an organisation"));
    let csrf = home.hidden("csrf");
    let refused = s
        .post(&olga, "/console/orgs", &format!("csrf={csrf}&name=newco"))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    s.identity.store().set_administrator("olga", true).unwrap();
    let home = s.get(&olga, "/console").await;
    assert!(home.body.contains("Create an organisation"));
    let made = s
        .post(
            &olga,
            "/console/orgs",
            &format!("csrf={csrf}&name=newco&namespaces=newco%2C+newco-labs"),
        )
        .await;
    assert_eq!(
        (made.status, made.location()),
        (StatusCode::SEE_OTHER, "/console/orgs/newco/image-access")
    );
    assert_eq!(
        s.identity.org("newco").unwrap().namespaces,
        ["newco", "newco-labs"]
    );
    assert!(
        s.identity
            .memberships("olga")
            .unwrap()
            .contains(&("newco".to_owned(), Role::Owner))
    );
    let dup = s
        .post(&olga, "/console/orgs", &format!("csrf={csrf}&name=newco"))
        .await;
    assert_eq!(dup.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(dup.body.contains("Organisation newco already exists."));
    let bad = s
        .post(
            &olga,
            "/console/orgs",
            &format!("csrf={csrf}&name=Bad+Name"),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.body
            .contains("organisation name &quot;Bad Name&quot; must be"),
        "{}",
        bad.body
    );
    let forged = s
        .post(&olga, "/console/orgs", "csrf=wrong&name=other")
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
}

/// `GET /` as a browser (`Accept: text/html`) and as anything else.
async fn front_door(accept: Option<&str>) -> Answer {
    let mut request = Request::get("/");
    if let Some(accept) = accept {
        request = request.header(header::ACCEPT, accept);
    }
    let response = crate::app("policy.yaml")
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

#[tokio::test]
async fn the_front_door_sends_a_browser_to_the_console_and_tells_others_what_is_served() {
    // What Chromium and Firefox send for a page.
    let browser = front_door(Some(
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    ))
    .await;
    assert_eq!(
        (browser.status, browser.location()),
        (StatusCode::SEE_OTHER, "/console")
    );

    let curl = front_door(Some("*/*")).await;
    assert_eq!(curl.status, StatusCode::OK);
    assert_eq!(
        curl.headers[header::CONTENT_TYPE],
        "text/plain; charset=utf-8"
    );
    for served in [
        "/console",
        "/v2/",
        "/admission/validate",
        "/imagepolicy",
        "/api/v1",
        "/api/v1/openapi.json",
    ] {
        assert!(curl.body.contains(served), "{served} in:\n{}", curl.body);
    }
    assert_eq!(front_door(None).await.body, curl.body);

    let json = front_door(Some("application/json")).await;
    assert_eq!(json.status, StatusCode::OK);
    let doc: serde_json::Value = serde_json::from_str(&json.body).unwrap();
    assert_eq!(doc["console"], "/console");
    assert_eq!(doc["registry"], "/v2/");
    assert_eq!(doc["admission"], "/admission/validate");
    assert_eq!(doc["imagepolicy"], "/imagepolicy");
    assert_eq!(doc["api"], "/api/v1");
    assert_eq!(doc["openapi"], "/api/v1/openapi.json");

    // A wrong path says where the console and the API are, too.
    let (status, body) = crate::get(crate::app("policy.yaml"), "/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body.contains("/console") && body.contains("/api/v1"),
        "{body}"
    );
}

#[tokio::test]
async fn the_console_with_a_trailing_slash_is_the_console() {
    let s = setup();
    let answer = s.send("GET", "/console/", &[], None).await;
    assert_eq!(
        (answer.status, answer.location()),
        (StatusCode::SEE_OTHER, "/console")
    );
}

/// The user `ada`, an administrator of this imagegate and a member of no
/// organisation (as the first start's `admin` is, for organisations made
/// with `imagegate admin org create`).
async fn administrator(s: &Setup) -> String {
    s.identity
        .create_user("ada", "correct horse battery")
        .unwrap();
    s.identity.store().set_administrator("ada", true).unwrap();
    s.sign_in("ada").await
}

#[tokio::test]
async fn an_administrator_sees_every_organisation_read_only() {
    let s = setup();
    let ada = administrator(&s).await;
    let home = s.get(&ada, "/console").await;
    assert_eq!(home.status, StatusCode::OK);
    for org in ["corp", "rival"] {
        assert!(
            home.body.contains(&format!(
                r#"<a href="/console/orgs/{org}/image-access">{org}</a> (administrator, not a member)"#
            )),
            "{org} on the home page:\n{}",
            home.body
        );
    }
    assert!(
        !home
            .body
            .contains("You are not a member of any organisation")
    );

    for page in [
        "image-access",
        "registry-access",
        "members",
        "policy",
        "access-requests",
        "activity",
    ] {
        let answer = s.get(&ada, &format!("/console/orgs/corp/{page}")).await;
        assert_eq!(answer.status, StatusCode::OK, "{page}: {}", answer.body);
        assert!(
            answer
                .body
                .contains("You are an administrator: you see corp as its members do, read-only."),
            "{page}: {}",
            answer.body
        );
        assert!(
            answer
                .body
                .contains(r#"method="post" action="/console/orgs/corp/become-owner">"#),
            "{page} offers to become an owner: {}",
            answer.body
        );
    }
    let access = s.get(&ada, PAGE).await;
    assert!(access.body.contains("disabled"), "{}", access.body);
    assert!(!access.body.contains("Save changes"));
    let members = s.get(&ada, "/console/orgs/corp/members").await;
    assert!(
        members.body.contains("<td>olga</td><td>owner</td>"),
        "{}",
        members.body
    );
    // Members read it; asking for an image is for members.
    let requests = s.get(&ada, "/console/orgs/corp/access-requests").await;
    assert!(!requests.body.contains("Send request"), "{}", requests.body);
    // Only owners see Insights.
    let insights = s.get(&ada, "/console/orgs/corp/insights").await;
    assert_eq!(insights.status, StatusCode::FORBIDDEN);

    // Read-only: a change is refused, as a member's is.
    let csrf = access.hidden("csrf");
    let refused = s
        .post(&ada, PAGE, &format!("csrf={csrf}&enabled=on&official=on"))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        !imagegate_server::settings::image_access(&s.identity, "corp")
            .unwrap()
            .enabled
    );

    // An organisation that does not exist is still not found.
    let missing = s.get(&ada, "/console/orgs/nobody/image-access").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    // Who is not an administrator still sees only their own.
    let rita = s.sign_in("rita").await;
    let home = s.get(&rita, "/console").await;
    assert!(!home.body.contains("/console/orgs/corp/"), "{}", home.body);
    assert_eq!(s.get(&rita, PAGE).await.status, StatusCode::NOT_FOUND);
    let nav = s.get(&rita, "/console/orgs/rival/image-access").await;
    assert!(!nav.body.contains("become-owner"), "{}", nav.body);
}

#[tokio::test]
async fn an_administrator_makes_themselves_an_owner_and_the_change_is_recorded() {
    let s = setup();
    let ada = administrator(&s).await;
    let csrf = s.csrf(&ada, PAGE).await;
    let forged = s
        .post(&ada, "/console/orgs/corp/become-owner", "csrf=wrong")
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(s.identity.memberships("ada").unwrap().is_empty());

    let made = s
        .post(
            &ada,
            "/console/orgs/corp/become-owner",
            &format!("csrf={csrf}"),
        )
        .await;
    assert_eq!(
        (made.status, made.location()),
        (StatusCode::SEE_OTHER, "/console/orgs/corp/members")
    );
    assert_eq!(
        s.identity.memberships("ada").unwrap(),
        [("corp".to_owned(), Role::Owner)]
    );
    let change = &s.identity.store().policy_changes("corp", 1).unwrap()[0];
    assert_eq!(
        (
            change.user.as_str(),
            change.what.as_str(),
            change.before.as_str(),
            change.after.as_str()
        ),
        ("ada", "members", "ada: not a member", "ada: owner")
    );
    // Now an owner like any other: the page is editable and offers nothing more.
    let access = s.get(&ada, PAGE).await;
    assert!(access.body.contains("Save changes"));
    assert!(!access.body.contains("become-owner"));
    let home = s.get(&ada, "/console").await;
    assert!(
        home.body
            .contains(r#"<a href="/console/orgs/corp/image-access">corp</a> (owner)"#),
        "{}",
        home.body
    );

    // A member who is not an administrator cannot do the same.
    let alice = s.sign_in("alice").await;
    let csrf = s.csrf(&alice, PAGE).await;
    let refused = s
        .post(
            &alice,
            "/console/orgs/corp/become-owner",
            &format!("csrf={csrf}"),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        refused
            .body
            .contains("Only administrators make themselves owners of an organisation."),
        "{}",
        refused.body
    );
    assert!(
        s.identity
            .memberships("alice")
            .unwrap()
            .contains(&("corp".to_owned(), Role::Member))
    );
}

/// A gateway event of `kind` (`manifest`, `blob`, `tags`) as the gateway
/// records it: `image` as decided, allowed.
fn served(ms: i64, user: &str, kind: &str, image: &str) -> imagegate_server::store::AuditEvent {
    imagegate_server::store::AuditEvent {
        path: Some(kind.into()),
        category: Some("official".into()),
        source: Some("10.0.0.7".into()),
        ..gateway_event(ms, "corp", user, image, "allow")
    }
}

#[tokio::test]
async fn activity_shows_a_pull_as_one_row_with_its_blobs_and_a_tag_list_in_words() {
    let s = setup();
    let now = imagegate_server::store::now_ms();
    let digest = |c: char| format!("sha256:{}", c.to_string().repeat(64));
    let repo = "docker.io/library/nginx";
    let tags = format!("docker.io/someuser/tool@sha256:{}", "0".repeat(64));
    s.identity
        .store()
        .append_audit(&[
            // One pull: the index by tag, the platform's manifest by
            // digest, its config and two layers.
            served(now - 9_000, "olga", "manifest", &format!("{repo}:1.27")),
            served(
                now - 8_900,
                "olga",
                "manifest",
                &format!("{repo}@{}", digest('a')),
            ),
            served(
                now - 8_800,
                "olga",
                "blob",
                &format!("{repo}@{}", digest('b')),
            ),
            served(
                now - 8_000,
                "olga",
                "blob",
                &format!("{repo}@{}", digest('c')),
            ),
            served(
                now - 7_000,
                "olga",
                "blob",
                &format!("{repo}@{}", digest('d')),
            ),
            // Someone else's pull of the same image at the same time is theirs.
            served(now - 6_000, "alice", "manifest", &format!("{repo}:1.27")),
            served(
                now - 5_900,
                "alice",
                "blob",
                &format!("{repo}@{}", digest('b')),
            ),
            // Then a pull by digest: after the blobs, so another pull.
            served(
                now - 4_000,
                "olga",
                "manifest",
                &format!("{repo}@{}", digest('a')),
            ),
            served(
                now - 3_900,
                "olga",
                "blob",
                &format!("{repo}@{}", digest('b')),
            ),
            // A tag list: no image, no digest.
            served(now - 1_000, "olga", "tags", &tags),
        ])
        .unwrap();
    let olga = s.sign_in("olga").await;
    let page = s.get(&olga, "/console/orgs/corp/activity").await;
    assert_eq!(page.status, StatusCode::OK);
    let rows = page.body.matches("<tr><td><time").count();
    assert_eq!(
        rows, 4,
        "olga's pull, alice's pull, olga's pull by digest, the tag list: {}",
        page.body
    );
    assert!(
        page.body
            .contains(&format!("<code>{repo}@{}</code>", digest('a'))),
        "the pull by digest is a row of its own: {}",
        page.body
    );
    assert_eq!(
        page.body
            .matches("<code>docker.io/library/nginx:1.27</code>")
            .count(),
        2,
        "{}",
        page.body
    );
    assert!(
        page.body.contains("pull: 2 manifests, 3 blobs"),
        "{}",
        page.body
    );
    assert_eq!(
        page.body.matches("pull: 1 manifest, 1 blob<").count(),
        2,
        "alice's and the one by digest: {}",
        page.body
    );
    assert!(
        page.body
            .contains("<code>docker.io/someuser/tool</code> tags list"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("sha256:0000"), "{}", page.body);
    assert!(!page.body.contains(&digest('c')), "blobs are folded in");

    // The export keeps every event.
    let csv = s.get(&olga, "/console/orgs/corp/activity.csv").await;
    assert_eq!(csv.body.lines().count(), 1 + 10, "{}", csv.body);
    assert!(csv.body.contains(&digest('c')));
}

#[tokio::test]
async fn insights_names_reasons_and_categories_in_words() {
    let s = setup();
    let now = imagegate_server::store::now_ms();
    s.identity
        .store()
        .append_audit(&[gateway_event(
            now - 60_000,
            "corp",
            "alice",
            "docker.io/someuser/custom-image:1",
            "deny",
        )])
        .unwrap();
    let olga = s.sign_in("olga").await;
    let page = s.get(&olga, "/console/orgs/corp/insights?range=24h").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("<td>category not allowed</td>"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("<td>community images</td>"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("category_not_allowed"), "{}", page.body);
}

#[tokio::test]
async fn the_tokens_page_names_the_gateways_host_for_docker_login() {
    // Behind a public URL: its host.
    let s = setup();
    let app = console::routes(Arc::new(
        Console::new(s.identity.clone(), true)
            .with_public_url(Some("https://gateway.corp.example".to_owned())),
    ));
    let s = Setup {
        app,
        identity: s.identity,
    };
    let olga = s.sign_in("olga").await;
    let page = s.get(&olga, "/console/tokens").await;
    assert!(
        page.body
            .contains("<code>docker login gateway.corp.example -u olga</code>"),
        "{}",
        page.body
    );

    // Without one: the host the browser asked for.
    let s = setup();
    let olga = s.sign_in("olga").await;
    let response = s
        .app
        .clone()
        .oneshot(
            Request::get("/console/tokens")
                .header(header::HOST, "localhost:8443")
                .header(header::COOKIE, format!("{SESSION_COOKIE}={olga}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8(body.to_vec()).unwrap();
    assert!(
        body.contains("<code>docker login localhost:8443 -u olga</code>"),
        "{body}"
    );
    // A Host header that is no host is not repeated.
    let response = s
        .app
        .clone()
        .oneshot(
            Request::get("/console/tokens")
                .header(header::HOST, "evil\"><b>x")
                .header(header::COOKIE, format!("{SESSION_COOKIE}={olga}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8(body.to_vec()).unwrap();
    assert!(!body.contains("evil"), "{body}");
    assert!(
        body.contains("<code>docker login HOST -u olga</code>"),
        "{body}"
    );
}
