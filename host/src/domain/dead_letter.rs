//! Dead letters: messages a broker source could not take as events (not JSON, not an event,
//! an unknown event type…), kept with the reason so that they can be read and fixed — never
//! retried, and never in the way of the messages behind them.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// How much of a message is kept.
pub const KEPT_BYTES: usize = 64 * 1024;

/// A message a source set aside.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    /// `dl_…`, in the order they were set aside.
    pub id: String,
    /// The source's name.
    pub source: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    /// Why it is not an event, naming the field at fault when there is one.
    pub reason: String,
    /// The message as received (its first 64 KiB, as UTF-8 with invalid bytes replaced).
    pub message: String,
    /// The broker's id for it (stream sequence, entry id, message id), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_id: Option<String>,
}

impl DeadLetter {
    pub fn new(source: &str, reason: String, message: &[u8], broker_id: Option<String>) -> Self {
        let kept = &message[..message.len().min(KEPT_BYTES)];
        DeadLetter {
            id: format!("dl_{}", uuid::Uuid::now_v7().simple()),
            source: source.to_owned(),
            at: OffsetDateTime::now_utc(),
            reason,
            message: String::from_utf8_lossy(kept).into_owned(),
            broker_id,
        }
    }
}
