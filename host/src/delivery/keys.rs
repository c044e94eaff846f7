//! Ordering keys (contract 0.2): a webhook's requests with the same key are sent one at a
//! time, in the order of their deliveries (ingest order: delivery ids are UUIDv7), while
//! requests with other keys go in parallel.
//!
//! A key is only known once the plugin has run, so the engine tells this module as turns
//! start (their keys unknown yet) and as they learn their keys; a request may go when no
//! earlier delivery of its webhook holds its key and none is still finding out its keys. A
//! delivery holds a key from its transform until its request with that key is final — across
//! retries too. A webhook's lane runs on one host at a time, so this in-memory view is the
//! whole truth, but for deliveries another host (or this one, before a restart) left waiting
//! for a retry: the first time one of its requests has a key, the webhook's pending deliveries
//! are read from storage.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::domain::delivery::{Delivery, MessageStatus};

/// Pending deliveries read per webhook when its holds are first needed.
pub(crate) const LOAD_LIMIT: usize = 10_000;

#[derive(Default)]
pub(crate) struct KeyOrder {
    webhooks: Mutex<HashMap<String, Holds>>,
}

#[derive(Default)]
struct Holds {
    /// The webhook's pending deliveries were read from storage.
    loaded: bool,
    /// Deliveries whose turn started and whose keys are not known yet.
    unknown: BTreeSet<String>,
    /// Per key, the deliveries with a request of that key not yet final.
    holders: HashMap<String, BTreeSet<String>>,
    changed: Arc<Notify>,
}

impl Holds {
    fn is_idle(&self) -> bool {
        self.unknown.is_empty() && self.holders.is_empty()
    }
}

/// The keys of a delivery's requests still to be sent.
pub(crate) fn pending_keys(delivery: &Delivery) -> Vec<String> {
    let mut keys: Vec<String> = delivery
        .messages
        .iter()
        .filter(|m| m.status == MessageStatus::Pending)
        .filter_map(|m| m.request.ordering_key.clone())
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

impl KeyOrder {
    fn with<T>(&self, webhook_id: &str, f: impl FnOnce(&mut Holds) -> T) -> T {
        let mut webhooks = self.webhooks.lock().unwrap_or_else(|p| p.into_inner());
        if !webhooks.contains_key(webhook_id) {
            webhooks.insert(webhook_id.to_owned(), Holds::default());
        }
        let holds = webhooks.get_mut(webhook_id).expect("just inserted");
        let answer = f(holds);
        if holds.is_idle() && !holds.loaded {
            webhooks.remove(webhook_id);
        }
        answer
    }

    /// A turn of `delivery_id` starts: until it says which keys it holds, later deliveries
    /// of the webhook wait for it.
    pub(crate) fn starting(&self, webhook_id: &str, delivery_id: &str) {
        self.with(webhook_id, |holds| {
            holds.unknown.insert(delivery_id.to_owned());
        });
    }

    /// `delivery_id` holds exactly `keys` (those of its requests not yet final), and its keys
    /// are known.
    pub(crate) fn holding(&self, webhook_id: &str, delivery_id: &str, keys: &[String]) {
        self.with(webhook_id, |holds| {
            let was_unknown = holds.unknown.remove(delivery_id);
            let mut changed = was_unknown;
            holds.holders.retain(|key, holders| {
                if !keys.contains(key) && holders.remove(delivery_id) {
                    changed = true;
                }
                !holders.is_empty()
            });
            for key in keys {
                changed |= holds.holders.entry(key.clone()).or_default().insert(delivery_id.to_owned());
            }
            if changed {
                holds.changed.notify_waiters();
            }
        });
    }

    /// Whether the webhook's pending deliveries still have to be read from storage.
    pub(crate) fn needs_loading(&self, webhook_id: &str) -> bool {
        self.with(webhook_id, |holds| !holds.loaded)
    }

    /// Takes in what storage says of the webhook's pending deliveries.
    pub(crate) fn load(&self, webhook_id: &str, pending: &[Delivery]) {
        self.with(webhook_id, |holds| {
            holds.loaded = true;
            for delivery in pending {
                for key in pending_keys(delivery) {
                    holds.holders.entry(key).or_default().insert(delivery.id.clone());
                }
            }
            holds.changed.notify_waiters();
        });
    }

    /// Whether `delivery_id` may send its request with `key` now; if not, what to wait on.
    pub(crate) fn may_send(&self, webhook_id: &str, key: &str, delivery_id: &str) -> Result<(), Arc<Notify>> {
        self.with(webhook_id, |holds| {
            let earlier_unknown = holds.unknown.first().is_some_and(|first| first.as_str() < delivery_id);
            let first = holds.holders.get(key).and_then(|holders| holders.first());
            let first_is_us = first.is_none_or(|first| first == delivery_id);
            match !earlier_unknown && first_is_us {
                true => Ok(()),
                false => Err(holds.changed.clone()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_key_in_delivery_order_other_keys_in_parallel() {
        let order = KeyOrder::default();
        for id in ["d1", "d2", "d3"] {
            order.starting("w", id);
        }
        // d2 knows its key first: it still waits for d1, which may hold it too.
        order.holding("w", "d2", &["r1".into()]);
        assert!(order.may_send("w", "r1", "d2").is_err(), "d1 is still finding out its keys");
        order.holding("w", "d1", &["r1".into()]);
        order.holding("w", "d3", &["r2".into()]);
        assert!(order.may_send("w", "r1", "d1").is_ok());
        assert!(order.may_send("w", "r1", "d2").is_err(), "behind d1");
        assert!(order.may_send("w", "r2", "d3").is_ok(), "another key goes at once");
        // d1's request is final: d2 is next.
        order.holding("w", "d1", &[]);
        assert!(order.may_send("w", "r1", "d2").is_ok());
        assert!(order.may_send("w", "r1", "d2").is_ok(), "another webhook is unaffected");
    }

    #[test]
    fn a_delivery_waiting_for_a_retry_holds_its_key_and_storage_fills_in_what_came_before() {
        let order = KeyOrder::default();
        order.starting("w", "d5");
        order.holding("w", "d5", &["r1".into()]);
        assert!(order.needs_loading("w"));
        let mut earlier = Delivery::new(
            &serde_json::from_value::<crate::domain::event::IncomingEvent>(serde_json::json!(
                {"event": "TODO_CREATED", "companyId": "c", "projectId": "p"}
            ))
            .unwrap()
            .accept(time::OffsetDateTime::now_utc()),
            "w",
            true,
            time::OffsetDateTime::now_utc(),
        );
        earlier.id = "d1".into();
        let request = crate::domain::plugin_output::Request {
            url: None,
            method: "POST".into(),
            headers: vec![],
            body: "{}".into(),
            ordering_key: Some("r1".into()),
        };
        let key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        let secrets = crate::secret::SecretBox::from_base64(key).unwrap();
        let now = time::OffsetDateTime::now_utc();
        let message = crate::domain::delivery::Message::new(request, &Default::default(), &secrets, now);
        earlier.messages.push(message);
        order.load("w", &[earlier]);
        assert!(!order.needs_loading("w"));
        assert!(order.may_send("w", "r1", "d5").is_err(), "d1 waits for a retry and holds r1");
        order.holding("w", "d1", &[]);
        assert!(order.may_send("w", "r1", "d5").is_ok());
    }
}
