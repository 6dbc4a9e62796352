//! Access requests: a member whose image was refused asks for it; an owner
//! approves (an allow rule for exactly that repository joins the policy, as
//! a recorded change) or declines, with a note; the member sees the outcome.
//! The console and the API both go through here. Nothing here knows about
//! HTTP.
//!
//! A request is only taken when an approval would let the member pull the
//! image: the image must be refused now, and allowed under the policy with
//! the rule added. An approval checks the same again against the policy as it
//! is then, so an owner is never told "approved" for a pull that still fails.

use imagegate_core::decide::{Input, decide};
use imagegate_core::{Decision, Policy, Reference};

use crate::identity::Identity;
use crate::settings::{self, SettingsError};
use crate::store::{AccessRequest, PolicyChange, Role, Settlement, now_ms};

/// The longest reason or note kept, in characters.
pub const MAX_TEXT: usize = 2000;

/// The states a request can be in.
pub const STATES: [&str; 4] = ["open", "approved", "declined", "withdrawn"];

/// Why a request was not taken or settled.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// What was asked cannot be taken as it is.
    #[error("{0}")]
    Invalid(String),
    /// No such request in this organisation (or not one the caller may see).
    #[error("{0}")]
    NotFound(String),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The request is no longer open, or approving it would not help.
    #[error("{0}")]
    Conflict(String),
    /// Reading or writing the organisation failed.
    #[error(transparent)]
    Settings(#[from] SettingsError),
}

impl From<crate::identity::IdentityError> for RequestError {
    fn from(e: crate::identity::IdentityError) -> RequestError {
        RequestError::Settings(SettingsError::Identity(e))
    }
}

impl From<crate::store::StoreError> for RequestError {
    fn from(e: crate::store::StoreError) -> RequestError {
        RequestError::Settings(SettingsError::Identity(e.into()))
    }
}

/// The console path of the form asking `org` for `reference` (normalised).
/// A reference's characters are all allowed in a query, so it is written as
/// it is and the link reads as the image it asks for.
pub fn form_path(org: &str, reference: &str) -> String {
    format!("/console/orgs/{org}/access-requests/new?image={reference}")
}

/// How `user` (with `role`) fares pulling `image` under `policy`: a refusal
/// counts, and so does a would-be refusal in `warn` or `audit` mode.
fn decision(policy: &Policy, image: &str, user: &str, role: Role) -> Decision {
    decide(
        policy,
        &Input {
            image,
            user: Some(user),
            owner: role == Role::Owner,
            ..Input::default()
        },
    )
}

fn refused(d: &Decision) -> bool {
    !d.is_allowed() || d.is_would_be_denial()
}

/// A reason or note: trimmed, at most [`MAX_TEXT`] characters.
fn text(what: &str, t: &str) -> Result<String, RequestError> {
    let t = t.trim();
    if t.chars().count() > MAX_TEXT {
        return Err(RequestError::Invalid(format!(
            "{what} is longer than {MAX_TEXT} characters"
        )));
    }
    Ok(t.to_owned())
}

/// `user`, with `role` in `org`, asks for `image`, saying why. An open
/// request of theirs for the same repository is returned as it is (with
/// `false`: nothing new was filed).
pub fn ask(
    identity: &Identity,
    org: &str,
    user: &str,
    role: Role,
    image: &str,
    reason: &str,
) -> Result<(AccessRequest, bool), RequestError> {
    let reference =
        Reference::parse(image.trim()).map_err(|e| RequestError::Invalid(format!("image: {e}")))?;
    let reason = text("the reason", reason)?;
    if reason.is_empty() {
        return Err(RequestError::Invalid(
            "say why you need this image: owners decide on the reason".to_owned(),
        ));
    }
    let normalised = reference.as_str().to_owned();
    let repository = reference.name().to_owned();
    let policy = settings::policy(identity, org)?;
    let now = decision(&policy, &normalised, user, role);
    if !refused(&now) {
        return Err(RequestError::Invalid(format!(
            "{normalised} is already allowed for you in {org}: there is nothing to ask for"
        )));
    }
    let (_, _, with_rule) = settings::with_repository_allowed(identity, org, &repository)?;
    let then = decision(&with_rule, &normalised, user, role);
    if refused(&then) {
        return Err(RequestError::Invalid(format!(
            "an exception for {repository} would not let you pull {normalised}: {} ({}). Ask an owner of {org} to change the policy",
            then.message, then.reason
        )));
    }
    let store = identity.store();
    if let Some(open) = store
        .access_requests(org, Some("open"), Some(user), usize::MAX)?
        .into_iter()
        .find(|r| r.repository == repository)
    {
        return Ok((open, false));
    }
    let mut request = AccessRequest {
        id: 0,
        org: org.to_owned(),
        user: user.to_owned(),
        image: normalised,
        repository,
        reason,
        refusal: now.message.to_string(),
        state: "open".to_owned(),
        created_ms: now_ms(),
        decided_by: None,
        decided_ms: None,
        note: None,
    };
    request.id = store.create_access_request(&request)?;
    Ok((request, true))
}

/// The requests `viewer` (with `role`) may see: owners see everyone's,
/// members their own. `state` narrows to one state.
pub fn list(
    identity: &Identity,
    org: &str,
    viewer: &str,
    role: Role,
    state: Option<&str>,
    limit: usize,
) -> Result<Vec<AccessRequest>, RequestError> {
    if let Some(s) = state
        && !STATES.contains(&s)
    {
        return Err(RequestError::Invalid(format!(
            "state {s:?} is not one of {}",
            STATES.join(", ")
        )));
    }
    let user = (role != Role::Owner).then_some(viewer);
    Ok(identity.store().access_requests(org, state, user, limit)?)
}

/// One request, if `viewer` may see it (owners: any; members: their own).
pub fn get(
    identity: &Identity,
    org: &str,
    viewer: &str,
    role: Role,
    id: i64,
) -> Result<AccessRequest, RequestError> {
    identity
        .store()
        .access_request(org, id)?
        .filter(|r| role == Role::Owner || r.user == viewer)
        .ok_or_else(|| RequestError::NotFound(format!("access request {id} not found in {org}")))
}

fn still_open(r: &AccessRequest) -> Result<(), RequestError> {
    if r.state == "open" {
        return Ok(());
    }
    let by = r
        .decided_by
        .as_deref()
        .map(|b| format!(" by {b}"))
        .unwrap_or_default();
    Err(RequestError::Conflict(format!(
        "access request {} is already {}{by}",
        r.id, r.state
    )))
}

/// Request `id`, which `viewer` may see, if it is still open.
fn open(
    identity: &Identity,
    org: &str,
    viewer: &str,
    role: Role,
    id: i64,
) -> Result<AccessRequest, RequestError> {
    let r = get(identity, org, viewer, role, id)?;
    still_open(&r)?;
    Ok(r)
}

/// Settles open request `r` as `state` by `by`, with a note and, for an
/// approval, the policy change; a request settled meanwhile is a conflict.
fn settle(
    identity: &Identity,
    r: &AccessRequest,
    state: &str,
    by: &str,
    note: Option<String>,
    change: Option<PolicyChange>,
) -> Result<AccessRequest, RequestError> {
    let ids = identity.store().settle_access_request(&Settlement {
        org: r.org.clone(),
        id: r.id,
        state: state.to_owned(),
        by: by.to_owned(),
        at_ms: change.as_ref().map_or_else(now_ms, |c| c.time_ms),
        note: note.filter(|n| !n.is_empty()),
        change,
    })?;
    if ids.is_empty() {
        let now = get(identity, &r.org, &r.user, Role::Owner, r.id)?;
        still_open(&now)?;
        return Err(RequestError::Conflict(format!(
            "access request {} could not be settled; try again",
            r.id
        )));
    }
    get(identity, &r.org, &r.user, Role::Owner, r.id)
}

/// Owner `by` approves request `id`: an allow rule for exactly its
/// repository is added to the policy, recorded as a change, and every other
/// open request for that repository is approved with it. Refused, and
/// nothing changes, when the rule would not let the requester pull the image
/// (a deny rule ahead of it, say).
pub fn approve(
    identity: &Identity,
    org: &str,
    by: &str,
    id: i64,
    note: &str,
) -> Result<AccessRequest, RequestError> {
    let r = open(identity, org, by, Role::Owner, id)?;
    let note = text("the note", note)?;
    let (before, after, policy) = settings::with_repository_allowed(identity, org, &r.repository)?;
    let role = identity
        .members(org)?
        .into_iter()
        .find(|(u, _)| *u == r.user)
        .map_or(Role::Member, |(_, role)| role);
    let then = decision(&policy, &r.image, &r.user, role);
    if refused(&then) {
        return Err(RequestError::Conflict(format!(
            "approving would not let {} pull {}: {} ({}). Change the policy instead",
            r.user, r.image, then.message, then.reason
        )));
    }
    let change = PolicyChange {
        time_ms: now_ms(),
        org: org.to_owned(),
        user: by.to_owned(),
        what: format!("access_request {id}"),
        before,
        after,
    };
    let change = (change.before != change.after).then_some(change);
    settle(identity, &r, "approved", by, Some(note), change)
}

/// Owner `by` declines request `id`, with a note to the requester.
pub fn decline(
    identity: &Identity,
    org: &str,
    by: &str,
    id: i64,
    note: &str,
) -> Result<AccessRequest, RequestError> {
    let r = open(identity, org, by, Role::Owner, id)?;
    let note = text("the note", note)?;
    settle(identity, &r, "declined", by, Some(note), None)
}

/// The requester withdraws their open request `id`.
pub fn withdraw(
    identity: &Identity,
    org: &str,
    user: &str,
    id: i64,
) -> Result<AccessRequest, RequestError> {
    let r = open(identity, org, user, Role::Member, id)?;
    settle(identity, &r, "withdrawn", user, None, None)
}
