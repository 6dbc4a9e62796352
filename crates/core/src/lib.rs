//! imagegate's decision engine: the reference grammar, Docker Hub categories,
//! patterns, the policy document and the one `decide` function every door calls.
//! Sync and pure: it reads `&str`, never files, sockets or clocks.
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

pub mod decide;
pub mod decision;
pub mod dockerhub;
pub mod pattern;
pub mod policy;
pub mod reference;
#[cfg(feature = "rego")]
pub mod rego;

#[cfg(feature = "rego")]
pub use decide::rego_refusals;
pub use decide::{Input, decide, decide_explained};
pub use decision::{Decision, Mode, Reason, Verdict};
pub use policy::Policy;
pub use reference::Reference;
