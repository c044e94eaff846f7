-- wasmhook schema 1: the tables of the storage interface.
--
-- Fields that are queried by are columns; the rest of each record is its serde_json bytes
-- in `record` (bytea: PostgreSQL never parses them, which keeps ingest cheap). Keys and ids
-- sort bytewise (COLLATE "C"), as they do on sled, and compare faster that way.

CREATE TABLE webhooks (
    id text COLLATE "C" PRIMARY KEY,
    created_by_id text COLLATE "C" NOT NULL,
    -- Compare-and-swap: a write succeeds only against the revision it read.
    revision bigint NOT NULL,
    record bytea NOT NULL
);
CREATE INDEX webhooks_by_owner ON webhooks (created_by_id, id);

CREATE TABLE users (
    id text COLLATE "C" PRIMARY KEY,
    record bytea NOT NULL
);

CREATE TABLE tokens (
    id text COLLATE "C" PRIMARY KEY,
    -- SHA-256 of the token's text: how a request finds its token.
    hash bytea NOT NULL UNIQUE,
    record bytea NOT NULL
);

CREATE TABLE connectors (
    name text COLLATE "C" PRIMARY KEY,
    component bytea NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Events are unique per company; `response` is the answer given when it was accepted,
-- given again to a sender that repeats it.
CREATE TABLE events (
    company_id text COLLATE "C" NOT NULL,
    id text COLLATE "C" NOT NULL,
    accepted_ms bigint NOT NULL,
    record bytea NOT NULL,
    response bytea NOT NULL,
    PRIMARY KEY (company_id, id)
);
CREATE INDEX events_by_accepted ON events (accepted_ms);

-- `status` is not indexed, so a delivery's turn (status and record change) can be a HOT
-- update that touches no index.
CREATE TABLE deliveries (
    id text COLLATE "C" PRIMARY KEY,
    webhook_id text COLLATE "C" NOT NULL,
    status text NOT NULL,
    created_at timestamptz NOT NULL,
    record bytea NOT NULL
) WITH (fillfactor = 90);
-- Ids are UUIDv7 (time-ordered): a webhook's newest deliveries are the last of this index.
CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, id);
CREATE INDEX deliveries_by_created ON deliveries (created_at);

-- The delivery queue. An entry is claimed by one process (`claimed_by`, a random id made
-- when it opened the database) until finished; entries of a process that died are claimed
-- again. Per-webhook lane leases for several hosts will join on `webhook_id`.
CREATE TABLE queue (
    delivery_id text COLLATE "C" PRIMARY KEY,
    webhook_id text COLLATE "C" NOT NULL,
    due_ms bigint NOT NULL,
    claimed_by uuid
) WITH (
    -- Every claim, reschedule and finish leaves a dead row: vacuum this small, hot table
    -- often, long before the default 20 % of it is dead.
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.01,
    autovacuum_analyze_scale_factor = 0.02,
    fillfactor = 70
);
CREATE INDEX queue_by_due ON queue (due_ms, delivery_id);
-- What a claim reads in the common case: entries nobody has claimed, in due order, without
-- stepping over the many this process holds.
CREATE INDEX queue_unclaimed ON queue (due_ms, delivery_id) WHERE claimed_by IS NULL;

CREATE TABLE attempts (
    delivery_id text COLLATE "C" NOT NULL,
    at timestamptz NOT NULL,
    message_id text COLLATE "C" NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (delivery_id, at, message_id)
);

-- `scoped` is `<token id>\0<key>`: bytea, since text cannot hold a NUL.
CREATE TABLE idempotency (
    scoped bytea PRIMARY KEY,
    endpoint text NOT NULL,
    body_hash text NOT NULL,
    outcomes bytea NOT NULL,
    accepted_ms bigint NOT NULL
);
CREATE INDEX idempotency_by_accepted ON idempotency (accepted_ms);

-- Changes to webhooks, users and connectors, which every host applies to what it holds in
-- memory. A change takes its `seq` from `change_counter` under that row's lock, held until
-- it commits: changes commit in `seq` order, so a host that sees change N has seen every
-- change before it, and reading on from N misses none. (A sequence would hand out numbers
-- that commit out of order.) The counter starts at 1: a cursor of 0 means "from now".
CREATE TABLE change_counter (
    seq bigint NOT NULL
);
INSERT INTO change_counter (seq) VALUES (1);

CREATE TABLE changes (
    seq bigint PRIMARY KEY,
    -- webhook, user or connector
    kind text NOT NULL,
    key text COLLATE "C" NOT NULL,
    -- The process that made it: it skips its own.
    host uuid NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX changes_by_time ON changes (at);
