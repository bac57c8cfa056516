//! The HTTP API's error type: every failure becomes `{"error": {"code", "message"}}` with a
//! status that says whose fault it is; internal causes are logged, never sent.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::openapi::{ErrorBody, ErrorDetail};
use crate::domain::Invalid;
use crate::store;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed: not JSON, wrong types, a bad path or query.
    #[error("{0}")]
    BadRequest(String),
    #[error("the request body is larger than the limit of {0} bytes")]
    TooLarge(usize),
    /// Well-formed but a value is invalid.
    #[error("{0}")]
    Invalid(String),
    #[error("login required")]
    Unauthenticated,
    #[error("wrong username or password")]
    BadLogin,
    #[error("{0}")]
    Forbidden(String),
    /// A state-changing request (or a WebSocket) from a page of another origin.
    #[error("{0}")]
    CrossOrigin(String),
    /// The password was reset by an admin: only changing it is allowed.
    #[error("your password was reset; change it (POST /api/password) before anything else")]
    PasswordChangeRequired,
    /// The password was right; the account's second factor's code must come with it.
    #[error("this account needs the code of its second factor (field `code`)")]
    SecondFactorRequired,
    /// The role needs a second factor the account has not set up: only that is allowed.
    #[error("your role needs a second factor; set one up (POST /api/me/second-factor) before anything else")]
    SecondFactorEnrolmentRequired,
    /// Too many login attempts from this address, or every password check is busy.
    #[error("too many login attempts; retry in {0} s")]
    TooManyAttempts(u64),
    #[error("{0} not found")]
    NotFound(String),
    #[error("the enrolment code is unknown, used or expired")]
    UnknownEnrolmentCode,
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("storage is full; nothing was saved")]
    StorageFull,
    /// The storage failed or refused the write (I/O error, read-only); nothing was saved.
    #[error("{0}; nothing was saved, retry later")]
    StorageUnavailable(String),
    #[error("internal error")]
    Internal(anyhow::Error),
}

/// Seconds a client is asked to wait before retrying after a storage failure.
const RETRY_AFTER_SECS: u32 = 5;

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            Self::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            Self::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
            Self::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            Self::BadLogin => (StatusCode::UNAUTHORIZED, "bad_login"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::CrossOrigin(_) => (StatusCode::FORBIDDEN, "cross_origin"),
            Self::PasswordChangeRequired => (StatusCode::FORBIDDEN, "password_change_required"),
            Self::SecondFactorRequired => (StatusCode::UNAUTHORIZED, "second_factor_required"),
            Self::SecondFactorEnrolmentRequired => {
                (StatusCode::FORBIDDEN, "second_factor_enrolment_required")
            }
            Self::TooManyAttempts(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::UnknownEnrolmentCode => (StatusCode::NOT_FOUND, "unknown_enrolment_code"),
            Self::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            Self::StorageFull => (StatusCode::INSUFFICIENT_STORAGE, "storage_full"),
            Self::StorageUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let Self::Internal(e) = &self {
            tracing::error!(error = ?e, "request failed");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message: self.to_string(),
            },
        };
        let mut response = (status, Json(body)).into_response();
        if let Self::TooManyAttempts(secs) = self {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(secs),
            );
        }
        if matches!(self, Self::StorageFull | Self::StorageUnavailable(_)) {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(RETRY_AFTER_SECS),
            );
            tracing::warn!(error = %self, "storage fault answered");
        }
        response
    }
}

impl From<store::Error> for ApiError {
    fn from(e: store::Error) -> Self {
        match e {
            store::Error::NotFound(what) => Self::NotFound(what),
            store::Error::Conflict { code, message } => Self::Conflict { code, message },
            store::Error::StorageFull => Self::StorageFull,
            failed @ store::Error::StorageFailed(_) => Self::StorageUnavailable(failed.to_string()),
            other => Self::Internal(other.into()),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    /// A fault, unless it is a busy password worker carried along (hashing a new password): 429.
    fn from(e: anyhow::Error) -> Self {
        match e.downcast::<crate::auth::Busy>() {
            Ok(busy) => busy.into(),
            Err(e) => Self::Internal(e),
        }
    }
}

impl From<crate::auth::Busy> for ApiError {
    fn from(_: crate::auth::Busy) -> Self {
        Self::TooManyAttempts(1)
    }
}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> Self {
        Self::Invalid(e.0)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return Self::TooLarge(super::MAX_BODY_BYTES);
        }
        Self::BadRequest(e.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> Self {
        Self::BadRequest(e.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        Self::BadRequest(e.body_text())
    }
}

/// `axum::Json` whose rejection is an [`ApiError`] naming the problem.
#[derive(Debug, axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// `axum::extract::Path` whose rejection is an [`ApiError`].
#[derive(Debug, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// `axum::extract::Query` whose rejection is an [`ApiError`].
#[derive(Debug, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_password_worker_is_a_429_however_it_is_carried() {
        let carried = ApiError::from(anyhow::Error::from(crate::auth::Busy));
        assert_eq!(carried.status_and_code().0, StatusCode::TOO_MANY_REQUESTS);
        let fault = ApiError::from(anyhow::anyhow!("disk on fire"));
        assert_eq!(fault.status_and_code().0, StatusCode::INTERNAL_SERVER_ERROR);
    }
}
