//! OSB error answers: every error is `application/json` `{"error": CamelCase, "description":
//! …}` (osb.md §4), and the mapping `(Route, BrokerError)` → status + body (DESIGN.md §7). A
//! 5xx names the failing dependency and the request identity, never upstream text; the full
//! error is logged here, once. Must not import adapter crates.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::Route;
use crate::domain::broker::{
    ASYNC_REQUIRED_DESCRIPTION, BrokerError, CONCURRENCY_ERROR_DESCRIPTION,
    MAINTENANCE_INFO_CONFLICT_DESCRIPTION,
};

/// The OSB error body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorBody {
    pub error: String,
    pub description: String,
}

/// An OSB error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
    /// 401 answers carry `WWW-Authenticate`.
    challenge: bool,
}

impl ApiError {
    /// An error answer with this status, `error` code and description.
    pub fn new(status: StatusCode, error: &str, description: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                error: error.to_owned(),
                description: description.into(),
            },
            challenge: false,
        }
    }

    /// 400 `BadRequest`.
    pub fn bad_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", description)
    }

    /// 401 with a Basic challenge.
    pub fn unauthorized() -> Self {
        Self {
            challenge: true,
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "Valid HTTP Basic credentials are required.",
            )
        }
    }

    /// 422 `AsyncRequired` with the exact description of osb.md §4.1.
    pub fn async_required() -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "AsyncRequired",
            ASYNC_REQUIRED_DESCRIPTION,
        )
    }

    /// Maps a broker error on a route; logs it (5xx with its full detail).
    pub fn from_broker(route: Route, e: BrokerError, request_identity: &str) -> Self {
        let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
        let answer = match &e {
            BrokerError::BadRequest(m) => Self::bad_request(m.clone()),
            BrokerError::NotFound(m) if matches!(route, Route::Deprovision | Route::Unbind) => {
                Self::new(StatusCode::GONE, "Gone", m.clone())
            }
            BrokerError::NotFound(m) => Self::new(StatusCode::NOT_FOUND, "NotFound", m.clone()),
            BrokerError::Gone(m) => Self::new(StatusCode::GONE, "Gone", m.clone()),
            BrokerError::Conflict(m) => Self::new(StatusCode::CONFLICT, "Conflict", m.clone()),
            BrokerError::AsyncRequired => Self::async_required(),
            BrokerError::ConcurrencyError => Self::new(
                unprocessable,
                "ConcurrencyError",
                CONCURRENCY_ERROR_DESCRIPTION,
            ),
            BrokerError::MaintenanceInfoConflict => Self::new(
                unprocessable,
                "MaintenanceInfoConflict",
                MAINTENANCE_INFO_CONFLICT_DESCRIPTION,
            ),
            BrokerError::Unprocessable { error, description } => {
                Self::new(unprocessable, error, description.clone())
            }
            BrokerError::DependencyUnavailable { what, .. } => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                format!("{what} is unavailable (request identity {request_identity})."),
            ),
            BrokerError::Internal(_) => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                format!("The broker failed internally (request identity {request_identity})."),
            ),
        };
        if answer.status.is_server_error() {
            tracing::error!(route = %route, status = answer.status.as_u16(), error = %e, "request failed");
        } else {
            tracing::info!(route = %route, status = answer.status.as_u16(), error = %e, "request refused");
        }
        answer
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if self.challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"cloudify-osb\", charset=\"UTF-8\""),
            );
        }
        response
    }
}
