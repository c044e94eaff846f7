//! JSON bodies whose rejections use the API's error shape and name the field at fault.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use super::error::{ApiError, FieldError};

/// Like `axum::Json`, but a bad body answers `{"error": {...}}` with the path of the field
/// that is wrong (`metadata.events[0]: invalid type…`).
pub struct ApiJson<T>(pub T);

/// A JSON body's bytes, not parsed yet: for a handler that parses them itself (see
/// [`parse`]) and needs them again.
pub struct JsonBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json =
            request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
                v.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
            });
        if !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send JSON with `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
            let status = rejection.status();
            let code =
                if status == StatusCode::PAYLOAD_TOO_LARGE { "body_too_large" } else { "invalid_request" };
            ApiError::new(status, code, rejection.body_text())
        })?;
        Ok(JsonBody(bytes))
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let JsonBody(bytes) = JsonBody::from_request(request, state).await?;
        parse(&bytes).map(ApiJson)
    }
}

/// Deserialises JSON, naming the path of the first bad field.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            let message = if path == "." { inner.to_string() } else { format!("{path}: {inner}") };
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", message)
        } else if path == "." {
            ApiError::bad_request(inner.to_string())
        } else {
            ApiError::invalid_fields(vec![FieldError::new(path, inner.to_string())])
        }
    })?;
    // Whatever follows the value (`{…} {…}`, `{…}garbage`) is refused, not ignored.
    deserializer.end().map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", e.to_string()))?;
    Ok(value)
}

/// The same for a JSON value already parsed (one event of a batch).
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, String> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if path == "." { inner.to_string() } else { format!("{path}: {inner}") }
    })
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    #[test]
    fn a_body_is_one_json_value_and_nothing_after_it() {
        let value: Value = parse(br#" {"a": [1]} "#).unwrap();
        assert_eq!(value, serde_json::json!({"a": [1]}));
        for body in [&br#"{"a": 1} {"a": 2}"#[..], br#"{"a": 1}x"#, b"", br#"{"a": "#] {
            let error = parse::<Value>(body).unwrap_err();
            assert_eq!((error.status, error.code), (StatusCode::BAD_REQUEST, "invalid_json"), "{body:?}");
        }
    }
}
