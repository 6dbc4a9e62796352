//! imagegate-core's integration tests: one binary (linking is the cost on two cores).

mod adversarial;
mod decide;
mod distribution;
mod properties;
