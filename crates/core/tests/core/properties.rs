//! Properties of the grammar and the engine, over generated input: normalising
//! is idempotent, every accepted string re-serialises to one with the same
//! meaning, and deciding is total and deterministic.

use imagegate_core::reference::{Reference, grammar};
use imagegate_core::{Input, Policy, decide};
use proptest::prelude::*;

/// Strings shaped like references: mostly grammar characters, with the
/// separators and case that make the grammar's corner cases.
fn reference_like() -> impl Strategy<Value = String> {
    let host = prop_oneof![
        Just(String::new()),
        Just("docker.io/".to_owned()),
        Just("Docker.io/".to_owned()),
        Just("index.docker.io/".to_owned()),
        Just("registry-1.docker.io/".to_owned()),
        Just("localhost/".to_owned()),
        Just("localhost:5000/".to_owned()),
        Just("[::1]:5000/".to_owned()),
        "[a-zA-Z0-9-]{1,8}(\\.[a-zA-Z0-9_-]{1,6}){0,2}(:[0-9]{1,5})?/",
    ];
    let path =
        "[a-z0-9]{1,6}([._-]{1,2}[a-z0-9]{1,4}){0,2}(/[a-z0-9]{1,6}([._-][a-z0-9]{1,3})?){0,3}";
    let tag = prop_oneof![Just(String::new()), ":[A-Za-z0-9_][A-Za-z0-9_.-]{0,10}"];
    let digest = prop_oneof![
        3 => Just(String::new()),
        1 => "@sha256:[a-f0-9]{64}",
        1 => "@[a-z0-9]{2,6}:[a-fA-F0-9]{30,66}",
    ];
    (host, path, tag, digest).prop_map(|(h, p, t, d)| format!("{h}{p}{t}{d}"))
}

fn arbitrary_text() -> impl Strategy<Value = String> {
    prop_oneof![
        reference_like(),
        "[ -~]{0,40}",
        any::<String>(),
        "[a-zA-Z0-9:/@._\\[\\]-]{0,40}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn normalising_is_idempotent(input in arbitrary_text()) {
        if let Ok(r) = Reference::parse(&input) {
            let again = Reference::parse(r.as_str()).unwrap();
            prop_assert_eq!(again.as_str(), r.as_str());
            let thrice = Reference::parse(again.as_str()).unwrap();
            prop_assert_eq!(thrice.as_str(), r.as_str());
        }
    }

    #[test]
    fn every_accepted_string_reserialises_with_the_same_meaning(input in arbitrary_text()) {
        if let Ok(r) = Reference::parse(&input) {
            let again = Reference::parse(&r.to_string()).unwrap();
            prop_assert_eq!(&again, &r);
            prop_assert_eq!(again.domain(), r.domain());
            prop_assert_eq!(again.path(), r.path());
            prop_assert_eq!(again.tag(), r.tag());
            prop_assert_eq!(again.digest(), r.digest());
            prop_assert_eq!(again.is_docker_hub(), r.is_docker_hub());
            // The normalised form is also a valid reference for the plain grammar.
            let raw = grammar::parse_reference(r.as_str()).unwrap();
            prop_assert_eq!(raw.path, r.path());
            prop_assert_eq!(raw.domain, r.domain());
        }
    }

    #[test]
    fn parsing_never_panics_and_errors_name_the_input(input in arbitrary_text()) {
        match Reference::parse(&input) {
            Ok(r) => prop_assert!(r.as_str().is_ascii()),
            Err(e) => {
                let message = e.to_string();
                prop_assert!(message.starts_with("invalid reference \""), "{}", message);
                prop_assert!(e.offset() <= input.len());
            }
        }
    }

    #[test]
    fn deciding_is_total_and_deterministic(input in arbitrary_text(), ns in "[a-z-]{0,12}") {
        let policy = Policy::load(include_str!("../data/decide/corp.policy.yaml")).unwrap();
        let input = Input { image: &input, namespace: Some(&ns), user: None, break_glass: false, owner: false };
        let first = decide(&policy, &input);
        prop_assert_eq!(&first, &decide(&policy, &input));
        prop_assert!(!first.message.is_empty());
    }
}

/// Patterns over a small alphabet, so generated rules and references collide often.
fn small_pattern() -> impl Strategy<Value = String> {
    let host = prop_oneof![
        Just(""),
        Just("ghcr.io/"),
        Just("GHCR.io/"),
        Just("*.io/"),
        Just("docker.io/"),
        Just("localhost:5000/"),
        Just("**/"),
    ];
    let comp = prop_oneof![
        Just("a"),
        Just("b"),
        Just("a-*"),
        Just("*"),
        Just("**"),
        Just("ab"),
        Just("a-1")
    ];
    let tag = prop_oneof![Just(""), Just(":1"), Just(":latest"), Just(":1*")];
    (host, prop::collection::vec(comp, 1..4), tag)
        .prop_map(|(h, comps, t)| format!("{h}{}{t}", comps.join("/")))
}

fn small_reference() -> impl Strategy<Value = String> {
    let host = prop_oneof![
        Just(""),
        Just("ghcr.io/"),
        Just("quay.io/"),
        Just("docker.io/"),
        Just("localhost:5000/")
    ];
    let comp = prop_oneof![
        Just("a"),
        Just("b"),
        Just("a-1"),
        Just("a-2"),
        Just("ab"),
        Just("library")
    ];
    let tag = prop_oneof![Just(""), Just(":1"), Just(":latest"), Just(":12")];
    (host, prop::collection::vec(comp, 1..5), tag)
        .prop_map(|(h, comps, t)| format!("{h}{}{t}", comps.join("/")))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The rule index is an optimisation only: its first match is the first
    /// rule, in document order, that matches.
    #[test]
    fn indexed_first_match_equals_a_linear_scan(
        patterns in prop::collection::vec(small_pattern(), 1..40),
        images in prop::collection::vec(small_reference(), 1..10),
    ) {
        let mut text = String::from("apiVersion: imagegate.dev/v1\nkind: ImagePolicy\nmetadata: {name: p}\nspec:\n  rules:\n");
        for (i, p) in patterns.iter().enumerate() {
            let action = if i % 2 == 0 { "allow" } else { "deny" };
            text.push_str(&format!("    - {action}: \"{p}\"\n"));
        }
        let Ok(policy) = Policy::load(&text) else { return Ok(()) };
        for image in &images {
            let r = Reference::parse(image).unwrap();
            let linear = policy.rules.rules().iter().position(|rule| rule.pattern.matches(&r));
            let indexed = policy.rules.first_match(&r).map(|(i, _)| i);
            prop_assert_eq!(indexed, linear, "{} against {:?}", image, patterns);
        }
    }
}
