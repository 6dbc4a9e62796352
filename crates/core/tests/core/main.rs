//! imagegate-core's integration tests: one binary (linking is the cost on two cores).

mod decide;
mod distribution;
mod properties;
