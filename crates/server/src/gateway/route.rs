//! The gateway's path router: `/v2/...` paths to routes, refusing anything a
//! repository name cannot be before any upstream is chosen or called. Names
//! are checked with the reference grammar, component by component, on the
//! raw (still percent-encoded) path, so `%2F`, `%2e`, `..`, `//`, upper case
//! and non-ASCII never reach a lookup, let alone a URL.

use imagegate_core::reference::{Digest, grammar};

/// What a request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `/v2/`: the API version check.
    Base,
    /// `/v2/_catalog`.
    Catalog,
    /// `/v2/<name>/manifests/<tag or digest>`.
    Manifest {
        /// The repository name.
        name: String,
        /// The tag or digest.
        reference: ManifestRef,
    },
    /// `/v2/<name>/blobs/<digest>`.
    Blob {
        /// The repository name.
        name: String,
        /// The digest.
        digest: Digest,
    },
    /// `/v2/<name>/tags/list`.
    Tags {
        /// The repository name.
        name: String,
    },
    /// `/v2/<name>/blobs/uploads/...`: a push.
    Upload {
        /// The repository name.
        name: String,
    },
}

/// A manifest reference: a tag or a digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManifestRef {
    /// A tag.
    Tag(String),
    /// A digest.
    Digest(Digest),
}

impl ManifestRef {
    /// As it appears in a URL and in a reference (`:tag` or `@digest` without the sign).
    pub fn as_str(&self) -> &str {
        match self {
            ManifestRef::Tag(t) => t,
            ManifestRef::Digest(d) => d.as_str(),
        }
    }
}

/// Why a path is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// The repository name is not one (`NAME_INVALID`).
    #[error("invalid repository name: {0}")]
    NameInvalid(String),
    /// The tag does not match the tag grammar.
    #[error("invalid tag {0:?}")]
    TagInvalid(String),
    /// The digest is not one (`DIGEST_INVALID`).
    #[error("invalid digest {0:?}")]
    DigestInvalid(String),
    /// Not a registry API path (404).
    #[error("not a registry API path")]
    NotFound,
}

/// The longest path considered; longer ones are refused unread.
pub const MAX_PATH: usize = 2048;

/// Routes a raw request path (as received, percent-encoding intact, no query).
///
/// ```
/// use imagegate_server::gateway::route::{route, Route, ManifestRef};
/// assert_eq!(route("/v2/library/nginx/manifests/1.25").unwrap(),
///     Route::Manifest { name: "library/nginx".into(), reference: ManifestRef::Tag("1.25".into()) });
/// assert!(route("/v2/library/%2e%2e/manifests/latest").is_err());
/// ```
pub fn route(path: &str) -> Result<Route, RouteError> {
    if path.len() > MAX_PATH {
        return Err(RouteError::NameInvalid(format!(
            "path is {} bytes long",
            path.len()
        )));
    }
    let Some(rest) = path.strip_prefix("/v2") else {
        return Err(RouteError::NotFound);
    };
    let rest = match rest {
        "" | "/" => return Ok(Route::Base),
        r => r.strip_prefix('/').ok_or(RouteError::NotFound)?,
    };
    if rest == "_catalog" {
        return Ok(Route::Catalog);
    }
    if let Some(bad) = rest
        .chars()
        .find(|c| !c.is_ascii() || c.is_ascii_control() || *c == '%' || *c == '\\')
    {
        return Err(RouteError::NameInvalid(format!(
            "character {bad:?} is not allowed in a registry path"
        )));
    }
    let segments: Vec<&str> = rest.split('/').collect();
    let n = segments.len();
    let at = |i: usize| segments.get(i).copied().unwrap_or_default();
    // Work from the end: the name is everything before the route's keyword.
    let (name_end, route) = if n >= 3 && at(n - 2) == "manifests" {
        (n - 2, Kind::Manifest(at(n - 1)))
    } else if n >= 3 && at(n - 2) == "tags" && at(n - 1) == "list" {
        (n - 2, Kind::Tags)
    } else if let Some(i) = segments
        .iter()
        .rposition(|s| *s == "uploads")
        .filter(|i| *i >= 2 && at(i - 1) == "blobs")
    {
        (i - 1, Kind::Upload)
    } else if n >= 3 && at(n - 2) == "blobs" {
        (n - 2, Kind::Blob(at(n - 1)))
    } else {
        return Err(RouteError::NotFound);
    };
    let name = segments.get(..name_end).unwrap_or_default().join("/");
    check_name(&name)?;
    Ok(match route {
        Kind::Manifest(reference) => Route::Manifest {
            name,
            reference: if reference.contains(':') {
                ManifestRef::Digest(
                    Digest::parse(reference)
                        .map_err(|_| RouteError::DigestInvalid(reference.to_owned()))?,
                )
            } else {
                grammar::validate_tag_text(reference)
                    .map_err(|_| RouteError::TagInvalid(reference.to_owned()))?;
                ManifestRef::Tag(reference.to_owned())
            },
        },
        Kind::Blob(digest) => Route::Blob {
            name,
            digest: Digest::parse(digest)
                .map_err(|_| RouteError::DigestInvalid(digest.to_owned()))?,
        },
        Kind::Tags => Route::Tags { name },
        Kind::Upload => Route::Upload { name },
    })
}

enum Kind<'a> {
    Manifest(&'a str),
    Blob(&'a str),
    Tags,
    Upload,
}

/// A repository name as the grammar's `remoteName`: lowercase components with
/// single separators, joined by single slashes, at most 255 characters.
fn check_name(name: &str) -> Result<(), RouteError> {
    if name.is_empty() {
        return Err(RouteError::NameInvalid(
            "the repository name is empty".to_owned(),
        ));
    }
    let raw = grammar::parse_name(name).map_err(|e| RouteError::NameInvalid(e.reason()))?;
    // A first component the grammar reads as a registry with a port, an IPv6
    // address or upper case cannot be written in a pull through the gateway;
    // refusing it keeps every accepted name lowercase path components.
    if raw
        .domain
        .is_some_and(|d| d.contains([':', '[']) || d.bytes().any(|b| b.is_ascii_uppercase()))
    {
        return Err(RouteError::NameInvalid(format!(
            "{name:?} names a registry with a port or upper case"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

    fn name_of(r: Route) -> String {
        match r {
            Route::Manifest { name, .. }
            | Route::Blob { name, .. }
            | Route::Tags { name }
            | Route::Upload { name } => name,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn case_the_api_paths_route() {
        assert_eq!(route("/v2/").unwrap(), Route::Base);
        assert_eq!(route("/v2").unwrap(), Route::Base);
        assert_eq!(route("/v2/_catalog").unwrap(), Route::Catalog);
        assert_eq!(
            name_of(route("/v2/nginx/manifests/latest").unwrap()),
            "nginx"
        );
        assert_eq!(
            name_of(route("/v2/ghcr.io/corp/app/tags/list").unwrap()),
            "ghcr.io/corp/app"
        );
        assert!(matches!(
            route(&format!("/v2/library/nginx/manifests/{D}")).unwrap(),
            Route::Manifest {
                reference: ManifestRef::Digest(_),
                ..
            }
        ));
        assert!(matches!(
            route(&format!("/v2/library/nginx/blobs/{D}")).unwrap(),
            Route::Blob { .. }
        ));
        assert_eq!(
            route("/v2/library/nginx/blobs/uploads/").unwrap(),
            Route::Upload {
                name: "library/nginx".into()
            }
        );
        assert_eq!(
            route("/v2/library/nginx/blobs/uploads/1234-abcd").unwrap(),
            Route::Upload {
                name: "library/nginx".into()
            }
        );
    }

    #[test]
    fn case_keywords_inside_names_are_names() {
        assert_eq!(
            name_of(route("/v2/a/manifests/b/manifests/latest").unwrap()),
            "a/manifests/b"
        );
        assert_eq!(
            name_of(route("/v2/tags/list/tags/list").unwrap()),
            "tags/list"
        );
        assert_eq!(
            name_of(route(&format!("/v2/blobs/x/blobs/{D}")).unwrap()),
            "blobs/x"
        );
    }

    #[test]
    fn case_hostile_names_are_refused_before_anything_else() {
        for path in [
            "/v2/library/%2e%2e/manifests/latest",
            "/v2/library%2Fnginx/manifests/latest",
            "/v2/library%2fnginx/manifests/latest",
            "/v2/../manifests/latest",
            "/v2/library/../../etc/manifests/latest",
            "/v2/./nginx/manifests/latest",
            "/v2/library//nginx/manifests/latest",
            "/v2//nginx/manifests/latest",
            "/v2/Library/nginx/manifests/latest",
            "/v2/library/NGINX/manifests/latest",
            "/v2/libr\u{e4}ry/nginx/manifests/latest",
            "/v2/library/nginx\\x/manifests/latest",
            "/v2/localhost:5000/app/manifests/latest",
            "/v2/evil.com@ghcr.io/app/manifests/latest",
            "/v2/ghcr.io:443/app/manifests/latest",
            "/v2/-nginx/manifests/latest",
            "/v2/manifests/latest",
            "/v2/library/nginx/\u{0}/manifests/latest",
        ] {
            match route(path) {
                Err(RouteError::NameInvalid(_)) | Err(RouteError::NotFound) => {}
                other => panic!("{path:?} routed to {other:?}"),
            }
        }
        assert!(matches!(
            route("/v2/manifests/latest"),
            Err(RouteError::NotFound) | Err(RouteError::NameInvalid(_))
        ));
    }

    #[test]
    fn case_bad_tags_and_digests_are_refused() {
        assert!(matches!(
            route("/v2/nginx/manifests/.hidden"),
            Err(RouteError::TagInvalid(_))
        ));
        assert!(matches!(
            route("/v2/nginx/manifests/sha256:abc"),
            Err(RouteError::DigestInvalid(_))
        ));
        assert!(matches!(
            route("/v2/nginx/blobs/latest"),
            Err(RouteError::DigestInvalid(_))
        ));
        assert!(matches!(
            route(
                "/v2/nginx/blobs/sha256:FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"
            ),
            Err(RouteError::DigestInvalid(_))
        ));
    }

    #[test]
    fn case_other_paths_are_not_found() {
        for path in [
            "/",
            "/v1/nginx/manifests/x",
            "/v2x/nginx",
            "/v2/nginx",
            "/v2/nginx/manifests/",
            "/v2/nginx/tags/lists",
        ] {
            assert!(route(path).is_err(), "{path}");
        }
        assert!(route(&"/v2/a".repeat(1000)).is_err());
    }
}
