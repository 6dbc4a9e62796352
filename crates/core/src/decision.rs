//! The decision value every door maps onto its protocol, the stable reason
//! codes, and the contract messages. Every refusal message imagegate prints is
//! written in this module and nowhere else.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::dockerhub::Category;
use crate::reference::{Ambiguity, Reference, ReferenceError, quote_input};

/// What the policy does with a would-be denial.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Refuse.
    #[default]
    Enforce,
    /// Allow, and warn the client (Kubernetes admission warnings).
    Warn,
    /// Allow, and only record.
    Audit,
}

impl Mode {
    /// The mode's name as the policy writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Warn => "warn",
            Mode::Audit => "audit",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Allow or deny: what the door does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Let the image through.
    Allow,
    /// Refuse it.
    Deny,
}

impl Verdict {
    /// `allow` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why: a stable code that tests, dashboards and SARIF rules key on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Nothing in the policy refuses it.
    Allowed,
    /// The reference does not parse.
    InvalidReference,
    /// The reference parses, but runtimes read it differently.
    AmbiguousReference,
    /// The registry is not on the allow-list.
    RegistryNotAllowed,
    /// The Docker Hub category is not allowed.
    CategoryNotAllowed,
    /// A deny rule matched.
    RuleDenied,
    /// The policy requires a digest and there is none.
    DigestRequired,
    /// The namespace or user is exempt.
    Exempt,
    /// The caller must sign in first (registry door).
    SignInRequired,
    /// A refusal overridden by a break-glass request the policy permits.
    BreakGlass,
    /// An image access refusal that does not apply to an organisation owner
    /// (registry door): allowed, and recorded as such with the refusal in
    /// the message.
    OwnerBypass,
    /// A Rego policy refused.
    RegoDenied,
    /// A signed-in user belongs to no organisation, and no default
    /// organisation is configured for such users (registry door).
    NotAMember,
    /// A scanned file names an image through a variable that has no value
    /// (`imagegate scan`): it cannot be checked, so it is refused.
    Unresolved,
    /// A scanned file that should name images does not parse (`imagegate
    /// scan`): what it names cannot be checked, so it is refused.
    ParseError,
}

impl Reason {
    /// Every reason code.
    pub const ALL: [Reason; 15] = [
        Reason::Allowed,
        Reason::InvalidReference,
        Reason::AmbiguousReference,
        Reason::RegistryNotAllowed,
        Reason::CategoryNotAllowed,
        Reason::RuleDenied,
        Reason::DigestRequired,
        Reason::Exempt,
        Reason::SignInRequired,
        Reason::BreakGlass,
        Reason::OwnerBypass,
        Reason::RegoDenied,
        Reason::NotAMember,
        Reason::Unresolved,
        Reason::ParseError,
    ];

    /// The code (`category_not_allowed`, ...).
    pub fn code(self) -> &'static str {
        match self {
            Reason::Allowed => "allowed",
            Reason::InvalidReference => "invalid_reference",
            Reason::AmbiguousReference => "ambiguous_reference",
            Reason::RegistryNotAllowed => "registry_not_allowed",
            Reason::CategoryNotAllowed => "category_not_allowed",
            Reason::RuleDenied => "rule_denied",
            Reason::DigestRequired => "digest_required",
            Reason::Exempt => "exempt",
            Reason::SignInRequired => "sign_in_required",
            Reason::BreakGlass => "break_glass",
            Reason::OwnerBypass => "owner_bypass",
            Reason::RegoDenied => "rego_denied",
            Reason::NotAMember => "not_a_member",
            Reason::Unresolved => "unresolved",
            Reason::ParseError => "parse_error",
        }
    }

    /// The reason in words, for people (the console): `category not
    /// allowed` for `category_not_allowed`.
    ///
    /// ```
    /// use imagegate_core::Reason;
    /// assert_eq!(Reason::CategoryNotAllowed.label(), "category not allowed");
    /// ```
    pub fn label(self) -> &'static str {
        match self {
            Reason::Allowed => "allowed",
            Reason::InvalidReference => "invalid reference",
            Reason::AmbiguousReference => "ambiguous reference",
            Reason::RegistryNotAllowed => "registry not allowed",
            Reason::CategoryNotAllowed => "category not allowed",
            Reason::RuleDenied => "denied by a rule",
            Reason::DigestRequired => "not pinned by digest",
            Reason::Exempt => "exempt",
            Reason::SignInRequired => "sign-in required",
            Reason::BreakGlass => "break-glass",
            Reason::OwnerBypass => "owner's bypass",
            Reason::RegoDenied => "denied by a Rego policy",
            Reason::NotAMember => "not a member of an organisation",
            Reason::Unresolved => "unresolved variable",
            Reason::ParseError => "file does not parse",
        }
    }

    /// What a refusal for this reason asks of a person, in one line, true
    /// whatever the policy and wherever the image was named (`imagegate
    /// scan`'s text hints are more precise: they know the policy and the
    /// file); `None` for reasons that do not refuse. Advice, not a contract.
    pub fn hint(self) -> Option<&'static str> {
        Some(match self {
            Reason::Allowed | Reason::Exempt | Reason::BreakGlass | Reason::OwnerBypass => {
                return None;
            }
            Reason::InvalidReference => {
                "write the reference as [registry/]repository[:tag][@digest], in lower case"
            }
            Reason::AmbiguousReference => {
                "write the reference in full, with its registry (docker.io/library/nginx:1.27)"
            }
            Reason::RegistryNotAllowed => {
                "use an image from an allowed registry, or ask an owner to add this one to spec.registryAccess"
            }
            Reason::CategoryNotAllowed => {
                "use an image of a category the policy allows (spec.imageAccess.allow) or one of your organisation's, or ask an owner to allow this category"
            }
            Reason::RuleDenied => {
                "a rule of the policy refuses this image: choose another, or ask an owner for an exception"
            }
            Reason::DigestRequired => {
                "pin the image by digest: name@sha256:… (skopeo inspect docker://name prints it)"
            }
            Reason::SignInRequired => {
                "sign in with a personal access token: docker login <gateway>"
            }
            Reason::RegoDenied => {
                "a Rego policy refuses this image: see its message, or ask an owner"
            }
            Reason::NotAMember => "ask an owner to add you to an organisation",
            Reason::Unresolved => {
                "give the variable a value so the image can be checked: a Dockerfile ARG declared before the first FROM with --build-arg or a default, a Compose variable in the environment, .env or --env-file"
            }
            Reason::ParseError => {
                "fix the file at this line and column: the images it names there were not checked"
            }
        })
    }

    /// Parses a code.
    pub fn from_code(code: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.code() == code)
    }

    /// Whether this is an access refusal: image access (a Docker Hub
    /// category) or registry access, the settings an organisation's owners
    /// grant exceptions to. These are the refusals an access request is for;
    /// a rule's refusal, an unpinned image or a bad reference are not.
    pub fn is_access_refusal(self) -> bool {
        matches!(
            self,
            Reason::CategoryNotAllowed | Reason::RegistryNotAllowed
        )
    }

    /// Whether this reason refuses (in `enforce` mode).
    pub fn is_refusal(self) -> bool {
        !matches!(
            self,
            Reason::Allowed | Reason::Exempt | Reason::BreakGlass | Reason::OwnerBypass
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Which part of the policy decided, for `--explain` and audit records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecidedBy {
    /// The reference itself (invalid or ambiguous).
    Reference,
    /// `spec.exempt.namespaces[i]`.
    ExemptNamespace(usize),
    /// `spec.exempt.users[i]`.
    ExemptUser(usize),
    /// `spec.rules[i]`.
    Rule(usize),
    /// `spec.registryAccess`.
    RegistryAccess,
    /// `spec.imageAccess`.
    ImageAccess,
    /// `spec.require.digest`.
    RequireDigest,
    /// `spec.breakGlass`, on a request that asked for it.
    BreakGlass,
    /// `spec.rego`.
    Rego,
    /// Who the caller is (registry door: anonymous, or in no organisation),
    /// before any policy.
    Identity,
    /// No part of the policy refused.
    Default,
}

impl DecidedBy {
    /// The policy path (`spec.rules[2]`), or `None` when no part of the policy decided.
    pub fn policy_path(&self) -> Option<String> {
        Some(match self {
            DecidedBy::Reference | DecidedBy::Default | DecidedBy::Identity => return None,
            DecidedBy::ExemptNamespace(i) => format!("spec.exempt.namespaces[{i}]"),
            DecidedBy::ExemptUser(i) => format!("spec.exempt.users[{i}]"),
            DecidedBy::Rule(i) => format!("spec.rules[{i}]"),
            DecidedBy::RegistryAccess => "spec.registryAccess".to_owned(),
            DecidedBy::ImageAccess => "spec.imageAccess".to_owned(),
            DecidedBy::RequireDigest => "spec.require.digest".to_owned(),
            DecidedBy::BreakGlass => "spec.breakGlass".to_owned(),
            DecidedBy::Rego => "spec.rego".to_owned(),
        })
    }
}

/// The outcome of one decision: a value, never an error.
///
/// In `warn` and `audit` modes a would-be denial allows, and keeps its reason
/// and message so the door can warn or record it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Allow or deny, after the mode.
    pub verdict: Verdict,
    /// Why; for a would-be denial in `warn`/`audit`, the denial's reason.
    pub reason: Reason,
    /// The human message (a contract for refusals).
    pub message: Cow<'static, str>,
    /// The normalised reference, when the input parsed.
    pub reference: Option<Reference>,
    /// The Docker Hub category, for Docker Hub images.
    pub category: Option<Category>,
    /// The policy's mode.
    pub mode: Mode,
    /// Which part of the policy decided.
    pub decided_by: DecidedBy,
}

impl Decision {
    /// Whether the door lets the image through.
    pub fn is_allowed(&self) -> bool {
        self.verdict == Verdict::Allow
    }

    /// Whether the policy would have refused (in any mode): `warn` doors warn on it.
    pub fn is_would_be_denial(&self) -> bool {
        self.reason.is_refusal()
    }
}

impl Decision {
    /// The decision for input that cannot be a reference at all (not text, say):
    /// denied as `invalid_reference`, saying what is wrong.
    pub fn unreadable(shown: &str, what: &str, mode: Mode) -> Decision {
        Decision {
            verdict: Verdict::Deny,
            reason: Reason::InvalidReference,
            message: message::invalid_reference_text(shown, what),
            reference: None,
            category: None,
            mode,
            decided_by: DecidedBy::Reference,
        }
    }

    /// The registry door's refusal of an anonymous caller where anonymous
    /// pulls are not allowed: `sign-in required`.
    pub fn sign_in_required(reference: Option<Reference>) -> Decision {
        Decision {
            verdict: Verdict::Deny,
            reason: Reason::SignInRequired,
            message: message::sign_in_required(),
            reference,
            category: None,
            mode: Mode::Enforce,
            decided_by: DecidedBy::Identity,
        }
    }

    /// The registry door's refusal of a signed-in user who belongs to no
    /// organisation, when no default organisation takes them in.
    pub fn not_a_member(user: &str, reference: Option<Reference>) -> Decision {
        Decision {
            verdict: Verdict::Deny,
            reason: Reason::NotAMember,
            message: message::not_a_member(user),
            reference,
            category: None,
            mode: Mode::Enforce,
            decided_by: DecidedBy::Identity,
        }
    }
}

impl Decision {
    /// `imagegate scan`'s refusal of an image written with variables that
    /// have no value (`names`): it cannot be checked, so it is denied in every
    /// mode.
    pub fn unresolved(raw: &str, names: &[String], mode: Mode) -> Decision {
        Decision {
            verdict: Verdict::Deny,
            reason: Reason::Unresolved,
            message: message::unresolved(raw, names),
            reference: None,
            category: None,
            mode,
            decided_by: DecidedBy::Reference,
        }
    }

    /// `imagegate scan`'s refusal of a file that does not parse: what it
    /// names cannot be checked, so it is denied in every mode.
    pub fn parse_error(what: &str, detail: &str, mode: Mode) -> Decision {
        Decision {
            verdict: Verdict::Deny,
            reason: Reason::ParseError,
            message: message::parse_error(what, detail),
            reference: None,
            category: None,
            mode,
            decided_by: DecidedBy::Reference,
        }
    }
}

/// The contract messages. Doors print these words and no others.
pub mod message {
    use super::*;

    /// `image access denied: community images not allowed` (and the other categories).
    pub fn category_not_allowed(category: Category) -> Cow<'static, str> {
        Cow::Borrowed(match category {
            Category::Official => "image access denied: official images not allowed",
            Category::VerifiedPublisher => {
                "image access denied: verified publisher images not allowed"
            }
            Category::Organization => "image access denied: organization images not allowed",
            Category::Community => "image access denied: community images not allowed",
        })
    }

    /// `registry access to <host> is not allowed`, host lowercased with its port.
    pub fn registry_not_allowed(registry: &str) -> Cow<'static, str> {
        Cow::Owned(format!(
            "registry access to {} is not allowed",
            registry.to_ascii_lowercase()
        ))
    }

    /// A deny rule's own message, else `image <reference> is denied by rule <pattern>`.
    pub fn rule_denied(
        reference: &Reference,
        pattern: &str,
        own: Option<&str>,
    ) -> Cow<'static, str> {
        match own {
            Some(m) => Cow::Owned(m.to_owned()),
            None => Cow::Owned(format!("image {reference} is denied by rule {pattern}")),
        }
    }

    /// `image access denied: <reference> is not pinned by digest`.
    pub fn digest_required(reference: &Reference) -> Cow<'static, str> {
        Cow::Owned(format!(
            "image access denied: {reference} is not pinned by digest"
        ))
    }

    /// `invalid reference "<input>": <what is wrong>`.
    pub fn invalid_reference(err: &ReferenceError) -> Cow<'static, str> {
        Cow::Owned(err.to_string())
    }

    /// `invalid reference "<input>": <what is wrong>` for input that is not text.
    pub fn invalid_reference_text(input: &str, what: &str) -> Cow<'static, str> {
        Cow::Owned(format!("invalid reference {}: {what}", quote_input(input)))
    }

    /// `ambiguous reference "<input>": <why runtimes read it differently>`.
    pub fn ambiguous_reference(input: &str, ambiguity: Ambiguity) -> Cow<'static, str> {
        Cow::Owned(format!(
            "ambiguous reference {}: {}",
            quote_input(input),
            ambiguity.explanation()
        ))
    }

    /// `break-glass: allowed despite: <the refusal>`.
    pub fn break_glass(refusal: &str) -> Cow<'static, str> {
        Cow::Owned(format!("break-glass: allowed despite: {refusal}"))
    }

    /// `owner bypass: allowed despite: <the image access refusal>`.
    pub fn owner_bypass(refusal: &str) -> Cow<'static, str> {
        Cow::Owned(format!("owner bypass: allowed despite: {refusal}"))
    }

    /// A workload whose containers cannot be read (admission door): refused,
    /// because an image that cannot be read is never allowed unread.
    pub fn cannot_inspect(why: &str) -> String {
        format!("imagegate cannot inspect the object: {why}")
    }

    /// A kind that carries no pod spec (admission door): allowed, with this warning.
    pub fn not_inspected(kind: &str) -> String {
        format!("imagegate does not inspect {kind}: allowed without an image check")
    }

    /// `user <name> is not a member of any organisation` (registry door).
    pub fn not_a_member(user: &str) -> Cow<'static, str> {
        Cow::Owned(format!("user {user} is not a member of any organisation"))
    }

    /// `unresolved image "<raw>": NAME has no value` (`imagegate scan`).
    pub fn unresolved(raw: &str, names: &[String]) -> Cow<'static, str> {
        let what = match names {
            [] => "it has an unterminated variable".to_owned(),
            [one] => format!("{one} has no value"),
            [init @ .., last] => format!("{} and {last} have no value", init.join(", ")),
        };
        Cow::Owned(format!("unresolved image {}: {what}", quote_input(raw)))
    }

    /// `cannot parse <what>: <the parser's message>` (`imagegate scan`).
    pub fn parse_error(what: &str, detail: &str) -> Cow<'static, str> {
        Cow::Owned(format!("cannot parse {what}: {detail}"))
    }

    /// A decision about one image of an object, naming where it is and
    /// which image it is: `spec.containers[2] (c2) image "someuser/miner":
    /// image access denied: community images not allowed`. The decision's
    /// own message stays verbatim at the end. Both admission doors and
    /// `imagegate scan`'s SARIF results say it this way.
    ///
    /// ```
    /// use imagegate_core::decision::message::about_image;
    /// assert_eq!(
    ///     about_image("spec.containers[2] (c2)", "someuser/miner", "image access denied: community images not allowed"),
    ///     r#"spec.containers[2] (c2) image "someuser/miner": image access denied: community images not allowed"#,
    /// );
    /// assert_eq!(about_image("", "nginx", "m"), r#"image "nginx": m"#);
    /// ```
    pub fn about_image(site: &str, image: &str, message: &str) -> String {
        let image = quote_input(image);
        if site.is_empty() {
            format!("image {image}: {message}")
        } else {
            format!("{site} image {image}: {message}")
        }
    }

    /// `sign-in required` (registry door, anonymous caller).
    pub fn sign_in_required() -> Cow<'static, str> {
        Cow::Borrowed("sign-in required")
    }
}

/// One step of the evaluation, for `--explain`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// Which check.
    pub check: Check,
    /// What it concluded.
    pub outcome: StepOutcome,
    /// What it saw, in words.
    pub detail: String,
}

/// The checks, in evaluation order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// Parsing and normalising the reference.
    Reference,
    /// `spec.exempt`.
    Exemptions,
    /// `spec.rules`.
    Rules,
    /// `spec.registryAccess`.
    RegistryAccess,
    /// `spec.imageAccess`.
    ImageAccess,
    /// `spec.require`.
    Requirements,
    /// `spec.mode` applied to a would-be denial.
    Mode,
    /// `spec.breakGlass` applied to a refusal.
    BreakGlass,
}

impl Check {
    /// The check's name as `--explain` prints it.
    pub fn label(self) -> &'static str {
        match self {
            Check::Reference => "reference",
            Check::Exemptions => "exemptions",
            Check::Rules => "rules",
            Check::RegistryAccess => "registry access",
            Check::ImageAccess => "image access",
            Check::Requirements => "requirements",
            Check::Mode => "mode",
            Check::BreakGlass => "break-glass",
        }
    }
}

/// What one step concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepOutcome {
    /// Nothing to say; go on.
    Pass,
    /// Not configured; go on.
    Skip,
    /// This step allowed, and evaluation stopped.
    Allow,
    /// This step refused, and evaluation stopped.
    Deny,
}

impl StepOutcome {
    /// The outcome as `--explain` prints it.
    pub fn label(self) -> &'static str {
        match self {
            StepOutcome::Pass => "pass",
            StepOutcome::Skip => "skip",
            StepOutcome::Allow => "allow",
            StepOutcome::Deny => "deny",
        }
    }
}
