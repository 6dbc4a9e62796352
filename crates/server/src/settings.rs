//! An organisation's settings as the console and the API show them: image
//! access and registry access read from its policy document and written back
//! into it as a recorded change (`Identity::change_policy`), and its members,
//! changed with a record beside the policy's. One place, so the two cannot
//! disagree. Nothing here knows about HTTP.

use imagegate_core::Policy;
use imagegate_core::dockerhub::Category;
use imagegate_core::pattern::RegistryScope;
use serde_json::Value;

use crate::identity::{Identity, IdentityError};
use crate::store::{Org, PolicyChange, Role, now_ms};

/// Image access: the switch, the categories, and who counts as what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageAccess {
    /// Whether the restriction is on (off: every category is allowed).
    pub enabled: bool,
    /// Docker Official Images allowed.
    pub official: bool,
    /// Docker Verified Publisher images allowed.
    pub verified_publisher: bool,
    /// Community images allowed.
    pub community: bool,
    /// Docker Hub namespaces whose images are Organization images.
    pub organization_namespaces: Vec<String>,
    /// Namespaces treated as Docker Verified Publishers.
    pub verified_publishers: Vec<String>,
}

/// Registry access: the switch and the allowed registries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryAccess {
    /// Whether the allow-list applies.
    pub enabled: bool,
    /// Registries, registry paths and wildcards, as written.
    pub allow: Vec<String>,
}

/// One problem with what was asked: where, and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// A field path (`spec.mode`, `allow[2]`).
    pub path: String,
    /// 1-based line and column in a policy document, when known.
    pub at: Option<(u64, u64)>,
    /// What is wrong.
    pub message: String,
}

/// Why a setting was not changed.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// What was asked is refused; each problem says where.
    #[error("{message}")]
    Invalid {
        /// For people.
        message: String,
        /// Each problem.
        problems: Vec<Problem>,
    },
    /// Something named does not exist (a user, a membership).
    #[error("{0}")]
    Missing(String),
    /// The user may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The store failed, or a name is unknown.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The stored policy cannot be read back (it was checked when stored).
    #[error("the stored policy of {org} cannot be read: {why}")]
    Stored {
        /// The organisation.
        org: String,
        /// What went wrong.
        why: String,
    },
}

fn invalid(message: impl Into<String>, problems: Vec<Problem>) -> SettingsError {
    SettingsError::Invalid {
        message: message.into(),
        problems,
    }
}

/// The stored policy: its text, as a document to edit, and compiled.
fn document(identity: &Identity, org: &str) -> Result<(String, Value, Policy), SettingsError> {
    let text = identity.org(org)?.policy;
    let policy = Policy::load(&text).map_err(|e| stored(org, e))?;
    let doc: Value = serde_saphyr::from_str(&text).map_err(|e| stored(org, e))?;
    Ok((text, doc, policy))
}

/// The stored policy cannot be read back, or an edit of it written.
fn stored(org: &str, why: impl std::fmt::Display) -> SettingsError {
    SettingsError::Stored {
        org: org.to_owned(),
        why: why.to_string(),
    }
}

/// `spec` of a policy document, made an object if it is not one.
fn spec(doc: &mut Value) -> &mut Value {
    if !doc.get("spec").is_some_and(Value::is_object) {
        doc["spec"] = Value::Object(serde_json::Map::new());
    }
    &mut doc["spec"]
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Replaces the whole policy: one that does not load is refused with each
/// problem's path, line and column.
pub fn set_policy(
    identity: &Identity,
    org: &str,
    user: &str,
    what: &str,
    text: &str,
) -> Result<(), SettingsError> {
    if let Err(errors) = Policy::load(text) {
        let problems = errors
            .0
            .into_iter()
            .map(|e| Problem {
                path: e.path,
                at: (e.line > 0).then_some((e.line, e.column)),
                message: e.message,
            })
            .collect();
        return Err(invalid("the policy does not load", problems));
    }
    identity.change_policy(org, user, what, text)?;
    Ok(())
}

/// Writes `spec.<key>` of the policy and records the change as `what`.
fn edit(
    identity: &Identity,
    org: &str,
    user: &str,
    what: &str,
    mut doc: Value,
    key: &str,
    part: Value,
) -> Result<(), SettingsError> {
    spec(&mut doc)[key] = part;
    let text = serde_saphyr::to_string(&doc).map_err(|e| stored(org, e))?;
    set_policy(identity, org, user, what, &text)
}

/// The policy text with an allow rule for exactly `repository` added after
/// the existing rules (unless one like it is there), and that policy
/// compiled: the stored text before, the text after. Deny rules an owner
/// wrote keep their place ahead of it.
pub fn with_repository_allowed(
    identity: &Identity,
    org: &str,
    repository: &str,
) -> Result<(String, String, Policy), SettingsError> {
    let (before, mut doc, _) = document(identity, org)?;
    let spec = spec(&mut doc);
    let rule = serde_json::json!({ "allow": repository });
    match spec.get_mut("rules").and_then(Value::as_array_mut) {
        Some(rules) if rules.contains(&rule) => {}
        Some(rules) => rules.push(rule),
        None => spec["rules"] = Value::Array(vec![rule]),
    }
    let after = serde_saphyr::to_string(&doc).map_err(|e| stored(org, e))?;
    let policy = Policy::load(&after).map_err(|e| stored(org, e))?;
    Ok((before, after, policy))
}

/// The organisation's compiled policy.
pub fn policy(identity: &Identity, org: &str) -> Result<Policy, SettingsError> {
    let text = identity.org(org)?.policy;
    Policy::load(&text).map_err(|e| stored(org, e))
}

/// The organisation's image access.
pub fn image_access(identity: &Identity, org: &str) -> Result<ImageAccess, SettingsError> {
    let (_, doc, policy) = document(identity, org)?;
    let allowed = policy.image_access.allowed();
    let ia = doc.get("spec").and_then(|s| s.get("imageAccess"));
    Ok(ImageAccess {
        enabled: policy.image_access.enabled,
        official: allowed.contains(&Category::Official),
        verified_publisher: allowed.contains(&Category::VerifiedPublisher),
        community: allowed.contains(&Category::Community),
        organization_namespaces: strings(ia.and_then(|i| i.get("organizationNamespaces"))),
        verified_publishers: strings(ia.and_then(|i| i.get("verifiedPublishers"))),
    })
}

/// `user` sets the organisation's image access. Organization images stay
/// allowed whatever is asked.
pub fn set_image_access(
    identity: &Identity,
    org: &str,
    user: &str,
    to: &ImageAccess,
) -> Result<(), SettingsError> {
    let (_, doc, _) = document(identity, org)?;
    let allow: Vec<&str> = [
        (true, Category::Organization),
        (to.official, Category::Official),
        (to.verified_publisher, Category::VerifiedPublisher),
        (to.community, Category::Community),
    ]
    .into_iter()
    .filter(|(on, _)| *on)
    .map(|(_, c)| c.code())
    .collect();
    let part = serde_json::json!({
        "enabled": to.enabled,
        "allow": allow,
        "organizationNamespaces": to.organization_namespaces,
        "verifiedPublishers": to.verified_publishers,
    });
    edit(
        identity,
        org,
        user,
        "image_access",
        doc,
        "imageAccess",
        part,
    )
}

/// The organisation's registry access.
pub fn registry_access(identity: &Identity, org: &str) -> Result<RegistryAccess, SettingsError> {
    let (_, doc, policy) = document(identity, org)?;
    let ra = doc.get("spec").and_then(|s| s.get("registryAccess"));
    Ok(RegistryAccess {
        enabled: policy.registry_access.is_some(),
        allow: strings(ra.and_then(|r| r.get("allow"))),
    })
}

/// Checks one registry entry with the policy's pattern rules.
pub fn check_registry(entry: &str) -> Result<(), String> {
    RegistryScope::parse(entry)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// `user` sets the organisation's registry access; each entry is checked
/// with the policy's pattern rules and a bad one is refused by its index.
pub fn set_registry_access(
    identity: &Identity,
    org: &str,
    user: &str,
    to: &RegistryAccess,
) -> Result<(), SettingsError> {
    let problems: Vec<Problem> = to
        .allow
        .iter()
        .enumerate()
        .filter_map(|(i, entry)| {
            check_registry(entry).err().map(|message| Problem {
                path: format!("allow[{i}]"),
                at: None,
                message,
            })
        })
        .collect();
    if !problems.is_empty() {
        return Err(invalid("an allowed registry is not valid", problems));
    }
    let (_, doc, _) = document(identity, org)?;
    let part = serde_json::json!({"enabled": to.enabled, "allow": to.allow});
    edit(
        identity,
        org,
        user,
        "registry_access",
        doc,
        "registryAccess",
        part,
    )
}

/// An organisation keeps at least one owner, or nobody could manage it.
fn keep_an_owner(members: &[(String, Role)], org: &str, user: &str) -> Result<(), SettingsError> {
    if members.iter().filter(|(_, r)| *r == Role::Owner).count() <= 1 {
        return Err(invalid(
            format!("{user} is the last owner of {org}: make another member an owner first"),
            Vec::new(),
        ));
    }
    Ok(())
}

/// Records a membership change beside the policy changes.
fn record_member(
    identity: &Identity,
    org: &str,
    by: &str,
    user: &str,
    before: Option<Role>,
    after: Option<Role>,
) -> Result<(), SettingsError> {
    let describe = |r: Option<Role>| match r {
        Some(r) => format!("{user}: {}", r.as_str()),
        None => format!("{user}: not a member"),
    };
    identity
        .store()
        .record_change(&PolicyChange {
            time_ms: now_ms(),
            org: org.to_owned(),
            user: by.to_owned(),
            what: "members".to_owned(),
            before: describe(before),
            after: describe(after),
        })
        .map_err(|e| SettingsError::Identity(e.into()))
}

/// `by` adds `user` to `org` or changes their role. The last owner cannot
/// become a member.
pub fn set_member(
    identity: &Identity,
    org: &str,
    by: &str,
    user: &str,
    role: Role,
) -> Result<(), SettingsError> {
    let store = identity.store();
    if store
        .user(user)
        .map_err(|e| SettingsError::Identity(e.into()))?
        .is_none()
    {
        return Err(SettingsError::Missing(format!("user {user} not found")));
    }
    let members = identity.members(org)?;
    let before = members.iter().find(|(u, _)| u == user).map(|(_, r)| *r);
    if before == Some(Role::Owner) && role == Role::Member {
        keep_an_owner(&members, org, user)?;
    }
    store
        .set_member(org, user, role)
        .map_err(|e| SettingsError::Identity(e.into()))?;
    record_member(identity, org, by, user, before, Some(role))
}

/// `by` removes `user` from `org`. The last owner stays.
pub fn remove_member(
    identity: &Identity,
    org: &str,
    by: &str,
    user: &str,
) -> Result<(), SettingsError> {
    let members = identity.members(org)?;
    let Some(before) = members.iter().find(|(u, _)| u == user).map(|(_, r)| *r) else {
        return Err(SettingsError::Missing(format!(
            "{user} is not a member of {org}"
        )));
    };
    if before == Role::Owner {
        keep_an_owner(&members, org, user)?;
    }
    identity
        .store()
        .remove_member(org, user)
        .map_err(|e| SettingsError::Identity(e.into()))?;
    record_member(identity, org, by, user, Some(before), None)
}

/// Administrator `by` makes themselves an owner of `org` (an organisation
/// made with `imagegate admin org create` has no owner they could ask).
/// Recorded as any membership change is.
pub fn become_owner(identity: &Identity, org: &str, by: &str) -> Result<(), SettingsError> {
    if !identity
        .store()
        .is_administrator(by)
        .map_err(|e| SettingsError::Identity(e.into()))?
    {
        return Err(SettingsError::Forbidden(
            "only administrators make themselves owners of an organisation".to_owned(),
        ));
    }
    identity.org(org)?;
    set_member(identity, org, by, by, Role::Owner)
}

/// Administrator `by` creates organisation `name` with its Docker Hub
/// `namespaces` and the default policy (image access off), and becomes its
/// owner. Only administrators create organisations: a user who could make
/// one of their own would choose their own policy.
pub fn create_org(
    identity: &Identity,
    by: &str,
    name: &str,
    namespaces: &[String],
) -> Result<Org, SettingsError> {
    let store = identity.store();
    if !store
        .is_administrator(by)
        .map_err(|e| SettingsError::Identity(e.into()))?
    {
        return Err(SettingsError::Forbidden(
            "only administrators create organisations (imagegate admin user create --administrator)"
                .to_owned(),
        ));
    }
    let org = identity.create_org(name, namespaces)?;
    store
        .set_member(name, by, Role::Owner)
        .map_err(|e| SettingsError::Identity(e.into()))?;
    record_member(identity, name, by, by, None, Some(Role::Owner))?;
    Ok(org)
}
