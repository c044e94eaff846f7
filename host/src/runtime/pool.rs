//! Idle instances kept for reuse under the `pooled` policy.
//!
//! Keyed by plugin content hash *and owner*: guest state survives between calls on one
//! instance, so an instance that served one user never serves another. Idle instances are
//! capped in number and in the memory they hold (a plugin may keep tens of MiB between
//! calls); the least recently used go first, and any left idle too long are dropped.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::ContentHash;
use super::instance::Instance;

#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct PoolKey {
    pub(crate) plugin: ContentHash,
    pub(crate) owner: Arc<str>,
}

struct Idle {
    key: PoolKey,
    instance: Instance,
    bytes: usize,
    since: Instant,
}

pub(crate) struct IdlePool {
    /// Least recently used at the front. Small (the cap), so a scan is cheap.
    idle: Mutex<VecDeque<Idle>>,
    max_idle: usize,
    max_bytes: usize,
}

impl IdlePool {
    pub(crate) fn new(max_idle: usize, max_bytes: usize) -> Self {
        IdlePool { idle: Mutex::new(VecDeque::new()), max_idle, max_bytes }
    }

    /// The most recently used idle instance for `key`, if any.
    pub(crate) fn take(&self, plugin: &ContentHash, owner: &str) -> Option<Instance> {
        let mut idle = self.lock();
        let at = idle.iter().rposition(|i| i.key.plugin == *plugin && *i.key.owner == *owner)?;
        idle.remove(at).map(|i| i.instance)
    }

    pub(crate) fn put(&self, key: PoolKey, instance: Instance) {
        let bytes = instance.memory_bytes();
        if self.max_idle == 0 || bytes > self.max_bytes {
            return;
        }
        let evicted: Vec<Idle> = {
            let mut idle = self.lock();
            idle.push_back(Idle { key, instance, bytes, since: Instant::now() });
            let mut evicted = Vec::new();
            let mut held: usize = idle.iter().map(|i| i.bytes).sum();
            while idle.len() > self.max_idle || held > self.max_bytes {
                let Some(oldest) = idle.pop_front() else { break };
                held -= oldest.bytes;
                evicted.push(oldest);
            }
            evicted
        };
        // Dropping a store releases its pool slots: do it outside the lock.
        drop(evicted);
    }

    /// Drops the instances idle for longer than `ttl`, giving their memory back.
    pub(crate) fn expire(&self, ttl: Duration) {
        let now = Instant::now();
        let expired: Vec<Idle> = {
            let mut idle = self.lock();
            let keep = idle.iter().position(|i| now.duration_since(i.since) < ttl).unwrap_or(idle.len());
            idle.drain(..keep).collect()
        };
        drop(expired);
    }

    /// Drops every idle instance of a plugin (after it is replaced or removed).
    pub(crate) fn forget(&self, plugin: &ContentHash) {
        let dropped: Vec<_> = {
            let mut idle = self.lock();
            let (gone, kept): (Vec<_>, Vec<_>) =
                std::mem::take(&mut *idle).into_iter().partition(|i| i.key.plugin == *plugin);
            *idle = kept.into();
            gone
        };
        drop(dropped);
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Guest memory the idle instances hold.
    pub(crate) fn bytes(&self) -> usize {
        self.lock().iter().map(|i| i.bytes).sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Idle>> {
        // Nothing panics while holding this lock; recover the data if something ever did.
        self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
