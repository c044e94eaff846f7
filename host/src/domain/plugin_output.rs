//! What one run of a plugin leaves behind: the requests it asked for (checked by the
//! runtime before anything else sees them) and the lines it logged.

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
