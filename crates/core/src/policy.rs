//! The policy document (`imagegate.dev/v1`, kind `ImagePolicy`, YAML or JSON)
//! and its compiled form. Loading reports every problem with the field's path,
//! line and column; compiling builds every matcher once, so deciding never
//! parses a pattern.

use std::collections::HashMap;
use std::fmt;

use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

use crate::decision::Mode;
use crate::dockerhub::{Category, Namespaces};
use crate::pattern::{ImagePattern, NameGlob, RegistryScope, registry_key};
use crate::reference::{Reference, validate_path_component};

mod schema;
pub mod suite;

/// The `apiVersion` this imagegate reads.
pub const API_VERSION: &str = "imagegate.dev/v1";
/// The `kind` of a policy document.
pub const KIND: &str = "ImagePolicy";
/// The largest policy document accepted, in bytes.
pub const MAX_POLICY_BYTES: usize = 16 * 1024 * 1024;

/// One problem in a policy document: where (field path, line, column) and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyError {
    /// The field's path, such as `spec.rules[2].deny`; empty for the document.
    pub path: String,
    /// 1-based line, 0 when unknown.
    pub line: u64,
    /// 1-based column, 0 when unknown.
    pub column: u64,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}: ", self.line, self.column)?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in a policy document, in document order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl PolicyErrors {
    fn one(path: &str, at: Option<Location>, message: impl Into<String>) -> PolicyErrors {
        PolicyErrors(vec![error_at(path, at, message)])
    }
}

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyErrors {}

fn error_at(path: &str, at: Option<Location>, message: impl Into<String>) -> PolicyError {
    let (line, column) = at.map_or((0, 0), |l| (l.line(), l.column()));
    PolicyError {
        path: path.to_owned(),
        line,
        column,
        message: message.into(),
    }
}

// The document as users write it. Every struct refuses unknown fields.

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Document {
    api_version: Spanned<String>,
    kind: Spanned<String>,
    metadata: Metadata,
    #[serde(default)]
    spec: Option<Spec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    name: Spanned<String>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Spec {
    #[serde(default)]
    mode: Mode,
    #[serde(default)]
    image_access: Option<ImageAccessDoc>,
    #[serde(default)]
    registry_access: Option<RegistryAccessDoc>,
    #[serde(default)]
    rules: Vec<Spanned<RuleDoc>>,
    #[serde(default)]
    require: Option<RequireDoc>,
    #[serde(default)]
    exempt: Option<ExemptDoc>,
    #[serde(default)]
    break_glass: Option<BreakGlassDoc>,
    #[serde(default)]
    rego: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BreakGlassDoc {
    #[serde(default)]
    enabled: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ImageAccessDoc {
    #[serde(default)]
    enabled: bool,
    #[serde(default)]
    allow: Option<Vec<Spanned<Category>>>,
    #[serde(default)]
    organization_namespaces: Vec<Spanned<String>>,
    #[serde(default)]
    verified_publishers: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryAccessDoc {
    #[serde(default)]
    enabled: bool,
    #[serde(default)]
    allow: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDoc {
    #[serde(default)]
    allow: Option<Spanned<String>>,
    #[serde(default)]
    deny: Option<Spanned<String>>,
    #[serde(default)]
    message: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequireDoc {
    #[serde(default)]
    digest: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExemptDoc {
    #[serde(default)]
    namespaces: Vec<Spanned<String>>,
    #[serde(default)]
    users: Vec<Spanned<String>>,
}

/// Whether a rule allows or denies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleAction {
    /// A vetted exception: allowed, and no later check applies.
    Allow,
    /// A refusal.
    Deny,
}

/// One compiled rule.
#[derive(Clone, Debug)]
pub struct Rule {
    /// Allow or deny.
    pub action: RuleAction,
    /// What it matches.
    pub pattern: ImagePattern,
    /// The rule's own message.
    pub message: Option<String>,
}

/// Image access as compiled: which categories are allowed.
#[derive(Clone, Debug)]
pub struct ImageAccess {
    /// Whether the restriction is on.
    pub enabled: bool,
    /// One bit per category (see [`bit`]).
    allowed: u8,
}

impl ImageAccess {
    /// Whether `category` may be pulled. Organisation images always may.
    pub fn allows(&self, category: Category) -> bool {
        !self.enabled || category == Category::Organization || self.allowed & bit(category) != 0
    }

    /// The allowed categories, organisation first.
    pub fn allowed(&self) -> Vec<Category> {
        Category::ALL
            .into_iter()
            .filter(|c| *c == Category::Organization || self.allowed & bit(*c) != 0)
            .collect()
    }
}

fn bit(c: Category) -> u8 {
    match c {
        Category::Organization => 1,
        Category::Official => 2,
        Category::VerifiedPublisher => 4,
        Category::Community => 8,
    }
}

/// The rules, indexed so a decision looks only at rules that can match.
///
/// Rules whose registry is literal are filed in a trie by registry and the
/// literal leading path components; where the next component is a glob with a
/// literal start (`legacy-*`), they are filed under that start too. A
/// reference walks its own path down the trie and meets only the rules filed
/// along it, plus the few whose registry is a glob. First match wins, by
/// position in the document.
#[derive(Clone, Debug, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
    by_registry: HashMap<String, TrieNode>,
    unindexed: Vec<u32>,
}

#[derive(Clone, Debug, Default)]
struct TrieNode {
    /// Rules whose literal prefix ends here.
    here: Vec<u32>,
    /// Rules whose next component is a glob starting with a literal, by that literal.
    by_glob_start: HashMap<Box<str>, Vec<u32>>,
    /// The distinct lengths of the keys of `by_glob_start`, ascending.
    glob_start_lens: Vec<usize>,
    children: HashMap<Box<str>, TrieNode>,
}

impl RuleSet {
    /// Builds the index over `rules` (document order).
    pub fn new(rules: Vec<Rule>) -> RuleSet {
        let mut by_registry: HashMap<String, TrieNode> = HashMap::new();
        let mut unindexed = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            let Some(key) = rule.pattern.index_key() else {
                unindexed.push(i);
                continue;
            };
            let mut node = by_registry.entry(key.registry).or_default();
            for comp in key.components {
                node = node.children.entry(comp.into()).or_default();
            }
            match key.glob_start {
                Some(start) => {
                    node.by_glob_start.entry(start.into()).or_default().push(i);
                    if let Err(at) = node.glob_start_lens.binary_search(&start.len()) {
                        node.glob_start_lens.insert(at, start.len());
                    }
                }
                None => node.here.push(i),
            }
        }
        RuleSet {
            rules,
            by_registry,
            unindexed,
        }
    }

    /// The rules in document order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The first rule (by position) that matches `r`.
    pub fn first_match(&self, r: &Reference) -> Option<(usize, &Rule)> {
        let mut best = u32::MAX;
        let mut consider = |candidates: &[u32]| {
            for &i in candidates {
                if i >= best {
                    break;
                }
                if self
                    .rules
                    .get(i as usize)
                    .is_some_and(|rule| rule.pattern.matches(r))
                {
                    best = i;
                    break;
                }
            }
        };
        consider(&self.unindexed);
        if let Some(key) = registry_key(r)
            && let Some(mut node) = self.by_registry.get(&*key)
        {
            let mut comps = r.path_components();
            loop {
                consider(&node.here);
                let Some(comp) = comps.next() else { break };
                for &len in &node.glob_start_lens {
                    match comp.get(..len) {
                        Some(start) => {
                            if let Some(list) = node.by_glob_start.get(start) {
                                consider(list);
                            }
                        }
                        None => break,
                    }
                }
                match node.children.get(comp) {
                    Some(child) => node = child,
                    None => break,
                }
            }
        }
        let i = best as usize;
        self.rules.get(i).map(|rule| (i, rule))
    }
}

/// The registry allow-list, indexed by literal registry.
#[derive(Clone, Debug, Default)]
pub struct RegistryAllowList {
    scopes: Vec<RegistryScope>,
    by_registry: HashMap<String, Vec<u32>>,
    unindexed: Vec<u32>,
}

impl RegistryAllowList {
    /// Builds the index over `scopes` (document order).
    pub fn new(scopes: Vec<RegistryScope>) -> RegistryAllowList {
        let mut list = RegistryAllowList::default();
        for (i, scope) in scopes.iter().enumerate() {
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            match scope.index_key() {
                Some(key) => list.by_registry.entry(key).or_default().push(i),
                None => list.unindexed.push(i),
            }
        }
        list.scopes = scopes;
        list
    }

    /// The entries in document order.
    pub fn scopes(&self) -> &[RegistryScope] {
        &self.scopes
    }

    /// The first entry (by position) that covers `r`.
    pub fn covering(&self, r: &Reference) -> Option<(usize, &RegistryScope)> {
        let literal = registry_key(r)
            .and_then(|key| self.by_registry.get(&*key))
            .map_or(&[][..], Vec::as_slice);
        literal
            .iter()
            .chain(&self.unindexed)
            .copied()
            .filter(|&i| self.scopes.get(i as usize).is_some_and(|s| s.matches(r)))
            .min()
            .and_then(|i| self.scopes.get(i as usize).map(|s| (i as usize, s)))
    }
}

/// A compiled policy: every pattern parsed and indexed once.
#[derive(Clone, Debug)]
pub struct Policy {
    /// `metadata.name`.
    pub name: String,
    /// `spec.mode`.
    pub mode: Mode,
    /// Namespaces that decide Docker Hub categories.
    pub namespaces: Namespaces,
    /// `spec.imageAccess`.
    pub image_access: ImageAccess,
    /// `spec.registryAccess`, when enabled.
    pub registry_access: Option<RegistryAllowList>,
    /// `spec.rules`.
    pub rules: RuleSet,
    /// `spec.require.digest`.
    pub require_digest: bool,
    /// `spec.exempt.namespaces`.
    pub exempt_namespaces: Vec<NameGlob>,
    /// `spec.exempt.users`.
    pub exempt_users: Vec<NameGlob>,
    /// `spec.breakGlass.enabled`: a request may override a refusal.
    pub break_glass: bool,
    /// `spec.rego`: the compiled Rego policies, if the policy names any.
    #[cfg(feature = "rego")]
    pub rego: Option<std::sync::Arc<crate::rego::RegoPolicies>>,
}

impl Default for Policy {
    /// No policy: every valid, unambiguous reference is allowed.
    fn default() -> Policy {
        Policy {
            name: String::new(),
            mode: Mode::Enforce,
            namespaces: Namespaces::default(),
            image_access: ImageAccess {
                enabled: false,
                allowed: 0b1111,
            },
            registry_access: None,
            rules: RuleSet::default(),
            require_digest: false,
            exempt_namespaces: Vec::new(),
            exempt_users: Vec::new(),
            break_glass: false,
            #[cfg(feature = "rego")]
            rego: None,
        }
    }
}

impl Policy {
    /// Loads and compiles a policy document (YAML; JSON is YAML too).
    ///
    /// ```
    /// use imagegate_core::policy::Policy;
    /// let p = Policy::load("apiVersion: imagegate.dev/v1\nkind: ImagePolicy\nmetadata: {name: corp}\nspec:\n  rules:\n    - deny: nginx:lates~t\n").unwrap_err();
    /// assert_eq!(p.0[0].path, "spec.rules[0].deny");
    /// assert_eq!((p.0[0].line, p.0[0].column), (6, 13));
    /// ```
    pub fn load(text: &str) -> Result<Policy, PolicyErrors> {
        Policy::load_with_files(text, &|name| {
            Err(format!(
                "cannot read {name}: this policy was loaded from text alone"
            ))
        })
    }

    /// Loads a policy whose `spec.rego` names files, reading each with `read`
    /// (the caller resolves names, typically relative to the policy file).
    pub fn load_with_files(
        text: &str,
        read: &dyn Fn(&str) -> Result<String, String>,
    ) -> Result<Policy, PolicyErrors> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(PolicyErrors::one(
                "",
                None,
                format!(
                    "policy is {} bytes, more than the {MAX_POLICY_BYTES} allowed",
                    text.len()
                ),
            ));
        }
        if text.trim().is_empty() {
            return Err(PolicyErrors::one("", None, "policy is empty"));
        }
        match parse_document(text) {
            Ok(doc) => compile(doc, read),
            // serde stops at the first problem; the walk over the tree finds
            // the others, so one run of `policy validate` lists them all.
            Err(PolicyErrors(first)) => match first.into_iter().next() {
                Some(first) => Err(PolicyErrors(schema::problems(text, first, read))),
                None => Err(PolicyErrors(Vec::new())),
            },
        }
    }
}

fn parse_document(text: &str) -> Result<Document, PolicyErrors> {
    deserialize_document(text)
}

/// Deserializes one YAML (or JSON) document of imagegate's (a policy, a test
/// suite, a server config), turning the first problem into a [`PolicyError`]
/// with the field's path, line and column. Duplicate keys are errors.
pub fn deserialize_document<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, PolicyErrors> {
    let options = serde_saphyr::options! {
        with_snippet: false,
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
    };
    let mut path = String::new();
    let result = serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
        serde_path_to_error::deserialize::<_, T>(de).map_err(|e| {
            path = e.path().to_string();
            e.into_inner()
        })
    });
    result.map_err(|err| {
        use serde_saphyr::MessageFormatter;
        let message = serde_saphyr::UserMessageFormatter
            .format_message(&err)
            .escape_debug()
            .to_string();
        // serde_path_to_error writes `.` for the root and `?` where it lost track.
        let path = match path.as_str() {
            "." | "?" => String::new(),
            // `Spanned<T>` adds a `value` level that users never write.
            p => p
                .split('.')
                .filter(|seg| *seg != "value")
                .collect::<Vec<_>>()
                .join("."),
        };
        PolicyErrors::one(&path, err.location(), message)
    })
}

/// Reads and compiles `spec.rego`, reporting each problem at its entry.
#[cfg(feature = "rego")]
fn compile_rego(
    files: &[Spanned<String>],
    read: &dyn Fn(&str) -> Result<String, String>,
    policy: &mut Policy,
    errors: &mut Vec<PolicyError>,
) {
    if files.is_empty() {
        return;
    }
    let mut sources = Vec::new();
    for (i, f) in files.iter().enumerate() {
        match read(&f.value) {
            Ok(text) => sources.push((f.value.clone(), text)),
            Err(e) => errors.push(error_at(&format!("spec.rego[{i}]"), Some(f.referenced), e)),
        }
    }
    if sources.len() != files.len() {
        return;
    }
    match crate::rego::RegoPolicies::compile(&sources, crate::rego::DEFAULT_LIMIT) {
        Ok(rego) => policy.rego = Some(std::sync::Arc::new(rego)),
        Err(e) => {
            let i = files.iter().position(|f| f.value == e.file).unwrap_or(0);
            errors.push(error_at(
                &format!("spec.rego[{i}]"),
                files.get(i).map(|f| f.referenced),
                e.to_string(),
            ));
        }
    }
}

#[cfg(not(feature = "rego"))]
fn compile_rego(
    files: &[Spanned<String>],
    _read: &dyn Fn(&str) -> Result<String, String>,
    _policy: &mut Policy,
    errors: &mut Vec<PolicyError>,
) {
    if let Some(f) = files.first() {
        errors.push(error_at(
            "spec.rego[0]",
            Some(f.referenced),
            "this imagegate was built without Rego support",
        ));
    }
}

/// Checks a document's `apiVersion` and `kind`.
fn check_header(
    api_version: &Spanned<String>,
    kind: &Spanned<String>,
    expected_kind: &str,
    errors: &mut Vec<PolicyError>,
) {
    if api_version.value != API_VERSION {
        errors.push(error_at(
            "apiVersion",
            Some(api_version.referenced),
            format!(
                "unsupported apiVersion {:?}; this imagegate reads {API_VERSION}",
                api_version.value
            ),
        ));
    }
    if kind.value != expected_kind {
        errors.push(error_at(
            "kind",
            Some(kind.referenced),
            format!("kind must be {expected_kind}, found {:?}", kind.value),
        ));
    }
}

fn compile(
    doc: Document,
    read: &dyn Fn(&str) -> Result<String, String>,
) -> Result<Policy, PolicyErrors> {
    let mut errors = Vec::new();
    check_header(&doc.api_version, &doc.kind, KIND, &mut errors);
    if doc.metadata.name.value.trim().is_empty() {
        errors.push(error_at(
            "metadata.name",
            Some(doc.metadata.name.referenced),
            "name must not be empty",
        ));
    }
    let _ = doc.metadata.description;
    let spec = doc.spec.unwrap_or_default();

    let mut policy = Policy {
        name: doc.metadata.name.value,
        mode: spec.mode,
        ..Policy::default()
    };

    if let Some(ia) = spec.image_access {
        let mut namespace_list = |field: &str, list: &[Spanned<String>]| -> Vec<String> {
            let mut out = Vec::new();
            for (i, ns) in list.iter().enumerate() {
                match validate_path_component(&ns.value) {
                    Ok(()) => out.push(ns.value.clone()),
                    Err((kind, _)) => errors.push(error_at(
                        &format!("spec.imageAccess.{field}[{i}]"),
                        Some(ns.referenced),
                        format!("{:?} is not a Docker Hub namespace: {kind}", ns.value),
                    )),
                }
            }
            out
        };
        let org = namespace_list("organizationNamespaces", &ia.organization_namespaces);
        let verified = namespace_list("verifiedPublishers", &ia.verified_publishers);
        policy.namespaces = Namespaces::new(
            org.iter().map(String::as_str),
            verified.iter().map(String::as_str),
        );
        // Switched on with no list: Docker's default, everything but community.
        let mut allowed = bit(Category::Organization)
            | bit(Category::Official)
            | bit(Category::VerifiedPublisher);
        if let Some(list) = ia.allow {
            allowed = list
                .iter()
                .fold(bit(Category::Organization), |acc, c| acc | bit(c.value));
        }
        policy.image_access = ImageAccess {
            enabled: ia.enabled,
            allowed,
        };
    }

    if let Some(ra) = spec.registry_access {
        let mut scopes = Vec::new();
        for (i, entry) in ra.allow.iter().enumerate() {
            match RegistryScope::parse(&entry.value) {
                Ok(scope) => scopes.push(scope),
                Err(e) => errors.push(error_at(
                    &format!("spec.registryAccess.allow[{i}]"),
                    Some(entry.referenced),
                    e.to_string(),
                )),
            }
        }
        if ra.enabled {
            policy.registry_access = Some(RegistryAllowList::new(scopes));
        }
    }

    let mut rules = Vec::new();
    for (i, rule) in spec.rules.iter().enumerate() {
        let at = format!("spec.rules[{i}]");
        let (action, text) = match (&rule.value.allow, &rule.value.deny) {
            (Some(a), None) => (RuleAction::Allow, a),
            (None, Some(d)) => (RuleAction::Deny, d),
            (Some(_), Some(d)) => {
                errors.push(error_at(
                    &format!("{at}.deny"),
                    Some(d.referenced),
                    "a rule has either allow or deny, not both",
                ));
                continue;
            }
            (None, None) => {
                errors.push(error_at(
                    &at,
                    Some(rule.referenced),
                    "a rule needs allow: PATTERN or deny: PATTERN",
                ));
                continue;
            }
        };
        let field = match action {
            RuleAction::Allow => "allow",
            RuleAction::Deny => "deny",
        };
        if let Some(m) = &rule.value.message
            && m.value.trim().is_empty()
        {
            errors.push(error_at(
                &format!("{at}.message"),
                Some(m.referenced),
                "message must not be empty",
            ));
        }
        match ImagePattern::parse(&text.value) {
            Ok(pattern) => rules.push(Rule {
                action,
                pattern,
                message: rule.value.message.as_ref().map(|m| m.value.clone()),
            }),
            Err(e) => errors.push(error_at(
                &format!("{at}.{field}"),
                Some(text.referenced),
                e.to_string(),
            )),
        }
    }
    policy.rules = RuleSet::new(rules);
    policy.require_digest = spec.require.is_some_and(|r| r.digest);
    policy.break_glass = spec.break_glass.is_some_and(|b| b.enabled);

    if let Some(ex) = spec.exempt {
        let mut globs = |field: &str, list: &[Spanned<String>]| -> Vec<NameGlob> {
            let mut out = Vec::new();
            for (i, g) in list.iter().enumerate() {
                match NameGlob::parse(&g.value) {
                    Ok(glob) => out.push(glob),
                    Err(e) => errors.push(error_at(
                        &format!("spec.exempt.{field}[{i}]"),
                        Some(g.referenced),
                        e.to_string(),
                    )),
                }
            }
            out
        };
        policy.exempt_namespaces = globs("namespaces", &ex.namespaces);
        policy.exempt_users = globs("users", &ex.users);
    }

    compile_rego(&spec.rego, read, &mut policy, &mut errors);

    if errors.is_empty() {
        Ok(policy)
    } else {
        errors.sort_by_key(|e| (e.line, e.column));
        Err(PolicyErrors(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "apiVersion: imagegate.dev/v1\nkind: ImagePolicy\nmetadata:\n  name: corp\n";

    fn errors(spec: &str) -> Vec<PolicyError> {
        Policy::load(&format!("{HEAD}{spec}")).unwrap_err().0
    }

    #[test]
    fn case_unknown_field_names_path_and_line() {
        let e = errors("spec:\n  rules:\n    - allow: nginx\n    - dney: x\n");
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].path, "spec.rules[1].dney");
        assert_eq!(e[0].line, 8);
        assert!(
            e[0].message.contains("unknown field `dney`"),
            "{}",
            e[0].message
        );
    }

    #[test]
    fn case_every_unknown_field_wrong_type_and_bad_value_is_reported_in_one_pass() {
        let e = errors(
            "spec:\n  mdoe: warn\n  imageAccess:\n    enabled: sometimes\n    allow: [official, comunity]\n  rules:\n    - deny: Nginx\n      mesage: pin it\n  require: 3\n",
        );
        let found: Vec<(&str, u64, u64)> = e
            .iter()
            .map(|e| (e.path.as_str(), e.line, e.column))
            .collect();
        assert_eq!(
            found,
            [
                ("spec.mdoe", 6, 3),
                ("spec.imageAccess.enabled", 8, 14),
                ("spec.imageAccess.allow[1]", 9, 23),
                ("spec.rules[0].deny", 11, 13),
                ("spec.rules[0].mesage", 12, 7),
                ("spec.require", 13, 12),
            ],
            "{e:?}"
        );
        assert!(
            e[0].message
                .starts_with("unknown field `mdoe`, expected one of mode,")
        );
        assert_eq!(e[1].message, "expected true or false, found \"sometimes\"");
        assert!(e[2].message.starts_with("unknown category `comunity`"));
        assert!(e[3].message.starts_with("invalid pattern \"Nginx\""));
        assert_eq!(e[5].message, "expected a mapping, found 3");
    }

    #[test]
    fn case_a_field_of_the_wrong_shape_is_reported_once() {
        let e = errors("spec:\n  rules:\n    - deny: {a: b}\n    - allow: nginx\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].path, "spec.rules[0].deny");
        assert_eq!(e[0].message, "expected a string, found a mapping");
        let e = Policy::load("- a\n").unwrap_err().0;
        assert_eq!(e.len(), 1, "{e:?}");
        let e = Policy::load("kind: ImagePolicy\nspec: {mode: warm}\n")
            .unwrap_err()
            .0;
        let messages: Vec<&str> = e.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "missing field `apiVersion`",
                "missing field `metadata`",
                "unknown mode `warm`, expected one of enforce, warn, audit"
            ]
        );
    }

    #[test]
    fn case_syntax_errors_and_duplicate_keys_stay_one_error() {
        let e = errors("spec:\n  mode: warn\n  mode: audit\n  mdoe: x\n");
        assert_eq!(e.len(), 1, "{e:?}");
        let e = errors("spec: [\n");
        assert_eq!(e.len(), 1, "{e:?}");
    }

    #[test]
    fn case_wrong_type_names_path_and_line() {
        let e = errors("spec:\n  require:\n    digest: sometimes\n");
        assert_eq!(e[0].path, "spec.require.digest");
        assert_eq!(e[0].line, 7);
        let e = errors("spec:\n  mode: block\n");
        assert_eq!(e[0].path, "spec.mode");
        assert!(e[0].message.contains("enforce"), "{}", e[0].message);
    }

    #[test]
    fn case_every_bad_pattern_is_reported() {
        let e = errors(
            "spec:\n  registryAccess:\n    enabled: true\n    allow: [\"https://ghcr.io\"]\n  rules:\n    - deny: Foo/Bar/Baz\n    - {}\n    - allow: a\n      deny: b\n",
        );
        let paths: Vec<&str> = e.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.registryAccess.allow[0]",
                "spec.rules[0].deny",
                "spec.rules[1]",
                "spec.rules[2].deny"
            ]
        );
        assert!(e.iter().all(|e| e.line > 0));
    }

    #[test]
    fn case_version_and_kind_are_checked() {
        let e = Policy::load("apiVersion: v2\nkind: Policy\nmetadata: {name: x}\n")
            .unwrap_err()
            .0;
        assert_eq!(e[0].path, "apiVersion");
        assert_eq!(e[1].path, "kind");
    }

    #[test]
    fn case_json_is_accepted() {
        let p = Policy::load(r#"{"apiVersion": "imagegate.dev/v1", "kind": "ImagePolicy", "metadata": {"name": "j"}, "spec": {"mode": "warn"}}"#).unwrap();
        assert_eq!(p.mode, Mode::Warn);
        let e = Policy::load(r#"{"apiVersion": "imagegate.dev/v1", "kind": "ImagePolicy", "metadata": {"name": "j"}, "spec": {"mdoe": "warn"}}"#).unwrap_err();
        assert_eq!(e.0[0].path, "spec.mdoe");
        assert_eq!(e.0[0].line, 1);
    }

    #[test]
    fn case_empty_and_garbage_are_errors() {
        assert_eq!(
            Policy::load("").unwrap_err().0[0].message,
            "policy is empty"
        );
        assert!(Policy::load("\0\u{1}").is_err());
        assert!(Policy::load("[").is_err());
        assert!(Policy::load("- a\n- b\n").is_err());
    }

    #[test]
    fn case_image_access_defaults_follow_docker() {
        let p = Policy::load(&format!("{HEAD}spec:\n  imageAccess:\n    enabled: true\n")).unwrap();
        assert!(!p.image_access.allows(Category::Community));
        assert!(p.image_access.allows(Category::Official));
        let p = Policy::load(&format!(
            "{HEAD}spec:\n  imageAccess:\n    enabled: true\n    allow: [community]\n"
        ))
        .unwrap();
        assert!(p.image_access.allows(Category::Organization));
        assert!(!p.image_access.allows(Category::Official));
    }
}
