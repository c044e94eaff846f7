//! Acquiring lanes: a host takes those it should own that no live host holds, with the
//! entries their previous owner claimed.

use super::{Wanted, ms, preferred};
use crate::store::StoreError;
use crate::store::postgres::{Shared, pg_error, pool_error_text};

/// The webhooks with queue entries whose lane no live host holds: a skip scan, one index
/// probe per webhook with entries, however many entries each has.
const UNOWNED: &str = "
WITH RECURSIVE w(webhook_id) AS (
    (SELECT webhook_id FROM queue ORDER BY webhook_id LIMIT 1)
    UNION ALL
    SELECT (SELECT q.webhook_id FROM queue q WHERE q.webhook_id > w.webhook_id
            ORDER BY q.webhook_id LIMIT 1)
    FROM w WHERE w.webhook_id IS NOT NULL
)
SELECT w.webhook_id FROM w
WHERE w.webhook_id IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM lanes l WHERE l.webhook_id = w.webhook_id AND l.expires_at >= now()
        AND l.owner IN (SELECT id FROM hosts WHERE seen_at >= now() - $1::int8 * interval '1 millisecond'))";

/// Takes the lanes of these webhooks (those with queue entries) that are missing, expired or
/// held by a host no longer live, and returns the entries of the lanes taken that their
/// previous owner or a process no longer live claimed (not those live hosts keep as their
/// share); returns the webhooks taken. (Every part sees the lanes as they were before.)
const ACQUIRE: &str = "
WITH previous AS (
    SELECT webhook_id, owner FROM lanes WHERE webhook_id = ANY($2::text[])
), taken AS (
    INSERT INTO lanes (webhook_id, owner, expires_at)
    SELECT c.webhook_id, $1, now() + $3::int8 * interval '1 millisecond'
    FROM unnest($2::text[]) AS c(webhook_id)
    WHERE EXISTS (SELECT 1 FROM queue q WHERE q.webhook_id = c.webhook_id)
    ON CONFLICT (webhook_id) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
        WHERE lanes.expires_at < now() OR lanes.owner NOT IN (
            SELECT id FROM hosts WHERE seen_at >= now() - $4::int8 * interval '1 millisecond')
    RETURNING webhook_id
), returned AS (
    UPDATE queue q SET claimed_by = NULL
    FROM taken t LEFT JOIN previous p ON p.webhook_id = t.webhook_id
    WHERE q.webhook_id = t.webhook_id AND q.claimed_by <> $1
        AND (q.claimed_by = p.owner OR q.claimed_by NOT IN (
            SELECT id FROM hosts WHERE seen_at >= now() - $4::int8 * interval '1 millisecond'))
)
SELECT webhook_id FROM taken";

/// Before a claim: acquires the lanes of webhooks new entries were written for, if this host
/// should own them. Called with `Lanes::busy` held.
pub(in crate::store::postgres) async fn acquire_wanted(shared: &Shared) -> Result<(), StoreError> {
    let wanted = shared.lanes.wanted(shared.me);
    if matches!(wanted, Wanted::Nothing) {
        return Ok(());
    }
    // A lease waits for its commit to be durable: the queue's connections would not.
    let client = shared.pool.get().await.map_err(|e| StoreError::Unavailable(pool_error_text(&e)))?;
    match wanted {
        Wanted::Nothing => Ok(()),
        Wanted::These(webhooks) => acquire(&client, shared, webhooks).await.map(drop),
        Wanted::Every => acquire_unowned(&client, shared).await.map(drop),
    }
}

/// Acquires every lane no live host holds that this host should own; `true` if it took any.
pub(super) async fn acquire_unowned(
    client: &deadpool_postgres::Client,
    shared: &Shared,
) -> Result<bool, StoreError> {
    let statement = client.prepare_cached(UNOWNED).await.map_err(pg_error)?;
    let rows = client.query(&statement, &[&ms(shared.lanes.timing.host_ttl)]).await.map_err(pg_error)?;
    let mine: Vec<String> = {
        let state = shared.lanes.state();
        rows.iter()
            .map(|row| row.get::<_, String>(0))
            .filter(|webhook| preferred(&state.hosts, webhook) == Some(shared.me))
            .collect()
    };
    Ok(!acquire(client, shared, mine).await?.is_empty())
}

/// Takes these webhooks' lanes where they are free (see [`ACQUIRE`]); returns those taken.
async fn acquire(
    client: &deadpool_postgres::Client,
    shared: &Shared,
    webhooks: Vec<String>,
) -> Result<Vec<String>, StoreError> {
    if webhooks.is_empty() {
        return Ok(Vec::new());
    }
    let timing = shared.lanes.timing;
    let statement = client.prepare_cached(ACQUIRE).await.map_err(pg_error)?;
    let rows = client
        .query(&statement, &[&shared.me, &webhooks, &ms(timing.lease), &ms(timing.host_ttl)])
        .await
        .map_err(pg_error)?;
    let taken: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
    if !taken.is_empty() {
        tracing::debug!(lanes = taken.len(), "acquired webhook lanes");
        shared.lanes.state().owned.extend(taken.iter().cloned());
    }
    Ok(taken)
}
