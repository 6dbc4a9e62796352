//! Where container images live: in Kubernetes objects now, Dockerfiles and
//! compose files with the scanner. Pure: contents in, image sites out; no
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

pub mod dockerfile;
pub mod manifest;
