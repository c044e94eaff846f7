//! How plugin invocations share the host, so that one tenant's plugin cannot starve others.
//!
//! Each (plugin, owner) pair has a record: invocations in flight (capped, so one pair cannot
//! take every slot), and strikes — invocations in a row that ended on a limit (CPU, memory,
//! resources). A pair with strikes runs on the quarantine lane (threads at the lowest OS
//! priority, see [`crate::threads`]) until it succeeds again; from [`BACK_OFF_AFTER`] strikes on it is not run at all
//! until a back-off doubling from one second (at most five minutes) has passed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::pool::PoolKey;

/// Strikes after which a pair is backed off instead of run.
pub(crate) const BACK_OFF_AFTER: u32 = 3;

const MAX_BACK_OFF: Duration = Duration::from_secs(300);

/// Where an invocation may run now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    /// Inline, on the caller's thread.
    Normal,
    /// On the low-priority quarantine threads.
    Quarantine,
}

/// The pair is backed off: how many strikes it has, and how long until it may run again.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BackedOff {
    pub(crate) strikes: u32,
    pub(crate) retry_in: Duration,
}

struct Record {
    /// The pair's in-flight slots: waiters queue in order, each end wakes one.
    slots: Arc<Semaphore>,
    strikes: u32,
    /// Not run before this, once backed off.
    until: Option<Instant>,
}

pub(crate) struct Fairness {
    records: Mutex<HashMap<PoolKey, Record>>,
    /// Invocations of one pair at once.
    per_pair: usize,
}

impl Fairness {
    pub(crate) fn new(per_pair: usize) -> Self {
        Fairness { records: Mutex::default(), per_pair: per_pair.max(1) }
    }

    /// The pair's in-flight slots to wait on, unless it is backed off.
    pub(crate) fn admit(&self, key: &PoolKey, now: Instant) -> Result<Arc<Semaphore>, BackedOff> {
        let mut records = self.lock();
        let record = records.entry(key.clone()).or_insert_with(|| Record {
            slots: Arc::new(Semaphore::new(self.per_pair)),
            strikes: 0,
            until: None,
        });
        match record.until.filter(|until| *until > now) {
            Some(until) => Err(BackedOff { strikes: record.strikes, retry_in: until - now }),
            None => Ok(record.slots.clone()),
        }
    }

    /// Where the pair runs now, holding a slot (it may have been backed off while waiting).
    pub(crate) fn lane(&self, key: &PoolKey, now: Instant) -> Result<Lane, BackedOff> {
        let records = self.lock();
        let Some(record) = records.get(key) else { return Ok(Lane::Normal) };
        match record.until.filter(|until| *until > now) {
            Some(until) => Err(BackedOff { strikes: record.strikes, retry_in: until - now }),
            None if record.strikes == 0 => Ok(Lane::Normal),
            None => Ok(Lane::Quarantine),
        }
    }

    /// Records how an invocation ended, once its slot is given back: `hit_limit` when it ran
    /// past a limit, `None` when it says nothing about the plugin (it did not get to run).
    pub(crate) fn finish(&self, key: &PoolKey, hit_limit: Option<bool>, now: Instant) {
        let mut records = self.lock();
        let Some(record) = records.get_mut(key) else { return };
        match hit_limit {
            Some(true) => {
                record.strikes += 1;
                if record.strikes >= BACK_OFF_AFTER {
                    let doublings = (record.strikes - BACK_OFF_AFTER).min(16);
                    record.until = Some(now + (Duration::from_secs(1) * (1 << doublings)).min(MAX_BACK_OFF));
                }
            }
            Some(false) => {
                record.strikes = 0;
                record.until = None;
            }
            None => {}
        }
        // Nobody running or waiting, nothing to remember: forget the pair.
        if record.strikes == 0 && Arc::strong_count(&record.slots) == 1 {
            records.remove(key);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PoolKey, Record>> {
        // Nothing panics while holding this lock; recover the data if something ever did.
        self.records.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Previews running at once, in all and per caller: a user trying plugins can never take
/// the capacity that deliveries need.
#[derive(Debug)]
pub(crate) struct PreviewSlots {
    callers: Mutex<HashMap<String, usize>>,
    total: usize,
    per_caller: usize,
}

impl PreviewSlots {
    pub(crate) fn new(total: usize, per_caller: usize) -> Self {
        PreviewSlots { callers: Mutex::default(), total, per_caller }
    }

    /// A slot for `caller`, or why there is none.
    pub(crate) fn take(&self, caller: &str) -> Result<PreviewSlot<'_>, String> {
        let mut callers = self.callers.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if callers.values().sum::<usize>() >= self.total {
            return Err(format!("{} previews are running, the most the host runs at once", self.total));
        }
        let mine = callers.entry(caller.to_owned()).or_default();
        if *mine >= self.per_caller {
            return Err(format!("you have {} previews running, the most one caller may", self.per_caller));
        }
        *mine += 1;
        Ok(PreviewSlot { slots: self, caller: caller.to_owned() })
    }
}

/// A running preview's slot, given back when dropped.
#[derive(Debug)]
pub(crate) struct PreviewSlot<'a> {
    slots: &'a PreviewSlots,
    caller: String,
}

impl Drop for PreviewSlot<'_> {
    fn drop(&mut self) {
        let mut callers = self.slots.callers.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(mine) = callers.get_mut(&self.caller) {
            *mine -= 1;
            if *mine == 0 {
                callers.remove(&self.caller);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ContentHash;

    fn key(owner: &str) -> PoolKey {
        PoolKey { plugin: ContentHash::of(b"plugin"), owner: owner.into() }
    }

    /// One invocation of `key` at `now` that ends as `hit_limit` says; where it ran.
    fn run(fairness: &Fairness, key: &PoolKey, now: Instant, hit_limit: bool) -> Result<Lane, BackedOff> {
        let slots = fairness.admit(key, now)?;
        let permit = slots.try_acquire_owned().expect("a free slot");
        let lane = fairness.lane(key, now)?;
        drop(permit);
        fairness.finish(key, Some(hit_limit), now);
        Ok(lane)
    }

    #[test]
    fn a_pair_that_keeps_hitting_limits_is_quarantined_then_backed_off() {
        let fairness = Fairness::new(2);
        let (alice, now) = (key("alice"), Instant::now());
        assert_eq!(run(&fairness, &alice, now, true), Ok(Lane::Normal));
        assert_eq!(run(&fairness, &alice, now, true), Ok(Lane::Quarantine), "one strike: quarantined");
        assert_eq!(run(&fairness, &alice, now, true), Ok(Lane::Quarantine));
        let Err(BackedOff { strikes: 3, retry_in }) = fairness.admit(&alice, now) else { panic!() };
        assert_eq!(retry_in, Duration::from_secs(1));
        // Others are untouched.
        assert_eq!(run(&fairness, &key("bob"), now, false), Ok(Lane::Normal));

        let later = now + Duration::from_secs(2);
        assert_eq!(run(&fairness, &alice, later, true), Ok(Lane::Quarantine), "tried again after the wait");
        let Err(BackedOff { retry_in, .. }) = fairness.admit(&alice, later) else { panic!() };
        assert_eq!(retry_in, Duration::from_secs(2), "the back-off doubles");

        let much_later = later + Duration::from_secs(3);
        assert_eq!(run(&fairness, &alice, much_later, false), Ok(Lane::Quarantine));
        assert_eq!(run(&fairness, &alice, much_later, false), Ok(Lane::Normal), "a success clears it");
        assert!(fairness.lock().is_empty(), "pairs with nothing to remember are forgotten");
    }

    #[test]
    fn previews_are_bounded_per_caller_and_in_all() {
        let slots = PreviewSlots::new(3, 2);
        let (a1, a2) = (slots.take("alice").unwrap(), slots.take("alice").unwrap());
        assert!(slots.take("alice").unwrap_err().contains("one caller"));
        let b1 = slots.take("bob").unwrap();
        assert!(slots.take("carol").unwrap_err().contains("at once"));
        drop((a1, b1));
        assert!(slots.take("carol").is_ok());
        drop(a2);
    }

    #[test]
    fn a_pair_has_a_cap_on_invocations_in_flight() {
        let fairness = Fairness::new(2);
        let (alice, now) = (key("alice"), Instant::now());
        let slots = fairness.admit(&alice, now).unwrap();
        let (one, _two) =
            (slots.clone().try_acquire_owned().unwrap(), slots.clone().try_acquire_owned().unwrap());
        assert!(slots.clone().try_acquire_owned().is_err(), "a third waits");
        drop(one);
        assert!(slots.try_acquire_owned().is_ok());
    }
}
