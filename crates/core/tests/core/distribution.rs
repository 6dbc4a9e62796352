//! distribution/reference's own test tables, transcribed as data under
//! tests/data/distribution (see its README), run against `imagegate_core::reference`.
//! This module only maps each Go API onto ours; the cases live in the data files.

use std::fmt::Debug;

use imagegate_core::reference::{Ambiguity, Digest, ErrorKind, Reference, grammar, is_image_id};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Loads a data file of `$case`s by name, checking that it still has at least `$at_least` cases.
macro_rules! table {
    ($case:ty, $file:literal, $at_least:literal) => {
        load::<$case>(
            $file,
            include_str!(concat!("../data/distribution/", $file)),
            $at_least,
        )
    };
}

/// Parses a data file: `#` lines are comments, every other non-empty line is one JSON case,
/// read after expanding `{{repeat TEXT COUNT}}`. Returns each case with its line number.
fn load<T: DeserializeOwned>(file: &str, text: &str, at_least: usize) -> Vec<(usize, T)> {
    let cases: Vec<(usize, T)> = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|(i, line)| {
            let case = serde_json::from_str(&expand_repeats(line))
                .unwrap_or_else(|e| panic!("{file}:{}: {e}", i + 1));
            (i + 1, case)
        })
        .collect();
    assert!(
        cases.len() >= at_least,
        "{file} has {} cases, fewer than the {at_least} transcribed: is it truncated?",
        cases.len()
    );
    cases
}

/// Expands `{{repeat TEXT COUNT}}` (Go's `strings.Repeat(TEXT, COUNT)`).
fn expand_repeats(line: &str) -> String {
    const OPEN: &str = "{{repeat ";
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(start) = rest.find(OPEN) {
        out.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len()..];
        let end = after.find("}}").expect("{{repeat without }}");
        let (text, count) = after[..end]
            .rsplit_once(' ')
            .expect("{{repeat TEXT COUNT}}");
        out.push_str(&text.repeat(count.parse().expect("a repeat count")));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// Go's zero-value string as "absent": `""` is our `None`.
fn go_opt(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// Why our error kind is not the one imagegate maps the Go error `go` to, if it is not.
fn go_error_mismatch(go: &str, kind: &ErrorKind) -> Option<String> {
    let holds = match go {
        "ErrNameTooLong" => matches!(kind, ErrorKind::PathTooLong { .. }),
        "ErrNameContainsUppercase" => matches!(kind, ErrorKind::Uppercase { .. }),
        "ErrDigestInvalidLength" => matches!(kind, ErrorKind::DigestLength { .. }),
        "ErrDigestUnsupported" => matches!(kind, ErrorKind::UnsupportedAlgorithm { .. }),
        "ErrReferenceInvalidFormat" | "ErrNameEmpty" => true,
        other => return Some(format!("unknown Go error {other:?} in the data file")),
    };
    (!holds).then(|| format!("expected the error kind for {go}, got {kind:?}"))
}

/// Every mismatch of one table, reported together at the end.
struct Failures {
    file: &'static str,
    list: Vec<String>,
}

impl Failures {
    fn new(file: &'static str) -> Self {
        Failures {
            file,
            list: Vec::new(),
        }
    }

    fn add(&mut self, at: &str, what: impl Into<String>) {
        self.list.push(format!("{at}: {}", what.into()));
    }

    fn eq<T: PartialEq + Debug>(&mut self, at: &str, field: &str, expected: T, got: T) {
        if expected != got {
            self.add(at, format!("{field}: expected {expected:?}, got {got:?}"));
        }
    }

    fn assert_none(self) {
        assert!(
            self.list.is_empty(),
            "{}: {} case(s) disagree:\n{}",
            self.file,
            self.list.len(),
            self.list.join("\n")
        );
    }
}

/// Where a case is, for messages: its line, its input and any notes it carries.
fn at(line: usize, input: &str, notes: &[(&str, &str)]) -> String {
    let mut s = format!("line {line} {input:?}");
    for (label, text) in notes.iter().filter(|(_, text)| !text.is_empty()) {
        s.push_str(&format!(" [{label}: {text}]"));
    }
    s
}

/// What Go's `Parse` is expected to give; `domain: None` leaves the domain unchecked.
struct RawExpectation<'a> {
    err: &'a str,
    name: &'a str,
    domain: Option<&'a str>,
    tag: &'a str,
    digest: &'a str,
}

/// Runs `grammar::parse_reference` (Go `Parse`) on `input` against `expect`, including Go's
/// check that the reference's string is the input.
fn check_raw_parse(f: &mut Failures, at: &str, input: &str, expect: &RawExpectation<'_>) {
    match grammar::parse_reference(input) {
        Err(e) if !expect.err.is_empty() => {
            if let Some(why) = go_error_mismatch(expect.err, e.kind()) {
                f.add(at, why);
            }
        }
        Err(e) => f.add(at, format!("expected to parse, got error: {e}")),
        Ok(r) if !expect.err.is_empty() => {
            f.add(at, format!("expected {}, parsed as {r:?}", expect.err));
        }
        Ok(r) => {
            f.eq(at, "name", expect.name, r.name().as_str());
            if let Some(domain) = expect.domain {
                f.eq(at, "domain", go_opt(domain), r.domain);
            }
            f.eq(at, "tag", go_opt(expect.tag), r.tag);
            f.eq(at, "digest", go_opt(expect.digest), r.digest);
            let mut text = r.name();
            if let Some(tag) = r.tag {
                text = format!("{text}:{tag}");
            }
            if let Some(digest) = r.digest {
                text = format!("{text}@{digest}");
            }
            f.eq(at, "string", input, text.as_str());
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct ReferenceParseCase {
    input: String,
    err: String,
    repository: String,
    domain: String,
    tag: String,
    digest: String,
    note: String,
    go_err: String,
}

#[test]
fn distribution_reference_parse_table_holds() {
    let mut f = Failures::new("reference_parse.jsonl");
    for (line, c) in table!(ReferenceParseCase, "reference_parse.jsonl", 48) {
        let at = at(
            line,
            &c.input,
            &[("Go expects", &c.go_err), ("note", &c.note)],
        );
        let expect = RawExpectation {
            err: &c.err,
            name: &c.repository,
            domain: Some(&c.domain),
            tag: &c.tag,
            digest: &c.digest,
        };
        check_raw_parse(&mut f, &at, &c.input, &expect);
    }
    f.assert_none();
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NameFailureCase {
    input: String,
    err: String,
}

#[test]
fn distribution_with_name_failure_table_holds() {
    let mut f = Failures::new("with_name_failure.jsonl");
    for (line, c) in table!(NameFailureCase, "with_name_failure.jsonl", 7) {
        let at = at(line, &c.input, &[]);
        match grammar::parse_name(&c.input) {
            Ok(r) => f.add(&at, format!("expected {}, parsed as {r:?}", c.err)),
            Err(e) => {
                if let Some(why) = go_error_mismatch(&c.err, e.kind()) {
                    f.add(&at, why);
                }
            }
        }
    }
    f.assert_none();
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DomainPathCase {
    input: String,
    domain: String,
    path: String,
}

#[test]
fn distribution_domain_and_path_table_holds() {
    let mut f = Failures::new("domain_and_path.jsonl");
    for (line, c) in table!(DomainPathCase, "domain_and_path.jsonl", 6) {
        let at = at(line, &c.input, &[]);
        match grammar::parse_name(&c.input) {
            Err(e) => f.add(&at, format!("expected to parse, got error: {e}")),
            Ok(r) => {
                f.eq(&at, "domain", go_opt(&c.domain), r.domain);
                f.eq(&at, "path", c.path.as_str(), r.path);
            }
        }
    }
    f.assert_none();
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct SerializationCase {
    description: String,
    input: String,
    err: String,
    name: String,
    tag: String,
    digest: String,
}

#[test]
fn distribution_serialization_inputs_parse_as_go_expects() {
    let mut f = Failures::new("serialization.jsonl");
    for (line, c) in table!(SerializationCase, "serialization.jsonl", 4) {
        let at = at(line, &c.input, &[("case", &c.description)]);
        let expect = RawExpectation {
            err: &c.err,
            name: &c.name,
            domain: None,
            tag: &c.tag,
            digest: &c.digest,
        };
        check_raw_parse(&mut f, &at, &c.input, &expect);
    }
    f.assert_none();
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct WithTagCase {
    name: String,
    digest: String,
    tag: String,
    combined: String,
}

#[test]
fn distribution_with_tag_table_tags_are_valid() {
    let mut f = Failures::new("with_tag.jsonl");
    for (line, c) in table!(WithTagCase, "with_tag.jsonl", 5) {
        let at = at(line, &c.combined, &[]);
        if let Err(e) = grammar::parse_name(&c.name) {
            f.add(&at, format!("name {:?} must parse, got error: {e}", c.name));
        }
        if let Err(e) = grammar::validate_tag_text(&c.tag) {
            f.add(
                &at,
                format!("tag {:?} must be valid, got error: {e}", c.tag),
            );
        }
        // A constructor-only digest (see the file's header) leaves `combined` unparseable.
        if !c.digest.is_empty() {
            continue;
        }
        match grammar::parse_reference(&c.combined) {
            Err(e) => f.add(&at, format!("expected to parse, got error: {e}")),
            Ok(r) => {
                f.eq(&at, "name", c.name.clone(), r.name());
                f.eq(&at, "tag", Some(c.tag.as_str()), r.tag);
                f.eq(&at, "digest", None, r.digest);
            }
        }
    }
    f.assert_none();
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct ParseNamedCase {
    input: String,
    err: String,
    domain: String,
    path: String,
}

#[test]
fn distribution_parse_named_table_holds() {
    let mut f = Failures::new("parse_named.jsonl");
    for (line, c) in table!(ParseNamedCase, "parse_named.jsonl", 8) {
        let at = at(line, &c.input, &[]);
        let r = match Reference::parse(&c.input) {
            Ok(r) => r,
            Err(e) => {
                f.add(&at, format!("expected to parse, got error: {e}"));
                continue;
            }
        };
        match c.err.as_str() {
            "" => {
                f.eq(&at, "name (canonical)", c.input.as_str(), r.name());
                f.eq(&at, "domain", go_opt(&c.domain), r.domain());
                f.eq(&at, "path", c.path.as_str(), r.path());
            }
            "ErrNameNotCanonical" => {
                if r.name() == c.input {
                    f.add(&at, "expected ErrNameNotCanonical, but name() is the input");
                }
            }
            other => f.add(&at, format!("unknown Go error {other:?} in the data file")),
        }
    }
    f.assert_none();
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ValidityCase {
    input: String,
    valid: bool,
}

/// Go checks only whether `ParseNormalizedNamed` fails.
fn check_normalized_validity(file: &'static str, cases: Vec<(usize, ValidityCase)>) {
    let mut f = Failures::new(file);
    for (line, c) in cases {
        let at = at(line, &c.input, &[]);
        match (Reference::parse(&c.input), c.valid) {
            (Ok(_), true) | (Err(_), false) => {}
            (Ok(r), false) => f.add(&at, format!("expected an error, parsed as {r:?}")),
            (Err(e), true) => f.add(&at, format!("expected to parse, got error: {e}")),
        }
    }
    f.assert_none();
}

#[test]
fn distribution_validate_reference_name_table_holds() {
    check_normalized_validity(
        "validate_reference_name.jsonl",
        table!(ValidityCase, "validate_reference_name.jsonl", 41),
    );
}

#[test]
fn distribution_validate_remote_name_table_holds() {
    check_normalized_validity(
        "validate_remote_name.jsonl",
        table!(ValidityCase, "validate_remote_name.jsonl", 21),
    );
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RepositoryInfoCase {
    remote_name: String,
    familiar_name: String,
    full_name: String,
    ambiguous_name: String,
    domain: String,
}

#[test]
fn distribution_parse_repository_info_table_holds() {
    let mut f = Failures::new("parse_repository_info.jsonl");
    for (line, c) in table!(RepositoryInfoCase, "parse_repository_info.jsonl", 20) {
        let spellings = [&c.familiar_name, &c.full_name, &c.ambiguous_name];
        for input in spellings.into_iter().filter(|s| !s.is_empty()) {
            let at = at(line, input, &[]);
            match Reference::parse(input) {
                Err(e) => f.add(&at, format!("expected to parse, got error: {e}")),
                Ok(r) => {
                    f.eq(
                        &at,
                        "familiar_name",
                        c.familiar_name.as_str(),
                        r.familiar_name(),
                    );
                    f.eq(&at, "name (FullName)", c.full_name.as_str(), r.name());
                    f.eq(
                        &at,
                        "as_str (FullName + implied :latest)",
                        format!("{}:latest", c.full_name),
                        r.as_str().to_owned(),
                    );
                    f.eq(&at, "domain", go_opt(&c.domain), r.domain());
                    f.eq(&at, "path (RemoteName)", c.remote_name.as_str(), r.path());
                }
            }
        }
    }
    f.assert_none();
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TagAndDigestCase {
    input: String,
    expected: String,
    familiar: String,
}

#[test]
fn distribution_reference_with_tag_and_digest_keeps_both() {
    let mut f = Failures::new("parse_reference_with_tag_and_digest.jsonl");
    for (line, c) in table!(
        TagAndDigestCase,
        "parse_reference_with_tag_and_digest.jsonl",
        1
    ) {
        let at = at(line, &c.input, &[]);
        match Reference::parse(&c.input) {
            Err(e) => f.add(&at, format!("expected to parse, got error: {e}")),
            Ok(r) => {
                f.eq(&at, "as_str", c.expected.as_str(), r.as_str());
                match (r.tag(), r.digest()) {
                    (Some(tag), Some(digest)) => {
                        let familiar = format!("{}:{tag}@{digest}", r.familiar_name());
                        f.eq(&at, "familiar string", c.familiar.clone(), familiar);
                    }
                    (tag, digest) => f.add(
                        &at,
                        format!("expected both tag and digest, got {tag:?} and {digest:?}"),
                    ),
                }
            }
        }
    }
    f.assert_none();
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ComponentCase {
    call: String,
    input: String,
    valid: bool,
}

#[test]
fn distribution_invalid_reference_components_are_refused() {
    let mut f = Failures::new("invalid_reference_components.jsonl");
    for (line, c) in table!(ComponentCase, "invalid_reference_components.jsonl", 4) {
        let at = at(line, &c.input, &[("call", &c.call)]);
        let result = match c.call.as_str() {
            "ParseNormalizedNamed" => Reference::parse(&c.input)
                .map(drop)
                .map_err(|e| e.to_string()),
            "WithTag" => grammar::validate_tag_text(&c.input).map_err(|e| e.to_string()),
            "WithDigest" => Digest::parse(&c.input)
                .map(drop)
                .map_err(|e| format!("{e:?}")),
            other => {
                f.add(&at, format!("unknown Go call {other:?} in the data file"));
                continue;
            }
        };
        match (result, c.valid) {
            (Ok(()), true) | (Err(_), false) => {}
            (Ok(()), false) => f.add(&at, "expected an error, got none"),
            (Err(e), true) => f.add(&at, format!("expected success, got error: {e}")),
        }
    }
    f.assert_none();
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct AnyReferenceCase {
    reference: String,
    equivalent: String,
    go_expected: String,
    expect: String,
    note: String,
}

#[test]
fn distribution_parse_any_reference_table_holds() {
    let mut f = Failures::new("parse_any_reference.jsonl");
    for (line, c) in table!(AnyReferenceCase, "parse_any_reference.jsonl", 14) {
        let at = at(
            line,
            &c.reference,
            &[("Go expects", &c.go_expected), ("note", &c.note)],
        );
        let parsed = Reference::parse(&c.reference);
        match (c.expect.as_str(), parsed) {
            ("image_id_refused", Err(e)) => f.eq(&at, "error kind", &ErrorKind::ImageId, e.kind()),
            ("bare_digest", Ok(r)) => f.eq(
                &at,
                "ambiguity",
                Some(Ambiguity::BareDigest),
                Ambiguity::detect(&c.reference, &r),
            ),
            ("" | "name", Ok(r)) => {
                let Ok(go) = grammar::parse_reference(&c.equivalent) else {
                    f.add(&at, format!("equivalent {:?} does not parse", c.equivalent));
                    continue;
                };
                let implied_latest = go.tag.is_none() && go.digest.is_none();
                let tag = if implied_latest {
                    Some("latest")
                } else {
                    go.tag
                };
                let text = if implied_latest {
                    format!("{}:latest", c.equivalent)
                } else {
                    c.equivalent.clone()
                };
                f.eq(&at, "name", go.name().as_str(), r.name());
                f.eq(&at, "tag", tag, r.tag());
                f.eq(&at, "digest", go.digest, r.digest());
                f.eq(&at, "as_str", text.as_str(), r.as_str());
                f.eq(&at, "ambiguity", None, Ambiguity::detect(&c.reference, &r));
            }
            ("" | "name" | "bare_digest", Err(e)) => {
                f.add(&at, format!("expected to parse, got error: {e}"));
            }
            ("image_id_refused", Ok(r)) => {
                f.add(&at, format!("expected ErrorKind::ImageId, parsed as {r:?}"));
            }
            (other, _) => f.add(&at, format!("unknown expect {other:?} in the data file")),
        }
    }
    f.assert_none();
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SplitHostnameCase {
    input: String,
    domain: String,
    path: String,
}

#[test]
fn distribution_normalized_split_hostname_table_holds() {
    let mut f = Failures::new("normalized_split_hostname.jsonl");
    for (line, c) in table!(SplitHostnameCase, "normalized_split_hostname.jsonl", 11) {
        let at = at(line, &c.input, &[]);
        match Reference::parse(&c.input) {
            Err(e) => f.add(&at, format!("expected to parse, got error: {e}")),
            Ok(r) => {
                f.eq(&at, "domain", go_opt(&c.domain), r.domain());
                f.eq(&at, "path", c.path.as_str(), r.path());
            }
        }
    }
    f.assert_none();
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct DockerRefCase {
    name: String,
    input: String,
    expected: String,
    go_expected: String,
    note: String,
}

#[test]
fn distribution_parse_docker_ref_table_holds() {
    let mut f = Failures::new("parse_docker_ref.jsonl");
    for (line, c) in table!(DockerRefCase, "parse_docker_ref.jsonl", 11) {
        let at = at(
            line,
            &c.input,
            &[
                ("case", &c.name),
                ("Go expects", &c.go_expected),
                ("note", &c.note),
            ],
        );
        match Reference::parse(&c.input) {
            Err(e) => f.add(&at, format!("expected to parse, got error: {e}")),
            Ok(r) => {
                f.eq(&at, "as_str", c.expected.as_str(), r.as_str());
                if let Err(e) = grammar::parse_reference(r.as_str()) {
                    f.add(&at, format!("the output does not parse again: {e}"));
                }
            }
        }
    }
    f.assert_none();
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MatchCase {
    input: String,
    #[serde(rename = "match")]
    matches: bool,
}

#[test]
fn distribution_domain_regexp_table_holds() {
    let mut f = Failures::new("domain_regexp.jsonl");
    for (line, c) in table!(MatchCase, "domain_regexp.jsonl", 30) {
        let at = at(line, &c.input, &[]);
        f.eq(&at, "is_domain", c.matches, grammar::is_domain(&c.input));
    }
    f.assert_none();
}

#[test]
fn distribution_identifier_regexp_table_holds() {
    let mut f = Failures::new("identifier_regexp.jsonl");
    for (line, c) in table!(MatchCase, "identifier_regexp.jsonl", 5) {
        let at = at(line, &c.input, &[]);
        f.eq(&at, "is_image_id", c.matches, is_image_id(&c.input));
    }
    f.assert_none();
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmatchCase {
    input: String,
    #[serde(rename = "match")]
    matches: bool,
    #[serde(default)]
    subs: Vec<String>,
}

#[test]
fn distribution_full_name_regexp_table_holds() {
    let mut f = Failures::new("full_name_regexp.jsonl");
    for (line, c) in table!(SubmatchCase, "full_name_regexp.jsonl", 63) {
        let at = at(line, &c.input, &[]);
        match (grammar::parse_name(&c.input), c.matches) {
            (Err(_), false) => {}
            (Ok(r), false) => f.add(&at, format!("expected no match, parsed as {r:?}")),
            (Err(e), true) => f.add(&at, format!("expected a match, got error: {e}")),
            (Ok(r), true) => match c.subs.as_slice() {
                [] => {}
                [domain, path] => {
                    f.eq(&at, "domain", go_opt(domain), r.domain);
                    f.eq(&at, "path", path.as_str(), r.path);
                }
                other => f.add(&at, format!("subs must be [domain, path], not {other:?}")),
            },
        }
    }
    f.assert_none();
}

#[test]
fn distribution_reference_regexp_table_holds() {
    let mut f = Failures::new("reference_regexp.jsonl");
    for (line, c) in table!(SubmatchCase, "reference_regexp.jsonl", 12) {
        let at = at(line, &c.input, &[]);
        match (grammar::parse_reference(&c.input), c.matches) {
            (Err(_), false) => {}
            (Ok(r), false) => f.add(&at, format!("expected no match, parsed as {r:?}")),
            (Err(e), true) => f.add(&at, format!("expected a match, got error: {e}")),
            (Ok(r), true) => match c.subs.as_slice() {
                [] => {}
                [name, tag, digest] => {
                    f.eq(&at, "name", name.clone(), r.name());
                    f.eq(&at, "tag", go_opt(tag), r.tag);
                    f.eq(&at, "digest", go_opt(digest), r.digest);
                }
                other => f.add(
                    &at,
                    format!("subs must be [name, tag, digest], not {other:?}"),
                ),
            },
        }
    }
    f.assert_none();
}
