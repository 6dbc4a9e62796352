//! The Access requests page: anyone in the organisation asks for a refused
//! image (the form is prefilled from the link a refusal points to, and says
//! why the image is refused today); owners approve or decline open requests
//! with a note; everyone sees how their own requests ended.

use std::sync::Arc;

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use imagegate_core::decide::{Input, decide};
use maud::{Markup, html};
use serde::Deserialize;

use super::pages::{layout, org_nav};
use super::{Console, Refusal, Signed, Standing, csrf_ok, signed, signed_at, standing_in};
use crate::audit::rfc3339;
use crate::requests::{self, RequestError};
use crate::settings;
use crate::store::{AccessRequest, Role};

#[derive(Deserialize, Default)]
pub struct RequestsQuery {
    /// Prefills the form (the link a refusal points to).
    #[serde(default)]
    image: String,
    /// A request just filed, or settled.
    filed: Option<i64>,
    done: Option<String>,
}

/// What the page shows besides the lists.
#[derive(Default)]
struct Form0<'a> {
    image: &'a str,
    reason: &'a str,
    error: Option<&'a str>,
    notice: Option<String>,
}

/// `/console/orgs/{org}/access-requests` and `.../new?image=`.
pub async fn requests_page(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    Path(org): Path<String>,
    query: Result<Query<RequestsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Refusal> {
    crate::state::blocking(move || {
    let who = signed_at(&console, &headers, &uri)?;
    let standing = standing_in(&console, &who, &org)?;
    let q = query.map(|Query(q)| q).unwrap_or_default();
    let notice = match (q.filed, q.done.as_deref()) {
        (Some(id), None) => Some(format!(
            "Request {id} sent. The owners of {org} will see it here; so will you, with their answer."
        )),
        (Some(id), Some(state @ ("approved" | "declined" | "withdrawn"))) => {
            Some(format!("Request {id} {state}."))
        }
        _ => None,
    };
    let form = Form0 {
        image: q.image.trim(),
        notice,
        ..Form0::default()
    };
    Ok(view(&console, &who, &org, standing, &form)?.into_response())
}).await
}

fn view(
    console: &Console,
    who: &Signed,
    org: &str,
    standing: Standing,
    form: &Form0<'_>,
) -> Result<Markup, Refusal> {
    let role = standing.role();
    let mine = requests::list(&console.identity, org, &who.user, Role::Member, None, 100)
        .map_err(|e| Refusal::unavailable(&e))?;
    let open = if role == Role::Owner {
        requests::list(&console.identity, org, &who.user, role, Some("open"), 1000)
            .map_err(|e| Refusal::unavailable(&e))?
    } else {
        Vec::new()
    };
    let decided = if role == Role::Owner {
        let mut all = requests::list(&console.identity, org, &who.user, role, None, 50)
            .map_err(|e| Refusal::unavailable(&e))?;
        all.retain(|r| r.state != "open");
        all
    } else {
        Vec::new()
    };
    // Why the prefilled image is refused today, in the policy's own words.
    let today = match imagegate_core::Reference::parse(form.image) {
        Ok(r) if !form.image.is_empty() => {
            let policy =
                settings::policy(&console.identity, org).map_err(|e| Refusal::unavailable(&e))?;
            let d = decide(
                &policy,
                &Input {
                    image: r.as_str(),
                    user: Some(&who.user),
                    owner: role == Role::Owner,
                    ..Input::default()
                },
            );
            Some((r.as_str().to_owned(), d))
        }
        _ => None,
    };
    Ok(layout(
        "Access requests",
        Some((&who.user, &who.csrf)),
        html! {
            (org_nav(org, "access-requests", role == Role::Owner, standing.take_over(who)))
            h1 { "Access requests" }
            @if let Some(n) = &form.notice { p.saved role="status" { (n) } }
            @if let Some(e) = form.error { p.error role="alert" id="ask-error" { (e) } }
            // Owners come here to decide: what waits for them comes first.
            @if role == Role::Owner {
                section aria-labelledby="open" {
                    h2 id="open" { "Open requests (" (open.len()) ")" }
                    @if open.is_empty() { p { "None: nobody is waiting." } }
                    @for r in &open { (open_request(org, &who.csrf, r)) }
                }
            }
            @if standing.member.is_none() {
                p { "Members of " (org) " ask for images here, and see their own requests; its owners decide." }
            }
            @if standing.member.is_some() {
            section aria-labelledby="ask" {
                h2 id="ask" { "Ask for an image" }
                p { "Refused an image you need? Say which and why; the owners of " (org) " decide. Approving allows exactly that repository, every tag of it." }
                @if let Some((image, d)) = &today {
                    @if d.is_allowed() && !d.is_would_be_denial() {
                        p.note { (image) " is already allowed for you." }
                    } @else {
                        p.note { "Today " code { (image) } " is refused: " (d.message) }
                    }
                }
                form method="post" action={ "/console/orgs/" (org) "/access-requests" } {
                    input type="hidden" name="csrf" value=(who.csrf);
                    p {
                        label for="image" { "Image" } br;
                        input type="text" id="image" name="image" value=(form.image) required
                            placeholder="someuser/custom-image:1" size="48" autofocus[form.image.is_empty()];
                    }
                    p {
                        label for="reason" { "Why you need it" } br;
                        textarea id="reason" name="reason" rows="3" cols="60" required
                            aria-describedby=[form.error.map(|_| "ask-error")]
                            autofocus[!form.image.is_empty()] { (form.reason) }
                    }
                    button type="submit" { "Send request" }
                }
            }
            section aria-labelledby="yours" {
                h2 id="yours" { "Your requests" }
                @if mine.is_empty() { p { "You have not asked for anything." } }
                @else { (table(org, &who.csrf, &mine, true)) }
            }
            }
            @if role == Role::Owner && !decided.is_empty() {
                section aria-labelledby="decided" {
                    h2 id="decided" { "Decided" }
                    (table(org, &who.csrf, &decided, false))
                }
            }
        },
    ))
}

fn when(ms: i64) -> String {
    rfc3339(ms).get(..16).unwrap_or_default().replace('T', " ")
}

fn open_request(org: &str, csrf: &str, r: &AccessRequest) -> Markup {
    let base = format!("/console/orgs/{org}/access-requests/{}", r.id);
    let note = format!("note-{}", r.id);
    html! {
        article.request aria-labelledby={ "req-" (r.id) } {
            h3 id={ "req-" (r.id) } { "#" (r.id) " " code { (r.image) } }
            p { strong { (r.user) } " asked " (when(r.created_ms)) " UTC: “" (r.reason) "”" }
            p { small { "Refused with: " (r.refusal) ". Approving adds " code { "allow: " (r.repository) } " to the rules." } }
            form method="post" action={ (base) "/approve" } {
                input type="hidden" name="csrf" value=(csrf);
                p {
                    label for=(note) { "Note to " (r.user) " (optional)" } br;
                    input type="text" id=(note) name="note" size="48";
                }
                button type="submit" { "Approve" }
                " "
                button type="submit" formaction={ (base) "/decline" } class="secondary" { "Decline" }
            }
        }
    }
}

fn table(org: &str, csrf: &str, rows: &[AccessRequest], own: bool) -> Markup {
    html! {
        table {
            thead { tr {
                th scope="col" { "#" }
                @if !own { th scope="col" { "Who" } }
                th scope="col" { "Image" } th scope="col" { "Asked (UTC)" } th scope="col" { "State" } th scope="col" { "Answer" }
            } }
            tbody {
                @for r in rows {
                    tr {
                        td { (r.id) }
                        @if !own { td { (r.user) } }
                        td { code { (r.image) } }
                        td { (when(r.created_ms)) }
                        td { span class={ "state " (r.state) } { (r.state) } }
                        td {
                            @if let Some(by) = &r.decided_by { (by) }
                            @if let Some(n) = &r.note { ": “" (n) "”" }
                            @if own && r.state == "open" {
                                form method="post" action={ "/console/orgs/" (org) "/access-requests/" (r.id) "/withdraw" } {
                                    input type="hidden" name="csrf" value=(csrf);
                                    button type="submit" class="secondary" { "Withdraw" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub struct AskForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    image: String,
    #[serde(default)]
    reason: String,
}

/// Files a request, or shows the form again with what is wrong.
pub async fn ask(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path(org): Path<String>,
    Form(form): Form<AskForm>,
) -> Result<Response, Refusal> {
    crate::state::blocking(move || {
        let who = signed(&console, &headers)?;
        csrf_ok(&who, &form.csrf)?;
        let standing = standing_in(&console, &who, &org)?;
        let Some(role) = standing.member else {
            return Err(Refusal::Forbidden {
                message: format!("Only members of {org} ask for images; you are not one."),
                who: who.header(),
            });
        };
        match requests::ask(
            &console.identity,
            &org,
            &who.user,
            role,
            &form.image,
            &form.reason,
        ) {
            Ok((r, _)) => Ok(Redirect::to(&format!(
                "/console/orgs/{org}/access-requests?filed={}",
                r.id
            ))
            .into_response()),
            Err(RequestError::Invalid(m)) => {
                let again = Form0 {
                    image: form.image.trim(),
                    reason: &form.reason,
                    error: Some(&m),
                    notice: None,
                };
                Ok((
                    StatusCode::UNPROCESSABLE_ENTITY,
                    view(&console, &who, &org, standing, &again)?,
                )
                    .into_response())
            }
            Err(e) => Err(Refusal::unavailable(&e)),
        }
    })
    .await
}

#[derive(Deserialize)]
pub struct DecideForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    note: String,
}

/// Approve (owners).
pub async fn approve(
    console: State<Arc<Console>>,
    headers: HeaderMap,
    path: Path<(String, i64)>,
    form: Form<DecideForm>,
) -> Result<Response, Refusal> {
    settle(console, headers, path, form, Action::Approve).await
}

/// Decline (owners).
pub async fn decline(
    console: State<Arc<Console>>,
    headers: HeaderMap,
    path: Path<(String, i64)>,
    form: Form<DecideForm>,
) -> Result<Response, Refusal> {
    settle(console, headers, path, form, Action::Decline).await
}

/// Withdraw (the requester).
pub async fn withdraw(
    console: State<Arc<Console>>,
    headers: HeaderMap,
    path: Path<(String, i64)>,
    form: Form<DecideForm>,
) -> Result<Response, Refusal> {
    settle(console, headers, path, form, Action::Withdraw).await
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    Approve,
    Decline,
    Withdraw,
}

async fn settle(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path((org, id)): Path<(String, i64)>,
    Form(form): Form<DecideForm>,
    action: Action,
) -> Result<Response, Refusal> {
    crate::state::blocking(move || {
        let who = signed(&console, &headers)?;
        csrf_ok(&who, &form.csrf)?;
        let standing = standing_in(&console, &who, &org)?;
        if action != Action::Withdraw && !standing.owner() {
            return Err(Refusal::Forbidden {
                message: format!("Only owners of {org} approve or decline access requests."),
                who: who.header(),
            });
        }
        let done = match action {
            Action::Approve => {
                requests::approve(&console.identity, &org, &who.user, id, &form.note)
            }
            Action::Decline => {
                requests::decline(&console.identity, &org, &who.user, id, &form.note)
            }
            Action::Withdraw => requests::withdraw(&console.identity, &org, &who.user, id),
        };
        match done {
            Ok(r) => Ok(Redirect::to(&format!(
                "/console/orgs/{org}/access-requests?filed={}&done={}",
                r.id, r.state
            ))
            .into_response()),
            Err(RequestError::Conflict(m) | RequestError::Invalid(m)) => {
                let again = Form0 {
                    error: Some(&m),
                    ..Form0::default()
                };
                Ok((
                    StatusCode::CONFLICT,
                    view(&console, &who, &org, standing, &again)?,
                )
                    .into_response())
            }
            Err(RequestError::NotFound(m) | RequestError::Forbidden(m)) => {
                Err(Refusal::Forbidden {
                    message: m,
                    who: who.header(),
                })
            }
            Err(e) => Err(Refusal::unavailable(&e)),
        }
    })
    .await
}
