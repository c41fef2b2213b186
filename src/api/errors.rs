//! API errors: a status, a stable code, a message that says what to do, and the field at fault.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use super::schema::{ErrorBody, ErrorDetail};

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>, field: Option<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "steward.bad_request",
            message: message.into(),
            field,
        }
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "steward.too_large",
            message: message.into(),
            field: None,
        }
    }

    /// An unknown profile, named by `field`: the flavor's extra spec or the scheduler hint.
    pub fn unknown_profile(message: impl Into<String>, field: &str) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "steward.unknown_profile",
            message: message.into(),
            field: Some(field.into()),
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "steward.unauthorized",
            message: message.into(),
            field: None,
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::FORBIDDEN,
            code: "steward.forbidden",
            message: message.into(),
            field: None,
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: "steward.not_found",
            message: message.into(),
            field: None,
        }
    }

    /// A known path asked with a method it does not answer (the caller adds `Allow`).
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::METHOD_NOT_ALLOWED,
            code: "steward.method_not_allowed",
            message: message.into(),
            field: None,
        }
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::CONFLICT,
            code: "steward.conflict",
            message: message.into(),
            field: None,
        }
    }

    /// A callout named hosts by references this steward does not hold (docs/callout.md).
    pub fn unknown_host_refs(message: impl Into<String>, field: String) -> Self {
        ApiError {
            status: StatusCode::CONFLICT,
            code: "steward.unknown_host_refs",
            message: message.into(),
            field: Some(field),
        }
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "steward.unavailable",
            message: message.into(),
            field: None,
        }
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message.clone(),
                field: self.field.clone(),
            },
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(self.body())
    }
}
