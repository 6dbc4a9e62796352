//! An organisation's audit log: every decision made under its policy, with
//! the filters `imagegate audit` has. Members see it: everyone sees what was
//! pulled and refused.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{Api, ApiError, Caller, ErrorBody};
use crate::audit::{Filters, Record, read};
use crate::store::now_ms;

/// Which events.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// At or after: RFC 3339, or a duration ago (15m, 2h, 7d).
    since: Option<String>,
    /// Before (same forms).
    until: Option<String>,
    /// This user only.
    user: Option<String>,
    /// This door only (`gateway`, `admission`, `imagepolicy`).
    door: Option<String>,
    /// `allow` or `deny` only.
    decision: Option<String>,
    /// Images matching this rule pattern (`docker.io/someuser/*`).
    image: Option<String>,
    /// The newest N (default 100, at most 1000), returned oldest first.
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/api/v1/orgs/{org}/audit", tag = "audit",
    params(("org" = String, Path, description = "organisation name"), AuditQuery),
    responses((status = 200, body = Vec<Record>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
/// Decisions made under the organisation's policy, newest N, oldest first.
pub async fn audit(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(org): Path<String>,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    crate::state::blocking(move || {
        let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
        caller.role_in(&api, &org)?;
        let limit = super::limit(q.limit, 100)?;
        let filters = Filters {
            since: q.since.as_deref(),
            until: q.until.as_deref(),
            user: q.user.as_deref(),
            door: q.door.as_deref(),
            decision: q.decision.as_deref(),
            image: q.image.as_deref(),
        };
        let (mut filter, glob) = filters.compile(&org, now_ms()).map_err(ApiError::invalid)?;
        filter.limit = Some(limit);
        let events = read(api.identity.store().as_ref(), &filter, glob.as_ref())
            .map_err(|e| ApiError::unavailable(&e))?;
        let records: Vec<Record<'_>> = events.iter().map(Record::of).collect();
        Ok(Json(records).into_response())
    })
    .await
}
