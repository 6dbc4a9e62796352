//! imagegate's own adversarial reference cases (tests/data/adversarial).

use imagegate_core::reference::{Ambiguity, Reference};
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    input: String,
    expect: String,
    reference: Option<String>,
    domain: Option<String>,
    path: Option<String>,
    docker_hub: Option<bool>,
    why: String,
}

#[test]
fn adversarial_references_parse_as_docker_reads_them_or_not_at_all() {
    let text = include_str!("../data/adversarial/references.jsonl");
    let cases: Vec<Case> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(cases.len() >= 57, "{} cases", cases.len());
    let mut failures = Vec::new();
    for c in &cases {
        let got = Reference::parse(&c.input);
        let outcome = match &got {
            Err(_) => "invalid",
            Ok(r) if Ambiguity::detect(&c.input, r).is_some() => "ambiguous",
            Ok(_) => "valid",
        };
        if outcome != c.expect {
            failures.push(format!(
                "{:?} ({}): expected {}, got {outcome} {got:?}",
                c.input, c.why, c.expect
            ));
            continue;
        }
        if let Ok(r) = got {
            let seen = (
                Some(r.as_str()),
                r.domain(),
                Some(r.path()),
                Some(r.is_docker_hub()),
            );
            let want = (
                c.reference.as_deref(),
                c.domain.as_deref(),
                c.path.as_deref(),
                c.docker_hub,
            );
            if seen != want {
                failures.push(format!(
                    "{:?} ({}): expected {want:?}, got {seen:?}",
                    c.input, c.why
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
