//! Judging what a receiver answered (the `on-response` export): see [`OnResponse`](crate::OnResponse).

use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::__bindings::wasmhook::plugin::types::{IncomingResponse, Judgement as WitJudgement, Verdict};

/// What a receiver answered to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    /// An answer, as the host hands it over (also handy in tests).
    pub fn new(status: u16, headers: Vec<(String, String)>, body: impl Into<String>) -> Self {
        let headers = headers.into_iter().map(|(name, value)| (name.to_ascii_lowercase(), value)).collect();
        Response { status, headers, body: body.into() }
    }

    pub fn status(&self) -> u16 {
        self.status
    }

    /// A 2xx status.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first header of this name (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, value)| value.as_str())
    }

    /// The start of the body (at most 64 KiB), as text.
    pub fn body(&self) -> &str {
        &self.body
    }

    /// The body as JSON, if it is.
    pub fn json<T: DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_str(&self.body).ok()
    }

    /// `Retry-After` in seconds, if the receiver sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        self.header("retry-after")?.trim().parse().ok().map(Duration::from_secs)
    }

    pub(crate) fn from_wit(response: IncomingResponse) -> Self {
        Response { status: response.status, headers: response.headers, body: response.body }
    }
}

/// What an answer means: the host acts on it instead of its HTTP status rules.
#[derive(Debug, Clone)]
pub struct Judgement {
    verdict: Verdict,
    remote_id: Option<String>,
}

impl Judgement {
    /// The receiver has the message.
    pub fn success() -> Self {
        Judgement { verdict: Verdict::Success, remote_id: None }
    }

    /// Try again on the retry schedule.
    pub fn retry() -> Self {
        Judgement { verdict: Verdict::Retry(None), remote_id: None }
    }

    /// Try again, not before `wait`.
    pub fn retry_after(wait: Duration) -> Self {
        let millis = u32::try_from(wait.as_millis()).unwrap_or(u32::MAX);
        Judgement { verdict: Verdict::Retry(Some(millis)), remote_id: None }
    }

    /// Give up on this message without retrying; `reason` is recorded on the delivery.
    pub fn fail(reason: impl Into<String>) -> Self {
        Judgement { verdict: Verdict::Fail(reason.into()), remote_id: None }
    }

    /// Give up and disable the webhook: its receiver will never take its messages.
    pub fn disable(reason: impl Into<String>) -> Self {
        Judgement { verdict: Verdict::Disable(reason.into()), remote_id: None }
    }

    /// The receiver's id for what was sent (at most 256 bytes), kept on the delivery and shown
    /// in its log.
    pub fn remote_id(mut self, id: impl Into<String>) -> Self {
        self.remote_id = Some(id.into());
        self
    }

    pub(crate) fn into_wit(self) -> WitJudgement {
        WitJudgement { verdict: self.verdict, remote_id: self.remote_id }
    }
}
