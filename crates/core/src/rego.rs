//! Rego policies (OPA's language), compiled once with regorus and evaluated
//! in-process with a time limit. Pure: sources come in as text, the input as a
//! JSON value the door builds; an evaluation error is a refusal, never an allow.
//!
//! Two conventions work, as Rego users write them: a `deny` set of messages
//! (`deny[msg] { ... }` in Rego v0, `deny contains msg if { ... }` in v1;
//! entries may also be objects with a `msg`), and an `allow` boolean
//! (`default allow := false`). Each package that declares either is evaluated.

use std::num::NonZeroU32;
use std::time::Duration;

use serde_json::Value;

/// How long one evaluation may run by default.
pub const DEFAULT_LIMIT: Duration = Duration::from_millis(500);

/// A Rego source that does not compile: where and what.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct RegoError {
    /// The file, as named in the policy.
    pub file: String,
    /// 1-based line (0 when unknown).
    pub line: u64,
    /// 1-based column (0 when unknown).
    pub column: u64,
    /// What is wrong.
    pub message: String,
}

/// Which convention a package follows.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    file: String,
    package: String,
    deny: bool,
    allow: bool,
}

/// Compiled Rego policies.
#[derive(Clone)]
pub struct RegoPolicies {
    engine: regorus::Engine,
    entries: Vec<Entry>,
}

impl std::fmt::Debug for RegoPolicies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegoPolicies")
            .field("entries", &self.entries)
            .finish()
    }
}

/// Turns regorus's multi-line diagnostic into `RegoError`.
fn diagnostic(file: &str, err: &dyn std::fmt::Display) -> RegoError {
    let text = err.to_string();
    let (mut line, mut column) = (0, 0);
    if let Some(at) = text.lines().find_map(|l| l.trim().strip_prefix("--> ")) {
        let mut parts = at.rsplitn(3, ':');
        column = parts
            .next()
            .and_then(|c| c.trim().parse().ok())
            .unwrap_or(0);
        line = parts
            .next()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0);
    }
    let message = text
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .unwrap_or_else(|| text.trim())
        .to_owned();
    RegoError {
        file: file.to_owned(),
        line,
        column,
        message,
    }
}

/// Whether a source asks for Rego v1 (OPA 1.0's default syntax).
fn looks_v1(source: &str) -> bool {
    source.contains("import rego.v1")
        || source.contains(" if ")
        || source.contains(" if{")
        || source.contains(" contains ")
}

impl RegoPolicies {
    /// Compiles `(file name, source)` pairs. Each source is read as Rego v1,
    /// and as v0 when it does not parse as v1 (Gatekeeper-era policies).
    ///
    /// ```
    /// use imagegate_core::rego::RegoPolicies;
    /// let src = "package imagegate\ndeny contains msg if {\n  some i in input.images\n  i.registry == \"quay.io\"\n  msg := \"no quay\"\n}\n";
    /// let rego = RegoPolicies::compile(&[("quay.rego".into(), src.into())], std::time::Duration::from_secs(1)).unwrap();
    /// let denials = rego.evaluate(&serde_json::json!({"images": [{"registry": "quay.io"}]}));
    /// assert_eq!(denials, ["no quay"]);
    /// ```
    pub fn compile(
        sources: &[(String, String)],
        limit: Duration,
    ) -> Result<RegoPolicies, RegoError> {
        let mut engine = regorus::Engine::new();
        engine.set_strict_builtin_errors(true);
        engine.set_execution_timer_config(regorus::utils::limits::ExecutionTimerConfig {
            limit,
            check_interval: NonZeroU32::MIN,
        });
        let mut entries = Vec::new();
        for (file, source) in sources {
            engine.set_rego_v0(false);
            let package = match engine.add_policy(file.clone(), source.clone()) {
                Ok(p) => p,
                Err(v1_err) => {
                    engine.set_rego_v0(true);
                    match engine.add_policy(file.clone(), source.clone()) {
                        Ok(p) => p,
                        Err(v0_err) => {
                            let err = if looks_v1(source) { v1_err } else { v0_err };
                            return Err(diagnostic(file, &err));
                        }
                    }
                }
            };
            let declares = |rule: &str| {
                engine
                    .has_declared_rule_rooted_at(file, rule)
                    .unwrap_or(false)
            };
            let entry = Entry {
                file: file.clone(),
                package,
                deny: declares("deny"),
                allow: declares("allow"),
            };
            if !entry.deny && !entry.allow {
                return Err(RegoError {
                    file: file.clone(),
                    line: 1,
                    column: 1,
                    message: format!(
                        "package {} declares neither a `deny` set nor an `allow` rule, so it can decide nothing",
                        entry.package.trim_start_matches("data.")
                    ),
                });
            }
            entries.push(entry);
        }
        Ok(RegoPolicies { engine, entries })
    }

    /// The files compiled, in order.
    pub fn files(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.file.as_str())
    }

    /// Evaluates every package against `input`. Returns the refusal messages:
    /// none means allowed. An evaluation error or a time-out is a refusal that
    /// says so.
    pub fn evaluate(&self, input: &Value) -> Vec<String> {
        let mut engine = self.engine.clone();
        let input = match regorus::Value::from_json_str(&input.to_string()) {
            Ok(v) => v,
            Err(e) => return vec![format!("rego input could not be built: {e}")],
        };
        engine.set_input(input);
        let mut refusals = Vec::new();
        for entry in &self.entries {
            let package = entry.package.trim_start_matches("data.");
            let before = refusals.len();
            if entry.deny {
                match engine
                    .eval_rule(format!("{}.deny", entry.package))
                    .map(|v| v.to_json_str())
                {
                    Ok(Ok(json)) => refusals.extend(messages(&json, package)),
                    Ok(Err(e)) | Err(e) => refusals.push(evaluation_failed(entry, &e)),
                }
            }
            if entry.allow {
                match engine.eval_rule(format!("{}.allow", entry.package)) {
                    Ok(regorus::Value::Bool(true)) => {}
                    // A package's own deny messages already say why.
                    Ok(_) if refusals.len() > before => {}
                    Ok(_) => refusals.push(format!(
                        "rego policy {package} ({}) does not allow this request",
                        entry.file
                    )),
                    Err(e) => refusals.push(evaluation_failed(entry, &e)),
                }
            }
        }
        refusals
    }
}

/// One image as Rego sees it in `input.images`: the input as written and its
/// normalised parts, with imagegate's own decision on it.
///
/// ```
/// use imagegate_core::{decide, Input, Policy};
/// let d = decide(&Policy::default(), &Input::image("nginx"));
/// let v = imagegate_core::rego::image_entry("nginx", &d);
/// assert_eq!(v["reference"], "docker.io/library/nginx:latest");
/// assert_eq!(v["repository"], "library/nginx");
/// ```
pub fn image_entry(image: &str, d: &crate::Decision) -> Value {
    let r = d.reference.as_ref();
    serde_json::json!({
        "image": image,
        "reference": r.map(|r| r.as_str()),
        "registry": r.and_then(|r| r.domain()),
        "repository": r.map(|r| r.path()),
        "tag": r.and_then(|r| r.tag()),
        "digest": r.and_then(|r| r.digest()),
        "category": d.category.map(|c| c.code()),
        "decision": d.verdict.as_str(),
        "reason": d.reason.code(),
    })
}

fn evaluation_failed(entry: &Entry, err: &dyn std::fmt::Display) -> String {
    let d = diagnostic(&entry.file, err);
    let at = if d.line > 0 {
        format!("{}:{}:{}", d.file, d.line, d.column)
    } else {
        d.file
    };
    format!("rego policy {at} failed to evaluate: {}", d.message)
}

/// The messages of a `deny` result: strings, or objects with `msg`.
fn messages(json: &str, package: &str) -> Vec<String> {
    let value: Value = serde_json::from_str(json).unwrap_or(Value::Null);
    let items = match value {
        Value::Array(items) => items,
        Value::Null => Vec::new(),
        other => vec![other],
    };
    items
        .into_iter()
        .map(|item| match item {
            Value::String(s) => s,
            Value::Object(o) => match o.get("msg") {
                Some(Value::String(s)) => s.clone(),
                _ => Value::Object(o).to_string(),
            },
            other => format!("rego policy {package} denied: {other}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(src: &str) -> Result<RegoPolicies, RegoError> {
        RegoPolicies::compile(
            &[("p.rego".to_owned(), src.to_owned())],
            Duration::from_millis(200),
        )
    }

    #[test]
    fn case_v0_deny_set_as_the_kubernetes_docs_sketch_it() {
        let r = compile("package kubernetes.admission\ndeny[msg] {\n  c := input.review.object.spec.containers[_]\n  not glob.match(\"trusted-registry.io/**\", [\"/\"], c.image)\n  msg := sprintf(\"image %v is not from trusted-registry.io\", [c.image])\n}\n").unwrap();
        let input = serde_json::json!({"review": {"object": {"spec": {"containers": [{"image": "evil.io/x"}, {"image": "trusted-registry.io/a/b"}]}}}});
        assert_eq!(
            r.evaluate(&input),
            ["image evil.io/x is not from trusted-registry.io"]
        );
    }

    #[test]
    fn case_v1_allow_with_default_false() {
        let r = compile("package corp\nimport rego.v1\ndefault allow := false\nallow if {\n  every i in input.images { i.registry == \"docker.io\" }\n}\n").unwrap();
        assert!(
            r.evaluate(&serde_json::json!({"images": [{"registry": "docker.io"}]}))
                .is_empty()
        );
        let refused = r.evaluate(&serde_json::json!({"images": [{"registry": "quay.io"}]}));
        assert_eq!(
            refused,
            ["rego policy corp (p.rego) does not allow this request"]
        );
    }

    #[test]
    fn case_gatekeeper_style_objects_with_msg() {
        let r = compile(
            "package k8s\ndeny contains {\"msg\": \"nope\", \"details\": {}} if { true }\n",
        )
        .unwrap();
        assert_eq!(r.evaluate(&serde_json::json!({})), ["nope"]);
    }

    #[test]
    fn case_syntax_error_names_file_and_line() {
        let e = compile("package x\ndeny contains msg if {\n  msg := \n}\n").unwrap_err();
        assert_eq!((e.file.as_str(), e.line), ("p.rego", 3));
        assert!(e.to_string().starts_with("p.rego:3:"), "{e}");
    }

    #[test]
    fn case_a_package_with_nothing_to_decide_is_refused() {
        let e = compile("package x\nfoo := 1\n").unwrap_err();
        assert!(
            e.message
                .contains("neither a `deny` set nor an `allow` rule"),
            "{e}"
        );
    }

    #[test]
    fn case_evaluation_errors_refuse_with_a_message() {
        let r = compile("package x\ndeny contains msg if {\n  x := 1 / input.zero\n  msg := sprintf(\"%v\", [x])\n}\n").unwrap();
        let refused = r.evaluate(&serde_json::json!({"zero": 0}));
        assert_eq!(refused.len(), 1);
        assert!(
            refused[0].starts_with("rego policy p.rego:3:"),
            "{}",
            refused[0]
        );
        assert!(
            refused[0].contains("failed to evaluate: divide by zero"),
            "{}",
            refused[0]
        );
    }

    #[test]
    fn case_a_runaway_evaluation_is_stopped_and_refused() {
        let r = RegoPolicies::compile(
            &[("slow.rego".to_owned(), "package x\ndeny contains msg if {\n  some a in input.n\n  some b in input.n\n  some c in input.n\n  a + b + c == -1\n  msg := \"never\"\n}\n".to_owned())],
            Duration::from_millis(50),
        )
        .unwrap();
        let n: Vec<u32> = (0..400).collect();
        let started = std::time::Instant::now();
        let refused = r.evaluate(&serde_json::json!({"n": n}));
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert!(refused[0].contains("time limit"), "{}", refused[0]);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
