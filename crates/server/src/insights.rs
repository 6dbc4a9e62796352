//! Insights: what an organisation's people try to pull, for its owners.
//! Attempts over time (allowed against refused), the most refused images
//! and who meets refusals most, and refusals by category and by registry,
//! read from the audit log. Attempts are admission decisions and the
//! gateway's manifest requests; the blobs of a pull are not counted again.
//! The console's page and the API's answer are both built from [`Insights`].

use std::collections::{BTreeSet, HashMap};

use imagegate_core::Reference;

use crate::store::{Bucket, Store, StoreError, now_ms};

/// The windows an owner can look at: name, length, bucket.
pub const RANGES: [(&str, i64, i64); 4] = [
    ("24h", 86_400_000, 3_600_000),
    ("7d", 7 * 86_400_000, 6 * 3_600_000),
    ("30d", 30 * 86_400_000, 86_400_000),
    ("90d", 90 * 86_400_000, 3 * 86_400_000),
];

/// How many rows the top lists keep.
pub const TOP: usize = 10;

/// A refused repository.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct RefusedImage {
    /// The repository (`docker.io/someuser/tool`), or the input when it did not parse.
    pub repository: String,
    /// Refused attempts.
    pub refusals: u64,
    /// How many different people met the refusal: several is a sign of a real need.
    pub users: u64,
    /// The reason code of the refusals (the most common one).
    pub reason: String,
    /// The last refusal, RFC 3339.
    pub last: String,
}

/// A count under a name (a user, a category, a registry).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Count {
    /// The name (`(anonymous)` for refusals with no user; `(unknown)` for no category).
    pub name: String,
    /// Refused attempts.
    pub refusals: u64,
}

/// Attempts in one time bucket.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Point {
    /// The bucket's start, RFC 3339.
    pub start: String,
    /// Allowed attempts.
    pub allowed: u64,
    /// Refused attempts.
    pub refused: u64,
}

/// An organisation's insights over a window.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Insights {
    /// The window's name (`24h`, `7d`, `30d`, `90d`).
    pub range: String,
    /// The window's start, RFC 3339.
    pub since: String,
    /// The window's end, RFC 3339.
    pub until: String,
    /// Each bucket's length in seconds.
    pub bucket_seconds: i64,
    /// Allowed attempts in the window.
    pub allowed: u64,
    /// Refused attempts in the window.
    pub refused: u64,
    /// Every bucket of the window, oldest first, empty ones included.
    pub series: Vec<Point>,
    /// The most refused repositories.
    pub top_refused_images: Vec<RefusedImage>,
    /// Who met the most refusals.
    pub top_users: Vec<Count>,
    /// Refusals by Docker Hub category.
    pub by_category: Vec<Count>,
    /// Refusals by registry.
    pub by_registry: Vec<Count>,
}

/// The window named `range`, or an error listing the names.
pub fn range(range: &str) -> Result<(i64, i64), String> {
    RANGES
        .iter()
        .find(|(name, ..)| *name == range)
        .map(|(_, len, bucket)| (*len, *bucket))
        .ok_or_else(|| {
            let names: Vec<&str> = RANGES.iter().map(|(n, ..)| *n).collect();
            format!("range {range:?} is not one of {}", names.join(", "))
        })
}

/// Sorted by count, largest first, then by name; at most [`TOP`].
fn top(counts: HashMap<String, u64>) -> Vec<Count> {
    let mut v: Vec<Count> = counts
        .into_iter()
        .map(|(name, refusals)| Count { name, refusals })
        .collect();
    v.sort_by(|a, b| {
        b.refusals
            .cmp(&a.refusals)
            .then_with(|| a.name.cmp(&b.name))
    });
    v.truncate(TOP);
    v
}

/// The insights of `org` over the window `range` ending now.
pub fn insights(store: &dyn Store, org: &str, range_name: &str) -> Result<Insights, InsightsError> {
    let (len, bucket) = range(range_name).map_err(InsightsError::Range)?;
    // Buckets line up on whole buckets, so the same event lands in the same
    // bucket from one look to the next.
    let until = (now_ms() / bucket + 1) * bucket;
    let since = until - len;
    let stored = store.attempt_series(org, since, until, bucket)?;
    let mut series = Vec::new();
    let mut at = stored.iter().peekable();
    let mut start = since;
    while start < until {
        let b = at
            .next_if(|b| b.start_ms == start)
            .copied()
            .unwrap_or(Bucket {
                start_ms: start,
                allowed: 0,
                refused: 0,
            });
        series.push(Point {
            start: crate::audit::rfc3339(start),
            allowed: b.allowed,
            refused: b.refused,
        });
        start += bucket;
    }
    let allowed = stored.iter().map(|b| b.allowed).sum();
    let refused = stored.iter().map(|b| b.refused).sum();

    struct Repo {
        refusals: u64,
        users: BTreeSet<Option<String>>,
        reasons: HashMap<String, u64>,
        last_ms: i64,
    }
    let mut repos: HashMap<String, Repo> = HashMap::new();
    let mut users = HashMap::new();
    let mut categories = HashMap::new();
    let mut registries = HashMap::new();
    for g in store.refusal_groups(org, since, until)? {
        let parsed = Reference::parse(&g.image).ok();
        let repository = parsed.as_ref().map_or(g.image.as_str(), |r| r.name());
        let registry = parsed
            .as_ref()
            .and_then(|r| r.domain())
            .unwrap_or("(unparsed)");
        let repo = repos.entry(repository.to_owned()).or_insert(Repo {
            refusals: 0,
            users: BTreeSet::new(),
            reasons: HashMap::new(),
            last_ms: 0,
        });
        repo.refusals += g.count;
        repo.users.insert(g.user.clone());
        *repo.reasons.entry(g.reason.clone()).or_default() += g.count;
        repo.last_ms = repo.last_ms.max(g.last_ms);
        *users
            .entry(g.user.unwrap_or_else(|| "(anonymous)".to_owned()))
            .or_default() += g.count;
        *categories
            .entry(g.category.unwrap_or_else(|| "(unknown)".to_owned()))
            .or_default() += g.count;
        *registries.entry(registry.to_owned()).or_default() += g.count;
    }
    let mut top_refused_images: Vec<RefusedImage> = repos
        .into_iter()
        .map(|(repository, r)| {
            let reason = r
                .reasons
                .into_iter()
                .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)))
                .map(|(reason, _)| reason)
                .unwrap_or_default();
            RefusedImage {
                repository,
                refusals: r.refusals,
                users: u64::try_from(r.users.len()).unwrap_or(u64::MAX),
                reason,
                last: crate::audit::rfc3339(r.last_ms),
            }
        })
        .collect();
    top_refused_images.sort_by(|a, b| {
        b.refusals
            .cmp(&a.refusals)
            .then_with(|| b.users.cmp(&a.users))
            .then_with(|| a.repository.cmp(&b.repository))
    });
    top_refused_images.truncate(TOP);
    Ok(Insights {
        range: range_name.to_owned(),
        since: crate::audit::rfc3339(since),
        until: crate::audit::rfc3339(until),
        bucket_seconds: bucket / 1000,
        allowed,
        refused,
        series,
        top_refused_images,
        top_users: top(users),
        by_category: top(categories),
        by_registry: top(registries),
    })
}

/// Why insights could not be made.
#[derive(Debug, thiserror::Error)]
pub enum InsightsError {
    /// An unknown window.
    #[error("{0}")]
    Range(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
