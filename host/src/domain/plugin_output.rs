//! What one run of a plugin leaves behind: the requests it asked for (checked by the
//! runtime before anything else sees them), its judgement of a receiver's answer, and the
//! lines it logged.

use serde::{Deserialize, Serialize};

/// A request a plugin asked for, checked: a known method, an http(s) URL if any, valid
/// headers that leave the host's own alone, within the output limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// `None`: the webhook's URL.
    pub url: Option<String>,
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Requests of a webhook with the same key go one at a time, in their events' order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordering_key: Option<String>,
}

/// What a receiver answered, as a plugin's `on-response` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    /// The start of the body, as text.
    pub body: String,
}

/// A plugin's reading of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    pub verdict: Judged,
    /// The receiver's id for what was sent, kept on the message.
    pub remote_id: Option<String>,
}

/// What an answer means, as the plugin judged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judged {
    Success,
    /// Try again: on the schedule, or not before this.
    Retry(Option<std::time::Duration>),
    /// Give up on the message, for this reason.
    Fail(String),
    /// Give up and disable the webhook, for this reason.
    Disable(String),
}

/// One captured line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub level: LogLevel,
    pub message: String,
}

/// Where a line came from: a `log` call at some level, or a standard stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
    Stdout,
    Stderr,
}

impl std::fmt::Display for LogLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
            LogLevel::Stdout => "stdout",
            LogLevel::Stderr => "stderr",
        })
    }
}
