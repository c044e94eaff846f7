//! Writing pages of records copied from another backend (see `store/transfer.rs`): each page
//! is ONE statement — `INSERT … SELECT FROM unnest(arrays) ON CONFLICT DO NOTHING` — so it
//! commits whole or not at all, costs one round trip, and skips every row the database holds
//! already: a copy run again writes nothing twice.
//!
//! Rows are written as the rest of this backend writes them (the same columns and record
//! encoding), with two differences: queue entries arrive unclaimed, and no change is recorded
//! for other hosts — hosts are started on the database once the copy is done.

use time::OffsetDateTime;
use tokio_postgres::Client;
use tokio_postgres::types::ToSql;

use super::{Database, encode, error_text, int, pg_error, schema, status_name};
use crate::store::StoreError;
use crate::store::transfer::Records;

const USERS: &str = "
INSERT INTO users (id, record)
SELECT * FROM unnest($1::text[], $2::bytea[])
ON CONFLICT DO NOTHING";

const TOKENS: &str = "
INSERT INTO tokens (id, hash, record)
SELECT * FROM unnest($1::text[], $2::bytea[], $3::bytea[])
ON CONFLICT DO NOTHING";

const CONNECTORS: &str = "
INSERT INTO connectors (name, component)
SELECT * FROM unnest($1::text[], $2::bytea[])
ON CONFLICT DO NOTHING";

const WEBHOOKS: &str = "
INSERT INTO webhooks (id, created_by_id, revision, record)
SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::bytea[])
ON CONFLICT DO NOTHING";

const EVENTS: &str = "
INSERT INTO events (company_id, id, accepted_ms, record, response)
SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::bytea[], $5::bytea[])
ON CONFLICT DO NOTHING";

const DELIVERIES: &str = "
INSERT INTO deliveries (id, webhook_id, status, created_at, record)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::bytea[])
ON CONFLICT DO NOTHING";

const ATTEMPTS: &str = "
INSERT INTO attempts (delivery_id, at, message_id, record)
SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::bytea[])
ON CONFLICT DO NOTHING";

/// Unclaimed (`claimed_by` NULL): whichever host claims first works them. A delivery queued
/// twice in the source (a crash between rescheduling and removing) keeps its earliest entry.
const QUEUE: &str = "
INSERT INTO queue (delivery_id, webhook_id, due_ms)
SELECT * FROM unnest($1::text[], $2::text[], $3::int8[])
ON CONFLICT DO NOTHING";

/// A database being copied into: one connection of its own.
pub(crate) struct Import {
    client: Client,
}

impl Import {
    /// Connects to the database at `url`, whose schema must be current (the caller applies
    /// migrations first, and reports which).
    pub(crate) async fn open(url: &str) -> Result<Import, StoreError> {
        let database = Database::parse(url)?;
        let location = database.describe();
        let (client, connection) = database
            .connect()
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot reach {location}: {}", error_text(&e))))?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "import connection ended");
            }
        });
        schema::check(&client, &location).await?;
        Ok(Import { client })
    }

    /// Writes a page in one statement; returns how many rows were new.
    pub(crate) async fn write(&self, records: &Records) -> Result<u64, StoreError> {
        match records {
            Records::Users(users) => {
                let ids: Vec<&str> = users.iter().map(|u| u.id.as_str()).collect();
                let records: Vec<Vec<u8>> = users.iter().map(encode).collect();
                self.insert(USERS, &[&ids, &records]).await
            }
            Records::Tokens(tokens) => {
                let ids: Vec<&str> = tokens.iter().map(|(_, t)| t.id.as_str()).collect();
                let hashes: Vec<&[u8]> = tokens.iter().map(|(hash, _)| hash.as_slice()).collect();
                let records: Vec<Vec<u8>> = tokens.iter().map(|(_, t)| encode(t)).collect();
                self.insert(TOKENS, &[&ids, &hashes, &records]).await
            }
            Records::Connectors(connectors) => {
                let names: Vec<&str> = connectors.iter().map(|(name, _)| name.as_str()).collect();
                let components: Vec<&[u8]> = connectors.iter().map(|(_, bytes)| bytes.as_slice()).collect();
                self.insert(CONNECTORS, &[&names, &components]).await
            }
            Records::Webhooks(webhooks) => {
                let ids: Vec<&str> = webhooks.iter().map(|w| w.id.as_str()).collect();
                let owners: Vec<&str> = webhooks.iter().map(|w| w.created_by_id.as_str()).collect();
                // The revision goes on from where it was: compare-and-swap is against it.
                let revisions: Vec<i64> = webhooks.iter().map(|w| int(w.revision)).collect();
                let records: Vec<Vec<u8>> = webhooks.iter().map(encode).collect();
                self.insert(WEBHOOKS, &[&ids, &owners, &revisions, &records]).await
            }
            Records::Events(events) => {
                let companies: Vec<&str> = events.iter().map(|e| e.event.company_id.as_str()).collect();
                let ids: Vec<&str> = events.iter().map(|e| e.event.id.as_str()).collect();
                let accepted: Vec<i64> = events.iter().map(|e| int(e.accepted_ms)).collect();
                let records: Vec<Vec<u8>> = events.iter().map(|e| encode(&e.event)).collect();
                let responses: Vec<Vec<u8>> = events.iter().map(|e| encode(&e.response)).collect();
                self.insert(EVENTS, &[&companies, &ids, &accepted, &records, &responses]).await
            }
            Records::Deliveries(deliveries) => {
                let ids: Vec<&str> = deliveries.iter().map(|d| d.id.as_str()).collect();
                let webhooks: Vec<&str> = deliveries.iter().map(|d| d.webhook_id.as_str()).collect();
                let statuses: Vec<String> = deliveries.iter().map(|d| status_name(d.status)).collect();
                let created: Vec<OffsetDateTime> = deliveries.iter().map(|d| d.created_at).collect();
                let records: Vec<Vec<u8>> = deliveries.iter().map(encode).collect();
                self.insert(DELIVERIES, &[&ids, &webhooks, &statuses, &created, &records]).await
            }
            Records::Attempts(attempts) => {
                let deliveries: Vec<&str> = attempts.iter().map(|a| a.delivery_id.as_str()).collect();
                let at: Vec<OffsetDateTime> = attempts.iter().map(|a| a.attempt.at).collect();
                let messages: Vec<&str> = attempts.iter().map(|a| a.attempt.message_id.as_str()).collect();
                let records: Vec<Vec<u8>> = attempts.iter().map(|a| encode(&a.attempt)).collect();
                self.insert(ATTEMPTS, &[&deliveries, &at, &messages, &records]).await
            }
            Records::Queue(entries) => {
                let deliveries: Vec<&str> = entries.iter().map(|e| e.delivery_id.as_str()).collect();
                let webhooks: Vec<&str> = entries.iter().map(|e| e.webhook_id.as_str()).collect();
                let due: Vec<i64> = entries.iter().map(|e| int(e.due_ms)).collect();
                self.insert(QUEUE, &[&deliveries, &webhooks, &due]).await
            }
        }
    }

    async fn insert(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        self.client.execute(sql, params).await.map_err(pg_error)
    }
}
