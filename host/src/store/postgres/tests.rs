//! The PostgreSQL backend against a real server: each test has a database of its own
//! (`testing.rs`) and is skipped when no server answers.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;
use time::OffsetDateTime;
use tokio_postgres::NoTls;

use super::testing::TestDb;
use super::*;
use crate::access::{Companies, Scope};
use crate::store::{Change, Outcome};

/// A test database, or return (skipped) when there is no server.
macro_rules! database {
    () => {
        match TestDb::create().await {
            Some(db) => db,
            None => return,
        }
    };
}

async fn open(db: &TestDb) -> PgStore {
    PgStore::open(&db.url, Migrate::Apply).await.expect("open the test database")
}

/// Lanes on a test's time scale: hosts beat every 100 ms, are gone after 1 s unseen, leases
/// last 1.5 s, a host out of touch stops claiming after 0.7 s, and demand lingers 1.5 s.
const FAST: lanes::Timing = lanes::Timing {
    heartbeat: Duration::from_millis(100),
    host_ttl: Duration::from_millis(1000),
    lease: Duration::from_millis(1500),
    margin: Duration::from_millis(300),
    linger: Duration::from_millis(1500),
};

/// No beat after the first (at open), and nothing expires while a test runs.
const SLOW: lanes::Timing = lanes::Timing {
    heartbeat: Duration::from_secs(600),
    host_ttl: Duration::from_secs(600),
    lease: Duration::from_secs(1200),
    margin: Duration::from_secs(1),
    linger: Duration::from_secs(600),
};

/// A host on the FAST time scale.
async fn host(db: &TestDb) -> PgStore {
    PgStore::open_with(&db.url, Migrate::Apply, queue::POLL, FAST).await.expect("open the test database")
}

fn me(store: &PgStore) -> Uuid {
    store.inner.shared.me
}

/// Waits (at most `within`) until `done` holds, checking every 20 ms.
async fn eventually(what: &str, within: Duration, mut done: impl AsyncFnMut() -> bool) {
    let start = std::time::Instant::now();
    while !done().await {
        assert!(start.elapsed() < within, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Until every host sees `n` live hosts.
async fn see_each_other(hosts: &[&PgStore], n: usize) {
    for host in hosts {
        eventually("every host sees the others", Duration::from_secs(5), async || {
            host.inner.shared.lanes.hosts().len() == n
        })
        .await;
    }
}

/// Accepts `per` queued deliveries for each webhook, which may go in any order (so a host
/// keeps those of the lanes it owns or shares); returns them.
async fn queue_for(store: &PgStore, webhooks: &[String], per: usize) -> Vec<Delivery> {
    queue(store, webhooks, per, true).await
}

/// As [`queue_for`], for deliveries that must wait for a claim by the lane owner (as an
/// `ordered` webhook's do).
async fn queue_waiting_for(store: &PgStore, webhooks: &[String], per: usize) -> Vec<Delivery> {
    queue(store, webhooks, per, false).await
}

async fn queue(store: &PgStore, webhooks: &[String], per: usize, any_order: bool) -> Vec<Delivery> {
    let e = event("c1", &format!("e-{}", Uuid::now_v7()));
    let made: Vec<Delivery> = webhooks
        .iter()
        .flat_map(|w| (0..per).map(|_| delivery(&e, w, DeliveryStatus::Pending)).collect::<Vec<_>>())
        .collect();
    let mut call = accept(e, made.clone(), json!({}));
    if !any_order {
        call.unordered.clear();
    }
    store.accept(&[call], None, 5).await.expect("accept");
    made
}

/// Once `a`, holding every lane of `all`, and the newcomer `b` see each other: the lanes `b`
/// should hold, which `a` reports to release.
async fn handing_over(a: &PgStore, b: &PgStore, all: &[String]) -> Vec<String> {
    see_each_other(&[a, b], 2).await;
    let hosts = b.inner.shared.lanes.hosts();
    let theirs: Vec<String> =
        all.iter().filter(|w| lanes::preferred(&hosts, w) == Some(me(b))).cloned().collect();
    assert!(!theirs.is_empty() && theirs.len() < all.len(), "20 webhooks spread over 2 hosts");
    eventually("the first host reports the lanes to release", Duration::from_secs(5), async || {
        a.lanes_to_release().await == theirs
    })
    .await;
    theirs
}

/// The queue locked against writes (as if PostgreSQL were slow to take them) until released.
struct QueueLock(tokio_postgres::Client);

impl QueueLock {
    async fn take(db: &TestDb) -> QueueLock {
        let client = sql(db).await;
        client.batch_execute("BEGIN; LOCK TABLE queue IN SHARE ROW EXCLUSIVE MODE").await.expect("lock");
        QueueLock(client)
    }

    async fn release(self) {
        self.0.batch_execute("COMMIT").await.expect("unlock");
    }
}

/// Starts accepting one delivery for each webhook on `store`; returns once the write waits
/// for a lock.
async fn write_held_up(
    db: &TestDb,
    store: &PgStore,
    webhooks: &[String],
) -> tokio::task::JoinHandle<Vec<Delivery>> {
    let writer = tokio::spawn({
        let (store, webhooks) = (store.clone(), webhooks.to_vec());
        async move { queue_for(&store, &webhooks, 1).await }
    });
    eventually("the write waits for the lock", Duration::from_secs(5), async || {
        let row = sql(db).await.query_one("SELECT count(*) FROM pg_locks WHERE NOT granted", &[]).await;
        row.expect("locks").get::<_, i64>(0) > 0
    })
    .await;
    writer
}

/// A webhook whose lane `store` should hold, among the live hosts it sees.
fn one_of(store: &PgStore) -> String {
    let hosts = store.inner.shared.lanes.hosts();
    webhooks(30).into_iter().find(|w| lanes::preferred(&hosts, w) == Some(me(store))).expect("one of 30")
}

fn webhooks(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("wh_{i:03}")).collect()
}

/// Claims on `host` until `n` entries came (within `within`); returns them all.
async fn claim_until(host: &PgStore, n: usize, within: Duration, what: &str) -> Vec<QueueEntry> {
    let mut taken = Vec::new();
    eventually(what, within, async || {
        taken.extend(host.claim(1000).await.expect("claim"));
        taken.len() >= n
    })
    .await;
    taken
}

/// The delivery ids of these entries.
fn ids(entries: &[QueueEntry]) -> Vec<String> {
    entries.iter().map(|entry| entry.delivery_id.clone()).collect()
}

/// Who claimed each queue entry, by delivery id.
async fn claimed_by(db: &TestDb) -> std::collections::HashMap<String, Option<Uuid>> {
    let rows = sql(db).await.query("SELECT delivery_id, claimed_by FROM queue", &[]).await.expect("queue");
    rows.iter().map(|row| (row.get(0), row.get(1))).collect()
}

/// The owner of each lane, by webhook.
async fn owners(db: &TestDb) -> std::collections::BTreeMap<String, Uuid> {
    let rows = sql(db).await.query("SELECT webhook_id, owner FROM lanes", &[]).await.expect("lanes");
    rows.iter().map(|row| (row.get(0), row.get(1))).collect()
}

/// A plain connection, to look at the tables.
async fn sql(db: &TestDb) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&db.url, NoTls).await.expect("connect");
    tokio::spawn(connection);
    client
}

async fn count(db: &TestDb, table: &str) -> i64 {
    sql(db).await.query_one(&format!("SELECT count(*) FROM {table}"), &[]).await.expect("count").get(0)
}

fn event(company: &str, id: &str) -> Event {
    Event {
        id: id.into(),
        event: "TODO_CREATED".into(),
        company_id: company.into(),
        project_id: "p1".into(),
        user_id: None,
        current_value: Some(json!({"title": "Launch"})),
        previous_value: None,
        occurred_at: OffsetDateTime::UNIX_EPOCH,
    }
}

fn delivery(event: &Event, webhook_id: &str, status: DeliveryStatus) -> Delivery {
    Delivery { status, ..Delivery::new(event, webhook_id, true, OffsetDateTime::now_utc()) }
}

/// Deliveries in id order (ids made in one millisecond need not sort in the order made).
fn by_id(mut deliveries: Vec<Delivery>) -> Vec<Delivery> {
    deliveries.sort_by(|a, b| a.id.cmp(&b.id));
    deliveries
}

fn accept(event: Event, deliveries: Vec<Delivery>, response: Value) -> Accept {
    let unordered = deliveries.iter().map(|delivery| delivery.webhook_id.clone()).collect();
    Accept { event: event.into(), deliveries, response, unordered }
}

fn attempt(message: &str, at_ms: i64) -> Attempt {
    Attempt {
        message_id: message.into(),
        at: OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(at_ms),
        status_code: Some(500),
        latency_ms: 3,
        response: Some("try later".into()),
        error: None,
        remote_id: None,
    }
}

fn token(id: &str) -> Token {
    Token {
        id: id.into(),
        scope: Scope::Ingest,
        user_id: "u1".into(),
        description: None,
        created_at: OffsetDateTime::UNIX_EPOCH,
    }
}

fn outcomes(stored: Stored) -> Vec<Outcome> {
    match stored {
        Stored::Accepted(outcomes) => outcomes,
        other => panic!("expected Accepted, got {other:?}"),
    }
}

fn new(response: Value) -> Outcome {
    Outcome { response, duplicate: false }
}

fn duplicate(response: Value) -> Outcome {
    Outcome { response, duplicate: true }
}

#[tokio::test]
async fn migrations_apply_once_when_hosts_start_together() {
    let db = database!();
    let (a, b, c) = tokio::join!(
        PgStore::open(&db.url, Migrate::Apply),
        PgStore::open(&db.url, Migrate::Apply),
        PgStore::open(&db.url, Migrate::Apply),
    );
    for opened in [a, b, c] {
        opened.expect("every host opens");
    }
    assert_eq!(count(&db, "schema_migrations").await, schema::KNOWN as i64);
    assert_eq!(migrate(&db.url).await.expect("migrate again"), Vec::<u64>::new());
}

#[tokio::test]
async fn record_columns_have_no_statistics_and_lz4_where_the_server_has_it() {
    let db = database!();
    let _store = open(&db).await;
    let client = sql(&db).await;
    let lz4: bool = client
        .query_one(
            "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'",
            &[],
        )
        .await
        .expect("settings")
        .get(0);
    let rows = client
        .query(
            "SELECT attrelid::regclass::text || '.' || attname, attstattarget::int4, attcompression::text
             FROM pg_attribute WHERE (attrelid::regclass::text, attname::text) IN
                 (('events', 'record'), ('events', 'response'), ('deliveries', 'record'),
                  ('attempts', 'record'), ('idempotency', 'outcomes'))",
            &[],
        )
        .await
        .expect("columns");
    assert_eq!(rows.len(), 5);
    for row in rows {
        let (column, statistics, compression): (String, i32, String) = (row.get(0), row.get(1), row.get(2));
        assert_eq!(statistics, 0, "{column} is never analyzed");
        let expected = if lz4 && column != "idempotency.outcomes" { "l" } else { "" };
        assert_eq!(compression, expected, "{column}'s compression (lz4 available: {lz4})");
    }
}

#[tokio::test]
async fn the_queues_connections_commit_without_waiting_and_keep_one_generic_plan() {
    let db = database!();
    let store = open(&db).await;
    let client = store.inner.shared.queue_pool.get().await.expect("a queue connection");
    for (setting, expected) in
        [("synchronous_commit", "off"), ("enable_seqscan", "off"), ("plan_cache_mode", "force_generic_plan")]
    {
        let value: String = client.query_one(&format!("SHOW {setting}"), &[]).await.expect("show").get(0);
        assert_eq!(value, expected, "{setting}");
    }
    // A finishing group of one turn, then of three: never planned afresh for its values.
    let finish = client.prepare_cached(queue::FINISH).await.expect("prepare");
    for turns in [1, 3, 1, 3, 1, 3, 1] {
        let ids: Vec<String> = (0..turns).map(|i| format!("gone{i}")).collect();
        let none: Vec<String> = Vec::new();
        let (no_times, no_ints, no_bytes): (Vec<OffsetDateTime>, Vec<i64>, Vec<Vec<u8>>) = Default::default();
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 14] = [
            &none,
            &no_times,
            &none,
            &no_bytes,
            &none,
            &none,
            &none,
            &no_times,
            &no_bytes,
            &me(&store),
            &none,
            &none,
            &no_ints,
            &ids,
        ];
        client.query_one(&finish, &params).await.expect("finish");
    }
    let row = client
        .query_one(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1",
            &[&queue::FINISH],
        )
        .await
        .expect("the prepared statement");
    let (generic, custom): (i64, i64) = (row.get(0), row.get(1));
    // Without the setting the first five executions alone would each be a custom plan.
    assert!(generic > 0 && custom == 0, "generic plans {generic}, custom plans {custom}");
}

#[tokio::test]
async fn a_schema_behind_is_refused_without_migrate_and_a_newer_one_always() {
    let db = database!();
    let Err(StoreError::Behind(message)) = PgStore::open(&db.url, Migrate::Check).await else {
        panic!("an empty database is behind");
    };
    assert!(message.contains("wasmhook migrate --database"), "{message}");
    assert!(message.contains("serve --migrate"), "{message}");
    assert_eq!(migrate(&db.url).await.expect("migrate"), (1..=schema::KNOWN).collect::<Vec<u64>>());
    PgStore::open(&db.url, Migrate::Check).await.expect("up to date now");

    sql(&db).await.execute("INSERT INTO schema_migrations (version) VALUES (99)", &[]).await.expect("newer");
    for how in [Migrate::Check, Migrate::Apply] {
        match PgStore::open(&db.url, how).await {
            Err(StoreError::NewerSchema { found: 99, known: schema::KNOWN, .. }) => {}
            Err(other) => panic!("expected NewerSchema, got {other}"),
            Ok(_) => panic!("expected NewerSchema, it opened"),
        }
    }
}

#[tokio::test]
async fn accept_stores_new_events_and_answers_repeats_with_the_first_answer() {
    let db = database!();
    let store = open(&db).await;
    let e1 = event("c1", "e1");
    let (queued, filtered) =
        (delivery(&e1, "w1", DeliveryStatus::Pending), delivery(&e1, "w2", DeliveryStatus::Filtered));
    let stored = store
        .accept(&[accept(e1.clone(), vec![queued.clone(), filtered.clone()], json!({"n": 1}))], None, 1_000)
        .await
        .expect("accept");
    assert_eq!(outcomes(stored), vec![new(json!({"n": 1}))]);
    assert_eq!(store.event("c1", "e1").await.expect("read"), Some(e1.clone()));
    assert_eq!(store.delivery(&queued.id).await.expect("read"), Some(queued.clone()));
    assert_eq!(store.delivery(&filtered.id).await.expect("read"), Some(filtered));
    assert_eq!(store.queue_depth(), 1);

    // Again: the first answer, nothing stored.
    let again = delivery(&e1, "w1", DeliveryStatus::Pending);
    let stored = store.accept(&[accept(e1.clone(), vec![again.clone()], json!({"n": 2}))], None, 2_000).await;
    assert_eq!(outcomes(stored.expect("accept")), vec![duplicate(json!({"n": 1}))]);
    assert_eq!(store.delivery(&again.id).await.expect("read"), None);
    assert_eq!(store.queue_depth(), 1);

    // The same id in another company is another event; twice in one call, the second is a
    // duplicate of the first.
    let e2 = event("c2", "e1");
    let (first, second) =
        (delivery(&e2, "w1", DeliveryStatus::Pending), delivery(&e2, "w1", DeliveryStatus::Pending));
    let stored = store
        .accept(
            &[
                accept(e2.clone(), vec![first.clone()], json!({"n": 3})),
                accept(e2.clone(), vec![second.clone()], json!({"n": 4})),
            ],
            None,
            3_000,
        )
        .await
        .expect("accept");
    assert_eq!(outcomes(stored), vec![new(json!({"n": 3})), duplicate(json!({"n": 3}))]);
    assert!(store.delivery(&first.id).await.expect("read").is_some());
    assert_eq!(store.delivery(&second.id).await.expect("read"), None);
    assert_eq!(store.queue_depth(), 2);
    let claimed = store.claim(10).await.expect("claim");
    assert_eq!(claimed.iter().map(|e| e.delivery_id.as_str()).collect::<Vec<_>>(), [&queued.id, &first.id]);
    assert_eq!(claimed[0].due_ms, 1_000);
}

#[tokio::test]
async fn concurrent_calls_with_one_event_store_it_once() {
    let db = database!();
    let store = open(&db).await;
    let calls = (0..24).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            // Other events between them, so that groups hold several calls.
            let other = event("c1", &format!("other-{i}"));
            let other =
                accept(other.clone(), vec![delivery(&other, "w2", DeliveryStatus::Pending)], json!(i));
            let same = event("c1", "same");
            let same =
                accept(same.clone(), vec![delivery(&same, "w1", DeliveryStatus::Pending)], json!({"i": i}));
            let (other, same) = ([other], [same]);
            let (a, b) = tokio::join!(store.accept(&other, None, 1), store.accept(&same, None, 1));
            assert_eq!(outcomes(a.expect("other")), vec![new(json!(i))]);
            outcomes(b.expect("same")).remove(0)
        })
    });
    let mut results = Vec::new();
    for call in calls.collect::<Vec<_>>() {
        results.push(call.await.expect("a call"));
    }
    let firsts: Vec<&Outcome> = results.iter().filter(|o| !o.duplicate).collect();
    assert_eq!(firsts.len(), 1, "{results:?}");
    assert!(results.iter().all(|o| o.response == firsts[0].response), "{results:?}");
    let query = DeliveryQuery { limit: 100, ..DeliveryQuery::default() };
    assert_eq!(store.deliveries_of("w1", &query).await.expect("list").len(), 1);
    assert_eq!(store.queue_depth(), 25);
    assert_eq!(count(&db, "queue").await, 25);
}

#[tokio::test]
async fn a_call_postgresql_refuses_fails_alone() {
    let db = database!();
    let store = open(&db).await;
    let calls = (0..8).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            // Text cannot hold a NUL: PostgreSQL refuses this one's data.
            let company = if i == 3 { "bad\0company".to_owned() } else { "c1".to_owned() };
            let e = event(&company, &format!("e{i}"));
            store
                .accept(
                    &[accept(e.clone(), vec![delivery(&e, "w1", DeliveryStatus::Pending)], json!(i))],
                    None,
                    1,
                )
                .await
        })
    });
    let mut results = Vec::new();
    for call in calls.collect::<Vec<_>>() {
        results.push(call.await.expect("a call"));
    }
    for (i, result) in results.into_iter().enumerate() {
        match (i, result) {
            (3, result) => assert!(result.is_err(), "{result:?}"),
            (i, result) => assert_eq!(outcomes(result.expect("accepted")), vec![new(json!(i))]),
        }
    }
    assert_eq!(store.queue_depth(), 7);
}

fn key(endpoint: &'static str, body_hash: &str) -> IdempotencyKey {
    IdempotencyKey { scoped: "tok_1\0key-1".into(), endpoint, body_hash: body_hash.into() }
}

#[tokio::test]
async fn an_idempotency_key_replays_or_conflicts_and_stores_nothing_again() {
    let db = database!();
    let store = open(&db).await;
    let e1 = event("c1", "e1");
    let batch = [accept(e1.clone(), vec![delivery(&e1, "w1", DeliveryStatus::Pending)], json!({"n": 1}))];
    let first = outcomes(store.accept(&batch, Some(&key("/v1/events", "h1")), 1).await.expect("accept"));
    assert_eq!(first, vec![new(json!({"n": 1}))]);

    let e2 = event("c1", "e2");
    let batch = [accept(e2.clone(), vec![delivery(&e2, "w1", DeliveryStatus::Pending)], json!({"n": 2}))];
    match store.accept(&batch, Some(&key("/v1/events", "h1")), 2).await.expect("replay") {
        Stored::Replay(replayed) => assert_eq!(replayed, first),
        other => panic!("expected a replay, got {other:?}"),
    }
    assert_eq!(store.event("c1", "e2").await.expect("read"), None);
    match store.accept(&batch, Some(&key("/v1/events", "h2")), 2).await.expect("conflict") {
        Stored::KeyConflict(why) => assert!(why.contains("different body"), "{why}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    match store.accept(&batch, Some(&key("/v1/events/batch", "h1")), 2).await.expect("conflict") {
        Stored::KeyConflict(why) => assert!(why.contains("used on /v1/events;"), "{why}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(count(&db, "events").await, 1);
    assert_eq!(store.queue_depth(), 1);
}

#[tokio::test]
async fn requests_racing_with_one_key_store_once() {
    let db = database!();
    let store = open(&db).await;
    let calls = (0..8).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            // Ids the host gave: each request's event is a different one.
            let e = event("c1", &format!("e{i}"));
            let batch =
                [accept(e.clone(), vec![delivery(&e, "w1", DeliveryStatus::Pending)], json!({"i": i}))];
            store.accept(&batch, Some(&key("/v1/events", "h1")), 1).await.expect("accept")
        })
    });
    let (mut accepted, mut replayed) = (Vec::new(), Vec::new());
    for call in calls.collect::<Vec<_>>() {
        match call.await.expect("a call") {
            Stored::Accepted(outcomes) => accepted.push(outcomes),
            Stored::Replay(outcomes) => replayed.push(outcomes),
            Stored::KeyConflict(why) => panic!("same endpoint and body: {why}"),
        }
    }
    assert_eq!(accepted.len(), 1);
    assert!(replayed.iter().all(|r| *r == accepted[0]));
    assert_eq!(count(&db, "events").await, 1);
    assert_eq!(count(&db, "deliveries").await, 1);
    assert_eq!(store.queue_depth(), 1);
}

#[tokio::test]
async fn deliveries_of_pages_newest_first_by_status_and_time() {
    let db = database!();
    let store = open(&db).await;
    let e = event("c1", "e1");
    let statuses = [
        DeliveryStatus::Succeeded,
        DeliveryStatus::Failed,
        DeliveryStatus::Succeeded,
        DeliveryStatus::Filtered,
        DeliveryStatus::Succeeded,
    ];
    let base = OffsetDateTime::now_utc();
    let mut made = by_id(statuses.iter().map(|_| delivery(&e, "w1", DeliveryStatus::Pending)).collect());
    for (i, (d, status)) in made.iter_mut().zip(statuses).enumerate() {
        d.status = status;
        d.created_at = base + time::Duration::seconds(i as i64);
    }
    let other = delivery(&e, "w2", DeliveryStatus::Succeeded);
    let mut all = made.clone();
    all.push(other);
    store.accept(&[accept(e, all, json!({}))], None, 1).await.expect("accept");
    let ids = |page: Vec<Delivery>| page.into_iter().map(|d| d.id).collect::<Vec<_>>();

    let page =
        store.deliveries_of("w1", &DeliveryQuery { limit: 2, ..Default::default() }).await.expect("page");
    assert_eq!(ids(page), [made[4].id.clone(), made[3].id.clone()]);
    let next = DeliveryQuery { before: Some(&made[3].id), limit: 2, ..Default::default() };
    assert_eq!(
        ids(store.deliveries_of("w1", &next).await.expect("page")),
        [made[2].id.clone(), made[1].id.clone()]
    );
    let succeeded = [DeliveryStatus::Succeeded];
    let only = DeliveryQuery { statuses: &succeeded, limit: 10, ..Default::default() };
    assert_eq!(
        ids(store.deliveries_of("w1", &only).await.expect("page")),
        [made[4].id.clone(), made[2].id.clone(), made[0].id.clone()]
    );
    let since = DeliveryQuery {
        statuses: &succeeded,
        since: Some(made[1].created_at),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(
        ids(store.deliveries_of("w1", &since).await.expect("page")),
        [made[4].id.clone(), made[2].id.clone()]
    );
    let none = DeliveryQuery { limit: 10, ..Default::default() };
    assert!(store.deliveries_of("w3", &none).await.expect("page").is_empty());
}

#[tokio::test]
async fn claims_are_once_per_process_and_come_back_after_a_crash() {
    let db = database!();
    let store = host(&db).await;
    let e = event("c1", "e1");
    let made = by_id((0..3).map(|_| delivery(&e, "w1", DeliveryStatus::Pending)).collect());
    store.accept(&[accept(e, made.clone(), json!({}))], None, 5).await.expect("accept");
    let first = store.claim(2).await.expect("claim");
    assert_eq!(first.iter().map(|q| &q.delivery_id).collect::<Vec<_>>(), [&made[0].id, &made[1].id]);
    assert_eq!(first[0].webhook_id, "w1");
    assert_eq!(store.claim(10).await.expect("claim").len(), 1);
    assert!(store.claim(10).await.expect("claim").is_empty());

    // Another process on the same database, this one dead (its heartbeat stopped): once it
    // is gone, the other takes its lane and its entries again.
    drop(store);
    let after = host(&db).await;
    let mut again = Vec::new();
    eventually("the dead process's entries are claimed again", Duration::from_secs(5), async || {
        again.extend(after.claim(10).await.expect("claim"));
        again.len() == 3
    })
    .await;
    again.sort_by(|a, b| a.delivery_id.cmp(&b.delivery_id));
    assert!(after.claim(10).await.expect("claim").is_empty());

    // Rescheduled: stays queued and claimed; finished: gone.
    let mut failed = made[1].clone();
    failed.status = DeliveryStatus::Failed;
    after.finish(&again[0], None, Some(9_000), &[attempt("m1", 2), attempt("m1", 1)]).await.expect("finish");
    after.finish(&again[1], Some(&failed), None, &[attempt("m2", 3)]).await.expect("finish");
    assert_eq!(after.queue_depth(), 2);
    assert!(after.claim(10).await.expect("claim").is_empty());
    let due: i64 = sql(&db)
        .await
        .query_one("SELECT due_ms FROM queue WHERE delivery_id = $1", &[&again[0].delivery_id])
        .await
        .expect("due")
        .get(0);
    assert_eq!(due, 9_000);
    assert_eq!(after.delivery(&failed.id).await.expect("read"), Some(failed.clone()));

    let attempts = after
        .attempts_of(&[again[0].delivery_id.clone(), "dlv_none".into(), again[1].delivery_id.clone()])
        .await
        .expect("attempts");
    let times = |list: &Vec<Attempt>| list.iter().map(|a| a.at).collect::<Vec<_>>();
    assert_eq!(times(&attempts[0]), [attempt("m1", 1).at, attempt("m1", 2).at]);
    assert!(attempts[1].is_empty());
    assert_eq!(attempts[2], [attempt("m2", 3)]);
}

#[tokio::test]
async fn concurrent_finishes_are_written_together() {
    let db = database!();
    let store = open(&db).await;
    let e = event("c1", "e1");
    let made: Vec<Delivery> = (0..40).map(|_| delivery(&e, "w1", DeliveryStatus::Pending)).collect();
    store.accept(&[accept(e, made.clone(), json!({}))], None, 5).await.expect("accept");
    let claimed = store.claim(100).await.expect("claim");
    let finishes = claimed.into_iter().zip(made).map(|(entry, mut d)| {
        let store = store.clone();
        tokio::spawn(async move {
            d.status = DeliveryStatus::Succeeded;
            store.finish(&entry, Some(&d), None, &[attempt(&d.id, 1)]).await
        })
    });
    for finish in finishes.collect::<Vec<_>>() {
        finish.await.expect("a finish").expect("finished");
    }
    assert_eq!(store.queue_depth(), 0);
    assert_eq!(count(&db, "queue").await, 0);
    assert_eq!(count(&db, "attempts").await, 40);
    let succeeded: i64 = sql(&db)
        .await
        .query_one("SELECT count(*) FROM deliveries WHERE status = 'succeeded'", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(succeeded, 40);
}

#[tokio::test]
async fn requeue_puts_back_only_what_is_not_pending() {
    let db = database!();
    let store = open(&db).await;
    let e = event("c1", "e1");
    let d = delivery(&e, "w1", DeliveryStatus::Pending);
    store.accept(&[accept(e, vec![d.clone()], json!({}))], None, 5).await.expect("accept");
    assert!(!store.requeue(&d, 10).await.expect("requeue"), "pending: queued already");
    let entry = store.claim(1).await.expect("claim").remove(0);
    let failed = Delivery { status: DeliveryStatus::Failed, ..d.clone() };
    store.finish(&entry, Some(&failed), None, &[]).await.expect("finish");
    assert_eq!(store.queue_depth(), 0);

    assert!(store.requeue(&d, 10).await.expect("requeue"));
    assert_eq!(store.queue_depth(), 1);
    assert_eq!(store.delivery(&d.id).await.expect("read"), Some(d.clone()));
    let entry = store.claim(5).await.expect("claim");
    assert_eq!(entry.len(), 1);
    assert_eq!((entry[0].delivery_id.as_str(), entry[0].due_ms), (d.id.as_str(), 10));
}

#[tokio::test]
async fn swap_webhook_is_compare_and_swap_on_the_revision() {
    let db = database!();
    let store = open(&db).await;
    let mut webhook =
        crate::tryout::sample_webhook("TODO_CREATED", "p1", Some("u1"), OffsetDateTime::UNIX_EPOCH);
    webhook.id = "wh_1".into();
    store.insert_webhook(&webhook).await.expect("insert");
    let mut changed = webhook.clone();
    changed.name = "Renamed".into();
    assert!(store.swap_webhook(&changed).await.expect("swap"));
    let stored = store.webhook("wh_1").await.expect("read").expect("there");
    assert_eq!((stored.name.as_str(), stored.revision), ("Renamed", 1));
    // A writer that read revision 0 lost the race.
    assert!(!store.swap_webhook(&webhook).await.expect("swap"));
    assert_eq!(store.webhook("wh_1").await.expect("read").expect("there").name, "Renamed");
    assert!(store.swap_webhook(&stored).await.expect("swap"));

    let mut other = webhook.clone();
    other.id = "wh_2".into();
    other.created_by_id = "u2".into();
    store.insert_webhook(&other).await.expect("insert");
    let ids = |list: Vec<Webhook>| list.into_iter().map(|w| w.id).collect::<Vec<_>>();
    assert_eq!(ids(store.webhooks().await.expect("all")), ["wh_1", "wh_2"]);
    assert_eq!(ids(store.webhooks_page(Some("u2"), None, 10).await.expect("page")), ["wh_2"]);
    assert_eq!(ids(store.webhooks_page(None, Some("wh_1"), 10).await.expect("page")), ["wh_2"]);
    assert_eq!(ids(store.webhooks_page(None, None, 1).await.expect("page")), ["wh_1"]);

    assert!(store.delete_webhook("wh_1").await.expect("delete"));
    assert!(!store.delete_webhook("wh_1").await.expect("delete"));
    assert!(!store.swap_webhook(&stored).await.expect("swap"), "gone");
}

#[tokio::test]
async fn users_tokens_and_connectors_round_trip() {
    let db = database!();
    let store = open(&db).await;
    let user = User { id: "u1".into(), companies: Companies::All };
    store.put_user(&user).await.expect("put");
    let user = User { id: "u1".into(), companies: Companies::Only(["c1".to_owned()].into()) };
    store.put_user(&user).await.expect("put again");
    assert_eq!(store.user("u1").await.expect("read"), Some(user.clone()));
    assert_eq!(store.users().await.expect("all"), [user]);

    let token = token("tok_1");
    store.put_token(&[7; 32], &token).await.expect("put");
    assert_eq!(store.token_by_hash(&[7; 32]).await.expect("read"), Some(token.clone()));
    assert_eq!(store.token_by_hash(&[8; 32]).await.expect("read"), None);
    assert_eq!(store.tokens().await.expect("all"), [token]);
    assert!(store.delete_token("tok_1").await.expect("delete"));
    assert_eq!(store.token_by_hash(&[7; 32]).await.expect("read"), None);

    store.put_connector("slack", b"v1").await.expect("put");
    store.put_connector("slack", b"v2").await.expect("put again");
    assert_eq!(store.connectors().await.expect("all"), [("slack".to_owned(), b"v2".to_vec())]);
    assert!(store.delete_connector("slack").await.expect("delete"));
    assert!(!store.delete_connector("slack").await.expect("delete"));
}

#[tokio::test]
async fn prune_removes_old_finished_records_and_keeps_queued_ones() {
    let db = database!();
    let store = open(&db).await;
    let old_time = OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(1);
    let old = event("c1", "old");
    let mut done = delivery(&old, "w1", DeliveryStatus::Succeeded);
    done.created_at = old_time;
    let mut queued = delivery(&old, "w1", DeliveryStatus::Pending);
    queued.created_at = old_time;
    store
        .accept(
            &[accept(old, vec![done.clone(), queued.clone()], json!({}))],
            Some(&key("/v1/events", "h")),
            1_000,
        )
        .await
        .expect("accept");
    let entry = store.claim(1).await.expect("claim").remove(0);
    store.finish(&entry, None, Some(1_000), &[attempt("m", 1)]).await.expect("a retry");
    sql(&db)
        .await
        .execute(
            "INSERT INTO attempts (delivery_id, at, message_id, record) VALUES ($1, now(), 'm', '\\x7b7d')",
            &[&done.id],
        )
        .await
        .expect("an attempt of the finished one");
    let recent = event("c1", "recent");
    let fresh = delivery(&recent, "w1", DeliveryStatus::Succeeded);
    store
        .accept(&[accept(recent, vec![fresh.clone()], json!({}))], None, 9_000_000_000_000)
        .await
        .expect("accept");

    // The old event, its key, the finished delivery and its attempt.
    assert_eq!(store.prune(5_000).await.expect("prune"), 4);
    assert_eq!(store.event("c1", "old").await.expect("read"), None);
    assert!(store.event("c1", "recent").await.expect("read").is_some());
    assert_eq!(store.delivery(&done.id).await.expect("read"), None);
    assert!(store.delivery(&queued.id).await.expect("read").is_some());
    assert!(store.delivery(&fresh.id).await.expect("read").is_some());
    assert_eq!(count(&db, "idempotency").await, 0);
    assert_eq!(count(&db, "attempts").await, 1, "the queued delivery's attempt stays");
    assert_eq!(store.prune(5_000).await.expect("prune again"), 0);
    assert!(store.size_on_disk().await.expect("size") > 0);
}

#[tokio::test]
async fn with_autovacuum_off_prune_vacuums_the_tables_it_deleted_from() {
    let db = database!();
    let mut store = open(&db).await;
    // As on a server with `autovacuum = off` (this store's own decision, made at open).
    Arc::get_mut(&mut store.inner).expect("the only handle").vacuum = true;
    let vacuums = async || -> i64 {
        let sql = "SELECT coalesce(sum(vacuum_count), 0)::int8 FROM pg_stat_user_tables
                   WHERE relname IN ('events', 'deliveries', 'attempts', 'queue')";
        self::sql(&db).await.query_one(sql, &[]).await.expect("stats").get(0)
    };
    let before = vacuums().await;
    store.prune(5_000).await.expect("prune");
    eventually("four tables vacuumed", Duration::from_secs(5), async || vacuums().await >= before + 4).await;
}

#[tokio::test]
async fn tables_changed_past_the_threshold_are_analyzed() {
    let db = database!();
    let store = open(&db).await;
    let attempts = "INSERT INTO attempts (delivery_id, at, message_id, record)
                    SELECT 'dlv_' || n, now(), 'msg_' || n, '\\x00' FROM generate_series(1, 200) AS n";
    sql(&db).await.execute(attempts, &[]).await.expect("200 attempts");
    let queue = "INSERT INTO queue (delivery_id, webhook_id, due_ms)
                 SELECT 'dlv_' || n, 'w1', n FROM generate_series(1, 200) AS n";
    sql(&db).await.execute(queue, &[]).await.expect("200 queue entries");
    let shared = &store.inner.shared;
    let analyses = async |table: &str| -> i64 {
        let stats = "SELECT analyze_count FROM pg_stat_user_tables WHERE relname = $1";
        sql(&db).await.query_one(stats, &[&table]).await.expect("stats").get(0)
    };
    assert_eq!(analyses("attempts").await, 0);
    // The change counters reach the statistics a moment after the writer's transaction (and
    // the store's own task may get there first: either way the table gets analyzed).
    eventually("the attempts analyzed", Duration::from_secs(10), async || {
        let analyzed = analyze::analyze_stale(shared).await.expect("analyze");
        assert!(analyzed.iter().all(|table| table != "webhooks"), "only the busy tables: {analyzed:?}");
        analyses("attempts").await >= 1
    })
    .await;
    eventually("nothing stale once analyzed", Duration::from_secs(10), async || {
        !analyze::analyze_stale(shared).await.expect("analyze").contains(&"attempts".to_owned())
    })
    .await;
    assert_eq!(analyses("queue").await, 0, "the queue, which empties as it is worked, is left alone");

    // Stale again at once (twice its rows): but analyzed a moment ago, by this host or another.
    let more = "INSERT INTO attempts (delivery_id, at, message_id, record)
                SELECT 'dlv_' || n, now(), 'msg_' || n, '\\x00' FROM generate_series(201, 600) AS n";
    sql(&db).await.execute(more, &[]).await.expect("400 more attempts");
    let changed = "SELECT n_mod_since_analyze FROM pg_stat_user_tables WHERE relname = 'attempts'";
    eventually("the changes counted", Duration::from_secs(10), async || {
        sql(&db).await.query_one(changed, &[]).await.expect("stats").get::<_, i64>(0) >= 400
    })
    .await;
    let analyzed = analyses("attempts").await;
    assert!(!analyze::analyze_stale(shared).await.expect("analyze").contains(&"attempts".to_owned()));
    assert_eq!(analyses("attempts").await, analyzed, "not again before the interval is over");
}

#[tokio::test]
async fn with_a_drained_queue_s_statistics_claims_and_finishes_find_entries_by_id() {
    let db = database!();
    let _store = open(&db).await;
    let client = sql(&db).await;
    // The statistics autovacuum (or an operator) takes just after a backlog drained: the
    // queue looks empty while a new backlog is arriving.
    let fill = |prefix: &str| {
        format!(
            "INSERT INTO queue (delivery_id, webhook_id, due_ms)
             SELECT '{prefix}' || lpad(n::text, 6, '0'), 'w1', n FROM generate_series(1, 20000) AS n"
        )
    };
    client.batch_execute(&fill("old_")).await.expect("a backlog");
    client.batch_execute("DELETE FROM queue; ANALYZE queue").await.expect("drained and analyzed");
    client.batch_execute(&fill("new_")).await.expect("a new backlog");
    client
        .batch_execute(&format!("PREPARE claim AS {}; PREPARE finish AS {}", queue::CLAIM, queue::FINISH))
        .await
        .expect("prepare");
    let me = "'00000000-0000-0000-0000-000000000001'";
    let claim = format!("EXECUTE claim({me}, 1000, '{{}}')");
    let finish =
        format!("EXECUTE finish({}, {me}, '{{}}', '{{}}', '{{}}', '{{new_000001}}')", ["'{}'"; 9].join(", "));
    for mode in ["force_custom_plan", "force_generic_plan"] {
        for statement in [&claim, &finish] {
            let explain = format!("SET plan_cache_mode = {mode}; EXPLAIN {statement}");
            let plan: Vec<String> = client
                .simple_query(&explain)
                .await
                .expect("explain")
                .into_iter()
                .filter_map(|message| match message {
                    tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
                    _ => None,
                })
                .collect();
            let plan = plan.join("\n");
            // Through another index the update walked all of it: 1.4 s instead of 19 ms.
            assert!(plan.contains("queue_pkey"), "{mode}: {statement} finds entries by id:\n{plan}");
        }
    }
}

#[tokio::test]
async fn the_depth_is_resynced_from_the_table() {
    let db = database!();
    let store = open(&db).await;
    sql(&db)
        .await
        .execute("INSERT INTO queue (delivery_id, webhook_id, due_ms) VALUES ('dlv_x', 'w1', 1)", &[])
        .await
        .expect("another host's entry");
    assert_eq!(store.queue_depth(), 0);
    queue::resync_once(&store.inner.shared).await.expect("resync");
    assert_eq!(store.queue_depth(), 1);
}

#[tokio::test]
async fn another_host_s_write_wakes_this_one() {
    let db = database!();
    // A poll far longer than the test may take, and no heartbeat after opening: only a
    // notification can wake it in time. It opened first and beat alone: it should own
    // every lane as far as it knows, and acquires the lane of the webhook the notification
    // names when it claims. The writer, which knows both hosts, tells the one it prefers for
    // the webhook: one chosen so that this is the waiting host.
    let forever = Duration::from_secs(600);
    let waiting = PgStore::open_with(&db.url, Migrate::Apply, forever, SLOW).await.expect("open");
    let writing = PgStore::open_with(&db.url, Migrate::Apply, forever, SLOW).await.expect("open");
    let hosts = [waiting.inner.shared.me, writing.inner.shared.me];
    let webhook = (0..)
        .map(|n| format!("w{n}"))
        .find(|webhook| lanes::preferred(&hosts, webhook) == Some(hosts[0]))
        .expect("some webhook is the waiting host's");
    for i in 0.. {
        assert!(i < 60, "no notification reached the other host");
        let e = event("c1", &format!("e{i}"));
        writing
            .accept(
                &[accept(e.clone(), vec![delivery(&e, &webhook, DeliveryStatus::Pending)], json!({}))],
                None,
                1,
            )
            .await
            .expect("accept");
        // The listener may not be listening yet when the first ones are sent.
        if tokio::time::timeout(Duration::from_secs(1), waiting.wait_for_work()).await.is_ok() {
            break;
        }
    }
    assert!(!waiting.claim(100).await.expect("claim").is_empty());
    waiting.close().await.expect("close");
    writing.close().await.expect("close");
}

#[tokio::test]
async fn other_hosts_read_changes_in_order_and_none_is_missed() {
    let db = database!();
    let (here, there) = (open(&db).await, open(&db).await);
    let start = here.changes_cursor().await.expect("the cursor");
    assert_eq!(here.changes_since(start).await.expect("changes"), (Vec::new(), start), "none yet");

    let mut webhook =
        crate::tryout::sample_webhook("TODO_CREATED", "p1", Some("u1"), OffsetDateTime::UNIX_EPOCH);
    webhook.id = "wh_1".into();
    there.insert_webhook(&webhook).await.expect("insert");
    assert!(there.swap_webhook(&webhook).await.expect("swap"));
    assert!(!there.swap_webhook(&webhook).await.expect("a lost swap changes nothing"));
    there.put_user(&User { id: "u1".into(), companies: Companies::All }).await.expect("user");
    there.put_connector("slack", b"v1").await.expect("connector");
    assert!(there.delete_connector("slack").await.expect("delete"));
    assert!(!there.delete_connector("slack").await.expect("nothing to delete"));
    there.put_token(&[1; 32], &token("tok_1")).await.expect("tokens are read where they are used");

    let (changes, next) = here.changes_since(start).await.expect("changes");
    assert_eq!(
        changes,
        [
            Change::Webhook("wh_1".into()),
            Change::Webhook("wh_1".into()),
            Change::User("u1".into()),
            Change::Connector("slack".into()),
            Change::Connector("slack".into()),
        ]
    );
    assert_eq!(here.changes_since(next).await.expect("changes"), (Vec::new(), next));
    // The host that made them applied them already; it moves on all the same.
    assert_eq!(there.changes_since(start).await.expect("changes"), (Vec::new(), next));

    // Many writers at once, a reader following: it sees every change.
    let writers = (0..40).map(|i| {
        let there = there.clone();
        tokio::spawn(async move { there.put_connector(&format!("c{i}"), b"v").await })
    });
    let writers: Vec<_> = writers.collect();
    let (mut cursor, mut seen) = (next, std::collections::BTreeSet::new());
    while seen.len() < 40 {
        let (changes, next) = here.changes_since(cursor).await.expect("changes");
        cursor = next;
        for change in changes {
            let Change::Connector(name) = change else { panic!("only connectors changed") };
            assert!(seen.insert(name), "each change once");
        }
        if writers.iter().all(|w| w.is_finished()) {
            let (changes, _) = here.changes_since(cursor).await.expect("changes");
            assert_eq!(seen.len() + changes.len(), 40, "none missed");
            break;
        }
        tokio::task::yield_now().await;
    }
    for writer in writers {
        writer.await.expect("a writer").expect("written");
    }
}

#[tokio::test]
async fn a_change_on_another_host_wakes_this_one() {
    let db = database!();
    let (here, there) = (open(&db).await, open(&db).await);
    for i in 0.. {
        assert!(i < 60, "no notification of a change reached the other host");
        there.put_user(&User { id: format!("u{i}"), companies: Companies::All }).await.expect("user");
        // The listener may not be listening yet when the first ones are sent.
        if tokio::time::timeout(Duration::from_secs(1), here.wait_for_changes()).await.is_ok() {
            break;
        }
    }
}

#[tokio::test]
async fn one_host_alone_owns_every_lane() {
    let db = database!();
    let store = host(&db).await;
    let all = webhooks(20);
    let made = queue_for(&store, &all, 2).await;
    let claimed = store.claim(1000).await.expect("claim");
    assert_eq!(claimed.len(), made.len(), "the first claim acquires the lanes of new webhooks");
    let owners = owners(&db).await;
    assert_eq!(owners.keys().cloned().collect::<Vec<_>>(), all);
    assert!(owners.values().all(|owner| *owner == me(&store)));
    assert!(store.lanes_to_release().await.is_empty());

    // A lane without entries is forgotten at the next beat; it comes back with new ones.
    for entry in &claimed {
        store.finish(entry, None, None, &[]).await.expect("finish");
    }
    eventually("empty lanes are forgotten", Duration::from_secs(5), async || count(&db, "lanes").await == 0)
        .await;
    queue_for(&store, &all[..1], 1).await;
    assert_eq!(store.claim(10).await.expect("claim").len(), 1);
    store.close().await.expect("close");
    assert_eq!(count(&db, "hosts").await, 0, "a host that stops leaves");
    assert_eq!(count(&db, "lanes").await, 0);
}

#[tokio::test]
async fn lanes_split_between_hosts_and_each_webhook_is_claimed_by_one() {
    let db = database!();
    let (a, b, c) = (host(&db).await, host(&db).await, host(&db).await);
    see_each_other(&[&a, &b, &c], 3).await;
    let hosts = a.inner.shared.lanes.hosts();
    let all = webhooks(30);
    // Written on one host; each host hears of the webhooks and takes those it should own.
    let made = queue_waiting_for(&b, &all, 3).await;
    let mut claimed: Vec<(Uuid, QueueEntry)> = Vec::new();
    eventually("every entry is claimed", Duration::from_secs(5), async || {
        for store in [&a, &b, &c] {
            let entries = store.claim(1000).await.expect("claim");
            claimed.extend(entries.into_iter().map(|entry| (me(store), entry)));
        }
        claimed.len() == made.len()
    })
    .await;
    let mut by_webhook: std::collections::BTreeMap<&str, HashSet<Uuid>> = Default::default();
    for (host, entry) in &claimed {
        by_webhook.entry(&entry.webhook_id).or_default().insert(*host);
    }
    assert_eq!(by_webhook.len(), all.len());
    for (webhook, claimers) in &by_webhook {
        assert_eq!(claimers.len(), 1, "{webhook} claimed by one host only");
        let claimer = claimers.iter().next().copied();
        assert_eq!(claimer, lanes::preferred(&hosts, webhook), "{webhook} by the host it hashes to");
    }
    let busy: HashSet<Uuid> = claimed.iter().map(|(host, _)| *host).collect();
    assert_eq!(busy.len(), 3, "30 webhooks spread over 3 hosts");
    assert_eq!(claimed_by(&db).await.values().filter(|c| c.is_none()).count(), 0);
    for store in [&a, &b, &c] {
        assert!(store.lanes_to_release().await.is_empty());
    }
}

#[tokio::test]
async fn a_dead_host_s_lanes_and_unfinished_claims_go_to_another() {
    let db = database!();
    let (a, b) = (host(&db).await, host(&db).await);
    see_each_other(&[&a, &b], 2).await;
    let all = webhooks(20);
    let made = queue_waiting_for(&a, &all, 2).await;
    let (mut on_a, mut on_b) = (Vec::new(), Vec::new());
    eventually("every entry is claimed", Duration::from_secs(5), async || {
        on_a.extend(a.claim(1000).await.expect("claim"));
        on_b.extend(b.claim(1000).await.expect("claim"));
        on_a.len() + on_b.len() == made.len()
    })
    .await;
    assert!(!on_a.is_empty() && !on_b.is_empty(), "20 webhooks spread over 2 hosts");
    // `a` finishes one delivery, then dies with the rest claimed.
    a.finish(&on_a[0], None, None, &[]).await.expect("finish");
    let unfinished: HashSet<String> = on_a[1..].iter().map(|e| e.delivery_id.clone()).collect();
    drop(a);
    assert!(b.claim(1000).await.expect("claim").is_empty(), "its leases still hold");
    let mut taken = HashSet::new();
    eventually("the dead host's entries are claimed by the other", Duration::from_secs(10), async || {
        taken.extend(b.claim(1000).await.expect("claim").into_iter().map(|e| e.delivery_id));
        taken.len() >= unfinished.len()
    })
    .await;
    assert_eq!(taken, unfinished, "nothing lost, nothing twice");
    assert!(owners(&db).await.values().all(|owner| *owner == me(&b)));
    assert_eq!(count(&db, "hosts").await, 1);
}

#[tokio::test]
async fn a_host_that_stops_cleanly_hands_its_lanes_over_at_once() {
    let db = database!();
    let (a, b) = (host(&db).await, host(&db).await);
    see_each_other(&[&a, &b], 2).await;
    let all = webhooks(20);
    let made = queue_for(&a, &all, 1).await;
    let (mut on_a, mut on_b) = (0, 0);
    eventually("every entry is claimed", Duration::from_secs(5), async || {
        on_a += a.claim(1000).await.expect("claim").len();
        on_b += b.claim(1000).await.expect("claim").len();
        on_a + on_b == made.len()
    })
    .await;
    assert!(on_a > 0);
    a.close().await.expect("close");
    let mut taken = 0;
    // Well before `a` would be deemed gone (1 s unseen).
    eventually("the other host takes its entries", Duration::from_millis(800), async || {
        taken += b.claim(1000).await.expect("claim").len();
        taken == on_a
    })
    .await;
}

#[tokio::test]
async fn a_joining_host_gets_its_lanes_once_the_first_releases_them() {
    let db = database!();
    let a = host(&db).await;
    let all = webhooks(20);
    let made = queue_for(&a, &all, 2).await;
    let held = a.claim(1000).await.expect("claim");
    assert_eq!(held.len(), made.len());

    let b = host(&db).await;
    let theirs = handing_over(&a, &b, &all).await;

    // New entries of a draining lane: claimed by neither host until it is released.
    let late = queue_for(&a, &theirs[..1], 1).await;
    tokio::time::sleep(FAST.heartbeat * 3).await;
    assert!(a.claim(1000).await.expect("claim").is_empty(), "a claims nothing of its draining lanes");
    assert!(b.claim(1000).await.expect("claim").is_empty(), "b waits for the release");

    // The engine dropped what it held of them and nothing of them runs: released.
    for webhook in &theirs {
        a.release_lane(webhook).await.expect("release");
    }
    assert!(a.lanes_to_release().await.is_empty());
    let expected = held.iter().filter(|e| theirs.contains(&e.webhook_id)).count() + late.len();
    let mut taken: Vec<QueueEntry> = Vec::new();
    eventually("the newcomer claims the released lanes' entries", Duration::from_secs(2), async || {
        taken.extend(b.claim(1000).await.expect("claim"));
        taken.len() == expected
    })
    .await;
    assert!(taken.iter().all(|e| theirs.contains(&e.webhook_id)));
    let owners = owners(&db).await;
    for webhook in &all {
        let owner = if theirs.contains(webhook) { me(&b) } else { me(&a) };
        assert_eq!(owners.get(webhook), Some(&owner), "{webhook}");
    }
    assert!(a.claim(1000).await.expect("claim").is_empty());
}

#[tokio::test]
async fn a_draining_lane_with_nothing_claimed_is_released_by_the_beat() {
    let db = database!();
    let a = host(&db).await;
    let all = webhooks(20);
    let made = queue_waiting_for(&a, &all, 1).await;
    // `a` owns every lane (its beat took them), but claims nothing.
    eventually("the first host owns every lane", Duration::from_secs(5), async || {
        a.inner.shared.lanes.owned() == all
    })
    .await;
    let b = host(&db).await;
    see_each_other(&[&a, &b], 2).await;
    let hosts = b.inner.shared.lanes.hosts();
    let theirs = all.iter().filter(|w| lanes::preferred(&hosts, w) == Some(me(&b))).count();
    let mut taken = Vec::new();
    eventually("the newcomer claims its share", Duration::from_secs(5), async || {
        taken.extend(b.claim(1000).await.expect("claim"));
        taken.len() == theirs
    })
    .await;
    assert!(a.lanes_to_release().await.is_empty(), "nothing left to release");
    assert_eq!(a.claim(1000).await.expect("claim").len(), made.len() - theirs);
}

#[tokio::test]
async fn a_host_out_of_touch_stops_claiming_and_reports_every_lane() {
    let db = database!();
    let a = host(&db).await;
    let all = webhooks(5);
    queue_for(&a, &all, 1).await;
    assert_eq!(a.claim(1000).await.expect("claim").len(), 5);
    a.stop_heartbeat();
    // Stale after host_ttl - margin = 0.7 s without a beat, well before its leases expire.
    eventually("every lane is reported", Duration::from_secs(3), async || a.lanes_to_release().await == all)
        .await;
    queue_for(&a, &all, 1).await;
    assert!(a.claim(1000).await.expect("claim").is_empty(), "it may have lost them");
    for webhook in &all {
        a.release_lane(webhook).await.expect("release");
    }
    assert_eq!(count(&db, "lanes").await, 0);
    assert_eq!(claimed_by(&db).await.values().filter(|c| c.is_some()).count(), 0, "its claims returned");
}

#[tokio::test]
async fn entries_of_a_lane_kept_here_are_claimed_as_written() {
    let db = database!();
    let (a, b) = (host(&db).await, host(&db).await);
    see_each_other(&[&a, &b], 2).await;
    let w = one_of(&a);
    queue_for(&a, std::slice::from_ref(&w), 1).await;
    assert_eq!(a.claim(10).await.expect("claim").len(), 1, "the first claim takes the lane");

    // Written on the host that keeps the lane: claimed as written, handed over without a claim.
    let made = by_id(queue_for(&a, std::slice::from_ref(&w), 3).await);
    let marks = claimed_by(&db).await;
    assert!(made.iter().all(|d| marks[&d.id] == Some(me(&a))), "claimed by a in the same write");
    assert!(!a.inner.shared.unclaimed.load(Ordering::Relaxed), "nothing to claim from the database");
    let mut taken = a.claim(2).await.expect("claim");
    assert_eq!(taken.len(), 2, "no more than asked for");
    taken.extend(a.claim(10).await.expect("claim"));
    let mut got = ids(&taken);
    got.sort();
    assert_eq!(got, made.iter().map(|d| d.id.clone()).collect::<Vec<_>>());
    assert!(a.claim(10).await.expect("claim").is_empty(), "each once");
    assert!(b.claim(10).await.expect("claim").is_empty(), "never by another host");

    // Written on another host (not sharing it), or for an ordered webhook: unclaimed, found
    // by a claim.
    let elsewhere = queue_waiting_for(&b, std::slice::from_ref(&w), 1).await;
    let e = event("c1", "ordered");
    let ordered = delivery(&e, &w, DeliveryStatus::Pending);
    let call = Accept {
        event: e.into(),
        deliveries: vec![ordered.clone()],
        response: json!({}),
        unordered: Vec::new(),
    };
    a.accept(&[call], None, 5).await.expect("accept");
    assert_eq!(claimed_by(&db).await[&ordered.id], None);
    let mut found = Vec::new();
    eventually("a claims what b wrote and the ordered entry", Duration::from_secs(5), async || {
        found.extend(ids(&a.claim(10).await.expect("claim")));
        found.len() >= 2
    })
    .await;
    found.sort();
    let mut expected = vec![elsewhere[0].id.clone(), ordered.id.clone()];
    expected.sort();
    assert_eq!(found, expected);

    // A lane released with entries claimed as written not taken yet: they go back with it,
    // and the engine never gets them from here.
    let late = queue_for(&a, std::slice::from_ref(&w), 2).await;
    a.release_lane(&w).await.expect("release");
    let marks = claimed_by(&db).await;
    assert!(marks.values().all(Option::is_none), "every claim returned: {marks:?}");
    let mut again = Vec::new();
    eventually("the lane's entries are claimed again, each once", Duration::from_secs(5), async || {
        again.extend(ids(&a.claim(100).await.expect("claim")));
        again.len() >= marks.len()
    })
    .await;
    let unique: HashSet<&String> = again.iter().collect();
    assert_eq!(unique.len(), marks.len(), "each once: {again:?}");
    assert!(late.iter().all(|d| unique.contains(&d.id)));
}

#[tokio::test]
async fn entries_claimed_as_written_while_a_lane_is_handed_over_go_with_it() {
    let db = database!();
    let a = host(&db).await;
    let all = webhooks(20);
    let held = queue_for(&a, &all, 1).await;
    assert_eq!(a.claim(1000).await.expect("claim").len(), held.len(), "a owns every lane");

    // A write in flight (the queue locked) when a second host joins: it claims as written
    // for every lane, since a keeps them all when it decides.
    let lock = QueueLock::take(&db).await;
    let writer = write_held_up(&db, &a, &all).await;
    let b = host(&db).await;
    lock.release().await;
    let written = writer.await.expect("the write");
    assert!(claimed_by(&db).await.values().all(|c| *c == Some(me(&a))));

    let theirs = handing_over(&a, &b, &all).await;
    // What it claimed as written of the lanes it keeps comes out; the others' stays back.
    let kept = a.claim(1000).await.expect("claim");
    assert!(!kept.is_empty() && kept.iter().all(|e| !theirs.contains(&e.webhook_id)), "{kept:?}");
    assert_eq!(kept.len(), all.len() - theirs.len());
    for webhook in &theirs {
        a.release_lane(webhook).await.expect("release");
    }
    let expected: HashSet<String> = held
        .iter()
        .chain(&written)
        .filter(|d| theirs.contains(&d.webhook_id))
        .map(|d| d.id.clone())
        .collect();
    let mut taken: Vec<String> = Vec::new();
    eventually("the newcomer claims the released lanes' entries", Duration::from_secs(5), async || {
        taken.extend(b.claim(1000).await.expect("claim").into_iter().map(|e| e.delivery_id));
        taken.len() >= expected.len()
    })
    .await;
    assert_eq!(taken.len(), expected.len(), "each once");
    assert_eq!(taken.into_iter().collect::<HashSet<_>>(), expected);
    assert!(a.claim(1000).await.expect("claim").is_empty(), "nothing of them from the first host");
}

#[tokio::test]
async fn a_host_deemed_gone_gives_its_lanes_up_and_joins_again() {
    let db = database!();
    let a = PgStore::open_with(&db.url, Migrate::Apply, queue::POLL, SLOW).await.expect("open");
    let w = vec!["w1".to_owned()];
    queue_for(&a, &w, 1).await;
    assert_eq!(a.claim(10).await.expect("claim").len(), 1);
    assert!(a.lanes_to_release().await.is_empty());

    // Its beat was held up past `host_ttl`, and another host deleted its row.
    sql(&db).await.execute("DELETE FROM hosts WHERE id = $1", &[&me(&a)]).await.expect("delete");
    lanes::beat(&a.inner.shared).await.expect("beat");
    assert_eq!(a.lanes_to_release().await, w, "out of touch: its lanes are given up");
    assert!(a.claim(10).await.expect("claim").is_empty(), "and it claims nothing");
    a.release_lane(&w[0]).await.expect("release");

    lanes::beat(&a.inner.shared).await.expect("beat");
    assert!(a.lanes_to_release().await.is_empty(), "back in touch");
    assert_eq!(a.claim(10).await.expect("claim").len(), 1, "its lane taken again, and the entry with it");
}

#[tokio::test]
async fn a_lane_is_not_forgotten_while_a_write_claims_for_it() {
    let db = database!();
    let a = PgStore::open_with(&db.url, Migrate::Apply, queue::POLL, SLOW).await.expect("open");
    let w = vec!["w1".to_owned()];
    queue_for(&a, &w, 1).await;
    let entries = a.claim(10).await.expect("claim");
    a.finish(&entries[0], None, None, &[]).await.expect("finish");

    // The lane is empty, but a write claiming for it is in flight (the queue locked) when
    // the host beats.
    let lock = QueueLock::take(&db).await;
    let writer = write_held_up(&db, &a, &w).await;
    lanes::beat(&a.inner.shared).await.expect("beat");
    lock.release().await;
    let written = writer.await.expect("the write");
    assert_eq!(owners(&db).await.get(&w[0]), Some(&me(&a)), "not forgotten");
    assert_eq!(claimed_by(&db).await[&written[0].id], Some(me(&a)), "claimed as written");
    let entries = a.claim(10).await.expect("claim");
    assert_eq!(entries.len(), 1);

    // Empty, and nothing written to it since the last beat: forgotten.
    a.finish(&entries[0], None, None, &[]).await.expect("finish");
    lanes::beat(&a.inner.shared).await.expect("beat");
    assert!(owners(&db).await.is_empty());
}

#[tokio::test]
async fn hosts_share_a_webhook_each_keeping_what_it_ingests() {
    let db = database!();
    let (a, b, c) = (host(&db).await, host(&db).await, host(&db).await);
    see_each_other(&[&a, &b, &c], 3).await;
    let w = one_of(&a);
    let w = std::slice::from_ref(&w);

    // A first event on each host that does not own the lane: written for the owner to claim,
    // and the host's demand for the webhook published.
    let first = [queue_for(&b, w, 1).await, queue_for(&c, w, 1).await].concat();
    let marks = claimed_by(&db).await;
    assert!(first.iter().all(|d| marks[&d.id].is_none()), "{marks:?}");
    claim_until(&a, 2, Duration::from_secs(5), "the owner claims them").await;
    assert!(a.share(&w[0], 8, true).is_some(), "the owner works its lane");
    eventually("every host's demand is established", Duration::from_secs(5), async || {
        [&a, &b, &c].iter().all(|host| host.share(&w[0], 8, true).is_some_and(|share| share > 0))
    })
    .await;
    let shares: Vec<usize> = [&a, &b, &c].iter().filter_map(|host| host.share(&w[0], 8, true)).collect();
    assert_eq!(shares.iter().sum::<usize>(), 8, "the cap split between them: {shares:?}");
    assert_eq!(b.share(&w[0], 8, false), None, "a webhook with a rateLimit is the owner's alone");

    // Written on hosts that do not own the lane: each keeps what it wrote.
    let on_b = queue_for(&b, w, 3).await;
    let on_c = queue_for(&c, w, 2).await;
    let marks = claimed_by(&db).await;
    assert!(on_b.iter().all(|d| marks[&d.id] == Some(me(&b))), "{marks:?}");
    assert!(on_c.iter().all(|d| marks[&d.id] == Some(me(&c))), "{marks:?}");
    assert_eq!(b.claim(10).await.expect("claim").len(), 3, "from memory");
    eventually("the owner takes the lane", Duration::from_secs(5), async || {
        owners(&db).await.get(&w[0]) == Some(&me(&a))
    })
    .await;
    assert!(a.claim(10).await.expect("claim").is_empty(), "nothing the others keep");
    assert_eq!(claimed_by(&db).await, marks, "taking the lane returned none of their entries");

    // `b` hands its share back: its entries go to the owner, and it keeps no more of them.
    b.release_lane(&w[0]).await.expect("hand back");
    assert!(!b.works(&w[0], true));
    let later = queue_for(&b, w, 1).await;
    assert_eq!(claimed_by(&db).await[&later[0].id], None, "written for the owner to claim");
    let taken =
        claim_until(&a, 4, Duration::from_secs(5), "the owner claims what b handed back and wrote since")
            .await;
    let taken = ids(&taken);
    let expected: HashSet<String> = on_b.iter().chain(&later).map(|d| d.id.clone()).collect();
    assert_eq!(taken.iter().cloned().collect::<HashSet<_>>(), expected);
    assert_eq!(taken.len(), 4, "each once");

    // `c` dies with what it kept: the owner returns those claims and works them.
    drop(c);
    let taken = claim_until(&a, 2, Duration::from_secs(10), "the owner claims what c kept").await;
    let taken = ids(&taken);
    assert_eq!(taken.into_iter().collect::<HashSet<_>>(), on_c.iter().map(|d| d.id.clone()).collect());
    see_each_other(&[&a, &b], 2).await;
    eventually("the owner runs the whole cap: b handed its share back", Duration::from_secs(5), async || {
        a.share(&w[0], 8, true) == Some(8) && b.share(&w[0], 8, true).is_none()
    })
    .await;
}

/// A sender pinned to one host (say, through a load balancer keeping its connections): that
/// host runs the webhook's whole cap once the lane owner holds nothing of it.
#[tokio::test]
async fn a_host_taking_all_of_a_webhook_s_events_gets_its_whole_cap() {
    let db = database!();
    let (a, b) = (host(&db).await, host(&db).await);
    see_each_other(&[&a, &b], 2).await;
    let w = one_of(&a);
    let w = std::slice::from_ref(&w);
    queue_for(&b, w, 2).await;
    let taken = claim_until(&a, 2, Duration::from_secs(5), "the owner claims the first ones").await;
    assert!(a.share(&w[0], 8, true).is_some(), "the owner works its lane");
    for entry in &taken {
        a.finish(entry, None, None, &[]).await.expect("finish");
    }
    a.emptied(&w[0]);
    eventually("b's demand is established", Duration::from_secs(5), async || {
        b.share(&w[0], 8, true).is_some_and(|share| share > 0)
    })
    .await;
    let later = queue_for(&b, w, 1).await;
    assert_eq!(claimed_by(&db).await[&later[0].id], Some(me(&b)), "kept by b");
    assert_eq!(b.claim(10).await.expect("claim").len(), 1, "from memory");
    eventually("the owner's demand lingered out: b runs the whole cap", Duration::from_secs(5), async || {
        b.share(&w[0], 8, true) == Some(8)
    })
    .await;

    // The owner, holding entries again, waits until b has seen its demand; then they split.
    assert_eq!(a.share(&w[0], 8, true), Some(0), "b may be running all 8");
    eventually("the cap split again", Duration::from_secs(5), async || {
        a.share(&w[0], 8, true) == Some(4) && b.share(&w[0], 8, true) == Some(4)
    })
    .await;
}

#[tokio::test]
async fn hosts_told_not_to_share_leave_each_webhook_to_its_lane_s_host() {
    let db = database!();
    let (a, b) = (host(&db).await, host(&db).await);
    for host in [&a, &b] {
        host.share_webhooks(false);
    }
    see_each_other(&[&a, &b], 2).await;
    let w = one_of(&a);
    let w = std::slice::from_ref(&w);
    // Long after both would have settled.
    tokio::time::sleep(FAST.host_ttl).await;
    assert_eq!(a.share(&w[0], 8, true), Some(8), "the lane's host runs the whole cap");
    assert_eq!(b.share(&w[0], 8, true), None);
    let made = queue_for(&b, w, 2).await;
    assert!(claimed_by(&db).await.values().all(Option::is_none), "written for the lane's host to claim");
    let taken = claim_until(&a, made.len(), Duration::from_secs(5), "the lane's host claims them").await;
    assert_eq!(taken.len(), made.len());
}

#[test]
fn the_preferred_host_is_stable_and_spreads_lanes() {
    let hosts: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    let mut reversed = hosts.clone();
    reversed.reverse();
    let mut per_host = std::collections::HashMap::new();
    for webhook in webhooks(300) {
        let chosen = lanes::preferred(&hosts, &webhook).expect("a host");
        assert_eq!(lanes::preferred(&reversed, &webhook), Some(chosen), "whatever the order");
        *per_host.entry(chosen).or_insert(0) += 1;
        // Another host joining moves a lane to itself or leaves it where it was.
        let joined = [hosts.clone(), vec![Uuid::now_v7()]].concat();
        let after = lanes::preferred(&joined, &webhook).expect("a host");
        assert!(after == chosen || after == joined[3]);
    }
    assert!(per_host.values().all(|n| *n > 60), "{per_host:?}");
    assert_eq!(lanes::preferred(&[], "wh_1"), None);
}

/// `url` with `params` added to its query.
fn with_params(url: &str, params: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(url).expect("a URL");
    url.query_pairs_mut().extend_pairs(params);
    url.to_string()
}

/// Whether a connection made as `url` asks is encrypted, as the server sees it.
async fn encrypted(url: &str) -> Result<bool, String> {
    let database = Database::parse(url).map_err(|e| e.to_string())?;
    let (client, connection) = database.connect().await.map_err(|e| error_text(&e))?;
    tokio::spawn(connection);
    let row = client
        .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
        .await
        .map_err(|e| error_text(&e))?;
    Ok(row.get(0))
}

/// The server's own certificate is the authority to trust: the test servers' are self-signed
/// leaves (this kind of machine's snakeoil; `scripts/postgres-for-tests` makes one so).
#[tokio::test]
async fn connects_with_the_tls_the_url_asks_for() {
    let db = database!();
    let url = |params: &[(&str, &str)]| with_params(&db.url, params);
    assert_eq!(encrypted(&url(&[("sslmode", "disable")])).await, Ok(false));
    let Some(server) = db.server_tls().await else {
        eprintln!("this server does not offer TLS: checked only that it is not needed");
        assert_eq!(encrypted(&db.url).await, Ok(false), "prefer connects without it");
        let refused = encrypted(&url(&[("sslmode", "require")])).await.expect_err("require needs TLS");
        assert!(refused.contains("TLS"), "{refused}");
        return;
    };
    assert_eq!(encrypted(&db.url).await, Ok(true), "prefer, libpq's default, encrypts");
    assert_eq!(encrypted(&url(&[("sslmode", "require")])).await, Ok(true));
    let verify = |mode: &str, root: &str| url(&[("sslmode", mode), ("sslrootcert", root)]);
    assert_eq!(encrypted(&verify("verify-ca", &server.root)).await, Ok(true));
    assert_eq!(encrypted(&verify("require", &server.root)).await, Ok(true));

    // verify-full: the host's name must be one the certificate holds.
    let verify_full = [("sslmode", "verify-full"), ("sslrootcert", server.root.as_str())];
    if let Some(name) = &server.name {
        assert_eq!(encrypted(&db.url_named(name, &verify_full).await).await, Ok(true), "{name}");
    }
    let refused = encrypted(&db.url_named("db.invalid", &verify_full).await).await.expect_err("another name");
    assert!(refused.contains("not valid for name"), "{refused}");

    let stranger = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("a certificate");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let stranger_root = dir.path().join("stranger.pem");
    std::fs::write(&stranger_root, stranger.cert.pem()).expect("write a certificate");
    let stranger_root = stranger_root.to_str().expect("a UTF-8 path");
    for mode in ["verify-ca", "verify-full", "require"] {
        let refused = encrypted(&verify(mode, stranger_root)).await.expect_err("another authority");
        assert!(refused.contains("UnknownIssuer"), "{mode}: {refused}");
    }
    // `prefer` never checks, whatever root it is given (libpq's meaning).
    assert_eq!(encrypted(&verify("prefer", stranger_root)).await, Ok(true));

    // A whole store over TLS: its pools and its listener.
    let store =
        PgStore::open(&verify("verify-ca", &server.root), Migrate::Apply).await.expect("open over TLS");
    // The connections above close on their own time: wait for those to go.
    eventually("only the store's encrypted connections", Duration::from_secs(5), async || {
        let (encrypted, plain) = db.wasmhook_connections().await;
        plain == 0 && encrypted >= 2
    })
    .await;
    drop(store);
}
