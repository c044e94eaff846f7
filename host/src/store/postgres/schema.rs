//! Schema migrations: versioned SQL files compiled into the binary, applied in order, each in
//! a transaction of its own, under an advisory lock so that hosts starting together apply
//! each migration once. `schema_migrations` records what was applied.

use tokio_postgres::Client;

use super::{Database, error_text, pg_error};
use crate::store::StoreError;

/// A migration: its version and its SQL.
struct Migration {
    version: u64,
    sql: &'static str,
}

/// Every migration this version knows, oldest first. Add one with the next number; never
/// change one that has shipped.
const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, sql: include_str!("migrations/0001_initial.sql") },
    Migration { version: 2, sql: include_str!("migrations/0002_lanes.sql") },
    Migration { version: 3, sql: include_str!("migrations/0003_queue_by_due.sql") },
    Migration { version: 4, sql: include_str!("migrations/0004_dead_letters.sql") },
    Migration { version: 5, sql: include_str!("migrations/0005_plugin_state.sql") },
    Migration { version: 6, sql: include_str!("migrations/0006_connector_versions.sql") },
    Migration { version: 7, sql: include_str!("migrations/0007_record_columns.sql") },
    Migration { version: 8, sql: include_str!("migrations/0008_host_demand.sql") },
];

/// The schema version this binary writes: its last migration's.
pub(super) const KNOWN: u64 = MIGRATIONS[MIGRATIONS.len() - 1].version;

/// The advisory lock migrations hold: "wasmhook" in ASCII, a key no other user of the
/// database is likely to take.
const LOCK_KEY: i64 = 0x7761_736d_686f_6f6b;

/// Applies pending migrations to `database`; returns the versions applied (none when it was
/// up to date). Refuses a schema newer than this binary.
pub(super) async fn apply(database: &Database) -> Result<Vec<u64>, StoreError> {
    let location = database.describe();
    // A connection of its own: the advisory lock is the session's, and ends with it even if
    // this process dies halfway.
    let (mut client, connection) = database
        .connect()
        .await
        .map_err(|e| StoreError::Unavailable(format!("cannot reach {location}: {}", error_text(&e))))?;
    let driver = tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "migration connection ended");
        }
    });
    let applied = apply_locked(&mut client, &location).await;
    // Ending the session releases the lock whatever happened above.
    drop(client);
    let _ = driver.await;
    applied
}

async fn apply_locked(client: &mut Client, location: &str) -> Result<Vec<u64>, StoreError> {
    client.execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY]).await.map_err(pg_error)?;
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version integer PRIMARY KEY,
                applied_at timestamptz NOT NULL DEFAULT now()
            )",
        )
        .await
        .map_err(pg_error)?;
    let found = version(client).await?.unwrap_or(0);
    if found > KNOWN {
        return Err(StoreError::NewerSchema { location: location.to_owned(), found, known: KNOWN });
    }
    let mut applied = Vec::new();
    for migration in MIGRATIONS.iter().filter(|m| m.version > found) {
        let transaction = client.transaction().await.map_err(pg_error)?;
        transaction.batch_execute(migration.sql).await.map_err(|e| StoreError::Damaged {
            location: location.to_owned(),
            reason: format!("migration {} failed: {}", migration.version, error_text(&e)),
        })?;
        let version = i32::try_from(migration.version).expect("migration versions are small");
        transaction
            .execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[&version])
            .await
            .map_err(pg_error)?;
        transaction.commit().await.map_err(pg_error)?;
        tracing::info!(version = migration.version, database = location, "applied a schema migration");
        applied.push(migration.version);
    }
    client.execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY]).await.map_err(pg_error)?;
    Ok(applied)
}

/// Checks that the schema is the one this binary writes: newer or behind is refused, behind
/// with the command that brings it up to date.
pub(super) async fn check(client: &Client, location: &str) -> Result<(), StoreError> {
    let found = version(client).await?.unwrap_or(0);
    if found > KNOWN {
        return Err(StoreError::NewerSchema { location: location.to_owned(), found, known: KNOWN });
    }
    if found < KNOWN {
        let what = match found {
            0 => "has no wasmhook schema yet".to_owned(),
            found => format!("has schema {found}, this wasmhook needs {KNOWN}"),
        };
        return Err(StoreError::Behind(format!(
            "the database {location} {what}: run `wasmhook migrate --database URL` first, or start \
             with `wasmhook serve --migrate`"
        )));
    }
    Ok(())
}

/// The newest migration applied, `None` before the first.
async fn version(client: &Client) -> Result<Option<u64>, StoreError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .await
        .map_err(pg_error)?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let row = client.query_one("SELECT max(version) FROM schema_migrations", &[]).await.map_err(pg_error)?;
    let version: Option<i32> = row.get(0);
    Ok(version.map(|v| u64::try_from(v).unwrap_or(0)))
}
