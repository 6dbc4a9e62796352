//! The Activity page (the organisation's audit log: filters, paging, CSV
//! export; every member) and the Insights page (attempts over time as a
//! server-rendered SVG chart, the most refused images and people, refusals
//! by category and registry; owners).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, PreEscaped, html};
use serde::Deserialize;

use super::pages::{layout, org_nav};
use super::{Console, Refusal, signed_at, standing_in};
use crate::audit::{Filters, read, rfc3339};
use crate::insights::{Insights, InsightsError, RANGES, insights};
use crate::store::{AuditEvent, now_ms};
use imagegate_core::Reason;

/// Events per page.
pub const PAGE: usize = 50;
/// How many of the latest changes to the policy and members the page lists.
pub const CHANGES: usize = 20;
/// The most events one CSV export carries (the newest).
pub const EXPORT_MAX: usize = 100_000;

/// How far apart two requests of one pull may be (the end of one and the
/// next) and still be shown as one row.
pub const PULL_GAP_MS: i64 = 60_000;

/// A row of the Activity page: one decision, or one pull through the
/// gateway (its first manifest, with the manifests by digest and the blobs
/// fetched after it). The audit log and its CSV keep every request.
struct Row<'a> {
    /// The event shown: the pull's first request.
    head: &'a AuditEvent,
    manifests: usize,
    blobs: usize,
    /// When the pull's latest request came.
    last_ms: i64,
}

impl Row<'_> {
    /// What the gateway served, in words: `pull: 2 manifests, 3 blobs`,
    /// `manifest`, `tags list`.
    fn served(&self) -> Option<String> {
        let plural = |n: usize, what: &str| match n {
            1 => format!("1 {what}"),
            n => format!("{n} {what}s"),
        };
        match self.head.path.as_deref() {
            Some("tags") => Some("tags list".to_owned()),
            _ if self.manifests + self.blobs > 1 => {
                let mut parts = Vec::new();
                if self.manifests > 0 {
                    parts.push(plural(self.manifests, "manifest"));
                }
                if self.blobs > 0 {
                    parts.push(plural(self.blobs, "blob"));
                }
                Some(format!("pull: {}", parts.join(", ")))
            }
            other => other.map(str::to_owned),
        }
    }

    /// The image as people name it: a tag list names a repository, not the
    /// placeholder digest it is decided as.
    fn image(&self) -> &str {
        if self.head.path.as_deref() == Some("tags") {
            repository(&self.head.image)
        } else {
            &self.head.image
        }
    }
}

/// The repository of a reference as the audit log holds it:
/// `docker.io/library/nginx` for `docker.io/library/nginx:1.27` and for
/// `docker.io/library/nginx@sha256:…`. A registry's port is kept.
fn repository(image: &str) -> &str {
    let name = image.split_once('@').map_or(image, |(name, _)| name);
    match name.rsplit_once(':') {
        Some((repository, tag)) if !tag.contains('/') => repository,
        _ => name,
    }
}

/// Folds `events` (oldest first) into rows, oldest first. A gateway blob
/// joins the latest pull of the same repository by the same caller (user,
/// source, organisation) with the same decision, when it comes within
/// [`PULL_GAP_MS`] of that pull's latest request; so does a manifest by
/// digest before the pull's first blob (an index's platform manifest), and
/// the same manifest by tag asked again before any blob (a HEAD, then a GET).
/// The audit log has no pull id: this is what a pull looks like in it.
fn fold(events: &[AuditEvent]) -> Vec<Row<'_>> {
    let mut rows: Vec<Row<'_>> = Vec::new();
    for e in events {
        let kind = e.path.as_deref();
        let part = e.door == "gateway" && matches!(kind, Some("manifest" | "blob"));
        let joined = part
            && rows
                .iter_mut()
                .rev()
                .find(|r| {
                    let h = r.head;
                    let by_digest = kind == Some("blob") || e.image.contains('@');
                    h.door == "gateway"
                        && matches!(h.path.as_deref(), Some("manifest" | "blob"))
                        && e.time_ms - r.last_ms <= PULL_GAP_MS
                        && h.user == e.user
                        && h.source == e.source
                        && h.org == e.org
                        && h.decision == e.decision
                        && h.reason == e.reason
                        && repository(&h.image) == repository(&e.image)
                        && match kind {
                            Some("blob") => true,
                            // The platform's manifest comes before the blobs;
                            // one after them starts another pull.
                            _ if by_digest => r.blobs == 0,
                            _ => h.image == e.image && r.blobs == 0,
                        }
                })
                .map(|r| {
                    if kind == Some("blob") {
                        r.blobs += 1;
                    } else {
                        r.manifests += 1;
                    }
                    r.last_ms = r.last_ms.max(e.time_ms);
                })
                .is_some();
        if !joined {
            rows.push(Row {
                head: e,
                manifests: usize::from(kind == Some("manifest")),
                blobs: usize::from(kind == Some("blob")),
                last_ms: e.time_ms,
            });
        }
    }
    rows
}

/// The rows, newest first, as the page shows them.
fn newest_first(mut rows: Vec<Row<'_>>) -> Vec<Row<'_>> {
    rows.reverse();
    rows
}

/// The Activity page's filters, as the form sends them.
#[derive(Deserialize, Default)]
pub struct ActivityQuery {
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    door: String,
    #[serde(default)]
    decision: String,
    #[serde(default)]
    image: String,
    /// 0 is the newest page.
    #[serde(default)]
    page: usize,
}

impl ActivityQuery {
    fn filters(&self) -> Filters<'_> {
        Filters {
            since: Some(&self.since),
            until: Some(&self.until),
            user: Some(&self.user),
            door: Some(&self.door),
            decision: Some(&self.decision),
            image: Some(&self.image),
        }
    }

    /// The filters as a query string, for paging and export links.
    fn query(&self, page: Option<usize>) -> String {
        let mut pairs: Vec<(&str, String)> = [
            ("since", &self.since),
            ("until", &self.until),
            ("user", &self.user),
            ("door", &self.door),
            ("decision", &self.decision),
            ("image", &self.image),
        ]
        .into_iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| (k, v.clone()))
        .collect();
        if let Some(p) = page.filter(|p| *p > 0) {
            pairs.push(("page", p.to_string()));
        }
        serde_urlencoded::to_string(&pairs).unwrap_or_default()
    }
}

/// `/console/orgs/{org}/activity`.
pub async fn activity_page(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    Path(org): Path<String>,
    query: Result<Query<ActivityQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Refusal> {
    crate::state::blocking(move || {
        let who = signed_at(&console, &headers, &uri)?;
        let standing = standing_in(&console, &who, &org)?;
        let q = query.map(|Query(q)| q).unwrap_or_default();
        let (events, more, error) = match q.filters().compile(&org, now_ms()) {
            Ok((mut filter, glob)) => {
                filter.offset = Some(q.page.saturating_mul(PAGE));
                filter.limit = Some(PAGE + 1);
                let mut events = read(console.identity.store().as_ref(), &filter, glob.as_ref())
                    .map_err(|e| Refusal::unavailable(&e))?;
                // Oldest first from the store, as pulls are folded; the
                // page shows the newest first.
                let more = events.len() > PAGE;
                if more {
                    events.remove(0);
                }
                (events, more, None)
            }
            Err(e) => (Vec::new(), false, Some(e)),
        };
        let changes = console
            .identity
            .store()
            .policy_changes(&org, CHANGES)
            .map_err(|e| Refusal::unavailable(&e))?;
        let status = if error.is_some() {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::OK
        };
        let markup = activity(&ActivityView {
            user: &who.user,
            csrf: &who.csrf,
            org: &org,
            owner: standing.owner(),
            take_over: standing.take_over(&who),
            q: &q,
            events: &events,
            more,
            error: error.as_deref(),
            changes: &changes,
        });
        Ok((status, markup).into_response())
    })
    .await
}

/// `/console/orgs/{org}/activity.csv`: the filtered log, oldest first.
pub async fn activity_csv(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    Path(org): Path<String>,
    query: Result<Query<ActivityQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Refusal> {
    crate::state::blocking(move || {
        let who = signed_at(&console, &headers, &uri)?;
        standing_in(&console, &who, &org)?;
        let q = query.map(|Query(q)| q).unwrap_or_default();
        let (mut filter, glob) = match q.filters().compile(&org, now_ms()) {
            Ok(f) => f,
            Err(e) => {
                return Ok((StatusCode::UNPROCESSABLE_ENTITY, format!("{e}\n")).into_response());
            }
        };
        filter.limit = Some(EXPORT_MAX);
        let events = read(console.identity.store().as_ref(), &filter, glob.as_ref())
            .map_err(|e| Refusal::unavailable(&e))?;
        let mut body = Vec::new();
        crate::audit::write_csv(&events, &mut body).map_err(|e| Refusal::unavailable(&e))?;
        Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{org}-activity.csv\""),
                ),
                (header::CACHE_CONTROL, "no-store".to_owned()),
            ],
            body,
        )
            .into_response())
    })
    .await
}

struct ActivityView<'a> {
    user: &'a str,
    csrf: &'a str,
    org: &'a str,
    owner: bool,
    /// See [`org_nav`].
    take_over: Option<&'a str>,
    q: &'a ActivityQuery,
    /// Oldest first.
    events: &'a [AuditEvent],
    more: bool,
    error: Option<&'a str>,
    changes: &'a [crate::store::PolicyChange],
}

fn select(id: &str, label: &str, current: &str, options: &[(&str, &str)]) -> Markup {
    html! {
        p.filter {
            label for=(id) { (label) } br;
            select id=(id) name=(id) {
                @for (value, text) in options {
                    option value=(value) selected[*value == current] { (text) }
                }
            }
        }
    }
}

fn text_filter(id: &str, label: &str, value: &str, hint: &str) -> Markup {
    html! {
        p.filter {
            label for=(id) { (label) } br;
            input type="text" id=(id) name=(id) value=(value) placeholder=(hint) size="16";
        }
    }
}

fn activity(v: &ActivityView<'_>) -> Markup {
    let base = format!("/console/orgs/{}/activity", v.org);
    let q = v.q;
    layout(
        "Activity",
        Some((v.user, v.csrf)),
        html! {
            (org_nav(v.org, "activity", v.owner, v.take_over))
            h1 { "Activity" }
            p { "Every decision made under " (v.org) "'s policy: pulls through the gateway and Kubernetes admissions, newest first." }
            form method="get" action=(base) aria-label="Filter the activity" {
                div.filters {
                    (text_filter("since", "Since", &q.since, "24h or 2026-11-01T00:00:00Z"))
                    (text_filter("until", "Until", &q.until, "1h or RFC 3339"))
                    (text_filter("user", "User", &q.user, "username"))
                    (select("door", "Door", &q.door, &[("", "any"), ("gateway", "gateway"), ("admission", "admission"), ("imagepolicy", "imagepolicy")]))
                    (select("decision", "Decision", &q.decision, &[("", "any"), ("allow", "allowed"), ("deny", "refused")]))
                    (text_filter("image", "Image", &q.image, "docker.io/someuser/*"))
                }
                button type="submit" { "Filter" }
                " "
                a href={ (base) ".csv?" (q.query(None)) } download { "Export CSV" }
            }
            @if let Some(e) = v.error {
                p.error role="alert" { "Filter not applied: " (e) }
            }
            @if v.events.is_empty() && v.error.is_none() {
                p { "Nothing matches." }
            } @else if !v.events.is_empty() {
                @let rows = newest_first(fold(v.events));
                table.log {
                    caption.visually-hidden { "Decisions, newest first" }
                    thead { tr { th scope="col" { "Time (UTC)" } th scope="col" { "User" } th scope="col" { "Door" } th scope="col" { "Image" } th scope="col" { "Decision" } th scope="col" { "Why" } } }
                    tbody {
                        @for row in &rows {
                            @let e = row.head;
                            tr {
                                td { time datetime=(rfc3339(e.time_ms)) { (rfc3339(e.time_ms).replace('T', " ").trim_end_matches('Z')) } }
                                td { (e.user.as_deref().unwrap_or("—")) }
                                td { (e.door) @if let Some(served) = row.served().filter(|_| e.path.as_deref() != Some("tags")) { br; small { (served) } } }
                                td { code { (row.image()) } @if e.path.as_deref() == Some("tags") { " tags list" } }
                                td {
                                    @if e.decision == "deny" { span.refused { "refused" } } @else { span.allowed { "allowed" } }
                                }
                                td {
                                    (e.message) br; small { (e.reason) }
                                    @if e.decision == "deny" && e.user.as_deref() == Some(v.user)
                                        && Reason::from_code(&e.reason).is_some_and(Reason::is_access_refusal) {
                                        br; a href=(crate::requests::form_path(v.org, row.image())) { "Ask for access" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            nav aria-label="Pages" {
                @if q.page > 0 {
                    a href={ (base) "?" (q.query(Some(q.page - 1))) } rel="prev" { "← Newer" } " "
                }
                @if v.more {
                    a href={ (base) "?" (q.query(Some(q.page + 1))) } rel="next" { "Older →" }
                }
            }
            section aria-labelledby="changes" {
                h2 id="changes" { "Changes to the policy and members" }
                @if v.changes.is_empty() {
                    p { "None yet." }
                } @else {
                    table {
                        thead { tr { th scope="col" { "Time (UTC)" } th scope="col" { "Who" } th scope="col" { "What" } th scope="col" { "Before and after" } } }
                        tbody {
                            @for c in v.changes {
                                tr {
                                    td { (rfc3339(c.time_ms).get(..16).unwrap_or_default().replace('T', " ")) }
                                    td { (c.user) }
                                    td { (c.what) }
                                    td {
                                        @if c.what == "members" {
                                            (c.before) " → " (c.after)
                                        } @else {
                                            details {
                                                summary { "the policy before and after" }
                                                pre { (c.before) }
                                                pre { (c.after) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

#[derive(Deserialize)]
pub struct InsightsQuery {
    range: Option<String>,
}

/// `/console/orgs/{org}/insights` (owners).
pub async fn insights_page(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    Path(org): Path<String>,
    query: Result<Query<InsightsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Refusal> {
    crate::state::blocking(move || {
        let who = signed_at(&console, &headers, &uri)?;
        if !standing_in(&console, &who, &org)?.owner() {
            return Err(Refusal::Forbidden {
                message: format!(
                    "Only owners of {org} see its insights. The Activity page shows every decision."
                ),
                who: who.header(),
            });
        }
        let range = query
            .ok()
            .and_then(|Query(q)| q.range)
            .unwrap_or_else(|| "7d".to_owned());
        let found = match insights(console.identity.store().as_ref(), &org, &range) {
            Ok(i) => i,
            Err(InsightsError::Range(m)) => {
                return Err(Refusal::Forbidden {
                    message: m,
                    who: who.header(),
                });
            }
            Err(InsightsError::Store(e)) => return Err(Refusal::unavailable(&e)),
        };
        let open = console
            .identity
            .store()
            .access_requests(&org, Some("open"), None, usize::MAX)
            .map_err(|e| Refusal::unavailable(&e))?;
        let markup = layout(
            "Insights",
            Some((&who.user, &who.csrf)),
            insights_view(&org, &found, &open),
        );
        Ok(markup.into_response())
    })
    .await
}

fn insights_view(org: &str, i: &Insights, open: &[crate::store::AccessRequest]) -> Markup {
    let total = i.allowed + i.refused;
    let share = |n: u64| (n * 100 + total / 2).checked_div(total).unwrap_or(0);
    html! {
        (org_nav(org, "insights", true, None))
        h1 { "Insights" }
        p { "What members of " (org) " tried to pull, and what was refused: the numbers to review before changing image access, and to spot refusals that look like a real need." }
        nav aria-label="Time range" {
            "Last: "
            @for (n, (name, ..)) in RANGES.iter().enumerate() {
                @if n > 0 { " · " }
                @if *name == i.range { strong aria-current="true" { (name) } }
                @else { a href={ "?range=" (name) } { (name) } }
            }
        }
        div.totals {
            p { strong { (total) } br; "attempts" }
            p { strong.allowed-text { (i.allowed) } br; "allowed" }
            p { strong.refused-text { (i.refused) } br; "refused (" (share(i.refused)) "%)" }
        }
        (chart(i))
        h2 { "Most refused images" }
        @if i.top_refused_images.is_empty() {
            p { "No refusals in this period." }
        } @else {
            table {
                thead { tr { th scope="col" { "Repository" } th scope="col" { "Refusals" } th scope="col" { "People" } th scope="col" { "Why" } th scope="col" { "Last" } th scope="col" { "Open requests" } } }
                tbody {
                    @for r in &i.top_refused_images {
                        @let asked = open.iter().filter(|o| o.repository == r.repository).count();
                        tr {
                            td { code { (r.repository) } }
                            td { (r.refusals) }
                            td { (r.users) @if r.users > 1 { " " span.hint title="Several people met this refusal: it may be a real need." { "(several)" } } }
                            td { (Reason::from_code(&r.reason).map_or(r.reason.as_str(), |k| k.label())) }
                            td { (r.last.replace('T', " ").trim_end_matches('Z')) }
                            td {
                                @if asked > 0 { a href={ "/console/orgs/" (org) "/access-requests" } { (asked) " open" } } @else { "—" }
                            }
                        }
                    }
                }
            }
        }
        div.columns {
            (counts("Refusals by person", "Person", &i.top_users))
            (counts("Refusals by category", "Category", &category_words(&i.by_category)))
            (counts("Refusals by registry", "Registry", &i.by_registry))
        }
    }
}

/// Categories as people name them (`community images`), not their codes.
fn category_words(rows: &[crate::insights::Count]) -> Vec<crate::insights::Count> {
    rows.iter()
        .map(|c| crate::insights::Count {
            name: imagegate_core::dockerhub::Category::from_code(&c.name)
                .map_or_else(|| c.name.clone(), |k| k.images().to_owned()),
            refusals: c.refusals,
        })
        .collect()
}

fn counts(title: &str, what: &str, rows: &[crate::insights::Count]) -> Markup {
    html! {
        section {
            h2 { (title) }
            @if rows.is_empty() { p { "None." } } @else {
                table {
                    thead { tr { th scope="col" { (what) } th scope="col" { "Refusals" } } }
                    tbody { @for c in rows { tr { td { (c.name) } td { (c.refusals) } } } }
                }
            }
        }
    }
}

/// Allowed and refused attempts per bucket as stacked bars, drawn on the
/// server: an SVG with a title and a description for screen readers, and
/// the same numbers in a table under it.
fn chart(i: &Insights) -> Markup {
    const W: f64 = 720.0;
    const H: f64 = 220.0;
    const LEFT: f64 = 44.0;
    const BOTTOM: f64 = 24.0;
    let n = i.series.len().max(1);
    let top = i
        .series
        .iter()
        .map(|p| p.allowed + p.refused)
        .max()
        .unwrap_or(0)
        .max(1);
    // A round top for the axis: 1, 2 or 5 times a power of ten.
    let mut scale = 1u64;
    while scale < top {
        scale = match scale.to_string().as_bytes()[0] {
            b'1' => scale * 2,
            b'2' => scale / 2 * 5,
            _ => scale * 2,
        };
    }
    let plot_w = W - LEFT - 8.0;
    let plot_h = H - BOTTOM - 8.0;
    let slot = plot_w / n as f64;
    let bar = (slot * 0.8).max(1.0);
    let y = |v: u64| 8.0 + plot_h - plot_h * (v as f64) / (scale as f64);
    let label = |s: &str| s.get(5..16).unwrap_or(s).replace('T', " ");
    let desc = format!(
        "{} attempts in the last {}: {} allowed, {} refused; the busiest {} had {}.",
        i.allowed + i.refused,
        i.range,
        i.allowed,
        i.refused,
        if i.bucket_seconds >= 86_400 {
            "day"
        } else {
            "period"
        },
        top
    );
    let mut bars = String::new();
    for (k, p) in i.series.iter().enumerate() {
        let x = LEFT + slot * k as f64 + (slot - bar) / 2.0;
        let ya = y(p.allowed);
        let yr = y(p.allowed + p.refused);
        if p.allowed > 0 {
            bars.push_str(&format!(
                r#"<rect class="a" x="{x:.1}" y="{ya:.1}" width="{bar:.1}" height="{:.1}"><title>{}: {} allowed</title></rect>"#,
                y(0) - ya,
                label(&p.start),
                p.allowed
            ));
        }
        if p.refused > 0 {
            bars.push_str(&format!(
                r#"<rect class="r" x="{x:.1}" y="{yr:.1}" width="{bar:.1}" height="{:.1}"><title>{}: {} refused</title></rect>"#,
                ya - yr,
                label(&p.start),
                p.refused
            ));
        }
    }
    let first = i
        .series
        .first()
        .map(|p| label(&p.start))
        .unwrap_or_default();
    let last = i.series.last().map(|p| label(&p.start)).unwrap_or_default();
    html! {
        figure.chart {
            svg xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (W) " " (H) } width="100%" role="img" aria-labelledby="chart-title chart-desc" {
                title id="chart-title" { "Pull attempts over time, allowed and refused" }
                desc id="chart-desc" { (desc) }
                line x1=(LEFT) y1=(y(0)) x2=(W - 8.0) y2=(y(0)) class="axis" {}
                line x1=(LEFT) y1="8" x2=(LEFT) y2=(y(0)) class="axis" {}
                text x=(LEFT - 6.0) y=(y(scale) + 4.0) text-anchor="end" { (scale) }
                text x=(LEFT - 6.0) y=(y(scale / 2) + 4.0) text-anchor="end" { (scale / 2) }
                text x=(LEFT - 6.0) y=(y(0) + 4.0) text-anchor="end" { "0" }
                line x1=(LEFT) y1=(y(scale / 2)) x2=(W - 8.0) y2=(y(scale / 2)) class="grid" {}
                (PreEscaped(bars))
                text x=(LEFT) y=(H - 6.0) { (first) }
                text x=(W - 8.0) y=(H - 6.0) text-anchor="end" { (last) }
            }
            figcaption {
                span.key.a {} " allowed  " span.key.r {} " refused · one bar per "
                (match i.bucket_seconds { 3600 => "hour".to_owned(), 86_400 => "day".to_owned(), s if s % 86_400 == 0 => format!("{} days", s / 86_400), s => format!("{} hours", s / 3600) })
                " (UTC)"
            }
            details {
                summary { "The numbers" }
                table {
                    thead { tr { th scope="col" { "From (UTC)" } th scope="col" { "Allowed" } th scope="col" { "Refused" } } }
                    tbody {
                        @for p in i.series.iter().filter(|p| p.allowed + p.refused > 0) {
                            tr { td { (label(&p.start)) } td { (p.allowed) } td { (p.refused) } }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::repository;

    #[test]
    fn a_repository_keeps_its_registrys_port_and_drops_tag_and_digest() {
        for (image, expected) in [
            ("docker.io/library/nginx:1.27", "docker.io/library/nginx"),
            (
                "docker.io/library/nginx@sha256:abc",
                "docker.io/library/nginx",
            ),
            (
                "docker.io/library/nginx:1.27@sha256:abc",
                "docker.io/library/nginx",
            ),
            ("localhost:5000/app", "localhost:5000/app"),
            ("localhost:5000/app:1", "localhost:5000/app"),
            ("not a reference", "not a reference"),
        ] {
            assert_eq!(repository(image), expected, "{image}");
        }
    }
}
