//! The console's pages, rendered on the server (maud): plain HTML forms that
//! work without JavaScript, every control labelled, one small stylesheet
//! (`console.css`). No inline style or script: the Content-Security-Policy
//! allows only the console's own files.

use maud::{DOCTYPE, Markup, html};

use crate::settings::{ImageAccess, Problem};
use crate::store::Token;

/// The page frame: title, header with the user and sign-out, content.
pub(super) fn layout(title: &str, user: Option<(&str, &str)>, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · imagegate" }
                link rel="stylesheet" href=(super::STYLESHEET);
            }
            body {
                header {
                    a href="/console" { strong { "imagegate" } }
                    @if let Some((name, csrf)) = user {
                        a href="/console/tokens" { "Access tokens" }
                        span { "Signed in as " (name) }
                        form method="post" action="/console/sign-out" {
                            input type="hidden" name="csrf" value=(csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { (content) }
            }
        }
    }
}

/// The sign-in form. `login` is the value the form carries back to prove it
/// came from this page (the same value is in a cookie).
pub fn sign_in(login: &str, next: &str, error: Option<&str>) -> Markup {
    layout(
        "Sign in",
        None,
        html! {
            h1 { "Sign in" }
            @if let Some(e) = error {
                p.error role="alert" { (e) }
            }
            form method="post" action="/console/sign-in" {
                input type="hidden" name="login" value=(login);
                input type="hidden" name="next" value=(next);
                p {
                    label for="username" { "Username" } br;
                    input type="text" id="username" name="username" autocomplete="username" required autofocus;
                }
                p {
                    label for="password" { "Password" } br;
                    input type="password" id="password" name="password" autocomplete="current-password" required;
                }
                button type="submit" { "Sign in" }
            }
        },
    )
}

/// What the home page shows.
pub struct HomePage<'a> {
    pub user: &'a str,
    pub csrf: &'a str,
    pub orgs: &'a [(String, &'static str)],
    /// Administrators create organisations here.
    pub administrator: bool,
    /// Why an organisation was not created.
    pub error: Option<&'a str>,
}

/// The organisations the user belongs to; for administrators, a form to
/// create one.
pub fn home(p: &HomePage<'_>) -> Markup {
    layout(
        "Organisations",
        Some((p.user, p.csrf)),
        html! {
            h1 { "Organisations" }
            @if p.orgs.is_empty() {
                p { "You are not a member of any organisation yet. Ask an owner to add you." }
            } @else {
                ul {
                    @for (org, role) in p.orgs {
                        li {
                            a href={ "/console/orgs/" (org) "/image-access" } { (org) }
                            " (" (role) ") · "
                            a href={ "/console/orgs/" (org) "/activity" } { "activity" } " · "
                            a href={ "/console/orgs/" (org) "/access-requests" } { "access requests" }
                        }
                    }
                }
            }
            @if p.administrator {
                h2 id="create" { "Create an organisation" }
                @if let Some(e) = p.error { p.error role="alert" id="create-error" { (e) } }
                form method="post" action="/console/orgs" aria-labelledby="create" {
                    input type="hidden" name="csrf" value=(p.csrf);
                    p {
                        label for="name" { "Name" } br;
                        input type="text" id="name" name="name" required pattern="[a-z0-9][a-z0-9._-]{0,63}"
                            aria-describedby=[p.error.map(|_| "create-error")];
                    }
                    p {
                        label for="namespaces" { "Docker Hub namespaces (its Organization images), comma-separated" } br;
                        input type="text" id="namespaces" name="namespaces";
                    }
                    p { small { "It starts with image access off, as Docker's does, and you as its owner." } }
                    button type="submit" { "Create" }
                }
            }
        },
    )
}

/// The organisation's pages, the current one marked; Insights for owners.
/// `take_over`, the CSRF token, when the user is an administrator who is
/// not an owner: they read the pages as members do, and may make
/// themselves an owner.
pub(super) fn org_nav(org: &str, current: &str, owner: bool, take_over: Option<&str>) -> Markup {
    let pages = [
        ("image-access", "Image access"),
        ("registry-access", "Registry access"),
        ("members", "Members"),
        ("policy", "Rules and policy"),
        ("access-requests", "Access requests"),
        ("activity", "Activity"),
        ("insights", "Insights"),
    ];
    html! {
        nav aria-label="Organisation" {
            a href="/console" { "Organisations" } " / " strong { (org) } " · "
            @for (i, (path, label)) in pages.iter().filter(|(p, _)| owner || *p != "insights").enumerate() {
                @if i > 0 { " · " }
                @if *path == current {
                    strong aria-current="page" { (label) }
                } @else {
                    a href={ "/console/orgs/" (org) "/" (path) } { (label) }
                }
            }
        }
        @if let Some(csrf) = take_over {
            form.note.take-over method="post" action={ "/console/orgs/" (org) "/become-owner" } {
                input type="hidden" name="csrf" value=(csrf);
                "You are an administrator: you see " (org) " as its members do, read-only. "
                button type="submit" { "Make me an owner of " (org) }
            }
        }
    }
}

/// One category's box: name, what it is and its risk.
struct CategoryBox {
    field: &'static str,
    label: &'static str,
    about: &'static str,
}

const CATEGORIES: [CategoryBox; 3] = [
    CategoryBox {
        field: "official",
        label: "Docker Official Images",
        about: "Curated images maintained by Docker (docker.io/library/…): reviewed and patched regularly; low risk.",
    },
    CategoryBox {
        field: "verified_publisher",
        label: "Docker Verified Publisher Images",
        about: "Images from commercial publishers Docker has verified: a known vendor stands behind them.",
    },
    CategoryBox {
        field: "community",
        label: "Community images",
        about: "Anyone's images on Docker Hub, Docker-Sponsored Open Source included: unreviewed, the highest supply-chain risk.",
    },
];

/// What the Image access page shows.
pub struct ImageAccessPage<'a> {
    pub user: &'a str,
    pub csrf: &'a str,
    pub org: &'a str,
    pub settings: &'a ImageAccess,
    pub editable: bool,
    /// See [`org_nav`].
    pub take_over: Option<&'a str>,
    pub saved: bool,
}

/// Image access: the switch and one box per category; owners edit, members
/// see every control disabled.
pub fn image_access(p: &ImageAccessPage<'_>) -> Markup {
    let s = p.settings;
    let checked = |field: &str| match field {
        "official" => s.official,
        "verified_publisher" => s.verified_publisher,
        _ => s.community,
    };
    let disabled = !p.editable;
    layout(
        "Image access",
        Some((p.user, p.csrf)),
        html! {
            (org_nav(p.org, "image-access", p.editable, p.take_over))
            h1 { "Image access" }
            p { "Choose which Docker Hub images members of " (p.org) " may pull. Off by default; when on, community images are off unless you allow them." }
            @if p.saved {
                p.saved role="status" { "Saved. The gateway and the admission doors apply it within a second." }
            }
            @if disabled {
                p.note { "Only owners of " (p.org) " manage image access. You can see the settings; you cannot change them." }
            }
            form method="post" action={ "/console/orgs/" (p.org) "/image-access" } {
                input type="hidden" name="csrf" value=(p.csrf);
                fieldset {
                    legend { "Image access" }
                    div.option {
                        input type="checkbox" id="enabled" name="enabled" value="on" checked[s.enabled] disabled[disabled];
                        label for="enabled" { "Restrict the Docker Hub images members may pull" }
                        @if disabled {
                            p { strong { @if s.enabled { "On: only the categories marked allowed below." } @else { "Off: every category is allowed." } } }
                        }
                    }
                }
                fieldset {
                    legend { "Allowed images" }
                    div.option {
                        input type="checkbox" id="organization" checked disabled aria-describedby="organization-about";
                        label for="organization" { "Organization images" }
                        p id="organization-about" {
                            "Images from " (p.org) "'s own Docker Hub namespaces"
                            @if !s.organization_namespaces.is_empty() { " (" (s.organization_namespaces.join(", ")) ")" }
                            ". Always allowed."
                        }
                    }
                    @for c in &CATEGORIES {
                        div.option {
                            input type="checkbox" id=(c.field) name=(c.field) value="on" checked[checked(c.field)] disabled[disabled]
                                aria-describedby={ (c.field) "-about" };
                            label for=(c.field) { (c.label) }
                            p id={ (c.field) "-about" } {
                                // Disabled boxes are drawn faintly: say it in words too.
                                @if disabled {
                                    @if !s.enabled || checked(c.field) { strong.allowed { "Allowed. " } }
                                    @else { strong.refused { "Not allowed. " } }
                                }
                                (c.about)
                            }
                        }
                    }
                }
                @if !s.verified_publishers.is_empty() {
                    p { "Verified publishers: " (s.verified_publishers.join(", ")) }
                }
                @if p.editable {
                    button type="submit" { "Save changes" }
                }
            }
        },
    )
}

/// What the Registry access page shows.
pub struct RegistryAccessPage<'a> {
    pub user: &'a str,
    pub csrf: &'a str,
    pub org: &'a str,
    pub enabled: bool,
    /// The registries, one per line (as saved, or as just submitted).
    pub allow: &'a str,
    pub editable: bool,
    /// See [`org_nav`].
    pub take_over: Option<&'a str>,
    pub saved: bool,
    /// Entries refused on entry, by line.
    pub problems: &'a [Problem],
}

/// Registry access: the switch and the allowed registries, one per line,
/// each checked with the policy's pattern rules when saved.
pub fn registry_access(p: &RegistryAccessPage<'_>) -> Markup {
    let disabled = !p.editable;
    layout(
        "Registry access",
        Some((p.user, p.csrf)),
        html! {
            (org_nav(p.org, "registry-access", p.editable, p.take_over))
            h1 { "Registry access" }
            p { "Choose the registries members of " (p.org) " may pull from. A registry (ghcr.io) allows all of it; a path (ghcr.io/corp) allows what is under it; *.corp.example allows its subdomains." }
            @if p.saved {
                p.saved role="status" { "Saved. The gateway and the admission doors apply it within a second." }
            }
            @if !p.problems.is_empty() {
                div.error role="alert" id="problems" {
                    p { "Not saved: fix these entries." }
                    ul {
                        @for problem in p.problems {
                            li { (problem.path) ": " (problem.message) }
                        }
                    }
                }
            }
            @if disabled {
                p.note { "Only owners of " (p.org) " manage registry access. You can see the settings; you cannot change them." }
            }
            form method="post" action={ "/console/orgs/" (p.org) "/registry-access" } {
                input type="hidden" name="csrf" value=(p.csrf);
                fieldset {
                    legend { "Registry access" }
                    div.option {
                        input type="checkbox" id="enabled" name="enabled" value="on" checked[p.enabled] disabled[disabled];
                        label for="enabled" { "Allow only the registries listed below" }
                    }
                    p {
                        label for="allow" { "Allowed registries, one per line" } br;
                        textarea id="allow" name="allow" rows="8" cols="48" disabled[disabled]
                            aria-describedby=[(!p.problems.is_empty()).then_some("problems")] { (p.allow) }
                    }
                }
                @if p.editable {
                    button type="submit" { "Save changes" }
                }
            }
        },
    )
}

/// What the Members page shows.
pub struct MembersPage<'a> {
    pub user: &'a str,
    pub csrf: &'a str,
    pub org: &'a str,
    pub members: &'a [(String, &'static str)],
    pub editable: bool,
    /// See [`org_nav`].
    pub take_over: Option<&'a str>,
    pub error: Option<&'a str>,
}

fn role_select(id: &str, current: &str) -> Markup {
    html! {
        select id=(id) name="role" {
            @for role in ["member", "owner"] {
                option value=(role) selected[role == current] { (role) }
            }
        }
    }
}

/// Members: who belongs and with which role. Owners add users, change roles
/// and remove members; members see the list.
pub fn members(p: &MembersPage<'_>) -> Markup {
    let base = format!("/console/orgs/{}/members", p.org);
    // The server refuses removing the last owner; the page does not offer it.
    let owners = p.members.iter().filter(|(_, r)| *r == "owner").count();
    layout(
        "Members",
        Some((p.user, p.csrf)),
        html! {
            (org_nav(p.org, "members", p.editable, p.take_over))
            h1 { "Members" }
            p { "Owners manage the organisation's settings and bypass image access at the gateway; members get the organisation's policy." }
            @if let Some(e) = p.error {
                p.error role="alert" { (e) }
            }
            @if !p.editable {
                p.note { "Only owners of " (p.org) " manage its members." }
            }
            table {
                thead { tr { th scope="col" { "User" } th scope="col" { "Role" } @if p.editable { th scope="col" { span.visually-hidden { "Actions" } } } } }
                tbody {
                    @for (name, role) in p.members {
                        tr {
                            td { (name) }
                            @if p.editable {
                                td {
                                    form method="post" action={ (base) "/" (name) } {
                                        input type="hidden" name="csrf" value=(p.csrf);
                                        label.visually-hidden for={ "role-" (name) } { "Role of " (name) }
                                        (role_select(&format!("role-{name}"), role))
                                        " "
                                        button type="submit" { "Change role" }
                                    }
                                }
                                td {
                                    @if *role == "owner" && owners == 1 {
                                        small { "the last owner stays" }
                                    } @else {
                                        form method="post" action={ (base) "/" (name) "/remove" } {
                                            input type="hidden" name="csrf" value=(p.csrf);
                                            button type="submit" class="secondary" aria-label={ "Remove " (name) } { "Remove" }
                                        }
                                    }
                                }
                            } @else {
                                td { (role) }
                            }
                        }
                    }
                }
            }
            @if p.editable {
                h2 { "Add a member" }
                form method="post" action=(base) {
                    input type="hidden" name="csrf" value=(p.csrf);
                    p {
                        label for="username" { "Username" } br;
                        input type="text" id="username" name="username" required;
                    }
                    p {
                        label for="role-new" { "Role" } br;
                        (role_select("role-new", "member"))
                    }
                    button type="submit" { "Add member" }
                }
            }
        },
    )
}

/// A decision for the "try an image" box, with its explain chain.
pub struct Tried<'a> {
    pub image: &'a str,
    pub decision: &'a imagegate_core::Decision,
    pub steps: &'a [imagegate_core::decision::Step],
}

/// What the Rules and policy page shows.
pub struct PolicyPage<'a> {
    pub user: &'a str,
    pub csrf: &'a str,
    pub org: &'a str,
    /// The policy text (as saved, or as just submitted).
    pub yaml: &'a str,
    pub editable: bool,
    /// See [`org_nav`].
    pub take_over: Option<&'a str>,
    pub saved: bool,
    /// Why the submitted text was not saved, each with its place.
    pub problems: &'a [Problem],
    pub tried: Option<Tried<'a>>,
}

/// Rules and policy: the whole policy as YAML, problems shown in place when
/// it does not load, and a box to try any image against the saved policy.
pub fn policy(p: &PolicyPage<'_>) -> Markup {
    let disabled = !p.editable;
    layout(
        "Rules and policy",
        Some((p.user, p.csrf)),
        html! {
            (org_nav(p.org, "policy", p.editable, p.take_over))
            h1 { "Rules and policy" }
            h2 { "Try an image" }
            form method="get" action={ "/console/orgs/" (p.org) "/policy" } {
                p {
                    label for="image" { "Image reference" } br;
                    input type="text" id="image" name="image" value=(p.tried.as_ref().map_or("", |t| t.image))
                        placeholder="someuser/custom-image:1";
                    " "
                    button type="submit" { "Decide" }
                }
            }
            @if let Some(t) = &p.tried {
                div class=(if t.decision.is_allowed() { "saved" } else { "error" }) role="status" id="decision" {
                    p {
                        strong { (if t.decision.is_allowed() { "Allowed" } else { "Refused" }) }
                        ": " (t.decision.message) " " code { "[" (t.decision.reason) "]" }
                    }
                    @if let Some(r) = &t.decision.reference {
                        p { "Reference: " code { (r) }
                            @if let Some(c) = t.decision.category { " · category " (c.code()) } }
                    }
                    @if !t.steps.is_empty() {
                        table {
                            caption.visually-hidden { "How the policy decided" }
                            thead { tr { th scope="col" { "Check" } th scope="col" { "Outcome" } th scope="col" { "Detail" } } }
                            tbody {
                                @for step in t.steps {
                                    tr { td { (step.check.label()) } td { (step.outcome.label()) } td { (step.detail) } }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "The policy" }
            @if p.saved {
                p.saved role="status" { "Saved. The gateway and the admission doors apply it within a second." }
            }
            @if !p.problems.is_empty() {
                div.error role="alert" id="problems" {
                    p { "Not saved: the policy does not load." }
                    ul {
                        @for problem in p.problems {
                            li {
                                @if let Some((line, column)) = problem.at { "line " (line) ", column " (column) ": " }
                                @if !problem.path.is_empty() { code { (problem.path) } ": " }
                                (problem.message)
                            }
                        }
                    }
                }
            }
            @if disabled {
                p.note { "Only owners of " (p.org) " change its policy. You can read it." }
            }
            form method="post" action={ "/console/orgs/" (p.org) "/policy" } {
                input type="hidden" name="csrf" value=(p.csrf);
                p {
                    label for="yaml" { "Policy (YAML)" } br;
                    textarea id="yaml" name="yaml" rows="24" cols="80" spellcheck="false" readonly[disabled]
                        aria-describedby=[(!p.problems.is_empty()).then_some("problems")] { (p.yaml) }
                }
                @if p.editable {
                    button type="submit" { "Save policy" }
                }
            }
        },
    )
}

/// What the Access tokens page shows.
pub struct TokensPage<'a> {
    pub user: &'a str,
    pub csrf: &'a str,
    /// The user's tokens, newest first.
    pub tokens: &'a [Token],
    /// The gateway's host, for `docker login`.
    pub host: &'a str,
    /// A token just created: its name and secret, shown this once.
    pub created: Option<(&'a str, &'a str)>,
    pub error: Option<&'a str>,
    /// Unix seconds now, to tell live tokens from expired ones.
    pub now: i64,
}

fn day(seconds: i64) -> String {
    crate::audit::rfc3339(seconds.saturating_mul(1000))
        .get(..10)
        .unwrap_or_default()
        .to_owned()
}

/// Access tokens: create one (shown once, with a copy button), list them,
/// revoke one. Personal access tokens are what `docker login` takes.
pub fn tokens(p: &TokensPage<'_>) -> Markup {
    layout(
        "Access tokens",
        Some((p.user, p.csrf)),
        html! {
            h1 { "Access tokens" }
            p { "Sign in to the registry gateway with a personal access token, never your password: "
                code { "docker login " (p.host) " -u " (p.user) } "." }
            @if let Some(e) = p.error {
                p.error role="alert" { (e) }
            }
            @if let Some((name, secret)) = p.created {
                div.saved role="status" {
                    p { "Token " strong { (name) } " created. Copy it now: it is not shown again." }
                    p {
                        label for="secret" { "Your new token" } br;
                        input type="text" id="secret" readonly value=(secret) size="60";
                        " "
                        button type="button" id="copy" { "Copy" }
                        script src=(super::SCRIPT) {}
                    }
                }
            }
            h2 { "Create a token" }
            form method="post" action="/console/tokens" {
                input type="hidden" name="csrf" value=(p.csrf);
                p {
                    label for="name" { "Name (what it is for)" } br;
                    input type="text" id="name" name="name" required maxlength="100";
                }
                p {
                    label for="expires" { "Expires" } br;
                    select id="expires" name="expires_days" {
                        option value="30" { "in 30 days" }
                        option value="90" selected { "in 90 days" }
                        option value="365" { "in a year" }
                        option value="" { "never" }
                    }
                }
                button type="submit" { "Create token" }
            }
            h2 { "Your tokens" }
            @if p.tokens.is_empty() {
                p { "You have no tokens." }
            } @else {
                table {
                    thead { tr { th scope="col" { "Name" } th scope="col" { "Created" } th scope="col" { "Last used" } th scope="col" { "Expires" } th scope="col" { "State" } th scope="col" { span.visually-hidden { "Action" } } } }
                    tbody {
                        @for t in p.tokens {
                            tr {
                                td { (t.name) }
                                td { (day(t.created)) }
                                td { (t.last_used.map(day).unwrap_or_else(|| "never".to_owned())) }
                                td { (t.expires.map(day).unwrap_or_else(|| "never".to_owned())) }
                                td {
                                    @if t.revoked.is_some() { "revoked" }
                                    @else if t.expires.is_some_and(|e| e <= p.now) { "expired" }
                                    @else { "active" }
                                }
                                td {
                                    @if t.revoked.is_none() {
                                        form method="post" action={ "/console/tokens/" (t.id) "/revoke" } {
                                            input type="hidden" name="csrf" value=(p.csrf);
                                            button type="submit" aria-label={ "Revoke " (t.name) } { "Revoke" }
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

/// A refusal or an error, as a page.
pub fn problem(title: &str, message: &str, user: Option<(&str, &str)>) -> Markup {
    layout(
        title,
        user,
        html! {
            h1 { (title) }
            p.error role="alert" { (message) }
            p { a href="/console" { "Back to your organisations" } }
        },
    )
}
