//! ImageReview `imagepolicy.k8s.io/v1alpha1`, as kube-apiserver's
//! ImagePolicyWebhook admission plugin sends and reads it. k8s-openapi has no
//! types for it (the API server does not serve this group), so they are here.
//! Unknown fields are accepted: the plugin sends `metadata` and an empty `status`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The API version of ImageReview.
pub const API_VERSION: &str = "imagepolicy.k8s.io/v1alpha1";
/// The kind.
pub const KIND: &str = "ImageReview";

/// The request.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageReview {
    /// `imagepolicy.k8s.io/v1alpha1`.
    pub api_version: String,
    /// `ImageReview`.
    pub kind: String,
    /// What is being reviewed.
    pub spec: ImageReviewSpec,
}

/// The pod being admitted, as the plugin describes it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageReviewSpec {
    /// Every container of the pod (init and ephemeral included).
    #[serde(default)]
    pub containers: Vec<ImageReviewContainerSpec>,
    /// The pod's annotations matching `*.image-policy.k8s.io/*`.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// The pod's namespace.
    #[serde(default)]
    pub namespace: String,
}

/// One container.
#[derive(Clone, Debug, Deserialize)]
pub struct ImageReviewContainerSpec {
    /// The image as written in the pod.
    pub image: String,
}

/// The answer.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageReviewResponse {
    /// `imagepolicy.k8s.io/v1alpha1`.
    pub api_version: &'static str,
    /// `ImageReview`.
    pub kind: &'static str,
    /// The verdict.
    pub status: ImageReviewStatus,
}

/// The verdict on the whole pod.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageReviewStatus {
    /// Whether every image may run.
    pub allowed: bool,
    /// Why not (shown to the user by kube-apiserver).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Added to the audit event, prefixed by the plugin.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub audit_annotations: BTreeMap<String, String>,
}
