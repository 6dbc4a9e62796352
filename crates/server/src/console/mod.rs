//! The admin console under `/console`: sign-in with a username and password
//! (argon2) into a session cookie (`HttpOnly`, `SameSite=Lax`, `Secure` over
//! TLS), a CSRF token on every form, and the organisation pages. Owners edit;
//! members see the same pages read-only, and a member's POST is refused
//! whatever it carries. Settings go through `crate::settings`, as the API's do.
//! Every answer carries a Content-Security-Policy that runs only the
//! console's own stylesheet and script, and may not be framed.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use base64::Engine;
use serde::Deserialize;

use crate::identity::Identity;
use crate::settings;
use crate::store::Role;
use crate::throttle::SignInThrottle;

mod activity;
mod pages;
mod requests;

/// The session cookie.
pub const SESSION_COOKIE: &str = "imagegate_session";
/// The sign-in form's own cookie (login CSRF: the form must come from us).
pub const LOGIN_COOKIE: &str = "imagegate_login";

/// What the console's handlers share.
pub struct Console {
    identity: Identity,
    throttle: SignInThrottle,
    /// Whether cookies carry `Secure` (the console is served over TLS).
    secure_cookies: bool,
    /// The gateway's public URL, whose host people `docker login` to.
    public_url: Option<String>,
}

impl Console {
    /// The console over `identity`'s store; `tls` when served over HTTPS.
    pub fn new(identity: Identity, tls: bool) -> Console {
        Console {
            identity,
            throttle: SignInThrottle::default(),
            secure_cookies: tls,
            public_url: None,
        }
    }

    /// The gateway's public URL (`https://gateway.corp.example`), if one is
    /// configured: the pages name its host. Without one they name the host
    /// the browser asked for.
    pub fn with_public_url(mut self, public_url: Option<String>) -> Console {
        self.public_url = public_url;
        self
    }

    /// The host people give `docker login`: the public URL's, else the one
    /// this request was sent to (when it looks like a host), else `HOST`.
    fn gateway_host(&self, headers: &HeaderMap, uri: &axum::http::Uri) -> String {
        let configured = self.public_url.as_deref().map(|url| {
            let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
            rest.split('/').next().unwrap_or(rest)
        });
        let asked = || {
            uri.authority()
                .map(|a| a.as_str())
                .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()))
        };
        configured
            .or_else(asked)
            .filter(|h| {
                !h.is_empty()
                    && h.chars()
                        .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
            })
            .unwrap_or("HOST")
            .to_owned()
    }
}

/// Where the pages find their stylesheet.
const STYLESHEET: &str = "/console/console.css";
/// Where the Access tokens page finds its Copy button's script.
const SCRIPT: &str = "/console/console.js";

/// What a console page may load and who may show it: its own stylesheet,
/// script and images only (no inline style or script), forms posted only
/// back to it, and no frame around it (clickjacking; `X-Frame-Options` says
/// the same to browsers that predate `frame-ancestors`).
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; script-src 'self'; \
    img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// `/console/...`.
pub fn routes(console: Arc<Console>) -> Router {
    Router::new()
        .route(STYLESHEET, get(stylesheet))
        .route(SCRIPT, get(script))
        .route("/console", get(home))
        .route("/console/", get(|| async { Redirect::to("/console") }))
        .route("/console/sign-in", get(sign_in_page).post(sign_in))
        .route("/console/sign-out", axum::routing::post(sign_out))
        .route(
            "/console/orgs/{org}/image-access",
            get(image_access_page).post(image_access_save),
        )
        .route("/console/tokens", get(tokens_page).post(create_token))
        .route(
            "/console/orgs/{org}/members",
            get(members_page).post(add_member),
        )
        .route(
            "/console/orgs/{org}/policy",
            get(policy_page).post(save_policy),
        )
        .route(
            "/console/orgs/{org}/members/{user}",
            axum::routing::post(change_member),
        )
        .route(
            "/console/orgs/{org}/members/{user}/remove",
            axum::routing::post(remove_member),
        )
        .route(
            "/console/tokens/{id}/revoke",
            axum::routing::post(revoke_token),
        )
        .route(
            "/console/orgs/{org}/registry-access",
            get(registry_access_page).post(registry_access_save),
        )
        .route("/console/orgs", axum::routing::post(create_org))
        .route(
            "/console/orgs/{org}/become-owner",
            axum::routing::post(become_owner),
        )
        .route("/console/orgs/{org}/activity", get(activity::activity_page))
        .route(
            "/console/orgs/{org}/activity.csv",
            get(activity::activity_csv),
        )
        .route("/console/orgs/{org}/insights", get(activity::insights_page))
        .route(
            "/console/orgs/{org}/access-requests",
            get(requests::requests_page).post(requests::ask),
        )
        .route(
            "/console/orgs/{org}/access-requests/new",
            get(requests::requests_page),
        )
        .route(
            "/console/orgs/{org}/access-requests/{id}/approve",
            axum::routing::post(requests::approve),
        )
        .route(
            "/console/orgs/{org}/access-requests/{id}/decline",
            axum::routing::post(requests::decline),
        )
        .route(
            "/console/orgs/{org}/access-requests/{id}/withdraw",
            axum::routing::post(requests::withdraw),
        )
        .with_state(console)
        .layer(axum::middleware::map_response(security_headers))
}

/// The headers every console answer carries: see [`CONTENT_SECURITY_POLICY`].
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// The console's stylesheet.
async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", include_str!("console.css"))
}

/// The console's script (the Access tokens page's Copy button).
async fn script() -> Response {
    asset("text/javascript; charset=utf-8", include_str!("console.js"))
}

/// A file the pages load, `no-cache`: a browser asks again for each page, so
/// a new version shows at once (they are a few kilobytes).
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The client's address, when the server knows it.
struct Source(Option<std::net::IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Source {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Source, Self::Rejection> {
        Ok(Source(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// A signed-in request: who, their session's CSRF token.
struct Signed {
    user: String,
    csrf: String,
    secret: String,
}

impl Signed {
    fn header(&self) -> Header {
        Some((self.user.clone(), self.csrf.clone()))
    }
}

/// The value of cookie `name` in the request, if sent.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value; `max_age` 0 deletes the cookie.
fn set_cookie(console: &Console, name: &str, value: &str, max_age: Option<i64>) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if console.secure_cookies {
        c.push_str("; Secure");
    }
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn page(status: StatusCode, markup: maud::Markup) -> Response {
    (status, markup).into_response()
}

/// Why a console request is refused. Each becomes its page here, once.
enum Refusal {
    /// Not signed in (or the session ended): to the sign-in page.
    SignIn,
    /// As `SignIn`, coming back to this console path afterwards.
    SignInThen(String),
    /// An organisation the user is not in, answered as one that does not exist.
    NotFound { org: String, who: Header },
    /// Signed in, but not allowed, or a form that did not come from the console.
    Forbidden { message: String, who: Header },
    /// The store could not answer; the cause is logged, not shown.
    Unavailable,
}

/// The signed-in user and their CSRF token, for the page header.
type Header = Option<(String, String)>;

impl Refusal {
    fn unavailable(e: &dyn std::fmt::Display) -> Refusal {
        tracing::error!(error = %e, "console: the store could not answer");
        Refusal::Unavailable
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        fn header(who: &Header) -> Option<(&str, &str)> {
            who.as_ref().map(|(u, c)| (u.as_str(), c.as_str()))
        }
        match self {
            Refusal::SignIn => Redirect::to("/console/sign-in").into_response(),
            Refusal::SignInThen(next) => {
                let q = serde_urlencoded::to_string([("next", next.as_str())]).unwrap_or_default();
                Redirect::to(&format!("/console/sign-in?{q}")).into_response()
            }
            Refusal::NotFound { org, who } => page(
                StatusCode::NOT_FOUND,
                pages::problem(
                    "Not found",
                    &format!("Organisation {org} not found."),
                    header(&who),
                ),
            ),
            Refusal::Forbidden { message, who } => page(
                StatusCode::FORBIDDEN,
                pages::problem("Refused", &message, header(&who)),
            ),
            Refusal::Unavailable => page(
                StatusCode::SERVICE_UNAVAILABLE,
                pages::problem("Unavailable", "The store is unavailable; try again.", None),
            ),
        }
    }
}

/// The signed-in user, or a redirect to the sign-in page.
fn signed(console: &Console, headers: &HeaderMap) -> Result<Signed, Refusal> {
    let secret = cookie(headers, SESSION_COOKIE).ok_or(Refusal::SignIn)?;
    match console.identity.session(secret) {
        Ok(Some(s)) => Ok(Signed {
            user: s.user,
            csrf: s.csrf,
            secret: secret.to_owned(),
        }),
        Ok(None) => Err(Refusal::SignIn),
        Err(e) => Err(Refusal::unavailable(&e)),
    }
}

/// As [`signed`], for a page worth coming back to after signing in (a link
/// from a refusal message, say).
fn signed_at(
    console: &Console,
    headers: &HeaderMap,
    uri: &axum::http::Uri,
) -> Result<Signed, Refusal> {
    signed(console, headers).map_err(|r| match r {
        Refusal::SignIn => Refusal::SignInThen(
            uri.path_and_query()
                .map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned()),
        ),
        other => other,
    })
}

/// The signed-in user's role in `org`: not found for an organisation they
/// are not in, as for one that does not exist.
fn role_in(console: &Console, who: &Signed, org: &str) -> Result<Role, Refusal> {
    let memberships = console
        .identity
        .memberships(&who.user)
        .map_err(|e| Refusal::unavailable(&e))?;
    memberships
        .into_iter()
        .find(|(o, _)| o == org)
        .map(|(_, r)| r)
        .ok_or_else(|| Refusal::NotFound {
            org: org.to_owned(),
            who: who.header(),
        })
}

/// How the signed-in user stands in an organisation whose pages they open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Standing {
    /// Their role in it; `None` for an administrator who is not a member.
    member: Option<Role>,
    /// Whether they are an administrator of this imagegate.
    administrator: bool,
}

impl Standing {
    /// The role the pages are shown for: an administrator who is not a
    /// member sees what a member sees, read-only.
    fn role(self) -> Role {
        self.member.unwrap_or(Role::Member)
    }

    fn owner(self) -> bool {
        self.member == Some(Role::Owner)
    }

    /// An administrator who is not an owner, offered to become one: the
    /// form's CSRF token for the offer, else `None`.
    fn take_over(self, who: &Signed) -> Option<&str> {
        (self.administrator && !self.owner()).then_some(who.csrf.as_str())
    }
}

/// How the signed-in user stands in `org`, for its pages: a member with
/// their role, or an administrator, who sees every organisation. Anyone
/// else gets not found, as for one that does not exist. Changes still
/// need [`role_in`]: an administrator who is not an owner changes nothing.
fn standing_in(console: &Console, who: &Signed, org: &str) -> Result<Standing, Refusal> {
    let store = console.identity.store();
    let administrator = store
        .is_administrator(&who.user)
        .map_err(|e| Refusal::unavailable(&e))?;
    let member = match role_in(console, who, org) {
        Ok(role) => Some(role),
        Err(Refusal::NotFound { .. }) if administrator => {
            match store.org(org).map_err(|e| Refusal::unavailable(&e))? {
                Some(_) => None,
                None => {
                    return Err(Refusal::NotFound {
                        org: org.to_owned(),
                        who: who.header(),
                    });
                }
            }
        }
        Err(other) => return Err(other),
    };
    Ok(Standing {
        member,
        administrator,
    })
}

/// A form's CSRF token must be the session's.
fn csrf_ok(who: &Signed, sent: &str) -> Result<(), Refusal> {
    if !sent.is_empty() && constant_time_eq(sent.as_bytes(), who.csrf.as_bytes()) {
        return Ok(());
    }
    Err(Refusal::Forbidden {
        message:
            "This form is stale or did not come from the console. Reload the page and try again."
                .to_owned(),
        who: who.header(),
    })
}

/// A form an owner posts: signed in, the session's CSRF token, and an owner
/// of `org`. A member is refused whatever the form carries.
fn owner_posting(
    console: &Console,
    headers: &HeaderMap,
    org: &str,
    csrf: &str,
    what: &str,
) -> Result<Signed, Refusal> {
    let who = signed(console, headers)?;
    csrf_ok(&who, csrf)?;
    if !standing_in(console, &who, org)?.owner() {
        return Err(Refusal::Forbidden {
            message: format!("Only owners of {org} can change {what}; members see it read-only."),
            who: who.header(),
        });
    }
    Ok(who)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn home(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    crate::state::blocking(move || {
        let who = signed(&console, &headers)?;
        Ok(home_view(&console, &who, None)?.into_response())
    })
    .await
}

fn home_view(
    console: &Console,
    who: &Signed,
    error: Option<&str>,
) -> Result<maud::Markup, Refusal> {
    let orgs = console
        .identity
        .memberships(&who.user)
        .map_err(|e| Refusal::unavailable(&e))?;
    let mut orgs: Vec<(String, &'static str)> =
        orgs.into_iter().map(|(o, r)| (o, r.as_str())).collect();
    let administrator = console
        .identity
        .store()
        .is_administrator(&who.user)
        .map_err(|e| Refusal::unavailable(&e))?;
    // Administrators see every organisation, theirs or not.
    if administrator {
        for org in console
            .identity
            .org_names()
            .map_err(|e| Refusal::unavailable(&e))?
        {
            if !orgs.iter().any(|(o, _)| *o == org) {
                orgs.push((org, "administrator, not a member"));
            }
        }
        orgs.sort();
    }
    Ok(pages::home(&pages::HomePage {
        user: &who.user,
        csrf: &who.csrf,
        orgs: &orgs,
        administrator,
        error,
    }))
}

#[derive(Deserialize)]
struct NewOrgForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespaces: String,
}

/// An administrator creates an organisation, and owns it.
async fn create_org(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Form(form): Form<NewOrgForm>,
) -> Result<Response, Refusal> {
    crate::state::blocking(move || {
        let who = signed(&console, &headers)?;
        csrf_ok(&who, &form.csrf)?;
        let namespaces: Vec<String> = form
            .namespaces
            .split([',', ' ', '\n', '\r'])
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect();
        let name = form.name.trim();
        match settings::create_org(&console.identity, &who.user, name, &namespaces) {
            Ok(_) => {
                Ok(Redirect::to(&format!("/console/orgs/{name}/image-access")).into_response())
            }
            Err(settings::SettingsError::Forbidden(message)) => Err(Refusal::Forbidden {
                message,
                who: who.header(),
            }),
            Err(settings::SettingsError::Identity(crate::identity::IdentityError::Invalid(m))) => {
                Ok((
                    StatusCode::UNPROCESSABLE_ENTITY,
                    home_view(&console, &who, Some(&m))?,
                )
                    .into_response())
            }
            Err(settings::SettingsError::Identity(crate::identity::IdentityError::Store(
                crate::store::StoreError::Exists { .. },
            ))) => Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                home_view(
                    &console,
                    &who,
                    Some(&format!("Organisation {name} already exists.")),
                )?,
            )
                .into_response()),
            Err(e) => Err(Refusal::unavailable(&e)),
        }
    })
    .await
}

/// An administrator makes themselves an owner of the organisation.
async fn become_owner(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path(org): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, Refusal> {
    crate::state::blocking(move || {
        let who = signed(&console, &headers)?;
        csrf_ok(&who, &form.csrf)?;
        match settings::become_owner(&console.identity, &org, &who.user) {
            Ok(()) => Ok(Redirect::to(&format!("/console/orgs/{org}/members")).into_response()),
            Err(settings::SettingsError::Forbidden(_)) => Err(Refusal::Forbidden {
                message: "Only administrators make themselves owners of an organisation."
                    .to_owned(),
                who: who.header(),
            }),
            Err(settings::SettingsError::Identity(crate::identity::IdentityError::Store(
                crate::store::StoreError::Missing { .. },
            ))) => Err(Refusal::NotFound {
                org: org.clone(),
                who: who.header(),
            }),
            Err(e) => Err(Refusal::unavailable(&e)),
        }
    })
    .await
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

/// Where to go after signing in: a console path only (never another site:
/// no scheme, no `//` host, no backslash).
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with("/console")
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control) =>
        {
            n
        }
        _ => "/console",
    }
}

async fn sign_in_page(
    State(console): State<Arc<Console>>,
    Query(q): Query<NextQuery>,
) -> Result<Response, Refusal> {
    crate::state::blocking(move || {
        let mut b = [0u8; 24];
        getrandom::fill(&mut b).map_err(|e| Refusal::unavailable(&e))?;
        let login = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let next = safe_next(q.next.as_deref());
        let mut response = pages::sign_in(&login, next, None).into_response();
        response.headers_mut().insert(
            header::SET_COOKIE,
            set_cookie(&console, LOGIN_COOKIE, &login, Some(600)),
        );
        Ok(response)
    })
    .await
}

#[derive(Deserialize)]
struct SignInForm {
    #[serde(default)]
    login: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

async fn sign_in(
    State(console): State<Arc<Console>>,
    Source(source): Source,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Result<Response, Refusal> {
    crate::state::blocking(move || {
    let login_ok = cookie(&headers, LOGIN_COOKIE).is_some_and(|c| {
        !form.login.is_empty() && constant_time_eq(c.as_bytes(), form.login.as_bytes())
    });
    if !login_ok {
        return Err(Refusal::Forbidden {
            message: "This sign-in form did not come from the console (or has expired). Open the sign-in page again.".to_owned(),
            who: None,
        });
    }
    let mut keys = vec![format!("user:{}", form.username)];
    keys.extend(source.map(|ip| format!("ip:{ip}")));
    if console.throttle.limited(&keys) {
        return Ok(page(
            StatusCode::TOO_MANY_REQUESTS,
            pages::sign_in(
                &form.login,
                safe_next(Some(&form.next)),
                Some("Too many failed sign-ins; try again in a few minutes."),
            ),
        ));
    }
    match console
        .identity
        .check_password(&form.username, &form.password)
    {
        Ok(true) => {}
        Ok(false)
        | Err(crate::identity::IdentityError::Store(crate::store::StoreError::Missing {
            ..
        })) => {
            console.throttle.failed(keys);
            return Ok(page(
                StatusCode::UNAUTHORIZED,
                pages::sign_in(
                    &form.login,
                    safe_next(Some(&form.next)),
                    Some("Invalid username or password."),
                ),
            ));
        }
        Err(e) => return Err(Refusal::unavailable(&e)),
    }
    // A new session every time: a session id a browser brought along (set by
    // someone else, say) is never promoted to a signed-in one.
    if let Some(old) = cookie(&headers, SESSION_COOKIE) {
        let _ = console.identity.end_session(old);
    }
    let (secret, _) = console
        .identity
        .start_session(&form.username)
        .map_err(|e| Refusal::unavailable(&e))?;
    let mut response = Redirect::to(safe_next(Some(&form.next))).into_response();
    let h = response.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(
            &console,
            SESSION_COOKIE,
            &secret,
            Some(crate::identity::SESSION_SECONDS),
        ),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(&console, LOGIN_COOKIE, "", Some(0)),
    );
    Ok(response)
}).await
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn sign_out(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, Refusal> {
    crate::state::blocking(move || {
        let who = signed(&console, &headers)?;
        csrf_ok(&who, &form.csrf)?;
        console
            .identity
            .end_session(&who.secret)
            .map_err(|e| Refusal::unavailable(&e))?;
        let mut response = Redirect::to("/console/sign-in").into_response();
        response.headers_mut().insert(
            header::SET_COOKIE,
            set_cookie(&console, SESSION_COOKIE, "", Some(0)),
        );
        Ok(response)
    })
    .await
}

#[derive(Deserialize)]
struct Saved {
    #[serde(default)]
    saved: Option<String>,
}

async fn image_access_page(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path(org): Path<String>,
    Query(saved): Query<Saved>,
) -> Result<Response, Refusal> {
    crate::state::blocking(move || {
        let who = signed(&console, &headers)?;
        let standing = standing_in(&console, &who, &org)?;
        let settings = settings::image_access(&console.identity, &org)
            .map_err(|e| Refusal::unavailable(&e))?;
        Ok(pages::image_access(&pages::ImageAccessPage {
            user: &who.user,
            csrf: &who.csrf,
            org: &org,
            settings: &settings,
            editable: standing.owner(),
            take_over: standing.take_over(&who),
            saved: saved.saved.is_some(),
        })
        .into_response())
    })
    .await
}

#[derive(Deserialize)]
struct ImageAccessForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    enabled: Option<String>,
    #[serde(default)]
    official: Option<String>,
    #[serde(default)]
    verified_publisher: Option<String>,
    #[serde(default)]
    community: Option<String>,
}

async fn image_access_save(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path(org): Path<String>,
    Form(form): Form<ImageAccessForm>,
) -> Result<Response, Refusal> {
    crate::state::blocking(move || {
        let who = owner_posting(&console, &headers, &org, &form.csrf, "image access")?;
        let current = settings::image_access(&console.identity, &org)
            .map_err(|e| Refusal::unavailable(&e))?;
        let on = |v: &Option<String>| v.is_some();
        let to = settings::ImageAccess {
            enabled: on(&form.enabled),
            official: on(&form.official),
            verified_publisher: on(&form.verified_publisher),
            community: on(&form.community),
            ..current
        };
        match settings::set_image_access(&console.identity, &org, &who.user, &to) {
            Ok(()) => Ok(
                Redirect::to(&format!("/console/orgs/{org}/image-access?saved=1")).into_response(),
            ),
            Err(settings::SettingsError::Invalid { message, .. }) => Ok(page(
                StatusCode::UNPROCESSABLE_ENTITY,
                pages::problem("Not saved", &message, Some((&who.user, &who.csrf))),
            )),
            Err(e) => Err(Refusal::unavailable(&e)),
        }
    })
    .await
}

async fn registry_access_page(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path(org): Path<String>,
    Query(saved): Query<Saved>,
) -> Result<Response, Refusal> {
    crate::state::blocking(move || {
        let who = signed(&console, &headers)?;
        let standing = standing_in(&console, &who, &org)?;
        let ra = settings::registry_access(&console.identity, &org)
            .map_err(|e| Refusal::unavailable(&e))?;
        Ok(pages::registry_access(&pages::RegistryAccessPage {
            user: &who.user,
            csrf: &who.csrf,
            org: &org,
            enabled: ra.enabled,
            allow: &ra.allow.join("\n"),
            editable: standing.owner(),
            take_over: standing.take_over(&who),
            saved: saved.saved.is_some(),
            problems: &[],
        })
        .into_response())
    })
    .await
}

#[derive(Deserialize)]
struct RegistryAccessForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    enabled: Option<String>,
    #[serde(default)]
    allow: String,
}

async fn registry_access_save(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path(org): Path<String>,
    Form(form): Form<RegistryAccessForm>,
) -> Result<Response, Refusal> {
    crate::state::blocking(move || {
        let who = owner_posting(&console, &headers, &org, &form.csrf, "registry access")?;
        // One entry per non-blank line; problems are reported by line number.
        let lines: Vec<(usize, &str)> = form
            .allow
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty())
            .collect();
        let problems: Vec<settings::Problem> = lines
            .iter()
            .filter_map(|(n, entry)| {
                settings::check_registry(entry)
                    .err()
                    .map(|message| settings::Problem {
                        path: format!("line {n}"),
                        at: None,
                        message,
                    })
            })
            .collect();
        let to = settings::RegistryAccess {
            enabled: form.enabled.is_some(),
            allow: lines.iter().map(|(_, l)| (*l).to_owned()).collect(),
        };
        let saved = if problems.is_empty() {
            settings::set_registry_access(&console.identity, &org, &who.user, &to)
        } else {
            Err(settings::SettingsError::Invalid {
                message: String::new(),
                problems,
            })
        };
        match saved {
            Ok(()) => Ok(
                Redirect::to(&format!("/console/orgs/{org}/registry-access?saved=1"))
                    .into_response(),
            ),
            Err(settings::SettingsError::Invalid { problems, .. }) => Ok(page(
                StatusCode::UNPROCESSABLE_ENTITY,
                pages::registry_access(&pages::RegistryAccessPage {
                    user: &who.user,
                    csrf: &who.csrf,
                    org: &org,
                    enabled: to.enabled,
                    allow: &form.allow,
                    editable: true,
                    take_over: None,
                    saved: false,
                    problems: &problems,
                }),
            )),
            Err(e) => Err(Refusal::unavailable(&e)),
        }
    })
    .await
}

/// The signed-in user's tokens page, with a just-created token or an error.
fn tokens_view(
    console: &Console,
    who: &Signed,
    host: &str,
    created: Option<(&str, &str)>,
    error: Option<&str>,
) -> Result<maud::Markup, Refusal> {
    let mut tokens = console
        .identity
        .store()
        .tokens(&who.user)
        .map_err(|e| Refusal::unavailable(&e))?;
    tokens.sort_by_key(|t| std::cmp::Reverse(t.created));
    Ok(pages::tokens(&pages::TokensPage {
        user: &who.user,
        csrf: &who.csrf,
        tokens: &tokens,
        host,
        created,
        error,
        now: crate::store::now(),
    }))
}

async fn tokens_page(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Result<Response, Refusal> {
    crate::state::blocking(move || {
        let who = signed(&console, &headers)?;
        let host = console.gateway_host(&headers, &uri);
        Ok(tokens_view(&console, &who, &host, None, None)?.into_response())
    })
    .await
}

#[derive(Deserialize)]
struct NewTokenForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    expires_days: String,
}

async fn create_token(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    Form(form): Form<NewTokenForm>,
) -> Result<Response, Refusal> {
    crate::state::blocking(move || {
        let who = signed(&console, &headers)?;
        let host = console.gateway_host(&headers, &uri);
        csrf_ok(&who, &form.csrf)?;
        let days = match form.expires_days.trim() {
            "" => None,
            d => match d.parse::<u32>() {
                Ok(n) => Some(n),
                Err(_) => {
                    let page = tokens_view(
                        &console,
                        &who,
                        &host,
                        None,
                        Some("Expiry must be a number of days."),
                    )?;
                    return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
                }
            },
        };
        match console.identity.create_token(&who.user, &form.name, days) {
            // The secret is shown on this answer only: no redirect, no copy kept.
            Ok(created) => Ok((
                StatusCode::CREATED,
                [(header::CACHE_CONTROL, "no-store")],
                tokens_view(
                    &console,
                    &who,
                    &host,
                    Some((&form.name, &created.secret)),
                    None,
                )?,
            )
                .into_response()),
            Err(crate::identity::IdentityError::Invalid(m)) => {
                let m = m.replace("--expires", "Expiry");
                let page = tokens_view(&console, &who, &host, None, Some(&m))?;
                Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
            }
            Err(e) => Err(Refusal::unavailable(&e)),
        }
    })
    .await
}

async fn revoke_token(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, Refusal> {
    crate::state::blocking(move || {
        let who = signed(&console, &headers)?;
        csrf_ok(&who, &form.csrf)?;
        match console.identity.revoke_token(&who.user, &id) {
            Ok(()) => Ok(Redirect::to("/console/tokens").into_response()),
            Err(crate::identity::IdentityError::Store(crate::store::StoreError::Missing {
                ..
            })) => Err(Refusal::Forbidden {
                message: "You have no such token.".to_owned(),
                who: who.header(),
            }),
            Err(e) => Err(Refusal::unavailable(&e)),
        }
    })
    .await
}

/// The Members page, with an error after a refused change.
fn members_view(
    console: &Console,
    who: &Signed,
    org: &str,
    standing: Standing,
    error: Option<&str>,
) -> Result<maud::Markup, Refusal> {
    let members: Vec<(String, &'static str)> = console
        .identity
        .members(org)
        .map_err(|e| Refusal::unavailable(&e))?
        .into_iter()
        .map(|(u, r)| (u, r.as_str()))
        .collect();
    Ok(pages::members(&pages::MembersPage {
        user: &who.user,
        csrf: &who.csrf,
        org,
        members: &members,
        editable: standing.owner(),
        take_over: standing.take_over(who),
        error,
    }))
}

async fn members_page(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path(org): Path<String>,
) -> Result<Response, Refusal> {
    crate::state::blocking(move || {
        let who = signed(&console, &headers)?;
        let standing = standing_in(&console, &who, &org)?;
        Ok(members_view(&console, &who, &org, standing, None)?.into_response())
    })
    .await
}

#[derive(Deserialize)]
struct MemberForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    role: String,
}

/// Applies a membership change and answers with the page again: a redirect
/// when it was made, the page with the reason when it was refused.
fn member_change(
    console: &Console,
    who: &Signed,
    org: &str,
    change: Result<(), settings::SettingsError>,
) -> Result<Response, Refusal> {
    match change {
        Ok(()) => Ok(Redirect::to(&format!("/console/orgs/{org}/members")).into_response()),
        Err(
            settings::SettingsError::Invalid { message, .. }
            | settings::SettingsError::Missing(message),
        ) => {
            let owner = Standing {
                member: Some(Role::Owner),
                administrator: false,
            };
            let page = members_view(console, who, org, owner, Some(&message))?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(Refusal::unavailable(&e)),
    }
}

fn role_of(text: &str) -> Result<Role, settings::SettingsError> {
    Role::parse(text).ok_or_else(|| settings::SettingsError::Invalid {
        message: format!("role {text:?} is not owner or member"),
        problems: Vec::new(),
    })
}

async fn add_member(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path(org): Path<String>,
    Form(form): Form<MemberForm>,
) -> Result<Response, Refusal> {
    crate::state::blocking(move || {
        let who = owner_posting(&console, &headers, &org, &form.csrf, "its members")?;
        let change = role_of(&form.role).and_then(|role| {
            settings::set_member(
                &console.identity,
                &org,
                &who.user,
                form.username.trim(),
                role,
            )
        });
        member_change(&console, &who, &org, change)
    })
    .await
}

async fn change_member(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path((org, user)): Path<(String, String)>,
    Form(form): Form<MemberForm>,
) -> Result<Response, Refusal> {
    crate::state::blocking(move || {
        let who = owner_posting(&console, &headers, &org, &form.csrf, "its members")?;
        let change = role_of(&form.role)
            .and_then(|role| settings::set_member(&console.identity, &org, &who.user, &user, role));
        member_change(&console, &who, &org, change)
    })
    .await
}

async fn remove_member(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path((org, user)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, Refusal> {
    crate::state::blocking(move || {
        let who = owner_posting(&console, &headers, &org, &form.csrf, "its members")?;
        let change = settings::remove_member(&console.identity, &org, &who.user, &user);
        member_change(&console, &who, &org, change)
    })
    .await
}

#[derive(Deserialize)]
struct PolicyQuery {
    #[serde(default)]
    saved: Option<String>,
    #[serde(default)]
    image: Option<String>,
}

async fn policy_page(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path(org): Path<String>,
    Query(q): Query<PolicyQuery>,
) -> Result<Response, Refusal> {
    crate::state::blocking(move || {
        let who = signed(&console, &headers)?;
        let standing = standing_in(&console, &who, &org)?;
        let yaml = console
            .identity
            .org(&org)
            .map_err(|e| Refusal::unavailable(&e))?
            .policy;
        let image = q.image.as_deref().map(str::trim).filter(|i| !i.is_empty());
        // The stored policy loaded when it was saved; if it no longer does, the
        // box says so instead of deciding with something else.
        let policy = imagegate_core::Policy::load(&yaml);
        let tried = match (image, &policy) {
            (Some(image), Ok(policy)) => {
                let input = imagegate_core::Input {
                    image,
                    namespace: None,
                    user: Some(&who.user),
                    break_glass: false,
                    owner: false,
                };
                Some((image, imagegate_core::decide_explained(policy, &input)))
            }
            _ => None,
        };
        Ok(pages::policy(&pages::PolicyPage {
            user: &who.user,
            csrf: &who.csrf,
            org: &org,
            yaml: &yaml,
            editable: standing.owner(),
            take_over: standing.take_over(&who),
            saved: q.saved.is_some(),
            problems: &[],
            tried: tried
                .as_ref()
                .map(|(image, (decision, steps))| pages::Tried {
                    image,
                    decision,
                    steps,
                }),
        })
        .into_response())
    })
    .await
}

#[derive(Deserialize)]
struct PolicyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    yaml: String,
}

async fn save_policy(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path(org): Path<String>,
    Form(form): Form<PolicyForm>,
) -> Result<Response, Refusal> {
    crate::state::blocking(move || {
        let who = owner_posting(&console, &headers, &org, &form.csrf, "its policy")?;
        // Browsers send CR LF line ends from a textarea.
        let yaml = form.yaml.replace("\r\n", "\n");
        match settings::set_policy(&console.identity, &org, &who.user, "policy", &yaml) {
            Ok(()) => {
                Ok(Redirect::to(&format!("/console/orgs/{org}/policy?saved=1")).into_response())
            }
            Err(settings::SettingsError::Invalid { problems, .. }) => Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                pages::policy(&pages::PolicyPage {
                    user: &who.user,
                    csrf: &who.csrf,
                    org: &org,
                    yaml: &yaml,
                    editable: true,
                    take_over: None,
                    saved: false,
                    problems: &problems,
                    tried: None,
                }),
            )
                .into_response()),
            Err(e) => Err(Refusal::unavailable(&e)),
        }
    })
    .await
}
