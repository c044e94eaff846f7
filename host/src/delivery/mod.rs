//! Delivering: the engine that runs a delivery's plugin, signs, sends and retries its
//! messages (the records themselves are in [`crate::domain::delivery`]).
//!
//! - [`engine`]: takes due deliveries from the durable queue and works them.
//! - [`schedule`]: the engine's in-memory lanes, one per webhook.
//! - [`sender`]: the HTTP client, with destination checks at connect time.
//! - [`signature`]: the two signature schemes, as pure functions.
//! - [`retry`]: the retry schedule, jitter and `Retry-After`.

pub mod engine;
pub mod retry;
mod schedule;
pub mod sender;
pub mod signature;

use crate::runtime::Request;

/// Refuses requests whose plugin-set URL the destination checks refuse: the plugin's
/// fault (`bad_output`), not the receiver's, so it never counts against the webhook's health.
pub fn check_plugin_urls(
    requests: Vec<Request>,
    allow_private: bool,
) -> Result<Vec<Request>, crate::runtime::PluginError> {
    for (i, request) in requests.iter().enumerate() {
        if let Some(url) = &request.url
            && let Err(why) = crate::destination::check_url(url, allow_private)
        {
            return Err(crate::runtime::PluginError::BadOutput(format!("requests[{i}].url: {why}")));
        }
    }
    Ok(requests)
}
