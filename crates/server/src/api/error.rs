//! The API's one error shape: `{"error": {"code", "message", "details"?}}`
//! with the matching status. Internal causes go to the log, never the client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::identity::IdentityError;
use crate::store::StoreError;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Vec<ProblemDetail>,
}

/// The body of every error answer.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    error: ErrorInner,
}

/// What went wrong.
#[derive(Serialize, ToSchema)]
pub struct ErrorInner {
    /// Stable: `unauthorized`, `forbidden`, `not_found`, `invalid`, `unavailable`.
    code: &'static str,
    /// For people.
    message: String,
    /// For an invalid policy: each problem and where.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    details: Vec<ProblemDetail>,
}

/// One problem in a document: its field path and place.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ProblemDetail {
    /// `spec.registryAccess.allow[2]`.
    pub path: String,
    /// 1-based line, when known.
    pub line: Option<u64>,
    /// 1-based column, when known.
    pub column: Option<u64>,
    /// What is wrong.
    pub message: String,
}

impl ApiError {
    /// 401: no credentials, or credentials that do not work.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403: signed in, but not allowed to do this.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 422: the request is well-formed but its content is refused.
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
    }

    /// 409: the thing changed meanwhile, or the change would not do what it says.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 400: the body is not the JSON this endpoint takes.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 503: the store could not answer. The cause is logged, not sent.
    pub fn unavailable(cause: &dyn std::fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "api: the store could not answer");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the store is unavailable; try again",
        )
    }

    /// With per-field problems.
    pub fn with_details(mut self, details: Vec<ProblemDetail>) -> ApiError {
        self.details = details;
        self
    }

    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
        }
    }
}

impl From<IdentityError> for ApiError {
    fn from(e: IdentityError) -> ApiError {
        match e {
            IdentityError::Store(StoreError::Missing { what, name }) => {
                ApiError::not_found(format!("{what} {name} not found"))
            }
            IdentityError::Store(StoreError::Exists { what, name }) => {
                ApiError::invalid(format!("{what} {name} already exists"))
            }
            IdentityError::Invalid(m) => ApiError::invalid(m),
            IdentityError::Policy(m) => ApiError::invalid(format!("the policy does not load: {m}")),
            other => ApiError::unavailable(&other),
        }
    }
}

impl From<crate::settings::SettingsError> for ApiError {
    fn from(e: crate::settings::SettingsError) -> ApiError {
        use crate::settings::SettingsError;
        match e {
            SettingsError::Invalid { message, problems } => ApiError::invalid(message)
                .with_details(
                    problems
                        .into_iter()
                        .map(|p| ProblemDetail {
                            path: p.path,
                            line: p.at.map(|(l, _)| l),
                            column: p.at.map(|(_, c)| c),
                            message: p.message,
                        })
                        .collect(),
                ),
            SettingsError::Missing(m) => ApiError::not_found(m),
            SettingsError::Forbidden(m) => ApiError::forbidden(m),
            SettingsError::Identity(e) => e.into(),
            stored @ SettingsError::Stored { .. } => ApiError::unavailable(&stored),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let unauthorized = self.status == StatusCode::UNAUTHORIZED;
        let body = ErrorBody {
            error: ErrorInner {
                code: self.code,
                message: self.message,
                details: self.details,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if unauthorized {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer realm="imagegate""#),
            );
        }
        response
    }
}
