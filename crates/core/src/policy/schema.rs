//! The policy document's shape, checked over its YAML tree so that every
//! unknown field, wrong type and bad value is found in one pass, where serde
//! stops at the first. Used only for a document serde refuses: a valid
//! document is read by serde alone, so this walk cannot change what loads.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Location, Spanned};

use super::{
    BreakGlassDoc, Document, ExemptDoc, ImageAccessDoc, Metadata, PolicyError, RegistryAccessDoc,
    RequireDoc, RuleDoc, Spec, error_at,
};
use crate::decision::Mode;
use crate::dockerhub::Category;

/// Every problem of a document whose typed parse failed with `first`, in
/// document order: the shape's problems, then those of what could be read
/// (patterns, names, Rego files), with `first` kept if the walk missed it.
pub(super) fn problems(
    text: &str,
    first: PolicyError,
    read: &dyn Fn(&str) -> Result<String, String>,
) -> Vec<PolicyError> {
    let Some(root) = tree(text) else {
        // Not even a YAML tree (a syntax error, a duplicate key): serde's
        // error is the whole story.
        return vec![first];
    };
    let mut walk = Walk { errors: Vec::new() };
    let doc = walk.document(&root);
    let mut errors = walk.errors;
    if let Err(more) = super::compile(doc, read) {
        errors.extend(more.0);
    }
    let covered = errors
        .iter()
        .any(|e| e.path == first.path || (e.line, e.column) == (first.line, first.column));
    if !covered {
        errors.push(first);
    }
    errors.sort_by_key(|e| (e.line, e.column));
    errors.dedup();
    errors
}

/// A YAML value and where it is.
struct Node {
    value: Value,
    at: Location,
    defined: Location,
}

enum Value {
    Null,
    /// A string, as the parser unquoted it.
    Str(String),
    /// Any other scalar (a number, a boolean), as written in the source.
    Other {
        raw: String,
        boolean: Option<bool>,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Value {
    /// What the value is, for a message: `null`, `"sometimes"`, `3`, a sequence.
    fn shown(&self) -> String {
        match self {
            Value::Null => "null".to_owned(),
            Value::Str(s) => format!("{s:?}"),
            Value::Other { raw, .. } => raw.escape_debug().to_string(),
            Value::Seq(_) => "a sequence".to_owned(),
            Value::Map(_) => "a mapping".to_owned(),
        }
    }
}

/// The document as a tree; `None` when it does not parse as YAML.
fn tree(text: &str) -> Option<Node> {
    let options = serde_saphyr::options! {
        with_snippet: false,
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
    };
    let root = serde_saphyr::from_str_with_options::<Spanned<Raw>>(text, options).ok()?;
    Some(node(root, text))
}

/// A tree as the visitor builds it, before locations are attached.
enum Raw {
    Null,
    Str(String),
    Other(String, Option<bool>),
    Seq(Vec<Spanned<Raw>>),
    Map(Vec<(Spanned<Raw>, Spanned<Raw>)>),
}

fn node(spanned: Spanned<Raw>, text: &str) -> Node {
    let Spanned {
        value,
        referenced: at,
        defined,
    } = spanned;
    let value = match value {
        Raw::Null => Value::Null,
        Raw::Str(s) => Value::Str(s),
        Raw::Other(shown, boolean) => {
            // The source's own spelling (`1.50`, `yes`), as serde reads a
            // string field from it.
            let span = at.span();
            let raw = span
                .byte_offset()
                .zip(span.byte_len())
                .and_then(|(start, len)| {
                    let start = usize::try_from(start).ok()?;
                    let end = start.checked_add(usize::try_from(len).ok()?)?;
                    text.get(start..end)
                })
                .filter(|raw| !raw.is_empty())
                .map_or(shown, str::to_owned);
            Value::Other { raw, boolean }
        }
        Raw::Seq(items) => Value::Seq(items.into_iter().map(|n| node(n, text)).collect()),
        Raw::Map(entries) => Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| (node(k, text), node(v, text)))
                .collect(),
        ),
    };
    Node { value, at, defined }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Raw, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_unit<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }

    fn visit_none<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        Raw::deserialize(d)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Raw, E> {
        Ok(Raw::Other(b.to_string(), Some(b)))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Raw, E> {
        Ok(Raw::Other(n.to_string(), None))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Raw, E> {
        Ok(Raw::Other(n.to_string(), None))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Raw, E> {
        Ok(Raw::Other(n.to_string(), None))
    }

    fn visit_str<E>(self, s: &str) -> Result<Raw, E> {
        Ok(Raw::Str(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Raw, E> {
        Ok(Raw::Str(s))
    }

    fn visit_bytes<E: de::Error>(self, b: &[u8]) -> Result<Raw, E> {
        Ok(Raw::Str(String::from_utf8_lossy(b).into_owned()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Raw>>()? {
            items.push(item);
        }
        Ok(Raw::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<Raw>>()? {
            entries.push((key, map.next_value::<Spanned<Raw>>()?));
        }
        Ok(Raw::Map(entries))
    }
}

/// The fields of one mapping, looked up by name.
struct Fields<'n> {
    entries: Vec<(String, &'n Node)>,
    at: Location,
    /// Whether a field was unknown (and reported).
    had_unknown: bool,
}

impl<'n> Fields<'n> {
    fn get(&self, name: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| *v)
    }
}

/// Reads the document leniently: a field that is wrong is reported and left
/// out, so what remains can still be compiled for its own problems.
struct Walk {
    errors: Vec<PolicyError>,
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

impl Walk {
    fn error(&mut self, path: &str, at: Location, message: impl Into<String>) {
        self.errors.push(error_at(path, Some(at), message));
    }

    fn wrong(&mut self, path: &str, node: &Node, expected: &str) {
        let message = format!("expected {expected}, found {}", node.value.shown());
        self.error(path, node.at, message);
    }

    /// The mapping's fields, each unknown one reported. `None` (reported)
    /// when `node` is not a mapping.
    fn fields<'n>(&mut self, node: &'n Node, path: &str, known: &[&str]) -> Option<Fields<'n>> {
        let Value::Map(entries) = &node.value else {
            self.wrong(path, node, "a mapping");
            return None;
        };
        let mut fields = Vec::new();
        let mut had_unknown = false;
        for (key, value) in entries {
            let name = match &key.value {
                Value::Str(s) => s.clone(),
                Value::Other { raw, .. } => raw.clone(),
                other => other.shown(),
            };
            if known.contains(&name.as_str()) {
                fields.push((name, value));
            } else {
                let message = format!(
                    "unknown field `{name}`, expected one of {}",
                    known.join(", ")
                );
                self.error(&join(path, &name), key.at, message);
                had_unknown = true;
            }
        }
        Some(Fields {
            entries: fields,
            at: node.at,
            had_unknown,
        })
    }

    /// An optional section: absent or null is `None`.
    fn section<'n>(
        &mut self,
        fields: &Fields<'n>,
        path: &str,
        name: &str,
        known: &[&str],
    ) -> Option<Fields<'n>> {
        let node = fields
            .get(name)
            .filter(|n| !matches!(n.value, Value::Null))?;
        self.fields(node, &join(path, name), known)
    }

    fn required<'n>(&mut self, fields: &Fields<'n>, path: &str, name: &str) -> Option<&'n Node> {
        let found = fields.get(name);
        if found.is_none() {
            let message = format!("missing field `{name}`");
            self.error(path, fields.at, message);
        }
        found
    }

    fn string(&mut self, node: &Node, path: &str) -> Option<Spanned<String>> {
        let value = match &node.value {
            Value::Str(s) => s.clone(),
            Value::Other { raw, .. } => raw.clone(),
            _ => {
                self.wrong(path, node, "a string");
                return None;
            }
        };
        Some(Spanned {
            value,
            referenced: node.at,
            defined: node.defined,
        })
    }

    fn field_string(
        &mut self,
        fields: &Fields<'_>,
        path: &str,
        name: &str,
    ) -> Option<Spanned<String>> {
        let node = fields.get(name)?;
        self.string(node, &join(path, name))
    }

    fn boolean(&mut self, fields: &Fields<'_>, path: &str, name: &str) -> bool {
        let Some(node) = fields.get(name) else {
            return false;
        };
        let parsed = match &node.value {
            Value::Other { boolean, .. } => *boolean,
            Value::Str(s) => yaml_bool(s),
            _ => None,
        };
        parsed.unwrap_or_else(|| {
            self.wrong(&join(path, name), node, "true or false");
            false
        })
    }

    /// A list of strings; absent is empty.
    fn strings(&mut self, fields: &Fields<'_>, path: &str, name: &str) -> Vec<Spanned<String>> {
        let path = join(path, name);
        self.list(fields.get(name), &path)
            .into_iter()
            .enumerate()
            .filter_map(|(i, item)| self.string(item, &format!("{path}[{i}]")))
            .collect()
    }

    fn list<'n>(&mut self, node: Option<&'n Node>, path: &str) -> Vec<&'n Node> {
        match node.map(|n| (n, &n.value)) {
            None => Vec::new(),
            Some((_, Value::Seq(items))) => items.iter().collect(),
            Some((n, _)) => {
                self.wrong(path, n, "a sequence");
                Vec::new()
            }
        }
    }

    fn document(&mut self, root: &Node) -> Document {
        let known = ["apiVersion", "kind", "metadata", "spec"];
        // What is missing or wrong here is reported once, and stood in for
        // with a value that raises nothing more.
        let stand_in = |value: &str| Spanned {
            value: value.to_owned(),
            referenced: root.at,
            defined: root.defined,
        };
        let Some(fields) = self.fields(root, "", &known) else {
            return Document {
                api_version: stand_in(super::API_VERSION),
                kind: stand_in(super::KIND),
                metadata: Metadata {
                    name: stand_in("-"),
                    description: None,
                },
                spec: None,
            };
        };
        let api_version = self
            .required(&fields, "", "apiVersion")
            .and_then(|n| self.string(n, "apiVersion"))
            .unwrap_or_else(|| stand_in(super::API_VERSION));
        let kind = self
            .required(&fields, "", "kind")
            .and_then(|n| self.string(n, "kind"))
            .unwrap_or_else(|| stand_in(super::KIND));
        let mut name = None;
        let mut description = None;
        if let Some(node) = self.required(&fields, "", "metadata")
            && let Some(meta) = self.fields(node, "metadata", &["name", "description"])
        {
            name = self
                .required(&meta, "metadata", "name")
                .and_then(|n| self.string(n, "metadata.name"));
            description = self
                .field_string(&meta, "metadata", "description")
                .map(|d| d.value);
        }
        let spec = fields
            .get("spec")
            .filter(|n| !matches!(n.value, Value::Null))
            .and_then(|n| self.spec(n));
        Document {
            api_version,
            kind,
            metadata: Metadata {
                name: name.unwrap_or_else(|| stand_in("-")),
                description,
            },
            spec,
        }
    }

    fn spec(&mut self, node: &Node) -> Option<Spec> {
        let known = [
            "mode",
            "imageAccess",
            "registryAccess",
            "rules",
            "require",
            "exempt",
            "breakGlass",
            "rego",
        ];
        let p = "spec";
        let fields = self.fields(node, p, &known)?;
        let mut spec = Spec::default();
        if let Some(mode) = self.field_string(&fields, p, "mode") {
            match [Mode::Enforce, Mode::Warn, Mode::Audit]
                .into_iter()
                .find(|m| m.as_str() == mode.value)
            {
                Some(m) => spec.mode = m,
                None => self.error(
                    "spec.mode",
                    mode.referenced,
                    format!(
                        "unknown mode `{}`, expected one of enforce, warn, audit",
                        mode.value
                    ),
                ),
            }
        }
        let ia_known = [
            "enabled",
            "allow",
            "organizationNamespaces",
            "verifiedPublishers",
        ];
        if let Some(ia) = self.section(&fields, p, "imageAccess", &ia_known) {
            let at = "spec.imageAccess";
            let allow = ia
                .get("allow")
                .filter(|n| !matches!(n.value, Value::Null))
                .map(|_| {
                    let names = self.strings(&ia, at, "allow");
                    names
                        .into_iter()
                        .enumerate()
                        .filter_map(|(i, c)| self.category(c, i))
                        .collect()
                });
            spec.image_access = Some(ImageAccessDoc {
                enabled: self.boolean(&ia, at, "enabled"),
                allow,
                organization_namespaces: self.strings(&ia, at, "organizationNamespaces"),
                verified_publishers: self.strings(&ia, at, "verifiedPublishers"),
            });
        }
        if let Some(ra) = self.section(&fields, p, "registryAccess", &["enabled", "allow"]) {
            let at = "spec.registryAccess";
            spec.registry_access = Some(RegistryAccessDoc {
                enabled: self.boolean(&ra, at, "enabled"),
                allow: self.strings(&ra, at, "allow"),
            });
        }
        for (i, rule) in self
            .list(fields.get("rules"), "spec.rules")
            .into_iter()
            .enumerate()
        {
            let at = format!("spec.rules[{i}]");
            if let Some(r) = self.fields(rule, &at, &["allow", "deny", "message"]) {
                let value = RuleDoc {
                    allow: self.field_string(&r, &at, "allow"),
                    deny: self.field_string(&r, &at, "deny"),
                    message: self.field_string(&r, &at, "message"),
                };
                // A pattern of the wrong type, or a misspelt field, is
                // reported already; the rule is not also "without allow or
                // deny".
                let unreadable = (r.get("allow").is_some() && value.allow.is_none())
                    || (r.get("deny").is_some() && value.deny.is_none())
                    || (r.had_unknown && value.allow.is_none() && value.deny.is_none());
                if unreadable {
                    continue;
                }
                spec.rules.push(Spanned {
                    value,
                    referenced: rule.at,
                    defined: rule.defined,
                });
            }
        }
        if let Some(req) = self.section(&fields, p, "require", &["digest"]) {
            spec.require = Some(RequireDoc {
                digest: self.boolean(&req, "spec.require", "digest"),
            });
        }
        if let Some(ex) = self.section(&fields, p, "exempt", &["namespaces", "users"]) {
            spec.exempt = Some(ExemptDoc {
                namespaces: self.strings(&ex, "spec.exempt", "namespaces"),
                users: self.strings(&ex, "spec.exempt", "users"),
            });
        }
        if let Some(bg) = self.section(&fields, p, "breakGlass", &["enabled"]) {
            spec.break_glass = Some(BreakGlassDoc {
                enabled: self.boolean(&bg, "spec.breakGlass", "enabled"),
            });
        }
        spec.rego = self.strings(&fields, p, "rego");
        Some(spec)
    }

    fn category(&mut self, name: Spanned<String>, i: usize) -> Option<Spanned<Category>> {
        let known = [
            Category::Official,
            Category::VerifiedPublisher,
            Category::Organization,
            Category::Community,
        ];
        match known.into_iter().find(|c| c.code() == name.value) {
            Some(c) => Some(Spanned {
                value: c,
                referenced: name.referenced,
                defined: name.defined,
            }),
            None => {
                let message = format!(
                    "unknown category `{}`, expected one of {}",
                    name.value,
                    known.map(Category::code).join(", ")
                );
                self.error(
                    &format!("spec.imageAccess.allow[{i}]"),
                    name.referenced,
                    message,
                );
                None
            }
        }
    }
}

/// A boolean written as text, read as the typed parse reads it (YAML 1.1's
/// words, any case).
fn yaml_bool(s: &str) -> Option<bool> {
    let t = s.trim();
    let is = |words: &[&str]| words.iter().any(|w| t.eq_ignore_ascii_case(w));
    if is(&["true", "yes", "y", "on"]) {
        Some(true)
    } else if is(&["false", "no", "n", "off"]) {
        Some(false)
    } else {
        None
    }
}
