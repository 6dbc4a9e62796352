//! Members of an organisation (owners add, change and remove them, through
//! `crate::settings`) and a user's own personal access tokens (created,
//! shown once, listed, revoked).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::orgs::Membership;
use super::{Api, ApiError, Body, Caller, ErrorBody};
use crate::audit::rfc3339;
use crate::settings;
use crate::store::{Role, Token};

/// A role to give a user.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleUpdate {
    /// `owner` or `member`.
    role: String,
}

#[utoipa::path(put, path = "/api/v1/orgs/{org}/members/{user}", tag = "members",
    params(("org" = String, Path, description = "organisation name"), ("user" = String, Path, description = "username")),
    request_body = RoleUpdate,
    responses((status = 200, body = Membership), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
/// Adds a user to the organisation or changes their role (owners). The last
/// owner cannot make themselves a member.
pub async fn put_member(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((org, user)): Path<(String, String)>,
    Body(update): Body<RoleUpdate>,
) -> Result<Json<Membership>, ApiError> {
    crate::state::blocking(move || {
        caller.owner_of(&api, &org, "members")?;
        let role = Role::parse(&update.role).ok_or_else(|| {
            ApiError::invalid(format!("role {:?} is not owner or member", update.role))
        })?;
        settings::set_member(&api.identity, &org, &caller.user, &user, role)?;
        Ok(Json(Membership::new(user, role)))
    })
    .await
}

#[utoipa::path(delete, path = "/api/v1/orgs/{org}/members/{user}", tag = "members",
    params(("org" = String, Path, description = "organisation name"), ("user" = String, Path, description = "username")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
/// Removes a user from the organisation (owners). The last owner stays.
pub async fn delete_member(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((org, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    crate::state::blocking(move || {
        caller.owner_of(&api, &org, "members")?;
        settings::remove_member(&api.identity, &org, &caller.user, &user)?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

/// A personal access token as listed: never the secret.
#[derive(Serialize, ToSchema)]
pub struct TokenView {
    /// The token's id, for revoking it.
    id: String,
    /// The name its owner gave it.
    name: String,
    /// When it was created (RFC 3339).
    created: String,
    /// When it was last used to sign in, if ever.
    last_used: Option<String>,
    /// When it stops working, if it expires.
    expires: Option<String>,
    /// When it was revoked, if it was.
    revoked: Option<String>,
}

impl TokenView {
    fn of(t: Token) -> TokenView {
        let at = |s: i64| rfc3339(s.saturating_mul(1000));
        TokenView {
            id: t.id,
            name: t.name,
            created: at(t.created),
            last_used: t.last_used.map(at),
            expires: t.expires.map(at),
            revoked: t.revoked.map(at),
        }
    }
}

/// A token to create.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTokenRequest {
    /// A name to recognise it by (1 to 100 printable characters).
    name: String,
    /// Days until it expires (1 to 3650); never, when not given.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 3650)]
    expires_days: Option<u32>,
}

/// A token just created: the secret is shown this once.
#[derive(Serialize, ToSchema)]
pub struct CreatedToken {
    /// The secret (igpat_…): copy it now, it is not stored.
    token: String,
    /// The token as listed from now on.
    #[serde(flatten)]
    listed: TokenView,
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens",
    responses((status = 200, body = Vec<TokenView>), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
/// The caller's personal access tokens, newest first.
pub async fn list_tokens(
    State(api): State<Arc<Api>>,
    caller: Caller,
) -> Result<Json<Vec<TokenView>>, ApiError> {
    crate::state::blocking(move || {
        let mut tokens = api
            .identity
            .store()
            .tokens(&caller.user)
            .map_err(|e| ApiError::unavailable(&e))?;
        tokens.sort_by_key(|t| std::cmp::Reverse(t.created));
        Ok(Json(tokens.into_iter().map(TokenView::of).collect()))
    })
    .await
}

#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens",
    request_body = NewTokenRequest,
    responses((status = 201, body = CreatedToken), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
/// Creates a personal access token for the caller; the secret is in this
/// answer and nowhere else.
pub async fn create_token(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Body(request): Body<NewTokenRequest>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    crate::state::blocking(move || {
        let created = api
            .identity
            .create_token(&caller.user, &request.name, request.expires_days)
            .map_err(|e| match e {
                crate::identity::IdentityError::Invalid(m) => {
                    ApiError::invalid(m.replace("--expires", "expires_days"))
                }
                other => other.into(),
            })?;
        Ok((
            StatusCode::CREATED,
            Json(CreatedToken {
                token: created.secret,
                listed: TokenView::of(created.token),
            }),
        ))
    })
    .await
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "the token's id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
/// Revokes one of the caller's tokens; it stops working at once. Another
/// user's token id answers 404.
pub async fn revoke_token(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    crate::state::blocking(move || {
        api.identity
            .revoke_token(&caller.user, &id)
            .map_err(|e| match e {
                crate::identity::IdentityError::Store(crate::store::StoreError::Missing {
                    ..
                }) => ApiError::not_found(format!("you have no token {id}")),
                other => other.into(),
            })?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}
