//! The `queue` tree: which deliveries wait for a turn, durably. The engine claims them from
//! memory (`SledStore::claim`); the tree is read back at open, and by an export.
//!
//! - `<ms><delivery id>` → webhook id: one delivery due at `ms` (milliseconds since the
//!   epoch, big-endian). A retry, a requeue, and every entry before schema 5.
//! - `<ms>\0<uuid>` → the deliveries an ingest group queued at `ms`, listed (`keylist.rs`).
//!   One entry per group, not per delivery: in sled each new key costs far more than a longer
//!   value. A listed delivery's record says whether it is still queued and when it is due.
//!
//! A grouped delivery leaves its group when its turn ends it, or moves it to an entry of its
//! own; the group's entry goes when its last delivery has left ([`Groups`]). Those writes
//! follow the delivery's own in sled's log, so a crash leaves a group naming deliveries that
//! are no longer queued (skipped when read back), never a queued delivery no entry names.

use std::collections::{HashMap, HashSet, VecDeque};

use super::{StoreError, delivery_key, keylist, record};
use crate::domain::delivery::DeliveryStatus;
use crate::store::{QueueEntry, millis};

/// The key of `delivery_id`'s own entry, due at `due_ms`.
pub(super) fn key(due_ms: u64, delivery_id: &str) -> Vec<u8> {
    [&due_ms.to_be_bytes()[..], delivery_id.as_bytes()].concat()
}

/// A new group entry, for deliveries queued at `at_ms`, listing `delivery_ids`.
pub(super) fn group<'a>(at_ms: u64, delivery_ids: impl IntoIterator<Item = &'a [u8]>) -> (Vec<u8>, Vec<u8>) {
    let entry = [&at_ms.to_be_bytes()[..], b"\0", uuid::Uuid::now_v7().as_bytes()].concat();
    (entry, keylist::encode(delivery_ids))
}

/// What one entry of the tree holds.
pub(super) enum Stored<'a> {
    One(QueueEntry),
    Group { at_ms: u64, delivery_ids: Vec<&'a [u8]> },
}

pub(super) fn read<'a>(key: &'a [u8], value: &'a [u8]) -> Result<Stored<'a>, StoreError> {
    let corrupt =
        || StoreError::Corrupt(format!("queue entry {}", String::from_utf8_lossy(key).escape_debug()));
    let (at, rest) = key.split_first_chunk::<8>().ok_or_else(corrupt)?;
    let at_ms = u64::from_be_bytes(*at);
    if rest.first() == Some(&0) {
        return Ok(Stored::Group { at_ms, delivery_ids: keylist::decode(value).ok_or_else(corrupt)? });
    }
    let id = std::str::from_utf8(rest).map_err(|_| corrupt())?;
    let webhook = std::str::from_utf8(value).map_err(|_| corrupt())?;
    Ok(Stored::One(QueueEntry::new(at_ms, id, webhook)))
}

/// The deliveries of a group queued at `at_ms` that are still queued in it, each due when
/// its record says (its plugin not run yet: at once). One rescheduled (its retry has an
/// entry of its own, due then) is left to that entry.
pub(super) fn still_queued(
    queue: &sled::Tree,
    deliveries: &sled::Tree,
    at_ms: u64,
    delivery_ids: &[&[u8]],
) -> Result<Vec<QueueEntry>, StoreError> {
    let mut queued = Vec::new();
    for id in delivery_ids {
        let id = std::str::from_utf8(id).map_err(|_| StoreError::Corrupt("queue group".into()))?;
        // Missing: its event turned out a duplicate, or it was pruned.
        let Some(stored) = deliveries.get(delivery_key(id))? else { continue };
        let delivery = record::delivery(&stored).map_err(super::corrupt)?;
        if delivery.status != DeliveryStatus::Pending {
            continue;
        }
        let due = delivery.next_attempt_at().map_or(at_ms, millis);
        if !queue.contains_key(key(due, id))? {
            queued.push(QueueEntry::new(due, id, &delivery.webhook_id));
        }
    }
    Ok(queued)
}

/// Reads the queue at open: every queued delivery once, by due time. Groups whose
/// deliveries have all left are removed; the others join `groups`.
pub(super) fn load(
    queue: &sled::Tree,
    deliveries: &sled::Tree,
    groups: &mut Groups,
) -> Result<VecDeque<QueueEntry>, StoreError> {
    let mut entries = Vec::new();
    let mut found = Vec::new();
    for item in queue.iter() {
        let (key, value) = item?;
        match read(&key, &value)? {
            Stored::One(entry) => entries.push(entry),
            Stored::Group { .. } => found.push((key, value)),
        }
    }
    // A delivery with an entry of its own has left its group (the entry due other than its
    // record says: a retry its plugin asked to wait for, a requeue).
    let own: HashSet<String> = entries.iter().map(|entry| entry.delivery_id.clone()).collect();
    for (key, value) in found {
        let Stored::Group { at_ms, delivery_ids } = read(&key, &value)? else { unreachable!("read above") };
        let mut queued = still_queued(queue, deliveries, at_ms, &delivery_ids)?;
        queued.retain(|entry| !own.contains(&entry.delivery_id));
        if queued.is_empty() {
            queue.remove(&key)?;
            continue;
        }
        groups.add(key.to_vec(), queued.iter().map(|entry| entry.delivery_id.clone()));
        entries.extend(queued);
    }
    entries.sort_by_key(|entry| entry.due_ms);
    Ok(entries.into())
}

/// Which deliveries each group entry still holds, in memory: what tells a turn whether its
/// delivery's group entry can go.
#[derive(Default)]
pub(super) struct Groups {
    next: u64,
    /// The group each grouped delivery is queued in.
    of: HashMap<String, u64>,
    /// Each group's entry key, and how many of its deliveries are still in it.
    left: HashMap<u64, (Vec<u8>, usize)>,
}

/// What a delivery leaving its group means for the group's entry.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Leaving {
    /// The delivery was not in a group: it has an entry of its own.
    Ungrouped,
    /// Other deliveries are still in the group.
    Stays,
    /// It was the last: the group entry at this key can go.
    Last(Vec<u8>),
}

impl Groups {
    /// `delivery_ids` are queued in the group entry at `key`.
    pub(super) fn add(&mut self, key: Vec<u8>, delivery_ids: impl IntoIterator<Item = String>) {
        let group = self.next;
        self.next += 1;
        let mut count = 0;
        for id in delivery_ids {
            self.of.insert(id, group);
            count += 1;
        }
        if count > 0 {
            self.left.insert(group, (key, count));
        }
    }

    pub(super) fn leave(&mut self, delivery_id: &str) -> Leaving {
        let Some(group) = self.of.remove(delivery_id) else { return Leaving::Ungrouped };
        let Some((_, count)) = self.left.get_mut(&group) else { return Leaving::Stays };
        *count -= 1;
        match *count {
            0 => Leaving::Last(self.left.remove(&group).expect("present").0),
            _ => Leaving::Stays,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::OffsetDateTime;

    use super::*;
    use crate::domain::delivery::Delivery;
    use crate::store::Accept;
    use crate::store::sled::SledStore;

    /// Accepts one event per id in one call (one group) at `now_ms`; their deliveries.
    async fn accept(store: &SledStore, ids: &[&str], now_ms: u64) -> Vec<Delivery> {
        let accepts: Vec<Accept> = ids
            .iter()
            .map(|id| {
                let event: crate::domain::event::IncomingEvent = serde_json::from_value(
                    json!({"id": id, "event": "TODO_CREATED", "companyId": "c1", "projectId": "p1"}),
                )
                .unwrap();
                let event = event.accept(OffsetDateTime::now_utc());
                let delivery = Delivery::new(&event, "w1", true, OffsetDateTime::now_utc());
                Accept {
                    event: event.into(),
                    deliveries: vec![delivery],
                    response: json!({}),
                    unordered: Vec::new(),
                }
            })
            .collect();
        store.accept(&accepts, None, now_ms).await.unwrap();
        accepts.into_iter().map(|accept| accept.deliveries[0].clone()).collect()
    }

    fn with_status(delivery: &Delivery, status: DeliveryStatus) -> Delivery {
        Delivery { status, ..delivery.clone() }
    }

    /// Grouped deliveries come back after a restart as their turns left them: those finished
    /// not at all, a retry once and due when it was put off, the others at once; a group
    /// whose deliveries have all left is gone.
    #[tokio::test]
    async fn a_restart_queues_what_turns_left_queued_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let grouped = accept(&store, &["e1", "e2", "e3"], 1_000).await;
        let alone = accept(&store, &["e4"], 2_000).await;
        let duplicate = accept(&store, &["e4"], 2_500).await;
        assert_eq!(store.inner.queue.len(), 2, "one entry per group; none for a duplicate");
        let claimed = store.claim(10).await.unwrap();
        assert_eq!(claimed.len(), 4);
        let entry = |delivery: &Delivery| claimed.iter().find(|e| e.delivery_id == delivery.id).unwrap();

        let done = with_status(&grouped[0], DeliveryStatus::Succeeded);
        store.finish(entry(&grouped[0]), Some(&done), None, &[]).await.unwrap();
        let put_off = OffsetDateTime::now_utc() + time::Duration::hours(1);
        let retried = grouped[1].clone().due_again_at(put_off);
        store.finish(entry(&grouped[1]), Some(&retried), Some(millis(put_off)), &[]).await.unwrap();
        let done = with_status(&alone[0], DeliveryStatus::Failed);
        store.finish(entry(&alone[0]), Some(&done), None, &[]).await.unwrap();
        assert_eq!(store.inner.queue.len(), 2, "the first group, and the retry's own entry");
        assert_eq!(store.queue_depth(), 2);
        store.close_and_release().await.unwrap();

        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(store.queue_depth(), 2);
        let claimed = store.claim(10).await.unwrap();
        assert_eq!(
            claimed,
            [
                QueueEntry::new(1_000, &grouped[2].id, "w1"),
                QueueEntry::new(millis(put_off), &grouped[1].id, "w1")
            ]
        );
        assert!(duplicate.iter().all(|d| claimed.iter().all(|e| e.delivery_id != d.id)));
        let done = with_status(&grouped[2], DeliveryStatus::Succeeded);
        store.finish(&claimed[0], Some(&done), None, &[]).await.unwrap();
        assert_eq!(store.inner.queue.len(), 1, "the group is gone with its last delivery");
        let done = with_status(&grouped[1], DeliveryStatus::Succeeded);
        store.finish(&claimed[1], Some(&done), None, &[]).await.unwrap();
        assert!(store.inner.queue.is_empty());
        assert_eq!(store.queue_depth(), 0);
    }

    #[test]
    fn entries_read_back_and_sort_by_time() {
        let one = key(1_000, "dlv_1");
        let Ok(Stored::One(entry)) = read(&one, b"wh_1") else { panic!("one delivery") };
        assert_eq!(entry, QueueEntry::new(1_000, "dlv_1", "wh_1"));
        let (entry, value) = group(1_000, [&b"dlv_2"[..], b"dlv_3"]);
        let Ok(Stored::Group { at_ms: 1_000, delivery_ids }) = read(&entry, &value) else {
            panic!("a group")
        };
        assert_eq!(delivery_ids, [b"dlv_2", b"dlv_3"]);
        assert!(entry < one && one < key(1_001, "dlv_0"), "by time first");
        assert!(read(&entry, &value[..value.len() - 1]).is_err());
        assert!(read(b"short", b"wh_1").is_err());
    }

    #[test]
    fn a_group_goes_when_its_last_delivery_leaves() {
        let mut groups = Groups::default();
        groups.add(b"g1".to_vec(), ["d1".to_owned(), "d2".to_owned()]);
        groups.add(b"g2".to_vec(), ["d3".to_owned()]);
        groups.add(b"g3".to_vec(), []);
        assert_eq!(groups.leave("d2"), Leaving::Stays);
        assert_eq!(groups.leave("d2"), Leaving::Ungrouped, "left already");
        assert_eq!(groups.leave("d3"), Leaving::Last(b"g2".to_vec()));
        assert_eq!(groups.leave("d1"), Leaving::Last(b"g1".to_vec()));
        assert_eq!(groups.leave("d9"), Leaving::Ungrouped);
        assert!(groups.of.is_empty() && groups.left.is_empty());
    }
}
