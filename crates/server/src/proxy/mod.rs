//! The registry proxy door (issue 14): imagegate as a Docker Engine's or
//! containerd's HTTPS proxy, so `docker pull someuser/custom-image` is
//! decided with no gateway host in the name. So far only the first piece
//! has landed: [`target`], which reads a `CONNECT` request's target. The
//! listener, the on-the-fly certificates and the tunnel into the gateway's
//! code are not built yet; nothing here is served.

pub mod target;
