//! Every failure the API reports is JSON: `{"error": {"type", "message"}}` with a 4xx status
//! for bad input, so a client can show the message and a script can branch on the type.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::launch::LaunchError;

/// An error response.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable, machine-readable kind (`invalid_request`, `not_found`, ...).
    pub kind: &'static str,
    /// What went wrong and what to do about it.
    pub message: String,
}

impl ApiError {
    /// An error with this status, kind and message.
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
        }
    }

    /// 400: the request is malformed or asks for something impossible.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 404: no such thing.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409: the request conflicts with the current state.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 404 for a session id that is not being served.
    pub fn no_live_session(id: &str) -> Self {
        Self::not_found(format!(
            "no live session {id}; list sessions with GET /sessions, or resume a stored one \
             with POST /sessions {{\"resume\": \"{id}\"}}"
        ))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"type": self.kind, "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON: send the header Content-Type: application/json",
            ),
            JsonRejection::JsonSyntaxError(error) => Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("the body is not valid JSON: {}", source_text(&error)),
            ),
            JsonRejection::JsonDataError(error) => {
                Self::bad_request(format!("the body does not fit: {}", source_text(&error)))
            }
            JsonRejection::BytesRejection(error) => Self::new(
                error.status(),
                "invalid_body",
                format!("the body could not be read: {}", error.body_text()),
            ),
            other => Self::new(other.status(), "invalid_body", other.body_text()),
        }
    }
}

/// The innermost cause of a rejection: serde's message with line and column, without axum's
/// generic prefix.
fn source_text(error: &dyn std::error::Error) -> String {
    let mut current = error;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

impl From<LaunchError> for ApiError {
    fn from(error: LaunchError) -> Self {
        match &error {
            LaunchError::BadCwd(message) => Self::bad_request(message.clone()),
            LaunchError::Setup(keel_setup::SetupError::Session(
                keel_session::SessionError::NotFound { .. },
            )) => Self::not_found(error.to_string()),
            LaunchError::Setup(_) => {
                Self::new(StatusCode::BAD_REQUEST, "setup_failed", error.to_string())
            }
            LaunchError::Internal(message) => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                message.clone(),
            ),
        }
    }
}
