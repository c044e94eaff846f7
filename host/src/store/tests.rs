//! Tests of the storage interface: what callers see through [`Store`], on sled and on PostgreSQL.

use serde_json::json;

use super::*;

fn event(id: &str) -> Event {
    let incoming: crate::domain::event::IncomingEvent = serde_json::from_value(
        json!({"id": id, "event": "TODO_CREATED", "companyId": "c1", "projectId": "p1"}),
    )
    .unwrap();
    incoming.accept(OffsetDateTime::now_utc())
}

/// Accepts one event with one pending delivery at `now_ms`; returns the delivery.
async fn ingest(store: &Store, id: &str, now_ms: u64) -> Delivery {
    ingest_for(store, "w1", id, now_ms).await
}

async fn ingest_for(store: &Store, webhook_id: &str, id: &str, now_ms: u64) -> Delivery {
    let event = event(id);
    let delivery = Delivery::new(&event, webhook_id, true, OffsetDateTime::now_utc());
    let accept = Accept {
        event: event.into(),
        deliveries: vec![delivery.clone()],
        response: json!({}),
        unordered: Vec::new(),
    };
    store.accept(&[accept], None, now_ms).await.unwrap();
    delivery
}

/// Stores `delivery` with an error, its queue entry left where it was (what a turn that
/// waits for its plugin writes): storage now differs from what was kept in memory.
async fn change_in_storage(store: &Store, entry: &QueueEntry, delivery: &Delivery) {
    let changed = Delivery { error: Some("changed in storage".into()), ..delivery.clone() };
    store.finish(entry, Some(&changed), Some(entry.due_ms), &[]).await.unwrap();
}

#[tokio::test]
async fn a_fresh_delivery_serves_its_first_turn_from_memory_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&Location::Sled(dir.path().join("db")), true).await.unwrap();
    let delivery = ingest(&store, "e1", 5).await;
    let entry = QueueEntry::new(5, &delivery.id, "w1");
    change_in_storage(&store, &entry, &delivery).await;
    let first = store.queued_delivery(&entry).await.unwrap().unwrap();
    assert_eq!(first.error, None, "as ingest wrote it");
    let second = store.queued_delivery(&entry).await.unwrap().unwrap();
    assert_eq!(second.error.as_deref(), Some("changed in storage"), "read once, then from storage");

    let other = ingest(&store, "e2", 5).await;
    let moved = QueueEntry::new(60, &other.id, "w1");
    change_in_storage(&store, &QueueEntry::new(5, &other.id, "w1"), &other).await;
    let read = store.queued_delivery(&moved).await.unwrap().unwrap();
    assert!(read.error.is_some(), "an entry that moved was worked: storage's");
}

/// Connectors' state: scoped per webhook and connector, within its quota, gone with its
/// webhook — the same on both backends.
async fn keeps_plugin_state(store: &Store) {
    let webhook = crate::tryout::sample_webhook("TODO_CREATED", "p1", Some("u1"), OffsetDateTime::now_utc());
    store.insert_webhook(&webhook).await.unwrap();
    let id = &webhook.id;
    let quota = StateQuota { keys: 3, bytes: 64 };
    for (key, value) in [("id:r1", "crm-1"), ("id:r2", "crm-2"), ("other\0key", "x")] {
        assert!(store.set_plugin_state(id, "crm", key, value, quota).await.unwrap(), "{key}");
    }
    assert!(!store.set_plugin_state(id, "crm", "id:r3", "crm-3", quota).await.unwrap(), "a fourth key");
    assert!(
        store.set_plugin_state(id, "crm", "id:r1", "crm-1b", quota).await.unwrap(),
        "a replacement adds none"
    );
    let big = "x".repeat(60);
    assert!(!store.set_plugin_state(id, "crm", "id:r1", &big, quota).await.unwrap(), "over the bytes");
    assert_eq!(store.plugin_state(id, "crm", "id:r1").await.unwrap().as_deref(), Some("crm-1b"));
    assert_eq!(store.plugin_state(id, "slack", "id:r1").await.unwrap(), None, "another connector's");
    assert_eq!(store.plugin_state_keys(id, "crm", "id:").await.unwrap(), ["id:r1", "id:r2"]);
    store.delete_plugin_state(id, "crm", "id:r2").await.unwrap();
    assert_eq!(store.plugin_state_keys(id, "crm", "").await.unwrap(), ["id:r1", "other\0key"]);
    assert!(store.delete_webhook(id).await.unwrap());
    assert!(store.plugin_state_keys(id, "crm", "").await.unwrap().is_empty(), "gone with its webhook");
    assert_eq!(store.plugin_state(id, "crm", "id:r1").await.unwrap(), None);
}

#[tokio::test]
async fn plugin_state_on_sled() {
    let dir = tempfile::tempdir().unwrap();
    keeps_plugin_state(&Store::open(&Location::Sled(dir.path().join("db")), true).await.unwrap()).await;
}

#[tokio::test]
async fn plugin_state_on_postgres() {
    let Some(database) = postgres::testing::TestDb::create().await else { return };
    keeps_plugin_state(&Store::open(&Location::Postgres(database.url.clone()), true).await.unwrap()).await;
}

/// Accepts events `ids` in one call at `now_ms`; whether each was a duplicate.
async fn accept_events(store: &Store, ids: &[&str], now_ms: u64) -> Vec<bool> {
    let accepts: Vec<Accept> = ids
        .iter()
        .map(|id| Accept {
            event: event(id).into(),
            deliveries: Vec::new(),
            response: json!({}),
            unordered: Vec::new(),
        })
        .collect();
    match store.accept(&accepts, None, now_ms).await.unwrap() {
        Stored::Accepted(outcomes) => outcomes.iter().map(|o| o.duplicate).collect(),
        other => panic!("accepted, not {other:?}"),
    }
}

/// Events are kept from when they were accepted; one seen again is kept from its first time,
/// and once pruned is accepted anew.
async fn prunes_events_by_when_they_were_accepted(store: &Store) {
    assert_eq!(accept_events(store, &["e1"], 1_000).await, [false]);
    assert_eq!(accept_events(store, &["e1", "e2", "e2"], 2_000).await, [true, false, true]);
    store.prune(1_500).await.unwrap();
    assert!(store.event("c1", "e1").await.unwrap().is_none(), "kept from its first time");
    assert!(store.event("c1", "e2").await.unwrap().is_some());
    assert_eq!(accept_events(store, &["e1"], 3_000).await, [false], "pruned, it is new again");
    store.prune(2_500).await.unwrap();
    assert!(store.event("c1", "e2").await.unwrap().is_none());
    assert!(store.event("c1", "e1").await.unwrap().is_some(), "kept from when it was accepted again");
}

#[tokio::test]
async fn prunes_events_by_when_they_were_accepted_on_sled() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&Location::Sled(dir.path().join("db")), true).await.unwrap();
    prunes_events_by_when_they_were_accepted(&store).await;
}

#[tokio::test]
async fn prunes_events_by_when_they_were_accepted_on_postgres() {
    let Some(database) = postgres::testing::TestDb::create().await else { return };
    let store = Store::open(&Location::Postgres(database.url.clone()), true).await.unwrap();
    prunes_events_by_when_they_were_accepted(&store).await;
}

/// A delivery's attempts outlast the turns after them and a requeue.
async fn keeps_attempts_through_turns_and_a_requeue(store: &Store) {
    let delivery = ingest(store, "e1", 5).await;
    let entry = QueueEntry::new(5, &delivery.id, "w1");
    let attempt = |status: u16| Attempt {
        message_id: "m1".into(),
        at: OffsetDateTime::now_utc(),
        status_code: Some(status),
        latency_ms: 1,
        response: None,
        error: None,
        remote_id: None,
    };
    store.finish(&entry, None, Some(60), &[attempt(503)]).await.unwrap();
    let failed = Delivery { status: DeliveryStatus::Failed, ..delivery.clone() };
    store
        .finish(&QueueEntry::new(60, &delivery.id, "w1"), Some(&failed), None, &[attempt(500)])
        .await
        .unwrap();
    let again = Delivery { status: DeliveryStatus::Pending, ..delivery.clone() };
    assert!(store.requeue(&again, 70).await.unwrap());
    assert_eq!(store.delivery(&delivery.id).await.unwrap().map(|d| d.status), Some(DeliveryStatus::Pending));
    let kept = store.attempts_of(std::slice::from_ref(&delivery.id)).await.unwrap();
    let statuses: Vec<_> = kept[0].iter().map(|a| a.status_code).collect();
    assert_eq!(statuses, [Some(503), Some(500)]);
}

#[tokio::test]
async fn keeps_attempts_through_turns_and_a_requeue_on_sled() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&Location::Sled(dir.path().join("db")), true).await.unwrap();
    keeps_attempts_through_turns_and_a_requeue(&store).await;
}

#[tokio::test]
async fn keeps_attempts_through_turns_and_a_requeue_on_postgres() {
    let Some(database) = postgres::testing::TestDb::create().await else { return };
    let store = Store::open(&Location::Postgres(database.url.clone()), true).await.unwrap();
    keeps_attempts_through_turns_and_a_requeue(&store).await;
}

/// Two hosts on one fresh PostgreSQL database, the first migrating it; `None` without
/// PostgreSQL. The database is dropped with the first of the three.
async fn two_hosts() -> Option<(postgres::testing::TestDb, Store, Store)> {
    let database = postgres::testing::TestDb::create().await?;
    let location = Location::Postgres(database.url.clone());
    let here = Store::open(&location, true).await.unwrap();
    let there = Store::open(&location, false).await.unwrap();
    Some((database, here, there))
}

#[tokio::test]
async fn another_host_reads_ahead_what_one_ingested() {
    let Some((_database, here, there)) = two_hosts().await else { return };
    let (d1, d2) = (ingest(&here, "e1", 5).await, ingest(&here, "e2", 5).await);
    let (e1, e2) = (QueueEntry::new(5, &d1.id, "w1"), QueueEntry::new(5, &d2.id, "w1"));
    there.read_ahead(&[e1.clone(), e2.clone()]).await.unwrap();
    assert!(there.events.event("c1", "e2").is_some(), "the events come along");

    change_in_storage(&here, &e1, &d1).await;
    let first = there.queued_delivery(&e1).await.unwrap().unwrap();
    assert_eq!(first.error, None, "served as read ahead");
    let second = there.queued_delivery(&e1).await.unwrap().unwrap();
    assert_eq!(second.error.as_deref(), Some("changed in storage"), "once");

    let moved = QueueEntry::new(60, &d2.id, "w1");
    change_in_storage(&here, &e2, &d2).await;
    let read = there.queued_delivery(&moved).await.unwrap().unwrap();
    assert!(read.error.is_some(), "an entry that moved was worked: storage's");
}

#[tokio::test]
async fn a_fresh_delivery_carries_its_event_however_long_the_backlog() {
    let Some(database) = postgres::testing::TestDb::create().await else { return };
    let store = Store::open(&Location::Postgres(database.url.clone()), true).await.unwrap();
    let delivery = ingest(&store, "e1", 5).await;
    store.events.clear(); // a backlog longer than the events kept
    let entry = QueueEntry::new(5, &delivery.id, "w1");
    store.read_ahead(std::slice::from_ref(&entry)).await.unwrap();
    assert!(store.events.event("c1", "e1").is_none(), "nothing was read: the delivery carries it");
    let first = store.queued_delivery(&entry).await.unwrap();
    assert_eq!(first.unwrap().id, delivery.id, "the delivery stayed as ingest wrote it");
    assert!(store.events.event("c1", "e1").is_some(), "and its turn finds the event in memory");
}

#[tokio::test]
async fn an_event_read_ahead_from_memory_outlasts_the_ingest_after_it() {
    let Some(database) = postgres::testing::TestDb::create().await else { return };
    let store = Store::open(&Location::Postgres(database.url.clone()), true).await.unwrap();
    let delivery = ingest(&store, "e1", 5).await;
    store.fresh.clear(); // a delivery read from storage: its event is looked for in memory
    // A backlog: e1 is the oldest event kept, next to go.
    for n in 2..=recent::EVENTS {
        store.events.remember(&event(&format!("e{n}")));
    }
    store.read_ahead(&[QueueEntry::new(5, &delivery.id, "w1")]).await.unwrap();
    store.events.remember(&event("e-after"));
    assert!(store.events.event("c1", "e1").is_some(), "read ahead: kept as if new");
    assert!(store.events.event("c1", "e2").is_none(), "the oldest not read ahead went instead");
}

#[tokio::test]
async fn a_turn_that_starts_before_ingest_s_write_returns_reads_from_memory() {
    let Some(database) = postgres::testing::TestDb::create().await else { return };
    let store = Store::open(&Location::Postgres(database.url.clone()), true).await.unwrap();
    let (locker, connection) = tokio_postgres::connect(&database.url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    // The write held up (the queue locked): its event and delivery are not stored yet.
    locker.batch_execute("BEGIN; LOCK TABLE queue IN SHARE ROW EXCLUSIVE MODE").await.unwrap();
    let event = event("e1");
    let delivery = Delivery::new(&event, "w1", true, OffsetDateTime::now_utc());
    let accept = Accept {
        event: event.into(),
        deliveries: vec![delivery.clone()],
        response: json!({}),
        unordered: Vec::new(),
    };
    let writing = tokio::spawn({
        let store = store.clone();
        async move { store.accept(&[accept], None, 5).await.map(drop) }
    });
    let (watch, connection) = tokio_postgres::connect(&database.url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let waiting = "SELECT count(*) FROM pg_locks WHERE NOT granted";
    for tries in 0.. {
        if watch.query_one(waiting, &[]).await.unwrap().get::<_, i64>(0) > 0 {
            break;
        }
        assert!(tries < 500, "the write never waited for the lock");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let entry = QueueEntry::new(5, &delivery.id, "w1");
    let served = store.queued_delivery(&entry).await.unwrap();
    assert_eq!(served.map(|d| d.id), Some(delivery.id.clone()), "from memory: storage has none yet");
    let read = store.event("c1", "e1").await.unwrap();
    assert_eq!(read.map(|e| e.id.clone()), Some("e1".to_owned()), "and its event");
    locker.batch_execute("COMMIT").await.unwrap();
    writing.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_host_keeps_in_memory_only_what_it_delivers() {
    let Some((_database, here, there)) = two_hosts().await else { return };
    // Once the hosts see each other (beats every second), each webhook is one's.
    let (mut mine, mut theirs) = (None, None);
    for _ in 0..100 {
        for webhook in (0..40).map(|n| format!("w{n}")) {
            match (here.works(&webhook, false), there.works(&webhook, false)) {
                (true, false) => mine = Some(webhook),
                (false, true) => theirs = Some(webhook),
                _ => {}
            }
        }
        if mine.is_some() && theirs.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (mine, theirs) = (mine.expect("a webhook of this host"), theirs.expect("one of the other"));

    let kept = ingest_for(&here, &mine, "e1", 5).await;
    assert!(here.events.event("c1", "e1").is_some(), "its own webhook's event is kept");
    assert_eq!(here.fresh.missing(&kept.id), Missing::Nothing, "and its delivery, with the event");
    let left = ingest_for(&here, &theirs, "e2", 5).await;
    assert!(here.events.event("c1", "e2").is_none(), "the other host delivers it: not kept");
    assert_eq!(here.fresh.missing(&left.id), Missing::Delivery);
    let read = there.queued_delivery(&QueueEntry::new(5, &left.id, &theirs)).await.unwrap();
    assert_eq!(read.map(|d| d.id), Some(left.id), "the other host reads it from storage");
}
