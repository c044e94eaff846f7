//! Checks what a plugin returned before the host will ever send it.

use super::bindings::{v0_1, v0_2};
use super::error::cap_text;
use super::limits::Limits;
use crate::domain::plugin_output::{Judged, Judgement, Request};

/// Longest ordering key or remote id, in bytes.
pub(crate) const MAX_ID_BYTES: usize = 256;

/// A request as a plugin returned it, whatever the contract version.
#[derive(Debug, Clone)]
pub(crate) struct OutgoingRequest {
    pub(crate) url: Option<String>,
    pub(crate) method: Option<String>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
    pub(crate) ordering_key: Option<String>,
}

impl From<v0_1::wasmhook::plugin::types::OutgoingRequest> for OutgoingRequest {
    fn from(r: v0_1::wasmhook::plugin::types::OutgoingRequest) -> Self {
        OutgoingRequest { url: r.url, method: r.method, headers: r.headers, body: r.body, ordering_key: None }
    }
}

impl From<v0_2::wasmhook::plugin::types::OutgoingRequest> for OutgoingRequest {
    fn from(r: v0_2::wasmhook::plugin::types::OutgoingRequest) -> Self {
        let v0_2::wasmhook::plugin::types::OutgoingRequest { url, method, headers, body, ordering_key } = r;
        OutgoingRequest { url, method, headers, body, ordering_key }
    }
}

/// A request as the plugin made it, handed back to its `on-response`.
pub(crate) fn to_wit(request: &Request) -> v0_2::wasmhook::plugin::types::OutgoingRequest {
    v0_2::wasmhook::plugin::types::OutgoingRequest {
        url: request.url.clone(),
        method: Some(request.method.clone()),
        headers: request.headers.clone(),
        body: request.body.clone(),
        ordering_key: request.ordering_key.clone(),
    }
}

/// Turns `on-response`'s answer into a judgement, or says what is wrong with it.
pub(crate) fn judgement(returned: v0_2::wasmhook::plugin::types::Judgement) -> Result<Judgement, String> {
    use v0_2::wasmhook::plugin::types::Verdict;
    if returned.remote_id.as_ref().is_some_and(|id| id.len() > MAX_ID_BYTES || id.is_empty()) {
        return Err(format!("remote-id: must be 1 to {MAX_ID_BYTES} bytes"));
    }
    let verdict = match returned.verdict {
        Verdict::Success => Judged::Success,
        Verdict::Retry(ms) => Judged::Retry(ms.map(|ms| std::time::Duration::from_millis(ms.into()))),
        Verdict::Fail(reason) => Judged::Fail(cap_text(reason)),
        Verdict::Disable(reason) => Judged::Disable(cap_text(reason)),
    };
    Ok(Judgement { verdict, remote_id: returned.remote_id })
}

const METHODS: &[&str] = &["POST", "PUT", "PATCH", "DELETE", "GET"];

/// Headers the host sets itself (or that would make the framing lie).
fn is_reserved(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    matches!(name.as_str(), "host" | "content-length" | "transfer-encoding" | "connection")
        || name.starts_with("webhook-")
        || name.starts_with("x-wasmhook-")
}

/// Turns the plugin's answer into requests, or says what is wrong with it.
pub(crate) fn check(requests: Vec<OutgoingRequest>, limits: &Limits) -> Result<Vec<Request>, String> {
    if requests.len() > limits.max_requests {
        return Err(format!("{} requests; at most {} per delivery", requests.len(), limits.max_requests));
    }
    let mut total = 0usize;
    requests
        .into_iter()
        .enumerate()
        .map(|(i, request)| {
            let request = check_one(request, limits).map_err(|e| format!("request {i}: {e}"))?;
            total +=
                request.body.len() + request.headers.iter().map(|(n, v)| n.len() + v.len()).sum::<usize>();
            if total > limits.output_bytes {
                return Err(format!(
                    "requests add up to more than the {} byte output limit",
                    limits.output_bytes
                ));
            }
            Ok(request)
        })
        .collect()
}

fn check_one(request: OutgoingRequest, limits: &Limits) -> Result<Request, String> {
    let method = match request.method {
        None => "POST".to_owned(),
        Some(m) => {
            let upper = m.to_ascii_uppercase();
            if !METHODS.contains(&upper.as_str()) {
                return Err(format!("method {m:?} is not one of {}", METHODS.join(", ")));
            }
            upper
        }
    };
    if let Some(url) = &request.url {
        let parsed = url::Url::parse(url).map_err(|e| format!("url {url:?} is not a URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
            return Err(format!("url {url:?} must be an http or https URL with a host"));
        }
    }
    if request.headers.len() > limits.max_headers {
        return Err(format!("{} headers; at most {}", request.headers.len(), limits.max_headers));
    }
    for (name, value) in &request.headers {
        http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("header name {name:?} is not a valid HTTP header name"))?;
        http::HeaderValue::from_str(value)
            .map_err(|_| format!("header {name:?} has a value with control characters"))?;
        if is_reserved(name) {
            return Err(format!(
                "header {name:?} is set by the host; plugins cannot set host, content-length, \
                 transfer-encoding, connection, webhook-* or x-wasmhook-* headers"
            ));
        }
    }
    if request.ordering_key.as_ref().is_some_and(|key| key.len() > MAX_ID_BYTES) {
        return Err(format!("ordering-key: longer than {MAX_ID_BYTES} bytes"));
    }
    Ok(Request {
        url: request.url,
        method,
        headers: request.headers,
        body: request.body,
        ordering_key: request.ordering_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Option<&str>, url: Option<&str>, headers: &[(&str, &str)]) -> OutgoingRequest {
        OutgoingRequest {
            url: url.map(Into::into),
            method: method.map(Into::into),
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            body: "{}".into(),
            ordering_key: None,
        }
    }

    fn error(r: OutgoingRequest) -> String {
        check(vec![r], &Limits::default()).unwrap_err()
    }

    #[test]
    fn good_requests_are_normalised() {
        let got = check(
            vec![
                request(None, None, &[("content-type", "application/json")]),
                request(Some("put"), Some("https://x.test/a"), &[]),
            ],
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(got[0].method, "POST");
        assert_eq!(got[1].method, "PUT");
        assert_eq!(got[1].url.as_deref(), Some("https://x.test/a"));
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        assert!(error(request(Some("BREW"), None, &[])).contains("method \"BREW\""));
        assert!(error(request(None, Some("not a url"), &[])).contains("is not a URL"));
        assert!(error(request(None, Some("ftp://x.test/"), &[])).contains("http or https"));
        assert!(error(request(None, None, &[("bad name", "x")])).contains("not a valid HTTP header name"));
        assert!(error(request(None, None, &[("x", "a\r\nb")])).contains("control characters"));
        for reserved in ["Host", "content-length", "Webhook-Signature", "X-Wasmhook-Signature"] {
            assert!(error(request(None, None, &[(reserved, "x")])).contains("set by the host"), "{reserved}");
        }
    }

    #[test]
    fn output_limits_hold_across_requests() {
        let limits = Limits { output_bytes: 10, max_requests: 2, ..Limits::default() };
        let many = vec![request(None, None, &[]); 3];
        assert!(check(many, &limits).unwrap_err().contains("at most 2"));
        let mut big = request(None, None, &[]);
        big.body = "x".repeat(6);
        assert!(check(vec![big.clone(), big], &limits).unwrap_err().contains("10 byte output limit"));
    }
}
