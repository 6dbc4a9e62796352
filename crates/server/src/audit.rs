//! The audit record of every decision. Until the store exists (the registry
//! gateway issue), records are structured log events on the `imagegate::audit`
//! target, one per image decided.

use imagegate_core::Decision;

/// Who asked, through which door, about what.
#[derive(Clone, Copy, Debug, Default)]
pub struct Context<'a> {
    /// The door.
    pub door: &'static str,
    /// The request's identifier (an AdmissionReview uid).
    pub request: Option<&'a str>,
    /// The Kubernetes namespace.
    pub namespace: Option<&'a str>,
    /// The user.
    pub user: Option<&'a str>,
    /// Where in the object the image is (`spec.containers[0]`).
    pub path: Option<&'a str>,
    /// Whether the request will not be persisted (Kubernetes dry-run).
    pub dry_run: bool,
}

/// Records one decision.
pub fn record(ctx: &Context<'_>, image: &str, d: &Decision) {
    tracing::info!(
        target: "imagegate::audit",
        door = ctx.door,
        request = ctx.request,
        namespace = ctx.namespace,
        user = ctx.user,
        path = ctx.path,
        dry_run = ctx.dry_run,
        image,
        reference = d.reference.as_ref().map(|r| r.as_str()),
        category = d.category.map(|c| c.code()),
        decision = d.verdict.as_str(),
        reason = d.reason.code(),
        mode = d.mode.as_str(),
        message = %d.message,
        "decision"
    );
    if d.reason == imagegate_core::Reason::BreakGlass {
        tracing::warn!(
            target: "imagegate::audit",
            door = ctx.door,
            namespace = ctx.namespace,
            image,
            message = %d.message,
            "BREAK-GLASS: a refused image was allowed"
        );
    }
}
