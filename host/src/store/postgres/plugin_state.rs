//! Connectors' state on PostgreSQL: the `plugin_state` table (migration 5), deleted with its
//! webhook by the foreign key.

use super::{PgStore, StoreError, int};
use crate::store::StateQuota;

impl PgStore {
    pub async fn plugin_state(
        &self,
        webhook_id: &str,
        connector: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        let row = self
            .query_opt(
                "SELECT value FROM plugin_state WHERE webhook_id = $1 AND connector = $2 AND key = $3",
                &[&webhook_id, &connector, &key.as_bytes()],
            )
            .await?;
        Ok(row.map(|row| String::from_utf8_lossy(row.get::<_, &[u8]>(0)).into_owned()))
    }

    /// Writes unless the scope's store would go over `quota`, checked in the same statement.
    /// (Two writes racing on one scope may together pass the quota by one value: the check
    /// reads the committed rows.)
    pub async fn set_plugin_state(
        &self,
        webhook_id: &str,
        connector: &str,
        key: &str,
        value: &str,
        quota: StateQuota,
    ) -> Result<bool, StoreError> {
        let (max_keys, max_bytes) = (int(quota.keys as u64), int(quota.bytes as u64));
        let written = self
            .execute(
                "WITH others AS (
                     SELECT count(*) AS keys, coalesce(sum(octet_length(key) + octet_length(value)), 0) AS bytes
                     FROM plugin_state WHERE webhook_id = $1 AND connector = $2 AND key <> $3::bytea)
                 INSERT INTO plugin_state (webhook_id, connector, key, value)
                 SELECT $1, $2, $3::bytea, $4::bytea FROM others
                 WHERE keys + 1 <= $5::bigint AND bytes + octet_length($3::bytea) + octet_length($4::bytea) <= $6::bigint
                 ON CONFLICT (webhook_id, connector, key) DO UPDATE SET value = excluded.value",
                &[&webhook_id, &connector, &key.as_bytes(), &value.as_bytes(), &max_keys, &max_bytes],
            )
            .await?;
        Ok(written == 1)
    }

    pub async fn delete_plugin_state(
        &self,
        webhook_id: &str,
        connector: &str,
        key: &str,
    ) -> Result<(), StoreError> {
        self.execute(
            "DELETE FROM plugin_state WHERE webhook_id = $1 AND connector = $2 AND key = $3",
            &[&webhook_id, &connector, &key.as_bytes()],
        )
        .await?;
        Ok(())
    }

    pub async fn plugin_state_keys(
        &self,
        webhook_id: &str,
        connector: &str,
        prefix: &str,
    ) -> Result<Vec<String>, StoreError> {
        let rows = self
            .query(
                "SELECT key FROM plugin_state WHERE webhook_id = $1 AND connector = $2
                 AND substring(key FROM 1 FOR octet_length($3::bytea)) = $3::bytea ORDER BY key",
                &[&webhook_id, &connector, &prefix.as_bytes()],
            )
            .await?;
        Ok(rows.iter().map(|row| String::from_utf8_lossy(row.get::<_, &[u8]>(0)).into_owned()).collect())
    }
}
