//! Sending one attempt: the shared HTTP client, signatures, and destination checks.
//!
//! The client reuses connections, follows no redirects and times each attempt out. Unless
//! private destinations are allowed, names are resolved through a resolver that drops
//! non-public addresses, so the address actually connected to is checked — a DNS answer
//! cannot point a webhook at the host's own network. IP-literal URLs are checked directly.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use time::OffsetDateTime;

use super::signature::{standard_signature, wasmhook_signature};
use crate::destination::{check_url, is_public};
use crate::domain::delivery::Attempt;
use crate::runtime::Request;
use crate::secret::Secret;

/// How much of a receiver's answer is kept in the delivery log.
const SNIPPET_BYTES: usize = 1024;

/// The outcome of one attempt, beyond its log record.
pub struct Sent {
    pub attempt: Attempt,
    /// The receiver's `Retry-After`, on 429 and 503.
    pub retry_after: Option<Duration>,
}

#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    allow_private: bool,
}

/// Name resolution: the system's, or a stub in tests.
pub type Lookup = Arc<dyn Fn(String) -> Resolving + Send + Sync>;

impl Sender {
    pub fn new(timeout: Duration, allow_private: bool) -> Self {
        let system: Lookup = Arc::new(|host: String| {
            Box::pin(async move {
                let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
                Ok(Box::new(addrs.into_iter()) as Addrs)
            })
        });
        Sender::with_lookup(timeout, allow_private, system)
    }

    /// The same, resolving names with `lookup` (checked just the same).
    pub fn with_lookup(timeout: Duration, allow_private: bool, lookup: Lookup) -> Self {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .user_agent(concat!("wasmhook/", env!("CARGO_PKG_VERSION")))
            // HTTP_PROXY and friends in the environment would route around the connect-time
            // destination check: deliveries always go direct.
            .no_proxy()
            .pool_max_idle_per_host(64);
        if !allow_private {
            builder = builder.dns_resolver(Arc::new(PublicOnly(lookup)));
        }
        let client = builder.build().expect("the TLS backend and resolver are available");
        Sender { client, allow_private }
    }

    /// Sends message `message_id`'s `request` to its URL (or `default_url`), signed with
    /// `secrets` (the current one first, then any still in their rotation grace period).
    pub async fn send(
        &self,
        message_id: &str,
        request: &Request,
        default_url: &str,
        secrets: &[&Secret],
    ) -> Sent {
        let at = OffsetDateTime::now_utc();
        let started = Instant::now();
        let attempt = |status_code, response, error| Attempt {
            message_id: message_id.to_owned(),
            at,
            status_code,
            latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            response,
            error,
        };
        let url = match check_url(request.url.as_deref().unwrap_or(default_url), self.allow_private) {
            Ok(url) => url,
            Err(reason) => return Sent { attempt: attempt(None, None, Some(reason)), retry_after: None },
        };
        let body = request.body.as_bytes();
        let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0) as i64;
        let method = reqwest::Method::from_bytes(request.method.as_bytes()).unwrap_or(reqwest::Method::POST);
        let mut outgoing = self.client.request(method, url);
        for (name, value) in &request.headers {
            outgoing = outgoing.header(name, value);
        }
        outgoing = outgoing
            .header("webhook-id", message_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", standard_signature(secrets, message_id, timestamp, body))
            .header("x-wasmhook-signature", wasmhook_signature(secrets[0], body))
            .body(request.body.clone());
        match outgoing.send().await {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let retry_after = (status == 429 || status == 503)
                    .then(|| response.headers().get("retry-after")?.to_str().ok().map(str::to_owned))
                    .flatten()
                    .and_then(|v| super::retry::parse_retry_after(&v, SystemTime::now()));
                let mut snippet = Vec::new();
                while snippet.len() < SNIPPET_BYTES {
                    match response.chunk().await {
                        Ok(Some(chunk)) => snippet.extend_from_slice(&chunk),
                        _ => break,
                    }
                }
                snippet.truncate(SNIPPET_BYTES);
                let text = String::from_utf8_lossy(&snippet).into_owned();
                Sent { attempt: attempt(Some(status), Some(text), None), retry_after }
            }
            Err(error) => {
                Sent { attempt: attempt(None, None, Some(describe(error.without_url()))), retry_after: None }
            }
        }
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

/// Resolves names, keeping only public addresses.
struct PublicOnly(Lookup);

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let lookup = (self.0)(host.clone());
        Box::pin(async move {
            let all: Vec<SocketAddr> = lookup.await?.collect();
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
