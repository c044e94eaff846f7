//! Delivering: the engine that runs a delivery's plugin, signs, sends and retries its
//! messages (the records themselves are in [`crate::domain::delivery`]).
//!
//! - [`engine`]: takes due deliveries from the durable queue and works them.
//! - [`schedule`]: the engine's in-memory lanes, one per webhook.
//! - [`keys`]: ordering keys — a webhook's requests with one key go one at a time, in order.
//! - [`transport`]: one message sent — over HTTP or to a broker — and what the answer means.
//! - [`signature`]: the two signature schemes, as pure functions.
//! - [`retry`]: the retry schedule, jitter and `Retry-After`.

pub mod engine;
mod keys;
pub mod retry;
mod schedule;
pub mod signature;
pub mod transport;

use crate::destination::{Allow, Transport, check_url, redacted_text};
use crate::runtime::Request;

/// Refuses requests whose plugin-set URL the destination checks refuse, or that would leave
/// their webhook's transport (a CRM connector cannot turn a webhook into a RabbitMQ publisher,
/// nor the reverse): the plugin's fault (`bad_output`), not the receiver's, so it never counts
/// against the webhook's health.
pub fn check_plugin_urls(
    requests: Vec<Request>,
    webhook_url: &str,
    allow: &Allow,
) -> Result<Vec<Request>, crate::runtime::PluginError> {
    if requests.iter().all(|request| request.url.is_none()) {
        return Ok(requests); // most connectors send to the webhook's own URL
    }
    let transport = url::Url::parse(webhook_url).ok().and_then(|url| Transport::of(&url));
    for (i, request) in requests.iter().enumerate() {
        let Some(text) = &request.url else { continue };
        let checked = check_url(text, allow).and_then(|url| match Transport::of(&url) == transport {
            true => Ok(()),
            false => Err(format!(
                "{:?} must go over its webhook's transport ({})",
                redacted_text(text),
                transport.map_or("known", Transport::name)
            )),
        });
        if let Err(why) = checked {
            return Err(crate::runtime::PluginError::BadOutput(format!("requests[{i}].url: {why}")));
        }
    }
    Ok(requests)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(url: &str) -> Request {
        Request {
            url: Some(url.into()),
            method: "POST".into(),
            headers: vec![],
            body: String::new(),
            ordering_key: None,
        }
    }

    #[test]
    fn a_plugin_keeps_its_webhooks_transport() {
        let allow = Allow::private(false);
        let check = |webhook: &str, url: &str| check_plugin_urls(vec![request(url)], webhook, &allow);
        assert!(check("https://example.com/a", "https://api.example.com/b").is_ok());
        assert!(check("nats://nats.example.com/a", "nats://nats.example.com/b.c").is_ok());
        let error =
            check("https://example.com/a", "amqp://u:pw@rabbit.example.com/?routingKey=q").unwrap_err();
        let text = error.to_string();
        assert!(text.contains("its webhook's transport (HTTP)") && !text.contains("pw"), "{text}");
        assert!(check("amqp://rabbit.example.com/?routingKey=q", "https://example.com").is_err());
        assert!(
            check("https://example.com/a", "http://10.0.0.1/")
                .unwrap_err()
                .to_string()
                .contains("non-public")
        );
    }
}
