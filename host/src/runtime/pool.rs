//! Idle instances kept for reuse under the `pooled` policy.
//!
//! Keyed by plugin content hash *and owner*: guest state survives between calls on one
//! instance, so an instance that served one user never serves another. The number of idle
//! instances is capped; the least recently used go first.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::ContentHash;
use super::instance::Instance;

#[derive(Clone, PartialEq, Eq)]
pub(crate) struct PoolKey {
    pub(crate) plugin: ContentHash,
    pub(crate) owner: Arc<str>,
}

pub(crate) struct IdlePool {
    /// Least recently used at the front. Small (the cap), so a scan is cheap.
    idle: Mutex<VecDeque<(PoolKey, Instance)>>,
    max_idle: usize,
}

impl IdlePool {
    pub(crate) fn new(max_idle: usize) -> Self {
        IdlePool { idle: Mutex::new(VecDeque::new()), max_idle }
    }

    /// The most recently used idle instance for `key`, if any.
    pub(crate) fn take(&self, plugin: &ContentHash, owner: &str) -> Option<Instance> {
        let mut idle = self.lock();
        let at = idle.iter().rposition(|(k, _)| k.plugin == *plugin && *k.owner == *owner)?;
        idle.remove(at).map(|(_, instance)| instance)
    }

    pub(crate) fn put(&self, key: PoolKey, instance: Instance) {
        if self.max_idle == 0 {
            return;
        }
        let evicted = {
            let mut idle = self.lock();
            idle.push_back((key, instance));
            (idle.len() > self.max_idle).then(|| idle.pop_front())
        };
        // Dropping a store releases its pool slots: do it outside the lock.
        drop(evicted);
    }

    /// Drops every idle instance of a plugin (after it is replaced or removed).
    pub(crate) fn forget(&self, plugin: &ContentHash) {
        let dropped: Vec<_> = {
            let mut idle = self.lock();
            let (gone, kept): (Vec<_>, Vec<_>) =
                std::mem::take(&mut *idle).into_iter().partition(|(k, _)| k.plugin == *plugin);
            *idle = kept.into();
            gone
        };
        drop(dropped);
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(PoolKey, Instance)>> {
        // Nothing panics while holding this lock; recover the data if something ever did.
        self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
