//! Requests a connector asks the host to send.

use serde::Serialize;

use crate::__bindings::OutgoingRequest;

/// One HTTP request for the host to sign and send. By default it is a `POST` to the
/// webhook's URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    url: Option<String>,
    method: Option<String>,
    headers: Vec<(String, String)>,
    body: String,
}

impl Request {
    /// A request with this body and no headers.
    pub fn new(body: impl Into<String>) -> Self {
        Request { url: None, method: None, headers: Vec::new(), body: body.into() }
    }

    /// A request whose body is `value` as JSON, with `content-type: application/json`.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Self {
        // Serializing a `Value` or a plain derive cannot fail; anything else is a bug in the
        // plugin's own Serialize impl, which should not take the delivery down silently.
        let body = serde_json::to_string(value).unwrap_or_else(|e| panic!("body is not JSON: {e}"));
        Request::new(body).header("content-type", "application/json")
    }

    /// Send somewhere other than the webhook's URL (checked by the host like a webhook URL).
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// Use another method than `POST`.
    pub fn method(mut self, method: impl Into<String>) -> Self {
        self.method = Some(method.into());
        self
    }

    /// Add a header. `host`, `content-length`, `webhook-*` and `x-wasmhook-*` belong to the
    /// host: a request carrying them is refused.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub(crate) fn into_wit(self) -> OutgoingRequest {
        OutgoingRequest { url: self.url, method: self.method, headers: self.headers, body: self.body }
    }
}
