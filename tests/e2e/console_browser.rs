//! The console in headless Chromium against a real gateway: corp's owner
//! signs in and switches image access on with the form, a member's skopeo
//! pull through the gateway follows what was saved, and the member sees the
//! same page read-only; then the member asks for the refused image from the
//! link the refusal printed, the owner approves it, the pull goes through,
//! and the owner reviews Activity (measured at 1280 px) and Insights; last,
//! an administrator in no organisation reads corp and makes themselves an
//! owner of it. On the way, the stylesheet
//! and the Copy button's script show that the console's
//! Content-Security-Policy lets its own files work. Screenshots of every page are kept as artefacts
//! (`target/e2e-artifacts/screenshots/`).
//!
//! The flow is one test, step by step, so that a later step (an access
//! request, say) is appended where it happens; [`World`] holds the
//! gateway and the member's client machine, [`Browser`] one person's browser.

use std::time::{Duration, Instant};

use fantoccini::Locator;

use crate::browser::{Browser, Chromedriver};
use crate::clients::{Client, Clients, DataDir, Gateway, Layer, Registry, Run, TestCa, push_image};

const OWNER: &str = "boss";
const OWNER_PASSWORD: &str = "boss console password";
const MEMBER: &str = "dev";
const MEMBER_PASSWORD: &str = "dev console password";
/// An administrator of this imagegate, in no organisation.
const ADMINISTRATOR: &str = "ada";
const ADMINISTRATOR_PASSWORD: &str = "ada console password";

/// A community image on the docker.io upstream: Docker Hub's `someuser`.
const COMMUNITY_REPOSITORY: &str = "someuser/custom-image";
const COMMUNITY_DENIED: &str = "image access denied: community images not allowed";

/// The Image access page's controls, by their labels.
const RESTRICT: &str = "Restrict the Docker Hub images members may pull";
const OFFICIAL: &str = "Docker Official Images";
const COMMUNITY: &str = "Community images";

/// How long a saved setting may take to reach the member's pull. The
/// gateway re-reads policies every second (`--reload-interval-seconds 1`),
/// so it takes about a second; the rest is room for a loaded machine.
const RELOAD_PATIENCE: Duration = Duration::from_secs(10);

/// The docker.io upstream with the community image, a gateway in front with
/// organisation corp (as `imagegate admin org create` makes it: image access
/// off, namespace corp), its owner and member, and the member's client
/// machine signed in to the gateway with their personal access token.
struct World {
    clients: Clients,
    gateway: Gateway,
    _hub: Registry,
    ca: TestCa,
    driver: Chromedriver,
    started: Instant,
    /// The community image's manifest digest.
    community_digest: String,
}

impl World {
    fn new() -> World {
        let started = Instant::now();
        let driver = Chromedriver::start();
        let ca = TestCa::new();
        let hub = Registry::start(None);
        let community_digest = push_image(
            &hub,
            COMMUNITY_REPOSITORY,
            "1",
            &[Layer::file("etc/image", "someuser's image\n")],
        )
        .digest;
        let data = DataDir::new();
        data.admin(&["org", "create", "corp", "--namespace", "corp"], b"")
            .success();
        let member_pat = data.user_with_token(MEMBER, MEMBER_PASSWORD);
        data.user_with_token(OWNER, OWNER_PASSWORD);
        data.admin(&["member", "add", "corp", OWNER, "--role", "owner"], b"")
            .success();
        data.admin(&["member", "add", "corp", MEMBER, "--role", "member"], b"")
            .success();
        data.admin(
            &["user", "create", ADMINISTRATOR, "--administrator"],
            format!("{ADMINISTRATOR_PASSWORD}\n").as_bytes(),
        )
        .success();
        let gateway = Gateway::start(data, &ca, &[("docker.io", &hub)], false);
        let clients = Clients::new();
        clients.trust(&gateway.host_port(), &ca.ca());
        clients
            .login("skopeo", &gateway.host_port(), MEMBER, &member_pat)
            .success();
        World {
            clients,
            gateway,
            _hub: hub,
            ca,
            driver,
            started,
            community_digest,
        }
    }

    /// A new browser, signed in to the console as `user`.
    async fn browser(&self, user: &str, password: &str) -> Browser {
        let browser = Browser::start(&self.driver, &self.gateway, &self.ca).await;
        browser.sign_in(user, password).await;
        browser
    }

    /// The community image through the gateway.
    fn community_image(&self) -> String {
        format!("{}/{COMMUNITY_REPOSITORY}:1", self.gateway.host_port())
    }

    /// The member pulls `reference` with skopeo until the pull is `allowed`
    /// (or refused), as the saved setting reaches the gateway; the last run.
    fn member_pull_until(&self, reference: &str, allowed: bool) -> Run {
        tokio::task::block_in_place(|| {
            let started = Instant::now();
            loop {
                let run = self.clients.pull(Client::Skopeo, reference);
                if run.status.success() == allowed {
                    eprintln!(
                        "the member's pull is {} after {:.1}s",
                        if allowed { "allowed" } else { "refused" },
                        started.elapsed().as_secs_f64()
                    );
                    return run;
                }
                assert!(
                    started.elapsed() < RELOAD_PATIENCE,
                    "the member's pull is still {} {RELOAD_PATIENCE:?} after the owner saved: {run}",
                    if allowed { "refused" } else { "allowed" }
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    }
}

/// The link a refused pull prints after `ask for access: `.
fn ask_link(stderr: &str) -> Option<String> {
    let at = stderr.find("ask for access: ")? + "ask for access: ".len();
    Some(
        stderr[at..]
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '\\' && *c != '"')
            .collect(),
    )
}

/// Whether the checkbox labelled `label` is ticked.
async fn ticked(browser: &Browser, label: &str) -> bool {
    browser.field(label).await.is_selected().await.unwrap()
}

/// Ticks (or unticks) the checkbox labelled `label` by clicking its label,
/// as a person does, unless it already is.
async fn tick(browser: &Browser, label: &str, on: bool) {
    let checkbox = browser.field(label).await;
    if checkbox.is_selected().await.unwrap() != on {
        browser.label(label).await.click().await.unwrap();
    }
    assert_eq!(
        checkbox.is_selected().await.unwrap(),
        on,
        "{label:?} after clicking its label"
    );
}

/// Saves the Image access form and checks what the owner is told.
async fn save_image_access(owner: &Browser) {
    owner
        .click_to_load(&owner.button("Save changes").await)
        .await;
    assert_eq!(
        owner.path().await,
        "/console/orgs/corp/image-access?saved=1"
    );
    assert_eq!(
        owner.text("[role=status]").await,
        "Saved. The gateway and the admission doors apply it within a second."
    );
}

/// The Image access page's boxes as the person sees them: (restrict,
/// official, community).
async fn image_access_boxes(browser: &Browser) -> (bool, bool, bool) {
    (
        ticked(browser, RESTRICT).await,
        ticked(browser, OFFICIAL).await,
        ticked(browser, COMMUNITY).await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_restricts_image_access_in_the_browser_and_the_gateway_follows() {
    let w = tokio::task::block_in_place(World::new);
    let community = w.community_image();
    // Before anyone changes anything, image access is off: everything goes.
    w.member_pull_until(&community, true);

    // 1. The owner signs in, finds corp's Image access page and switches it
    //    on with official images and without community ones.
    let owner = w.browser(OWNER, OWNER_PASSWORD).await;
    assert!(
        owner.text("main").await.contains("corp (owner)"),
        "the owner's organisations: {}",
        owner.text("main").await
    );
    owner.screenshot("organisations").await;
    owner.click_to_load(&owner.link("corp").await).await;
    assert_eq!(owner.path().await, "/console/orgs/corp/image-access");
    assert_eq!(owner.text("h1").await, "Image access");
    assert_eq!(
        image_access_boxes(&owner).await,
        (false, true, false),
        "a new organisation: image access off, and community images off once it is on"
    );
    tick(&owner, RESTRICT, true).await;
    tick(&owner, OFFICIAL, true).await;
    tick(&owner, COMMUNITY, false).await;
    save_image_access(&owner).await;
    assert_eq!(image_access_boxes(&owner).await, (true, true, false));
    owner.refresh().await.unwrap();
    assert_eq!(
        image_access_boxes(&owner).await,
        (true, true, false),
        "after a reload"
    );
    owner.screenshot("image-access").await;

    // 2. The member's pull of a community image is now refused, in words.
    let refused = w.member_pull_until(&community, false);
    assert!(
        refused
            .stderr
            .contains(&format!("denied: {COMMUNITY_DENIED}")),
        "expected `denied: {COMMUNITY_DENIED}`: {refused}"
    );

    // 3. The owner allows community images; the member's pull goes through.
    tick(&owner, COMMUNITY, true).await;
    save_image_access(&owner).await;
    owner.refresh().await.unwrap();
    assert_eq!(
        image_access_boxes(&owner).await,
        (true, true, true),
        "after a reload"
    );
    w.member_pull_until(&community, true);

    // 4. The member, in a browser of their own, sees the page read-only.
    let member = w.browser(MEMBER, MEMBER_PASSWORD).await;
    assert!(
        member.text("main").await.contains("corp (member)"),
        "the member's organisations: {}",
        member.text("main").await
    );
    member.click_to_load(&member.link("corp").await).await;
    assert_eq!(member.path().await, "/console/orgs/corp/image-access");
    assert_eq!(
        member.text(".note").await,
        "Only owners of corp manage image access. You can see the settings; you cannot change them."
    );
    assert_eq!(image_access_boxes(&member).await, (true, true, true));
    let form = member
        .find(Locator::Css(
            "form[action='/console/orgs/corp/image-access']",
        ))
        .await
        .unwrap();
    let controls = form
        .find_all(Locator::Css(
            "input:not([type=hidden]), button, select, textarea",
        ))
        .await
        .unwrap();
    assert!(controls.len() >= 5, "the switch and four category boxes");
    for control in &controls {
        assert!(
            !control.is_enabled().await.unwrap(),
            "a member can use {}",
            control.html(false).await.unwrap()
        );
    }
    let submits = form
        .find_all(Locator::Css("button, input[type=submit]"))
        .await
        .unwrap();
    assert!(
        submits.is_empty(),
        "a member's Image access form has no button"
    );
    // Clicking a label changes nothing.
    member.label(COMMUNITY).await.click().await.unwrap();
    assert!(ticked(&member, COMMUNITY).await, "a member unticked a box");
    member.screenshot("image-access-member").await;

    // 5. The owner's other pages, as artefacts.
    owner
        .click_to_load(&owner.link("Registry access").await)
        .await;
    assert_eq!(owner.text("h1").await, "Registry access");
    owner.screenshot("registry-access").await;

    owner.click_to_load(&owner.link("Members").await).await;
    assert_eq!(owner.text("h1").await, "Members");
    let members = owner.text("table").await;
    assert!(
        members.contains(OWNER) && members.contains(MEMBER),
        "corp's members: {members}"
    );
    owner.screenshot("members").await;

    owner
        .click_to_load(&owner.link("Rules and policy").await)
        .await;
    assert_eq!(owner.text("h1").await, "Rules and policy");
    let policy = owner
        .field("Policy (YAML)")
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(
        policy.contains("community"),
        "the policy shows what the owner saved:\n{policy}"
    );
    owner.screenshot("policy").await;

    owner
        .click_to_load(&owner.link("Access tokens").await)
        .await;
    assert_eq!(owner.text("h1").await, "Access tokens");
    owner.screenshot("tokens").await;
    // The console's Content-Security-Policy lets in only its own files, and
    // they work: the stylesheet draws the header in the console's blue, and
    // the Copy button's script runs.
    let header_colour = owner
        .execute(
            "return getComputedStyle(document.querySelector('header')).backgroundColor;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(header_colour, "rgb(11, 61, 145)", "the stylesheet applies");
    owner
        .field("Name (what it is for)")
        .await
        .send_keys("the browser test")
        .await
        .unwrap();
    owner
        .click_to_load(&owner.button("Create token").await)
        .await;
    owner.button("Copy").await.click().await.unwrap();
    owner.button("Copied").await;

    // 6. Community images off again: the member's refusal says where to
    //    ask, the member asks from that link, the owner approves, and the
    //    pull goes through, for exactly that repository.
    owner.open("/console/orgs/corp/image-access").await;
    tick(&owner, COMMUNITY, false).await;
    save_image_access(&owner).await;
    let refused = w.member_pull_until(&community, false);
    let link = ask_link(&refused.stderr).unwrap_or_else(|| panic!("no ask link: {refused}"));
    let base = format!("https://{}", w.gateway.host_port());
    let path = link
        .strip_prefix(&base)
        .unwrap_or_else(|| panic!("{link} is not on {base}"));
    assert_eq!(
        path,
        "/console/orgs/corp/access-requests/new?image=docker.io/someuser/custom-image:1"
    );
    member.open(path).await;
    assert_eq!(member.text("h1").await, "Access requests");
    assert_eq!(
        member.text(".note").await,
        format!("Today docker.io/someuser/custom-image:1 is refused: {COMMUNITY_DENIED}")
    );
    assert_eq!(
        member
            .field("Image")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("docker.io/someuser/custom-image:1"),
        "the form is prefilled from the link"
    );
    member
        .field("Why you need it")
        .await
        .send_keys("the release pipeline's lint step runs it")
        .await
        .unwrap();
    member
        .click_to_load(&member.button("Send request").await)
        .await;
    let sent = member.text("[role=status]").await;
    assert!(
        sent.starts_with("Request ") && sent.contains(" sent."),
        "{sent}"
    );
    member.screenshot("access-request-member").await;

    owner
        .click_to_load(&owner.link("Access requests").await)
        .await;
    assert_eq!(owner.text("#open").await, "Open requests (1)");
    let request = owner.text("article.request").await;
    assert!(
        request.contains("the release pipeline's lint step runs it")
            && request.contains("allow: docker.io/someuser/custom-image"),
        "the owner sees the reason and the rule: {request}"
    );
    owner
        .field(&format!("Note to {MEMBER} (optional)"))
        .await
        .send_keys("approved for the pipeline; pin a digest")
        .await
        .unwrap();
    owner.screenshot("access-requests").await;
    owner.click_to_load(&owner.button("Approve").await).await;
    assert!(
        owner.text("[role=status]").await.ends_with(" approved."),
        "{}",
        owner.text("main").await
    );
    assert_eq!(owner.text("#open").await, "Open requests (0)");
    w.member_pull_until(&community, true);
    member.refresh().await.unwrap();
    let outcome = member.text("table").await;
    assert!(
        outcome.contains("approved") && outcome.contains("approved for the pipeline; pin a digest"),
        "the member sees the outcome and the note: {outcome}"
    );

    // Pinned by digest, as a careful pipeline pulls: the longest name the
    // activity log shows.
    w.member_pull_until(
        &format!(
            "{}/{COMMUNITY_REPOSITORY}@{}",
            w.gateway.host_port(),
            w.community_digest
        ),
        true,
    );

    // 7. What the owner reviews: the activity log and the insights.
    owner.click_to_load(&owner.link("Activity").await).await;
    assert_eq!(owner.text("h1").await, "Activity");
    let activity = owner.text("table").await;
    assert!(
        activity.contains("docker.io/someuser/custom-image:1")
            && activity.contains(COMMUNITY_DENIED),
        "the refusals are in the log: {activity}"
    );
    owner.screenshot("activity").await;
    // At 1280 px the log fits: nothing runs off the page or out of its
    // cell, and the Decision and Why columns are in view.
    let layout = owner
        .execute(
            r#"const table = document.querySelector("main table");
               const column = name => [...table.querySelectorAll("thead th")]
                   .find(th => th.textContent.trim() === name).getBoundingClientRect();
               const overflowing = [...table.querySelectorAll("td")]
                   .filter(td => td.scrollWidth > td.clientWidth + 1)
                   .map(td => td.textContent.trim());
               return {
                   viewport: document.documentElement.clientWidth,
                   page: document.documentElement.scrollWidth,
                   main: document.querySelector("main").getBoundingClientRect().right,
                   table: table.getBoundingClientRect().right,
                   decision: [column("Decision").left, column("Decision").right],
                   why: [column("Why").left, column("Why").right],
                   overflowing,
               };"#,
            vec![],
        )
        .await
        .unwrap();
    eprintln!("the activity table at 1280 px: {layout}");
    let px = |v: &serde_json::Value| v.as_f64().unwrap();
    let viewport = px(&layout["viewport"]);
    assert_eq!(viewport, 1280.0, "{layout}");
    assert!(
        px(&layout["page"]) <= viewport,
        "the page scrolls sideways: {layout}"
    );
    assert!(
        px(&layout["table"]) <= px(&layout["main"]) + 1.0,
        "the table runs out of the page's column: {layout}"
    );
    for column in ["decision", "why"] {
        let (left, right) = (px(&layout[column][0]), px(&layout[column][1]));
        assert!(
            right <= viewport && right - left >= 60.0,
            "the {column} column is not in view: {layout}"
        );
    }
    assert_eq!(
        layout["overflowing"],
        serde_json::json!([]),
        "cells whose text runs out of them: {layout}"
    );
    // A pull is one row: the refused pulls are manifests, the allowed ones
    // fold their blobs in; no row shows a blob's digest.
    let by_digest = format!("{COMMUNITY_REPOSITORY}@{}", w.community_digest);
    assert!(activity.contains(&by_digest), "{activity}");
    assert_eq!(
        activity.matches("@sha256:").count(),
        activity.matches(&by_digest).count(),
        "only the pull by digest names one; no blob is a row of its own: {activity}"
    );
    assert!(activity.contains("pull: "), "{activity}");
    owner.click_to_load(&owner.link("Insights").await).await;
    assert_eq!(owner.text("h1").await, "Insights");
    let top = owner.text("h2 + table").await;
    assert!(
        top.contains("docker.io/someuser/custom-image"),
        "the most refused image: {top}"
    );
    let bars = owner.find_all(Locator::Css("svg rect.r")).await.unwrap();
    assert!(!bars.is_empty(), "the chart draws the refusals");
    owner.screenshot("insights").await;

    // 8. An administrator in no organisation sees corp read-only, and
    //    makes themselves an owner from its page.
    let administrator = w.browser(ADMINISTRATOR, ADMINISTRATOR_PASSWORD).await;
    assert!(
        administrator
            .text("main")
            .await
            .contains("corp (administrator, not a member)"),
        "the administrator's organisations: {}",
        administrator.text("main").await
    );
    administrator
        .click_to_load(&administrator.link("corp").await)
        .await;
    assert_eq!(
        administrator.path().await,
        "/console/orgs/corp/image-access"
    );
    assert_eq!(
        image_access_boxes(&administrator).await,
        (true, true, false),
        "what the owner saved, read-only"
    );
    assert!(
        administrator
            .find_all(Locator::XPath("//button[normalize-space()='Save changes']"))
            .await
            .unwrap()
            .is_empty(),
        "read-only"
    );
    administrator.screenshot("image-access-administrator").await;
    administrator
        .click_to_load(&administrator.button("Make me an owner of corp").await)
        .await;
    assert_eq!(administrator.path().await, "/console/orgs/corp/members");
    let members = administrator.text("table").await;
    assert!(
        members.contains(ADMINISTRATOR),
        "the administrator is among corp's members: {members}"
    );
    administrator.open("/console/orgs/corp/image-access").await;
    administrator.button("Save changes").await;

    administrator.close().await;
    member.close().await;
    owner.close().await;
    eprintln!(
        "console in the browser: {:.1}s in all",
        w.started.elapsed().as_secs_f64()
    );
}
