//! A small key-value store of the connector's own for the webhook being delivered: remember
//! what a receiver said (a created record's id, say) for later deliveries of the same webhook.
//!
//! One store per connector and webhook, kept in the host's storage and deleted with the
//! webhook; never shared with another webhook. Keys are at most 256 bytes, values 64 KiB, a
//! store holds at most 1,000 keys and 1 MiB. Only [`Plugin::transform`](crate::Plugin::transform)
//! and [`OnResponse::on_response`](crate::OnResponse::on_response) have one; `wasmhook plugin
//! run` and previews give a fresh, empty store.

use crate::__bindings::wasmhook::plugin::state as host;
pub use crate::__bindings::wasmhook::plugin::state::StateError;

/// The value kept under `key`, if any.
pub fn get(key: &str) -> Result<Option<String>, StateError> {
    host::get(key)
}

/// Keeps `value` under `key`, replacing what was there.
pub fn set(key: &str, value: &str) -> Result<(), StateError> {
    host::set(key, value)
}

/// Forgets `key` (nothing happens when it is not there).
pub fn delete(key: &str) -> Result<(), StateError> {
    host::delete(key)
}

/// The keys starting with `prefix`, in byte order.
pub fn list(prefix: &str) -> Result<Vec<String>, StateError> {
    host::list(prefix)
}

/// What went wrong, in words.
fn describe(error: &StateError) -> String {
    match error {
        StateError::KeyTooLong => "the key is longer than 256 bytes".into(),
        StateError::ValueTooLarge => "the value is larger than 64 KiB".into(),
        StateError::QuotaExceeded => "the store would hold more than 1,000 keys or 1 MiB".into(),
        StateError::Unavailable(why) => format!("no state: {why}"),
    }
}

impl From<StateError> for crate::Error {
    fn from(error: StateError) -> Self {
        crate::Error::failed(format!("state: {}", describe(&error)))
    }
}
