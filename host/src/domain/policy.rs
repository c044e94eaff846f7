//! Delivery policies: what a connector declares its receivers want (contract 0.2's
//! `delivery-policy`), and what a webhook gets once its own settings are laid over it — each
//! setting the tighter of the two, never looser than the connector's.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Limits a connector declares; `None` leaves each to the host (and the webhook).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
    /// Messages of one webhook in flight at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// Attempts per message in all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// The HTTP statuses worth retrying; any other failed status fails the message at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_statuses: Option<Vec<u16>>,
}

/// `requests` messages per `seconds` seconds, evenly spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rate {
    pub requests: u32,
    pub seconds: u32,
}

impl Rate {
    /// A webhook's `rateLimit`: so many messages a second.
    pub fn per_second(requests: u32) -> Rate {
        Rate { requests, seconds: 1 }
    }

    /// The time between two messages.
    pub fn interval(&self) -> Duration {
        Duration::from_secs(u64::from(self.seconds.max(1))) / self.requests.max(1)
    }

    /// The slower of two rates.
    fn tighter(self, other: Rate) -> Rate {
        if self.interval() >= other.interval() { self } else { other }
    }
}

/// Why a declared policy is refused when its connector is loaded.
pub fn check(policy: &DeliveryPolicy) -> Result<(), String> {
    if let Some(rate) = policy.rate
        && (rate.requests == 0 || rate.seconds == 0)
    {
        return Err("policy.rate: requests and seconds must both be at least 1".into());
    }
    if policy.concurrency == Some(0) {
        return Err("policy.concurrency: must be at least 1".into());
    }
    if policy.attempts == Some(0) {
        return Err("policy.attempts: must be at least 1 (the first attempt counts)".into());
    }
    if let Some(statuses) = &policy.retry_statuses
        && let Some(bad) = statuses.iter().find(|s| !(100..=599).contains(*s))
    {
        return Err(format!("policy.retryStatuses: {bad} is not an HTTP status"));
    }
    Ok(())
}

/// What a webhook's own settings are, as far as a policy is concerned.
#[derive(Debug, Clone, Copy)]
pub struct WebhookLimits {
    /// Its `rateLimit` (messages a second).
    pub rate_limit: Option<u32>,
    /// Messages in flight at once: 1 when `ordered`, else the host's per-webhook cap.
    pub concurrency: u32,
    /// The host's attempts per message.
    pub attempts: u32,
}

impl WebhookLimits {
    /// `webhook`'s, on a host that keeps `per_webhook` messages of a webhook in flight at most
    /// and gives each message `attempts`.
    pub fn of(webhook: &crate::domain::webhook::Webhook, per_webhook: usize, attempts: u32) -> Self {
        let concurrency = match webhook.ordered {
            true => 1,
            false => u32::try_from(per_webhook).unwrap_or(u32::MAX),
        };
        WebhookLimits { rate_limit: webhook.rate_limit, concurrency, attempts }
    }
}

/// The policy a webhook's deliveries follow: for each setting, the tighter of the
/// connector's and the webhook's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EffectivePolicy {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
    pub concurrency: u32,
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_statuses: Option<Vec<u16>>,
}

impl EffectivePolicy {
    pub fn new(connector: Option<&DeliveryPolicy>, webhook: WebhookLimits) -> EffectivePolicy {
        let declared = connector.cloned().unwrap_or_default();
        let rate = match (declared.rate, webhook.rate_limit.map(Rate::per_second)) {
            (Some(a), Some(b)) => Some(a.tighter(b)),
            (a, b) => a.or(b),
        };
        EffectivePolicy {
            rate,
            concurrency: declared.concurrency.map_or(webhook.concurrency, |c| c.min(webhook.concurrency)),
            attempts: declared.attempts.map_or(webhook.attempts, |a| a.min(webhook.attempts)),
            retry_statuses: declared.retry_statuses,
        }
    }

    /// Whether a failed HTTP status is worth another attempt.
    pub fn retries(&self, status: u16) -> bool {
        self.retry_statuses.as_ref().is_none_or(|statuses| statuses.contains(&status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEBHOOK: WebhookLimits = WebhookLimits { rate_limit: None, concurrency: 8, attempts: 5 };

    #[test]
    fn each_setting_is_the_tighter_of_connector_and_webhook() {
        let declared = DeliveryPolicy {
            rate: Some(Rate { requests: 100, seconds: 10 }),
            concurrency: Some(4),
            attempts: Some(3),
            retry_statuses: Some(vec![429, 503]),
        };
        let plain = EffectivePolicy::new(Some(&declared), WEBHOOK);
        assert_eq!(plain.rate, Some(Rate { requests: 100, seconds: 10 }));
        assert_eq!((plain.concurrency, plain.attempts), (4, 3));
        assert!(plain.retries(429) && !plain.retries(500));

        let tighter = WebhookLimits { rate_limit: Some(2), concurrency: 1, attempts: 5 };
        let both = EffectivePolicy::new(Some(&declared), tighter);
        assert_eq!(both.rate, Some(Rate { requests: 2, seconds: 1 }), "2/s is slower than 10/s");
        assert_eq!(both.concurrency, 1);

        let looser = WebhookLimits { rate_limit: Some(50), ..WEBHOOK };
        assert_eq!(EffectivePolicy::new(Some(&declared), looser).rate, declared.rate, "never looser");
    }

    #[test]
    fn without_a_declared_policy_the_webhook_decides_and_everything_is_retried() {
        let policy = EffectivePolicy::new(None, WebhookLimits { rate_limit: Some(5), ..WEBHOOK });
        assert_eq!(policy.rate, Some(Rate::per_second(5)));
        assert_eq!((policy.concurrency, policy.attempts), (8, 5));
        assert!(policy.retries(500));
        assert_eq!(Rate { requests: 100, seconds: 10 }.interval(), Duration::from_millis(100));
    }

    #[test]
    fn impossible_policies_are_refused() {
        let bad = |policy: DeliveryPolicy| check(&policy).unwrap_err();
        assert!(
            bad(DeliveryPolicy { rate: Some(Rate { requests: 0, seconds: 1 }), ..Default::default() })
                .contains("policy.rate")
        );
        assert!(bad(DeliveryPolicy { attempts: Some(0), ..Default::default() }).contains("at least 1"));
        assert!(bad(DeliveryPolicy { retry_statuses: Some(vec![42]), ..Default::default() }).contains("42"));
        assert!(check(&DeliveryPolicy::default()).is_ok());
    }
}
