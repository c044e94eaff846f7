//! The heartbeat: each beat tells the other hosts this one is live (with its demand), reads
//! theirs, renews or forgets this host's lanes, releases those reported that hold nothing,
//! and takes over the lanes that hosts left.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use uuid::Uuid;

use super::acquire::acquire_unowned;
use super::{ms, preferred};
use crate::store::StoreError;
use crate::store::postgres::{Shared, pg_error, pool_error_text};

/// Upserts this host with its demand (`$3`; `NULL`: unchanged), deletes the hosts unseen for
/// the time to live, and reads the others that are live, with their demand (none: one row of
/// `NULL`s), each row saying whether this host's row was inserted rather than updated. (The
/// `SELECT` sees the table as it was before the statement.)
const BEAT_HOSTS: &str = "
WITH seen AS (
    INSERT INTO hosts (id, seen_at, demand) VALUES ($1, now(), coalesce($3::text[], '{}'))
    ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at, demand = coalesce($3::text[], hosts.demand)
    RETURNING xmax = 0 AS inserted
), gone AS (
    DELETE FROM hosts WHERE id <> $1 AND seen_at < now() - $2::int8 * interval '1 millisecond'
)
SELECT h.id, h.demand, seen.inserted FROM seen LEFT JOIN hosts h
    ON h.id <> $1 AND h.seen_at >= now() - $2::int8 * interval '1 millisecond'";

/// Forgets this host's lanes among `$3` of webhooks without queue entries (`true`) and
/// renews the rest (`false`).
const BEAT_LANES: &str = "
WITH forgotten AS (
    DELETE FROM lanes l WHERE owner = $1 AND webhook_id = ANY($3::text[])
        AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.webhook_id = l.webhook_id)
    RETURNING webhook_id
), renewed AS (
    UPDATE lanes SET expires_at = now() + $2::int8 * interval '1 millisecond'
    WHERE owner = $1 AND webhook_id NOT IN (SELECT webhook_id FROM forgotten)
    RETURNING webhook_id
)
SELECT webhook_id, true FROM forgotten UNION ALL SELECT webhook_id, false FROM renewed";

/// Of the lanes reported for release, those this process holds no claim of (so its engine
/// holds nothing of them): deleted if still its own, and returned.
const RELEASE_IDLE: &str = "
WITH idle AS (
    SELECT r.webhook_id FROM unnest($2::text[]) AS r(webhook_id)
    WHERE NOT EXISTS (SELECT 1 FROM queue q WHERE q.webhook_id = r.webhook_id AND q.claimed_by = $1)
), released AS (
    DELETE FROM lanes WHERE owner = $1 AND webhook_id IN (SELECT webhook_id FROM idle)
)
SELECT webhook_id FROM idle";

/// Returns the entries of this host's lanes claimed by processes no longer live.
const RETURN_ORPHANS: &str = "
UPDATE queue SET claimed_by = NULL
WHERE webhook_id IN (SELECT webhook_id FROM lanes WHERE owner = $1)
    AND claimed_by <> $1
    AND claimed_by NOT IN (SELECT id FROM hosts WHERE seen_at >= now() - $2::int8 * interval '1 millisecond')";

/// Beats every [`Timing::heartbeat`](super::Timing::heartbeat) for as long as the store is
/// open (the first beat is [`PgStore::open`](crate::store::postgres::PgStore::open)'s).
pub(in crate::store::postgres) async fn heartbeat(shared: Arc<Shared>) {
    let mut failing = false;
    loop {
        tokio::time::sleep(shared.lanes.timing.heartbeat).await;
        match beat(&shared).await {
            Ok(()) if failing => {
                tracing::info!("this host's heartbeat reaches the database again");
                failing = false;
            }
            Ok(()) => {}
            Err(error) if !failing => {
                tracing::warn!(%error, "this host's heartbeat failed; its lanes go to other hosts if it goes on failing");
                failing = true;
            }
            Err(error) => tracing::debug!(%error, "this host's heartbeat failed again"),
        }
    }
}

/// One beat (see the module docs).
pub(in crate::store::postgres) async fn beat(shared: &Shared) -> Result<(), StoreError> {
    let lanes = &shared.lanes;
    let timing = lanes.timing;
    let me = shared.me;
    let _busy = lanes.busy.lock().await;
    let client = shared.pool.get().await.map_err(|e| StoreError::Unavailable(pool_error_text(&e)))?;
    let started = Instant::now();
    let demand = lanes.demand_to_publish();
    let rows = match client.prepare_cached(BEAT_HOSTS).await {
        Ok(statement) => client.query(&statement, &[&me, &ms(timing.host_ttl), &demand]).await,
        Err(error) => Err(error),
    };
    if let Some(sent) = &demand {
        lanes.demand_published(sent, rows.is_ok());
    }
    let rows = rows.map_err(pg_error)?;
    let reinserted = rows.first().is_some_and(|row| row.get::<_, bool>(2));
    if reinserted && lanes.state().beaten.is_some() {
        // Another host deleted this one's row, deeming it gone (a beat held up past
        // `host_ttl`): it may have taken this host's lanes, and saw none of its demand.
        tracing::warn!("other hosts deemed this host gone: it gives its lanes up and joins again");
        lanes.state().beaten = None;
        return Ok(());
    }
    let others_rows: Vec<(Uuid, Vec<String>)> =
        rows.iter().filter_map(|row| Some((row.get::<_, Option<Uuid>>(0)?, row.get(1)))).collect();
    let mut hosts: Vec<Uuid> = others_rows.iter().map(|(host, _)| *host).collect();
    hosts.push(me);
    hosts.sort_unstable();
    let mut others: HashMap<String, Vec<Uuid>> = HashMap::new();
    for (host, demand) in others_rows {
        for webhook in demand {
            others.entry(webhook).or_default().push(host);
        }
    }
    for hosts in others.values_mut() {
        hosts.sort_unstable();
    }
    let statement = client.prepare_cached(BEAT_LANES).await.map_err(pg_error)?;
    // Lanes that may be empty: none written to since the last beat, nor now.
    let forgettable: Vec<String> = {
        let mut state = lanes.state();
        let written = std::mem::take(&mut state.written);
        let forgettable: HashSet<String> = state
            .owned
            .iter()
            .filter(|webhook| !written.contains(*webhook) && !state.writes.contains_key(*webhook))
            .cloned()
            .collect();
        state.forgetting.clone_from(&forgettable);
        forgettable.into_iter().collect()
    };
    let rows = match client.query(&statement, &[&me, &ms(timing.lease), &forgettable]).await {
        Ok(rows) => rows,
        Err(error) => {
            lanes.state().forgetting.clear();
            return Err(pg_error(error));
        }
    };
    let (mut renewed, mut forgotten) = (HashSet::new(), HashSet::new());
    for row in rows {
        let (webhook, gone): (String, bool) = (row.get(0), row.get(1));
        if gone {
            forgotten.insert(webhook)
        } else {
            renewed.insert(webhook)
        };
    }

    let (departed, newly_reported, reported) = {
        let mut state = lanes.state();
        let departed = state.hosts.iter().any(|host| hosts.binary_search(host).is_err());
        for webhook in &forgotten {
            state.releasing.remove(webhook);
        }
        // Owned before, not renewed now and not forgotten: another host took it over.
        let lost: Vec<String> = state
            .owned
            .iter()
            .filter(|w| !renewed.contains(*w) && !forgotten.contains(*w))
            .cloned()
            .collect();
        let draining = renewed.iter().filter(|webhook| preferred(&hosts, webhook) != Some(me)).cloned();
        let mut newly_reported = false;
        for webhook in lost.into_iter().chain(draining) {
            newly_reported |= state.releasing.insert(webhook);
        }
        state.owned = renewed;
        state.forgetting.clear();
        state.beaten = Some(started);
        let established: HashSet<String> = state
            .demand
            .iter()
            .filter(|(_, demand)| demand.established(&timing))
            .map(|(webhook, _)| webhook.clone())
            .collect();
        let hosts_before = std::mem::replace(&mut state.hosts, hosts);
        let hosts_changed = state.hosts != hosts_before;
        if hosts_changed {
            // A webhook handed back may be kept again.
            state.declined.clear();
        }
        let demand_changed = state.read_demand(others, &hosts_before, started, &timing);
        if hosts_changed || demand_changed || state.established != established {
            state.established = established;
            lanes.shares.fetch_add(1, Ordering::Relaxed);
        }
        (departed, newly_reported, state.releasing.iter().cloned().collect::<Vec<String>>())
    };
    let mut wake = newly_reported;

    if !reported.is_empty() {
        let statement = client.prepare_cached(RELEASE_IDLE).await.map_err(pg_error)?;
        // An entry claimed as written but not committed yet is a claim it would not see.
        lanes.settle(&reported).await;
        let rows = client.query(&statement, &[&me, &reported]).await.map_err(pg_error)?;
        let idle: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
        if !idle.is_empty() {
            let mut state = lanes.state();
            for webhook in &idle {
                state.owned.remove(webhook);
                state.releasing.remove(webhook);
                state.tell.insert(webhook.clone());
            }
            drop(state);
            shared.announce.notify_one();
        }
    }
    if departed {
        let statement = client.prepare_cached(RETURN_ORPHANS).await.map_err(pg_error)?;
        let returned = client.execute(&statement, &[&me, &ms(timing.host_ttl)]).await.map_err(pg_error)?;
        if returned > 0 {
            tracing::info!(returned, "returned deliveries claimed by hosts that left");
            wake = true;
        }
    }
    wake |= acquire_unowned(&client, shared).await?;
    if wake {
        shared.wake_to_claim();
    }
    Ok(())
}
