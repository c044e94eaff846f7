//! The one error shape of the API: `{"error": {"code", "message"}}` with the right status,
//! plus `field` and `fields` when the request had fields at fault. A 5xx logs its cause and
//! tells the client nothing internal.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::store::StoreError;

/// What every error answers (documents the shape in the OpenAPI document).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct ErrorDetail {
    /// Machine-readable, e.g. `invalid_request`, `not_found`, `unauthorized`.
    code: String,
    /// What is wrong, for people; names the field at fault.
    message: String,
    /// The (first) field at fault, as a path: `url`, `metadata.projectIds[2]`,
    /// `connector.config.channel`.
    field: Option<String>,
    /// Every field at fault, when the request had any: all of them, not just the first.
    fields: Option<Vec<FieldError>>,
}

/// One field of a request that is wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError { field: field.into(), message: message.into() }
    }
}

#[derive(Debug)]
pub struct ApiError {
    pub(super) status: StatusCode,
    pub(super) code: &'static str,
    message: String,
    retry_after: Option<u64>,
    fields: Vec<FieldError>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), retry_after: None, fields: Vec::new() }
    }

    /// A 400; a message that starts with a field's path (`url: …`) names that field.
    pub fn bad_request(message: impl Into<String>) -> Self {
        let message = message.into();
        let fields = field_of(&message)
            .map(|(field, rest)| vec![FieldError { field: field.to_owned(), message: rest.to_owned() }]);
        ApiError {
            fields: fields.unwrap_or_default(),
            ..ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
        }
    }

    /// A 400 naming every field at fault (at least one).
    pub fn invalid_fields(fields: Vec<FieldError>) -> Self {
        let message =
            fields.iter().map(|f| format!("{}: {}", f.field, f.message)).collect::<Vec<_>>().join("; ");
        ApiError { fields, ..ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message) }
    }

    pub fn not_found(what: &str) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no {what} with that id"))
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 429 or 503: the client should come back after `seconds`.
    pub fn retry_later(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
        seconds: u64,
    ) -> Self {
        ApiError { retry_after: Some(seconds), ..ApiError::new(status, code, message) }
    }

    /// The same error, naming the field as the caller knows it (`url` → `targetUrl`) when
    /// the message starts with `from:` (or `from[`, `from.`: a part of it).
    pub fn rename_field(mut self, from: &str, to: &str) -> Self {
        if let Some(rest) = self.message.strip_prefix(from).filter(|rest| rest.starts_with([':', '[', '.'])) {
            self.message = format!("{to}{rest}");
        }
        for field in &mut self.fields {
            if let Some(rest) =
                field.field.strip_prefix(from).filter(|rest| rest.is_empty() || rest.starts_with(['[', '.']))
            {
                field.field = format!("{to}{rest}");
            }
        }
        self
    }

    fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!("internal error: {cause}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the cause is in the server log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(first) = self.fields.first() {
            error["field"] = json!(first.field);
            error["fields"] = json!(self.fields);
        }
        let body = Json(json!({ "error": error }));
        let mut response = (self.status, body).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// `("metadata.events[0]", "why")` from `"metadata.events[0]: why"`.
fn field_of(message: &str) -> Option<(&str, &str)> {
    let (field, rest) = message.split_once(": ")?;
    let path = field.starts_with(|c: char| c.is_ascii_alphabetic())
        && field.chars().all(|c| c.is_ascii_alphanumeric() || "_.[]".contains(c));
    path.then_some((field, rest))
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotDurable(cause) => storage_unavailable(cause),
            // A full or failing disk: the client should retry; nothing unacknowledged is kept.
            StoreError::Unavailable(cause) => storage_unavailable(cause),
            other => ApiError::internal(other),
        }
    }
}

impl From<crate::service::IngestError> for ApiError {
    fn from(error: crate::service::IngestError) -> Self {
        match error {
            crate::service::IngestError::QueueFull => ApiError::retry_later(
                StatusCode::SERVICE_UNAVAILABLE,
                "queue_full",
                "the delivery queue is full; nothing was stored, try again shortly",
                5,
            ),
            crate::service::IngestError::Store(error) => error.into(),
        }
    }
}

fn storage_unavailable(cause: impl std::fmt::Display) -> ApiError {
    tracing::error!("storage cannot take writes: {cause}");
    ApiError::retry_later(
        StatusCode::SERVICE_UNAVAILABLE,
        "storage_unavailable",
        "storage cannot take more right now; try again shortly",
        5,
    )
}
