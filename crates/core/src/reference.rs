//! Docker distribution reference grammar and normalisation. Pure: the only
//! place a string becomes a [`Reference`].
//!
//! The grammar and the normalisation follow `github.com/distribution/reference`
//! (`regexp.go`, `reference.go`, `normalize.go`) and `go-digest`: [`Reference::parse`]
//! computes what `ParseNormalizedNamed` followed by `TagNameOnly` computes, and
//! refuses what they refuse. The [`grammar`] functions are the plain grammar
//! without Docker Hub normalisation (`Parse` and `WithName`).

use std::fmt;
use std::str::FromStr;

/// Docker Hub's canonical registry name, as normalisation writes it.
pub const DOCKER_HUB: &str = "docker.io";
/// The legacy Docker Hub name that normalisation rewrites to [`DOCKER_HUB`].
const LEGACY_DOCKER_HUB: &str = "index.docker.io";
/// The namespace of Docker Official Images.
pub const OFFICIAL_NAMESPACE: &str = "library";
/// The tag normalisation adds when a reference has neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";
/// The longest repository path the grammar allows (`RepositoryNameTotalLengthMax`).
pub const PATH_MAX: usize = 255;
/// The longest tag the grammar allows.
pub const TAG_MAX: usize = 128;

/// Every name Docker Hub's registry answers to. A registry compares equal to
/// Docker Hub when its host is one of these, in any letter case, without a port.
///
/// Deviation: distribution folds only `index.docker.io` into `docker.io`; runtimes
/// also reach Docker Hub as `registry-1.docker.io`, so policy treats all three alike.
pub const DOCKER_HUB_ALIASES: [&str; 3] = ["docker.io", "index.docker.io", "registry-1.docker.io"];

/// A container image reference, normalised the way Docker normalises it.
///
/// Built only by [`Reference::parse`]. Its [`Display`](fmt::Display) is the
/// normalised form, which parses back to an equal reference:
///
/// ```
/// use imagegate_core::reference::Reference;
/// let r = Reference::parse("nginx").unwrap();
/// assert_eq!(r.to_string(), "docker.io/library/nginx:latest");
/// assert_eq!(r.path(), "library/nginx");
/// assert!(r.is_docker_hub());
/// assert_eq!(Reference::parse(&r.to_string()).unwrap(), r);
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// The normalised text: `[domain "/"] path [":" tag] ["@" digest]`.
    text: String,
    /// End of the domain in `text` (0 when there is none).
    domain_end: usize,
    /// Start of the port within the domain, after the `:` (0 when there is none).
    port_start: usize,
    /// Start of the path in `text`.
    path_start: usize,
    /// End of the path in `text`.
    path_end: usize,
    /// End of the tag in `text` (equal to `path_end` when there is no tag).
    tag_end: usize,
    /// The digest's algorithm, when the reference is pinned.
    digest: Option<Algorithm>,
}

impl Reference {
    /// Parses and normalises `input` as Docker does (`ParseNormalizedNamed`, then
    /// `TagNameOnly`): Docker Hub names gain `docker.io/` and, for single-component
    /// names, `library/`; `index.docker.io` becomes `docker.io`; `:latest` is added
    /// when there is neither tag nor digest.
    ///
    /// ```
    /// use imagegate_core::reference::Reference;
    /// let r = Reference::parse("localhost:5000/app@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff").unwrap();
    /// assert_eq!(r.domain(), Some("localhost:5000"));
    /// assert_eq!(r.tag(), None);
    /// let err = Reference::parse("Foo/Bar").unwrap_err();
    /// assert_eq!(err.to_string(), "invalid reference \"Foo/Bar\": repository name must be lowercase, found 'B' at position 5");
    /// ```
    pub fn parse(input: &str) -> Result<Reference, ReferenceError> {
        parse_normalized(input)
    }

    /// The normalised reference as text (the same as its `Display`).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The registry part as written (`ghcr.io`, `localhost:5000`, `[::1]:5000`),
    /// or `None` for the host look-alike that Docker's grammar reads as a path
    /// (see [`Ambiguity::HostLookAlike`]).
    pub fn domain(&self) -> Option<&str> {
        (self.domain_end > 0).then(|| &self.text[..self.domain_end])
    }

    /// The registry host without its port, as written.
    pub fn host(&self) -> Option<&str> {
        let domain = self.domain()?;
        Some(if self.port_start > 0 {
            &domain[..self.port_start - 1]
        } else {
            domain
        })
    }

    /// The registry port, when one is written.
    pub fn port(&self) -> Option<&str> {
        (self.port_start > 0).then(|| &self.text[self.port_start..self.domain_end])
    }

    /// The repository path (`library/nginx`), lowercase by the grammar.
    pub fn path(&self) -> &str {
        &self.text[self.path_start..self.path_end]
    }

    /// The path's components, in order.
    pub fn path_components(&self) -> std::str::Split<'_, char> {
        self.path().split('/')
    }

    /// The repository name: domain and path (`docker.io/library/nginx`).
    pub fn name(&self) -> &str {
        &self.text[..self.path_end]
    }

    /// The tag, if any; normalisation adds `latest` when neither tag nor digest
    /// was given.
    pub fn tag(&self) -> Option<&str> {
        (self.tag_end > self.path_end).then(|| &self.text[self.path_end + 1..self.tag_end])
    }

    /// The digest (`sha256:…`), if the reference is pinned.
    pub fn digest(&self) -> Option<&str> {
        self.digest.map(|_| &self.text[self.tag_end + 1..])
    }

    /// The digest's algorithm, if the reference is pinned.
    pub fn digest_algorithm(&self) -> Option<Algorithm> {
        self.digest
    }

    /// Whether the registry is Docker Hub: `docker.io`, `index.docker.io` or
    /// `registry-1.docker.io` in any letter case, without a port.
    pub fn is_docker_hub(&self) -> bool {
        self.port_start == 0 && self.host().is_some_and(is_docker_hub_host)
    }

    /// The familiar name Docker's UI shows: `nginx` for `docker.io/library/nginx`,
    /// `someuser/app` for `docker.io/someuser/app`; other registries unchanged.
    pub fn familiar_name(&self) -> &str {
        if self.domain() != Some(DOCKER_HUB) {
            return self.name();
        }
        let path = self.path();
        match path.strip_prefix("library/") {
            Some(rest) if !rest.contains('/') => rest,
            _ => path,
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({:?})", self.text)
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

/// Whether `host` (without port) names Docker Hub, in any letter case.
pub fn is_docker_hub_host(host: &str) -> bool {
    DOCKER_HUB_ALIASES
        .iter()
        .any(|alias| alias.eq_ignore_ascii_case(host))
}

/// Why an input that parses is still refused: runtimes read it differently from
/// the grammar, so no decision on the grammar's reading can be trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ambiguity {
    /// The whole input is a digest (`sha256:<hex>`). The grammar reads it as
    /// `docker.io/library/sha256` with the hex as tag; runtimes take it as a
    /// local image ID.
    BareDigest,
    /// The first component looks like a host (it has a `.`) but is not a valid
    /// host name (`foo_bar.com/app`). Docker's grammar reads it as part of the
    /// path with no registry; other tools read it as a registry.
    HostLookAlike,
}

impl Ambiguity {
    /// Whether `input`, which parsed as `reference`, is ambiguous.
    ///
    /// ```
    /// use imagegate_core::reference::{Ambiguity, Reference};
    /// let input = "foo_bar.com/app";
    /// let r = Reference::parse(input).unwrap();
    /// assert_eq!(Ambiguity::detect(input, &r), Some(Ambiguity::HostLookAlike));
    /// ```
    pub fn detect(input: &str, reference: &Reference) -> Option<Ambiguity> {
        if reference.domain().is_none() {
            return Some(Ambiguity::HostLookAlike);
        }
        if !input.contains(['/', '@']) && Digest::parse(input).is_ok() {
            return Some(Ambiguity::BareDigest);
        }
        None
    }

    /// Why runtimes read the input differently, for the `ambiguous_reference` message.
    pub fn explanation(self) -> &'static str {
        match self {
            Ambiguity::BareDigest => {
                "a bare digest is read as a local image ID by runtimes but as docker.io/library/sha256 by the reference grammar; name the repository (repo@sha256:...)"
            }
            Ambiguity::HostLookAlike => {
                "the first component looks like a registry host but is not a valid host name, so runtimes disagree on whether it is a registry or a Docker Hub path"
            }
        }
    }
}

/// A digest algorithm that runtimes can verify. dockerd and containerd link
/// SHA-256, SHA-384 and SHA-512 (`crypto/tls` pulls in the latter two), so
/// `go-digest` accepts exactly these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `sha256`, 64 hex digits.
    Sha256,
    /// `sha384`, 96 hex digits.
    Sha384,
    /// `sha512`, 128 hex digits.
    Sha512,
}

impl Algorithm {
    fn from_name(name: &str) -> Option<Algorithm> {
        match name {
            "sha256" => Some(Algorithm::Sha256),
            "sha384" => Some(Algorithm::Sha384),
            "sha512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }

    /// The algorithm's name as written in a digest.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha384 => "sha384",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// How many lowercase hex digits the encoded part has.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha384 => 96,
            Algorithm::Sha512 => 128,
        }
    }
}

/// A content digest (`sha256:<64 lowercase hex>`), validated as `go-digest` does.
///
/// ```
/// use imagegate_core::reference::Digest;
/// assert!(Digest::parse("sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff").is_ok());
/// assert!(Digest::parse("sha256:FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Digest {
    text: Box<str>,
    algorithm: Algorithm,
}

impl Digest {
    /// Parses a digest; the error says what is wrong and at which byte offset.
    pub fn parse(input: &str) -> Result<Digest, (ErrorKind, usize)> {
        let algorithm = validate_digest(input, 0)?;
        Ok(Digest {
            text: input.into(),
            algorithm,
        })
    }

    /// The digest as text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The digest's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A reference that does not parse: the input, what is wrong, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReferenceError {
    input: String,
    kind: ErrorKind,
    at: usize,
}

impl ReferenceError {
    fn new(input: &str, kind: ErrorKind, at: usize) -> Self {
        ReferenceError {
            input: input.to_owned(),
            kind,
            at,
        }
    }

    /// The input that failed to parse.
    pub fn input(&self) -> &str {
        &self.input
    }

    /// What is wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The byte offset in the input where the problem was found.
    pub fn offset(&self) -> usize {
        self.at
    }

    /// The 1-based character position where the problem was found.
    pub fn position(&self) -> usize {
        let at = self.at.min(self.input.len());
        let mut end = at;
        while !self.input.is_char_boundary(end) {
            end -= 1;
        }
        self.input[..end].chars().count() + 1
    }

    /// The message without the `invalid reference "<input>": ` prefix.
    pub fn reason(&self) -> String {
        match &self.kind {
            ErrorKind::Empty => self.kind.to_string(),
            kind => format!("{kind} at position {}", self.position()),
        }
    }
}

/// The longest part of an input echoed back in a message.
const ECHO_MAX: usize = 256;

/// Writes `input` quoted and escaped (control characters, quotes, backslashes),
/// cut after 256 bytes so a 10 MB line does not become a 10 MB message.
pub fn quote_input(input: &str) -> String {
    if input.len() <= ECHO_MAX {
        return format!("{input:?}");
    }
    let mut end = ECHO_MAX;
    while !input.is_char_boundary(end) {
        end -= 1;
    }
    let shown = format!("{:?}", &input[..end]);
    format!("{}...\" ({} bytes)", &shown[..shown.len() - 1], input.len())
}

impl fmt::Display for ReferenceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid reference {}: {}",
            quote_input(&self.input),
            self.reason()
        )
    }
}

impl std::error::Error for ReferenceError {}

/// Which part of a reference a problem is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The registry host and port.
    Registry,
    /// The repository path.
    Path,
    /// The tag.
    Tag,
    /// The digest.
    Digest,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::Registry => "registry host",
            Part::Path => "repository name",
            Part::Tag => "tag",
            Part::Digest => "digest",
        })
    }
}

/// What is wrong with a reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Nothing was given.
    Empty,
    /// 64 lowercase hex digits: an image ID, refused as a repository name.
    ImageId,
    /// A character the part does not allow.
    InvalidChar {
        /// The character.
        found: char,
        /// Where it is.
        part: Part,
    },
    /// An upper-case letter in the repository path.
    Uppercase {
        /// The letter.
        found: char,
    },
    /// A path component that is empty (`a//b`, a trailing `/`, no name at all).
    EmptyComponent,
    /// A separator (`.`, `_`, `__`, `-`) at the start or end of a path
    /// component, or two that may not follow each other.
    BadSeparator,
    /// A host label that starts or ends with `-`, or an empty label.
    BadHostLabel,
    /// A port that is empty or not made of digits.
    BadPort,
    /// An IPv6 host that is not `[hex and colons]`.
    BadIpv6,
    /// The path is longer than [`PATH_MAX`].
    PathTooLong {
        /// Its length.
        len: usize,
    },
    /// The tag is empty or does not start with a letter, digit or `_`.
    BadTagStart,
    /// The tag is longer than [`TAG_MAX`].
    TagTooLong {
        /// Its length.
        len: usize,
    },
    /// The digest is not `algorithm:hex` by the grammar.
    BadDigest,
    /// The digest's algorithm is not one runtimes verify.
    UnsupportedAlgorithm {
        /// The algorithm as written.
        algorithm: String,
    },
    /// The digest's hex part has the wrong length for its algorithm.
    DigestLength {
        /// The algorithm.
        algorithm: Algorithm,
        /// The length found.
        len: usize,
    },
    /// The digest's hex part is not lowercase hex.
    DigestNotLowerHex,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Empty => f.write_str("reference is empty"),
            ErrorKind::ImageId => f.write_str(
                "a 64-character hexadecimal string is an image ID, not a repository name",
            ),
            ErrorKind::InvalidChar { found, part } => {
                write!(f, "invalid character {found:?} in {part}")
            }
            ErrorKind::Uppercase { found } => {
                write!(f, "repository name must be lowercase, found {found:?}")
            }
            ErrorKind::EmptyComponent => f.write_str("repository name has an empty component"),
            ErrorKind::BadSeparator => f.write_str(
                "a repository name component must start and end with a lowercase letter or digit, with single separators ('.', '_', '__' or dashes) between",
            ),
            ErrorKind::BadHostLabel => f.write_str(
                "registry host labels must be letters, digits and inner hyphens, separated by single dots",
            ),
            ErrorKind::BadPort => f.write_str("registry port must be digits"),
            ErrorKind::BadIpv6 => {
                f.write_str("IPv6 registry host must be hex digits and colons in brackets")
            }
            ErrorKind::PathTooLong { len } => write!(
                f,
                "repository name is {len} characters long, more than the {PATH_MAX} allowed"
            ),
            ErrorKind::BadTagStart => {
                f.write_str("tag must start with a letter, digit or underscore")
            }
            ErrorKind::TagTooLong { len } => write!(
                f,
                "tag is {len} characters long, more than the {TAG_MAX} allowed"
            ),
            ErrorKind::BadDigest => {
                f.write_str("digest must be algorithm:hex with at least 32 hex digits")
            }
            ErrorKind::UnsupportedAlgorithm { algorithm } => write!(
                f,
                "unsupported digest algorithm {algorithm:?} (sha256, sha384 and sha512 are supported)"
            ),
            ErrorKind::DigestLength { algorithm, len } => write!(
                f,
                "{} digest must have {} hex digits, found {len}",
                algorithm.name(),
                algorithm.hex_len()
            ),
            ErrorKind::DigestNotLowerHex => f.write_str("digest hex must be lowercase"),
        }
    }
}

/// A character-level failure: what and at which byte offset of the piece checked.
type Fail = (ErrorKind, usize);

/// `identifier` in regexp.go: exactly 64 lowercase hex digits, the form of an
/// image ID.
///
/// ```
/// use imagegate_core::reference::is_image_id;
/// assert!(is_image_id("da304e823d8ca2b9d863a3c897baeb852ba21ea9a9f1414736394ae7fcaf9821"));
/// assert!(!is_image_id("sha256:da304e823d8ca2b9d863a3c897baeb852ba21ea9a9f1414736394ae7fcaf9821"));
/// ```
pub fn is_image_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `ParseNormalizedNamed` + `TagNameOnly` (normalize.go).
fn parse_normalized(input: &str) -> Result<Reference, ReferenceError> {
    let fail = |(kind, at): Fail| ReferenceError::new(input, kind, at);
    if input.is_empty() {
        return Err(fail((ErrorKind::Empty, 0)));
    }
    if is_image_id(input) {
        return Err(fail((ErrorKind::ImageId, 0)));
    }

    // splitDockerDomain: decide on the raw input, tag and digest included,
    // whether the first component names a registry.
    let (domain, remainder, rem_at) = match input.split_once('/') {
        None => (Domain::DockerHub, input, 0),
        Some((first, rest)) => {
            if first == "localhost" {
                (Domain::Explicit(first), rest, first.len() + 1)
            } else if first == LEGACY_DOCKER_HUB {
                (Domain::DockerHub, rest, first.len() + 1)
            } else if first.contains(['.', ':']) || first.bytes().any(|b| b.is_ascii_uppercase()) {
                (Domain::Explicit(first), rest, first.len() + 1)
            } else {
                (Domain::DockerHub, input, 0)
            }
        }
    };
    let hub = matches!(domain, Domain::DockerHub)
        || matches!(domain, Domain::Explicit(d) if d == DOCKER_HUB);
    let library = hub && !remainder.contains('/');

    // The remainder holds no registry, so its first ':' before any '@' opens the tag.
    let (before_at, digest_at) = match remainder.find('@') {
        Some(i) => (&remainder[..i], Some(rem_at + i + 1)),
        None => (remainder, None),
    };
    let (path_text, tag_at) = match before_at.find(':') {
        Some(i) => (&before_at[..i], Some(rem_at + i + 1)),
        None => (before_at, None),
    };

    // The registry, or the look-alike that the grammar folds into the path.
    let mut lookalike = None;
    let domain_text: Option<&str> = match domain {
        Domain::DockerHub => Some(DOCKER_HUB),
        Domain::Explicit(first) => match validate_domain(first) {
            Ok(()) => Some(first),
            Err(err) => {
                if validate_path_component(first).is_ok() {
                    lookalike = Some(first);
                    None
                } else {
                    return Err(fail(err));
                }
            }
        },
    };

    validate_path(path_text).map_err(|(kind, at)| fail((kind, rem_at + at)))?;
    let mut path_len = path_text.len();
    if library {
        path_len += OFFICIAL_NAMESPACE.len() + 1;
    }
    if let Some(first) = lookalike {
        path_len += first.len() + 1;
    }
    if path_len > PATH_MAX {
        return Err(fail((ErrorKind::PathTooLong { len: path_len }, 0)));
    }

    let tag_text = match tag_at {
        Some(at) => {
            let end = digest_at.map_or(input.len(), |d| d - 1);
            let tag = &input[at..end];
            validate_tag(tag).map_err(|(kind, off)| fail((kind, at + off)))?;
            Some(tag)
        }
        None => None,
    };
    let digest = match digest_at {
        Some(at) => {
            let text = &input[at..];
            let algorithm =
                validate_digest(text, 0).map_err(|(kind, off)| fail((kind, at + off)))?;
            Some((text, algorithm))
        }
        None => None,
    };

    // Assemble the normalised text in one allocation.
    let mut text = String::with_capacity(input.len() + 24);
    let mut domain_end = 0;
    let mut port_start = 0;
    if let Some(d) = domain_text {
        text.push_str(d);
        domain_end = text.len();
        if let Some(colon) = port_colon(d) {
            port_start = colon + 1;
        }
        text.push('/');
    }
    let path_start = text.len();
    if let Some(first) = lookalike {
        text.push_str(first);
        text.push('/');
    }
    if library {
        text.push_str(OFFICIAL_NAMESPACE);
        text.push('/');
    }
    text.push_str(path_text);
    let path_end = text.len();
    match (tag_text, &digest) {
        (Some(tag), _) => {
            text.push(':');
            text.push_str(tag);
        }
        (None, None) => {
            text.push(':');
            text.push_str(DEFAULT_TAG);
        }
        (None, Some(_)) => {}
    }
    let tag_end = text.len();
    if let Some((d, _)) = digest {
        text.push('@');
        text.push_str(d);
    }
    Ok(Reference {
        text,
        domain_end,
        port_start,
        path_start,
        path_end,
        tag_end,
        digest: digest.map(|(_, algorithm)| algorithm),
    })
}

enum Domain<'a> {
    DockerHub,
    Explicit(&'a str),
}

/// The offset of the `:` that starts a port in a valid domain, if any.
fn port_colon(domain: &str) -> Option<usize> {
    if domain.starts_with('[') {
        let close = domain.find(']')?;
        (domain.as_bytes().get(close + 1) == Some(&b':')).then_some(close + 1)
    } else {
        domain.find(':')
    }
}

/// `domainAndPort` in regexp.go: a DNS-like name (letters of either case), an
/// IPv4 address, or `[IPv6]`, then an optional `:port`.
pub(crate) fn validate_domain(domain: &str) -> Result<(), Fail> {
    let bytes = domain.as_bytes();
    let host_end = if bytes.first() == Some(&b'[') {
        let close = domain.find(']').ok_or((ErrorKind::BadIpv6, domain.len()))?;
        let inner = &domain[1..close];
        if inner.is_empty() {
            return Err((ErrorKind::BadIpv6, 1));
        }
        if let Some(i) = inner
            .bytes()
            .position(|b| !(b.is_ascii_hexdigit() || b == b':'))
        {
            return Err((ErrorKind::BadIpv6, 1 + i));
        }
        close + 1
    } else {
        let end = domain.find(':').unwrap_or(domain.len());
        validate_host_name(&domain[..end])?;
        end
    };
    match &domain[host_end..] {
        "" => Ok(()),
        rest => {
            let digits = rest
                .strip_prefix(':')
                .ok_or((ErrorKind::BadPort, host_end))?;
            if digits.is_empty() {
                return Err((ErrorKind::BadPort, host_end + 1));
            }
            match digits.bytes().position(|b| !b.is_ascii_digit()) {
                Some(i) => Err((ErrorKind::BadPort, host_end + 1 + i)),
                None => Ok(()),
            }
        }
    }
}

/// `domainName` in regexp.go: labels of ASCII letters, digits and inner hyphens,
/// joined by single dots.
fn validate_host_name(host: &str) -> Result<(), Fail> {
    let mut start = 0;
    for label in host.split('.') {
        let bytes = label.as_bytes();
        if let Some(i) = bytes
            .iter()
            .position(|b| !(b.is_ascii_alphanumeric() || *b == b'-'))
        {
            let found = label[i..].chars().next().unwrap_or('?');
            return Err((
                ErrorKind::InvalidChar {
                    found,
                    part: Part::Registry,
                },
                start + i,
            ));
        }
        match (bytes.first(), bytes.last()) {
            (None, _) => return Err((ErrorKind::BadHostLabel, start)),
            (Some(b'-'), _) => return Err((ErrorKind::BadHostLabel, start)),
            (_, Some(b'-')) => return Err((ErrorKind::BadHostLabel, start + label.len() - 1)),
            _ => {}
        }
        start += label.len() + 1;
    }
    Ok(())
}

/// `remoteName` in regexp.go: path components joined by single slashes.
fn validate_path(path: &str) -> Result<(), Fail> {
    let mut start = 0;
    for component in path.split('/') {
        validate_path_component(component).map_err(|(kind, at)| (kind, start + at))?;
        start += component.len() + 1;
    }
    Ok(())
}

/// `pathComponent` in regexp.go: `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`.
pub(crate) fn validate_path_component(component: &str) -> Result<(), Fail> {
    if component.is_empty() {
        return Err((ErrorKind::EmptyComponent, 0));
    }
    // The separator run since the last alphanumeric: its bytes and length.
    let mut run: (u8, usize) = (0, 0);
    let mut at_start = true;
    for (i, c) in component.char_indices() {
        match c {
            'a'..='z' | '0'..='9' => {
                run = (0, 0);
                at_start = false;
            }
            '.' | '_' | '-' => {
                let ok = !at_start
                    && matches!((run, c), ((0, 0), _) | ((b'_', 1), '_') | ((b'-', _), '-'));
                if !ok {
                    return Err((ErrorKind::BadSeparator, i));
                }
                run = (c as u8, run.1 + 1);
            }
            'A'..='Z' => return Err((ErrorKind::Uppercase { found: c }, i)),
            _ => {
                return Err((
                    ErrorKind::InvalidChar {
                        found: c,
                        part: Part::Path,
                    },
                    i,
                ));
            }
        }
    }
    if run.1 > 0 {
        return Err((ErrorKind::BadSeparator, component.len() - 1));
    }
    Ok(())
}

/// `tag` in regexp.go: `[\w][\w.-]{0,127}`, ASCII only.
pub(crate) fn validate_tag(tag: &str) -> Result<(), Fail> {
    let mut chars = tag.char_indices();
    match chars.next() {
        None => return Err((ErrorKind::BadTagStart, 0)),
        Some((_, c)) if c.is_ascii_alphanumeric() || c == '_' => {}
        Some((_, '.' | '-')) => return Err((ErrorKind::BadTagStart, 0)),
        Some((_, c)) => {
            return Err((
                ErrorKind::InvalidChar {
                    found: c,
                    part: Part::Tag,
                },
                0,
            ));
        }
    }
    for (i, c) in chars {
        if !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
            return Err((
                ErrorKind::InvalidChar {
                    found: c,
                    part: Part::Tag,
                },
                i,
            ));
        }
    }
    if tag.len() > TAG_MAX {
        return Err((ErrorKind::TagTooLong { len: tag.len() }, TAG_MAX));
    }
    Ok(())
}

/// `digestPat` in regexp.go, then `go-digest`'s `Digest.Validate` for the
/// algorithms runtimes register. Offsets are relative to `digest` plus `base`.
fn validate_digest(digest: &str, base: usize) -> Result<Algorithm, Fail> {
    let Some(colon) = digest.find(':') else {
        return Err((ErrorKind::BadDigest, base + digest.len()));
    };
    let (algorithm, hex) = (&digest[..colon], &digest[colon + 1..]);
    // digest-algorithm: components [A-Za-z][A-Za-z0-9]* joined by one of [-_+.].
    let mut at_component_start = true;
    for (i, c) in algorithm.char_indices() {
        let ok = if at_component_start {
            c.is_ascii_alphabetic()
        } else {
            c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '+' | '.')
        };
        if !ok {
            return Err((
                ErrorKind::InvalidChar {
                    found: c,
                    part: Part::Digest,
                },
                base + i,
            ));
        }
        at_component_start = matches!(c, '-' | '_' | '+' | '.');
    }
    if algorithm.is_empty() || at_component_start {
        return Err((ErrorKind::BadDigest, base + colon));
    }
    if let Some(i) = hex.char_indices().find(|(_, c)| !c.is_ascii_hexdigit()) {
        return Err((
            ErrorKind::InvalidChar {
                found: i.1,
                part: Part::Digest,
            },
            base + colon + 1 + i.0,
        ));
    }
    if hex.len() < 32 {
        return Err((ErrorKind::BadDigest, base + digest.len()));
    }
    let Some(known) = Algorithm::from_name(algorithm) else {
        return Err((
            ErrorKind::UnsupportedAlgorithm {
                algorithm: algorithm.to_owned(),
            },
            base,
        ));
    };
    if hex.len() != known.hex_len() {
        return Err((
            ErrorKind::DigestLength {
                algorithm: known,
                len: hex.len(),
            },
            base + colon + 1,
        ));
    }
    if let Some(i) = hex.bytes().position(|b| b.is_ascii_uppercase()) {
        return Err((ErrorKind::DigestNotLowerHex, base + colon + 1 + i));
    }
    Ok(known)
}

/// The plain grammar without Docker Hub normalisation: distribution's `Parse`
/// and `WithName`. The registry gateway uses it for repository names in URLs;
/// tests use it to run distribution's own grammar tables.
pub mod grammar {
    use super::{ErrorKind, Fail, ReferenceError, validate_digest, validate_domain};
    use super::{validate_path, validate_path_component, validate_tag};

    /// A reference as the plain grammar splits it, with no defaults applied.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct RawReference<'a> {
        /// The registry, when the first component is a valid domain followed by `/`.
        pub domain: Option<&'a str>,
        /// The repository path.
        pub path: &'a str,
        /// The tag, if written.
        pub tag: Option<&'a str>,
        /// The digest, if written.
        pub digest: Option<&'a str>,
    }

    impl RawReference<'_> {
        /// `domain/path`, as distribution's `Name()`.
        pub fn name(&self) -> String {
            match self.domain {
                Some(d) => format!("{d}/{}", self.path),
                None => self.path.to_owned(),
            }
        }
    }

    /// distribution's `Parse`: `name [":" tag] ["@" digest]` with no normalisation.
    ///
    /// ```
    /// use imagegate_core::reference::grammar;
    /// let r = grammar::parse_reference("test.com:5000").unwrap();
    /// assert_eq!((r.domain, r.path, r.tag), (None, "test.com", Some("5000")));
    /// ```
    pub fn parse_reference(input: &str) -> Result<RawReference<'_>, ReferenceError> {
        let fail = |(kind, at): Fail| ReferenceError::new(input, kind, at);
        if input.is_empty() {
            return Err(fail((ErrorKind::Empty, 0)));
        }
        let (before_at, digest) = match input.find('@') {
            Some(i) => (&input[..i], Some((i + 1, &input[i + 1..]))),
            None => (input, None),
        };
        // The tag separator is the last ':' after the last '/': a name's ':' can
        // only be in its registry, which a '/' ends.
        let slash = before_at.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match before_at[slash..].find(':') {
            Some(i) => (
                &before_at[..slash + i],
                Some((slash + i + 1, &before_at[slash + i + 1..])),
            ),
            None => (before_at, None),
        };
        let raw = parse_name_at(input, name)?;
        if let Some((at, tag)) = tag {
            validate_tag(tag).map_err(|(kind, off)| fail((kind, at + off)))?;
        }
        if let Some((at, digest)) = digest {
            validate_digest(digest, at).map_err(fail)?;
        }
        Ok(RawReference {
            tag: tag.map(|(_, t)| t),
            digest: digest.map(|(_, d)| d),
            ..raw
        })
    }

    /// distribution's `WithName`: `[domain "/"] path`, no tag or digest.
    ///
    /// ```
    /// use imagegate_core::reference::grammar;
    /// let r = grammar::parse_name("foo.com:8080/bar").unwrap();
    /// assert_eq!((r.domain, r.path), (Some("foo.com:8080"), "bar"));
    /// assert!(grammar::parse_name("foo.com:http/bar").is_err());
    /// ```
    pub fn parse_name(input: &str) -> Result<RawReference<'_>, ReferenceError> {
        if input.is_empty() {
            return Err(ReferenceError::new(input, ErrorKind::Empty, 0));
        }
        parse_name_at(input, input)
    }

    /// Splits `name`, a prefix of `input`, into domain and path as
    /// `anchoredNameRegexp` does: the first component is the domain when it is a
    /// valid one and a `/` follows.
    fn parse_name_at<'a>(input: &str, name: &'a str) -> Result<RawReference<'a>, ReferenceError> {
        let fail = |(kind, at): Fail| ReferenceError::new(input, kind, at);
        let (domain, path, path_at) = match name.split_once('/') {
            Some((first, rest)) if validate_domain(first).is_ok() => {
                (Some(first), rest, first.len() + 1)
            }
            Some((first, _)) => {
                // Not a domain: then it must be a path component.
                if let Err(err) = validate_path_component(first) {
                    let domain_err = validate_domain(first).err();
                    let looks_like_host =
                        first.contains([':', '[']) || first.bytes().any(|b| b.is_ascii_uppercase());
                    return Err(fail(match domain_err {
                        Some(d) if looks_like_host => d,
                        _ => err,
                    }));
                }
                (None, name, 0)
            }
            None => (None, name, 0),
        };
        if path.is_empty() {
            return Err(fail((ErrorKind::EmptyComponent, path_at)));
        }
        validate_path(path).map_err(|(kind, at)| fail((kind, path_at + at)))?;
        if path.len() > super::PATH_MAX {
            return Err(fail((ErrorKind::PathTooLong { len: path.len() }, path_at)));
        }
        Ok(RawReference {
            domain,
            path,
            tag: None,
            digest: None,
        })
    }

    /// Whether `domain` is a valid registry domain with optional port
    /// (`domainAndPort` in regexp.go).
    ///
    /// ```
    /// use imagegate_core::reference::grammar;
    /// assert!(grammar::is_domain("[fd00:1:2::3]:75050"));
    /// assert!(!grammar::is_domain("ab-.com"));
    /// ```
    pub fn is_domain(domain: &str) -> bool {
        !domain.is_empty() && validate_domain(domain).is_ok()
    }

    /// Validates a tag (`[\w][\w.-]{0,127}`).
    pub fn validate_tag_text(tag: &str) -> Result<(), ReferenceError> {
        validate_tag(tag).map_err(|(kind, at)| ReferenceError::new(tag, kind, at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_docker_hub_aliases_keep_their_spelling_but_are_docker_hub() {
        let r = Reference::parse("Docker.io/nginx").unwrap();
        assert_eq!(r.as_str(), "Docker.io/nginx:latest");
        assert_eq!(r.path(), "nginx");
        assert!(r.is_docker_hub());
        let r = Reference::parse("registry-1.docker.io/library/nginx").unwrap();
        assert!(r.is_docker_hub());
        assert_eq!(r.path(), "library/nginx");
        assert!(
            !Reference::parse("docker.io:443/library/nginx")
                .unwrap()
                .is_docker_hub()
        );
    }

    #[test]
    fn case_index_docker_io_becomes_docker_io() {
        let r = Reference::parse("index.docker.io/nginx").unwrap();
        assert_eq!(r.as_str(), "docker.io/library/nginx:latest");
    }

    #[test]
    fn case_port_and_ipv6_are_split() {
        let r = Reference::parse("[::1]:5000/x").unwrap();
        assert_eq!(r.host(), Some("[::1]"));
        assert_eq!(r.port(), Some("5000"));
        let r = Reference::parse("localhost:5000/x:1").unwrap();
        assert_eq!(r.host(), Some("localhost"));
        assert_eq!(r.port(), Some("5000"));
        assert_eq!(r.tag(), Some("1"));
    }

    #[test]
    fn case_error_positions_point_at_the_problem() {
        let e = Reference::parse("ghcr.io/org/App").unwrap_err();
        assert_eq!(e.offset(), 12);
        assert_eq!(e.position(), 13);
        let e = Reference::parse("nginx:bad~tag").unwrap_err();
        assert_eq!(e.offset(), 9);
        let e = Reference::parse("a//b").unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::EmptyComponent);
        assert_eq!(e.offset(), 2);
    }

    #[test]
    fn case_long_input_is_cut_in_the_message() {
        let long = "a".repeat(10_000_000);
        let e = Reference::parse(&long).unwrap_err();
        let msg = e.to_string();
        assert!(msg.len() < 1000, "{}", msg.len());
        assert!(msg.contains("(10000000 bytes)"));
    }
}
