//! The HTTP API's error type: every failure leaves as `{"error": {"code", "message"}}`
//! with the right status, and internal details are logged, never sent.

use axum::extract::rejection::JsonRejection;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Seconds a client is told to wait when the queue is full or the database is down.
pub const RETRY_AFTER_SECS: u32 = 1;

/// What went wrong with a request, as the client is allowed to see it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON, or not the JSON this route takes.
    #[error("{0}")]
    BadRequest(String),
    /// The JSON is well-formed but its values are not acceptable.
    #[error("{message}")]
    Unprocessable {
        message: String,
        details: Option<serde_json::Value>,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("missing or unknown API key")]
    Unauthorized,
    /// The key is known but its role may not call this route (a classify key on an admin
    /// route); the message says what the key may do.
    #[error("{0}")]
    Forbidden(String),
    #[error("the request body is larger than the limit of this server")]
    PayloadTooLarge,
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("this route does not accept that method")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(String),
    /// The inference queue is full: try again shortly.
    #[error("the server is busy; retry shortly")]
    Overloaded,
    /// The database (or the model) cannot be reached right now.
    #[error("{0}")]
    Unavailable(String),
    #[error("the request took too long")]
    Timeout,
    /// Anything else: logged with its cause, answered with a generic message.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn unprocessable(message: impl Into<String>) -> ApiError {
        ApiError::Unprocessable {
            message: message.into(),
            details: None,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Overloaded | ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Timeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A stable, machine-readable name for the error.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unprocessable { .. } => "invalid_input",
            ApiError::NotFound(_) => "not_found",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::Overloaded => "overloaded",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Timeout => "timeout",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self {
            tracing::error!(%cause, "internal error");
        }
        let mut error = json!({"code": self.code(), "message": self.to_string()});
        if let ApiError::Unprocessable {
            details: Some(d), ..
        } = &self
        {
            error["details"] = d.clone();
        }
        let mut response = (self.status(), axum::Json(json!({ "error": error }))).into_response();
        if matches!(self, ApiError::Overloaded | ApiError::Unavailable(_)) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(
                "send the body as JSON with `Content-Type: application/json`".into(),
            ),
            StatusCode::UNPROCESSABLE_ENTITY => ApiError::unprocessable(rejection.body_text()),
            _ => ApiError::BadRequest(rejection.body_text()),
        }
    }
}

impl From<crate::service::idempotency::KeyError> for ApiError {
    fn from(e: crate::service::idempotency::KeyError) -> ApiError {
        use crate::service::idempotency::KeyError;
        match e {
            KeyError::Malformed => ApiError::BadRequest(e.to_string()),
            KeyError::Reused => ApiError::unprocessable(e.to_string()),
        }
    }
}

impl From<crate::service::idempotency::ReplayError> for ApiError {
    fn from(e: crate::service::idempotency::ReplayError) -> ApiError {
        use crate::service::idempotency::ReplayError;
        match e {
            ReplayError::Key(k) => k.into(),
            ReplayError::Store(s) => s.into(),
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> ApiError {
        match e {
            crate::store::StoreError::Unavailable(cause) => {
                tracing::warn!(%cause, "database unavailable");
                ApiError::Unavailable("the database is unavailable; retry shortly".into())
            }
            crate::store::StoreError::Other(cause) => ApiError::Internal(cause),
        }
    }
}

/// A JSON body extractor whose rejections become [`ApiError`]s.
#[derive(Debug, Clone, Copy, Default, axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

impl<T: serde::Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

impl From<crate::service::activation::ActivationError> for ApiError {
    fn from(e: crate::service::activation::ActivationError) -> ApiError {
        use crate::service::activation::ActivationError as A;
        match e {
            A::NotFound(_) => ApiError::NotFound(e.to_string()),
            A::Load { .. } | A::Superseded { .. } => ApiError::Conflict(e.to_string()),
            A::Store(s) => s.into(),
        }
    }
}
