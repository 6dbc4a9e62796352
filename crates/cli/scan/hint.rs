//! The `hint:` line under a refusal in `imagegate scan`'s text: what to do
//! about it, true for its reason, for the kind of file it is in and for the
//! policy that refused it. Advice, not a contract: the decision's message
//! stays the core's.

use imagegate_core::decision::{DecidedBy, Decision};
use imagegate_core::dockerhub::Category;
use imagegate_core::policy::RuleAction;
use imagegate_core::{Policy, Reason};

/// Where an unresolved variable should have had its value from.
pub enum Vars<'a> {
    /// A Dockerfile scanned on its own: `--build-arg` and `ARG` defaults;
    /// `declared` are the `ARG`s before the first `FROM`.
    Dockerfile { declared: &'a [String] },
    /// A Dockerfile a Compose service builds: its `build.args` too.
    ComposeBuild {
        declared: &'a [String],
        service: &'a str,
    },
    /// A Compose file's own value: the environment, then `.env` beside the
    /// file or the `--env-file`s.
    Compose { env_file: bool, stdin: bool },
}

/// What a parse error kept from being checked.
pub enum Unchecked<'a> {
    /// The file could not be read at all.
    File,
    /// A YAML stream's document that does not parse; `others` when the file
    /// has other documents, which were read.
    Document { others: bool },
    /// A Compose file that does not parse.
    ComposeYaml,
    /// A Compose file that parses but is not shaped as Compose requires.
    ComposeShape,
    /// A Kubernetes object whose containers cannot be read.
    Object,
    /// A Compose service's build whose Dockerfile cannot be read.
    Build { service: &'a str },
}

/// The hint for a variable without a value, named in `names`.
pub fn unresolved(names: &[String], vars: &Vars) -> String {
    let valid = |n: &String| {
        let mut chars = n.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let checked = "so the image can be checked";
    if let Some(bad) = names.iter().find(|n| !valid(n)) {
        let literal = match vars {
            Vars::Compose { .. } => "$$",
            _ => "\\$",
        };
        return format!(
            "write {bad} as ${{NAME}} or ${{NAME:-default}} ({literal} for a literal $), {checked}"
        );
    }
    match vars {
        Vars::Compose { env_file, stdin } => {
            let name = names.first().map_or("the variable", String::as_str);
            let file = match (env_file, stdin) {
                (true, _) => "the --env-file given",
                (false, true) => "the .env file of the current directory",
                (false, false) => "the .env file beside the Compose file",
            };
            format!("set {name} in the environment or in {file}, {checked}")
        }
        Vars::Dockerfile { declared } | Vars::ComposeBuild { declared, .. } => {
            let service = match vars {
                Vars::ComposeBuild { service, .. } => Some(service),
                _ => None,
            };
            match names.iter().find(|n| !declared.contains(n)) {
                Some(name) => {
                    let from = match service {
                        Some(s) => format!("services.{s}.build.args or --build-arg {name}=VALUE"),
                        None => format!("--build-arg {name}=VALUE"),
                    };
                    format!(
                        "declare ARG {name} before the first FROM (only those reach FROM), with a default or a value from {from}, {checked}"
                    )
                }
                None => {
                    let name = names.first().map_or("the ARG", String::as_str);
                    let given = match service {
                        Some(s) => {
                            format!("in services.{s}.build.args, with --build-arg {name}=VALUE,")
                        }
                        None => format!("with --build-arg {name}=VALUE,"),
                    };
                    format!(
                        "give {name} a value {given} or a default (ARG {name}=VALUE before the first FROM), {checked}"
                    )
                }
            }
        }
    }
}

/// The hint for a file, document or object that cannot be read.
pub fn parse_error(unchecked: &Unchecked) -> String {
    match unchecked {
        Unchecked::File => "nothing in this file was checked: see why above".to_owned(),
        Unchecked::Document { others: true } => {
            "fix the YAML at this line and column: this document's images were not checked (the file's other documents were)".to_owned()
        }
        Unchecked::Document { others: false } => {
            "fix the YAML at this line and column: none of this file's images were checked"
                .to_owned()
        }
        Unchecked::ComposeYaml => {
            "fix the YAML at this line and column: none of this Compose file's images were checked"
                .to_owned()
        }
        Unchecked::ComposeShape => {
            "fix this value as the Compose specification requires: none of this Compose file's images were checked".to_owned()
        }
        Unchecked::Object => {
            "fix this object as Kubernetes requires (every container has an image, a string): its images were not checked".to_owned()
        }
        Unchecked::Build { service } => format!(
            "make services.{service}.build's context and dockerfile name a readable Dockerfile: the images it builds from were not checked"
        ),
    }
}

/// The hint for a refusal the policy made, from the part of the policy that
/// made it; `None` for an allowed image.
pub fn decision(policy: &Policy, d: &Decision) -> Option<String> {
    let reference = d.reference.as_ref();
    let hint = match d.reason {
        Reason::CategoryNotAllowed => {
            let refused = d.category?;
            let others: Vec<&str> = policy
                .image_access
                .allowed()
                .into_iter()
                .filter(|c| *c != Category::Organization)
                .map(|c| match c {
                    Category::Official => "Docker Official",
                    Category::VerifiedPublisher => "Verified Publisher",
                    Category::Community | Category::Organization => "community",
                })
                .collect();
            let instead = match others.as_slice() {
                [] => "use one of your organisation's images".to_owned(),
                [one] => format!("use a {one} image or one of your organisation's"),
                [init @ .., last] => format!(
                    "use a {} or {last} image or one of your organisation's",
                    init.join(", ")
                ),
            };
            format!(
                "{instead}, or ask an owner to allow {} (spec.imageAccess.allow)",
                refused.images()
            )
        }
        Reason::RegistryNotAllowed => {
            let host = reference.and_then(|r| r.domain()).unwrap_or("this registry");
            let allowed: Vec<String> = policy
                .registry_access
                .as_ref()
                .map(|a| a.scopes().iter().map(ToString::to_string).collect())
                .unwrap_or_default();
            const SHOWN: usize = 6;
            let mut list = allowed
                .iter()
                .take(SHOWN)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ");
            if allowed.len() > SHOWN {
                list.push_str(", …");
            }
            let from = if list.is_empty() {
                "an allowed registry".to_owned()
            } else {
                format!("an allowed registry ({list})")
            };
            format!(
                "use an image from {from}, or ask an owner to add {} to spec.registryAccess.allow",
                host.to_ascii_lowercase()
            )
        }
        Reason::RuleDenied => {
            let rule = match d.decided_by {
                DecidedBy::Rule(i) => policy.rules.rules().get(i).map(|r| (i, r)),
                _ => None,
            };
            match rule {
                Some((i, rule)) => {
                    let action = match rule.action {
                        RuleAction::Deny => "deny",
                        RuleAction::Allow => "allow",
                    };
                    let then = if rule.message.is_some() {
                        "follow its message"
                    } else {
                        "choose another image"
                    };
                    format!(
                        "spec.rules[{i}] ({action} {}) refuses this image: {then}, or ask an owner for an exception",
                        rule.pattern
                    )
                }
                None => d.reason.hint()?.to_owned(),
            }
        }
        Reason::DigestRequired => match reference {
            Some(r) => format!(
                "pin it by digest (NAME@sha256:…): skopeo inspect --format '{{{{.Digest}}}}' docker://{r} prints the digest"
            ),
            None => d.reason.hint()?.to_owned(),
        },
        Reason::AmbiguousReference => match reference.and_then(|r| r.domain()) {
            // A first component that looks like a host but is not one.
            None => "write the registry as a valid host name, or docker.io/ before a Docker Hub path, so every runtime reads the reference alike".to_owned(),
            Some(_) => "name the repository before the digest (name@sha256:…): a bare digest is a local image ID to runtimes".to_owned(),
        },
        _ => d.reason.hint()?.to_owned(),
    };
    Some(hint)
}
