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
    ordering_key: Option<String>,
}

impl Request {
    /// A request with this body and no headers.
    pub fn new(body: impl Into<String>) -> Self {
        Request { url: None, method: None, headers: Vec::new(), body: body.into(), ordering_key: None }
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

    /// Send it after every earlier request of the webhook with the same key (at most 256
    /// bytes) has gone, and before any later one; requests with other keys go in parallel.
    pub fn ordering_key(mut self, key: impl Into<String>) -> Self {
        self.ordering_key = Some(key.into());
        self
    }

    /// Its URL, when it is not the webhook's.
    pub fn target(&self) -> Option<&str> {
        self.url.as_deref()
    }

    /// Its method (`POST` unless set).
    pub fn verb(&self) -> &str {
        self.method.as_deref().unwrap_or("POST")
    }

    /// The first header of this name (any case).
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    pub fn body(&self) -> &str {
        &self.body
    }

    /// Its ordering key, if it has one.
    pub fn key(&self) -> Option<&str> {
        self.ordering_key.as_deref()
    }

    pub(crate) fn into_wit(self) -> OutgoingRequest {
        let Request { url, method, headers, body, ordering_key } = self;
        OutgoingRequest { url, method, headers, body, ordering_key }
    }

    pub(crate) fn from_wit(request: OutgoingRequest) -> Self {
        let OutgoingRequest { url, method, headers, body, ordering_key } = request;
        Request { url, method, headers, body, ordering_key }
    }
}
