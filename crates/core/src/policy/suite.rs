//! Policy test suites (`kind: ImagePolicyTest`): images with the decision a
//! policy must give them, so an organisation keeps its policy under test in CI.
//! Pure: the caller reads the files.

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{PolicyError, PolicyErrors, error_at};
use crate::decide::{Input, decide};
use crate::decision::{Decision, Reason, Verdict};
use crate::policy::Policy;

/// The `kind` of a policy test suite.
pub const SUITE_KIND: &str = "ImagePolicyTest";

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SuiteDoc {
    api_version: Spanned<String>,
    kind: Spanned<String>,
    #[serde(default)]
    policy: Option<String>,
    cases: Vec<Spanned<CaseDoc>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseDoc {
    image: String,
    decision: Verdict,
    #[serde(default)]
    reason: Option<Spanned<String>>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default, rename = "breakGlass")]
    break_glass: bool,
    #[serde(default)]
    owner: bool,
}

/// One expectation: an image (with namespace and user) and the decision it must get.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Case {
    /// A description, or the image.
    pub name: String,
    /// The image reference.
    pub image: String,
    /// The namespace, for exemption cases.
    pub namespace: Option<String>,
    /// The user, for exemption cases.
    pub user: Option<String>,
    /// Whether the request breaks glass.
    pub break_glass: bool,
    /// Whether the caller owns the organisation (registry door: bypasses image access).
    pub owner: bool,
    /// The expected verdict.
    pub decision: Verdict,
    /// The expected reason, if the case names one.
    pub reason: Option<Reason>,
    /// The case's line in the suite.
    pub line: u64,
}

/// A loaded suite.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suite {
    /// The policy file named by the suite (relative to the suite), if any.
    pub policy: Option<String>,
    /// The cases, in order.
    pub cases: Vec<Case>,
}

/// The outcome of one case.
#[derive(Clone, Debug)]
pub struct CaseResult<'a> {
    /// The case.
    pub case: &'a Case,
    /// What the policy decided.
    pub decision: Decision,
    /// Whether it met the expectation.
    pub passed: bool,
}

impl Suite {
    /// Loads a suite document.
    ///
    /// ```
    /// use imagegate_core::policy::{Policy, suite::Suite};
    /// let suite = Suite::load("apiVersion: imagegate.dev/v1\nkind: ImagePolicyTest\ncases:\n  - image: nginx\n    decision: allow\n").unwrap();
    /// let results = suite.run(&Policy::default());
    /// assert!(results[0].passed);
    /// ```
    pub fn load(text: &str) -> Result<Suite, PolicyErrors> {
        if text.trim().is_empty() {
            return Err(PolicyErrors::one("", None, "test suite is empty"));
        }
        let doc: SuiteDoc = super::deserialize_document(text)?;
        let mut errors: Vec<PolicyError> = Vec::new();
        super::check_header(&doc.api_version, &doc.kind, SUITE_KIND, &mut errors);
        let mut cases = Vec::new();
        for (i, c) in doc.cases.into_iter().enumerate() {
            let line = c.referenced.line();
            let c = c.value;
            let reason = match c.reason {
                None => None,
                Some(r) => match Reason::from_code(&r.value) {
                    Some(reason) => Some(reason),
                    None => {
                        let codes: Vec<&str> = Reason::ALL.iter().map(|r| r.code()).collect();
                        errors.push(error_at(
                            &format!("cases[{i}].reason"),
                            Some(r.referenced),
                            format!("unknown reason {:?}; one of {}", r.value, codes.join(", ")),
                        ));
                        continue;
                    }
                },
            };
            cases.push(Case {
                name: c.name.unwrap_or_else(|| c.image.clone()),
                image: c.image,
                namespace: c.namespace,
                user: c.user,
                break_glass: c.break_glass,
                owner: c.owner,
                decision: c.decision,
                reason,
                line,
            });
        }
        if errors.is_empty() {
            Ok(Suite {
                policy: doc.policy,
                cases,
            })
        } else {
            Err(PolicyErrors(errors))
        }
    }

    /// Decides every case under `policy`.
    pub fn run<'a>(&'a self, policy: &Policy) -> Vec<CaseResult<'a>> {
        self.cases
            .iter()
            .map(|case| {
                let decision = decide(
                    policy,
                    &Input {
                        image: &case.image,
                        namespace: case.namespace.as_deref(),
                        user: case.user.as_deref(),
                        break_glass: case.break_glass,
                        owner: case.owner,
                    },
                );
                let passed = decision.verdict == case.decision
                    && case.reason.is_none_or(|r| r == decision.reason);
                CaseResult {
                    case,
                    decision,
                    passed,
                }
            })
            .collect()
    }
}
