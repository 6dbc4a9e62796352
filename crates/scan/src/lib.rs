//! Where container images live: in Dockerfiles, Compose files and Kubernetes
//! objects. Pure: contents in, image sites with line and column out; no
//! files, no network, no decisions (those are `imagegate_core::decide`'s).
#![deny(missing_docs)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod compose;
pub mod dockerfile;
pub mod manifest;
pub mod yaml;

/// What an image value resolved to, after variables were substituted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// The image, after substitution.
    Image(String),
    /// Variables had no value: their names (or the malformed `${…}` text).
    Unresolved(Vec<String>),
}
