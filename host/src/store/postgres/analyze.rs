//! Statistics for a server whose autovacuum is off: the host analyzes its own tables the way
//! autovacuum would, once enough of a table has changed since its last `ANALYZE`.
//!
//! Without statistics the planner takes a young table for a handful of pages, and a cached
//! plan then finds one delivery by walking a whole index or the table (seen: the turn's
//! `SELECT record FROM deliveries WHERE id = $1` through `deliveries_by_webhook`, and the
//! claim's update by a sequential scan of the queue), and a run's deliveries fell from
//! ~1,900 to ~450 a second. `ANALYZE` also invalidates those cached plans.

use std::time::Duration;

use super::{Shared, pg_error};
use crate::store::StoreError;

/// How often the tables' change counters are read.
const EVERY: Duration = Duration::from_secs(5);

/// The tables this host writes that grow, whose statistics go stale under load. Not the
/// queue (nor `lanes`): it empties as it is worked, and analyzed while nearly empty it set
/// the planner wrong for as long as the statistics stood — with a fresh backlog arriving,
/// deliveries stalled for ~5 s at a time (p99 at 1,000 events/s 5.2 s instead of 7–10 ms):
/// the claim's update found its rows by walking the whole of `queue_by_due` (schema 3 drops
/// that index, so a server whose autovacuum analyzes the queue keeps its claims by id).
const TABLES: &str = "'events', 'deliveries', 'attempts', 'idempotency'";

/// Runs until aborted: every [`EVERY`], analyzes what [`analyze_stale`] finds stale.
pub(super) async fn run(shared: std::sync::Arc<Shared>) {
    loop {
        tokio::time::sleep(EVERY).await;
        if let Err(error) = analyze_stale(&shared).await {
            tracing::debug!(%error, "could not refresh the tables' statistics");
        }
    }
}

/// `ANALYZE`s each of this host's tables that changed by more than autovacuum's default
/// threshold (50 rows and 10 % of the table) since its statistics were taken, unless some
/// host analyzed it less than [`EVERY`] ago — several hosts on one database analyze no more
/// often than one (three hosts each analyzing a growing `events` table cost PostgreSQL ~8 %
/// of its CPU under load); the names of those it analyzed.
pub(super) async fn analyze_stale(shared: &Shared) -> Result<Vec<String>, StoreError> {
    let client = shared.pool.get().await.map_err(|e| StoreError::Unavailable(super::pool_error_text(&e)))?;
    let stale = format!(
        "SELECT relname::text FROM pg_stat_user_tables
         WHERE schemaname = current_schema() AND relname IN ({TABLES})
             AND n_mod_since_analyze > 50 + 0.1 * n_live_tup
             AND coalesce(last_analyze, '-infinity') < now() - make_interval(secs => $1)
         ORDER BY relname"
    );
    let tables: Vec<String> = client
        .query(&stale, &[&EVERY.as_secs_f64()])
        .await
        .map_err(pg_error)?
        .iter()
        .map(|row| row.get(0))
        .collect();
    if !tables.is_empty() {
        // SKIP_LOCKED: another host analyzing the same table already does the job.
        client
            .batch_execute(&format!("ANALYZE (SKIP_LOCKED) {}", tables.join(", ")))
            .await
            .map_err(pg_error)?;
    }
    Ok(tables)
}
