//! Patterns over normalised references: image patterns for rules, registry
//! scopes for the allow-list, and name globs for exemptions. Hosts match label
//! by label without regard to case, paths component by component; `*` never
//! crosses a `.` in a host or a `/` in a path. Nothing here looks at raw strings.

use std::fmt;

use crate::reference::{
    self, DOCKER_HUB, Digest, OFFICIAL_NAMESPACE, Reference, is_docker_hub_host,
};

/// A pattern that does not compile: what is wrong, in the words of the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid pattern {}: {reason}", reference::quote_input(.pattern))]
pub struct PatternError {
    /// The pattern as written.
    pub pattern: String,
    /// What is wrong.
    pub reason: String,
}

fn pattern_error(pattern: &str, reason: impl Into<String>) -> PatternError {
    PatternError {
        pattern: pattern.to_owned(),
        reason: reason.into(),
    }
}

/// One glob over a single host label, path component or tag: `*` matches any
/// run of characters within it (possibly none).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Glob {
    /// The literal pieces between stars; a literal glob has exactly one.
    pieces: Box<[Box<str>]>,
}

impl Glob {
    fn new(text: &str) -> Glob {
        Glob {
            pieces: text.split('*').map(Box::from).collect(),
        }
    }

    fn literal(&self) -> Option<&str> {
        match &*self.pieces {
            [only] => Some(only),
            _ => None,
        }
    }

    /// Whether `subject` matches; `fold` compares ASCII letters without case.
    fn matches(&self, subject: &str, fold: bool) -> bool {
        let eq = |a: &[u8], b: &[u8]| {
            if fold {
                a.eq_ignore_ascii_case(b)
            } else {
                a == b
            }
        };
        let s = subject.as_bytes();
        let Some((first, rest)) = self.pieces.split_first() else {
            return s.is_empty();
        };
        let Some((last, middle)) = rest.split_last() else {
            return eq(first.as_bytes(), s);
        };
        let (first, last) = (first.as_bytes(), last.as_bytes());
        if s.len() < first.len() + last.len() {
            return false;
        }
        let (head, tail) = s.split_at(first.len());
        let (mut body, end) = tail.split_at(tail.len() - last.len());
        if !eq(head, first) || !eq(end, last) {
            return false;
        }
        for piece in middle {
            let piece = piece.as_bytes();
            match find(body, piece, &eq) {
                Some(at) => body = body.get(at + piece.len()..).unwrap_or_default(),
                None => return false,
            }
        }
        true
    }
}

fn find(haystack: &[u8], needle: &[u8], eq: &impl Fn(&[u8], &[u8]) -> bool) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| eq(w, needle))
}

/// One element of a component-wise pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    /// Matches exactly one component.
    One(Glob),
    /// `**`: any number of components, none included.
    Many,
}

/// Matches `components` against `segments` as a whole, `**` absorbing any run.
/// Allocation-free: the classic wildcard walk with one backtrack point, which
/// is exact because every other segment consumes exactly one component.
fn match_components<'a, I>(segments: &[Segment], mut comps: I, fold: bool) -> bool
where
    I: DoubleEndedIterator<Item = &'a str> + Clone,
{
    // Most candidates fail on their last component: check it before walking.
    if let (Some(Segment::One(glob)), Some(last)) = (segments.last(), comps.clone().next_back())
        && !glob.matches(last, fold)
    {
        return false;
    }
    let mut seg = 0;
    let mut backtrack: Option<(usize, I)> = None;
    loop {
        let mut next = comps.clone();
        let Some(comp) = next.next() else { break };
        match segments.get(seg) {
            Some(Segment::Many) => {
                seg += 1;
                backtrack = Some((seg, comps.clone()));
                continue;
            }
            Some(Segment::One(glob)) if glob.matches(comp, fold) => {
                seg += 1;
                comps = next;
                continue;
            }
            _ => {}
        }
        // Mismatch: let the last `**` absorb one more component.
        let Some((resume, saved)) = backtrack.as_mut() else {
            return false;
        };
        if saved.next().is_none() {
            return false;
        }
        seg = *resume;
        comps = saved.clone();
    }
    segments
        .get(seg..)
        .unwrap_or_default()
        .iter()
        .all(|s| *s == Segment::Many)
}

/// Which registries a pattern covers.
#[derive(Clone, Debug, PartialEq, Eq)]
enum HostMatch {
    /// A leading `**`: every registry.
    Any,
    /// Docker Hub under any of its names.
    DockerHub,
    /// A host by labels (or an IPv6 literal as one label), and a port rule.
    Host {
        labels: Box<[Segment]>,
        port: PortMatch,
    },
}

/// How a pattern's port compares with a reference's.
#[derive(Clone, Debug, PartialEq, Eq)]
enum PortMatch {
    /// No port written: only references without a port.
    Absent,
    /// This port exactly.
    Exact(Box<str>),
    /// `:*`: any port, or none.
    Any,
}

impl HostMatch {
    fn matches(&self, r: &Reference) -> bool {
        match self {
            HostMatch::Any => true,
            HostMatch::DockerHub => r.is_docker_hub(),
            HostMatch::Host { labels, port } => {
                let Some(host) = r.host() else { return false };
                let port_ok = match port {
                    PortMatch::Absent => r.port().is_none(),
                    PortMatch::Exact(p) => r.port() == Some(p),
                    PortMatch::Any => true,
                };
                port_ok
                    && if host.starts_with('[') {
                        match &**labels {
                            [Segment::One(g)] => g.matches(host, true),
                            _ => false,
                        }
                    } else {
                        match_components(labels, host.split('.'), true)
                    }
            }
        }
    }

    /// The lowercase literal host (with `:port`) when the pattern names exactly
    /// one registry, for indexing. Docker Hub is [`HUB_KEY`].
    fn literal_key(&self) -> Option<String> {
        match self {
            HostMatch::Any => None,
            HostMatch::DockerHub => Some(HUB_KEY.to_owned()),
            HostMatch::Host { labels, port } => {
                let mut key = String::new();
                for (i, label) in labels.iter().enumerate() {
                    let Segment::One(glob) = label else {
                        return None;
                    };
                    if i > 0 {
                        key.push('.');
                    }
                    key.push_str(&glob.literal()?.to_ascii_lowercase());
                }
                match port {
                    PortMatch::Absent => {}
                    PortMatch::Exact(p) => {
                        key.push(':');
                        key.push_str(p);
                    }
                    PortMatch::Any => return None,
                }
                Some(key)
            }
        }
    }
}

/// Where an index files a pattern: its literal registry, its literal leading
/// path components, and the literal start of the glob component after them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IndexKey<'a> {
    pub(crate) registry: String,
    pub(crate) components: Vec<&'a str>,
    pub(crate) glob_start: Option<&'a str>,
}

/// The index key standing for Docker Hub under all its names. NUL cannot occur
/// in a host, so it collides with none.
pub(crate) const HUB_KEY: &str = "\0docker-hub";

/// The index key of a reference's registry: [`HUB_KEY`] or the lowercase domain.
pub(crate) fn registry_key(r: &Reference) -> Option<std::borrow::Cow<'_, str>> {
    if r.is_docker_hub() {
        return Some(HUB_KEY.into());
    }
    let domain = r.domain()?;
    Some(if domain.bytes().any(|b| b.is_ascii_uppercase()) {
        domain.to_ascii_lowercase().into()
    } else {
        domain.into()
    })
}

/// Whether a first component is a registry host by the reference grammar's
/// rule (`splitDockerDomain`): it has a `.` or `:`, is `localhost`, or has an
/// upper-case letter. A bracket (IPv6) counts too.
fn looks_like_host(first: &str) -> bool {
    first == "localhost"
        || first.contains(['.', ':', '['])
        || first.bytes().any(|b| b.is_ascii_uppercase())
}

/// Parses `host[:port]` with `*` allowed in labels and as the port.
fn parse_host(pattern: &str, text: &str) -> Result<HostMatch, PatternError> {
    let (host, port) = if text.starts_with('[') {
        let close = text
            .find(']')
            .ok_or_else(|| pattern_error(pattern, "IPv6 host has no closing ']'"))?;
        let (host, rest) = text.split_at(close + 1);
        match rest {
            "" => (host, None),
            _ => match rest.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => {
                    return Err(pattern_error(
                        pattern,
                        "expected ':' and a port after the IPv6 host",
                    ));
                }
            },
        }
    } else {
        match text.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        }
    };
    let port = match port {
        None => PortMatch::Absent,
        Some("*") => PortMatch::Any,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            PortMatch::Exact(p.into())
        }
        Some(p) => {
            return Err(pattern_error(
                pattern,
                format!("registry port {p:?} must be digits or '*'"),
            ));
        }
    };
    if host.is_empty() {
        return Err(pattern_error(pattern, "registry host is empty"));
    }
    if port == PortMatch::Absent && is_docker_hub_host(host) {
        return Ok(HostMatch::DockerHub);
    }
    if host.starts_with('[') {
        let inner = host.get(1..host.len() - 1).unwrap_or_default();
        if inner.is_empty() || !inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err(pattern_error(
                pattern,
                "IPv6 host must be hex digits and colons in brackets",
            ));
        }
        return Ok(HostMatch::Host {
            labels: Box::new([Segment::One(Glob::new(host))]),
            port,
        });
    }
    let mut labels = Vec::new();
    for label in host.split('.') {
        if label.is_empty() {
            return Err(pattern_error(
                pattern,
                "registry host has an empty label (a leading, trailing or double '.')",
            ));
        }
        if label == "**" {
            labels.push(Segment::Many);
            continue;
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '*'))
        {
            return Err(pattern_error(
                pattern,
                format!("invalid character {c:?} in registry host"),
            ));
        }
        if label.contains("**") {
            return Err(pattern_error(pattern, "'**' must be a whole host label"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(pattern_error(
                pattern,
                format!("host label {label:?} starts or ends with '-'"),
            ));
        }
        labels.push(Segment::One(Glob::new(label)));
    }
    Ok(HostMatch::Host {
        labels: labels.into(),
        port,
    })
}

/// Parses path components with `*` inside a component and `**` as a whole one.
fn parse_path(
    pattern: &str,
    components: &[&str],
    allow_many: bool,
) -> Result<Vec<Segment>, PatternError> {
    let mut out = Vec::with_capacity(components.len());
    for comp in components {
        if comp.is_empty() {
            return Err(pattern_error(
                pattern,
                "repository path has an empty component",
            ));
        }
        if *comp == "**" {
            if !allow_many {
                return Err(pattern_error(pattern, "'**' is not allowed here"));
            }
            out.push(Segment::Many);
            continue;
        }
        if comp.contains("**") {
            return Err(pattern_error(
                pattern,
                "'**' must be a whole path component",
            ));
        }
        if let Some(c) = comp.chars().find(|c| c.is_ascii_uppercase()) {
            return Err(pattern_error(
                pattern,
                format!("repository paths are lowercase, found {c:?}"),
            ));
        }
        if let Some(c) = comp.chars().find(|c| {
            !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-' | '*'))
        }) {
            return Err(pattern_error(
                pattern,
                format!("invalid character {c:?} in repository path"),
            ));
        }
        if !comp.contains('*') {
            reference::validate_path_component(comp).map_err(|(kind, _)| {
                pattern_error(pattern, format!("path component {comp:?}: {kind}"))
            })?;
        }
        out.push(Segment::One(Glob::new(comp)));
    }
    Ok(out)
}

/// An image pattern for rules: `[registry/]path[:tag][@digest]` with `*`
/// inside one component and `**` across any number of them.
///
/// A pattern is normalised like a reference: `nginx` is
/// `docker.io/library/nginx`, `someuser/*` is `docker.io/someuser/*`; a leading
/// `**` covers every registry. Without tag or digest it matches every tag and
/// digest.
///
/// ```
/// use imagegate_core::pattern::ImagePattern;
/// use imagegate_core::reference::Reference;
/// let p = ImagePattern::parse("ghcr.io/corp/*").unwrap();
/// assert!(p.matches(&Reference::parse("GHCR.io/corp/app:1").unwrap()));
/// assert!(!p.matches(&Reference::parse("ghcr.io/corporate/app").unwrap()));
/// assert!(!p.matches(&Reference::parse("ghcr.io/corp/team/app").unwrap()));
/// let latest = ImagePattern::parse("**:latest").unwrap();
/// assert!(latest.matches(&Reference::parse("nginx").unwrap()));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImagePattern {
    text: Box<str>,
    host: HostMatch,
    path: Box<[Segment]>,
    tag: Option<Glob>,
    digest: Option<Digest>,
}

impl ImagePattern {
    /// Compiles a pattern; the error names what is wrong.
    pub fn parse(text: &str) -> Result<ImagePattern, PatternError> {
        if text.is_empty() {
            return Err(pattern_error(text, "pattern is empty"));
        }
        if text.trim() != text {
            return Err(pattern_error(
                text,
                "pattern has leading or trailing whitespace",
            ));
        }
        let (before_at, digest) = match text.split_once('@') {
            Some((b, d)) => {
                let digest = Digest::parse(d)
                    .map_err(|(kind, _)| pattern_error(text, format!("digest: {kind}")))?;
                (b, Some(digest))
            }
            None => (text, None),
        };
        let slash = before_at.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match before_at.get(slash..).and_then(|s| s.find(':')) {
            Some(i) => (
                before_at.get(..slash + i).unwrap_or_default(),
                before_at.get(slash + i + 1..),
            ),
            None => (before_at, None),
        };
        let tag = match tag {
            None => None,
            Some(t) => {
                if t.is_empty() {
                    return Err(pattern_error(text, "tag is empty"));
                }
                if let Some(c) = t
                    .chars()
                    .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '*')))
                {
                    return Err(pattern_error(
                        text,
                        format!("invalid character {c:?} in tag"),
                    ));
                }
                Some(Glob::new(t))
            }
        };
        let components: Vec<&str> = name.split('/').collect();
        let (first, rest) = components
            .split_first()
            .ok_or_else(|| pattern_error(text, "pattern is empty"))?;
        let (host, path) = if *first == "**" {
            (HostMatch::Any, parse_path(text, &components, true)?)
        } else if !rest.is_empty() && looks_like_host(first) {
            let host = parse_host(text, first)?;
            // Normalise as references are: library/ only for lowercase docker.io
            // and index.docker.io with a single-component path.
            let library = (*first == DOCKER_HUB || *first == "index.docker.io") && rest.len() == 1;
            let mut path = Vec::new();
            if library {
                path.push(Segment::One(Glob::new(OFFICIAL_NAMESPACE)));
            }
            path.extend(parse_path(text, rest, true)?);
            (host, path)
        } else {
            if rest.is_empty() && looks_like_host(first) {
                return Err(pattern_error(
                    text,
                    format!(
                        "{first:?} looks like a registry but has no repository path; write {first}/** to match every image in it"
                    ),
                ));
            }
            let mut path = Vec::new();
            if rest.is_empty() {
                path.push(Segment::One(Glob::new(OFFICIAL_NAMESPACE)));
            }
            path.extend(parse_path(text, &components, true)?);
            (HostMatch::DockerHub, path)
        };
        Ok(ImagePattern {
            text: text.into(),
            host,
            path: path.into(),
            tag,
            digest,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the normalised reference matches.
    pub fn matches(&self, r: &Reference) -> bool {
        if let Some(d) = &self.digest
            && r.digest() != Some(d.as_str())
        {
            return false;
        }
        if let Some(t) = &self.tag {
            match r.tag() {
                Some(tag) if t.matches(tag, false) => {}
                _ => return false,
            }
        }
        self.host.matches(r) && match_components(&self.path, r.path_components(), false)
    }

    /// The key under which an index can file this pattern: the literal registry
    /// and the literal leading path components. `None` when the registry is a glob.
    pub(crate) fn index_key(&self) -> Option<IndexKey<'_>> {
        let host = self.host.literal_key()?;
        let mut prefix = Vec::new();
        let mut glob_start = None;
        for seg in self.path.iter() {
            match seg {
                Segment::One(glob) => match glob.literal() {
                    Some(lit) => prefix.push(lit),
                    None => {
                        // `legacy-*`: the literal start of the first glob component.
                        glob_start = glob.pieces.first().map(|p| &**p).filter(|p| !p.is_empty());
                        break;
                    }
                },
                Segment::Many => break,
            }
        }
        Some(IndexKey {
            registry: host,
            components: prefix,
            glob_start,
        })
    }
}

impl fmt::Display for ImagePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A registry allow-list entry: `host[:port][/path/prefix]`, with `*` for one
/// host label. The path prefix matches whole components, so `ghcr.io/corp`
/// covers `ghcr.io/corp/app` and never `ghcr.io/corporate/app`; an entry
/// without a port matches only references without one.
///
/// ```
/// use imagegate_core::pattern::RegistryScope;
/// use imagegate_core::reference::Reference;
/// let scope = RegistryScope::parse("*.corp.example").unwrap();
/// assert!(scope.matches(&Reference::parse("registry.corp.example/app").unwrap()));
/// assert!(!scope.matches(&Reference::parse("registry.corp.example.evil.io/app").unwrap()));
/// assert!(!scope.matches(&Reference::parse("registry.corp.example:5000/app").unwrap()));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryScope {
    text: Box<str>,
    host: HostMatch,
    prefix: Box<[Segment]>,
}

impl RegistryScope {
    /// Compiles an allow-list entry.
    pub fn parse(text: &str) -> Result<RegistryScope, PatternError> {
        if text.is_empty() {
            return Err(pattern_error(text, "registry is empty"));
        }
        if text.trim() != text {
            return Err(pattern_error(
                text,
                "registry has leading or trailing whitespace",
            ));
        }
        if text.contains('@') {
            return Err(pattern_error(text, "a registry entry has no digest"));
        }
        if text.contains("://") {
            return Err(pattern_error(
                text,
                "write the registry host without a URL scheme",
            ));
        }
        let (host, path) = match text.split_once('/') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        };
        if host == "**" || host == "*" {
            return Err(pattern_error(
                text,
                "a registry entry must name a host; disable registryAccess to allow every registry",
            ));
        }
        let host = parse_host(text, host)?;
        let prefix = match path {
            None => Vec::new(),
            Some(p) => {
                let comps: Vec<&str> = p.split('/').collect();
                parse_path(text, &comps, false)?
            }
        };
        Ok(RegistryScope {
            text: text.into(),
            host,
            prefix: prefix.into(),
        })
    }

    /// The entry as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The index key of its registry when that is literal (see [`registry_key`]).
    pub(crate) fn index_key(&self) -> Option<String> {
        self.host.literal_key()
    }

    /// Whether the reference's registry (and path prefix) is covered.
    pub fn matches(&self, r: &Reference) -> bool {
        if !self.host.matches(r) {
            return false;
        }
        let mut comps = r.path_components();
        let prefix_ok = self.prefix.iter().all(|seg| match (seg, comps.next()) {
            (Segment::One(glob), Some(c)) => glob.matches(c, false),
            _ => false,
        });
        // A path prefix covers what is under it, not a repository of that name.
        prefix_ok && (self.prefix.is_empty() || comps.next().is_some())
    }
}

impl fmt::Display for RegistryScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A glob over a plain name (a namespace, a user): `*` matches any run of
/// characters, `:` and `/` included; everything else is literal and
/// case-sensitive, as Kubernetes names are.
///
/// ```
/// use imagegate_core::pattern::NameGlob;
/// let g = NameGlob::parse("system:serviceaccount:kube-system:*").unwrap();
/// assert!(g.matches("system:serviceaccount:kube-system:replicaset-controller"));
/// assert!(!g.matches("system:serviceaccount:default:app"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameGlob {
    text: Box<str>,
    glob: Glob,
}

impl NameGlob {
    /// Compiles a name glob.
    pub fn parse(text: &str) -> Result<NameGlob, PatternError> {
        if text.is_empty() {
            return Err(pattern_error(text, "name is empty"));
        }
        if let Some(c) = text.chars().find(|c| c.is_control() || c.is_whitespace()) {
            return Err(pattern_error(
                text,
                format!("invalid character {c:?} in name"),
            ));
        }
        Ok(NameGlob {
            text: text.into(),
            glob: Glob::new(text),
        })
    }

    /// The glob as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        self.glob.matches(name, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Reference {
        Reference::parse(s).unwrap()
    }

    fn image(p: &str, s: &str) -> bool {
        ImagePattern::parse(p).unwrap().matches(&r(s))
    }

    fn scope(p: &str, s: &str) -> bool {
        RegistryScope::parse(p).unwrap().matches(&r(s))
    }

    #[test]
    fn case_allowlist_does_not_match_longer_component() {
        assert!(scope("ghcr.io/corp", "ghcr.io/corp/app"));
        assert!(scope("ghcr.io/corp", "ghcr.io/corp/team/app:1"));
        assert!(!scope("ghcr.io/corp", "ghcr.io/corporate/app"));
        assert!(
            !scope("ghcr.io/corp", "ghcr.io/corp"),
            "the prefix must leave a repository"
        );
    }

    #[test]
    fn case_allowlist_host_is_not_a_string_prefix() {
        assert!(!scope("ghcr.io", "ghcr.io.evil.io/corp/app"));
        assert!(!scope("ghcr.io/corp", "ghcr.io.evil.io/corp/app"));
        assert!(!scope("corp.example", "evilcorp.example/app"));
        assert!(!scope("corp.example", "x.corp.example/app"));
    }

    #[test]
    fn case_hosts_compare_without_case() {
        assert!(scope("ghcr.io", "GHCR.IO/corp/app"));
        assert!(scope("GHCR.io", "ghcr.io/corp/app"));
        assert!(image("GHCR.IO/corp/**", "ghcr.io/corp/a/b"));
    }

    #[test]
    fn case_port_must_match_exactly() {
        assert!(!scope("localhost", "localhost:5000/app"));
        assert!(scope("localhost:5000", "localhost:5000/app"));
        assert!(!scope("localhost:5000", "localhost:50000/app"));
        assert!(!scope("localhost:5000", "localhost/app"));
        assert!(scope("localhost:*", "localhost:5001/app"));
        assert!(scope("[::1]:5000", "[::1]:5000/app"));
        assert!(!scope("[::1]:5000", "[::2]:5000/app"));
    }

    #[test]
    fn case_docker_hub_aliases_are_one_registry() {
        for written in [
            "docker.io/nginx",
            "index.docker.io/library/nginx",
            "registry-1.docker.io/library/nginx",
            "Docker.IO/library/nginx",
            "nginx",
        ] {
            assert!(scope("docker.io", written), "{written}");
            assert!(scope("registry-1.docker.io", written), "{written}");
        }
        assert!(!scope("docker.io", "docker.io:443/library/nginx"));
        assert!(!scope("docker.io", "docker.io.evil.io/library/nginx"));
    }

    #[test]
    fn case_label_star_matches_one_label() {
        assert!(scope("*.corp.example", "registry.corp.example/app"));
        assert!(!scope("*.corp.example", "a.b.corp.example/app"));
        assert!(!scope("*.corp.example", "corp.example/app"));
        assert!(!scope(
            "*.corp.example",
            "registry.corp.example.evil.io/app"
        ));
        assert!(scope("**.corp.example", "a.b.corp.example/app"));
    }

    #[test]
    fn case_star_never_crosses_a_slash() {
        assert!(image("ghcr.io/corp/*", "ghcr.io/corp/app"));
        assert!(!image("ghcr.io/corp/*", "ghcr.io/corp/team/app"));
        assert!(image("ghcr.io/corp/**", "ghcr.io/corp/team/app"));
        assert!(image("ghcr.io/**/app", "ghcr.io/app"));
        assert!(image("ghcr.io/**/app", "ghcr.io/a/b/c/app"));
        assert!(!image("ghcr.io/**/app", "ghcr.io/a/b/c/app2"));
        assert!(image("ghcr.io/a/**/b/**/c", "ghcr.io/a/x/b/y/z/c"));
        assert!(!image("ghcr.io/a/**/b/**/c", "ghcr.io/a/x/y/z/c"));
    }

    #[test]
    fn case_familiar_patterns_normalise_like_references() {
        assert!(image("nginx", "docker.io/library/nginx:1.25"));
        assert!(!image("nginx", "ghcr.io/nginx"));
        assert!(image("someuser/*", "someuser/custom-image"));
        assert!(image("docker.io/nginx", "nginx"));
        assert!(!image("nginx", "someuser/nginx"));
    }

    #[test]
    fn case_tag_and_digest_narrow_the_match() {
        assert!(image("**:latest", "nginx"));
        assert!(image("**:latest", "ghcr.io/a/b:latest"));
        assert!(!image("**:latest", "nginx:1.25"));
        assert!(!image(
            "**:latest",
            "nginx@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
        ));
        assert!(image("nginx:1.*", "nginx:1.25"));
        assert!(!image("nginx:1.*", "nginx:2.0"));
        let d = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
        assert!(image(&format!("nginx@{d}"), &format!("nginx:1@{d}")));
        assert!(!image(&format!("nginx@{d}"), "nginx:1"));
    }

    #[test]
    fn case_bad_patterns_say_what_is_wrong() {
        for (p, needle) in [
            ("", "empty"),
            ("ghcr.io/Corp/app", "lowercase"),
            ("ghcr.io//app", "empty component"),
            ("ghcr.io/a**b", "'**'"),
            ("ghcr.io.", "no repository path"),
            ("ghcr.io./app", "empty label"),
            ("ghcr.io/app:", "tag is empty"),
            ("ghcr.io/app@sha256:abc", "digest"),
            ("ghcr.io/%2e%2e/app", "invalid character '%'"),
            (" nginx", "whitespace"),
        ] {
            let err = ImagePattern::parse(p).unwrap_err().to_string();
            assert!(err.contains(needle), "{p:?}: {err}");
        }
        for (p, needle) in [
            ("https://ghcr.io", "scheme"),
            ("ghcr.io:http", "port"),
            ("*", "must name a host"),
            ("ghcr.io/../x", "path component"),
        ] {
            let err = RegistryScope::parse(p).unwrap_err().to_string();
            assert!(err.contains(needle), "{p:?}: {err}");
        }
    }

    #[test]
    fn case_index_key_is_literal_prefix() {
        let p = ImagePattern::parse("ghcr.io/corp/team/app-*").unwrap();
        let key = p.index_key().unwrap();
        assert_eq!(
            (key.registry.as_str(), key.components, key.glob_start),
            ("ghcr.io", vec!["corp", "team"], Some("app-"))
        );
        let p = ImagePattern::parse("*.corp.example/app").unwrap();
        assert_eq!(p.index_key(), None);
        let p = ImagePattern::parse("nginx").unwrap();
        let key = p.index_key().unwrap();
        assert_eq!(
            (key.registry.as_str(), key.components, key.glob_start),
            (HUB_KEY, vec!["library", "nginx"], None)
        );
    }
}
