//! Decision cases (data files under tests/data/decide) and the contract
//! messages, written out literally.

use imagegate_core::decision::{Check, DecidedBy, Decision, StepOutcome};
use imagegate_core::dockerhub::Category;
use imagegate_core::policy::suite::Suite;
use imagegate_core::{Input, Mode, Policy, Reason, Verdict, decide, decide_explained};

const CORP: &str = include_str!("../data/decide/corp.policy.yaml");

fn policy(text: &str) -> Policy {
    Policy::load(text).unwrap()
}

fn run_suite(policy_text: &str, suite_text: &str, at_least: usize) {
    let policy = policy(policy_text);
    let suite = Suite::load(suite_text).unwrap();
    assert!(
        suite.cases.len() >= at_least,
        "the suite lost cases: {}",
        suite.cases.len()
    );
    let failures: Vec<String> = suite
        .run(&policy)
        .into_iter()
        .filter(|r| !r.passed)
        .map(|r| {
            format!(
                "line {}: {:?} (ns {:?}, user {:?}): expected {:?} {:?}, got {:?} {:?}: {}",
                r.case.line,
                r.case.image,
                r.case.namespace,
                r.case.user,
                r.case.decision,
                r.case.reason,
                r.decision.verdict,
                r.decision.reason,
                r.decision.message
            )
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn corp_policy_decides_every_case_in_its_suite() {
    run_suite(CORP, include_str!("../data/decide/corp.test.yaml"), 53);
}

#[test]
fn warn_mode_allows_would_be_denials_and_keeps_their_reason() {
    run_suite(
        include_str!("../data/decide/warn.policy.yaml"),
        include_str!("../data/decide/warn.test.yaml"),
        7,
    );
}

#[test]
fn digest_requirement_and_digest_rules_hold() {
    run_suite(
        include_str!("../data/decide/digest.policy.yaml"),
        include_str!("../data/decide/digest.test.yaml"),
        7,
    );
}

fn image_access(allow: &str) -> Policy {
    policy(&format!(
        "apiVersion: imagegate.dev/v1\nkind: ImagePolicy\nmetadata: {{name: t}}\nspec:\n  imageAccess:\n    enabled: true\n    allow: {allow}\n    organizationNamespaces: [corp]\n    verifiedPublishers: [bitnami]\n"
    ))
}

#[test]
fn community_image_is_denied_when_category_off() {
    let d = decide(
        &image_access("[official]"),
        &Input::image("someuser/custom-image"),
    );
    assert_eq!(d.verdict, Verdict::Deny);
    assert_eq!(d.reason, Reason::CategoryNotAllowed);
    assert_eq!(
        d.message,
        "image access denied: community images not allowed"
    );
    assert_eq!(d.category, Some(Category::Community));
    assert_eq!(d.decided_by, DecidedBy::ImageAccess);
}

#[test]
fn each_category_refusal_has_its_contract_message() {
    let p = image_access("[community]");
    let d = decide(&p, &Input::image("nginx:1"));
    assert_eq!(
        d.message,
        "image access denied: official images not allowed"
    );
    let d = decide(&p, &Input::image("bitnami/redis:7"));
    assert_eq!(
        d.message,
        "image access denied: verified publisher images not allowed"
    );
    let d = decide(&p, &Input::image("corp/app:1"));
    assert_eq!(
        d.verdict,
        Verdict::Allow,
        "organization images are always allowed"
    );
    assert_eq!(d.category, Some(Category::Organization));
}

#[test]
fn image_access_off_allows_every_category_but_still_reports_it() {
    let p = policy(
        "apiVersion: imagegate.dev/v1\nkind: ImagePolicy\nmetadata: {name: t}\nspec:\n  imageAccess:\n    enabled: false\n    verifiedPublishers: [bitnami]\n",
    );
    let d = decide(&p, &Input::image("bitnami/redis:7"));
    assert_eq!(d.verdict, Verdict::Allow);
    assert_eq!(d.category, Some(Category::VerifiedPublisher));
}

#[test]
fn registry_refusal_names_the_host_lowercased_with_its_port() {
    let p = policy(
        "apiVersion: imagegate.dev/v1\nkind: ImagePolicy\nmetadata: {name: t}\nspec:\n  registryAccess:\n    enabled: true\n    allow: [docker.io]\n",
    );
    let d = decide(&p, &Input::image("GHCR.IO:5000/corp/app:1"));
    assert_eq!(d.reason, Reason::RegistryNotAllowed);
    assert_eq!(d.message, "registry access to ghcr.io:5000 is not allowed");
    let d = decide(&p, &Input::image("Registry-1.Docker.IO/library/nginx:1"));
    assert_eq!(
        d.verdict,
        Verdict::Allow,
        "every Docker Hub alias is docker.io"
    );
}

#[test]
fn rule_refusal_uses_the_rule_message_or_names_the_rule() {
    let p = policy(
        "apiVersion: imagegate.dev/v1\nkind: ImagePolicy\nmetadata: {name: t}\nspec:\n  rules:\n    - deny: nginx\n    - deny: \"**:latest\"\n      message: pin a version\n",
    );
    let d = decide(&p, &Input::image("nginx:1.25"));
    assert_eq!(
        d.message,
        "image docker.io/library/nginx:1.25 is denied by rule nginx"
    );
    assert_eq!(d.decided_by, DecidedBy::Rule(0));
    let d = decide(&p, &Input::image("ghcr.io/a/b"));
    assert_eq!(d.message, "pin a version");
    assert_eq!(d.decided_by.policy_path().as_deref(), Some("spec.rules[1]"));
}

#[test]
fn digest_refusal_names_the_reference() {
    let p = policy(
        "apiVersion: imagegate.dev/v1\nkind: ImagePolicy\nmetadata: {name: t}\nspec:\n  require: {digest: true}\n",
    );
    let d = decide(&p, &Input::image("nginx"));
    assert_eq!(
        d.message,
        "image access denied: docker.io/library/nginx:latest is not pinned by digest"
    );
}

#[test]
fn invalid_and_ambiguous_references_say_what_and_why() {
    let p = Policy::default();
    let d = decide(&p, &Input::image("Foo/Bar"));
    assert_eq!(d.verdict, Verdict::Deny);
    assert_eq!(d.reason, Reason::InvalidReference);
    assert_eq!(
        d.message,
        "invalid reference \"Foo/Bar\": repository name must be lowercase, found 'B' at position 5"
    );
    assert_eq!(d.reference, None);
    let d = decide(&p, &Input::image("nginx:bad tag"));
    assert_eq!(
        d.message,
        "invalid reference \"nginx:bad tag\": invalid character ' ' in tag at position 10"
    );
    let d = decide(&p, &Input::image("a\0b"));
    assert_eq!(
        d.message,
        "invalid reference \"a\\0b\": invalid character '\\0' in repository name at position 2"
    );
    let d = decide(&p, &Input::image("foo_bar.com/app"));
    assert_eq!(d.reason, Reason::AmbiguousReference);
    assert!(
        d.message
            .starts_with("ambiguous reference \"foo_bar.com/app\": "),
        "{}",
        d.message
    );
    let hex = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
    let d = decide(&p, &Input::image(hex));
    assert_eq!(d.reason, Reason::AmbiguousReference);
    assert!(
        d.message
            .starts_with(&format!("ambiguous reference \"{hex}\": ")),
        "{}",
        d.message
    );
    assert!(d.message.contains("local image ID"), "{}", d.message);
}

#[test]
fn no_policy_allows_every_valid_unambiguous_reference() {
    let p = Policy::default();
    for image in [
        "nginx",
        "someuser/custom-image",
        "quay.io/a/b:1",
        "[::1]:5000/x@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    ] {
        let d = decide(&p, &Input::image(image));
        assert_eq!(
            (d.verdict, d.reason),
            (Verdict::Allow, Reason::Allowed),
            "{image}"
        );
        assert_eq!(d.mode, Mode::Enforce);
    }
}

#[test]
fn explain_walks_the_evaluation_order() {
    let p = policy(CORP);
    let (d, steps) = decide_explained(&p, &Input::image("someuser/custom-image:1"));
    assert_eq!(
        d,
        decide(&p, &Input::image("someuser/custom-image:1")),
        "explaining must not change the decision"
    );
    let checks: Vec<(Check, StepOutcome)> = steps.iter().map(|s| (s.check, s.outcome)).collect();
    assert_eq!(
        checks,
        [
            (Check::Reference, StepOutcome::Pass),
            (Check::Exemptions, StepOutcome::Pass),
            (Check::Rules, StepOutcome::Pass),
            (Check::RegistryAccess, StepOutcome::Pass),
            (Check::ImageAccess, StepOutcome::Deny),
        ]
    );
    assert!(
        steps[4].detail.contains("community images are not allowed"),
        "{}",
        steps[4].detail
    );
    let (_, steps) = decide_explained(&p, &Input::image("someuser/vetted-tool"));
    assert_eq!(
        steps.last().map(|s| (s.check, s.outcome)),
        Some((Check::Rules, StepOutcome::Allow))
    );
}

#[test]
fn ten_thousand_rules_keep_first_match_order() {
    let mut text = String::from(
        "apiVersion: imagegate.dev/v1\nkind: ImagePolicy\nmetadata: {name: big}\nspec:\n  rules:\n",
    );
    text.push_str("    - deny: \"ghcr.io/team-7/**\"\n      message: first\n");
    for i in 0..10_000 {
        text.push_str(&format!(
            "    - allow: \"ghcr.io/team-{}/app-{}\"\n",
            i % 100,
            i
        ));
    }
    text.push_str("    - deny: \"*.corp.example/**\"\n    - allow: \"**\"\n");
    let p = policy(&text);
    let d = decide(&p, &Input::image("ghcr.io/team-7/app-7:1"));
    assert_eq!((d.verdict, &*d.message), (Verdict::Deny, "first"));
    let d = decide(&p, &Input::image("ghcr.io/team-8/app-8:1"));
    assert_eq!(d.decided_by, DecidedBy::Rule(9));
    let d = decide(&p, &Input::image("ghcr.io/team-8/app-9:1"));
    assert_eq!(
        d.decided_by,
        DecidedBy::Rule(10_002),
        "falls through to the catch-all"
    );
    let d = decide(&p, &Input::image("registry.corp.example/x"));
    assert_eq!(d.decided_by, DecidedBy::Rule(10_001));
}

#[test]
fn break_glass_allows_a_refusal_only_when_the_policy_enables_it_and_says_so() {
    let p = policy(include_str!("../data/decide/digest.policy.yaml"));
    let input = Input {
        image: "nginx:1.25",
        break_glass: true,
        ..Input::default()
    };
    let d = decide(&p, &input);
    assert_eq!((d.verdict, d.reason), (Verdict::Allow, Reason::BreakGlass));
    assert_eq!(
        d.message,
        "break-glass: allowed despite: image access denied: docker.io/library/nginx:1.25 is not pinned by digest"
    );
    assert_eq!(
        d.decided_by.policy_path().as_deref(),
        Some("spec.breakGlass")
    );
    let (explained, steps) = decide_explained(&p, &input);
    assert_eq!(explained, d);
    assert_eq!(
        steps.last().map(|s| (s.check, s.outcome)),
        Some((Check::BreakGlass, StepOutcome::Allow))
    );
    let corp = policy(CORP);
    let d = decide(
        &corp,
        &Input {
            image: "someuser/custom-image:1",
            break_glass: true,
            ..Input::default()
        },
    );
    assert_eq!(d.verdict, Verdict::Deny);
}

#[test]
fn unresolved_and_unparsable_scan_findings_are_denied_in_every_mode() {
    for mode in [Mode::Enforce, Mode::Warn, Mode::Audit] {
        let d = Decision::unresolved("${BASE}:${TAG}", &["BASE".into(), "TAG".into()], mode);
        assert!(!d.is_allowed());
        assert_eq!(d.reason.code(), "unresolved");
        assert_eq!(
            d.message,
            r#"unresolved image "${BASE}:${TAG}": BASE and TAG have no value"#
        );
        let d = Decision::unresolved("$IMG", &["IMG".into()], mode);
        assert_eq!(d.message, r#"unresolved image "$IMG": IMG has no value"#);
        let d = Decision::parse_error("YAML", "mapping values are not allowed here", mode);
        assert!(!d.is_allowed());
        assert_eq!(d.reason.code(), "parse_error");
        assert_eq!(
            d.message,
            "cannot parse YAML: mapping values are not allowed here"
        );
    }
}

#[test]
fn every_refusal_reason_has_a_hint_and_no_allow_reason_does() {
    for reason in Reason::ALL {
        assert_eq!(reason.hint().is_some(), reason.is_refusal(), "{reason}");
    }
}

#[test]
fn access_refusals_are_image_access_and_registry_access_only() {
    let access: Vec<Reason> = Reason::ALL
        .into_iter()
        .filter(|r| r.is_access_refusal())
        .collect();
    assert_eq!(
        access,
        [Reason::RegistryNotAllowed, Reason::CategoryNotAllowed]
    );
    assert!(access.iter().all(|r| r.is_refusal()));
}

#[test]
fn an_owners_bypass_is_its_own_reason_naming_the_refusal_it_bypassed() {
    let p = policy(CORP);
    let owner = |image| {
        decide(
            &p,
            &Input {
                image,
                owner: true,
                ..Input::default()
            },
        )
    };
    let d = owner("someuser/custom-image:1");
    assert_eq!(d.verdict, Verdict::Allow);
    assert_eq!(d.reason, Reason::OwnerBypass);
    assert_eq!(d.reason.code(), "owner_bypass");
    assert_eq!(
        d.message,
        "owner bypass: allowed despite: image access denied: community images not allowed"
    );
    assert_eq!(d.decided_by, DecidedBy::ImageAccess);
    assert!(!d.is_would_be_denial(), "a bypass is not a warning");
    // Nothing to bypass: a plain allow.
    assert_eq!(owner("nginx:1.25").reason, Reason::Allowed);
    // A member gets the refusal the owner bypassed.
    assert_eq!(
        decide(&p, &Input::image("someuser/custom-image:1")).message,
        "image access denied: community images not allowed"
    );
}
