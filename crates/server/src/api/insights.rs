//! Insights for an organisation's owners: attempts over time, the most
//! refused images, who meets refusals, refusals by category and registry.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{Api, ApiError, Caller, ErrorBody};
use crate::insights::{Insights, InsightsError, insights};

/// Which window.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InsightsQuery {
    /// `24h`, `7d` (the default), `30d` or `90d`, ending now.
    range: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/orgs/{org}/insights", tag = "audit",
    params(("org" = String, Path, description = "organisation name"), InsightsQuery),
    responses((status = 200, body = Insights), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
/// What the organisation's people tried to pull over a window (owners).
/// Attempts are admission decisions and gateway manifest requests.
pub async fn get(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(org): Path<String>,
    query: Result<Query<InsightsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Insights>, ApiError> {
    crate::state::blocking(move || {
        let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
        caller.owner_for(&api, &org, "see its insights")?;
        let range = q.range.as_deref().unwrap_or("7d");
        match insights(api.identity.store().as_ref(), &org, range) {
            Ok(i) => Ok(Json(i)),
            Err(InsightsError::Range(m)) => Err(ApiError::invalid(m)),
            Err(InsightsError::Store(e)) => Err(ApiError::unavailable(&e)),
        }
    })
    .await
}
