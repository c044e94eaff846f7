//! Sending one message, whatever its destination: the URL's scheme picks the transport —
//! [`http`], or a message broker ([`crate::broker`]).
//!
//! Every transport sends the same message (the plugin's body and headers, plus the signature
//! headers) and answers with an [`Outcome`]: the attempt as the delivery log keeps it, and a
//! [`Verdict`] for the engine. What an answer means — HTTP's 410 and `Retry-After`, a broker's
//! acknowledgement — is each transport's own policy; the engine reads verdicts only.

pub mod http;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;

use super::signature::{standard_signature, wasmhook_signature};
use crate::broker::{Brokers, Message};
use crate::destination::{Allow, Transport, check, target};
use crate::domain::delivery::Attempt;
use crate::runtime::{Request, Response};
use crate::secret::Secret;

/// What the engine does after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The destination has the message.
    Delivered,
    /// Try again: on the retry schedule, or not before the destination's own wait.
    Retry(Option<Duration>),
    /// The destination is gone for good (HTTP 410): no retry, and the webhook is disabled.
    Gone,
    /// The destination will never take this message (the connector said why): no retry.
    Fail(String),
    /// The destination will never take the webhook's messages (the connector said why): no
    /// retry, and the webhook is disabled.
    Disable(String),
}

/// One attempt's record and what it means.
pub struct Outcome {
    pub attempt: Attempt,
    pub verdict: Verdict,
    /// The receiver's answer, kept when asked for (for the connector to judge).
    pub answer: Option<Response>,
}

/// Every transport, each with its connections.
pub struct Transports {
    http: http::Http,
    brokers: Brokers,
    allow: Allow,
}

impl Transports {
    /// Transports whose attempts time out after `timeout`, reaching the destinations `allow`s.
    pub fn new(timeout: Duration, allow: Allow) -> Self {
        Transports::with_lookup(timeout, allow, http::Http::system_lookup())
    }

    /// The same, with HTTP resolving names through `lookup` (checked just the same).
    pub fn with_lookup(timeout: Duration, allow: Allow, lookup: http::Lookup) -> Self {
        Transports {
            http: http::Http::new(timeout, &allow, lookup),
            brokers: Brokers::new(allow.clone(), timeout),
            allow,
        }
    }

    /// Sends message `message_id`'s `request` to its URL (or `webhook_url`, credentials
    /// included), signed with `secrets` (the current one first, then any still in their
    /// rotation grace period). With `keep_answer`, an HTTP answer comes back whole enough
    /// for a connector to judge.
    pub async fn send(
        &self,
        message_id: &str,
        request: &Request,
        webhook_url: &str,
        secrets: &[&Secret],
        keep_answer: bool,
    ) -> Outcome {
        let at = OffsetDateTime::now_utc();
        let started = Instant::now();
        let attempt = |status_code, response, error| Attempt {
            message_id: message_id.to_owned(),
            at,
            status_code,
            latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            response,
            error,
            remote_id: None,
        };
        let url = target(request.url.as_deref(), webhook_url)
            .and_then(|url| check(&url, &self.allow).map(|()| url));
        let url = match url {
            Ok(url) => url,
            Err(reason) => {
                let (attempt, verdict) = (attempt(None, None, Some(reason)), Verdict::Retry(None));
                return Outcome { attempt, verdict, answer: None };
            }
        };
        let body = request.body.as_bytes();
        let signed = signature_headers(message_id, body, secrets);
        if Transport::of(&url) == Some(Transport::Http) {
            return match self.http.send(url, request, &signed, keep_answer).await {
                Ok(answer) => {
                    let verdict = http::verdict(&answer);
                    let attempt = attempt(Some(answer.status), Some(answer.snippet), None);
                    Outcome { attempt, verdict, answer: answer.whole }
                }
                Err(error) => {
                    let (attempt, verdict) = (attempt(None, None, Some(error)), Verdict::Retry(None));
                    Outcome { attempt, verdict, answer: None }
                }
            };
        }
        let headers: Vec<(String, String)> = request
            .headers
            .iter()
            .cloned()
            .chain(signed.into_iter().map(|(name, value)| (name.to_owned(), value)))
            .collect();
        let message = Message { id: message_id, headers: &headers, body };
        match self.brokers.publish(&url, &message).await {
            Ok(acked) => Outcome {
                attempt: attempt(None, Some(acked), None),
                verdict: Verdict::Delivered,
                answer: None,
            },
            Err(error) => {
                let (attempt, verdict) = (attempt(None, None, Some(error)), Verdict::Retry(None));
                Outcome { attempt, verdict, answer: None }
            }
        }
    }
}

/// The headers that sign `body`: Standard Webhooks' three and `X-Wasmhook-Signature`.
fn signature_headers(message_id: &str, body: &[u8], secrets: &[&Secret]) -> Vec<(&'static str, String)> {
    let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0) as i64;
    vec![
        ("webhook-id", message_id.to_owned()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", standard_signature(secrets, message_id, timestamp, body)),
        ("x-wasmhook-signature", wasmhook_signature(secrets[0], body)),
    ]
}
