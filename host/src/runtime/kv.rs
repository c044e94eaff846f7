//! The `state` import (contract 0.2): each (connector, webhook)'s small key-value store.
//!
//! The runtime checks sizes and hands each call to a [`StateStore`] — the host's storage in
//! `serve`, a map in memory for `plugin run` and previews — scoped to the webhook being
//! delivered, so a plugin can never name another webhook's store. Quotas on the whole store
//! (keys, bytes) are the backend's to enforce, in the same write.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use super::bindings::v0_2::wasmhook::plugin::state::{Host, StateError as WitStateError};
use super::state::PluginState;

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 256;
/// Largest value, in bytes.
pub const MAX_VALUE_BYTES: usize = 64 << 10;
/// Keys one store may hold.
pub const MAX_KEYS: usize = 1_000;
/// Bytes (keys and values) one store may hold.
pub const MAX_TOTAL_BYTES: usize = 1 << 20;

/// Whose store: one per connector and webhook.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StateScope {
    pub connector: String,
    pub webhook_id: String,
}

/// Why a state call failed, as the plugin sees it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("the key is longer than {MAX_KEY_BYTES} bytes")]
    KeyTooLong,
    #[error("the value is larger than {MAX_VALUE_BYTES} bytes")]
    ValueTooLarge,
    #[error("the store would hold more than {MAX_KEYS} keys or {MAX_TOTAL_BYTES} bytes")]
    QuotaExceeded,
    #[error("{0}")]
    Unavailable(String),
}

/// A state store's answer.
pub type Answer<'a, T> = Pin<Box<dyn Future<Output = Result<T, StateError>> + Send + 'a>>;

/// Where states are kept. `set` refuses with [`StateError::QuotaExceeded`] a write that would
/// take the scope's store over [`MAX_KEYS`] or [`MAX_TOTAL_BYTES`].
pub trait StateStore: Send + Sync {
    fn get<'a>(&'a self, scope: &'a StateScope, key: &'a str) -> Answer<'a, Option<String>>;
    fn set<'a>(&'a self, scope: &'a StateScope, key: &'a str, value: &'a str) -> Answer<'a, ()>;
    fn delete<'a>(&'a self, scope: &'a StateScope, key: &'a str) -> Answer<'a, ()>;
    fn keys<'a>(&'a self, scope: &'a StateScope, prefix: &'a str) -> Answer<'a, Vec<String>>;
}

/// One invocation's store: where, and whose.
#[derive(Clone)]
pub struct StateHandle {
    store: Arc<dyn StateStore>,
    scope: StateScope,
}

impl StateHandle {
    pub fn new(store: Arc<dyn StateStore>, scope: StateScope) -> Self {
        StateHandle { store, scope }
    }

    /// A store of its own in memory, empty: what previews and `plugin run` give a plugin.
    pub fn scratch() -> Self {
        let scope = StateScope { connector: String::new(), webhook_id: String::new() };
        StateHandle::new(Arc::new(Memory::default()), scope)
    }
}

impl StateHandle {
    /// This store as a shadowing candidate sees it: what is kept, but its own writes stay in
    /// memory, for this invocation only.
    pub fn read_only(kept: StateHandle) -> Self {
        let scope = kept.scope.clone();
        StateHandle::new(Arc::new(ReadThrough { kept, written: Mutex::default() }), scope)
    }
}

/// Reads what a store keeps; writes go to a map of its own (`None`: deleted).
struct ReadThrough {
    kept: StateHandle,
    written: Mutex<BTreeMap<String, Option<String>>>,
}

impl ReadThrough {
    fn written(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Option<String>>> {
        self.written.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl StateStore for ReadThrough {
    fn get<'a>(&'a self, _scope: &'a StateScope, key: &'a str) -> Answer<'a, Option<String>> {
        let written = self.written().get(key).cloned();
        Box::pin(async move {
            match written {
                Some(value) => Ok(value),
                None => self.kept.store.get(&self.kept.scope, key).await,
            }
        })
    }

    fn set<'a>(&'a self, _scope: &'a StateScope, key: &'a str, value: &'a str) -> Answer<'a, ()> {
        self.written().insert(key.to_owned(), Some(value.to_owned()));
        Box::pin(async { Ok(()) })
    }

    fn delete<'a>(&'a self, _scope: &'a StateScope, key: &'a str) -> Answer<'a, ()> {
        self.written().insert(key.to_owned(), None);
        Box::pin(async { Ok(()) })
    }

    fn keys<'a>(&'a self, _scope: &'a StateScope, prefix: &'a str) -> Answer<'a, Vec<String>> {
        Box::pin(async move {
            let mut keys: std::collections::BTreeSet<String> =
                self.kept.store.keys(&self.kept.scope, prefix).await?.into_iter().collect();
            for (key, value) in self.written().iter().filter(|(key, _)| key.starts_with(prefix)) {
                match value {
                    Some(_) => keys.insert(key.clone()),
                    None => keys.remove(key),
                };
            }
            Ok(keys.into_iter().collect())
        })
    }
}

impl std::fmt::Debug for StateHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateHandle").field("scope", &self.scope).finish_non_exhaustive()
    }
}

/// States in memory, gone with the process.
#[derive(Default)]
pub struct Memory(Mutex<BTreeMap<(StateScope, String), String>>);

impl StateStore for Memory {
    fn get<'a>(&'a self, scope: &'a StateScope, key: &'a str) -> Answer<'a, Option<String>> {
        let value = self.lock().get(&(scope.clone(), key.to_owned())).cloned();
        Box::pin(async move { Ok(value) })
    }

    fn set<'a>(&'a self, scope: &'a StateScope, key: &'a str, value: &'a str) -> Answer<'a, ()> {
        let mut states = self.lock();
        let others = states.iter().filter(|((s, k), _)| s == scope && k != key);
        let (count, bytes) =
            others.fold((0, 0), |(count, bytes), ((_, k), v)| (count + 1, bytes + k.len() + v.len()));
        let answer = if count + 1 > MAX_KEYS || bytes + key.len() + value.len() > MAX_TOTAL_BYTES {
            Err(StateError::QuotaExceeded)
        } else {
            states.insert((scope.clone(), key.to_owned()), value.to_owned());
            Ok(())
        };
        Box::pin(async move { answer })
    }

    fn delete<'a>(&'a self, scope: &'a StateScope, key: &'a str) -> Answer<'a, ()> {
        self.lock().remove(&(scope.clone(), key.to_owned()));
        Box::pin(async { Ok(()) })
    }

    fn keys<'a>(&'a self, scope: &'a StateScope, prefix: &'a str) -> Answer<'a, Vec<String>> {
        let keys = self
            .lock()
            .keys()
            .filter(|(s, key)| s == scope && key.starts_with(prefix))
            .map(|(_, key)| key.clone())
            .collect();
        Box::pin(async move { Ok(keys) })
    }
}

impl Memory {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(StateScope, String), String>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl From<StateError> for WitStateError {
    fn from(error: StateError) -> Self {
        match error {
            StateError::KeyTooLong => WitStateError::KeyTooLong,
            StateError::ValueTooLarge => WitStateError::ValueTooLarge,
            StateError::QuotaExceeded => WitStateError::QuotaExceeded,
            StateError::Unavailable(why) => WitStateError::Unavailable(why),
        }
    }
}

/// The invocation's handle, or why there is none.
fn handle(state: &PluginState) -> Result<StateHandle, StateError> {
    state.kv.clone().ok_or_else(|| {
        StateError::Unavailable("state is kept only for a webhook's deliveries (not in describe)".into())
    })
}

fn check_key(key: &str) -> Result<(), StateError> {
    if key.len() > MAX_KEY_BYTES { Err(StateError::KeyTooLong) } else { Ok(()) }
}

type WitAnswer<T> = wasmtime::Result<Result<T, WitStateError>>;

// Each call takes the handle out before awaiting: the future must not borrow the store's
// data (it is not `Sync`).
impl Host for PluginState {
    async fn get(&mut self, key: String) -> WitAnswer<Option<String>> {
        let handle = handle(self);
        let answer = async move {
            check_key(&key)?;
            let handle = handle?;
            handle.store.get(&handle.scope, &key).await
        };
        Ok(answer.await.map_err(Into::into))
    }

    async fn set(&mut self, key: String, value: String) -> WitAnswer<()> {
        let handle = handle(self);
        let answer = async move {
            check_key(&key)?;
            if value.len() > MAX_VALUE_BYTES {
                return Err(StateError::ValueTooLarge);
            }
            let handle = handle?;
            handle.store.set(&handle.scope, &key, &value).await
        };
        Ok(answer.await.map_err(Into::into))
    }

    async fn delete(&mut self, key: String) -> WitAnswer<()> {
        let handle = handle(self);
        let answer = async move {
            check_key(&key)?;
            let handle = handle?;
            handle.store.delete(&handle.scope, &key).await
        };
        Ok(answer.await.map_err(Into::into))
    }

    async fn list(&mut self, prefix: String) -> WitAnswer<Vec<String>> {
        let handle = handle(self);
        let answer = async move {
            check_key(&prefix)?;
            let handle = handle?;
            handle.store.keys(&handle.scope, &prefix).await
        };
        Ok(answer.await.map_err(Into::into))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_memory_store_keeps_scopes_apart_and_holds_to_its_quota() {
        let memory = Memory::default();
        let (a, b) = (
            StateScope { connector: "crm".into(), webhook_id: "w1".into() },
            StateScope { connector: "crm".into(), webhook_id: "w2".into() },
        );
        memory.set(&a, "record:1", "crm-9").await.unwrap();
        assert_eq!(memory.get(&a, "record:1").await.unwrap().as_deref(), Some("crm-9"));
        assert_eq!(memory.get(&b, "record:1").await.unwrap(), None, "another webhook's store");
        for i in 1..MAX_KEYS {
            memory.set(&a, &format!("k{i:04}"), "").await.unwrap();
        }
        assert_eq!(memory.set(&a, "one-more", "").await, Err(StateError::QuotaExceeded));
        memory.set(&a, "record:1", "replaced").await.expect("replacing a key adds none");
        assert_eq!(memory.keys(&a, "record:").await.unwrap(), vec!["record:1".to_owned()]);
        memory.delete(&a, "record:1").await.unwrap();
        assert_eq!(memory.get(&a, "record:1").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_read_only_view_reads_what_is_kept_and_keeps_its_writes_to_itself() {
        let memory = Arc::new(Memory::default());
        let scope = StateScope { connector: "crm".into(), webhook_id: "w1".into() };
        memory.set(&scope, "id:r1", "crm-1").await.unwrap();
        let kept = StateHandle::new(memory.clone(), scope.clone());
        let view = StateHandle::read_only(kept);
        assert_eq!(view.store.get(&view.scope, "id:r1").await.unwrap().as_deref(), Some("crm-1"));
        view.store.set(&view.scope, "id:r2", "crm-2").await.unwrap();
        view.store.delete(&view.scope, "id:r1").await.unwrap();
        assert_eq!(view.store.keys(&view.scope, "id:").await.unwrap(), ["id:r2"]);
        assert_eq!(memory.keys(&scope, "").await.unwrap(), ["id:r1"], "nothing written through");
    }
}
