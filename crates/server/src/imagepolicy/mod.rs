//! `POST /imagepolicy`: the backend of kube-apiserver's ImagePolicyWebhook
//! admission plugin. The plugin sends images, pass-through annotations and the
//! namespace, never the user, so only namespace exemptions apply. The
//! `alpha.image-policy.k8s.io/break-glass: "true"` annotation overrides a
//! refusal when the policy enables break-glass, and is recorded loudly.

pub mod wire;

use std::collections::BTreeMap;
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use imagegate_core::decision::message;
use imagegate_core::{Input, Reason, Verdict, decide};

use crate::apiserver::{ApiServer, Door};
use crate::audit;
use crate::body::read_body;
use crate::state::AppState;
use crate::store::AuditEvent;
use wire::{API_VERSION, ImageReview, ImageReviewResponse, ImageReviewStatus, KIND};

/// The door's name in metrics and audit records.
pub const DOOR: &str = "imagepolicy";
/// The annotation that asks to break glass.
pub const BREAK_GLASS: &str = "alpha.image-policy.k8s.io/break-glass";

/// The handler; with an admission client CA, only kube-apiserver reaches it.
pub async fn review(State(state): State<AppState>, call: ApiServer<Webhook>) -> Response {
    let started = Instant::now();
    let response = match read_body(call.body, state.max_body_bytes).await {
        Ok(bytes) => match parse(&bytes) {
            Ok(review) => {
                let mut events = Vec::new();
                let answer = answer(&state, &review, &mut events);
                // The answer waits until its decisions are recorded.
                match state.audit.commit(events).await {
                    Err(e) if state.audit.required() => {
                        Json(unrecorded(answer, &e)).into_response()
                    }
                    _ => Json(answer).into_response(),
                }
            }
            Err(message) => invalid(message),
        },
        Err(err) => invalid(err.to_string()),
    };
    state.metrics.latency(DOOR, started.elapsed().as_secs_f64());
    response
}

/// This door as kube-apiserver's ImagePolicyWebhook plugin calls it.
pub struct Webhook;

impl Door for Webhook {
    const NAME: &'static str = DOOR;

    /// HTTP 401 with an ImageReview whose reason says why.
    fn unauthenticated(message: &str) -> Response {
        (StatusCode::UNAUTHORIZED, Json(refusal(message.to_owned()))).into_response()
    }
}

fn refusal(reason: String) -> ImageReviewResponse {
    ImageReviewResponse {
        api_version: API_VERSION,
        kind: KIND,
        status: ImageReviewStatus {
            allowed: false,
            reason,
            audit_annotations: BTreeMap::new(),
        },
    }
}

/// HTTP 400 with an ImageReview body whose reason says what is wrong. The
/// plugin treats any error as a failed call (and then applies `defaultAllow`).
fn invalid(message: String) -> Response {
    tracing::warn!(door = DOOR, error = %message, "malformed ImageReview");
    (StatusCode::BAD_REQUEST, Json(refusal(message))).into_response()
}

/// Under `--audit-required`, a review whose decisions could not be recorded
/// is refused, whatever they were.
fn unrecorded(mut answer: ImageReviewResponse, e: &audit::Unrecorded) -> ImageReviewResponse {
    tracing::error!(door = DOOR, error = %e, "refusing a review that cannot be recorded (--audit-required)");
    answer.status.allowed = false;
    answer.status.reason = audit::UNAVAILABLE.to_owned();
    answer
        .status
        .audit_annotations
        .insert("decision".to_owned(), "deny".to_owned());
    answer
}

/// Parses an ImageReview body, saying what is wrong with one that is not.
pub fn parse(bytes: &[u8]) -> Result<ImageReview, String> {
    let review: ImageReview = serde_json::from_slice(bytes)
        .map_err(|e| format!("request body is not an ImageReview: {e}"))?;
    if review.api_version != API_VERSION || review.kind != KIND {
        return Err(format!(
            "expected kind {KIND} in {API_VERSION}, got kind {:?} in {:?}",
            review.kind, review.api_version
        ));
    }
    Ok(review)
}

/// Decides every image of the review, adding the audit events of its
/// decisions to `events` for the caller to commit before answering.
pub fn answer(
    state: &AppState,
    review: &ImageReview,
    events: &mut Vec<AuditEvent>,
) -> ImageReviewResponse {
    let policy = state.policy();
    let spec = &review.spec;
    let namespace = (!spec.namespace.is_empty()).then_some(spec.namespace.as_str());
    let break_glass = spec
        .annotations
        .get(BREAK_GLASS)
        .is_some_and(|v| v == "true");
    let mut refused = Vec::new();
    let mut warnings = Vec::new();
    let mut broke_glass = Vec::new();
    let mut decisions = Vec::with_capacity(spec.containers.len());
    for (i, container) in spec.containers.iter().enumerate() {
        let d = decide(
            &policy,
            &Input {
                image: &container.image,
                namespace,
                user: None,
                break_glass,
                owner: false,
            },
        );
        state.metrics.decision(DOOR, &d);
        let path = format!("spec.containers[{i}]");
        state.audit.note(
            events,
            &audit::Context {
                door: DOOR,
                namespace,
                path: Some(&path),
                org: state.policy_org.as_deref(),
                ..audit::Context::default()
            },
            &container.image,
            &d,
        );
        let line = message::about_image(&path, &container.image, &d.message);
        match d.verdict {
            Verdict::Deny => refused.push(line),
            Verdict::Allow if d.reason == Reason::BreakGlass => broke_glass.push(line),
            Verdict::Allow if d.is_would_be_denial() => warnings.push(line),
            Verdict::Allow => {}
        }
        decisions.push(d);
    }

    #[cfg(feature = "rego")]
    if policy.rego.is_some() && !decisions.iter().all(|d| d.reason == Reason::Exempt) {
        let images: Vec<serde_json::Value> = spec
            .containers
            .iter()
            .zip(&decisions)
            .map(|(c, d)| imagegate_core::rego::image_entry(&c.image, d))
            .collect();
        let input = serde_json::json!({
            "apiVersion": API_VERSION,
            "kind": KIND,
            "spec": {"containers": spec.containers.iter().map(|c| serde_json::json!({"image": c.image})).collect::<Vec<_>>(), "annotations": spec.annotations, "namespace": spec.namespace},
            "door": DOOR,
            "namespace": namespace,
            "images": images,
        });
        for d in imagegate_core::rego_refusals(&policy, &input) {
            let d = imagegate_core::decide::with_break_glass(&policy, break_glass, d);
            state.metrics.decision(DOOR, &d);
            state.audit.note(
                events,
                &audit::Context {
                    door: DOOR,
                    namespace,
                    org: state.policy_org.as_deref(),
                    ..audit::Context::default()
                },
                "",
                &d,
            );
            match d.verdict {
                Verdict::Deny => refused.push(d.message.to_string()),
                Verdict::Allow if d.reason == Reason::BreakGlass => {
                    broke_glass.push(d.message.to_string())
                }
                Verdict::Allow => warnings.push(d.message.to_string()),
            }
        }
    }
    let _ = &decisions;
    let mut annotations = BTreeMap::new();
    let decision = if !refused.is_empty() {
        "deny"
    } else if !broke_glass.is_empty() {
        "break-glass"
    } else if !warnings.is_empty() {
        "warn"
    } else {
        "allow"
    };
    annotations.insert("decision".to_owned(), decision.to_owned());
    if !broke_glass.is_empty() {
        annotations.insert("break-glass".to_owned(), broke_glass.join("; "));
    }
    if !warnings.is_empty() {
        annotations.insert("warnings".to_owned(), warnings.join("; "));
    }
    ImageReviewResponse {
        api_version: API_VERSION,
        kind: KIND,
        status: ImageReviewStatus {
            allowed: refused.is_empty(),
            reason: refused.join("; "),
            audit_annotations: annotations,
        },
    }
}
