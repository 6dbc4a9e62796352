//! `POST /admission/validate`: the ValidatingAdmissionWebhook door. Reads an
//! AdmissionReview (`admission.k8s.io/v1`, or `v1beta1`, answered in the
//! version asked), finds every image of the workload with
//! `imagegate_scan::manifest`, asks `decide` for each, and answers with the
//! refused images and their containers' paths. Malformed reviews get HTTP 400
//! with an AdmissionReview body saying what is wrong.

use std::collections::HashMap;
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use imagegate_core::decision::message;
use imagegate_core::{Decision, Input, Mode, Verdict, decide};
use imagegate_scan::manifest::{self, ImageSite};
use kube_core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube_core::{DynamicObject, Status, TypeMeta};

use crate::apiserver::{ApiServer, Door};
use crate::audit;
use crate::body::{BodyError, read_body};
use crate::state::AppState;
use crate::store::AuditEvent;

/// The door's name in metrics and audit records.
pub const DOOR: &str = "admission";
/// The AdmissionReview versions answered.
pub const VERSIONS: [&str; 2] = ["admission.k8s.io/v1", "admission.k8s.io/v1beta1"];

/// The handler; with an admission client CA, only kube-apiserver reaches
/// it. The answer waits until the review's decisions are recorded.
pub async fn validate(State(state): State<AppState>, call: ApiServer<Webhook>) -> Response {
    let started = Instant::now();
    let response = match read_body(call.body, state.max_body_bytes).await {
        Ok(bytes) => {
            let mut events = Vec::new();
            match review(&state, &bytes, &mut events) {
                Ok(review) => match state.audit.commit(events).await {
                    Err(e) if state.audit.required() => {
                        Json(unrecorded(review, &e)).into_response()
                    }
                    _ => Json(review).into_response(),
                },
                Err(invalid) => invalid.into_response(),
            }
        }
        Err(err) => Invalid::from(err).into_response(),
    };
    state.metrics.latency(DOOR, started.elapsed().as_secs_f64());
    response
}

/// This door as kube-apiserver's ValidatingAdmissionWebhook plugin calls it.
pub struct Webhook;

impl Door for Webhook {
    const NAME: &'static str = DOOR;

    /// HTTP 401 with an AdmissionReview whose status says why; in
    /// `admission.k8s.io/v1` and without a uid, as the review is not parsed.
    fn unauthenticated(message: &str) -> Response {
        let mut response = AdmissionResponse::invalid(message);
        response.result = Status::failure(message, "Unauthorized").with_code(401);
        (StatusCode::UNAUTHORIZED, Json(response.into_review())).into_response()
    }
}

/// A review that cannot be answered: HTTP 400 with an AdmissionReview body.
#[derive(Debug)]
pub struct Invalid {
    types: Option<TypeMeta>,
    uid: String,
    message: String,
}

impl Invalid {
    fn new(message: impl Into<String>) -> Invalid {
        Invalid {
            types: None,
            uid: String::new(),
            message: message.into(),
        }
    }
}

impl From<BodyError> for Invalid {
    fn from(err: BodyError) -> Invalid {
        Invalid::new(err.to_string())
    }
}

impl IntoResponse for Invalid {
    fn into_response(self) -> Response {
        tracing::warn!(door = DOOR, uid = %self.uid, error = %self.message, "malformed AdmissionReview");
        let mut response = AdmissionResponse::invalid(&self.message);
        response.uid = self.uid;
        response.result.code = 400;
        if let Some(types) = self.types {
            response.types = types;
        }
        (StatusCode::BAD_REQUEST, Json(response.into_review())).into_response()
    }
}

/// Under `--audit-required`, a review whose decisions could not be recorded
/// is refused, whatever they were.
fn unrecorded(
    mut review: AdmissionReview<DynamicObject>,
    e: &audit::Unrecorded,
) -> AdmissionReview<DynamicObject> {
    tracing::error!(door = DOOR, error = %e, "refusing a review that cannot be recorded (--audit-required)");
    if let Some(response) = review.response.take() {
        let mut response = response.deny(audit::UNAVAILABLE);
        response.result.code = 503;
        response.result.reason = "ServiceUnavailable".to_owned();
        response.result.status = Some(kube_core::response::StatusSummary::Failure);
        response
            .audit_annotations
            .insert("decision".to_owned(), "deny".to_owned());
        review.response = Some(response);
    }
    review
}

/// Decides one review, adding the audit events of its decisions to
/// `events` for the caller to commit before answering.
pub fn review(
    state: &AppState,
    bytes: &[u8],
    events: &mut Vec<AuditEvent>,
) -> Result<AdmissionReview<DynamicObject>, Invalid> {
    let review: AdmissionReview<DynamicObject> = serde_json::from_slice(bytes)
        .map_err(|e| Invalid::new(format!("request body is not an AdmissionReview: {e}")))?;
    if review.types.kind != "AdmissionReview"
        || !VERSIONS.contains(&review.types.api_version.as_str())
    {
        return Err(Invalid::new(format!(
            "expected kind AdmissionReview in {}, got kind {:?} in {:?}",
            VERSIONS.join(" or "),
            review.types.kind,
            review.types.api_version
        )));
    }
    let types = review.types.clone();
    let request: AdmissionRequest<DynamicObject> = review.try_into().map_err(|_| Invalid {
        types: Some(types),
        uid: String::new(),
        message: "AdmissionReview has no request".to_owned(),
    })?;
    Ok(answer(state, &request, events).into_review())
}

fn answer(
    state: &AppState,
    req: &AdmissionRequest<DynamicObject>,
    events: &mut Vec<AuditEvent>,
) -> AdmissionResponse {
    let mut response = AdmissionResponse::from(req);
    if !matches!(req.operation, Operation::Create | Operation::Update) {
        return response;
    }
    let Some(workload) = manifest::workload(&req.kind.group, &req.kind.kind) else {
        let kind = if req.kind.group.is_empty() {
            req.kind.kind.clone()
        } else {
            format!("{}/{}", req.kind.group, req.kind.kind)
        };
        response.warnings = Some(vec![message::not_inspected(&kind)]);
        response
            .audit_annotations
            .insert("inspected".to_owned(), "false".to_owned());
        return response;
    };
    let Some(object) = &req.object else {
        return refuse_shape(response, "request has no object to inspect");
    };
    let sites = match manifest::image_sites(workload, &object.data) {
        Ok(sites) => sites,
        Err(e) => return refuse_shape(response, &e.to_string()),
    };

    let policy = state.policy();
    let namespace = req.namespace.as_deref();
    let user = req.user_info.username.as_deref();
    let mut refused = Vec::new();
    let mut warnings = Vec::new();
    let mut records = Vec::new();
    let mut decisions = Vec::with_capacity(sites.len());
    let mut note = |image: &str, path: Option<&str>, d: &Decision| {
        state.metrics.decision(DOOR, d);
        let ctx = audit::Context {
            door: DOOR,
            request: Some(&req.uid),
            namespace,
            user,
            path,
            dry_run: req.dry_run,
            org: state.policy_org.as_deref(),
            ..audit::Context::default()
        };
        state.audit.note(events, &ctx, image, d);
    };
    for site in &sites {
        let d = decide(
            &policy,
            &Input {
                image: &site.image,
                namespace,
                user,
                break_glass: false,
                owner: false,
            },
        );
        note(&site.image, Some(&site.path), &d);
        let line = message::about_image(&located(site), &site.image, &d.message);
        match d.verdict {
            Verdict::Deny => refused.push(line),
            Verdict::Allow if d.is_would_be_denial() && d.mode == Mode::Warn => warnings.push(line),
            Verdict::Allow => {}
        }
        records.push(record(site, &d));
        decisions.push(d);
    }

    // Rego sees the whole request once, in the shapes Gatekeeper (input.review)
    // and plain OPA (input.request) policies expect, plus the images decided.
    #[cfg(feature = "rego")]
    if policy.rego.is_some()
        && !decisions
            .iter()
            .all(|d| d.reason == imagegate_core::Reason::Exempt)
    {
        let request = serde_json::to_value(req).unwrap_or_default();
        let images: Vec<serde_json::Value> = sites
            .iter()
            .zip(&decisions)
            .map(|(site, d)| {
                let mut entry = imagegate_core::rego::image_entry(&site.image, d);
                entry["path"] = site.path.clone().into();
                entry["container"] = site.container.clone().into();
                entry
            })
            .collect();
        let input = serde_json::json!({
            "apiVersion": req.types.api_version,
            "kind": "AdmissionReview",
            "request": request,
            "review": request,
            "door": DOOR,
            "namespace": namespace,
            "user": user,
            "images": images,
        });
        for d in imagegate_core::rego_refusals(&policy, &input) {
            note("", None, &d);
            match d.verdict {
                Verdict::Deny => refused.push(d.message.to_string()),
                Verdict::Allow if d.mode == Mode::Warn => warnings.push(d.message.to_string()),
                Verdict::Allow => {}
            }
            records.push(serde_json::json!({"decision": d.verdict.as_str(), "reason": d.reason.code(), "message": d.message}));
        }
    }

    let decision = if !refused.is_empty() {
        "deny"
    } else if !warnings.is_empty() {
        "warn"
    } else {
        "allow"
    };
    annotate(&mut response.audit_annotations, decision, &records);
    if !warnings.is_empty() {
        response.warnings = Some(warnings);
    }
    if !refused.is_empty() {
        response = response.deny(refused.join("; "));
        response.result.code = 403;
        response.result.reason = "Forbidden".to_owned();
        response.result.status = Some(kube_core::response::StatusSummary::Failure);
    }
    response
}

/// `spec.template.spec.initContainers[0] (setup)`.
fn located(site: &ImageSite) -> String {
    match &site.container {
        Some(name) => format!("{} ({name})", site.path),
        None => site.path.clone(),
    }
}

fn record(site: &ImageSite, d: &Decision) -> serde_json::Value {
    serde_json::json!({
        "path": site.path,
        "image": site.image,
        "decision": d.verdict.as_str(),
        "reason": d.reason.code(),
    })
}

fn annotate(
    annotations: &mut HashMap<String, String>,
    decision: &str,
    records: &[serde_json::Value],
) {
    annotations.insert("decision".to_owned(), decision.to_owned());
    annotations.insert(
        "images".to_owned(),
        serde_json::Value::Array(records.to_vec()).to_string(),
    );
}

/// Refuses an object whose containers are not shaped as Kubernetes requires:
/// an image that cannot be read is never allowed unread.
fn refuse_shape(response: AdmissionResponse, why: &str) -> AdmissionResponse {
    let mut response = response.deny(message::cannot_inspect(why));
    response.result = Status::failure(&response.result.message, "BadRequest");
    response.result.code = 400;
    response
        .audit_annotations
        .insert("decision".to_owned(), "deny".to_owned());
    response
}
