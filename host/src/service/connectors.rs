//! Connector transitions: uploaded, removed — stored (durable), then installed, so the next
//! delivery uses the new plugin; and the same installation when another host made the change.

use std::sync::Arc;

use crate::builtins;
use crate::connectors::Connectors;
use crate::runtime::{Plugin, PluginError, Policy, Runtime};
use crate::store::{Store, StoreError};

/// Why an upload or removal did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// The bytes are not a connector this host can load: nothing was stored.
    #[error(transparent)]
    Invalid(#[from] PluginError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Connector transitions. Cheap to clone.
#[derive(Clone)]
pub struct ConnectorService {
    store: Store,
    runtime: Runtime,
    connectors: Connectors,
}

impl ConnectorService {
    pub fn new(store: Store, runtime: Runtime, connectors: Connectors) -> Self {
        ConnectorService { store, runtime, connectors }
    }

    /// Checks the component by loading it, stores it, then installs it under `name`
    /// (replacing a built-in or an earlier upload).
    pub async fn upload(&self, name: &str, component: &[u8]) -> Result<Arc<Plugin>, ConnectorError> {
        let plugin = self.runtime.load(Arc::from(component), Policy::Pooled).await?;
        self.store.put_connector(name, component).await?;
        self.install(name, Some(plugin.clone()));
        Ok(plugin)
    }

    /// Removes an uploaded connector from storage, then from use; the built-in it replaced,
    /// if any, is back.
    pub async fn remove(&self, name: &str) -> Result<(), ConnectorError> {
        self.store.delete_connector(name).await?;
        let builtin = match builtins::component(name) {
            Some(bytes) => Some(self.runtime.load(Arc::from(bytes), Policy::Pooled).await?),
            None => None,
        };
        self.install(name, builtin);
        Ok(())
    }

    /// Installs what storage now holds for `name` (another host uploaded or removed it).
    pub async fn refresh(&self, name: &str) -> Result<(), ConnectorError> {
        let stored = self.store.connectors().await?.into_iter().find(|(n, _)| n == name);
        let bytes: Option<Arc<[u8]>> = match stored {
            Some((_, bytes)) => Some(bytes.into()),
            None => builtins::component(name).map(Arc::from),
        };
        let plugin = match bytes {
            Some(bytes) => Some(self.runtime.load(bytes, Policy::Pooled).await?),
            None => None,
        };
        // Unchanged (this host made the change, or it came round twice): keep what runs.
        let current = self.connectors.get(name);
        if current.as_ref().map(|p| p.hash()) != plugin.as_ref().map(|p| p.hash()) {
            self.install(name, plugin);
        }
        Ok(())
    }

    /// Atomic: invocations already holding the old plugin finish on it; the next use the new.
    fn install(&self, name: &str, plugin: Option<Arc<Plugin>>) {
        let old = match plugin {
            Some(plugin) => self.connectors.insert(name, plugin),
            None => self.connectors.remove(name),
        };
        if let Some(old) = old {
            self.runtime.retire(&old);
        }
    }
}
