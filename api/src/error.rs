//! Errors at the HTTP edge: each becomes a JSON body `{ "error": code, "message": text }`.
//! Internal details are logged here and never sent to clients.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::store::StoreError;

/// Everything a handler can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed body or parameter (400); the message says what is wrong with the input.
    #[error("{0}")]
    BadRequest(String),
    /// Body over the route's cap (413).
    #[error("request body too large (limit {0} bytes)")]
    TooLarge(usize),
    /// The body did not arrive within `BODY_READ_TIMEOUT_MS` (408).
    #[error("request body not received within {0} ms")]
    BodyTimeout(u64),
    /// The request URI is over the API's limit (414).
    #[error("request URI too long (limit {0} bytes)")]
    UriTooLong(usize),
    /// The request's headers are over the API's limits (431).
    #[error("request headers too large (limit {0} bytes, {1} fields)")]
    HeadersTooLarge(usize, usize),
    /// The body is not `application/json` (415).
    #[error("{0}")]
    UnsupportedMediaType(&'static str),
    /// No or wrong bearer token (401).
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// The endpoint is switched off by configuration (403).
    #[error("{0}")]
    Disabled(&'static str),
    /// Unknown route (404).
    #[error("no such route")]
    NotFound,
    /// Known route, wrong method (405).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A bounded resource is busy (429).
    #[error("{0}")]
    Busy(&'static str),
    /// The database is unreachable or overloaded (503): retry later.
    #[error("service unavailable")]
    Unavailable(String),
    /// Anything else (500).
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::BodyTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            ApiError::UriTooLong(_) => (StatusCode::URI_TOO_LONG, "uri_too_long"),
            ApiError::HeadersTooLarge(..) => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
            ),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Disabled(_) => (StatusCode::FORBIDDEN, "disabled"),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Busy(_) => (StatusCode::TOO_MANY_REQUESTS, "busy"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => ApiError::Unavailable(m.to_string()),
            StoreError::Internal(m) => ApiError::Internal(m.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Unavailable(detail) => tracing::warn!(detail = %detail, "answering 503"),
            ApiError::Internal(detail) => tracing::error!(detail = %detail, "answering 500"),
            _ => {}
        }
        let (status, code) = self.parts();
        let mut resp = (
            status,
            Json(json!({ "error": code, "message": self.to_string() })),
        )
            .into_response();
        // The rest of the request (an unread body, a huge head) is not worth reading.
        if matches!(
            self,
            ApiError::BodyTimeout(_)
                | ApiError::TooLarge(_)
                | ApiError::UriTooLong(_)
                | ApiError::HeadersTooLarge(..)
        ) {
            resp.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
        }
        if matches!(self, ApiError::Unauthorized) {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}
