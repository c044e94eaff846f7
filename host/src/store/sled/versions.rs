//! Connector versions on sled: `connector_versions` (`<name>\0<version, 10 digits>` → the
//! record), `connector_components` (the same key → the component), `connector_heads` (name →
//! which version is in which role) and `shadow_runs` (`<connector>\0<id>`).

use super::{SledStore, StoreError, decode, encode};
use crate::domain::connector_version::{ConnectorHead, ConnectorVersion, ShadowRun};

fn key(name: &str, version: u32) -> String {
    format!("{name}\0{version:010}")
}

impl SledStore {
    pub async fn add_connector_version(
        &self,
        name: &str,
        record: &ConnectorVersion,
        component: &[u8],
    ) -> Result<(), StoreError> {
        let key = key(name, record.version);
        self.inner.connector_components.insert(&key, component)?;
        self.inner.connector_versions.insert(&key, encode(record))?;
        self.durable().await
    }

    pub async fn connector_versions(&self, name: &str) -> Result<Vec<ConnectorVersion>, StoreError> {
        let prefix = format!("{name}\0");
        self.scan(move |inner| {
            inner.connector_versions.scan_prefix(prefix).values().map(|v| decode(&v?)).collect()
        })
        .await
    }

    pub async fn connector_component(&self, name: &str, version: u32) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.inner.connector_components.get(key(name, version))?.map(|bytes| bytes.to_vec()))
    }

    pub async fn delete_connector_versions(&self, name: &str, versions: &[u32]) -> Result<(), StoreError> {
        for version in versions {
            let key = key(name, *version);
            self.inner.connector_versions.remove(&key)?;
            self.inner.connector_components.remove(&key)?;
        }
        self.durable().await
    }

    pub async fn connector_head(&self, name: &str) -> Result<Option<ConnectorHead>, StoreError> {
        self.inner.connector_heads.get(name)?.map(|v| decode(&v)).transpose()
    }

    pub async fn put_connector_head(&self, name: &str, head: &ConnectorHead) -> Result<(), StoreError> {
        self.inner.connector_heads.insert(name, encode(head))?;
        self.durable().await
    }

    /// Forgets every version of a connector, its head and its shadow runs.
    pub async fn forget_connector(&self, name: &str) -> Result<(), StoreError> {
        let prefix = format!("{name}\0");
        for tree in
            [&self.inner.connector_versions, &self.inner.connector_components, &self.inner.shadow_runs]
        {
            for key in tree.scan_prefix(&prefix).keys() {
                tree.remove(key?)?;
            }
        }
        self.inner.connector_heads.remove(name)?;
        self.durable().await
    }

    pub async fn add_shadow_run(&self, run: &ShadowRun) -> Result<(), StoreError> {
        self.inner.shadow_runs.insert(format!("{}\0{}", run.connector, run.id), encode(run))?;
        Ok(())
    }

    pub async fn shadow_runs(
        &self,
        connector: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ShadowRun>, StoreError> {
        let prefix = format!("{connector}\0");
        let end = format!("{prefix}{}", before.unwrap_or("\u{10ffff}"));
        let (start, end) = (prefix.into_bytes(), end.into_bytes());
        self.scan(move |inner| {
            inner.shadow_runs.range(start..end).rev().take(limit).map(|item| decode(&item?.1)).collect()
        })
        .await
    }
}
