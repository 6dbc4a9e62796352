//! The registry proxy door (issue 14): imagegate as a Docker Engine's or
//! containerd's HTTPS proxy, so `docker pull someuser/custom-image` is
//! decided with no gateway host in the name. So far two pieces have
//! landed: [`target`], which reads a `CONNECT` request's target, and
//! [`ca`], which issues each registry host's certificate from the proxy CA.
//! The listener and the tunnel into the gateway's code are not built yet;
//! nothing here is served.

pub mod ca;
pub mod target;
