//! Organisations: who the caller is, an organisation's policy as a whole,
//! its image access and registry access as structured settings, its members,
//! and the record of changes. Members read; owners change. Each change goes
//! through `Identity::change_policy`, which records it with the policy before
//! and after; the gateway and the admission doors pick it up within a second.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{Api, ApiError, Body, Caller, ErrorBody};
use crate::settings;
use crate::store::Role;

/// The caller and their organisations.
#[derive(Serialize, ToSchema)]
pub struct Me {
    /// The username.
    user: String,
    /// Each organisation the caller belongs to, by name.
    organisations: Vec<Membership>,
    /// Whether the caller administers this imagegate (creates organisations).
    administrator: bool,
}

/// A user's place in an organisation.
#[derive(Serialize, ToSchema)]
pub struct Membership {
    /// The organisation (in `/me`) or the user (in `/members`).
    name: String,
    /// `owner` or `member`.
    role: &'static str,
}

impl Membership {
    pub(super) fn new(name: String, role: Role) -> Membership {
        Membership {
            name,
            role: role.as_str(),
        }
    }
}

/// An organisation as its members see it.
#[derive(Serialize, ToSchema)]
pub struct OrgView {
    /// Its name.
    name: String,
    /// Its Docker Hub namespaces ("Organization images").
    namespaces: Vec<String>,
    /// The caller's role.
    role: &'static str,
}

/// The whole policy document.
#[derive(Serialize, ToSchema)]
pub struct PolicyView {
    /// The organisation.
    org: String,
    /// The policy, as YAML.
    yaml: String,
    /// Whether the caller may change it (owners).
    editable: bool,
}

/// A new policy document.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyUpdate {
    /// The policy, as YAML (or JSON).
    yaml: String,
}

/// Image access: which Docker Hub categories members may pull.
#[derive(Serialize, ToSchema)]
pub struct ImageAccessView {
    /// The organisation.
    org: String,
    /// Whether image access restrictions are on (off: every category is allowed).
    enabled: bool,
    /// The categories allowed when on. Organization images are always allowed.
    categories: Categories,
    /// Docker Hub namespaces whose images are Organization images.
    organization_namespaces: Vec<String>,
    /// Namespaces treated as Docker Verified Publishers.
    verified_publishers: Vec<String>,
    /// Whether the caller may change it (owners).
    editable: bool,
}

/// One switch per category.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Categories {
    /// Organization images: always allowed (`false` is refused).
    #[serde(default = "always")]
    organization: bool,
    /// Docker Official Images.
    official: bool,
    /// Docker Verified Publisher images.
    verified_publisher: bool,
    /// Community images.
    community: bool,
}

fn always() -> bool {
    true
}

/// New image access settings.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageAccessUpdate {
    /// Whether image access restrictions are on.
    enabled: bool,
    /// The categories allowed when on.
    categories: Categories,
    /// Replaces the organisation namespaces, when given.
    #[serde(default)]
    organization_namespaces: Option<Vec<String>>,
    /// Replaces the verified publishers, when given.
    #[serde(default)]
    verified_publishers: Option<Vec<String>>,
}

/// Registry access: the registries members may pull from.
#[derive(Serialize, ToSchema)]
pub struct RegistryAccessView {
    /// The organisation.
    org: String,
    /// Whether the allow-list applies.
    enabled: bool,
    /// Registries (`ghcr.io`), registry paths (`ghcr.io/corp`) or wildcards (`*.corp.example`).
    allow: Vec<String>,
    /// Whether the caller may change it (owners).
    editable: bool,
}

/// New registry access settings.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistryAccessUpdate {
    /// Whether the allow-list applies.
    enabled: bool,
    /// The allowed registries, each checked with the policy's pattern rules.
    allow: Vec<String>,
}

/// A change to an organisation's policy.
#[derive(Serialize, ToSchema)]
pub struct ChangeView {
    /// When, RFC 3339.
    time: String,
    /// Who.
    user: String,
    /// What: `policy`, `image_access`, `registry_access`, `members`.
    what: String,
    /// The policy before.
    before: String,
    /// The policy after.
    after: String,
}

/// How many changes to list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChangesQuery {
    /// At most this many, newest first (default 50, 1 to 1000).
    limit: Option<usize>,
}

fn role_name(role: Role) -> &'static str {
    role.as_str()
}

#[utoipa::path(get, path = "/api/v1/me", tag = "identity",
    responses((status = 200, body = Me), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
/// The signed-in user and their organisations.
pub async fn me(State(api): State<Arc<Api>>, caller: Caller) -> Result<Json<Me>, ApiError> {
    crate::state::blocking(move || {
        let organisations = api
            .identity
            .memberships(&caller.user)?
            .into_iter()
            .map(|(name, role)| Membership {
                name,
                role: role_name(role),
            })
            .collect();
        let administrator = api
            .identity
            .store()
            .is_administrator(&caller.user)
            .map_err(|e| ApiError::unavailable(&e))?;
        Ok(Json(Me {
            user: caller.user,
            organisations,
            administrator,
        }))
    })
    .await
}

#[utoipa::path(get, path = "/api/v1/orgs/{org}", tag = "organisations",
    params(("org" = String, Path, description = "organisation name")),
    responses((status = 200, body = OrgView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
/// An organisation the caller belongs to.
pub async fn org(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Json<OrgView>, ApiError> {
    crate::state::blocking(move || {
        let role = caller.role_in(&api, &org)?;
        let o = api.identity.org(&org)?;
        Ok(Json(OrgView {
            name: o.name,
            namespaces: o.namespaces,
            role: role_name(role),
        }))
    })
    .await
}

/// A new organisation.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrg {
    /// Its name (lowercase letters, digits, `-`, `_`, `.`).
    name: String,
    /// Its Docker Hub namespaces ("Organization images").
    #[serde(default)]
    namespaces: Vec<String>,
}

#[utoipa::path(post, path = "/api/v1/orgs", tag = "organisations",
    request_body = NewOrg,
    responses((status = 201, body = OrgView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
/// Creates an organisation with the default policy (image access off); the
/// caller becomes its owner. Administrators only.
pub async fn create_org(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Body(new): Body<NewOrg>,
) -> Result<(axum::http::StatusCode, Json<OrgView>), ApiError> {
    crate::state::blocking(move || {
        let o = settings::create_org(&api.identity, &caller.user, &new.name, &new.namespaces)?;
        Ok((
            axum::http::StatusCode::CREATED,
            Json(OrgView {
                name: o.name,
                namespaces: o.namespaces,
                role: role_name(Role::Owner),
            }),
        ))
    })
    .await
}

#[utoipa::path(get, path = "/api/v1/orgs/{org}/policy", tag = "policy",
    params(("org" = String, Path, description = "organisation name")),
    responses((status = 200, body = PolicyView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
/// The organisation's whole policy, as YAML.
pub async fn get_policy(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Json<PolicyView>, ApiError> {
    crate::state::blocking(move || {
        let role = caller.role_in(&api, &org)?;
        policy_view(&api, &org, role)
    })
    .await
}

fn policy_view(api: &Api, org: &str, role: Role) -> Result<Json<PolicyView>, ApiError> {
    Ok(Json(PolicyView {
        org: org.to_owned(),
        yaml: api.identity.org(org)?.policy,
        editable: role == Role::Owner,
    }))
}

#[utoipa::path(put, path = "/api/v1/orgs/{org}/policy", tag = "policy",
    params(("org" = String, Path, description = "organisation name")),
    request_body = PolicyUpdate,
    responses((status = 200, body = PolicyView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
/// Replaces the policy (owners). A policy that does not load is refused
/// with each problem's path, line and column.
pub async fn put_policy(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(org): Path<String>,
    Body(update): Body<PolicyUpdate>,
) -> Result<Json<PolicyView>, ApiError> {
    crate::state::blocking(move || {
        caller.owner_of(&api, &org, "policy")?;
        settings::set_policy(&api.identity, &org, &caller.user, "policy", &update.yaml)?;
        policy_view(&api, &org, Role::Owner)
    })
    .await
}

#[utoipa::path(get, path = "/api/v1/orgs/{org}/image-access", tag = "image access",
    params(("org" = String, Path, description = "organisation name")),
    responses((status = 200, body = ImageAccessView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
/// Image access: the switch, one box per Docker Hub category, the
/// organisation's namespaces and the verified publishers.
pub async fn get_image_access(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Json<ImageAccessView>, ApiError> {
    crate::state::blocking(move || {
        let role = caller.role_in(&api, &org)?;
        image_access_view(&api, &org, role)
    })
    .await
}

fn image_access_view(api: &Api, org: &str, role: Role) -> Result<Json<ImageAccessView>, ApiError> {
    let ia = settings::image_access(&api.identity, org)?;
    Ok(Json(ImageAccessView {
        org: org.to_owned(),
        enabled: ia.enabled,
        categories: Categories {
            organization: true,
            official: ia.official,
            verified_publisher: ia.verified_publisher,
            community: ia.community,
        },
        organization_namespaces: ia.organization_namespaces,
        verified_publishers: ia.verified_publishers,
        editable: role == Role::Owner,
    }))
}

#[utoipa::path(put, path = "/api/v1/orgs/{org}/image-access", tag = "image access",
    params(("org" = String, Path, description = "organisation name")),
    request_body = ImageAccessUpdate,
    responses((status = 200, body = ImageAccessView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
/// Changes image access (owners): on or off, and which categories.
pub async fn put_image_access(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(org): Path<String>,
    Body(update): Body<ImageAccessUpdate>,
) -> Result<Json<ImageAccessView>, ApiError> {
    crate::state::blocking(move || {
        caller.owner_of(&api, &org, "image access")?;
        if !update.categories.organization {
            return Err(ApiError::invalid(
                "organization images are always allowed: categories.organization cannot be false",
            ));
        }
        let current = settings::image_access(&api.identity, &org)?;
        let c = &update.categories;
        let to = settings::ImageAccess {
            enabled: update.enabled,
            official: c.official,
            verified_publisher: c.verified_publisher,
            community: c.community,
            organization_namespaces: update
                .organization_namespaces
                .unwrap_or(current.organization_namespaces),
            verified_publishers: update
                .verified_publishers
                .unwrap_or(current.verified_publishers),
        };
        settings::set_image_access(&api.identity, &org, &caller.user, &to)?;
        image_access_view(&api, &org, Role::Owner)
    })
    .await
}

#[utoipa::path(get, path = "/api/v1/orgs/{org}/registry-access", tag = "registry access",
    params(("org" = String, Path, description = "organisation name")),
    responses((status = 200, body = RegistryAccessView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
/// Registry access: the switch and the allowed registries.
pub async fn get_registry_access(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Json<RegistryAccessView>, ApiError> {
    crate::state::blocking(move || {
        let role = caller.role_in(&api, &org)?;
        registry_access_view(&api, &org, role)
    })
    .await
}

fn registry_access_view(
    api: &Api,
    org: &str,
    role: Role,
) -> Result<Json<RegistryAccessView>, ApiError> {
    let ra = settings::registry_access(&api.identity, org)?;
    Ok(Json(RegistryAccessView {
        org: org.to_owned(),
        enabled: ra.enabled,
        allow: ra.allow,
        editable: role == Role::Owner,
    }))
}

#[utoipa::path(put, path = "/api/v1/orgs/{org}/registry-access", tag = "registry access",
    params(("org" = String, Path, description = "organisation name")),
    request_body = RegistryAccessUpdate,
    responses((status = 200, body = RegistryAccessView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
/// Changes registry access (owners). Each entry is checked with the
/// policy's registry pattern rules; a bad one is refused by its index.
pub async fn put_registry_access(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(org): Path<String>,
    Body(update): Body<RegistryAccessUpdate>,
) -> Result<Json<RegistryAccessView>, ApiError> {
    crate::state::blocking(move || {
        caller.owner_of(&api, &org, "registry access")?;
        let to = settings::RegistryAccess {
            enabled: update.enabled,
            allow: update.allow,
        };
        settings::set_registry_access(&api.identity, &org, &caller.user, &to)?;
        registry_access_view(&api, &org, Role::Owner)
    })
    .await
}

#[utoipa::path(get, path = "/api/v1/orgs/{org}/members", tag = "members",
    params(("org" = String, Path, description = "organisation name")),
    responses((status = 200, body = Vec<Membership>), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
/// The organisation's members and their roles, by name.
pub async fn members(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Json<Vec<Membership>>, ApiError> {
    crate::state::blocking(move || {
        caller.role_in(&api, &org)?;
        Ok(Json(
            api.identity
                .members(&org)?
                .into_iter()
                .map(|(name, role)| Membership {
                    name,
                    role: role_name(role),
                })
                .collect(),
        ))
    })
    .await
}

#[utoipa::path(get, path = "/api/v1/orgs/{org}/changes", tag = "policy",
    params(("org" = String, Path, description = "organisation name"), ChangesQuery),
    responses((status = 200, body = Vec<ChangeView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
/// Who changed the policy, when, and how: newest first.
pub async fn changes(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(org): Path<String>,
    query: Result<Query<ChangesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<ChangeView>>, ApiError> {
    crate::state::blocking(move || {
        let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
        caller.role_in(&api, &org)?;
        let limit = super::limit(query.limit, 50)?;
        let changes = api
            .identity
            .store()
            .policy_changes(&org, limit)
            .map_err(|e| ApiError::unavailable(&e))?;
        Ok(Json(
            changes
                .into_iter()
                .map(|c| ChangeView {
                    time: rfc3339(c.time_ms),
                    user: c.user,
                    what: c.what,
                    before: c.before,
                    after: c.after,
                })
                .collect(),
        ))
    })
    .await
}

fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
