//! The events accepted here most recently, kept decoded: a delivery's first turn reads its
//! event right after ingest wrote it, and events never change once stored — so a hit is
//! always right, and it saves a read per delivery.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::domain::event::Event;

/// Events kept at most: a few seconds of ingest at full speed.
const CAPACITY: usize = 8_192;

/// Recent events by company and id, oldest dropped first. Cheap to clone.
#[derive(Clone, Default)]
pub(super) struct RecentEvents {
    inner: Arc<Mutex<Recent>>,
}

#[derive(Default)]
struct Recent {
    by_key: HashMap<(String, String), Arc<Event>>,
    order: VecDeque<(String, String)>,
}

impl RecentEvents {
    pub(super) fn insert(&self, event: &Event) {
        let key = (event.company_id.clone(), event.id.clone());
        let mut recent = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if recent.by_key.insert(key.clone(), Arc::new(event.clone())).is_none() {
            recent.order.push_back(key);
        }
        while recent.order.len() > CAPACITY {
            if let Some(oldest) = recent.order.pop_front() {
                recent.by_key.remove(&oldest);
            }
        }
    }

    pub(super) fn clear(&self) {
        *self.inner.lock().unwrap_or_else(|p| p.into_inner()) = Recent::default();
    }

    pub(super) fn get(&self, company_id: &str, id: &str) -> Option<Arc<Event>> {
        let recent = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        recent.by_key.get(&(company_id.to_owned(), id.to_owned())).cloned()
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
        let recent = RecentEvents::default();
        for id in 0..CAPACITY + 10 {
            recent.insert(&event(id));
        }
        assert!(recent.get("c", "e0").is_none(), "the oldest went");
        assert_eq!(recent.get("c", &format!("e{}", CAPACITY + 9)).unwrap().id, format!("e{}", CAPACITY + 9));
        assert!(recent.get("other", "e20").is_none(), "events are per company");
    }
}
