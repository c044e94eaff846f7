//! The HTTP transport: one shared client, and HTTP's rules for what an answer means.
//!
//! The client reuses connections, follows no redirects and times each attempt out. Unless
//! private destinations are allowed, names are resolved through a resolver that drops
//! non-public addresses (but for hosts the operator allowed), so the address actually
//! connected to is checked — a DNS answer cannot point a webhook at the host's own network.
//! IP-literal URLs are checked directly.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::Url;

use super::Verdict;
use crate::destination::{Allow, is_public};
use crate::runtime::{Request, Response};

/// How much of a receiver's answer is kept in the delivery log.
const SNIPPET_BYTES: usize = 1024;

/// How much of it a connector's `on-response` sees.
const JUDGED_BYTES: usize = 64 << 10;

/// Name resolution: the system's, or a stub in tests.
pub type Lookup = Arc<dyn Fn(String) -> Resolving + Send + Sync>;

/// What a receiver answered.
pub struct Answer {
    pub status: u16,
    /// The start of its body.
    pub snippet: String,
    /// Its `Retry-After`, on 429 and 503.
    pub retry_after: Option<Duration>,
    /// All of it a connector may judge (its headers and up to 64 KiB of body), when asked.
    pub whole: Option<Response>,
}

#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
}

impl Http {
    /// The client, resolving names with `lookup` (checked unless `allow` allows all).
    pub fn new(timeout: Duration, allow: &Allow, lookup: Lookup) -> Self {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .user_agent(concat!("wasmhook/", env!("CARGO_PKG_VERSION")))
            // HTTP_PROXY and friends in the environment would route around the connect-time
            // destination check: deliveries always go direct.
            .no_proxy()
            .pool_max_idle_per_host(64);
        if !allow.private {
            builder = builder.dns_resolver(Arc::new(PublicOnly { lookup, allow: allow.clone() }));
        }
        Http { client: builder.build().expect("the TLS backend and resolver are available") }
    }

    /// The system's resolver.
    pub fn system_lookup() -> Lookup {
        Arc::new(|host: String| {
            Box::pin(async move {
                let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
                Ok(Box::new(addrs.into_iter()) as Addrs)
            })
        })
    }

    /// Sends `request` to `url` with the signature `headers` added; with `whole`, keeps the
    /// answer for a connector to judge.
    pub async fn send(
        &self,
        url: Url,
        request: &Request,
        headers: &[(&str, String)],
        whole: bool,
    ) -> Result<Answer, String> {
        let method = reqwest::Method::from_bytes(request.method.as_bytes()).unwrap_or(reqwest::Method::POST);
        let mut outgoing = self.client.request(method, url);
        for (name, value) in &request.headers {
            outgoing = outgoing.header(name, value);
        }
        for (name, value) in headers {
            outgoing = outgoing.header(*name, value);
        }
        let mut response =
            outgoing.body(request.body.clone()).send().await.map_err(|e| describe(e.without_url()))?;
        let status = response.status().as_u16();
        let retry_after = (status == 429 || status == 503)
            .then(|| response.headers().get("retry-after")?.to_str().ok().map(str::to_owned))
            .flatten()
            .and_then(|v| crate::delivery::retry::parse_retry_after(&v, SystemTime::now()));
        let answer_headers: Vec<(String, String)> = match whole {
            true => response
                .headers()
                .iter()
                .map(|(name, value)| {
                    (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned())
                })
                .collect(),
            false => Vec::new(),
        };
        let wanted = if whole { JUDGED_BYTES } else { SNIPPET_BYTES };
        let mut body = Vec::new();
        while body.len() < wanted {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                _ => break,
            }
        }
        body.truncate(wanted);
        let snippet = String::from_utf8_lossy(&body[..body.len().min(SNIPPET_BYTES)]).into_owned();
        let whole = whole.then(|| Response {
            status,
            headers: answer_headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        Ok(Answer { status, snippet, retry_after, whole })
    }
}

/// HTTP's rules: a 2xx is delivered; 410 Gone gives up on the webhook; anything else is
/// retried on the schedule, or after the receiver's `Retry-After` on 429 and 503.
pub fn verdict(answer: &Answer) -> Verdict {
    match answer.status {
        200..=299 => Verdict::Delivered,
        410 => Verdict::Gone,
        _ => Verdict::Retry(answer.retry_after),
    }
}

/// A reqwest error in one line, with its causes (the resolver's refusal among them). Without
/// its URL: a plugin-set one (a Slack webhook's, say) can be a credential.
fn describe(error: reqwest::Error) -> String {
    let mut text = if error.is_timeout() { "timed out".to_owned() } else { error.to_string() };
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Resolves names, keeping only public addresses (all of them for allowed hosts).
struct PublicOnly {
    lookup: Lookup,
    allow: Allow,
}

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let lookup = (self.lookup)(host.clone());
        // The resolver is not told the port: the URL's was checked against the allowed host's
        // before sending.
        let allowed =
            self.allow.hosts_any_port(&crate::destination::host_key(&url::Host::Domain(host.clone())));
        Box::pin(async move {
            let all: Vec<SocketAddr> = lookup.await?.collect();
            if allowed {
                return Ok(Box::new(all.into_iter()) as Addrs);
            }
            let public: Vec<SocketAddr> = all.iter().copied().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                let found: Vec<String> = all.iter().map(|a| a.ip().to_string()).collect();
                return Err(format!(
                    "{host} resolves to non-public addresses only ({}); refused",
                    found.join(", ")
                )
                .into());
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}
