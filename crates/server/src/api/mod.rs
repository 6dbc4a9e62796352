//! The REST API under `/api/v1`: organisations, their policy, image access,
//! registry access, members, the record of changes, the audit log and the
//! caller's personal access tokens, with the same owner/member permissions
//! as the console. Callers sign in with a personal access token as a Bearer
//! token, or with the console's session cookie (changes then need the
//! session's CSRF token in `X-CSRF-Token`). The OpenAPI document at
//! `/api/v1/openapi.json` is generated from these handlers (utoipa), so the
//! spec cannot drift from the code. Every answer carries
//! `X-Content-Type-Options: nosniff`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{Method, header, request::Parts};
use axum::routing::get;
use serde::de::DeserializeOwned;
use utoipa::OpenApi;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::identity::{Identity, SignInError};
use crate::store::Role;

mod audit;
mod error;
mod insights;
mod orgs;
mod people;
mod requests;

pub use error::{ApiError, ErrorBody, ProblemDetail};

/// What the API's handlers share.
pub struct Api {
    identity: Identity,
}

impl Api {
    /// The API over `identity`'s store.
    pub fn new(identity: Identity) -> Api {
        Api { identity }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "imagegate API",
        description = "Image access, registry access and policy for organisations; the same actions as the console."
    ),
    modifiers(&BearerAuth),
    components(schemas(ErrorBody))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::console::SESSION_COOKIE,
                "The console's session cookie; a change also sends the session's CSRF token in X-CSRF-Token",
            ))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A personal access token (igpat_…)"))
                    .build(),
            ),
        );
    }
}

/// The router and the OpenAPI document it was built from.
fn parts(api: Arc<Api>) -> (Router, utoipa::openapi::OpenApi) {
    let (router, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(orgs::me))
        .routes(routes!(orgs::org))
        .routes(routes!(orgs::get_policy, orgs::put_policy))
        .routes(routes!(orgs::get_image_access, orgs::put_image_access))
        .routes(routes!(
            orgs::get_registry_access,
            orgs::put_registry_access
        ))
        .routes(routes!(orgs::members))
        .routes(routes!(people::put_member, people::delete_member))
        .routes(routes!(orgs::changes))
        .routes(routes!(audit::audit))
        .routes(routes!(people::list_tokens, people::create_token))
        .routes(routes!(people::revoke_token))
        .routes(routes!(insights::get))
        .routes(routes!(requests::list, requests::create))
        .routes(routes!(requests::get, requests::withdraw))
        .routes(routes!(requests::approve))
        .routes(routes!(requests::decline))
        .routes(routes!(orgs::create_org))
        .with_state(api)
        .split_for_parts();
    (router, either_sign_in(doc))
}

/// Every operation that takes the bearer token takes the session cookie too
/// (two alternatives), so the handlers name only `bearer`.
fn either_sign_in(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let alternatives = || {
        vec![
            SecurityRequirement::new("bearer", Vec::<String>::new()),
            SecurityRequirement::new("session", Vec::<String>::new()),
        ]
    };
    for item in doc.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
                op.security = Some(alternatives());
            }
        }
    }
    doc
}

/// `/api/v1/...` and `/api/v1/openapi.json`.
pub fn routes(api: Arc<Api>) -> Router {
    let (router, doc) = parts(api);
    let doc = Arc::new(doc);
    router
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { axum::Json(doc.as_ref().clone()) }
            }),
        )
        .route(
            "/api/v1/{*rest}",
            axum::routing::any(|| async { ApiError::not_found("no such API path") }),
        )
        .layer(axum::middleware::map_response(nosniff))
}

/// Every API answer is JSON and says so: `nosniff` keeps a browser from
/// reading one as something else (HTML, script) whatever it holds.
async fn nosniff(mut response: axum::response::Response) -> axum::response::Response {
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        axum::http::HeaderValue::from_static("nosniff"),
    );
    response
}

/// The signed-in caller.
pub struct Caller {
    /// The username.
    pub user: String,
}

impl FromRequestParts<Arc<Api>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Arc<Api>) -> Result<Caller, ApiError> {
        // The credentials are read here; the store is asked off the
        // runtime's threads.
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            let (api, parts) = (api.clone(), SessionParts::of(parts));
            return crate::state::blocking(move || session_caller(&parts, &api)).await;
        };
        let secret = value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or_else(|| ApiError::unauthorized("the API takes Authorization: Bearer <token>"))?
            .to_owned();
        let api = api.clone();
        crate::state::blocking(move || match api.identity.bearer(&secret) {
            Ok(Ok(token)) => Ok(Caller { user: token.user }),
            Ok(Err(SignInError::Invalid)) => {
                Err(ApiError::unauthorized("invalid personal access token"))
            }
            Ok(Err(e)) => Err(ApiError::unauthorized(e.to_string())),
            Err(e) => Err(ApiError::unavailable(&e)),
        })
        .await
    }
}

/// What a session sign-in needs of a request: its method and headers.
struct SessionParts {
    method: Method,
    headers: axum::http::HeaderMap,
}

impl SessionParts {
    fn of(parts: &Parts) -> SessionParts {
        SessionParts {
            method: parts.method.clone(),
            headers: parts.headers.clone(),
        }
    }
}

/// The console's session cookie signs in to the API too. A request that
/// changes something must also carry the session's CSRF token in
/// `X-CSRF-Token`, which another site's page cannot read or send.
fn session_caller(parts: &SessionParts, api: &Api) -> Result<Caller, ApiError> {
    let no_credentials = || {
        ApiError::unauthorized(
            "sign in: send a personal access token as Authorization: Bearer igpat_…",
        )
    };
    let secret = crate::console::cookie(&parts.headers, crate::console::SESSION_COOKIE)
        .ok_or_else(no_credentials)?;
    let session = api
        .identity
        .session(secret)
        .map_err(|e| ApiError::unavailable(&e))?
        .ok_or_else(no_credentials)?;
    let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    let sent = parts
        .headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !safe && sent != session.csrf {
        return Err(ApiError::forbidden(
            "a change signed in by the console's session needs its CSRF token in X-CSRF-Token",
        ));
    }
    Ok(Caller { user: session.user })
}

impl Caller {
    /// The caller's role in `org`. A caller who is not a member gets 404, as
    /// for an organisation that does not exist: other organisations' names
    /// are not disclosed.
    fn role_in(&self, api: &Api, org: &str) -> Result<Role, ApiError> {
        let memberships = api.identity.memberships(&self.user)?;
        memberships
            .into_iter()
            .find(|(o, _)| o == org)
            .map(|(_, role)| role)
            .ok_or_else(|| ApiError::not_found(format!("organisation {org} not found")))
    }

    /// As [`Caller::role_in`], refusing members: only owners change things.
    fn owner_of(&self, api: &Api, org: &str, what: &str) -> Result<(), ApiError> {
        self.owner_for(
            api,
            org,
            &format!("change its {what}; members see it read-only"),
        )
    }

    /// As [`Caller::role_in`], for what only owners do: "only owners of
    /// ORG can DOING".
    fn owner_for(&self, api: &Api, org: &str, doing: &str) -> Result<(), ApiError> {
        match self.role_in(api, org)? {
            Role::Owner => Ok(()),
            Role::Member => Err(ApiError::forbidden(format!(
                "only owners of {org} can {doing}"
            ))),
        }
    }
}

/// A `limit` query parameter: `default` when absent, refused outside 1..=1000.
fn limit(asked: Option<usize>, default: usize) -> Result<usize, ApiError> {
    const MAX: usize = 1000;
    match asked.unwrap_or(default) {
        n @ 1..=MAX => Ok(n),
        n => Err(ApiError::invalid(format!(
            "limit {n} is not between 1 and {MAX}"
        ))),
    }
}

/// A JSON body whose rejections are the API's error shape.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Arc<Api>> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &Arc<Api>) -> Result<Body<T>, ApiError> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Body(value)),
            Err(rejection) => Err(ApiError::bad_request(rejection.body_text())),
        }
    }
}
