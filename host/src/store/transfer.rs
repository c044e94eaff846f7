//! Moving a deployment from the embedded database to PostgreSQL (`wasmhook migrate --from DIR
//! --to postgres://…`), whole: users, tokens, uploaded connectors, webhooks, events, every
//! delivery (history too) with its attempts, and the queue.
//!
//! The source is read a page of one kind at a time (`sled/export.rs`), and each page is
//! written in one statement that skips what the target holds already (`postgres/import.rs`):
//! memory holds a page, never a table, and a copy run again — or run after one that stopped
//! half-way — writes only what is missing. Records move as they are stored: webhooks with
//! their sealed secrets, sealed config and revision; tokens by the hash of their text, so the
//! tokens in use keep working; events with the time they were accepted, so retention goes on
//! from there; queue entries unclaimed, so the first host to start works them.
//!
//! Not copied: idempotency keys (a request repeated with an old `Idempotency-Key` after the
//! move is not answered from the key; its events are still deduplicated by id), the secret
//! key and the operator tokens (configuration: every host must be given the same ones).

use serde_json::Value;

use super::{Location, QueueEntry, StoreError, postgres, sled};
use crate::access::{Token, User};
use crate::domain::delivery::{Attempt, Delivery};
use crate::domain::event::Event;
use crate::domain::webhook::Webhook;

/// Records in one page at most: one statement writes them.
pub(crate) const PAGE_RECORDS: usize = 1000;

/// Bytes of records in one page at most (a page ends at the record that reaches this):
/// uploaded connectors and deliveries with large messages must not fill memory 1,000 at a time.
pub(crate) const PAGE_BYTES: usize = 16 << 20;

/// The kinds of record a copy moves, in the order it moves them: what a record refers to
/// comes before it, so a copy that stopped half-way left nothing pointing at a record that is
/// not there (queue entries last: a host started early finds each one's delivery).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Users,
    Tokens,
    Connectors,
    Webhooks,
    Events,
    Deliveries,
    Attempts,
    Queue,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Users,
        Kind::Tokens,
        Kind::Connectors,
        Kind::Webhooks,
        Kind::Events,
        Kind::Deliveries,
        Kind::Attempts,
        Kind::Queue,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Users => "users",
            Kind::Tokens => "tokens",
            Kind::Connectors => "connectors",
            Kind::Webhooks => "webhooks",
            Kind::Events => "events",
            Kind::Deliveries => "deliveries",
            Kind::Attempts => "attempts",
            Kind::Queue => "queue entries",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a copy did with one kind of record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    pub kind: Kind,
    /// Records read from the source.
    pub read: u64,
    /// Records written: those the target did not hold yet. The rest were there already (a
    /// copy run before), or repeated in the source (a queue entry left twice by a crash).
    pub written: u64,
}

impl Copied {
    /// Records read that the target held already.
    pub fn skipped(&self) -> u64 {
        self.read.saturating_sub(self.written)
    }
}

/// One page of records of one kind, as the source stores them.
pub(crate) enum Records {
    Users(Vec<User>),
    /// Each token with the hash of its text (the text itself is stored nowhere).
    Tokens(Vec<([u8; 32], Token)>),
    /// Name and component bytes.
    Connectors(Vec<(String, Vec<u8>)>),
    Webhooks(Vec<Webhook>),
    Events(Vec<StoredEvent>),
    Deliveries(Vec<Delivery>),
    Attempts(Vec<StoredAttempt>),
    Queue(Vec<QueueEntry>),
}

impl Records {
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Records::Users(r) => r.len(),
            Records::Tokens(r) => r.len(),
            Records::Connectors(r) => r.len(),
            Records::Webhooks(r) => r.len(),
            Records::Events(r) => r.len(),
            Records::Deliveries(r) => r.len(),
            Records::Attempts(r) => r.len(),
            Records::Queue(r) => r.len(),
        }
    }
}

/// A page read from the source.
pub(crate) struct Page {
    pub(crate) records: Records,
    /// The records of the source this page accounts for: its length, except in a second pass
    /// over a kind, whose records may repeat earlier ones.
    pub(crate) read: u64,
}

/// An event as accepted: the event, the answer its sender got, and when (ms since the epoch).
pub(crate) struct StoredEvent {
    pub(crate) event: Event,
    pub(crate) response: Value,
    pub(crate) accepted_ms: u64,
}

/// An attempt with the delivery it belongs to.
pub(crate) struct StoredAttempt {
    pub(crate) delivery_id: String,
    pub(crate) attempt: Attempt,
}

/// What [`copy`] reports as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The source is open (no server holds it) and the target's schema is current: the
    /// migrations applied to it (none when it was up to date).
    Ready { migrations: Vec<u64> },
    /// A kind of record is copied.
    Copied(Copied),
}

/// Copies everything stored at `from` (an embedded database, which no server may hold) into
/// `to` (a PostgreSQL database, its schema migrations applied first), a kind at a time in
/// [`Kind::ALL`]'s order; reports each step to `progress` and returns what was done with each
/// kind. Running it again writes nothing twice.
pub async fn copy(
    from: &Location,
    to: &Location,
    mut progress: impl FnMut(Progress),
) -> Result<Vec<Copied>, StoreError> {
    let (Location::Sled(dir), Location::Postgres(url)) = (from, to) else {
        return Err(StoreError::Refused(format!(
            "cannot copy {from} to {to}: a copy goes from an embedded database to PostgreSQL"
        )));
    };
    // The source first: refused at once while a server holds it, before the target changes.
    let mut source = sled::Export::open(dir).await?;
    let copied = async {
        let migrations = postgres::migrate(url).await?;
        let target = postgres::Import::open(url).await?;
        progress(Progress::Ready { migrations });
        let mut copied = Vec::with_capacity(Kind::ALL.len());
        for kind in Kind::ALL {
            let mut counts = Copied { kind, read: 0, written: 0 };
            while let Some(page) = source.page(kind).await? {
                let written = target.write(&page.records).await?;
                counts.read += page.read;
                counts.written += written;
            }
            progress(Progress::Copied(counts));
            copied.push(counts);
        }
        Ok::<_, StoreError>(copied)
    }
    .await;
    // Whatever happened, the source is left as a clean stop leaves it.
    let closed = source.close().await;
    let copied = copied?;
    closed?;
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;
    use time::OffsetDateTime;

    use super::*;
    use crate::access::{Companies, Scope, token_hash};
    use crate::domain::delivery::DeliveryStatus;
    use crate::store::postgres::testing::TestDb;
    use crate::store::{Accept, Store};

    /// Events (a delivery each) in the sled database: enough for three pages.
    const EVENTS: usize = 2_500;

    fn delivery(i: usize, now: OffsetDateTime) -> Delivery {
        Delivery {
            id: format!("dlv_{i:05}"),
            event_id: format!("e{i:05}"),
            event_type: "TODO_CREATED".into(),
            company_id: "c".into(),
            webhook_id: "wh_1".into(),
            status: DeliveryStatus::Pending,
            messages: Vec::new(),
            error: None,
            plugin_log: Vec::new(),
            created_at: now,
        }
    }

    fn attempt(message: &str, at: OffsetDateTime) -> Attempt {
        Attempt {
            message_id: message.into(),
            at,
            status_code: Some(503),
            latency_ms: 1,
            response: None,
            error: None,
            remote_id: None,
        }
    }

    /// Fills a sled database on a runtime of its own, which is gone when this returns (and
    /// with it the database's lock).
    fn populate(dir: &Path) {
        let dir = dir.to_owned();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let store = sled::SledStore::open(&dir).unwrap();
                let now = OffsetDateTime::now_utc();
                let user = User { id: "alice".into(), companies: Companies::All };
                store.put_user(&user).await.unwrap();
                let token = Token {
                    id: "tok_1".into(),
                    scope: Scope::User,
                    user_id: "alice".into(),
                    description: None,
                    created_at: now,
                };
                store.put_token(&token_hash("whk_secret"), &token).await.unwrap();
                store.put_connector("uploaded", b"component bytes").await.unwrap();
                let mut webhook = crate::tryout::sample_webhook("TODO_CREATED", "p", Some("alice"), now);
                (webhook.id, webhook.revision) = ("wh_1".into(), 3);
                store.insert_webhook(&webhook).await.unwrap();
                for batch in (0..EVENTS).collect::<Vec<_>>().chunks(500) {
                    let accepts: Vec<Accept> = batch
                        .iter()
                        .map(|i| Accept {
                            event: std::sync::Arc::new(Event {
                                id: format!("e{i:05}"),
                                event: "TODO_CREATED".into(),
                                company_id: "c".into(),
                                project_id: "p".into(),
                                user_id: None,
                                current_value: Some(json!({"i": i})),
                                previous_value: None,
                                occurred_at: now,
                            }),
                            deliveries: vec![delivery(*i, now)],
                            response: json!({"id": format!("e{i:05}")}),
                            unordered: Vec::new(),
                        })
                        .collect();
                    store.accept(&accepts, None, super::super::now_ms()).await.unwrap();
                }
                // One delivery tried twice and due again; attempts of a delivery pruned.
                let entry = store.claim(1).await.unwrap().remove(0);
                assert_eq!(entry.delivery_id, "dlv_00000", "claimed in the order written");
                let tried = [attempt("msg_1", now), attempt("msg_1", now + time::Duration::seconds(1))];
                let due = entry.due_ms + 60_000;
                let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(due) * 1_000_000).unwrap();
                let retried = delivery(0, now).due_again_at(at);
                store.finish(&entry, Some(&retried), Some(due), &tried).await.unwrap();
                let gone = QueueEntry::new(0, "dlv_gone", "wh_1");
                store.finish(&gone, None, None, &[attempt("msg_gone", now)]).await.unwrap();
                // Accepted before acceptance times were kept.
                store.forget_acceptance_times(3).unwrap();
                store.close().await.unwrap();
            });
        })
        .join()
        .unwrap();
    }

    #[tokio::test]
    async fn copies_every_page_once_and_a_second_copy_writes_nothing() {
        let Some(database) = TestDb::create().await else { return };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        populate(&path);
        let (from, to) = (Location::Sled(path), Location::Postgres(database.url.clone()));

        let mut reported = Vec::new();
        let first = copy(&from, &to, |progress| reported.push(progress)).await.unwrap();
        let expected = [1, 1, 1, 1, EVENTS as u64, EVENTS as u64, 2, EVENTS as u64];
        let written: Vec<(Kind, u64, u64)> = first.iter().map(|c| (c.kind, c.read, c.written)).collect();
        let all_new: Vec<(Kind, u64, u64)> =
            Kind::ALL.into_iter().zip(expected).map(|(k, n)| (k, n, n)).collect();
        assert_eq!(written, all_new, "the attempt of a delivery that is gone is left");
        assert!(matches!(&reported[0], Progress::Ready { migrations } if !migrations.is_empty()));
        assert_eq!(reported.len(), 1 + Kind::ALL.len());

        let again = copy(&from, &to, |_| {}).await.unwrap();
        let none_new: Vec<(Kind, u64, u64)> =
            Kind::ALL.into_iter().zip(expected).map(|(k, n)| (k, n, 0)).collect();
        assert_eq!(again.iter().map(|c| (c.kind, c.read, c.written)).collect::<Vec<_>>(), none_new);

        // Read back as the PostgreSQL backend reads.
        let store = Store::open(&to, false).await.unwrap();
        let token = store.token_by_hash(&token_hash("whk_secret")).await.unwrap().unwrap();
        assert_eq!((token.id.as_str(), token.user_id.as_str()), ("tok_1", "alice"));
        assert_eq!(store.webhook("wh_1").await.unwrap().unwrap().revision, 3);
        assert_eq!(store.connectors().await.unwrap(), [("uploaded".to_owned(), b"component bytes".to_vec())]);
        for i in [0, 1, 1_234, EVENTS - 1] {
            let event = store.event("c", &format!("e{i:05}")).await.unwrap().unwrap();
            assert_eq!(event.current_value, Some(json!({"i": i})));
        }
        let attempts = store.attempts_of(&["dlv_00000".into(), "dlv_gone".into()]).await.unwrap();
        assert_eq!(attempts.iter().map(Vec::len).collect::<Vec<_>>(), [2, 0]);
        let mut claimed = store.claim(EVENTS + 1).await.unwrap();
        assert_eq!(claimed.len(), EVENTS, "every entry, unclaimed until now");
        claimed.sort_by(|a, b| a.delivery_id.cmp(&b.delivery_id));
        assert_eq!(claimed[0].delivery_id, "dlv_00000");
        assert!(claimed[0].due_ms > claimed[1].due_ms, "due as it was rescheduled");
        store.close().await.unwrap();
    }
}
