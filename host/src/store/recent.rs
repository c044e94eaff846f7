//! What ingest wrote here most recently, kept decoded in memory: a delivery's first turn
//! reads its delivery and its event right after ingest wrote them, so a hit saves a storage
//! read each (on PostgreSQL, a round trip each).
//!
//! - Events never change once stored, so a recent event is always right.
//! - A fresh delivery is right only until its next turn: it is *taken* (read once), and only
//!   for the queue entry it was written (or read ahead) with — a turn moves or removes that
//!   entry, so a delivery worked since, here or on another host, is never served from here.
//!   One kept by ingest carries its event: kept before the write (the engine may take the
//!   entry before the write returns), under a new delivery id, so it is only ever asked for
//!   once its event was stored as given — an event seen before stores no deliveries.
//!   (A turn that waits for its plugin keeps its entry and records only why it waits: the
//!   next turn runs the plugin again either way.)

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use crate::domain::delivery::Delivery;
use crate::domain::event::Event;

/// Events kept at most: a few seconds of ingest at full speed (they carry their payload).
pub(super) const EVENTS: usize = 8_192;

/// Fresh deliveries kept at most: small records, so a backlog of several seconds fits.
const DELIVERIES: usize = 32_768;

/// Recent events by company and id.
pub(super) type RecentEvents = Recent<(String, String), Arc<Event>>;

/// Deliveries as ingest wrote them (or as read ahead of their turn), by id.
pub(super) type FreshDeliveries = Recent<String, Fresh>;

/// What a turn would read from storage, as far as [`FreshDeliveries`] knows.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Missing {
    /// Nothing: the delivery is here with its event.
    Nothing,
    /// The delivery's event, by company and id.
    Event(String, String),
    /// The delivery (and so its event).
    Delivery,
}

/// A delivery as written, with the due time of its queue entry then, and its event when
/// ingest kept it.
pub(super) struct Fresh {
    due_ms: u64,
    delivery: Arc<Delivery>,
    event: Option<Arc<Event>>,
}

/// A bounded map, oldest dropped first. Cheap to clone (shared).
pub(super) struct Recent<K, V> {
    inner: Arc<Mutex<Entries<K, V>>>,
    capacity: usize,
}

/// Values with the stamp of their latest insert or refresh; `order` holds (key, stamp) oldest
/// first, and an entry whose stamp is no longer its key's (refreshed since, or taken) only
/// waits there to be skipped.
struct Entries<K, V> {
    by_key: HashMap<K, (u64, V)>,
    order: VecDeque<(K, u64)>,
    stamp: u64,
}

impl<K, V> Clone for Recent<K, V> {
    fn clone(&self) -> Self {
        Recent { inner: self.inner.clone(), capacity: self.capacity }
    }
}

impl RecentEvents {
    pub(super) fn events() -> Self {
        Recent::with_capacity(EVENTS)
    }

    pub(super) fn remember(&self, event: &Event) {
        self.keep(Arc::new(event.clone()));
    }

    pub(super) fn keep(&self, event: Arc<Event>) {
        self.insert((event.company_id.clone(), event.id.clone()), event);
    }

    /// Keeps the event unless it is here already (as it usually is: ingest keeps it once
    /// written).
    pub(super) fn offer(&self, event: Arc<Event>) {
        self.insert_absent((event.company_id.clone(), event.id.clone()), event);
    }

    pub(super) fn event(&self, company_id: &str, id: &str) -> Option<Arc<Event>> {
        self.lock().by_key.get(&(company_id.to_owned(), id.to_owned())).map(|(_, event)| event.clone())
    }

    /// Keeps the event as if remembered just now, if it is here: a turn will need it soon,
    /// and in a backlog the events due next are the oldest kept, the first to go. `false`
    /// when it is not here.
    pub(super) fn refresh(&self, company_id: &str, id: &str) -> bool {
        self.touch(&(company_id.to_owned(), id.to_owned()))
    }
}

impl FreshDeliveries {
    pub(super) fn deliveries() -> Self {
        Recent::with_capacity(DELIVERIES)
    }

    pub(super) fn remember(&self, delivery: &Delivery, due_ms: u64, event: Option<Arc<Event>>) {
        self.insert(delivery.id.clone(), Fresh { due_ms, delivery: Arc::new(delivery.clone()), event });
    }

    /// What a turn of the delivery kept as `id` would still read from storage.
    pub(super) fn missing(&self, id: &str) -> Missing {
        let entries = self.lock();
        match entries.by_key.get(id) {
            None => Missing::Delivery,
            Some((_, Fresh { event: Some(_), .. })) => Missing::Nothing,
            Some((_, Fresh { delivery, event: None, .. })) => {
                Missing::Event(delivery.company_id.clone(), delivery.event_id.clone())
            }
        }
    }

    /// The delivery as ingest wrote it, and its event if kept with it, if `due_ms` is its
    /// first queue entry's; gone after.
    pub(super) fn take(&self, id: &str, due_ms: u64) -> Option<(Arc<Delivery>, Option<Arc<Event>>)> {
        let (_, fresh) = self.lock().by_key.remove(id)?;
        (fresh.due_ms == due_ms).then_some((fresh.delivery, fresh.event))
    }
}

impl<K: Hash + Eq + Clone, V> Recent<K, V> {
    fn with_capacity(capacity: usize) -> Self {
        let entries = Entries { by_key: HashMap::new(), order: VecDeque::new(), stamp: 0 };
        Recent { inner: Arc::new(Mutex::new(entries)), capacity }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries<K, V>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn insert(&self, key: K, value: V) {
        self.lock().put(key, value, self.capacity);
    }

    fn insert_absent(&self, key: K, value: V) {
        let mut entries = self.lock();
        if !entries.by_key.contains_key(&key) {
            entries.put(key, value, self.capacity);
        }
    }

    /// Moves `key` to the newest end, if it is here.
    fn touch(&self, key: &K) -> bool {
        let mut entries = self.lock();
        let stamp = entries.next_stamp();
        let Some((kept, _)) = entries.by_key.get_mut(key) else { return false };
        *kept = stamp;
        entries.order.push_back((key.clone(), stamp));
        entries.bound(self.capacity);
        true
    }

    pub(super) fn clear(&self) {
        let mut entries = self.lock();
        entries.by_key.clear();
        entries.order.clear();
    }
}

impl<K: Hash + Eq + Clone, V> Entries<K, V> {
    fn put(&mut self, key: K, value: V, capacity: usize) {
        let stamp = self.next_stamp();
        self.by_key.insert(key.clone(), (stamp, value));
        self.order.push_back((key, stamp));
        self.bound(capacity);
    }
}

impl<K: Hash + Eq, V> Entries<K, V> {
    fn next_stamp(&mut self) -> u64 {
        self.stamp += 1;
        self.stamp
    }

    fn current(&self, (key, stamp): &(K, u64)) -> bool {
        self.by_key.get(key).is_some_and(|(kept, _)| kept == stamp)
    }

    /// Drops the oldest beyond `capacity` values, and the places left behind (by keys taken
    /// out or refreshed) all at once when there are as many of them as values could be.
    fn bound(&mut self, capacity: usize) {
        while self.by_key.len() > capacity {
            let Some(oldest) = self.order.pop_front() else { break };
            if self.current(&oldest) {
                self.by_key.remove(&oldest.0);
            }
        }
        if self.order.len() > 2 * capacity {
            let mut order = std::mem::take(&mut self.order);
            order.retain(|place| self.current(place));
            self.order = order;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: usize) -> Event {
        let incoming: crate::domain::event::IncomingEvent = serde_json::from_value(serde_json::json!(
            {"id": format!("e{id}"), "event": "TODO_CREATED", "companyId": "c", "projectId": "p"}))
        .unwrap();
        incoming.accept(time::OffsetDateTime::UNIX_EPOCH)
    }

    #[test]
    fn keeps_the_newest_and_drops_the_oldest() {
        let recent = RecentEvents::events();
        for id in 0..EVENTS + 10 {
            recent.remember(&event(id));
        }
        assert!(recent.event("c", "e0").is_none(), "the oldest went");
        assert_eq!(recent.event("c", &format!("e{}", EVENTS + 9)).unwrap().id, format!("e{}", EVENTS + 9));
        assert!(recent.event("other", "e20").is_none(), "events are per company");
    }

    #[test]
    fn a_refreshed_event_is_kept_as_if_new_and_the_places_left_behind_stay_bounded() {
        let recent = RecentEvents::events();
        for id in 0..EVENTS {
            recent.remember(&event(id));
        }
        assert!(recent.refresh("c", "e0"), "the oldest is here");
        assert!(!recent.refresh("c", "e-never"), "nothing to refresh");
        recent.remember(&event(EVENTS));
        assert!(recent.event("c", "e0").is_some(), "refreshed: kept");
        assert!(recent.event("c", "e1").is_none(), "the oldest not refreshed went instead");
        for _ in 0..10 * EVENTS {
            recent.refresh("c", "e0");
        }
        let entries = recent.lock();
        assert_eq!(entries.by_key.len(), EVENTS);
        assert!(entries.order.len() <= 2 * EVENTS, "{} places", entries.order.len());
    }

    #[test]
    fn a_delivery_kept_with_its_event_needs_nothing_read_ahead() {
        let fresh = FreshDeliveries::deliveries();
        let (with, without) = (event(1), event(2));
        let carried = Delivery::new(&with, "w", true, time::OffsetDateTime::UNIX_EPOCH);
        let bare = Delivery::new(&without, "w", true, time::OffsetDateTime::UNIX_EPOCH);
        fresh.remember(&carried, 10, Some(Arc::new(with)));
        fresh.remember(&bare, 10, None);
        // However long the backlog (the events kept may have dropped it), the event is here.
        assert_eq!(fresh.missing(&carried.id), Missing::Nothing);
        assert_eq!(fresh.missing(&bare.id), Missing::Event("c".into(), "e2".into()));
        assert_eq!(fresh.missing("never-kept"), Missing::Delivery);
    }

    #[test]
    fn a_fresh_delivery_is_read_once_and_only_for_its_first_queue_entry() {
        let fresh = FreshDeliveries::deliveries();
        let delivery = Delivery::new(&event(1), "w", true, time::OffsetDateTime::UNIX_EPOCH);
        fresh.remember(&delivery, 10, None);
        assert!(fresh.take(&delivery.id, 11).is_none(), "a moved entry: the delivery was worked");
        assert!(fresh.take(&delivery.id, 10).is_none(), "and it is forgotten");
        fresh.remember(&delivery, 10, None);
        assert_eq!(fresh.take(&delivery.id, 10).unwrap().0.id, delivery.id);
        assert!(fresh.take(&delivery.id, 10).is_none(), "taken once");
    }
}
