//! Connector transitions: uploaded (each upload kept as a version), made live, rolled back,
//! shadowed, removed — stored (durable), then installed, so the next delivery uses the new
//! plugin; and the same installation when another host made the change.
//!
//! `connectors` in storage holds each name's live component (what every host loads at
//! start); the versions and which one is in which role (`ConnectorHead`) are kept beside it.
//! An upload from before versions existed becomes version 1 the first time its name is
//! touched.

use std::collections::BTreeSet;
use std::sync::Arc;

use time::OffsetDateTime;

use crate::builtins;
use crate::connectors::Connectors;
use crate::domain::connector_version::{BUILTIN, ConnectorHead, ConnectorVersion, removable};
use crate::runtime::{ContentHash, Plugin, PluginError, Policy, Runtime};
use crate::store::{Store, StoreError};

/// Why a connector change did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// The bytes are not a connector this host can load: nothing was stored.
    #[error(transparent)]
    Invalid(#[from] PluginError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no connector named {0:?}")]
    NotFound(String),
    #[error("connector {name:?} has no version {version}; GET /v1/connectors/{name}/versions lists them")]
    NoVersion { name: String, version: u32 },
    /// A change that makes no sense now (nothing to roll back to, no candidate…).
    #[error("{0}")]
    Conflict(String),
}

/// Connector transitions. Cheap to clone.
#[derive(Clone)]
pub struct ConnectorService {
    store: Store,
    runtime: Runtime,
    connectors: Connectors,
    /// Which versions webhooks pin: retention never removes those.
    webhooks: super::Webhooks,
}

impl ConnectorService {
    pub fn new(store: Store, runtime: Runtime, connectors: Connectors, webhooks: super::Webhooks) -> Self {
        ConnectorService { store, runtime, connectors, webhooks }
    }

    /// Checks the component by loading it and keeps it as `name`'s next version; `live` also
    /// makes it what `latest` webhooks run (replacing a built-in or an earlier upload).
    pub async fn upload(
        &self,
        name: &str,
        component: &[u8],
        live: bool,
    ) -> Result<(Arc<Plugin>, ConnectorVersion), ConnectorError> {
        let plugin = self.runtime.load(Arc::from(component), Policy::Pooled).await?;
        let (versions, mut head) = self.versions(name).await.or_else(|e| match e {
            ConnectorError::NotFound(_) => Ok((Vec::new(), ConnectorHead::default())),
            other => Err(other),
        })?;
        let record = ConnectorVersion {
            version: versions.last().map_or(1, |v| v.version + 1),
            hash: plugin.hash().to_string(),
            plugin_version: plugin.info().version.clone(),
            contract: plugin.info().contract.clone(),
            size: component.len() as u64,
            uploaded_at: OffsetDateTime::now_utc(),
        };
        self.store.add_connector_version(name, &record, component).await?;
        if live {
            self.store.put_connector(name, component).await?;
            promote(&mut head, name, record.version);
            self.install(name, record.version, Some(plugin.clone()));
        }
        self.store.put_connector_head(name, &head).await?;
        let mut kept: Vec<u32> = versions.iter().map(|v| v.version).collect();
        kept.push(record.version);
        self.prune(name, kept, &head).await?;
        Ok((plugin, record))
    }

    /// `name`'s kept versions, oldest first, and which is in which role.
    pub async fn versions(
        &self,
        name: &str,
    ) -> Result<(Vec<ConnectorVersion>, ConnectorHead), ConnectorError> {
        let versions = self.store.connector_versions(name).await?;
        if let Some(head) = self.store.connector_head(name).await? {
            return Ok((versions, head));
        }
        // Uploaded before versions were kept: that upload is version 1.
        if let Some((_, bytes)) = self.store.connectors().await?.into_iter().find(|(n, _)| n == name) {
            let plugin = self.runtime.load(Arc::from(bytes.as_slice()), Policy::Pooled).await?;
            let record = ConnectorVersion {
                version: 1,
                hash: ContentHash::of(&bytes).to_string(),
                plugin_version: plugin.info().version.clone(),
                contract: plugin.info().contract.clone(),
                size: bytes.len() as u64,
                uploaded_at: OffsetDateTime::now_utc(),
            };
            self.store.add_connector_version(name, &record, &bytes).await?;
            let head = ConnectorHead { live: 1, ..ConnectorHead::default() };
            self.store.put_connector_head(name, &head).await?;
            self.connectors.set_kept(name, vec![1]);
            return Ok((vec![record], head));
        }
        match builtins::component(name) {
            Some(_) => Ok((Vec::new(), ConnectorHead::default())),
            None => Err(ConnectorError::NotFound(name.to_owned())),
        }
    }

    /// Makes `version` of `name` live — by default the candidate shadowing it.
    pub async fn promote(&self, name: &str, version: Option<u32>) -> Result<ConnectorHead, ConnectorError> {
        let (_, mut head) = self.versions(name).await?;
        let version = match version.or(head.shadow) {
            Some(version) => version,
            None => {
                return Err(ConnectorError::Conflict(format!("{name} has no candidate: name the version")));
            }
        };
        self.make_live(name, version).await?;
        promote(&mut head, name, version);
        self.store.put_connector_head(name, &head).await?;
        self.set_shadow(name, head.shadow).await?;
        Ok(head)
    }

    /// Makes the version live before the current one live again.
    pub async fn roll_back(&self, name: &str) -> Result<ConnectorHead, ConnectorError> {
        let (_, mut head) = self.versions(name).await?;
        let Some(version) = head.roll_back() else {
            return Err(ConnectorError::Conflict(format!("{name} has no earlier live version")));
        };
        self.make_live(name, version).await?;
        self.store.put_connector_head(name, &head).await?;
        Ok(head)
    }

    /// Runs `version` beside the live version on real deliveries (never sent); `None` stops.
    pub async fn shadow(&self, name: &str, version: Option<u32>) -> Result<ConnectorHead, ConnectorError> {
        let (_, mut head) = self.versions(name).await?;
        if version == Some(head.live) {
            return Err(ConnectorError::Conflict(format!("version {} of {name} is the live one", head.live)));
        }
        if let Some(version) = version {
            self.plugin(name, version).await?;
        }
        head.shadow = version;
        self.store.put_connector_head(name, &head).await?;
        self.set_shadow(name, version).await?;
        Ok(head)
    }

    /// The plugin of `version` of `name` (the built-in for [`BUILTIN`]), loaded once.
    pub async fn plugin(&self, name: &str, version: u32) -> Result<Arc<Plugin>, ConnectorError> {
        if self.connectors.live_version(name) == Some(version) {
            return self.connectors.get(name).ok_or_else(|| ConnectorError::NotFound(name.to_owned()));
        }
        if let Some(plugin) = self.connectors.pinned(name, version) {
            return Ok(plugin);
        }
        let no_version = || ConnectorError::NoVersion { name: name.to_owned(), version };
        let bytes: Arc<[u8]> = match version {
            BUILTIN => builtins::component(name).map(Arc::from).ok_or_else(no_version)?,
            _ => {
                self.store.connector_component(name, version).await?.map(Arc::from).ok_or_else(no_version)?
            }
        };
        let plugin = self.runtime.load(bytes, Policy::Pooled).await?;
        self.connectors.keep_pinned(name, version, plugin.clone());
        Ok(plugin)
    }

    /// Removes an uploaded connector — every version — from storage, then from use; the
    /// built-in it replaced, if any, is back.
    pub async fn remove(&self, name: &str) -> Result<(), ConnectorError> {
        self.store.delete_connector(name).await?;
        self.store.forget_connector(name).await?;
        let builtin = match builtins::component(name) {
            Some(bytes) => Some(self.runtime.load(Arc::from(bytes), Policy::Pooled).await?),
            None => None,
        };
        if let Some(old) = self.connectors.remove(name) {
            self.runtime.retire(&old);
        }
        if let Some(builtin) = builtin {
            self.install(name, BUILTIN, Some(builtin));
        }
        Ok(())
    }

    /// Installs what storage now holds for `name` (another host changed it), and what this
    /// host holds at start.
    pub async fn refresh(&self, name: &str) -> Result<(), ConnectorError> {
        let stored = self.store.connectors().await?.into_iter().find(|(n, _)| n == name);
        let head = self.store.connector_head(name).await?;
        let (version, bytes): (u32, Option<Arc<[u8]>>) = match stored {
            Some((_, bytes)) => (head.as_ref().map_or(1, |h| h.live), Some(bytes.into())),
            None => (BUILTIN, builtins::component(name).map(Arc::from)),
        };
        let plugin = match bytes {
            Some(bytes) => Some(self.runtime.load(bytes, Policy::Pooled).await?),
            None => None,
        };
        // Unchanged (this host made the change, or it came round twice): keep what runs.
        let current = self.connectors.get(name);
        if current.as_ref().map(|p| p.hash()) != plugin.as_ref().map(|p| p.hash())
            || self.connectors.live_version(name) != Some(version)
        {
            self.install(name, version, plugin);
        }
        let kept = self.store.connector_versions(name).await?.iter().map(|v| v.version).collect();
        self.connectors.set_kept(name, kept);
        let shadow = head.and_then(|head| head.shadow);
        if self.connectors.shadow(name).map(|(v, _)| v) != shadow {
            self.set_shadow(name, shadow).await?;
        }
        Ok(())
    }

    /// Whether `name` has `version` for a webhook to pin (0: its built-in).
    pub async fn has_version(&self, name: &str, version: u32) -> Result<bool, ConnectorError> {
        if version == BUILTIN {
            return Ok(builtins::component(name).is_some());
        }
        Ok(self.store.connector_component(name, version).await?.is_some())
    }

    /// At start: the versions kept and the candidates shadowing live connectors (what
    /// `connectors` holds is loaded already).
    pub async fn load_versions(&self) -> Result<(), ConnectorError> {
        let uploaded = self.store.connectors().await?.into_iter().map(|(name, _)| name);
        let names: BTreeSet<String> =
            uploaded.chain(builtins::BUILTINS.iter().map(|(n, _)| (*n).to_owned())).collect();
        for name in names {
            let kept = self.store.connector_versions(&name).await?.iter().map(|v| v.version).collect();
            self.connectors.set_kept(&name, kept);
            if let Some(shadow) = self.store.connector_head(&name).await?.and_then(|head| head.shadow) {
                self.set_shadow(&name, Some(shadow)).await?;
            }
        }
        Ok(())
    }

    /// Stores `version`'s component as `name`'s live one and installs it.
    async fn make_live(&self, name: &str, version: u32) -> Result<(), ConnectorError> {
        let plugin = self.plugin(name, version).await?;
        match version {
            BUILTIN => {
                self.store.delete_connector(name).await?;
            }
            _ => {
                let bytes = self.store.connector_component(name, version).await?;
                let bytes = bytes.ok_or(ConnectorError::NoVersion { name: name.to_owned(), version })?;
                self.store.put_connector(name, &bytes).await?;
            }
        }
        self.install(name, version, Some(plugin));
        Ok(())
    }

    async fn set_shadow(&self, name: &str, version: Option<u32>) -> Result<(), ConnectorError> {
        let shadow = match version {
            Some(version) => Some((version, self.plugin(name, version).await?)),
            None => None,
        };
        self.connectors.set_shadow(name, shadow);
        Ok(())
    }

    /// Drops the versions retention lets go (never one in use by the head or a webhook).
    async fn prune(&self, name: &str, kept: Vec<u32>, head: &ConnectorHead) -> Result<(), ConnectorError> {
        let pinned: BTreeSet<u32> = self.webhooks.pinned_versions(name);
        let gone = removable(&kept, head, &pinned);
        if !gone.is_empty() {
            self.store.delete_connector_versions(name, &gone).await?;
        }
        self.connectors.set_kept(name, kept.into_iter().filter(|v| !gone.contains(v)).collect());
        Ok(())
    }

    /// Atomic: invocations already holding the old plugin finish on it; the next use the new.
    fn install(&self, name: &str, version: u32, plugin: Option<Arc<Plugin>>) {
        let old = match plugin {
            Some(plugin) => self.connectors.insert(name, version, plugin),
            None => self.connectors.remove(name),
        };
        if let Some(old) = old {
            self.runtime.retire(&old);
        }
    }
}

/// Makes `version` live in `head`; a roll back never goes to a built-in that does not exist.
fn promote(head: &mut ConnectorHead, name: &str, version: u32) {
    head.promote(version);
    if builtins::component(name).is_none() {
        head.previous.retain(|v| *v != BUILTIN);
    }
}
