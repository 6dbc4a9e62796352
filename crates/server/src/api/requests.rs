//! Access requests: members ask for an image their organisation refused
//! them; owners approve (an allow rule for exactly that repository) or
//! decline; the requester sees the outcome and may withdraw an open request.
//! The rules live in `crate::requests`, shared with the console.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{Api, ApiError, Body, Caller, ErrorBody};
use crate::audit::rfc3339;
use crate::requests::{self, RequestError};
use crate::store::AccessRequest;

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> ApiError {
        match e {
            RequestError::Invalid(m) => ApiError::invalid(m),
            RequestError::NotFound(m) => ApiError::not_found(m),
            RequestError::Forbidden(m) => ApiError::forbidden(m),
            RequestError::Conflict(m) => ApiError::conflict(m),
            RequestError::Settings(e) => e.into(),
        }
    }
}

/// An access request.
#[derive(Serialize, ToSchema)]
pub struct AccessRequestView {
    /// Its number.
    id: i64,
    /// The organisation.
    org: String,
    /// Who asked.
    user: String,
    /// The image asked for, normalised.
    image: String,
    /// The repository an approval allows: the rule is `allow: <repository>`.
    repository: String,
    /// Why they need it.
    reason: String,
    /// The refusal they met when they asked.
    refusal: String,
    /// `open`, `approved`, `declined` or `withdrawn`.
    state: String,
    /// When it was asked, RFC 3339.
    created: String,
    /// Who settled it.
    decided_by: Option<String>,
    /// When it was settled, RFC 3339.
    decided: Option<String>,
    /// The owner's note to the requester.
    note: Option<String>,
}

impl From<AccessRequest> for AccessRequestView {
    fn from(r: AccessRequest) -> AccessRequestView {
        AccessRequestView {
            id: r.id,
            org: r.org,
            user: r.user,
            image: r.image,
            repository: r.repository,
            reason: r.reason,
            refusal: r.refusal,
            state: r.state,
            created: rfc3339(r.created_ms),
            decided_by: r.decided_by,
            decided: r.decided_ms.map(rfc3339),
            note: r.note,
        }
    }
}

/// A new access request.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccessRequest {
    /// The image, as you would pull it (`someuser/tool:1`).
    image: String,
    /// Why you need it: owners decide on this.
    reason: String,
}

/// An owner's decision.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// A note to the requester.
    #[serde(default)]
    note: String,
}

/// The optional decision body: none, or the JSON of [`Decision`].
fn decision(body: &[u8]) -> Result<Decision, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Decision::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body is not a decision ({{\"note\": \"…\"}}): {e}"
        ))
    })
}

/// Which requests to list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RequestsQuery {
    /// `open`, `approved`, `declined` or `withdrawn`; all when absent.
    state: Option<String>,
    /// At most this many, newest first (default 100, at most 1000).
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/api/v1/orgs/{org}/access-requests", tag = "access requests",
    params(("org" = String, Path, description = "organisation name"), RequestsQuery),
    responses((status = 200, body = Vec<AccessRequestView>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
/// Access requests, newest first: owners see everyone's, members their own.
pub async fn list(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(org): Path<String>,
    query: Result<Query<RequestsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<AccessRequestView>>, ApiError> {
    crate::state::blocking(move || {
        let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
        let role = caller.role_in(&api, &org)?;
        let limit = super::limit(q.limit, 100)?;
        let found = requests::list(
            &api.identity,
            &org,
            &caller.user,
            role,
            q.state.as_deref(),
            limit,
        )?;
        Ok(Json(found.into_iter().map(Into::into).collect()))
    })
    .await
}

#[utoipa::path(post, path = "/api/v1/orgs/{org}/access-requests", tag = "access requests",
    params(("org" = String, Path, description = "organisation name")),
    request_body = NewAccessRequest,
    responses((status = 201, description = "filed", body = AccessRequestView),
        (status = 200, description = "you already have an open request for this repository", body = AccessRequestView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
/// Asks the owners for an image the organisation's policy refuses you.
/// Refused (422) when the image is already allowed, or when an exception for
/// its repository would not help (a deny rule, say).
pub async fn create(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(org): Path<String>,
    Body(new): Body<NewAccessRequest>,
) -> Result<(StatusCode, Json<AccessRequestView>), ApiError> {
    crate::state::blocking(move || {
        let role = caller.role_in(&api, &org)?;
        let (request, filed) = requests::ask(
            &api.identity,
            &org,
            &caller.user,
            role,
            &new.image,
            &new.reason,
        )?;
        let status = if filed {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok((status, Json(request.into())))
    })
    .await
}

#[utoipa::path(get, path = "/api/v1/orgs/{org}/access-requests/{id}", tag = "access requests",
    params(("org" = String, Path, description = "organisation name"), ("id" = i64, Path, description = "request number")),
    responses((status = 200, body = AccessRequestView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
/// One access request (owners: any; members: their own).
pub async fn get(
    State(api): State<Arc<Api>>,
    caller: Caller,
    path: Result<Path<(String, i64)>, axum::extract::rejection::PathRejection>,
) -> Result<Json<AccessRequestView>, ApiError> {
    crate::state::blocking(move || {
        let Path((org, id)) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
        let role = caller.role_in(&api, &org)?;
        Ok(Json(
            requests::get(&api.identity, &org, &caller.user, role, id)?.into(),
        ))
    })
    .await
}

#[utoipa::path(post, path = "/api/v1/orgs/{org}/access-requests/{id}/approve", tag = "access requests",
    params(("org" = String, Path, description = "organisation name"), ("id" = i64, Path, description = "request number")),
    request_body(content = Decision, description = "optional"),
    responses((status = 200, body = AccessRequestView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "no longer open, or the rule would not help", body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
/// Approves a request (owners): `allow: <repository>` joins the policy's
/// rules, recorded as a change, and reaches the doors within a second.
pub async fn approve(
    State(api): State<Arc<Api>>,
    caller: Caller,
    path: Result<Path<(String, i64)>, axum::extract::rejection::PathRejection>,
    body: axum::body::Bytes,
) -> Result<Json<AccessRequestView>, ApiError> {
    let Path((org, id)) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    crate::state::blocking(move || {
        caller.owner_for(&api, &org, "approve or decline access requests")?;
        let note = decision(&body)?.note;
        Ok(Json(
            requests::approve(&api.identity, &org, &caller.user, id, &note)?.into(),
        ))
    })
    .await
}

#[utoipa::path(post, path = "/api/v1/orgs/{org}/access-requests/{id}/decline", tag = "access requests",
    params(("org" = String, Path, description = "organisation name"), ("id" = i64, Path, description = "request number")),
    request_body(content = Decision, description = "optional"),
    responses((status = 200, body = AccessRequestView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "no longer open", body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
/// Declines a request (owners), with a note to the requester.
pub async fn decline(
    State(api): State<Arc<Api>>,
    caller: Caller,
    path: Result<Path<(String, i64)>, axum::extract::rejection::PathRejection>,
    body: axum::body::Bytes,
) -> Result<Json<AccessRequestView>, ApiError> {
    let Path((org, id)) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    crate::state::blocking(move || {
        caller.owner_for(&api, &org, "approve or decline access requests")?;
        let note = decision(&body)?.note;
        Ok(Json(
            requests::decline(&api.identity, &org, &caller.user, id, &note)?.into(),
        ))
    })
    .await
}

#[utoipa::path(delete, path = "/api/v1/orgs/{org}/access-requests/{id}", tag = "access requests",
    params(("org" = String, Path, description = "organisation name"), ("id" = i64, Path, description = "request number")),
    responses((status = 200, body = AccessRequestView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "no longer open", body = ErrorBody)),
    security(("bearer" = [])))]
/// Withdraws your own open request.
pub async fn withdraw(
    State(api): State<Arc<Api>>,
    caller: Caller,
    path: Result<Path<(String, i64)>, axum::extract::rejection::PathRejection>,
) -> Result<Json<AccessRequestView>, ApiError> {
    let Path((org, id)) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    crate::state::blocking(move || {
        caller.role_in(&api, &org)?;
        Ok(Json(
            requests::withdraw(&api.identity, &org, &caller.user, id)?.into(),
        ))
    })
    .await
}
