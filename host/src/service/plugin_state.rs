//! Connectors' state kept in storage: what the runtime's `state` import reaches in `serve`,
//! one store per (connector, webhook) within the quotas of contract 0.2.

use crate::runtime::{MAX_KEYS, MAX_TOTAL_BYTES, StateAnswer as Answer, StateError, StateScope, StateStore};
use crate::store::{StateQuota, Store, StoreError};

/// The host's storage as the plugins' state store.
pub struct StoredStates(Store);

impl StoredStates {
    pub fn new(store: Store) -> Self {
        StoredStates(store)
    }
}

const QUOTA: StateQuota = StateQuota { keys: MAX_KEYS, bytes: MAX_TOTAL_BYTES };

fn unavailable(error: StoreError) -> StateError {
    tracing::warn!("a connector's state could not be reached: {error}");
    StateError::Unavailable("storage did not answer; try again later".into())
}

impl StateStore for StoredStates {
    fn get<'a>(&'a self, scope: &'a StateScope, key: &'a str) -> Answer<'a, Option<String>> {
        Box::pin(async move {
            self.0.plugin_state(&scope.webhook_id, &scope.connector, key).await.map_err(unavailable)
        })
    }

    fn set<'a>(&'a self, scope: &'a StateScope, key: &'a str, value: &'a str) -> Answer<'a, ()> {
        Box::pin(async move {
            let written =
                self.0.set_plugin_state(&scope.webhook_id, &scope.connector, key, value, QUOTA).await;
            match written.map_err(unavailable)? {
                true => Ok(()),
                false => Err(StateError::QuotaExceeded),
            }
        })
    }

    fn delete<'a>(&'a self, scope: &'a StateScope, key: &'a str) -> Answer<'a, ()> {
        Box::pin(async move {
            self.0.delete_plugin_state(&scope.webhook_id, &scope.connector, key).await.map_err(unavailable)
        })
    }

    fn keys<'a>(&'a self, scope: &'a StateScope, prefix: &'a str) -> Answer<'a, Vec<String>> {
        Box::pin(async move {
            self.0.plugin_state_keys(&scope.webhook_id, &scope.connector, prefix).await.map_err(unavailable)
        })
    }
}
