//! The installed connectors by name: the built-ins, then those operators uploaded.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::builtins::BUILTINS;
use crate::runtime::{Plugin, PluginError, Policy, Runtime};

/// Whether `name` can name a connector: 1 to 64 characters, a-z, 0-9, `-` and `_`.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Connector name → loaded plugin. Replacing an entry is atomic: invocations holding the
/// old `Arc<Plugin>` finish on it.
#[derive(Clone, Default)]
pub struct Connectors {
    by_name: Arc<RwLock<BTreeMap<String, Arc<Plugin>>>>,
}

impl Connectors {
    /// Compiles (or loads from the cache) and registers every built-in connector.
    pub async fn with_builtins(runtime: &Runtime) -> Result<Self, PluginError> {
        let connectors = Connectors::default();
        for (name, bytes) in BUILTINS {
            let plugin = runtime.load(Arc::from(*bytes), Policy::Pooled).await?;
            connectors.insert(name, plugin);
        }
        Ok(connectors)
    }

    /// Installs or replaces a connector; returns the one it replaced.
    pub fn insert(&self, name: &str, plugin: Arc<Plugin>) -> Option<Arc<Plugin>> {
        self.write().insert(name.to_owned(), plugin)
    }

    pub fn remove(&self, name: &str) -> Option<Arc<Plugin>> {
        self.write().remove(name)
    }

    pub fn get(&self, name: &str) -> Option<Arc<Plugin>> {
        self.read().get(name).cloned()
    }

    /// Name and plugin of every connector, by name.
    pub fn list(&self) -> Vec<(String, Arc<Plugin>)> {
        self.read().iter().map(|(name, plugin)| (name.clone(), plugin.clone())).collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Plugin>>> {
        // The map is only ever replaced entry by entry; a poisoned lock still holds a valid map.
        self.by_name.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Plugin>>> {
        self.by_name.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
