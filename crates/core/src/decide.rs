//! THE evaluation order, in one function. Every door builds an [`Input`], calls
//! [`decide`], and maps the [`Decision`] onto its protocol.
//!
//! Order: invalid or ambiguous reference → deny (in every mode: nothing can be
//! evaluated); exemptions; rules (first match); registry access; image access
//! (Docker Hub only); requirements. A would-be denial is a denial in `enforce`
//! mode and an allow that keeps its reason and message in `warn` and `audit`.

use std::borrow::Cow;

use crate::decision::{Check, DecidedBy, Decision, Reason, Step, StepOutcome, Verdict, message};
use crate::policy::{Policy, RuleAction};
use crate::reference::{Ambiguity, Reference};

/// What a door asks about.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Input<'a> {
    /// The image reference as the client wrote it.
    pub image: &'a str,
    /// The Kubernetes namespace, at the admission doors.
    pub namespace: Option<&'a str>,
    /// The user, where the door knows one.
    pub user: Option<&'a str>,
    /// The request asks to break glass (ImagePolicyWebhook's
    /// `alpha.image-policy.k8s.io/break-glass: "true"`); honoured only when the
    /// policy enables `spec.breakGlass`.
    pub break_glass: bool,
    /// The caller owns the organisation whose policy this is: image access
    /// (Docker Hub categories) does not apply to them, as Docker's organisation
    /// owners bypass Image Access Management. Registry access, rules and
    /// requirements still do.
    pub owner: bool,
}

impl<'a> Input<'a> {
    /// An input with only an image.
    pub fn image(image: &'a str) -> Input<'a> {
        Input {
            image,
            ..Input::default()
        }
    }
}

/// Decides `input` under `policy`. Total and deterministic: every input gets a
/// decision, the same one every time.
///
/// ```
/// use imagegate_core::{decide::{decide, Input}, policy::Policy, decision::{Reason, Verdict}};
/// let policy = Policy::load("apiVersion: imagegate.dev/v1\nkind: ImagePolicy\nmetadata: {name: corp}\nspec:\n  imageAccess: {enabled: true}\n").unwrap();
/// let d = decide(&policy, &Input::image("someuser/custom-image"));
/// assert_eq!(d.verdict, Verdict::Deny);
/// assert_eq!(d.reason, Reason::CategoryNotAllowed);
/// assert_eq!(d.message, "image access denied: community images not allowed");
/// ```
pub fn decide(policy: &Policy, input: &Input<'_>) -> Decision {
    let decision = evaluate(policy, input, &mut NoTrace);
    break_glass(policy, input, decision, &mut NoTrace)
}

/// [`decide`], with the chain of steps that led to the decision.
pub fn decide_explained(policy: &Policy, input: &Input<'_>) -> (Decision, Vec<Step>) {
    let mut steps = Vec::new();
    let decision = evaluate(policy, input, &mut steps);
    let decision = break_glass(policy, input, decision, &mut steps);
    (decision, steps)
}

/// Receives explain steps; the fast path's tracer builds none.
trait Trace {
    fn step(&mut self, check: Check, outcome: StepOutcome, detail: impl FnOnce() -> String);
}

struct NoTrace;

impl Trace for NoTrace {
    #[inline(always)]
    fn step(&mut self, _: Check, _: StepOutcome, _: impl FnOnce() -> String) {}
}

impl Trace for Vec<Step> {
    fn step(&mut self, check: Check, outcome: StepOutcome, detail: impl FnOnce() -> String) {
        self.push(Step {
            check,
            outcome,
            detail: detail(),
        });
    }
}

fn evaluate(policy: &Policy, input: &Input<'_>, trace: &mut impl Trace) -> Decision {
    let mode = policy.mode;
    let reference = match Reference::parse(input.image) {
        Ok(r) => r,
        Err(err) => {
            let msg = message::invalid_reference(&err);
            trace.step(Check::Reference, StepOutcome::Deny, || msg.to_string());
            return Decision {
                verdict: Verdict::Deny,
                reason: Reason::InvalidReference,
                message: msg,
                reference: None,
                category: None,
                mode,
                decided_by: DecidedBy::Reference,
            };
        }
    };
    let category = policy.namespaces.category(&reference);
    if let Some(ambiguity) = Ambiguity::detect(input.image, &reference) {
        let msg = message::ambiguous_reference(input.image, ambiguity);
        trace.step(Check::Reference, StepOutcome::Deny, || msg.to_string());
        return Decision {
            verdict: Verdict::Deny,
            reason: Reason::AmbiguousReference,
            message: msg,
            reference: Some(reference),
            category,
            mode,
            decided_by: DecidedBy::Reference,
        };
    }
    trace.step(Check::Reference, StepOutcome::Pass, || {
        let mut s = format!("{:?} is {reference}", input.image);
        if let Some(c) = category {
            s.push_str(&format!(" (Docker Hub, {})", c.images()));
        }
        s
    });

    let decided = |verdict_if_refused: Reason,
                   message: Cow<'static, str>,
                   by: DecidedBy,
                   reference: Reference| {
        let verdict = if verdict_if_refused.is_refusal() && mode == crate::decision::Mode::Enforce {
            Verdict::Deny
        } else {
            Verdict::Allow
        };
        Decision {
            verdict,
            reason: verdict_if_refused,
            message,
            reference: Some(reference),
            category,
            mode,
            decided_by: by,
        }
    };

    // Exemptions.
    if let Some(ns) = input.namespace
        && let Some(i) = policy.exempt_namespaces.iter().position(|g| g.matches(ns))
    {
        let msg = format!("namespace {ns} is exempt by spec.exempt.namespaces[{i}]");
        trace.step(Check::Exemptions, StepOutcome::Allow, || msg.clone());
        return decided(
            Reason::Exempt,
            msg.into(),
            DecidedBy::ExemptNamespace(i),
            reference,
        );
    }
    if let Some(user) = input.user
        && let Some(i) = policy.exempt_users.iter().position(|g| g.matches(user))
    {
        let msg = format!("user {user} is exempt by spec.exempt.users[{i}]");
        trace.step(Check::Exemptions, StepOutcome::Allow, || msg.clone());
        return decided(
            Reason::Exempt,
            msg.into(),
            DecidedBy::ExemptUser(i),
            reference,
        );
    }
    trace.step(Check::Exemptions, exempt_outcome(policy), || {
        match (input.namespace, input.user) {
            (None, None) => "no namespace or user given".to_owned(),
            (ns, user) => format!(
                "namespace {} and user {} match no exemption",
                ns.unwrap_or("-"),
                user.unwrap_or("-")
            ),
        }
    });

    // Rules: first match wins.
    if let Some((i, rule)) = policy.rules.first_match(&reference) {
        return match rule.action {
            RuleAction::Allow => {
                let msg = format!("image {reference} is allowed by rule {}", rule.pattern);
                trace.step(Check::Rules, StepOutcome::Allow, || {
                    format!("spec.rules[{i}] allow {} matches", rule.pattern)
                });
                decided(Reason::Allowed, msg.into(), DecidedBy::Rule(i), reference)
            }
            RuleAction::Deny => {
                let msg = message::rule_denied(
                    &reference,
                    rule.pattern.as_str(),
                    rule.message.as_deref(),
                );
                trace.step(Check::Rules, StepOutcome::Deny, || {
                    format!("spec.rules[{i}] deny {} matches", rule.pattern)
                });
                refuse(mode, trace);
                decided(Reason::RuleDenied, msg, DecidedBy::Rule(i), reference)
            }
        };
    }
    trace.step(
        Check::Rules,
        if policy.rules.rules().is_empty() {
            StepOutcome::Skip
        } else {
            StepOutcome::Pass
        },
        || format!("none of {} rules matches", policy.rules.rules().len()),
    );

    // Registry access.
    match &policy.registry_access {
        Some(list) => match list.covering(&reference) {
            Some((i, scope)) => trace.step(Check::RegistryAccess, StepOutcome::Pass, || {
                format!("covered by spec.registryAccess.allow[{i}] {scope}")
            }),
            None => {
                let registry = reference.domain().unwrap_or_default();
                let msg = message::registry_not_allowed(registry);
                trace.step(Check::RegistryAccess, StepOutcome::Deny, || {
                    format!(
                        "{registry} is not covered by any of {} allowed registries",
                        list.scopes().len()
                    )
                });
                refuse(mode, trace);
                return decided(
                    Reason::RegistryNotAllowed,
                    msg,
                    DecidedBy::RegistryAccess,
                    reference,
                );
            }
        },
        None => trace.step(Check::RegistryAccess, StepOutcome::Skip, || {
            "not enabled".to_owned()
        }),
    }

    // Image access, Docker Hub only. An owner's bypass is remembered: if
    // nothing after refuses, the decision says what it bypassed.
    let mut bypassed = None;
    match category {
        Some(c) if policy.image_access.enabled && input.owner => {
            if !policy.image_access.allows(c) {
                bypassed = Some(message::category_not_allowed(c));
            }
            trace.step(Check::ImageAccess, StepOutcome::Skip, || {
                format!(
                    "{} would be {}, but organisation owners bypass image access",
                    c.images(),
                    if policy.image_access.allows(c) {
                        "allowed"
                    } else {
                        "refused"
                    }
                )
            });
        }
        Some(c) if policy.image_access.enabled => {
            if policy.image_access.allows(c) {
                trace.step(Check::ImageAccess, StepOutcome::Pass, || {
                    format!("{} are allowed", c.images())
                });
            } else {
                trace.step(Check::ImageAccess, StepOutcome::Deny, || {
                    let allowed: Vec<&str> = policy
                        .image_access
                        .allowed()
                        .iter()
                        .map(|c| c.code())
                        .collect();
                    format!(
                        "{} are not allowed (allowed: {})",
                        c.images(),
                        allowed.join(", ")
                    )
                });
                refuse(mode, trace);
                return decided(
                    Reason::CategoryNotAllowed,
                    message::category_not_allowed(c),
                    DecidedBy::ImageAccess,
                    reference,
                );
            }
        }
        Some(_) => trace.step(Check::ImageAccess, StepOutcome::Skip, || {
            "not enabled".to_owned()
        }),
        None => trace.step(Check::ImageAccess, StepOutcome::Skip, || {
            "not a Docker Hub image".to_owned()
        }),
    }

    // Requirements.
    if policy.require_digest {
        if reference.digest().is_none() {
            trace.step(Check::Requirements, StepOutcome::Deny, || {
                "a digest is required and none is given".to_owned()
            });
            refuse(mode, trace);
            let msg = message::digest_required(&reference);
            return decided(
                Reason::DigestRequired,
                msg,
                DecidedBy::RequireDigest,
                reference,
            );
        }
        trace.step(Check::Requirements, StepOutcome::Pass, || {
            "pinned by digest".to_owned()
        });
    } else {
        trace.step(Check::Requirements, StepOutcome::Skip, || "none".to_owned());
    }

    if let Some(refusal) = bypassed {
        return decided(
            Reason::OwnerBypass,
            message::owner_bypass(&refusal),
            DecidedBy::ImageAccess,
            reference,
        );
    }
    let msg = format!("image {reference} is allowed");
    decided(Reason::Allowed, msg.into(), DecidedBy::Default, reference)
}

/// The refusals of the policy's Rego modules for a request described by
/// `input` (see `rego` for the shapes doors build), as decisions with reason
/// `rego_denied`, refusing in `enforce` mode and allowed with the message kept
/// in `warn` and `audit`. Empty when the policy has no Rego or Rego allows.
#[cfg(feature = "rego")]
pub fn rego_refusals(policy: &Policy, input: &serde_json::Value) -> Vec<Decision> {
    let Some(rego) = &policy.rego else {
        return Vec::new();
    };
    rego.evaluate(input)
        .into_iter()
        .map(|message| Decision {
            verdict: if policy.mode == crate::decision::Mode::Enforce {
                Verdict::Deny
            } else {
                Verdict::Allow
            },
            reason: Reason::RegoDenied,
            message: message.into(),
            reference: None,
            category: None,
            mode: policy.mode,
            decided_by: DecidedBy::Rego,
        })
        .collect()
}

/// Applies a break-glass request to a decision made outside [`decide`] (a Rego
/// refusal): the same rule, in the same words.
pub fn with_break_glass(policy: &Policy, requested: bool, decision: Decision) -> Decision {
    let input = Input {
        break_glass: requested,
        ..Input::default()
    };
    break_glass(policy, &input, decision, &mut NoTrace)
}

/// Turns a refusal of a valid reference into an allow when the request breaks
/// glass and the policy permits it. Unparseable references stay refused.
fn break_glass(
    policy: &Policy,
    input: &Input<'_>,
    decision: Decision,
    trace: &mut impl Trace,
) -> Decision {
    if !input.break_glass
        || decision.verdict == Verdict::Allow
        || decision.decided_by == DecidedBy::Reference
    {
        return decision;
    }
    if !policy.break_glass {
        trace.step(Check::BreakGlass, StepOutcome::Skip, || {
            "requested, but spec.breakGlass is not enabled".to_owned()
        });
        return decision;
    }
    trace.step(Check::BreakGlass, StepOutcome::Allow, || {
        format!("allowed despite {}", decision.reason)
    });
    Decision {
        verdict: Verdict::Allow,
        reason: Reason::BreakGlass,
        message: message::break_glass(&decision.message),
        decided_by: DecidedBy::BreakGlass,
        ..decision
    }
}

fn exempt_outcome(policy: &Policy) -> StepOutcome {
    if policy.exempt_namespaces.is_empty() && policy.exempt_users.is_empty() {
        StepOutcome::Skip
    } else {
        StepOutcome::Pass
    }
}

/// Records what the mode does with a would-be denial.
fn refuse(mode: crate::decision::Mode, trace: &mut impl Trace) {
    use crate::decision::Mode;
    match mode {
        Mode::Enforce => {}
        Mode::Warn => trace.step(Check::Mode, StepOutcome::Allow, || {
            "warn mode: allowed with a warning".to_owned()
        }),
        Mode::Audit => trace.step(Check::Mode, StepOutcome::Allow, || {
            "audit mode: allowed and recorded".to_owned()
        }),
    }
}
