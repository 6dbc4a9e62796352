//! Docker Hub image categories, as Docker's Image Access Management sorts them.
//! Pure: it reads a normalised reference and two namespace lists.

use std::collections::HashSet;
use std::fmt;

use crate::reference::{OFFICIAL_NAMESPACE, Reference};

/// The category of a Docker Hub image. Every Docker Hub image is in exactly one;
/// images on other registries have none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Docker Official Images: `docker.io/library/<name>`.
    Official,
    /// Docker Verified Publisher images: a namespace with the badge.
    VerifiedPublisher,
    /// The organisation's own images: a namespace it owns. Always allowed.
    Organization,
    /// Everything else on Docker Hub, Docker-Sponsored Open Source included.
    Community,
}

impl Category {
    /// Every category, in the order Docker's console lists them.
    pub const ALL: [Category; 4] = [
        Category::Organization,
        Category::Official,
        Category::VerifiedPublisher,
        Category::Community,
    ];

    /// The category's code (`official`, `verified_publisher`, ...).
    pub fn code(self) -> &'static str {
        match self {
            Category::Official => "official",
            Category::VerifiedPublisher => "verified_publisher",
            Category::Organization => "organization",
            Category::Community => "community",
        }
    }

    /// How refusal messages name the category's images (`community images`).
    pub fn images(self) -> &'static str {
        match self {
            Category::Official => "official images",
            Category::VerifiedPublisher => "verified publisher images",
            Category::Organization => "organization images",
            Category::Community => "community images",
        }
    }

    /// Parses a category code.
    pub fn from_code(code: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.code() == code)
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The namespaces that decide a Docker Hub image's category.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Namespaces {
    organization: HashSet<Box<str>>,
    verified_publishers: HashSet<Box<str>>,
}

impl Namespaces {
    /// Builds the lists; namespaces are Docker Hub path components (lowercase).
    pub fn new<'a>(
        organization: impl IntoIterator<Item = &'a str>,
        verified_publishers: impl IntoIterator<Item = &'a str>,
    ) -> Namespaces {
        Namespaces {
            organization: organization.into_iter().map(Box::from).collect(),
            verified_publishers: verified_publishers.into_iter().map(Box::from).collect(),
        }
    }

    /// The category of `r`, from its path as normalised: `library/<name>` is
    /// official; an organisation namespace is organization; a verified publisher's
    /// namespace is verified_publisher; anything else on Docker Hub is community.
    /// `None` when `r` is not on Docker Hub.
    ///
    /// ```
    /// use imagegate_core::dockerhub::{Category, Namespaces};
    /// use imagegate_core::reference::Reference;
    /// let ns = Namespaces::new(["corp"], ["bitnami"]);
    /// let cat = |s| ns.category(&Reference::parse(s).unwrap());
    /// assert_eq!(cat("nginx"), Some(Category::Official));
    /// assert_eq!(cat("corp/app"), Some(Category::Organization));
    /// assert_eq!(cat("bitnami/redis"), Some(Category::VerifiedPublisher));
    /// assert_eq!(cat("someuser/custom-image"), Some(Category::Community));
    /// assert_eq!(cat("Docker.io/nginx"), Some(Category::Community));
    /// assert_eq!(cat("ghcr.io/corp/app"), None);
    /// ```
    pub fn category(&self, r: &Reference) -> Option<Category> {
        if !r.is_docker_hub() {
            return None;
        }
        let mut comps = r.path_components();
        let namespace = comps.next()?;
        let depth = 1 + comps.count();
        Some(if namespace == OFFICIAL_NAMESPACE && depth == 2 {
            Category::Official
        } else if self.organization.contains(namespace) {
            Category::Organization
        } else if self.verified_publishers.contains(namespace) {
            Category::VerifiedPublisher
        } else {
            Category::Community
        })
    }
}
