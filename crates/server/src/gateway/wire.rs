//! Registry error bodies, as the distribution spec defines them:
//! `{"errors":[{"code":"DENIED","message":"..."}]}`. Clients print the
//! message after `denied: `.

use serde::Serialize;

/// The distribution spec's error codes this gateway answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// The blob is unknown to the registry.
    BlobUnknown,
    /// The digest is not valid.
    DigestInvalid,
    /// The manifest is unknown.
    ManifestUnknown,
    /// The manifest is not valid (too large, or not matching its digest).
    ManifestInvalid,
    /// The repository name is not valid.
    NameInvalid,
    /// The repository is unknown.
    NameUnknown,
    /// The client must authenticate.
    Unauthorized,
    /// Access is refused.
    Denied,
    /// The operation is not supported.
    Unsupported,
    /// Too many requests.
    Toomanyrequests,
    /// The service (an upstream) is unavailable.
    Unavailable,
}

/// One error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RegistryError {
    /// The code.
    pub code: ErrorCode,
    /// What the client shows.
    pub message: String,
    /// Machine-readable detail, when there is some.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

/// The body: a list of errors.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ErrorBody {
    /// The errors.
    pub errors: Vec<RegistryError>,
}

impl ErrorBody {
    /// A body with one error.
    pub fn one(code: ErrorCode, message: impl Into<String>) -> ErrorBody {
        ErrorBody {
            errors: vec![RegistryError {
                code,
                message: message.into(),
                detail: None,
            }],
        }
    }
}
