//! How plugin invocations share the host, so that one tenant's plugin cannot starve others.
//!
//! Each (plugin, owner) pair has a record: invocations in flight (capped, so one pair cannot
//! take every slot), and strikes — invocations in a row that ended on a limit (CPU, memory,
//! resources). A pair with strikes runs on the quarantine lane (threads at the lowest OS
//! priority, see [`crate::threads`]) until it succeeds again; from [`BACK_OFF_AFTER`] strikes on it is not run at all
//! until a back-off doubling from one second (at most five minutes) has passed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// What the pair may do now.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Run(Lane),
    /// Over its in-flight cap: try again when one of its invocations ends.
    Full,
    BackedOff {
        strikes: u32,
        retry_in: Duration,
    },
}

#[derive(Default)]
struct Record {
    in_flight: usize,
    strikes: u32,
    /// Not run before this, once backed off.
    until: Option<Instant>,
}

pub(crate) struct Fairness {
    records: Mutex<HashMap<PoolKey, Record>>,
    /// Invocations of one pair at once.
    per_pair: usize,
    /// Woken whenever an invocation ends: a pair that was [`Verdict::Full`] may go.
    pub(crate) freed: tokio::sync::Notify,
}

impl Fairness {
    pub(crate) fn new(per_pair: usize) -> Self {
        Fairness { records: Mutex::default(), per_pair: per_pair.max(1), freed: tokio::sync::Notify::new() }
    }

    /// Takes an in-flight slot for `key` when it may run now; [`Fairness::finish`] gives it back.
    pub(crate) fn start(&self, key: &PoolKey, now: Instant) -> Verdict {
        let mut records = self.lock();
        let record = records.entry(key.clone()).or_default();
        if let Some(until) = record.until.filter(|until| *until > now) {
            return Verdict::BackedOff { strikes: record.strikes, retry_in: until - now };
        }
        if record.in_flight >= self.per_pair {
            return Verdict::Full;
        }
        record.in_flight += 1;
        Verdict::Run(if record.strikes == 0 { Lane::Normal } else { Lane::Quarantine })
    }

    /// Ends an invocation started with [`Fairness::start`]: `hit_limit` when it ran past a
    /// limit, `None` when it says nothing about the plugin (it did not get to run).
    pub(crate) fn finish(&self, key: &PoolKey, hit_limit: Option<bool>, now: Instant) {
        let mut records = self.lock();
        let Some(record) = records.get_mut(key) else { return };
        record.in_flight = record.in_flight.saturating_sub(1);
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
        if record.in_flight == 0 && record.strikes == 0 {
            records.remove(key);
        }
        drop(records);
        self.freed.notify_waiters();
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

    #[test]
    fn a_pair_that_keeps_hitting_limits_is_quarantined_then_backed_off() {
        let fairness = Fairness::new(2);
        let (alice, now) = (key("alice"), Instant::now());
        assert_eq!(fairness.start(&alice, now), Verdict::Run(Lane::Normal));
        fairness.finish(&alice, Some(true), now);
        assert_eq!(fairness.start(&alice, now), Verdict::Run(Lane::Quarantine), "one strike: quarantined");
        fairness.finish(&alice, Some(true), now);
        assert_eq!(fairness.start(&alice, now), Verdict::Run(Lane::Quarantine));
        fairness.finish(&alice, Some(true), now);
        let Verdict::BackedOff { strikes: 3, retry_in } = fairness.start(&alice, now) else { panic!() };
        assert_eq!(retry_in, Duration::from_secs(1));
        // Others are untouched.
        assert_eq!(fairness.start(&key("bob"), now), Verdict::Run(Lane::Normal));

        let later = now + Duration::from_secs(2);
        assert_eq!(
            fairness.start(&alice, later),
            Verdict::Run(Lane::Quarantine),
            "tried again after the wait"
        );
        fairness.finish(&alice, Some(true), later);
        let Verdict::BackedOff { retry_in, .. } = fairness.start(&alice, later) else { panic!() };
        assert_eq!(retry_in, Duration::from_secs(2), "the back-off doubles");

        let much_later = later + Duration::from_secs(3);
        assert_eq!(fairness.start(&alice, much_later), Verdict::Run(Lane::Quarantine));
        fairness.finish(&alice, Some(false), much_later);
        assert_eq!(fairness.start(&alice, much_later), Verdict::Run(Lane::Normal), "a success clears it");
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
        assert!(matches!(fairness.start(&alice, now), Verdict::Run(_)));
        assert!(matches!(fairness.start(&alice, now), Verdict::Run(_)));
        assert_eq!(fairness.start(&alice, now), Verdict::Full);
        fairness.finish(&alice, None, now);
        assert!(matches!(fairness.start(&alice, now), Verdict::Run(_)));
    }
}
