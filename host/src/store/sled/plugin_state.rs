//! Connectors' state on sled: the `plugin_state` tree, keyed `<webhook>\0<connector>\0<key>`,
//! so a webhook's states go with one prefix scan when it is deleted.
//!
//! Writes are not flushed one by one: a plugin may write many in one invocation, and each
//! flush would cost it a disk sync. They are durable with the next durable write — at the
//! latest the outcome of the delivery that made them.

use super::{SledStore, StoreError};
use crate::store::StateQuota;

fn prefix(webhook_id: &str, connector: &str) -> Vec<u8> {
    format!("{webhook_id}\0{connector}\0").into_bytes()
}

fn full_key(webhook_id: &str, connector: &str, key: &str) -> Vec<u8> {
    let mut full = prefix(webhook_id, connector);
    full.extend_from_slice(key.as_bytes());
    full
}

impl SledStore {
    pub async fn plugin_state(
        &self,
        webhook_id: &str,
        connector: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        let value = self.inner.plugin_state.get(full_key(webhook_id, connector, key))?;
        Ok(value.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    pub async fn set_plugin_state(
        &self,
        webhook_id: &str,
        connector: &str,
        key: &str,
        value: &str,
        quota: StateQuota,
    ) -> Result<bool, StoreError> {
        let (scope, full) = (prefix(webhook_id, connector), full_key(webhook_id, connector, key));
        let value = value.as_bytes().to_vec();
        let key_len = key.len();
        self.scan(move |inner| {
            // One writer at a time, so the quota holds for the scope as a whole.
            let _writing = inner.plugin_state_writes.lock().unwrap_or_else(|p| p.into_inner());
            let (mut keys, mut bytes) = (0, 0);
            for item in inner.plugin_state.scan_prefix(&scope) {
                let (k, v) = item?;
                if *k != *full {
                    keys += 1;
                    bytes += k.len() - scope.len() + v.len();
                }
            }
            if keys + 1 > quota.keys || bytes + key_len + value.len() > quota.bytes {
                return Ok(false);
            }
            inner.plugin_state.insert(full, value)?;
            Ok(true)
        })
        .await
    }

    pub async fn delete_plugin_state(
        &self,
        webhook_id: &str,
        connector: &str,
        key: &str,
    ) -> Result<(), StoreError> {
        self.inner.plugin_state.remove(full_key(webhook_id, connector, key))?;
        Ok(())
    }

    pub async fn plugin_state_keys(
        &self,
        webhook_id: &str,
        connector: &str,
        key_prefix: &str,
    ) -> Result<Vec<String>, StoreError> {
        let scope_len = prefix(webhook_id, connector).len();
        let start = full_key(webhook_id, connector, key_prefix);
        self.scan(move |inner| {
            inner
                .plugin_state
                .scan_prefix(&start)
                .keys()
                .map(|k| Ok(String::from_utf8_lossy(&k?[scope_len..]).into_owned()))
                .collect()
        })
        .await
    }

    /// Forgets every connector's state of a webhook (it was deleted).
    pub(super) fn drop_plugin_states(&self, webhook_id: &str) -> Result<(), StoreError> {
        let scope = format!("{webhook_id}\0").into_bytes();
        for key in self.inner.plugin_state.scan_prefix(&scope).keys() {
            self.inner.plugin_state.remove(key?)?;
        }
        Ok(())
    }
}
