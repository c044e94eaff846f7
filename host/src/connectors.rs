//! The installed connectors by name: the built-ins, then those operators uploaded — for each
//! name the live version, a shadowing candidate if any, and the pinned versions in use.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use crate::builtins::BUILTINS;
use crate::domain::connector_version::BUILTIN;
use crate::runtime::{Plugin, PluginError, Policy, Runtime};

/// Whether `name` can name a connector: 1 to 64 characters, a-z, 0-9, `-` and `_`.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Connector name → loaded plugins. Replacing an entry is atomic: invocations holding the
/// old `Arc<Plugin>` finish on it.
#[derive(Clone, Default)]
pub struct Connectors {
    inner: Arc<RwLock<Registry>>,
}

#[derive(Default)]
struct Registry {
    /// What webhooks following `latest` run, and its version.
    live: BTreeMap<String, (u32, Arc<Plugin>)>,
    /// Candidates run beside the live version.
    shadows: HashMap<String, (u32, Arc<Plugin>)>,
    /// Versions loaded for the webhooks that pin them (a version never changes).
    pinned: HashMap<(String, u32), Arc<Plugin>>,
    /// The uploads kept per name, for the API document.
    kept: HashMap<String, Vec<u32>>,
}

impl Connectors {
    /// Compiles (or loads from the cache) and registers every built-in connector.
    pub async fn with_builtins(runtime: &Runtime) -> Result<Self, PluginError> {
        let connectors = Connectors::default();
        for (name, bytes) in BUILTINS {
            let plugin = runtime.load(Arc::from(*bytes), Policy::Pooled).await?;
            connectors.insert(name, BUILTIN, plugin);
        }
        Ok(connectors)
    }

    /// Installs or replaces a connector's live version; returns the plugin it replaced.
    pub fn insert(&self, name: &str, version: u32, plugin: Arc<Plugin>) -> Option<Arc<Plugin>> {
        self.write().live.insert(name.to_owned(), (version, plugin)).map(|(_, old)| old)
    }

    pub fn remove(&self, name: &str) -> Option<Arc<Plugin>> {
        let mut registry = self.write();
        registry.shadows.remove(name);
        registry.pinned.retain(|(n, _), _| n != name);
        registry.kept.remove(name);
        registry.live.remove(name).map(|(_, old)| old)
    }

    /// The live version's plugin.
    pub fn get(&self, name: &str) -> Option<Arc<Plugin>> {
        self.read().live.get(name).map(|(_, plugin)| plugin.clone())
    }

    /// The live version's number ([`BUILTIN`] for a built-in).
    pub fn live_version(&self, name: &str) -> Option<u32> {
        self.read().live.get(name).map(|(version, _)| *version)
    }

    /// Name and live plugin of every connector, by name.
    pub fn list(&self) -> Vec<(String, Arc<Plugin>)> {
        self.read().live.iter().map(|(name, (_, plugin))| (name.clone(), plugin.clone())).collect()
    }

    /// The candidate shadowing `name`'s live version, if any.
    pub fn shadow(&self, name: &str) -> Option<(u32, Arc<Plugin>)> {
        self.read().shadows.get(name).cloned()
    }

    pub fn set_shadow(&self, name: &str, shadow: Option<(u32, Arc<Plugin>)>) {
        let mut registry = self.write();
        match shadow {
            Some(shadow) => registry.shadows.insert(name.to_owned(), shadow),
            None => registry.shadows.remove(name),
        };
    }

    /// A pinned version's plugin, if it was loaded already.
    pub fn pinned(&self, name: &str, version: u32) -> Option<Arc<Plugin>> {
        self.read().pinned.get(&(name.to_owned(), version)).cloned()
    }

    pub fn keep_pinned(&self, name: &str, version: u32, plugin: Arc<Plugin>) {
        self.write().pinned.insert((name.to_owned(), version), plugin);
    }

    /// The uploads of `name` kept now; the loaded plugins of the others are dropped.
    pub fn set_kept(&self, name: &str, kept: Vec<u32>) {
        let mut registry = self.write();
        registry.pinned.retain(|(n, v), _| n != name || kept.contains(v));
        registry.kept.insert(name.to_owned(), kept);
    }

    /// The versions a webhook may pin: the uploads kept, and [`BUILTIN`] for a built-in.
    pub fn versions(&self, name: &str) -> Vec<u32> {
        let builtin = BUILTINS.iter().any(|(builtin, _)| *builtin == name).then_some(BUILTIN);
        let kept = self.read().kept.get(name).cloned().unwrap_or_default();
        builtin.into_iter().chain(kept).collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        // The maps are only ever changed entry by entry; a poisoned lock still holds valid maps.
        self.inner.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Registry> {
        self.inner.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
