//! Checks what a plugin returned before the host will ever send it.

use super::bindings::OutgoingRequest;
use super::limits::Limits;
use crate::domain::plugin_output::Request;

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
    Ok(Request { url: request.url, method, headers: request.headers, body: request.body })
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
