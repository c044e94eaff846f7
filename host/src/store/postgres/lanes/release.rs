//! Giving lanes up: one at a time, once nothing of it runs here, or all of them when the
//! process stops.

use crate::store::StoreError;
use crate::store::postgres::{Shared, pg_error, pool_error_text};

/// Gives up a lane, or hands back a share of one: this process's claims of the webhook's
/// entries are returned and the lane deleted (if this host's), in one transaction; then
/// other hosts hear of it. A share handed back while in touch is declined: this host keeps
/// no more of the webhook until the hosts change.
pub(in crate::store::postgres) async fn release(shared: &Shared, webhook: &str) -> Result<(), StoreError> {
    let _busy = shared.lanes.busy.lock().await;
    let mut client = shared.pool.get().await.map_err(|e| StoreError::Unavailable(pool_error_text(&e)))?;
    // No entry of it claimed as written from now on, and none left uncommitted.
    shared.lanes.state().releasing.insert(webhook.to_owned());
    shared.lanes.settle(&[webhook.to_owned()]).await;
    let transaction = client.transaction().await.map_err(pg_error)?;
    let returned = transaction
        .prepare_cached("UPDATE queue SET claimed_by = NULL WHERE webhook_id = $1 AND claimed_by = $2");
    let deleted = transaction.prepare_cached("DELETE FROM lanes WHERE webhook_id = $1 AND owner = $2");
    let (returned, deleted) = tokio::try_join!(returned, deleted).map_err(pg_error)?;
    transaction.execute(&returned, &[&webhook, &shared.me]).await.map_err(pg_error)?;
    transaction.execute(&deleted, &[&webhook, &shared.me]).await.map_err(pg_error)?;
    transaction.commit().await.map_err(pg_error)?;
    // Returned in the database: no longer this engine's to take.
    shared.kept().retain(|entry| entry.webhook_id != webhook);
    let mut state = shared.lanes.state();
    if !state.owned.remove(webhook) && !shared.lanes.stale(&state) {
        state.declined.insert(webhook.to_owned());
        if state.demand.remove(webhook).is_some() {
            state.demand_changed = true;
        }
    } else if let Some(demand) = state.demand.get_mut(webhook) {
        demand.alone = false;
    }
    state.releasing.remove(webhook);
    state.tell.insert(webhook.to_owned());
    // Should it be this host's after all (it had lost touch), the next claim takes it back.
    state.fresh.insert(webhook.to_owned());
    drop(state);
    shared.announce.notify_one();
    shared.wake_to_claim();
    Ok(())
}

/// On a clean stop: deletes this process's lanes and its `hosts` row, and tells the other
/// hosts, which take the lanes over at once (and return this process's claims).
pub(in crate::store::postgres) async fn leave(shared: &Shared, channel: &str) -> Result<(), StoreError> {
    let _busy = shared.lanes.busy.lock().await;
    let client = shared.pool.get().await.map_err(|e| StoreError::Unavailable(pool_error_text(&e)))?;
    let held: Vec<String> = {
        let mut state = shared.lanes.state();
        state.beaten = None; // out of touch: nothing more is claimed as written
        state.owned.iter().chain(state.demand.keys()).cloned().collect()
    };
    shared.lanes.settle(&held).await;
    let me = shared.me;
    client.execute("DELETE FROM lanes WHERE owner = $1", &[&me]).await.map_err(pg_error)?;
    client.execute("DELETE FROM hosts WHERE id = $1", &[&me]).await.map_err(pg_error)?;
    {
        let mut state = shared.lanes.state();
        state.owned.clear();
        state.demand.clear();
        state.releasing.clear();
    }
    client.execute("SELECT pg_notify($1, $2)", &[&channel, &me.to_string()]).await.map_err(pg_error)?;
    Ok(())
}
