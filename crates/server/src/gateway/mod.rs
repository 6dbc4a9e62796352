//! The registry gateway door (Docker Registry HTTP API v2). This part holds the
//! path router, the security boundary every request crosses before anything
//! else happens, and the registry error bodies.

pub mod route;
pub mod wire;
