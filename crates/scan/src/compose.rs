//! Where images live in a Compose file: each service's `image`, interpolated
//! as Compose does (`$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
//! `${VAR:?err}`, `${VAR?err}`, `${VAR:+alt}`, `${VAR+alt}`, `$$`), and each
//! service's `build` (context, `dockerfile`, `dockerfile_inline`, `args`) so
//! its Dockerfile can be scanned too. A variable with no value and no default
//! is reported as unresolved, never replaced by an empty string.
//!
//! ```
//! use imagegate_scan::{compose::services, yaml::documents, Value};
//! let doc = &documents("services:\n  web:\n    image: nginx:${TAG:-1.27}\n").unwrap()[0];
//! let found = services(doc, &|_| None).unwrap();
//! assert_eq!(found.images[0].value, Value::Image("nginx:1.27".into()));
//! assert_eq!((found.images[0].line, found.images[0].column), (3, 12));
//! ```

use crate::Value;
use crate::yaml::{Node, Value as YamlValue};

/// A service's image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceImage {
    /// The service's name.
    pub service: String,
    /// 1-based line of the image value.
    pub line: usize,
    /// 1-based column of the image value.
    pub column: usize,
    /// The value as written.
    pub raw: String,
    /// The value after interpolation.
    pub value: Value,
}

/// Where a service's image is built from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Build {
    /// The service's name.
    pub service: String,
    /// 1-based line of the `build` value.
    pub line: usize,
    /// 1-based column of the `build` value.
    pub column: usize,
    /// The build context as written, interpolated (relative to the Compose
    /// file's directory unless absolute). `None` when it is remote (a Git or
    /// HTTP URL): there is no local Dockerfile to scan.
    pub context: Option<Value>,
    /// The Dockerfile's path (relative to the context unless absolute),
    /// interpolated; `Dockerfile` when not given.
    pub dockerfile: Value,
    /// A `dockerfile_inline` text, with the line and column it starts at.
    pub inline: Option<(String, usize, usize)>,
    /// `build.args`, interpolated; arguments with no value are left out.
    pub args: Vec<(String, String)>,
}

/// What a Compose file names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Services {
    /// How many services the file has.
    pub services: usize,
    /// The images services pull, in file order. A service that is built and
    /// whose `pull_policy` is `build` or `never` pulls nothing: its `image`
    /// only names the result.
    pub images: Vec<ServiceImage>,
    /// The services that are built.
    pub builds: Vec<Build>,
}

/// A Compose file that is not shaped as Compose requires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShapeError {
    /// Where: `services.web.image`.
    pub path: String,
    /// 1-based line of the offending value.
    pub line: usize,
    /// 1-based column of the offending value.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for ShapeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Whether a document looks like a Compose file: a mapping with a
/// `services` mapping and no Kubernetes `apiVersion`/`kind`.
pub fn is_compose(document: &Node) -> bool {
    matches!(
        document.get("services").map(|s| &s.value),
        Some(YamlValue::Map(_))
    ) && document.get("kind").is_none()
        && document.get("apiVersion").is_none()
}

/// The images and builds of a Compose document. `env` looks a variable up
/// (the environment, then `.env`, as the caller decides).
pub fn services(
    document: &Node,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Services, ShapeError> {
    let mut found = Services::default();
    let entries = match document.get("services").map(|s| (s, &s.value)) {
        None | Some((_, YamlValue::Null)) => return Ok(found),
        Some((_, YamlValue::Map(entries))) => entries,
        Some((node, _)) => return Err(shape("services", node, "must be a mapping")),
    };
    for (name, service) in entries {
        found.services += 1;
        let at = |key: &str| format!("services.{name}.{key}");
        if !matches!(service.value, YamlValue::Map(_) | YamlValue::Null) {
            return Err(shape(
                &format!("services.{name}"),
                service,
                "must be a mapping",
            ));
        }
        let build = match service.get("build") {
            None => None,
            Some(b) => build(name, b, env)?,
        };
        let pull_policy = service.get("pull_policy").and_then(Node::as_str);
        let pulls = build.is_none() || !matches!(pull_policy, Some("build" | "never"));
        match service.get("image") {
            None => {}
            Some(node) if pulls => {
                let raw = node
                    .as_str()
                    .ok_or_else(|| shape(&at("image"), node, "must be a string"))?;
                found.images.push(ServiceImage {
                    service: name.clone(),
                    line: node.line,
                    column: node.column,
                    raw: raw.to_owned(),
                    value: interpolate(raw, env),
                });
            }
            Some(_) => {}
        }
        found.builds.extend(build);
    }
    Ok(found)
}

fn build(
    service: &str,
    node: &Node,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Build>, ShapeError> {
    let path = format!("services.{service}.build");
    let text = |key: &str| -> Result<Option<&Node>, ShapeError> {
        match node.get(key) {
            None => Ok(None),
            Some(n) if n.as_str().is_some() => Ok(Some(n)),
            Some(n) => Err(shape(&format!("{path}.{key}"), n, "must be a string")),
        }
    };
    let (context, dockerfile, inline) = match &node.value {
        YamlValue::String(context) => (Some(context.as_str()), None, None),
        YamlValue::Map(_) => (
            text("context")?.and_then(Node::as_str),
            text("dockerfile")?.and_then(Node::as_str),
            text("dockerfile_inline")?,
        ),
        YamlValue::Null => return Ok(None),
        _ => return Err(shape(&path, node, "must be a string or a mapping")),
    };
    let context = interpolate(context.unwrap_or("."), env);
    let remote = matches!(&context, Value::Image(c) if is_remote(c));
    Ok(Some(Build {
        service: service.to_owned(),
        line: node.line,
        column: node.column,
        context: (!remote).then_some(context),
        dockerfile: interpolate(dockerfile.unwrap_or("Dockerfile"), env),
        inline: inline.and_then(|n| Some((n.as_str()?.to_owned(), n.line, n.column))),
        args: build_args(&path, node.get("args"), env)?,
    }))
}

/// A remote build context: a Git repository or an HTTP(S) tarball.
fn is_remote(context: &str) -> bool {
    context.contains("://") || context.starts_with("git@") || context.starts_with("github.com/")
}

fn build_args(
    path: &str,
    args: Option<&Node>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, ShapeError> {
    let mut out = Vec::new();
    let value_of = |node: &Node| -> Option<String> {
        match &node.value {
            YamlValue::String(s) => match interpolate(s, env) {
                Value::Image(v) => Some(v),
                Value::Unresolved(_) => None,
            },
            YamlValue::Number(n) => Some(n.to_string()),
            YamlValue::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    };
    match args.map(|a| (a, &a.value)) {
        None | Some((_, YamlValue::Null)) => {}
        Some((_, YamlValue::Map(entries))) => {
            for (k, v) in entries {
                let value = match v.value {
                    YamlValue::Null => env(k),
                    _ => value_of(v),
                };
                out.extend(value.map(|v| (k.clone(), v)));
            }
        }
        Some((_, YamlValue::Seq(items))) => {
            for item in items {
                let Some(text) = item.as_str() else {
                    return Err(shape(
                        &format!("{path}.args"),
                        item,
                        "must be KEY=VALUE strings",
                    ));
                };
                let pair = match text.split_once('=') {
                    Some((k, v)) => match interpolate(v, env) {
                        Value::Image(v) => Some((k.to_owned(), v)),
                        Value::Unresolved(_) => None,
                    },
                    None => env(text).map(|v| (text.to_owned(), v)),
                };
                out.extend(pair);
            }
        }
        Some((node, _)) => {
            return Err(shape(
                &format!("{path}.args"),
                node,
                "must be a mapping or a list",
            ));
        }
    }
    Ok(out)
}

fn shape(path: &str, node: &Node, message: &str) -> ShapeError {
    ShapeError {
        path: path.to_owned(),
        line: node.line,
        column: node.column,
        message: message.to_owned(),
    }
}

/// Interpolates Compose variables in `text`. `${VAR:?err}` and `${VAR?err}`
/// with no value, and a bare `$VAR`/`${VAR}` with no value, are unresolved.
///
/// ```
/// use imagegate_scan::{compose::interpolate, Value};
/// let env = |k: &str| (k == "REG").then(|| "ghcr.io".to_owned());
/// assert_eq!(interpolate("${REG}/app:${TAG-1}", &env), Value::Image("ghcr.io/app:1".into()));
/// assert_eq!(interpolate("$$HOME/${X:?set X}", &env), Value::Unresolved(vec!["X".into()]));
/// ```
pub fn interpolate(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Value {
    let mut missing = Vec::new();
    let out = expand(text, env, &mut missing);
    if missing.is_empty() {
        Value::Image(out)
    } else {
        Value::Unresolved(missing)
    }
}

fn expand(text: &str, env: &dyn Fn(&str) -> Option<String>, missing: &mut Vec<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(rest.get(..at).unwrap_or_default());
        let after = rest.get(at + 1..).unwrap_or_default();
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = after.strip_prefix('{') {
            let Some(end) = closing_brace(r) else {
                // An unterminated `${`: Compose refuses the file.
                missing.push(format!("${{{r}"));
                return out;
            };
            let inner = r.get(..end).unwrap_or_default();
            rest = r.get(end + 1..).unwrap_or_default();
            braced(inner, env, missing, &mut out);
        } else {
            let len = name_len(after);
            if len == 0 {
                out.push('$');
                rest = after;
            } else {
                let name = after.get(..len).unwrap_or_default();
                match env(name) {
                    Some(v) => out.push_str(&v),
                    None => missing.push(name.to_owned()),
                }
                rest = after.get(len..).unwrap_or_default();
            }
        }
    }
    out.push_str(rest);
    out
}

/// `${inner}`: a name and an optional operator.
fn braced(
    inner: &str,
    env: &dyn Fn(&str) -> Option<String>,
    missing: &mut Vec<String>,
    out: &mut String,
) {
    let len = name_len(inner);
    let name = inner.get(..len).unwrap_or_default();
    let op = inner.get(len..).unwrap_or_default();
    let value = env(name);
    let non_empty = value.as_deref().is_some_and(|v| !v.is_empty());
    let (set, operand) = if let Some(o) = op.strip_prefix(':') {
        (non_empty, o)
    } else {
        (value.is_some(), op)
    };
    match operand.chars().next() {
        None if op.is_empty() && len > 0 => match value {
            Some(v) => out.push_str(&v),
            None => missing.push(name.to_owned()),
        },
        Some('-') if len > 0 => match value.filter(|_| set) {
            Some(v) => out.push_str(&v),
            None => out.push_str(&expand(operand.get(1..).unwrap_or_default(), env, missing)),
        },
        Some('+') if len > 0 => {
            if set {
                out.push_str(&expand(operand.get(1..).unwrap_or_default(), env, missing));
            }
        }
        Some('?') if len > 0 => match value.filter(|_| set) {
            Some(v) => out.push_str(&v),
            None => missing.push(name.to_owned()),
        },
        // `${}`, `${1X}`, `${X%y}`: not a substitution Compose accepts.
        _ => missing.push(format!("${{{inner}}}")),
    }
}

/// The index of the `}` closing a `${`, counting nested `${…}`.
fn closing_brace(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    let bytes = text.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        match b {
            b'{' if i > 0 && bytes.get(i - 1) == Some(&b'$') => depth += 1,
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
    }
    None
}

fn name_len(text: &str) -> usize {
    let mut len = 0;
    for (i, c) in text.char_indices() {
        let ok = c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit());
        if !ok {
            break;
        }
        len = i + 1;
    }
    len
}

/// The variables of a `.env` file (Compose's format: `KEY=VALUE`, `export`
/// prefixes, `#` comments, single quotes literal, double quotes with
/// escapes, unquoted values trimmed and cut at ` #`).
///
/// ```
/// use imagegate_scan::compose::env_file;
/// let vars = env_file("# c\nexport TAG=1.27 # pinned\nREG='ghcr.io'\nEMPTY=\n");
/// assert_eq!(vars, [("TAG".into(), "1.27".into()), ("REG".into(), "ghcr.io".into()), ("EMPTY".into(), String::new())]);
/// ```
pub fn env_file(text: &str) -> Vec<(String, String)> {
    let mut vars = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").map_or(line, str::trim_start);
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if key.is_empty() {
            continue;
        }
        let value = value.trim();
        let value = if let Some(v) = value.strip_prefix('\'') {
            v.split_once('\'').map_or(v, |(inner, _)| inner).to_owned()
        } else if let Some(v) = value.strip_prefix('"') {
            let inner = v.rsplit_once('"').map_or(v, |(inner, _)| inner);
            inner
                .replace("\\n", "\n")
                .replace("\\\"", "\"")
                .replace("\\\\", "\\")
        } else {
            value
                .split_once(" #")
                .map_or(value, |(v, _)| v)
                .trim_end()
                .to_owned()
        };
        vars.push((key.to_owned(), value));
    }
    vars
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::documents;

    fn env(k: &str) -> Option<String> {
        match k {
            "TAG" => Some("1.27".into()),
            "EMPTY" => Some(String::new()),
            "REG" => Some("ghcr.io/corp".into()),
            _ => None,
        }
    }

    fn i(text: &str) -> Value {
        interpolate(text, &env)
    }

    fn image(s: &str) -> Value {
        Value::Image(s.into())
    }

    #[test]
    fn case_interpolation_follows_compose() {
        assert_eq!(i("nginx:${TAG}"), image("nginx:1.27"));
        assert_eq!(i("nginx:$TAG"), image("nginx:1.27"));
        assert_eq!(i("$REG/app"), image("ghcr.io/corp/app"));
        assert_eq!(i("nginx:${NOPE:-1.25}"), image("nginx:1.25"));
        assert_eq!(i("nginx:${EMPTY:-1.25}"), image("nginx:1.25"));
        assert_eq!(i("nginx${EMPTY-:1.25}"), image("nginx"));
        assert_eq!(i("nginx:${NOPE-1.25}"), image("nginx:1.25"));
        assert_eq!(i("nginx${TAG:+:pinned}"), image("nginx:pinned"));
        assert_eq!(i("nginx${NOPE:+:pinned}"), image("nginx"));
        assert_eq!(i("${NOPE:-${REG}}/app"), image("ghcr.io/corp/app"));
        assert_eq!(i("a$$b"), image("a$b"));
        assert_eq!(i("a$"), image("a$"));
        assert_eq!(i("${TAG:?set TAG}"), image("1.27"));
    }

    #[test]
    fn case_missing_values_are_unresolved_not_empty() {
        assert_eq!(i("nginx:${NOPE}"), Value::Unresolved(vec!["NOPE".into()]));
        assert_eq!(i("$NOPE"), Value::Unresolved(vec!["NOPE".into()]));
        assert_eq!(
            i("${NOPE:?must set}"),
            Value::Unresolved(vec!["NOPE".into()])
        );
        assert_eq!(
            i("${EMPTY:?must set}"),
            Value::Unresolved(vec!["EMPTY".into()])
        );
        assert_eq!(i("${EMPTY?must set}"), image(""));
        assert_eq!(
            i("${A}/${B}"),
            Value::Unresolved(vec!["A".into(), "B".into()])
        );
        assert_eq!(i("${TAG"), Value::Unresolved(vec!["${TAG".into()]));
        assert_eq!(i("${1X}"), Value::Unresolved(vec!["${1X}".into()]));
        assert_eq!(i("${X%y}"), Value::Unresolved(vec!["${X%y}".into()]));
    }

    #[test]
    fn case_services_images_and_builds() {
        let text = "\
services:
  web:
    image: \"nginx:${TAG}\"
  app:
    build:
      context: ./app
      dockerfile: Containerfile
      args:
        BASE: alpine:${TAG}
        FROM_ENV:
    image: corp/app:dev
  job:
    build: ./job
    image: corp/job
    pull_policy: build
  remote:
    build: https://github.com/corp/x.git#main
  empty:
";
        let doc = &documents(text).unwrap()[0];
        assert!(is_compose(doc));
        let found = services(doc, &env).unwrap();
        assert_eq!(found.services, 5);
        let images: Vec<(&str, usize, usize, &Value)> = found
            .images
            .iter()
            .map(|i| (i.service.as_str(), i.line, i.column, &i.value))
            .collect();
        assert_eq!(
            images,
            [
                ("web", 3, 12, &image("nginx:1.27")),
                ("app", 11, 12, &image("corp/app:dev"))
            ]
        );
        assert_eq!(found.builds.len(), 3);
        let app = &found.builds[0];
        assert_eq!(app.context, Some(image("./app")));
        assert_eq!(app.dockerfile, image("Containerfile"));
        assert_eq!(app.args, [("BASE".into(), "alpine:1.27".into())]);
        assert_eq!(found.builds[1].context, Some(image("./job")));
        assert_eq!(found.builds[1].dockerfile, image("Dockerfile"));
        assert_eq!(found.builds[2].context, None);
    }

    #[test]
    fn case_misshapen_services_say_where() {
        let doc = &documents("services:\n  web:\n    image: [a]\n").unwrap()[0];
        let e = services(doc, &env).unwrap_err();
        assert_eq!(e.to_string(), "services.web.image: must be a string");
        assert_eq!((e.line, e.column), (3, 12));
        let doc = &documents("services: [a]\n").unwrap()[0];
        assert_eq!(services(doc, &env).unwrap_err().path, "services");
    }

    #[test]
    fn case_kubernetes_documents_are_not_compose() {
        let doc = &documents("apiVersion: v1\nkind: Service\nservices: {}\n").unwrap()[0];
        assert!(!is_compose(doc));
    }
}
