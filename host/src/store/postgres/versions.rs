//! Connector versions on PostgreSQL (migration 6). A head's change is recorded in the change
//! feed like the live component's, so every host picks up a new shadow or live version.

use super::{PgStore, StoreError, decode, encode, int};
use crate::domain::connector_version::{ConnectorHead, ConnectorVersion, ShadowRun};

impl PgStore {
    pub async fn add_connector_version(
        &self,
        name: &str,
        record: &ConnectorVersion,
        component: &[u8],
    ) -> Result<(), StoreError> {
        let version = i32::try_from(record.version).unwrap_or(i32::MAX);
        self.execute(
            "INSERT INTO connector_versions (name, version, record, component) VALUES ($1, $2, $3, $4)",
            &[&name, &version, &encode(record), &component],
        )
        .await?;
        Ok(())
    }

    pub async fn connector_versions(&self, name: &str) -> Result<Vec<ConnectorVersion>, StoreError> {
        let rows = self
            .query("SELECT record FROM connector_versions WHERE name = $1 ORDER BY version", &[&name])
            .await?;
        rows.iter().map(|row| decode("connector_versions", name, row.get(0))).collect()
    }

    pub async fn connector_component(&self, name: &str, version: u32) -> Result<Option<Vec<u8>>, StoreError> {
        let version = i32::try_from(version).unwrap_or(i32::MAX);
        let row = self
            .query_opt(
                "SELECT component FROM connector_versions WHERE name = $1 AND version = $2",
                &[&name, &version],
            )
            .await?;
        Ok(row.map(|row| row.get(0)))
    }

    pub async fn delete_connector_versions(&self, name: &str, versions: &[u32]) -> Result<(), StoreError> {
        let versions: Vec<i32> = versions.iter().map(|v| i32::try_from(*v).unwrap_or(i32::MAX)).collect();
        self.execute(
            "DELETE FROM connector_versions WHERE name = $1 AND version = ANY($2)",
            &[&name, &versions],
        )
        .await?;
        Ok(())
    }

    pub async fn connector_head(&self, name: &str) -> Result<Option<ConnectorHead>, StoreError> {
        let row = self.query_opt("SELECT record FROM connector_heads WHERE name = $1", &[&name]).await?;
        row.map(|row| decode("connector_heads", name, row.get(0))).transpose()
    }

    pub async fn put_connector_head(&self, name: &str, head: &ConnectorHead) -> Result<(), StoreError> {
        self.write_recording(
            "INSERT INTO connector_heads (name, record) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET record = excluded.record",
            &[&name, &encode(head)],
            ("connector", name),
        )
        .await?;
        Ok(())
    }

    /// Forgets every version of a connector, its head and its shadow runs.
    pub async fn forget_connector(&self, name: &str) -> Result<(), StoreError> {
        for sql in [
            "DELETE FROM connector_versions WHERE name = $1",
            "DELETE FROM shadow_runs WHERE connector = $1",
            "DELETE FROM connector_heads WHERE name = $1",
        ] {
            self.execute(sql, &[&name]).await?;
        }
        Ok(())
    }

    pub async fn add_shadow_run(&self, run: &ShadowRun) -> Result<(), StoreError> {
        let at_ms = int(super::super::millis(run.at));
        self.execute(
            "INSERT INTO shadow_runs (connector, id, at_ms, record) VALUES ($1, $2, $3, $4)",
            &[&run.connector, &run.id, &at_ms, &encode(run)],
        )
        .await?;
        Ok(())
    }

    pub async fn shadow_runs(
        &self,
        connector: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ShadowRun>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .query(
                "SELECT record FROM shadow_runs WHERE connector = $1 AND ($2::text IS NULL OR id < $2)
                 ORDER BY id DESC LIMIT $3",
                &[&connector, &before, &limit],
            )
            .await?;
        rows.iter().map(|row| decode("shadow_runs", connector, row.get(0))).collect()
    }
}
