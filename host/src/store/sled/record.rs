//! A delivery's record: its JSON on the first line, then a line per attempt (`\n` and the
//! attempt's JSON), oldest first. One key per delivery: a turn stores its outcome and its
//! attempts in one write, and no key is added per attempt (in sled each new key costs far
//! more than a longer value: leaves split every few inserts).
//!
//! A turn's write is a merge ([`merge`], the `deliveries` tree's merge operator): its record
//! holds the delivery as it now stands, or an empty first line to keep the stored one, and the
//! attempts to add. The stored attempts are carried over as bytes, never read. serde_json
//! writes no raw newline (it escapes those inside strings), so the lines split cleanly.

use serde::de::DeserializeOwned;

use super::encode;
use crate::domain::delivery::{Attempt, Delivery};

/// A new delivery's record (no attempts yet).
pub(super) fn new(delivery: &Delivery) -> Vec<u8> {
    encode(delivery)
}

/// A turn's write, for [`merge`]: the delivery as it now stands (`None`: as stored), and the
/// attempts it made.
pub(super) fn update(delivery: Option<&Delivery>, attempts: &[Attempt]) -> Vec<u8> {
    let mut record = delivery.map(encode).unwrap_or_default();
    for attempt in attempts {
        record.push(b'\n');
        serde_json::to_writer(&mut record, attempt).expect("records are plain data");
    }
    record
}

/// The `deliveries` tree's merge operator: `update` applied to the stored record. Attempts
/// for a delivery that is no longer stored are dropped with it.
pub(super) fn merge(_key: &[u8], stored: Option<&[u8]>, update: &[u8]) -> Option<Vec<u8>> {
    let (delivery, added) = split(update);
    let (stored_delivery, stored_attempts) = stored.map(split).unwrap_or_default();
    let delivery = if delivery.is_empty() { stored_delivery } else { delivery };
    if delivery.is_empty() {
        return None;
    }
    Some([delivery, stored_attempts, added].concat())
}

/// `stored` with its attempts replaced by `attempts` (each an attempt's JSON, oldest first):
/// for attempts that were stored elsewhere.
pub(super) fn with_attempts(stored: &[u8], attempts: &[impl AsRef<[u8]>]) -> Vec<u8> {
    let mut record = split(stored).0.to_vec();
    for attempt in attempts {
        record.push(b'\n');
        record.extend_from_slice(attempt.as_ref());
    }
    record
}

/// The delivery a record holds.
pub(super) fn delivery(record: &[u8]) -> serde_json::Result<Delivery> {
    serde_json::from_slice(split(record).0)
}

/// The attempts a record holds, oldest first.
pub(super) fn attempts(record: &[u8]) -> serde_json::Result<Vec<Attempt>> {
    lines(split(record).1)
}

/// The first line, and the rest from its newline on.
fn split(record: &[u8]) -> (&[u8], &[u8]) {
    let end = record.iter().position(|b| *b == b'\n').unwrap_or(record.len());
    record.split_at(end)
}

fn lines<T: DeserializeOwned>(rest: &[u8]) -> serde_json::Result<Vec<T>> {
    rest.split(|b| *b == b'\n').skip(1).map(serde_json::from_slice).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::Event;
    use time::OffsetDateTime;

    fn delivery() -> Delivery {
        let event: Event = serde_json::from_value(serde_json::json!({
            "id": "e1", "event": "TODO_CREATED", "companyId": "c", "projectId": "p",
            "currentValue": {"text": "two\nlines"}, "occurredAt": "2026-12-03T10:00:00Z"
        }))
        .unwrap();
        Delivery::new(&event, "w1", true, OffsetDateTime::now_utc())
    }

    fn attempt(status: u16) -> Attempt {
        Attempt {
            message_id: "m1".into(),
            at: OffsetDateTime::now_utc(),
            status_code: Some(status),
            latency_ms: 3,
            response: Some("a line\nand another".into()),
            error: None,
            remote_id: None,
        }
    }

    #[test]
    fn turns_add_attempts_and_keep_those_stored() {
        let first = delivery();
        let stored = new(&first);
        assert_eq!(super::delivery(&stored).unwrap(), first);
        assert!(attempts(&stored).unwrap().is_empty());

        let mut retried = first.clone();
        retried.error = Some("later".into());
        let stored = merge(b"d/1", Some(&stored), &update(Some(&retried), &[attempt(500)])).unwrap();
        let stored = merge(b"d/1", Some(&stored), &update(None, &[attempt(502), attempt(200)])).unwrap();
        assert_eq!(super::delivery(&stored).unwrap(), retried, "an empty first line keeps the delivery");
        let codes: Vec<_> = attempts(&stored).unwrap().iter().map(|a| a.status_code).collect();
        assert_eq!(codes, [Some(500), Some(502), Some(200)]);

        let stored = merge(b"d/1", Some(&stored), &update(Some(&first), &[])).unwrap();
        assert_eq!(super::delivery(&stored).unwrap(), first);
        assert_eq!(attempts(&stored).unwrap().len(), 3, "a new state keeps the attempts");
    }

    #[test]
    fn attempts_for_a_delivery_no_longer_stored_are_dropped() {
        assert_eq!(merge(b"d/1", None, &update(None, &[attempt(200)])), None);
        let set = merge(b"d/1", None, &update(Some(&delivery()), &[attempt(200)])).unwrap();
        assert_eq!(attempts(&set).unwrap().len(), 1);
    }

    #[test]
    fn a_damaged_attempt_line_is_an_error() {
        let mut stored = new(&delivery());
        stored.extend_from_slice(b"\n{not json");
        assert!(attempts(&stored).is_err());
        assert!(super::delivery(&stored).is_ok());
    }
}
